//! The scheduled evaluation. Every minute the tick reads the objectives that are due from
//! the `due` index, fetches their metrics with batched `GetMetricData` calls, judges
//! them, and records each state change with its event in one transaction.
//!
//! Past [`INLINE_LIMIT`] due objectives the tick fans out instead: it sends their keys in
//! chunks of [`CHUNK`] to the evaluation queue, and the evaluator function evaluates each
//! chunk the same way (the scaler's pattern), so one invocation never has to do it all.

use std::collections::HashMap;

use aloft_shared::dynamo::StoreError;
use aloft_shared::outbox::Envelope;
use serde::{Deserialize, Serialize};

use crate::domain::burn::{self, Counts};
use crate::domain::series::{self, MetricSpec};
use crate::domain::{AlertEvent, Objective, Silence, assess, silence, transition};
use crate::metrics::{Metrics, Query, Series};
use crate::store::{EVENT_SOURCE, QualityStore, StoredObjective};

/// Up to this many due objectives the tick evaluates itself (a few `GetMetricData`
/// calls and one write per objective fit well within its minute).
pub const INLINE_LIMIT: usize = 100;
/// Objectives per fan-out message.
pub const CHUNK: usize = 50;
/// The most objectives one tick reads from the index.
pub const MAX_DUE: usize = 10_000;

/// An objective's key, as fan-out messages carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveKey {
    pub service: String,
    pub name: String,
}

#[derive(Debug, Default, Serialize)]
pub struct TickReport {
    pub evaluated: usize,
    pub transitions: usize,
    pub announced: usize,
    /// Evaluations dropped because the objective changed meanwhile.
    pub superseded: usize,
    /// Objectives handed to the evaluator through the queue.
    pub dispatched: usize,
}

/// Where fan-out chunks go.
pub trait Dispatch {
    fn send(
        &self,
        chunks: Vec<Vec<ObjectiveKey>>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub struct Monitor<D> {
    pub store: QualityStore,
    pub metrics: Metrics,
    pub dispatch: D,
}

/// Seconds since the epoch.
pub fn epoch(t: time::OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

impl<D: Dispatch> Monitor<D> {
    /// One scheduled tick at `now`.
    #[tracing::instrument(skip_all)]
    pub async fn tick(&self, now: time::OffsetDateTime) -> Result<TickReport, StoreError> {
        let due = self.store.due(epoch(now), MAX_DUE).await?;
        if due.len() <= INLINE_LIMIT {
            return self.evaluate(due, now).await;
        }
        let keys: Vec<ObjectiveKey> = due
            .iter()
            .map(|o| ObjectiveKey {
                service: o.objective.service.to_string(),
                name: o.objective.name.to_string(),
            })
            .collect();
        let dispatched = keys.len();
        self.dispatch
            .send(keys.chunks(CHUNK).map(<[_]>::to_vec).collect())
            .await?;
        tracing::info!(dispatched, "fanned out");
        Ok(TickReport {
            dispatched,
            ..TickReport::default()
        })
    }

    /// Evaluates the objectives named by a fan-out chunk (those still existing).
    pub async fn evaluate_keys(
        &self,
        keys: &[ObjectiveKey],
        now: time::OffsetDateTime,
    ) -> Result<TickReport, StoreError> {
        let mut objectives = Vec::new();
        for k in keys {
            if let Some(o) = self.store.get(&k.service, &k.name).await? {
                objectives.push(o);
            }
        }
        self.evaluate(objectives, now).await
    }

    /// Judges `objectives` on their metrics and records what changed.
    pub async fn evaluate(
        &self,
        objectives: Vec<StoredObjective>,
        now: time::OffsetDateTime,
    ) -> Result<TickReport, StoreError> {
        let mut report = TickReport::default();
        if objectives.is_empty() {
            return Ok(report);
        }
        let silences: Vec<Silence> = self
            .store
            .silences()
            .await?
            .into_iter()
            .filter(|s| s.is_active(now))
            .collect();
        let end = epoch(now) / 60 * 60;
        let plans: Vec<Plan> = objectives
            .iter()
            .map(|o| Plan::new(&o.objective, end))
            .collect();
        let queries: Vec<Query> = plans.iter().flat_map(Plan::queries).collect();
        let data = self.metrics.fetch(&queries).await?;
        let at = aloft_shared::clock::rfc3339(now);
        for (before, plan) in objectives.iter().zip(&plans) {
            let o = &before.objective;
            let points = plan.points(o, &data);
            let burn = plan.burn(o, &data);
            let assessment = assess(o, &points, burn, before.status.state);
            let muted = silence::muted_by(&silences, &o.service, &o.name, now);
            let change = transition(before.status.state, &assessment, muted, &at);
            let mut after = before.clone();
            after.status.value = assessment.value;
            after.status.threshold = assessment.threshold;
            after.status.burn = assessment.burn.clone();
            after.status.last_evaluated_at = Some(at.clone());
            after.version = before.version + 1;
            after.next_eval_at = next_due(epoch(now), o.period_seconds);
            let mut events = Vec::new();
            if let Some(t) = &change {
                after.status.state = t.entry.to;
                after.status.since = at.clone();
                if let Some(notice) = t.notice {
                    events.push(Envelope::new(
                        notice.event_type(),
                        EVENT_SOURCE,
                        AlertEvent::new(o, t, notice),
                    )?);
                }
            }
            report.evaluated += 1;
            if self
                .store
                .record(
                    before,
                    &after,
                    change.as_ref().map(|t| &t.entry),
                    &events,
                    epoch(now),
                )
                .await?
            {
                report.transitions += usize::from(change.is_some());
                report.announced += events.len();
                if let Some(t) = &change {
                    tracing::info!(service = %o.service, objective = %o.name, from = t.entry.from.as_str(), to = t.entry.to.as_str(), announced = !events.is_empty(), "alert state changed");
                }
            } else {
                report.superseded += 1;
            }
        }
        Ok(report)
    }
}

/// The next period boundary after `now_s`: an objective is judged once per period, when
/// a new complete period exists.
pub fn next_due(now_s: i64, period: u32) -> i64 {
    let p = i64::from(period);
    (now_s / p + 1) * p
}

/// The queries one objective needs, and how to read its values back.
struct Plan {
    /// The evaluation range: complete periods ending at `end`.
    inputs: Vec<Query>,
    /// Per burn window (and the SLO window): total and 5xx request counts.
    burn: Vec<(u32, Query, Query)>,
    starts: Vec<i64>,
}

impl Plan {
    fn new(o: &Objective, end_minute: i64) -> Self {
        let p = i64::from(o.period_seconds);
        let end = end_minute / p * p;
        let range = i64::from(o.evaluation_range());
        let start = end - range * p;
        let query = |spec: MetricSpec| Query {
            spec,
            period: o.period_seconds,
            start,
            end,
        };
        let burn = match o.slo {
            None => Vec::new(),
            Some(slo) => burn::windows()
                .into_iter()
                .chain([slo.window_days * 86400])
                .map(|w| {
                    let [total, errors] = series::request_counts(&o.service);
                    let q = |spec| Query {
                        spec,
                        period: w,
                        start: end_minute - i64::from(w),
                        end: end_minute,
                    };
                    (w, q(total), q(errors))
                })
                .collect(),
        };
        Self {
            inputs: series::inputs(o).into_iter().map(query).collect(),
            burn,
            starts: (0..range).map(|i| start + i * p).collect(),
        }
    }

    fn queries(&self) -> Vec<Query> {
        self.inputs
            .iter()
            .cloned()
            .chain(
                self.burn
                    .iter()
                    .flat_map(|(_, t, e)| [t.clone(), e.clone()]),
            )
            .collect()
    }

    /// The objective's value per period of the range, oldest first.
    fn points(&self, o: &Objective, data: &HashMap<Query, Series>) -> Vec<Option<f64>> {
        let raw: Vec<Vec<Option<f64>>> = self
            .inputs
            .iter()
            .map(|q| {
                self.starts
                    .iter()
                    .map(|t| data.get(q).and_then(|s| s.get(t)).copied())
                    .collect()
            })
            .collect();
        series::values(o, &raw)
    }

    fn burn(&self, o: &Objective, data: &HashMap<Query, Series>) -> Option<burn::BurnReport> {
        let slo = o.slo?;
        let sum = |q: &Query| data.get(q).map(|s| s.values().sum::<f64>());
        let counts: HashMap<u32, Counts> = self
            .burn
            .iter()
            .filter_map(|(w, t, e)| {
                Some((
                    *w,
                    Counts {
                        total: sum(t)?,
                        errors: sum(e).unwrap_or(0.0),
                    },
                ))
            })
            .collect();
        Some(burn::evaluate(&slo, |w| counts.get(&w).copied()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_objective_is_due_again_at_the_next_period_boundary() {
        assert_eq!(next_due(1_000_030, 60), 1_000_080);
        assert_eq!(next_due(1_000_020, 300), 1_000_200);
        assert_eq!(next_due(1_000_200, 300), 1_000_500);
    }

    #[test]
    fn the_range_covers_complete_periods_only() {
        let req = crate::domain::objective::ObjectiveRequest {
            metric: Some("latency_p99".into()),
            critical: Some(1.0),
            period_seconds: Some(300),
            ..Default::default()
        };
        let o = Objective::parse("svc", "o", &req).unwrap();
        let plan = Plan::new(&o, 1_800_060);
        let q = &plan.inputs[0];
        assert_eq!(
            (q.start, q.end, q.period),
            (1_800_000 - 5 * 300, 1_800_000, 300)
        );
        assert_eq!(plan.starts.len(), 5);
        assert_eq!(*plan.starts.last().unwrap(), 1_800_000 - 300);
        assert!(plan.burn.is_empty());
    }
}
