//! The scheduled sweep: evicts lapsed leases, holding back when a service loses too many
//! at once (self-preservation).

use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

use crate::domain::{HealthStatus, RegistryError, SelfPreservation, after_check, plan_sweep};
use crate::store::RegistryStore;

/// How many HTTP checks run at once in one sweep.
pub const CHECK_CONCURRENCY: usize = 16;
/// At most this many checks per sweep, the longest overdue first: 16 at a time at the
/// longest timeout (10 s) fits in the sweep's minute; the rest wait for the next sweep.
pub const MAX_CHECKS_PER_SWEEP: usize = 64;

#[derive(Debug, Default, Serialize)]
pub struct SweepReport {
    pub services: Vec<ServiceSweep>,
    pub checks: Vec<CheckReport>,
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub service: String,
    pub instance_id: String,
    pub passed: bool,
    pub status: HealthStatus,
    /// Why it failed (status code, timeout, connection refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs HTTP checks: a GET that must answer 2xx within the check's timeout.
#[derive(Debug, Clone)]
pub struct HttpChecker {
    client: reqwest::Client,
}

impl Default for HttpChecker {
    fn default() -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }
}

impl HttpChecker {
    pub async fn probe(&self, url: &str, timeout: Duration) -> Result<(), String> {
        match self.client.get(url).timeout(timeout).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("answered {}", r.status())),
            Err(e) if e.is_timeout() => Err(format!("no answer within {} ms", timeout.as_millis())),
            Err(e) => Err(format!("unreachable: {e}")),
        }
    }
}

/// Runs every due HTTP check (at most [`CHECK_CONCURRENCY`] at once) and records the
/// results: a failure makes an instance `warning`, repeated failures `critical`, one
/// success `passing` again.
#[tracing::instrument(skip_all)]
pub async fn run_checks(
    store: &RegistryStore,
    checker: &HttpChecker,
    now_ms: i64,
) -> Result<Vec<CheckReport>, RegistryError> {
    let due = store.due_checks(now_ms, MAX_CHECKS_PER_SWEEP).await?;
    let mut probes = futures::stream::iter(due)
        .map(|d| async move {
            let outcome = checker
                .probe(
                    &d.check.http,
                    Duration::from_millis(u64::from(d.check.timeout_ms)),
                )
                .await;
            (d, outcome)
        })
        .buffer_unordered(CHECK_CONCURRENCY);
    // Each result is recorded as it arrives, so a sweep cut short by its own timeout
    // still keeps what it learned (and the next sweep starts with the rest).
    let mut reports = Vec::new();
    while let Some((d, outcome)) = probes.next().await {
        let (status, failures) = after_check(d.failures, outcome.is_ok());
        let next = now_ms + i64::from(d.check.interval_seconds) * 1000;
        if store.record_check(&d, status, failures, next).await? {
            if status != d.status {
                tracing::info!(service = %d.service, instance_id = %d.instance_id, ?status, "health changed");
            }
            reports.push(CheckReport {
                service: d.service,
                instance_id: d.instance_id,
                passed: outcome.is_ok(),
                status,
                error: outcome.err(),
            });
        }
    }
    Ok(reports)
}

#[derive(Debug, Serialize)]
pub struct ServiceSweep {
    pub service: String,
    pub evicted: Vec<String>,
    /// Evictions skipped because a heartbeat renewed the lease meanwhile.
    pub renewed: Vec<String>,
    pub held_back: Option<String>,
}

/// One sweep at `now_ms`: only services with due leases (from the expiry index) are read.
#[tracing::instrument(skip_all)]
pub async fn sweep(
    store: &RegistryStore,
    now_ms: i64,
    policy: SelfPreservation,
) -> Result<SweepReport, RegistryError> {
    let mut report = SweepReport::default();
    for service in store.services_with_due_leases(now_ms).await? {
        let Some(view) = store.view(&service).await? else {
            continue;
        };
        let plan = plan_sweep(&view.instances, now_ms, policy);
        if let Some(reason) = &plan.held_back {
            tracing::warn!(%service, %reason, "self-preservation: lapsed leases kept");
            store.record_held_back(&service, reason).await?;
        }
        let mut evicted = Vec::new();
        let mut renewed = Vec::new();
        for id in plan.evict {
            if store.evict(&service, &id, now_ms).await? {
                evicted.push(id);
            } else {
                renewed.push(id);
            }
        }
        tracing::info!(%service, evicted = evicted.len(), renewed = renewed.len(), "swept");
        report.services.push(ServiceSweep {
            service,
            evicted,
            renewed,
            held_back: plan.held_back,
        });
    }
    Ok(report)
}
