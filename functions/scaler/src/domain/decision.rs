//! What a decision records, so "why did it scale" is answered by the record alone, and
//! what the scaler remembers between ticks to decide the next one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::policy::{Actuator, MetricKind};

/// The rule that settled the desired count (the last one that changed it), or `none`
/// when the recommendation went through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// Every metric was within `tolerance` of its target (or above its `scale_down_below`).
    Tolerance,
    /// Held by the highest (down) or lowest (up) recommendation within the window.
    Stabilization,
    /// The last change in this direction was too recent.
    Cooldown,
    /// `max_step` capped how far this decision moved.
    Step,
    Min,
    Max,
    /// A metric had no data: never scale down on it (and `fallback` raised the count).
    MissingMetrics,
    /// The policy disables scaling in this direction.
    Disabled,
    None,
}

/// Why a metric gave no recommendation of its own (it then votes to keep the count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skipped {
    WithinTolerance,
    AboveScaleDownThreshold,
    Missing,
    NoInstances,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDecision {
    pub metric: MetricKind,
    pub value: Option<f64>,
    pub target: f64,
    /// `ceil(current × value / target)`, or the count it votes to keep when skipped.
    pub recommendation: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Skipped>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricForecast {
    pub metric: MetricKind,
    pub value: f64,
    pub recommendation: u32,
}

/// The forecast recorded beside a decision (`predictive: forecast_only` or `on`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// `holt_linear`: Holt's linear trend method.
    pub method: String,
    pub horizon_seconds: u32,
    pub per_metric: Vec<MetricForecast>,
    pub recommendation: Option<u32>,
    /// Whether it raised this decision's recommendation (`predictive: on` only).
    pub applied: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActuationStatus {
    /// Recorded, not yet (successfully) sent: the next tick sends it.
    Pending,
    Succeeded,
    Failed,
}

/// The actuator call a decision asked for, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Actuation {
    pub actuator: Actuator,
    pub desired: u32,
    pub status: ActuationStatus,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub at: String,
    /// Healthy instances with an unexpired lease.
    pub current: u32,
    /// The desired count before this decision (the current count before the first).
    pub previous: u32,
    pub desired: u32,
    pub per_metric: Vec<MetricDecision>,
    pub limited_by: Limit,
    /// On a scale-down: which instances to remove, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<Forecast>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actuation: Option<Actuation>,
}

impl Decision {
    pub fn changed(&self) -> bool {
        self.desired != self.previous
    }

    /// Worth a line in the history: it moved, was held by a rule, or named instances.
    /// Ticks that keep the count with nothing to say only update the latest decision.
    pub fn worth_keeping(&self, last: Option<&Decision>) -> bool {
        match last {
            None => true,
            Some(l) => {
                self.changed()
                    || self.limited_by != l.limited_by
                    || self.desired != l.desired
                    || self.current != l.current
                    || !self.remove.is_empty()
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedRecommendation {
    pub at_ms: i64,
    pub count: u32,
}

/// Most recommendations kept: an hour of one-minute ticks, plus room for manual ones.
pub const MAX_HISTORY: usize = 120;

/// What the scaler remembers about a service between ticks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub desired: Option<u32>,
    #[serde(default)]
    pub recommendations: Vec<TimedRecommendation>,
    #[serde(default)]
    pub last_scale_up_at_ms: Option<i64>,
    #[serde(default)]
    pub last_scale_down_at_ms: Option<i64>,
    /// When the scaler first saw each live instance: its join time when the registry
    /// does not record one.
    #[serde(default)]
    pub first_seen_ms: BTreeMap<String, i64>,
    #[serde(default)]
    pub actuation: Option<Actuation>,
    #[serde(default)]
    pub last_decision: Option<Decision>,
    /// The history key of the decision `actuation` belongs to, so its outcome is recorded
    /// there too.
    #[serde(default)]
    pub actuation_decision_key: Option<String>,
}

impl State {
    /// When an instance joined: as the registry recorded it, else when first seen.
    pub fn joined_at(&self, instance_id: &str, registered_at_ms: Option<i64>, now_ms: i64) -> i64 {
        registered_at_ms
            .or_else(|| self.first_seen_ms.get(instance_id).copied())
            .unwrap_or(now_ms)
    }

    /// The desired count an actuator still has to be told, if any: a decision changed it
    /// and no call has succeeded since.
    pub fn pending_actuation(&self) -> Option<&Actuation> {
        self.actuation
            .as_ref()
            .filter(|a| a.status != ActuationStatus::Succeeded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(previous: u32, desired: u32, limited_by: Limit) -> Decision {
        Decision {
            at: "t".into(),
            current: previous,
            previous,
            desired,
            per_metric: vec![],
            limited_by,
            remove: vec![],
            forecast: None,
            actuation: None,
        }
    }

    #[test]
    fn quiet_ticks_are_not_kept_in_the_history() {
        let steady = decision(3, 3, Limit::Tolerance);
        assert!(steady.worth_keeping(None));
        assert!(!steady.worth_keeping(Some(&steady)));
        assert!(decision(3, 4, Limit::None).worth_keeping(Some(&steady)));
        assert!(decision(3, 3, Limit::Cooldown).worth_keeping(Some(&steady)));
    }

    #[test]
    fn the_record_has_the_documented_shape() {
        let v = serde_json::to_value(decision(2, 4, Limit::MissingMetrics)).unwrap();
        assert_eq!(v["limited_by"], "missing_metrics");
        assert!(v.get("remove").is_none() && v.get("forecast").is_none());
        for key in ["at", "current", "desired", "per_metric"] {
            assert!(v.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn join_time_prefers_the_registry() {
        let mut s = State::default();
        s.first_seen_ms.insert("a".into(), 50);
        assert_eq!(s.joined_at("a", Some(10), 99), 10);
        assert_eq!(s.joined_at("a", None, 99), 50);
        assert_eq!(s.joined_at("b", None, 99), 99);
    }
}
