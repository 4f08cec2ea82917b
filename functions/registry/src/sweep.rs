//! The scheduled sweep: evicts lapsed leases, holding back when a service loses too many
//! at once (self-preservation), and runs the HTTP health checks that are due.
//!
//! One failing step (a service that cannot be read, an eviction or a check result that
//! cannot be written) is reported and the sweep goes on with the rest; the binary fails
//! the invocation afterwards, so the failure reaches the `OnFailure` destination.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use aloft_shared::outbound::{OutboundClient, OutboundError};
use aloft_shared::ssrf::{AddressPolicy, GuardedResolver, SsrfRefused};
use futures::StreamExt;
use serde::Serialize;
use tokio::time::Instant;

use crate::domain::{
    CHECK_TIMEOUT_RANGE, HealthStatus, SelfPreservation, after_check, check_target, plan_sweep,
};
use crate::store::RegistryStore;

/// How many HTTP checks run at once in one sweep.
pub const CHECK_CONCURRENCY: usize = 16;
/// At most this many checks per sweep, the longest overdue first: 16 at a time at the
/// longest timeout (10 s) is 40 s, inside the sweep's 50 s timeout; the rest wait for
/// the next sweep.
pub const MAX_CHECKS_PER_SWEEP: usize = 64;

#[derive(Debug, Default, Serialize)]
pub struct SweepReport {
    pub services: Vec<ServiceSweep>,
    pub checks: Vec<CheckReport>,
    /// Steps that failed; every other step still ran.
    pub errors: Vec<SweepError>,
    /// Services with due leases not visited before the deadline (the next sweep will).
    pub left_for_next_sweep: usize,
}

#[derive(Debug, Serialize)]
pub struct SweepError {
    pub step: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub error: String,
}

impl SweepError {
    fn new(step: &'static str, service: Option<&str>, id: Option<&str>, e: impl ToString) -> Self {
        Self {
            step,
            service: service.map(str::to_owned),
            instance_id: id.map(str::to_owned),
            error: e.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub service: String,
    pub instance_id: String,
    pub passed: bool,
    pub status: HealthStatus,
    /// Why it failed (status code, timeout, connection refused, address refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs HTTP checks: a GET that must answer 2xx within the check's timeout, to an
/// address the policy allows.
#[derive(Debug, Clone)]
pub struct HttpChecker {
    client: OutboundClient,
    policy: AddressPolicy,
}

impl HttpChecker {
    /// Names resolved by the system resolver.
    pub fn new(policy: AddressPolicy) -> Self {
        Self::build(GuardedResolver::new(policy))
    }

    /// Names resolved from `hosts` only, as a DNS server that answers so would (tests).
    pub fn with_hosts(policy: AddressPolicy, hosts: HashMap<String, Vec<IpAddr>>) -> Self {
        Self::build(GuardedResolver::with_hosts(policy, hosts))
    }

    fn build(resolver: GuardedResolver) -> Self {
        let policy = resolver.policy();
        // Only the status matters: a check reads none of the body. Each probe sets its
        // check's own timeout; this one is only the ceiling.
        let ceiling = Duration::from_millis(u64::from(*CHECK_TIMEOUT_RANGE.end()));
        let client =
            OutboundClient::guarded(ceiling, "aloft-registry-check/1", resolver).keep_at_most(0);
        Self { client, policy }
    }

    pub async fn probe(&self, url: &str, timeout: Duration) -> Result<(), String> {
        // The stored URL was checked at registration; check it again under today's
        // policy (an address literal never reaches the resolver).
        let target = check_target(url, self.policy).map_err(|e| format!("refused: {e}"))?;
        let sent = self
            .client
            .get(target.0.as_str())
            .timeout(timeout)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("answered {}", r.status())),
            Err(e) => Err(describe(&e, timeout)),
        }
    }
}

fn describe(e: &OutboundError, timeout: Duration) -> String {
    if let Some(refused) = e.caused_by::<SsrfRefused>() {
        format!("refused: {refused}")
    } else if e.is_timeout() {
        format!("no answer within {} ms", timeout.as_millis())
    } else {
        format!("unreachable: {e}")
    }
}

/// Runs due HTTP checks (at most [`CHECK_CONCURRENCY`] at once, none started after
/// `deadline`) and records each result as it arrives: a failure makes an instance
/// `warning`, repeated failures `critical`, one success `passing` again.
#[tracing::instrument(skip_all)]
pub async fn run_checks(
    store: &RegistryStore,
    checker: &HttpChecker,
    now_ms: i64,
    deadline: Instant,
    report: &mut SweepReport,
) {
    let due = match store.due_checks(now_ms, MAX_CHECKS_PER_SWEEP).await {
        Ok(due) => due,
        Err(e) => {
            return report
                .errors
                .push(SweepError::new("due checks", None, None, e));
        }
    };
    let mut probes = futures::stream::iter(due)
        .take_while(|_| std::future::ready(Instant::now() < deadline))
        .map(|d| async move {
            let timeout = Duration::from_millis(u64::from(d.check.timeout_ms));
            let outcome = checker.probe(&d.check.http, timeout).await;
            (d, outcome)
        })
        .buffer_unordered(CHECK_CONCURRENCY);
    while let Some((d, outcome)) = probes.next().await {
        let (status, failures) = after_check(d.failures, outcome.is_ok());
        let next = now_ms + i64::from(d.check.interval_seconds) * 1000;
        match store.record_check(&d, status, failures, next).await {
            Ok(true) => {
                if status != d.status {
                    tracing::info!(service = %d.service, instance_id = %d.instance_id, ?status, "health changed");
                }
                report.checks.push(CheckReport {
                    service: d.service,
                    instance_id: d.instance_id,
                    passed: outcome.is_ok(),
                    status,
                    error: outcome.err(),
                });
            }
            Ok(false) => {}
            Err(e) => report.errors.push(SweepError::new(
                "record check",
                Some(&d.service),
                Some(&d.instance_id),
                e,
            )),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ServiceSweep {
    pub service: String,
    pub evicted: Vec<String>,
    /// Evictions skipped because a heartbeat renewed the lease meanwhile.
    pub renewed: Vec<String>,
    pub held_back: Option<String>,
    /// This sweep started the hold and announced it.
    pub announced: bool,
    /// This sweep ended a hold recorded earlier.
    pub hold_cleared: bool,
}

/// One sweep at `now_ms`: only services with due leases or a hold (from the expiry
/// index) are read, none started after `deadline`.
#[tracing::instrument(skip_all)]
pub async fn sweep(
    store: &RegistryStore,
    now_ms: i64,
    policy: SelfPreservation,
    deadline: Instant,
) -> SweepReport {
    let mut report = SweepReport::default();
    let (services, errors) = store.services_with_due_leases(now_ms).await;
    let errors = errors.into_iter();
    report
        .errors
        .extend(errors.map(|e| SweepError::new("due leases", None, None, e)));
    let total = services.len();
    for (done, service) in services.into_iter().enumerate() {
        if Instant::now() >= deadline {
            report.left_for_next_sweep = total - done;
            break;
        }
        if let Some(s) = sweep_service(store, &service, now_ms, policy, &mut report.errors).await {
            report.services.push(s);
        }
    }
    report
}

async fn sweep_service(
    store: &RegistryStore,
    service: &str,
    now_ms: i64,
    policy: SelfPreservation,
    errors: &mut Vec<SweepError>,
) -> Option<ServiceSweep> {
    let svc = Some(service);
    let view = match store.view(service).await {
        Ok(v) => v?,
        Err(e) => {
            errors.push(SweepError::new("read service", svc, None, e));
            return None;
        }
    };
    let plan = plan_sweep(&view.instances, now_ms, policy);
    let (mut announced, mut hold_cleared) = (false, false);
    if let Some(reason) = &plan.held_back {
        tracing::warn!(%service, %reason, "self-preservation: lapsed leases kept");
        match store.record_held_back(service, reason, now_ms).await {
            Ok(a) => announced = a,
            Err(e) => errors.push(SweepError::new("record hold", svc, None, e)),
        }
    } else if view.held_back.is_some() {
        match store.clear_held_back(service).await {
            Ok(c) => hold_cleared = c,
            Err(e) => errors.push(SweepError::new("clear hold", svc, None, e)),
        }
    }
    let mut evicted = Vec::new();
    let mut renewed = Vec::new();
    for id in plan.evict {
        match store.evict(service, &id, now_ms).await {
            Ok(true) => evicted.push(id),
            Ok(false) => renewed.push(id),
            Err(e) => errors.push(SweepError::new("evict", svc, Some(&id), e)),
        }
    }
    tracing::info!(%service, evicted = evicted.len(), renewed = renewed.len(), "swept");
    Some(ServiceSweep {
        service: service.to_owned(),
        evicted,
        renewed,
        held_back: plan.held_back,
        announced,
        hold_cleared,
    })
}
