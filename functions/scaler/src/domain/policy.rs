//! What a scaling policy is: the request body as sent, the rules that make it valid, and
//! the seed's defaults for every field left out.

use serde::{Deserialize, Serialize};

/// The most instances a policy may ask for: past this a typo (`max: 10000`) is likelier
/// than a plan, and an actuator would happily launch them.
pub const MAX_INSTANCES_CAP: u32 = 1000;
pub const DEFAULT_MIN: u32 = 1;
pub const DEFAULT_MAX: u32 = 10;
pub const DEFAULT_TOLERANCE: f64 = 0.1;
pub const DEFAULT_SCALE_UP_COOLDOWN_SECONDS: u32 = 300;
pub const DEFAULT_SCALE_DOWN_COOLDOWN_SECONDS: u32 = 600;
pub const DEFAULT_SCALE_UP_STABILIZATION_SECONDS: u32 = 0;
pub const DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS: u32 = 300;
pub const MAX_STABILIZATION_SECONDS: u32 = 3600;
pub const MAX_COOLDOWN_SECONDS: u32 = 86_400;

/// A metric a policy can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Average CPU utilisation of the instances, 0–100.
    CpuPercent,
    /// Average memory utilisation of the instances, 0–100.
    MemoryPercent,
    /// Requests per second each instance serves, on average.
    RequestsPerInstance,
    /// The instances' 95th-percentile response time, averaged, in milliseconds.
    LatencyMsP95,
}

impl MetricKind {
    pub const ALL: [MetricKind; 4] = [
        MetricKind::CpuPercent,
        MetricKind::MemoryPercent,
        MetricKind::RequestsPerInstance,
        MetricKind::LatencyMsP95,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::CpuPercent => "cpu_percent",
            MetricKind::MemoryPercent => "memory_percent",
            MetricKind::RequestsPerInstance => "requests_per_instance",
            MetricKind::LatencyMsP95 => "latency_ms_p95",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == raw)
    }

    pub fn is_percent(self) -> bool {
        matches!(self, MetricKind::CpuPercent | MetricKind::MemoryPercent)
    }
}

/// One metric target: scale so that `value` sits at `target` (Kubernetes HPA).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricTarget {
    pub metric: MetricKind,
    pub target: f64,
    /// Hysteresis, the seed's separate down threshold: below `target` this metric asks for
    /// fewer instances only once its value is under this. Absent: the tolerance band alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_below: Option<f64>,
    /// Overrides the direction's cooldown when this metric drives the change (the seed's
    /// requests policy reacted after 2 minutes, not 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_seconds: Option<u32>,
}

/// How far one decision may move, as HPA's policies with `selectPolicy: Max`: the larger
/// of `instances` and `percent` of the current count (rounded up) when both are given.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
}

impl StepLimit {
    /// The most instances a decision may add or remove from `base`; at least one.
    pub fn allowed(&self, base: u32) -> u32 {
        let by_count = self.instances.unwrap_or(0);
        let by_percent = self
            .percent
            .map(|p| ceil_u32(f64::from(base) * p / 100.0))
            .unwrap_or(0);
        by_count.max(by_percent).max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Behavior {
    pub stabilization_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_step: Option<StepLimit>,
    pub cooldown_seconds: u32,
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingMetrics {
    /// Keep the count.
    Hold,
    /// Move up to `fallback_instances` (KEDA's fallback); never down.
    Fallback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predictive {
    Off,
    /// Forecast and record it beside the decision, but decide on what is.
    ForecastOnly,
    /// The forecast may raise (never lower) the recommendation.
    On,
}

/// What acts on a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actuator {
    /// `UpdateService` desired count of an ECS service.
    Ecs { cluster: String, service: String },
    /// `SetDesiredCapacity` of an EC2 Auto Scaling group.
    AutoscalingGroup { name: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingPolicy {
    pub min: u32,
    pub max: u32,
    pub metrics: Vec<MetricTarget>,
    pub tolerance: f64,
    pub scale_up: Behavior,
    pub scale_down: Behavior,
    pub missing_metrics: MissingMetrics,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_instances: Option<u32>,
    pub predictive: Predictive,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actuator: Option<Actuator>,
}

/// The seed's metric targets: cpu 80 % up / 30 % down, memory 90 %, 1,000 requests per
/// instance (reacting after 2 minutes), 500 ms response time.
pub fn default_metrics() -> Vec<MetricTarget> {
    vec![
        MetricTarget {
            metric: MetricKind::CpuPercent,
            target: 80.0,
            scale_down_below: Some(30.0),
            cooldown_seconds: None,
        },
        MetricTarget {
            metric: MetricKind::MemoryPercent,
            target: 90.0,
            scale_down_below: None,
            cooldown_seconds: None,
        },
        MetricTarget {
            metric: MetricKind::RequestsPerInstance,
            target: 1000.0,
            scale_down_below: None,
            cooldown_seconds: Some(120),
        },
        MetricTarget {
            metric: MetricKind::LatencyMsP95,
            target: 500.0,
            scale_down_below: None,
            cooldown_seconds: None,
        },
    ]
}

/// `ceil` for counts, a hair of tolerance so `2 × 75 / 50` is 3, not 4 from rounding.
pub fn ceil_u32(x: f64) -> u32 {
    if !x.is_finite() || x <= 0.0 {
        return 0;
    }
    let c = (x - 1e-9).ceil();
    if c >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        c as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn step_limits_take_the_larger_of_count_and_percent() {
        let step = |instances, percent| StepLimit { instances, percent };
        let cases = [
            (step(Some(4), None), 10, 4),
            (step(None, Some(50.0)), 10, 5),
            (step(None, Some(50.0)), 3, 2),
            (step(Some(1), Some(100.0)), 6, 6),
            (step(Some(8), Some(10.0)), 6, 8),
            (step(None, Some(10.0)), 0, 1),
        ];
        for (limit, base, allowed) in cases {
            assert_eq!(limit.allowed(base), allowed, "{limit:?} from {base}");
        }
    }

    proptest! {
        #[test]
        fn ceil_never_undershoots(x in 0.0f64..1e6) {
            let c = ceil_u32(x);
            prop_assert!(f64::from(c) + 1e-6 >= x);
            prop_assert!(f64::from(c) < x + 1.0);
        }

    }
}
