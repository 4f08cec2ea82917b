//! The algorithm, rule by rule, with scripted ticks.

use super::*;
use crate::domain::instances::{Health, instance};
use crate::domain::parse::PolicyRequest;
use crate::domain::policy::Actuator;

const MINUTE: i64 = 60_000;

fn policy(json: serde_json::Value) -> ScalingPolicy {
    let req: PolicyRequest = serde_json::from_value(json).unwrap();
    ScalingPolicy::parse(&req).unwrap()
}

/// One cpu target of 50 %, no cooldowns or windows unless a test asks for them.
fn cpu50(extra: serde_json::Value) -> ScalingPolicy {
    let mut body = serde_json::json!({
        "min": 1, "max": 20,
        "metrics": [{"metric": "cpu_percent", "target": 50}],
        "scale_up": {"cooldown_seconds": 0},
        "scale_down": {"stabilization_seconds": 0, "cooldown_seconds": 0},
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    policy(body)
}

fn fleet(n: usize) -> Vec<InstanceView> {
    (0..n)
        .map(|i| instance(&format!("i{i}"), Health::Passing, 10.0 * i as f64))
        .collect()
}

fn readings(values: &[(MetricKind, f64)]) -> BTreeMap<MetricKind, MetricReading> {
    values
        .iter()
        .map(|(m, v)| {
            (
                *m,
                MetricReading {
                    latest: Some(*v),
                    history: vec![],
                },
            )
        })
        .collect()
}

fn cpu(v: f64) -> BTreeMap<MetricKind, MetricReading> {
    readings(&[(MetricKind::CpuPercent, v)])
}

/// A scaler remembering its state across scripted ticks.
struct Sim {
    policy: ScalingPolicy,
    state: State,
    now_ms: i64,
}

impl Sim {
    fn new(policy: ScalingPolicy) -> Self {
        Self {
            policy,
            state: State::default(),
            now_ms: 10 * MINUTE,
        }
    }

    fn tick(
        &mut self,
        instances: &[InstanceView],
        metrics: BTreeMap<MetricKind, MetricReading>,
    ) -> Decision {
        let obs = Observation {
            now_ms: self.now_ms,
            at: format!("t+{}", self.now_ms),
            instances,
            metrics,
            period_seconds: 60,
        };
        let e = evaluate(&self.policy, &self.state, &obs);
        self.state = e.state;
        self.now_ms += MINUTE;
        e.decision
    }
}

fn once(p: ScalingPolicy, n: usize, metrics: BTreeMap<MetricKind, MetricReading>) -> Decision {
    Sim::new(p).tick(&fleet(n), metrics)
}

#[test]
fn the_hpa_formula_with_tolerance() {
    // (current, cpu, tolerance) -> (desired, limited_by)
    let cases = [
        (2, 90.0, 0.1, 4, Limit::None),      // ceil(2 × 90/50) = 4
        (4, 75.0, 0.1, 6, Limit::None),      // exactly 6, not 7 from rounding
        (3, 10.0, 0.1, 1, Limit::None),      // ceil(0.6) = 1
        (2, 54.0, 0.1, 2, Limit::Tolerance), // 1.08 is within 10 %: would be 3
        (2, 56.0, 0.1, 3, Limit::None),      // 1.12 is not
        (2, 54.0, 0.0, 3, Limit::None),
        (20, 46.0, 0.1, 20, Limit::Tolerance), // would be 19
        (2, 50.0, 0.1, 2, Limit::None),        // on target: nothing to hold back
        (3, 0.0, 0.1, 1, Limit::Min),          // ceil(0) = 0, clamped
    ];
    for (current, value, tolerance, desired, limit) in cases {
        let d = once(
            cpu50(serde_json::json!({"tolerance": tolerance})),
            current,
            cpu(value),
        );
        assert_eq!(
            (d.desired, d.limited_by),
            (desired, limit),
            "{current} at {value}% tol {tolerance}"
        );
    }
}

#[test]
fn the_largest_recommendation_across_metrics_wins() {
    let p = policy(serde_json::json!({
        "metrics": [
            {"metric": "cpu_percent", "target": 50},
            {"metric": "memory_percent", "target": 50},
            {"metric": "requests_per_instance", "target": 100},
            {"metric": "latency_ms_p95", "target": 200},
        ],
        "max": 50,
        "scale_down": {"stabilization_seconds": 0},
    }));
    let d = once(
        p.clone(),
        4,
        readings(&[
            (MetricKind::CpuPercent, 25.0),           // 2
            (MetricKind::MemoryPercent, 75.0),        // 6
            (MetricKind::RequestsPerInstance, 250.0), // 10
            (MetricKind::LatencyMsP95, 300.0),        // 6
        ]),
    );
    assert_eq!(d.desired, 10);
    let recs: Vec<_> = d.per_metric.iter().map(|m| m.recommendation).collect();
    assert_eq!(recs, [Some(2), Some(6), Some(10), Some(6)]);
    // A metric within tolerance votes to keep the count: the others cannot scale down
    // past it.
    let d = once(
        p,
        4,
        readings(&[
            (MetricKind::CpuPercent, 10.0),
            (MetricKind::MemoryPercent, 50.0),
            (MetricKind::RequestsPerInstance, 10.0),
            (MetricKind::LatencyMsP95, 10.0),
        ]),
    );
    assert_eq!(d.desired, 4);
    assert_eq!(d.per_metric[1].skipped, Some(Skipped::WithinTolerance));
}

#[test]
fn scale_down_below_keeps_the_count_between_the_thresholds() {
    // The seed's cpu 80 % up / 30 % down.
    let p = cpu50(
        serde_json::json!({"metrics": [{"metric": "cpu_percent", "target": 80, "scale_down_below": 30}]}),
    );
    let cases = [(95.0, 5), (60.0, 4), (31.0, 4), (20.0, 1)];
    for (value, desired) in cases {
        assert_eq!(once(p.clone(), 4, cpu(value)).desired, desired, "{value}");
    }
    let d = once(p, 4, cpu(60.0));
    assert_eq!(
        d.per_metric[0].skipped,
        Some(Skipped::AboveScaleDownThreshold)
    );
    assert_eq!(d.limited_by, Limit::Tolerance);
}

#[test]
fn scale_down_waits_for_the_highest_recommendation_in_its_window() {
    let mut sim = Sim::new(cpu50(
        serde_json::json!({"scale_down": {"stabilization_seconds": 180, "cooldown_seconds": 0}}),
    ));
    let four = fleet(4);
    // Recommendations 4, 2, 2, 2 a minute apart: the 4 holds the count until it is
    // more than 180 s old.
    let script = [
        (50.0, 4, Limit::None),
        (25.0, 4, Limit::Stabilization),
        (25.0, 4, Limit::Stabilization),
        (25.0, 2, Limit::None), // the 4 is exactly 180 s old: out
    ];
    for (i, (value, desired, limit)) in script.into_iter().enumerate() {
        let d = sim.tick(&four, cpu(value));
        assert_eq!((d.desired, d.limited_by), (desired, limit), "tick {i}");
    }
}

#[test]
fn scale_up_takes_the_lowest_recommendation_in_its_window() {
    let mut sim = Sim::new(cpu50(
        serde_json::json!({"scale_up": {"stabilization_seconds": 120, "cooldown_seconds": 0}}),
    ));
    let two = fleet(2);
    // 2 (on target), then a spike to 8 and 6: up to the lowest seen within 120 s.
    let script = [(50.0, 2), (200.0, 2), (150.0, 6), (150.0, 6)];
    for (i, (value, desired)) in script.into_iter().enumerate() {
        assert_eq!(sim.tick(&two, cpu(value)).desired, desired, "tick {i}");
    }
}

#[test]
fn cooldowns_count_from_the_last_change_in_that_direction() {
    let mut sim = Sim::new(cpu50(serde_json::json!({
        "scale_up": {"cooldown_seconds": 150},
        "scale_down": {"stabilization_seconds": 0, "cooldown_seconds": 0},
    })));
    let script: &[(usize, f64, u32, Limit)] = &[
        (2, 100.0, 4, Limit::None),     // t0: up
        (4, 100.0, 4, Limit::Cooldown), // t1: 8 wanted, 60 s since the last up
        (4, 100.0, 4, Limit::Cooldown), // t2: 120 s
        (4, 10.0, 1, Limit::None),      // t3: down is not cooled by an up
        (1, 200.0, 4, Limit::None),     // t4: 240 s since the last up
    ];
    for (i, (n, value, desired, limit)) in script.iter().enumerate() {
        let d = sim.tick(&fleet(*n), cpu(*value));
        assert_eq!((d.desired, d.limited_by), (*desired, *limit), "tick {i}");
    }
}

#[test]
fn a_metric_cooldown_applies_when_that_metric_drives() {
    let p = policy(serde_json::json!({
        "max": 50,
        "metrics": [
            {"metric": "cpu_percent", "target": 50},
            {"metric": "requests_per_instance", "target": 100, "cooldown_seconds": 60},
        ],
        "scale_up": {"cooldown_seconds": 300},
    }));
    let mut sim = Sim::new(p);
    let both = |c: f64, r: f64| {
        readings(&[
            (MetricKind::CpuPercent, c),
            (MetricKind::RequestsPerInstance, r),
        ])
    };
    assert_eq!(sim.tick(&fleet(2), both(50.0, 200.0)).desired, 4);
    // 60 s later: requests drive, their 60 s cooldown has passed.
    assert_eq!(sim.tick(&fleet(4), both(50.0, 200.0)).desired, 8);
    // cpu drives now: its cooldown is the direction's 300 s.
    let d = sim.tick(&fleet(8), both(100.0, 100.0));
    assert_eq!((d.desired, d.limited_by), (8, Limit::Cooldown));
}

#[test]
fn step_limits_cap_each_direction() {
    let cases: &[(serde_json::Value, usize, f64, u32)] = &[
        (
            serde_json::json!({"scale_up": {"cooldown_seconds": 0, "max_step": {"instances": 2}}}),
            2,
            200.0,
            4,
        ),
        (
            serde_json::json!({"scale_up": {"cooldown_seconds": 0, "max_step": {"percent": 50}}}),
            4,
            200.0,
            6,
        ),
        (
            serde_json::json!({"scale_up": {"cooldown_seconds": 0, "max_step": {"instances": 1, "percent": 100}}}),
            4,
            250.0,
            8,
        ),
        (
            serde_json::json!({"scale_down": {"stabilization_seconds": 0, "cooldown_seconds": 0, "max_step": {"instances": 1}}}),
            8,
            5.0,
            7,
        ),
        (
            serde_json::json!({"scale_down": {"stabilization_seconds": 0, "cooldown_seconds": 0, "max_step": {"percent": 25}}}),
            8,
            5.0,
            6,
        ),
    ];
    for (extra, n, value, desired) in cases {
        let d = once(cpu50(extra.clone()), *n, cpu(*value));
        assert_eq!(
            (d.desired, d.limited_by),
            (*desired, Limit::Step),
            "{extra}"
        );
    }
    // Within the step: no limit reported.
    let d = once(
        cpu50(
            serde_json::json!({"scale_up": {"cooldown_seconds": 0, "max_step": {"instances": 5}}}),
        ),
        2,
        cpu(100.0),
    );
    assert_eq!((d.desired, d.limited_by), (4, Limit::None));
}

#[test]
fn disabled_scale_down_keeps_the_count() {
    let d = once(
        cpu50(serde_json::json!({"scale_down": {"disabled": true, "stabilization_seconds": 0}})),
        6,
        cpu(5.0),
    );
    assert_eq!((d.desired, d.limited_by), (6, Limit::Disabled));
}

#[test]
fn the_count_is_clamped_to_min_and_max() {
    let cases = [
        (2, 500.0, 5, Limit::Max),
        (6, 1.0, 3, Limit::Min),
        (4, 50.0, 4, Limit::None),
    ];
    for (n, value, desired, limit) in cases {
        let d = once(
            cpu50(serde_json::json!({"min": 3, "max": 5})),
            n,
            cpu(value),
        );
        assert_eq!(
            (d.desired, d.limited_by),
            (desired, limit),
            "{n} at {value}"
        );
    }
}

#[test]
fn zero_instances_start_at_min_without_dividing() {
    let d = once(cpu50(serde_json::json!({"min": 2})), 0, cpu(90.0));
    assert_eq!((d.current, d.desired, d.limited_by), (0, 2, Limit::Min));
    assert_eq!(d.per_metric[0].skipped, Some(Skipped::NoInstances));
    // Instances that died while 5 were asked for: keep asking for 5.
    let mut sim = Sim::new(cpu50(serde_json::json!({})));
    sim.tick(&fleet(5), cpu(50.0));
    let d = sim.tick(&[], BTreeMap::new());
    assert_eq!((d.current, d.desired), (0, 5));
}

#[test]
fn missing_metrics_hold_and_never_scale_down() {
    let two = serde_json::json!({"metrics": [{"metric": "cpu_percent", "target": 50}, {"metric": "memory_percent", "target": 50}]});
    // memory missing, cpu wants fewer: held.
    let d = once(cpu50(two.clone()), 4, cpu(10.0));
    assert_eq!((d.desired, d.limited_by), (4, Limit::MissingMetrics));
    assert_eq!(d.per_metric[1].skipped, Some(Skipped::Missing));
    // cpu wants more: a present metric may still scale up.
    assert_eq!(once(cpu50(two.clone()), 4, cpu(100.0)).desired, 8);
    // nothing at all: keep the count.
    let d = once(cpu50(two), 4, BTreeMap::new());
    assert_eq!((d.desired, d.limited_by), (4, Limit::MissingMetrics));
}

#[test]
fn missing_metrics_fallback_raises_to_fallback_instances_only() {
    let fb = |n: u32| serde_json::json!({"missing_metrics": "fallback", "fallback_instances": n});
    let d = once(cpu50(fb(6)), 2, BTreeMap::new());
    assert_eq!((d.desired, d.limited_by), (6, Limit::MissingMetrics));
    // Above the fallback already: a missing metric never scales down.
    let d = once(cpu50(fb(3)), 8, BTreeMap::new());
    assert_eq!((d.desired, d.limited_by), (8, Limit::MissingMetrics));
}

fn ramp(start: f64, step: f64, n: usize) -> MetricReading {
    let history: Vec<f64> = (0..n).map(|i| start + step * i as f64).collect();
    MetricReading {
        latest: history.last().copied(),
        history,
    }
}

#[test]
fn predictive_on_raises_on_a_ramp_and_forecast_only_records() {
    // cpu 20, 25, ... 50 (on target now), heading for 65 in three periods.
    let metrics = BTreeMap::from([(MetricKind::CpuPercent, ramp(20.0, 5.0, 7))]);
    let off = once(cpu50(serde_json::json!({})), 4, metrics.clone());
    assert_eq!((off.desired, off.forecast.is_none()), (4, true));

    let only = once(
        cpu50(serde_json::json!({"predictive": "forecast_only"})),
        4,
        metrics.clone(),
    );
    let f = only.forecast.as_ref().unwrap();
    assert_eq!(only.desired, 4);
    assert!((f.per_metric[0].value - 65.0).abs() < 1.0, "{f:?}");
    assert_eq!(
        (f.recommendation, f.applied, f.horizon_seconds),
        (Some(6), false, 180)
    );
    assert_eq!(f.method, "holt_linear");

    let on = once(cpu50(serde_json::json!({"predictive": "on"})), 4, metrics);
    assert_eq!((on.desired, on.forecast.unwrap().applied), (6, true));
}

#[test]
fn a_forecast_never_lowers_the_recommendation() {
    // Falling from 100 to 70: now still above target, forecast says below.
    let metrics = BTreeMap::from([(MetricKind::CpuPercent, ramp(100.0, -5.0, 7))]);
    let d = once(cpu50(serde_json::json!({"predictive": "on"})), 4, metrics);
    assert_eq!(
        d.desired, 6,
        "ceil(4 × 70/50), not the forecast's lower count"
    );
    assert!(!d.forecast.unwrap().applied);
}

#[test]
fn a_scale_down_names_the_least_loaded_instances() {
    let mut instances = fleet(5); // loads 0, 10, 20, 30, 40
    instances[3].status = Health::Critical; // lease live, not counted as capacity
    let d = once(cpu50(serde_json::json!({})), 4, cpu(50.0));
    assert_eq!(
        d.remove,
        Vec::<String>::new(),
        "only a scale-down names instances"
    );
    let d = Sim::new(cpu50(serde_json::json!({}))).tick(&instances, cpu(20.0));
    // 4 healthy at 20 % → 2; 5 live, so 3 go: the critical one, then the least loaded.
    assert_eq!((d.current, d.desired), (4, 2));
    assert_eq!(d.remove, ["i3", "i0", "i1"]);
}

#[test]
fn instances_that_joined_within_the_scale_up_window_are_kept() {
    let mut sim = Sim::new(cpu50(
        serde_json::json!({"scale_up": {"stabilization_seconds": 90, "cooldown_seconds": 0}}),
    ));
    let old = fleet(2);
    sim.tick(&old, cpu(50.0));
    sim.now_ms += 2 * MINUTE;
    let mut four = old.clone();
    four.push(instance("new-a", Health::Passing, 0.0));
    four.push(instance("new-b", Health::Passing, 0.0));
    four.iter_mut()
        .for_each(|i| i.joined_at_ms = sim.state.joined_at(&i.instance_id, None, sim.now_ms));
    let d = sim.tick(&four, cpu(10.0));
    assert_eq!(d.desired, 1);
    assert_eq!(d.remove, ["i0", "i1"], "the idle newcomers are protected");
}

#[test]
fn a_change_with_an_actuator_is_pending_until_sent() {
    let ecs = serde_json::json!({"actuator": {"type": "ecs", "cluster": "c", "service": "s"}});
    let d = once(cpu50(ecs.clone()), 2, cpu(90.0));
    let a = d.actuation.unwrap();
    assert_eq!(
        (a.desired, a.status, a.actuator.clone()),
        (
            4,
            ActuationStatus::Pending,
            Actuator::Ecs {
                cluster: "c".into(),
                service: "s".into()
            }
        )
    );
    let mut sim = Sim::new(cpu50(ecs));
    let d = sim.tick(&fleet(2), cpu(50.0));
    assert_eq!(
        (d.changed(), d.actuation),
        (false, None),
        "no change, no call"
    );
    assert!(sim.state.pending_actuation().is_none());
    sim.tick(&fleet(2), cpu(90.0));
    assert_eq!(sim.state.pending_actuation().map(|a| a.desired), Some(4));
    // No actuator: the decision stands alone.
    assert!(
        once(cpu50(serde_json::json!({})), 2, cpu(90.0))
            .actuation
            .is_none()
    );
}

#[test]
fn the_first_decision_starts_from_the_current_count() {
    let mut sim = Sim::new(cpu50(serde_json::json!({})));
    let d = sim.tick(&fleet(3), cpu(50.0));
    assert_eq!((d.previous, d.desired, d.changed()), (3, 3, false));
    let d = sim.tick(&fleet(3), cpu(100.0));
    assert_eq!((d.previous, d.desired, d.changed()), (3, 6, true));
    // The orchestrator has not caught up: 3 instances, 6 asked for, on target → keep 6.
    let d = sim.tick(&fleet(3), cpu(52.0));
    assert_eq!((d.previous, d.desired), (6, 6));
}
