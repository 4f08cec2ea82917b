//! The tick: every due policy evaluated against the registry's healthy instances and
//! CloudWatch, each decision recorded, then acted on. Past
//! [`DEFAULT_FANOUT_THRESHOLD`] services, the tick hands batches to the worker through
//! SQS instead, so no invocation nears its time limit.

use std::collections::BTreeMap;

use aloft_shared::dynamo::StoreError;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::actuator::Actuators;
use crate::domain::decision::{ActuationStatus, Decision};
use crate::domain::instances::{InstanceView, healthy_count};
use crate::domain::recommend::{Evaluation, MetricReading, Observation, evaluate};
use crate::domain::{ScalerError, State};
use crate::metrics::{MetricsReader, PERIOD_SECONDS};
use crate::registry::{RegisteredInstance, RegistryReader};
use crate::store::{Recorded, ScalingStore, ServiceScaling, decision_key};

/// Services one invocation evaluates itself; more are fanned out in batches this size.
/// A batch costs ⌈metrics / 500⌉ GetMetricData calls, one registry Query per service (16
/// at a time) and one write per service: seconds, against a one-minute timeout.
pub const DEFAULT_FANOUT_THRESHOLD: usize = 200;
/// Registry Queries and per-service writes in flight at once.
pub const CONCURRENCY: usize = 16;
/// SendMessageBatch's limit of entries per call.
const SQS_BATCH_MAX: usize = 10;

#[derive(Debug, Clone)]
pub struct Evaluator {
    pub store: ScalingStore,
    pub registry: RegistryReader,
    pub metrics: MetricsReader,
    pub actuators: Actuators,
}

/// A fan-out message: the services one worker invocation evaluates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub services: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct TickReport {
    pub services: usize,
    pub evaluated: usize,
    /// Lost a race with another evaluation or a policy change: nothing written.
    pub conflicts: usize,
    pub changed: Vec<Change>,
    pub actuations: Vec<ActuationReport>,
    pub fanned_out_batches: usize,
    pub metric_queries: usize,
    pub get_metric_data_calls: usize,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Change {
    pub service: String,
    pub previous: u32,
    pub desired: u32,
}

#[derive(Debug, Serialize)]
pub struct ActuationReport {
    pub service: String,
    pub desired: u32,
    pub status: ActuationStatus,
}

impl Evaluator {
    /// One tick at `now_ms`: evaluates the due policies here, or fans them out.
    #[tracing::instrument(skip_all)]
    pub async fn tick(
        &self,
        fan_out: Option<&FanOut>,
        now_ms: i64,
    ) -> Result<TickReport, ScalerError> {
        let due = self.store.due(now_ms).await?;
        match fan_out {
            Some(f) if due.len() > f.threshold => {
                let services: Vec<String> = due.into_iter().map(|d| d.service).collect();
                let batches = f.send(&services).await?;
                Ok(TickReport {
                    services: services.len(),
                    fanned_out_batches: batches,
                    ..TickReport::default()
                })
            }
            _ => Ok(self.evaluate_all(due, now_ms).await),
        }
    }

    /// Evaluates, records and acts on every one of `items`.
    pub async fn evaluate_all(&self, items: Vec<ServiceScaling>, now_ms: i64) -> TickReport {
        let (decided, mut report) = self.decide_all(items, now_ms).await;
        self.record_all(decided, now_ms, &mut report).await;
        report
    }

    /// Reads what every one of `items` needs (one registry Query each, one batched
    /// CloudWatch read for all) and decides, without writing anything.
    pub async fn decide_all(
        &self,
        items: Vec<ServiceScaling>,
        now_ms: i64,
    ) -> (Vec<(ServiceScaling, Evaluation)>, TickReport) {
        let mut report = TickReport {
            services: items.len(),
            ..TickReport::default()
        };
        let (instances, mut readings) = self.observe(&items, now_ms, &mut report).await;
        let mut decided = Vec::with_capacity(items.len());
        for (item, registered) in items.into_iter().zip(instances) {
            match registered {
                Ok(registered) => {
                    let metrics = readings.remove(&item.service).unwrap_or_default();
                    let mut eval = observe_and_evaluate(&item, &registered, metrics, now_ms);
                    if eval.decision.actuation.is_some() {
                        eval.state.actuation_decision_key = Some(decision_key(now_ms));
                    }
                    decided.push((item, eval));
                }
                Err(e) => {
                    tracing::error!(service = %item.service, error = %e, "registry read failed");
                    report.errors.push(format!("{}: {e}", item.service));
                }
            }
        }
        (decided, report)
    }

    /// Records every decision ([`CONCURRENCY`] at a time), then acts on it.
    pub async fn record_all(
        &self,
        decided: Vec<(ServiceScaling, Evaluation)>,
        now_ms: i64,
        report: &mut TickReport,
    ) {
        for (item, eval) in &decided {
            let d = &eval.decision;
            self.metrics
                .emit_counts(&item.service, d.current, d.desired);
        }
        let work = decided
            .into_iter()
            .map(|(item, eval)| self.record_one(item, eval, now_ms));
        let mut outcomes = futures::stream::iter(work).buffer_unordered(CONCURRENCY);
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                Ok(o) => {
                    report.evaluated += 1;
                    if o.conflict {
                        report.conflicts += 1;
                    }
                    report.changed.extend(o.change);
                    report.actuations.extend(o.actuation);
                }
                Err(e) => {
                    tracing::error!(error = %e, "recording a decision failed");
                    report.errors.push(e.to_string());
                }
            }
        }
    }

    /// The decision a tick would make for `item` now, without recording or acting on it.
    pub async fn dry_run(
        &self,
        item: &ServiceScaling,
        now_ms: i64,
    ) -> Result<Decision, ScalerError> {
        let mut report = TickReport::default();
        let (mut instances, mut readings) = self
            .observe(std::slice::from_ref(item), now_ms, &mut report)
            .await;
        if let Some(e) = report.errors.pop() {
            return Err(ScalerError::Metrics(e));
        }
        let registered = instances.pop().unwrap_or(Ok(Vec::new()))?;
        let metrics = readings.remove(&item.service).unwrap_or_default();
        Ok(observe_and_evaluate(item, &registered, metrics, now_ms).decision)
    }

    /// Healthy instances of `service` now.
    pub async fn current(&self, service: &str, now_ms: i64) -> Result<u32, StoreError> {
        let state = State::default();
        let views: Vec<InstanceView> = self
            .registry
            .instances(service)
            .await?
            .iter()
            .map(|i| i.view(&state, now_ms))
            .collect();
        Ok(healthy_count(&views, now_ms))
    }

    /// The registry (one Query per service, [`CONCURRENCY`] at a time) and CloudWatch (one
    /// batched read for all of them).
    async fn observe(
        &self,
        items: &[ServiceScaling],
        now_ms: i64,
        report: &mut TickReport,
    ) -> (
        Vec<Result<Vec<RegisteredInstance>, StoreError>>,
        BTreeMap<String, BTreeMap<crate::domain::policy::MetricKind, MetricReading>>,
    ) {
        let registry = &self.registry;
        let names: Vec<String> = items.iter().map(|i| i.service.clone()).collect();
        let instances = futures::stream::iter(names)
            .map(|service| async move { registry.instances(&service).await })
            .buffered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let wanted: Vec<_> = items
            .iter()
            .map(|i| {
                (
                    i.service.clone(),
                    i.policy.metrics.iter().map(|m| m.metric).collect(),
                )
            })
            .collect();
        // CloudWatch down: every metric is missing, which never scales down (and
        // `fallback` policies go to their fallback count).
        let readings = match self.metrics.fetch(&wanted, now_ms).await {
            Ok(f) => {
                report.metric_queries += f.queries;
                report.get_metric_data_calls += f.calls;
                f.readings
            }
            Err(e) => {
                tracing::error!(error = %e, "GetMetricData failed");
                report.errors.push(format!("metrics: {e}"));
                BTreeMap::new()
            }
        };
        (instances, readings)
    }

    async fn record_one(
        &self,
        item: ServiceScaling,
        eval: Evaluation,
        now_ms: i64,
    ) -> Result<Outcome, ScalerError> {
        let keep = eval
            .decision
            .worth_keeping(item.state.last_decision.as_ref());
        let mut outcome = Outcome::default();
        match self.store.record(&item, &eval, keep, now_ms).await? {
            Recorded::Conflict => {
                outcome.conflict = true;
                return Ok(outcome);
            }
            Recorded::Done { .. } => {}
        }
        if eval.decision.changed() {
            tracing::info!(service = %item.service, previous = eval.decision.previous, desired = eval.decision.desired, limited_by = ?eval.decision.limited_by, "scaling decided");
            outcome.change = Some(Change {
                service: item.service.clone(),
                previous: eval.decision.previous,
                desired: eval.decision.desired,
            });
        }
        outcome.actuation = self
            .actuate(&item, eval.state, item.version + 1, now_ms)
            .await?;
        Ok(outcome)
    }

    /// Sends a pending actuation (decided now, or failed before) and records its outcome.
    async fn actuate(
        &self,
        item: &ServiceScaling,
        mut state: State,
        version: u64,
        now_ms: i64,
    ) -> Result<Option<ActuationReport>, ScalerError> {
        let Some(pending) = state.pending_actuation().cloned() else {
            return Ok(None);
        };
        if item.policy.actuator.as_ref() != Some(&pending.actuator) {
            // The policy no longer names that actuator: nothing to send it to.
            return Ok(None);
        }
        let result = self
            .actuators
            .apply(&pending.actuator, pending.desired)
            .await;
        let mut done = pending;
        done.attempts += 1;
        done.at = Some(aloft_shared::clock::rfc3339(ms_to_time(now_ms)));
        (done.status, done.error) = match result {
            Ok(()) => (ActuationStatus::Succeeded, None),
            Err(e) => {
                tracing::warn!(service = %item.service, error = %e, "actuator failed; retrying next tick");
                (ActuationStatus::Failed, Some(e))
            }
        };
        state.actuation = Some(done.clone());
        if let Some(last) = &mut state.last_decision
            && last.actuation.is_some()
        {
            last.actuation = Some(done.clone());
        }
        self.store
            .record_actuation(&item.service, version, &state, &done, now_ms)
            .await?;
        Ok(Some(ActuationReport {
            service: item.service.clone(),
            desired: done.desired,
            status: done.status,
        }))
    }
}

#[derive(Default)]
struct Outcome {
    conflict: bool,
    change: Option<Change>,
    actuation: Option<ActuationReport>,
}

fn observe_and_evaluate(
    item: &ServiceScaling,
    registered: &[RegisteredInstance],
    metrics: BTreeMap<crate::domain::policy::MetricKind, MetricReading>,
    now_ms: i64,
) -> Evaluation {
    let instances: Vec<InstanceView> = registered
        .iter()
        .map(|i| i.view(&item.state, now_ms))
        .collect();
    let obs = Observation {
        now_ms,
        at: aloft_shared::clock::rfc3339(ms_to_time(now_ms)),
        instances: &instances,
        metrics,
        period_seconds: PERIOD_SECONDS,
    };
    evaluate(&item.policy, &item.state, &obs)
}

pub fn ms_to_time(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

pub fn now_ms() -> i64 {
    (aloft_shared::clock::now().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Fans due services out to the worker through SQS.
#[derive(Debug, Clone)]
pub struct FanOut {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub threshold: usize,
}

impl FanOut {
    /// Reads `SCALING_QUEUE_URL` and `SCALER_FANOUT_THRESHOLD` (default 200).
    pub fn from_env(
        sdk: &aloft_shared::aws::SdkConfig,
    ) -> Result<Self, aloft_shared::config::ConfigError> {
        Ok(Self {
            sqs: aloft_shared::aws::sqs(sdk),
            queue_url: aloft_shared::config::required("SCALING_QUEUE_URL")?,
            threshold: aloft_shared::config::parsed_or(
                "SCALER_FANOUT_THRESHOLD",
                DEFAULT_FANOUT_THRESHOLD,
            )?
            .max(1),
        })
    }

    /// Sends `services` in batches of `threshold`; the number of batches.
    pub async fn send(&self, services: &[String]) -> Result<usize, StoreError> {
        let batches: Vec<Batch> = plan_batches(services, self.threshold);
        for group in batches.chunks(SQS_BATCH_MAX) {
            let mut request = self.sqs.send_message_batch().queue_url(&self.queue_url);
            for (i, batch) in group.iter().enumerate() {
                let body = serde_json::to_string(batch).map_err(|e| StoreError::new("batch", e))?;
                request = request.entries(
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| StoreError::new("batch entry", e))?,
                );
            }
            let out = request.send().await?;
            if let Some(failed) = out.failed().first() {
                return Err(StoreError::internal(format!(
                    "SQS refused a scaling batch: {}",
                    failed.message().unwrap_or(failed.code())
                )));
            }
        }
        Ok(batches.len())
    }
}

/// `services` in batches of at most `size`.
pub fn plan_batches(services: &[String], size: usize) -> Vec<Batch> {
    services
        .chunks(size.max(1))
        .map(|c| Batch {
            services: c.to_vec(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_services_fan_out_in_five_batches() {
        let services: Vec<String> = (0..1000).map(|i| format!("s{i}")).collect();
        let batches = plan_batches(&services, DEFAULT_FANOUT_THRESHOLD);
        assert_eq!(batches.len(), 5);
        assert!(batches.iter().all(|b| b.services.len() == 200));
        assert_eq!(plan_batches(&services[..1], 200).len(), 1);
        assert!(plan_batches(&[], 200).is_empty());
    }

    #[test]
    fn times_round_trip_through_milliseconds() {
        let t = ms_to_time(1_795_563_853_123);
        assert_eq!(aloft_shared::clock::rfc3339(t), "2026-11-24T23:44:13.123Z");
    }
}
