//! The decision itself, Kubernetes HPA's algorithm over the registry's capacity:
//!
//! 1. per metric, `ceil(current × value / target)`, or "keep" within `tolerance`;
//!    the largest across metrics wins;
//! 2. a missing metric never scales down (`hold`), `fallback` raises to
//!    `fallback_instances`; zero instances start at `min`;
//! 3. `predictive: on` may raise (never lower) it to the forecast's recommendation;
//! 4. stabilization: down to the highest recommendation within the down window, up to
//!    the lowest within the up window;
//! 5. per direction: disabled, cooldown since the last change that way, step limit;
//! 6. clamp to `[min, max]`.

use std::collections::BTreeMap;

use super::decision::{
    Actuation, ActuationStatus, Decision, Forecast, Limit, MAX_HISTORY, MetricDecision,
    MetricForecast, Skipped, State, TimedRecommendation,
};
use super::forecast::HoltForecast;
use super::instances::{InstanceView, healthy_count, pick_removals};
use super::policy::{
    Behavior, MetricKind, MetricTarget, MissingMetrics, Predictive, ScalingPolicy, ceil_u32,
};

/// How many periods ahead a forecast looks.
pub const FORECAST_PERIODS: u32 = 3;

/// What CloudWatch says about one metric.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricReading {
    /// The newest value, if it is recent enough to act on.
    pub latest: Option<f64>,
    /// One value per period, oldest first, for forecasting.
    pub history: Vec<f64>,
}

/// Everything a decision looks at, gathered by the caller.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    pub now_ms: i64,
    /// `now_ms` as the record shows it (RFC 3339).
    pub at: String,
    pub instances: &'a [InstanceView],
    pub metrics: BTreeMap<MetricKind, MetricReading>,
    pub period_seconds: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub decision: Decision,
    pub state: State,
}

/// The decision for `obs` under `policy`, and the state to remember for the next one.
pub fn evaluate(policy: &ScalingPolicy, state: &State, obs: &Observation) -> Evaluation {
    let now = obs.now_ms;
    let current = healthy_count(obs.instances, now);
    let base = state.desired.unwrap_or(current);
    let reactive = if current == 0 {
        zero_instances(policy, base, obs)
    } else {
        per_metric(policy, current, base, obs)
    };
    let mut raw = reactive.count;
    let mut limit = reactive.limit;

    let mut forecast = forecast(policy, current, base, obs);
    if let Some(f) = &mut forecast
        && policy.predictive == Predictive::On
        && let Some(predicted) = f.recommendation
        && predicted > raw
    {
        raw = predicted;
        limit = Limit::None;
        f.applied = true;
    }

    // Stabilization over the recommendations of the windows (HPA's
    // stabilizeRecommendationWithBehaviors).
    let within = |seconds: u32| {
        let cutoff = now - i64::from(seconds) * 1000;
        state
            .recommendations
            .iter()
            .filter(move |r| r.at_ms > cutoff)
            .map(|r| r.count)
    };
    let up_floor = within(policy.scale_up.stabilization_seconds).fold(raw, u32::min);
    let down_ceiling = within(policy.scale_down.stabilization_seconds).fold(raw, u32::max);
    let mut desired = base.max(up_floor).min(down_ceiling);
    if desired != raw {
        limit = Limit::Stabilization;
    }

    if desired > base {
        let cooldown = cooldown_for(&policy.scale_up, reactive.driver);
        (desired, limit) = direction(
            &policy.scale_up,
            state.last_scale_up_at_ms,
            cooldown,
            now,
            base,
            desired,
            limit,
            |base, step| base.saturating_add(step),
        );
    } else if desired < base {
        let cooldown = cooldown_for(&policy.scale_down, reactive.driver);
        (desired, limit) = direction(
            &policy.scale_down,
            state.last_scale_down_at_ms,
            cooldown,
            now,
            base,
            desired,
            limit,
            |base, step| base.saturating_sub(step),
        );
    }
    if desired < policy.min {
        desired = policy.min;
        limit = Limit::Min;
    } else if desired > policy.max {
        desired = policy.max;
        limit = Limit::Max;
    }

    let remove = if desired < base {
        let live = obs.instances.iter().filter(|i| i.is_live(now)).count();
        let protected_after = now - i64::from(policy.scale_up.stabilization_seconds) * 1000;
        pick_removals(
            obs.instances,
            live.saturating_sub(desired as usize),
            now,
            protected_after,
        )
    } else {
        Vec::new()
    };

    let mut next = state.clone();
    next.desired = Some(desired);
    if desired > base {
        next.last_scale_up_at_ms = Some(now);
    } else if desired < base {
        next.last_scale_down_at_ms = Some(now);
    }
    let keep_ms = i64::from(
        policy
            .scale_up
            .stabilization_seconds
            .max(policy.scale_down.stabilization_seconds),
    ) * 1000;
    next.recommendations.retain(|r| r.at_ms > now - keep_ms);
    next.recommendations.push(TimedRecommendation {
        at_ms: now,
        count: raw,
    });
    let overflow = next.recommendations.len().saturating_sub(MAX_HISTORY);
    next.recommendations.drain(..overflow);
    next.first_seen_ms = obs
        .instances
        .iter()
        .filter(|i| i.is_live(now))
        .map(|i| {
            let seen = state.first_seen_ms.get(&i.instance_id).copied();
            (i.instance_id.clone(), seen.unwrap_or(now))
        })
        .collect();

    let mut decision = Decision {
        at: obs.at.clone(),
        current,
        previous: base,
        desired,
        per_metric: reactive.per_metric,
        limited_by: limit,
        remove,
        forecast,
        actuation: None,
    };
    if decision.changed()
        && let Some(actuator) = &policy.actuator
    {
        let actuation = Actuation {
            actuator: actuator.clone(),
            desired,
            status: ActuationStatus::Pending,
            attempts: 0,
            at: None,
            error: None,
        };
        decision.actuation = Some(actuation.clone());
        next.actuation = Some(actuation);
    }
    next.last_decision = Some(decision.clone());
    Evaluation {
        decision,
        state: next,
    }
}

struct Reactive<'p> {
    count: u32,
    limit: Limit,
    per_metric: Vec<MetricDecision>,
    /// The metric whose recommendation won, for its cooldown override.
    driver: Option<&'p MetricTarget>,
}

/// No instance to divide by: start at `min`, or keep what was asked (the orchestrator is
/// replacing instances that died).
fn zero_instances<'p>(policy: &'p ScalingPolicy, base: u32, obs: &Observation) -> Reactive<'p> {
    let per_metric = policy
        .metrics
        .iter()
        .map(|t| MetricDecision {
            metric: t.metric,
            value: obs.metrics.get(&t.metric).and_then(|r| r.latest),
            target: t.target,
            recommendation: None,
            skipped: Some(Skipped::NoInstances),
        })
        .collect();
    Reactive {
        count: base.max(policy.min),
        limit: if base < policy.min {
            Limit::Min
        } else {
            Limit::None
        },
        per_metric,
        driver: None,
    }
}

fn per_metric<'p>(
    policy: &'p ScalingPolicy,
    current: u32,
    base: u32,
    obs: &Observation,
) -> Reactive<'p> {
    let mut per_metric = Vec::with_capacity(policy.metrics.len());
    let mut best: Option<(u32, &MetricTarget)> = None;
    // What the metrics would say without tolerance, to tell whether it held them.
    let mut untolerated: Option<u32> = None;
    let mut missing = false;
    for t in &policy.metrics {
        let value = obs.metrics.get(&t.metric).and_then(|r| r.latest);
        let (recommendation, skipped) = match value {
            None => {
                missing = true;
                (None, Some(Skipped::Missing))
            }
            Some(v) => {
                let (proposed, skipped) = recommend(t, v, current, base, policy.tolerance);
                untolerated = untolerated.max(Some(ceil_u32(f64::from(current) * v / t.target)));
                (Some(proposed), skipped)
            }
        };
        if let Some(r) = recommendation
            && skipped.is_none()
            && best.is_none_or(|(b, _)| r > b)
        {
            best = Some((r, t));
        }
        per_metric.push(MetricDecision {
            metric: t.metric,
            value,
            target: t.target,
            recommendation,
            skipped,
        });
    }
    let voted = per_metric.iter().filter_map(|m| m.recommendation).max();
    let mut count = voted.unwrap_or(base);
    let mut limit = match untolerated {
        Some(u) if u != count && voted.is_some() => Limit::Tolerance,
        _ => Limit::None,
    };
    if missing {
        let mut floor = base;
        if policy.missing_metrics == MissingMetrics::Fallback {
            floor = floor.max(policy.fallback_instances.unwrap_or(0));
        }
        if floor > count || voted.is_none() {
            limit = Limit::MissingMetrics;
        }
        count = count.max(floor);
    }
    Reactive {
        count,
        limit,
        per_metric,
        driver: best.map(|(_, t)| t),
    }
}

/// One metric's recommendation: HPA's formula, or `base` (keep) when within tolerance or
/// above its scale-down threshold.
fn recommend(
    t: &MetricTarget,
    value: f64,
    current: u32,
    base: u32,
    tolerance: f64,
) -> (u32, Option<Skipped>) {
    let ratio = value / t.target;
    if (ratio - 1.0).abs() <= tolerance {
        return (base, Some(Skipped::WithinTolerance));
    }
    if ratio < 1.0 && t.scale_down_below.is_some_and(|below| value >= below) {
        return (base, Some(Skipped::AboveScaleDownThreshold));
    }
    (ceil_u32(f64::from(current) * ratio), None)
}

fn cooldown_for(behavior: &Behavior, driver: Option<&MetricTarget>) -> u32 {
    driver
        .and_then(|t| t.cooldown_seconds)
        .unwrap_or(behavior.cooldown_seconds)
}

/// Disabled, cooldown and step limit for one direction; `step` moves `base` by a count.
#[allow(clippy::too_many_arguments)]
fn direction(
    behavior: &Behavior,
    last_change_ms: Option<i64>,
    cooldown_seconds: u32,
    now: i64,
    base: u32,
    desired: u32,
    limit: Limit,
    step: impl Fn(u32, u32) -> u32,
) -> (u32, Limit) {
    if behavior.disabled {
        return (base, Limit::Disabled);
    }
    if last_change_ms.is_some_and(|at| now < at + i64::from(cooldown_seconds) * 1000) {
        return (base, Limit::Cooldown);
    }
    if let Some(limit_step) = behavior.max_step {
        let bound = step(base, limit_step.allowed(base));
        let capped = if desired > base {
            desired.min(bound)
        } else {
            desired.max(bound)
        };
        if capped != desired {
            return (capped, Limit::Step);
        }
    }
    (desired, limit)
}

/// Holt's forecast of every metric `FORECAST_PERIODS` ahead, and the count it implies.
fn forecast(
    policy: &ScalingPolicy,
    current: u32,
    base: u32,
    obs: &Observation,
) -> Option<Forecast> {
    if policy.predictive == Predictive::Off || current == 0 {
        return None;
    }
    let per_metric: Vec<MetricForecast> = policy
        .metrics
        .iter()
        .filter_map(|t| {
            let reading = obs.metrics.get(&t.metric)?;
            let mut value = HoltForecast::fit(&reading.history)?.at(FORECAST_PERIODS);
            if t.metric.is_percent() {
                value = value.min(100.0);
            }
            let (recommendation, _) = recommend(t, value, current, base, policy.tolerance);
            Some(MetricForecast {
                metric: t.metric,
                value,
                recommendation,
            })
        })
        .collect();
    let recommendation = per_metric.iter().map(|m| m.recommendation).max();
    Some(Forecast {
        method: "holt_linear".into(),
        horizon_seconds: FORECAST_PERIODS * obs.period_seconds,
        applied: false,
        per_metric,
        recommendation,
    })
}

#[cfg(test)]
#[path = "recommend_tests.rs"]
mod tests;
