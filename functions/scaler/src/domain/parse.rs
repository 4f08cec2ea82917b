//! The policy body as sent, and the rules that turn it into a [`ScalingPolicy`]: every
//! field left out takes its documented default, every bad field is named at once.

use aloft_shared::FieldError;
use aloft_shared::dynamo::storable;

/// The smallest target, hysteresis level or step percent: a positive figure a person would
/// write, and one every later division by it survives.
pub const SMALLEST_POSITIVE: f64 = 0.001;
use aloft_shared::strict::{some, some_object, some_objects};
use serde::Deserialize;

use super::policy::{
    Actuator, Behavior, DEFAULT_MAX, DEFAULT_MIN, DEFAULT_SCALE_DOWN_COOLDOWN_SECONDS,
    DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS, DEFAULT_SCALE_UP_COOLDOWN_SECONDS,
    DEFAULT_SCALE_UP_STABILIZATION_SECONDS, DEFAULT_TOLERANCE, MAX_COOLDOWN_SECONDS,
    MAX_INSTANCES_CAP, MAX_STABILIZATION_SECONDS, MetricKind, MetricTarget, MissingMetrics,
    Predictive, ScalingPolicy, StepLimit, default_metrics,
};

// Numbers arrive as i64/f64 and enums as strings, so every bad field is named in one 422
// instead of serde stopping at the first. Every field is optional and none is nullable in
// the spec: a field sent as `null`, or a nested object written as an array, is a wrong
// type (422 naming it), never "left out".

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    #[serde(default, deserialize_with = "some")]
    pub min: Option<i64>,
    #[serde(default, deserialize_with = "some")]
    pub max: Option<i64>,
    #[serde(default, deserialize_with = "some_objects")]
    pub metrics: Option<Vec<MetricTargetRequest>>,
    #[serde(default, deserialize_with = "some")]
    pub tolerance: Option<f64>,
    #[serde(default, deserialize_with = "some_object")]
    pub scale_up: Option<BehaviorRequest>,
    #[serde(default, deserialize_with = "some_object")]
    pub scale_down: Option<BehaviorRequest>,
    #[serde(default, deserialize_with = "some")]
    pub missing_metrics: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub fallback_instances: Option<i64>,
    #[serde(default, deserialize_with = "some")]
    pub predictive: Option<String>,
    #[serde(default, deserialize_with = "some_object")]
    pub actuator: Option<ActuatorRequest>,
}

/// One of `metrics`, read only from an object (see [`some_objects`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricTargetRequest {
    pub metric: String,
    pub target: f64,
    #[serde(default, deserialize_with = "some")]
    pub scale_down_below: Option<f64>,
    #[serde(default, deserialize_with = "some")]
    pub cooldown_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviorRequest {
    #[serde(default, deserialize_with = "some")]
    pub stabilization_seconds: Option<i64>,
    #[serde(default, deserialize_with = "some_object")]
    pub max_step: Option<StepRequest>,
    #[serde(default, deserialize_with = "some")]
    pub cooldown_seconds: Option<i64>,
    #[serde(default, deserialize_with = "some")]
    pub disabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    #[serde(default, deserialize_with = "some")]
    pub instances: Option<i64>,
    #[serde(default, deserialize_with = "some")]
    pub percent: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActuatorRequest {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "some")]
    pub cluster: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub service: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub name: Option<String>,
}

/// Collects every bad field of one body.
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// `raw` as a u32 within `range`, or the error named.
    fn int(
        &mut self,
        field: &str,
        raw: Option<i64>,
        default: u32,
        range: std::ops::RangeInclusive<u32>,
    ) -> u32 {
        match raw {
            None => default,
            Some(v) if v >= i64::from(*range.start()) && v <= i64::from(*range.end()) => v as u32,
            Some(_) => {
                self.add(
                    field,
                    format!(
                        "must be an integer from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }
}

impl ScalingPolicy {
    /// The policy a body describes, every field left out taking its documented default;
    /// or every bad field, named.
    pub fn parse(req: &PolicyRequest) -> Result<Self, Vec<FieldError>> {
        let mut e = Errors(Vec::new());
        let min = e.int("min", req.min, DEFAULT_MIN, 1..=MAX_INSTANCES_CAP);
        let max = e.int("max", req.max, DEFAULT_MAX.max(min), 1..=MAX_INSTANCES_CAP);
        if req.min.is_some() && req.max.is_some() && min > max {
            e.add("max", "must be at least min");
        } else if req.max.is_some() && req.min.is_none() && max < min {
            e.add("max", "must be at least min (default 1)");
        }
        let metrics = match &req.metrics {
            None => default_metrics(),
            Some(list) => parse_metrics(&mut e, list),
        };
        let tolerance = match req.tolerance {
            None => DEFAULT_TOLERANCE,
            Some(t) if t.is_finite() && (0.0..1.0).contains(&t) => storable(t),
            Some(_) => {
                e.add("tolerance", "must be at least 0 and below 1");
                DEFAULT_TOLERANCE
            }
        };
        let scale_up = parse_behavior(
            &mut e,
            "scale_up",
            req.scale_up.as_ref(),
            DEFAULT_SCALE_UP_STABILIZATION_SECONDS,
            DEFAULT_SCALE_UP_COOLDOWN_SECONDS,
        );
        let scale_down = parse_behavior(
            &mut e,
            "scale_down",
            req.scale_down.as_ref(),
            DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS,
            DEFAULT_SCALE_DOWN_COOLDOWN_SECONDS,
        );
        let missing_metrics = match req.missing_metrics.as_deref() {
            None | Some("hold") => MissingMetrics::Hold,
            Some("fallback") => MissingMetrics::Fallback,
            Some(_) => {
                e.add("missing_metrics", "must be one of hold, fallback");
                MissingMetrics::Hold
            }
        };
        let fallback_instances = match (missing_metrics, req.fallback_instances) {
            (MissingMetrics::Fallback, None) => {
                e.add(
                    "fallback_instances",
                    "is required when missing_metrics is fallback",
                );
                None
            }
            (MissingMetrics::Fallback, Some(v)) => {
                if v < i64::from(min) || v > i64::from(max) {
                    e.add("fallback_instances", "must be from min to max");
                }
                Some(v.clamp(0, i64::from(MAX_INSTANCES_CAP)) as u32)
            }
            (MissingMetrics::Hold, Some(_)) => {
                e.add(
                    "fallback_instances",
                    "is only allowed when missing_metrics is fallback",
                );
                None
            }
            (MissingMetrics::Hold, None) => None,
        };
        let predictive = match req.predictive.as_deref() {
            None | Some("off") => Predictive::Off,
            Some("forecast_only") => Predictive::ForecastOnly,
            Some("on") => Predictive::On,
            Some(_) => {
                e.add("predictive", "must be one of off, forecast_only, on");
                Predictive::Off
            }
        };
        let actuator = req
            .actuator
            .as_ref()
            .and_then(|a| parse_actuator(&mut e, a));
        if !e.0.is_empty() {
            return Err(e.0);
        }
        Ok(Self {
            min,
            max,
            metrics,
            tolerance,
            scale_up,
            scale_down,
            missing_metrics,
            fallback_instances,
            predictive,
            actuator,
        })
    }

    pub fn target(&self, metric: MetricKind) -> Option<&MetricTarget> {
        self.metrics.iter().find(|m| m.metric == metric)
    }
}

fn parse_metrics(e: &mut Errors, list: &[MetricTargetRequest]) -> Vec<MetricTarget> {
    if list.is_empty() {
        e.add("metrics", "must name at least one metric");
    }
    let mut out: Vec<MetricTarget> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let field = |name: &str| format!("metrics[{i}].{name}");
        let Some(metric) = MetricKind::parse(&m.metric) else {
            e.add(
                field("metric"),
                "must be one of cpu_percent, memory_percent, requests_per_instance, latency_ms_p95",
            );
            continue;
        };
        if out.iter().any(|o| o.metric == metric) {
            e.add(field("metric"), "is listed twice");
        }
        let ceiling = if metric.is_percent() { 100.0 } else { 1e9 };
        let target_ok =
            m.target.is_finite() && m.target >= SMALLEST_POSITIVE && m.target <= ceiling;
        if !target_ok {
            e.add(
                field("target"),
                if metric.is_percent() {
                    "must be from 0.001 to 100 (a percentage)".to_owned()
                } else {
                    "must be from 0.001 to 1e9".to_owned()
                },
            );
        }
        if let Some(below) = m.scale_down_below
            && !(below.is_finite()
                && below >= SMALLEST_POSITIVE
                && (!target_ok || below < m.target))
        {
            e.add(
                field("scale_down_below"),
                "must be at least 0.001 and below target",
            );
        }
        let cooldown_seconds = match m.cooldown_seconds {
            None => None,
            Some(c) if (0..=i64::from(MAX_COOLDOWN_SECONDS)).contains(&c) => Some(c as u32),
            Some(_) => {
                e.add(
                    field("cooldown_seconds"),
                    format!("must be an integer from 0 to {MAX_COOLDOWN_SECONDS}"),
                );
                None
            }
        };
        out.push(MetricTarget {
            metric,
            // Stored as DynamoDB numbers, which cannot hold magnitudes below 1e-130.
            target: storable(m.target),
            scale_down_below: m.scale_down_below.map(storable),
            cooldown_seconds,
        });
    }
    out
}

fn parse_behavior(
    e: &mut Errors,
    name: &str,
    req: Option<&BehaviorRequest>,
    default_stabilization: u32,
    default_cooldown: u32,
) -> Behavior {
    let empty = BehaviorRequest::default();
    let req = req.unwrap_or(&empty);
    let stabilization_seconds = e.int(
        &format!("{name}.stabilization_seconds"),
        req.stabilization_seconds,
        default_stabilization,
        0..=MAX_STABILIZATION_SECONDS,
    );
    let cooldown_seconds = e.int(
        &format!("{name}.cooldown_seconds"),
        req.cooldown_seconds,
        default_cooldown,
        0..=MAX_COOLDOWN_SECONDS,
    );
    let max_step = req.max_step.as_ref().map(|s| {
        if s.instances.is_none() && s.percent.is_none() {
            e.add(
                format!("{name}.max_step"),
                "must give instances, percent or both",
            );
        }
        let instances = s.instances.map(|_| {
            e.int(
                &format!("{name}.max_step.instances"),
                s.instances,
                1,
                1..=MAX_INSTANCES_CAP,
            )
        });
        if let Some(p) = s.percent
            && !(p.is_finite() && (SMALLEST_POSITIVE..=1000.0).contains(&p))
        {
            e.add(
                format!("{name}.max_step.percent"),
                "must be from 0.001 to 1000",
            );
        }
        StepLimit {
            instances,
            percent: s.percent.map(storable),
        }
    });
    Behavior {
        stabilization_seconds,
        max_step,
        cooldown_seconds,
        disabled: req.disabled.unwrap_or(false),
    }
}

/// ECS names: 1–255 of letters, digits, `-` and `_`, or an ARN (`arn:` and up to 251
/// printable ASCII characters).
fn is_ecs_name(s: &str) -> bool {
    match s.strip_prefix("arn:") {
        Some(rest) => (1..=251).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_graphic()),
        None => {
            (1..=255).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
    }
}

/// Auto Scaling group names: 1–255 characters, no control characters.
fn is_group_name(s: &str) -> bool {
    (1..=255).contains(&s.chars().count()) && s.chars().all(|c| !c.is_control())
}

fn parse_actuator(e: &mut Errors, a: &ActuatorRequest) -> Option<Actuator> {
    let require = |e: &mut Errors, field: &str, v: &Option<String>, ok: fn(&str) -> bool| match v {
        Some(v) if ok(v) => Some(v.clone()),
        Some(_) => {
            e.add(
                format!("actuator.{field}"),
                "must be 1 to 255 characters of a valid name",
            );
            None
        }
        None => {
            e.add(format!("actuator.{field}"), "is required for this type");
            None
        }
    };
    let forbid = |e: &mut Errors, field: &str, v: &Option<String>| {
        if v.is_some() {
            e.add(
                format!("actuator.{field}"),
                "is not a field of this actuator type",
            );
        }
    };
    match a.kind.as_str() {
        "ecs" => {
            forbid(e, "name", &a.name);
            let cluster = require(e, "cluster", &a.cluster, is_ecs_name);
            let service = require(e, "service", &a.service, is_ecs_name);
            Some(Actuator::Ecs {
                cluster: cluster?,
                service: service?,
            })
        }
        "autoscaling_group" => {
            forbid(e, "cluster", &a.cluster);
            forbid(e, "service", &a.service);
            let name = require(e, "name", &a.name, is_group_name)?;
            Some(Actuator::AutoscalingGroup { name })
        }
        _ => {
            e.add("actuator.type", "must be one of ecs, autoscaling_group");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(json: serde_json::Value) -> Result<ScalingPolicy, Vec<String>> {
        let req: PolicyRequest = serde_json::from_value(json).expect("shape");
        ScalingPolicy::parse(&req).map_err(|e| e.into_iter().map(|f| f.field).collect())
    }

    #[test]
    fn an_empty_body_gets_the_seed_defaults() {
        let p = parse(serde_json::json!({})).unwrap();
        assert_eq!((p.min, p.max), (1, 10));
        assert_eq!(p.tolerance, 0.1);
        assert_eq!(p.metrics, default_metrics());
        let cpu = p.target(MetricKind::CpuPercent).unwrap();
        assert_eq!((cpu.target, cpu.scale_down_below), (80.0, Some(30.0)));
        assert_eq!(p.target(MetricKind::MemoryPercent).unwrap().target, 90.0);
        let rq = p.target(MetricKind::RequestsPerInstance).unwrap();
        assert_eq!((rq.target, rq.cooldown_seconds), (1000.0, Some(120)));
        assert_eq!(p.target(MetricKind::LatencyMsP95).unwrap().target, 500.0);
        assert_eq!(
            (p.scale_up.cooldown_seconds, p.scale_down.cooldown_seconds),
            (300, 600)
        );
        assert_eq!(
            (
                p.scale_up.stabilization_seconds,
                p.scale_down.stabilization_seconds
            ),
            (0, 300)
        );
        assert_eq!(p.missing_metrics, MissingMetrics::Hold);
        assert_eq!(p.predictive, Predictive::Off);
        assert_eq!(p.actuator, None);
    }

    #[test]
    fn a_full_body_is_taken_as_given() {
        let p = parse(serde_json::json!({
            "min": 2, "max": 20,
            "metrics": [{"metric": "requests_per_instance", "target": 50}],
            "tolerance": 0.05,
            "scale_up": {"stabilization_seconds": 30, "max_step": {"instances": 4, "percent": 100}, "cooldown_seconds": 60},
            "scale_down": {"max_step": {"percent": 10}, "cooldown_seconds": 120, "disabled": true},
            "missing_metrics": "fallback", "fallback_instances": 5,
            "predictive": "on",
            "actuator": {"type": "ecs", "cluster": "prod", "service": "checkout"}
        }))
        .unwrap();
        assert_eq!((p.min, p.max, p.fallback_instances), (2, 20, Some(5)));
        assert_eq!(p.scale_down.stabilization_seconds, 300, "default kept");
        assert!(p.scale_down.disabled);
        assert_eq!(
            p.scale_up.max_step,
            Some(StepLimit {
                instances: Some(4),
                percent: Some(100.0)
            })
        );
        assert_eq!(p.predictive, Predictive::On);
        assert_eq!(
            p.actuator,
            Some(Actuator::Ecs {
                cluster: "prod".into(),
                service: "checkout".into()
            })
        );
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let cases: &[(serde_json::Value, &[&str])] = &[
            (serde_json::json!({"min": 0}), &["min"]),
            (serde_json::json!({"min": 5, "max": 3}), &["max"]),
            (serde_json::json!({"max": 1001}), &["max"]),
            (serde_json::json!({"metrics": []}), &["metrics"]),
            (
                serde_json::json!({"metrics": [{"metric": "cpu_percent", "target": 120}, {"metric": "disk", "target": 1}, {"metric": "latency_ms_p95", "target": 0}]}),
                &[
                    "metrics[0].target",
                    "metrics[1].metric",
                    "metrics[2].target",
                ],
            ),
            (
                serde_json::json!({"metrics": [{"metric": "cpu_percent", "target": 50}, {"metric": "cpu_percent", "target": 60}]}),
                &["metrics[1].metric"],
            ),
            (
                serde_json::json!({"metrics": [{"metric": "cpu_percent", "target": 50, "scale_down_below": 60}]}),
                &["metrics[0].scale_down_below"],
            ),
            (serde_json::json!({"tolerance": 1.0}), &["tolerance"]),
            (serde_json::json!({"tolerance": -0.1}), &["tolerance"]),
            (
                serde_json::json!({"scale_up": {"stabilization_seconds": -1, "cooldown_seconds": 100000}}),
                &[
                    "scale_up.stabilization_seconds",
                    "scale_up.cooldown_seconds",
                ],
            ),
            (
                serde_json::json!({"scale_down": {"max_step": {}}}),
                &["scale_down.max_step"],
            ),
            (
                serde_json::json!({"scale_down": {"max_step": {"instances": 0, "percent": 0}}}),
                &[
                    "scale_down.max_step.instances",
                    "scale_down.max_step.percent",
                ],
            ),
            (
                serde_json::json!({"missing_metrics": "fallback"}),
                &["fallback_instances"],
            ),
            (
                serde_json::json!({"missing_metrics": "fallback", "fallback_instances": 11}),
                &["fallback_instances"],
            ),
            (
                serde_json::json!({"fallback_instances": 2}),
                &["fallback_instances"],
            ),
            (
                serde_json::json!({"missing_metrics": "guess"}),
                &["missing_metrics"],
            ),
            (serde_json::json!({"predictive": "yes"}), &["predictive"]),
            (
                serde_json::json!({"actuator": {"type": "ecs", "cluster": "a b"}}),
                &["actuator.cluster", "actuator.service"],
            ),
            (
                serde_json::json!({"actuator": {"type": "autoscaling_group", "cluster": "x"}}),
                &["actuator.cluster", "actuator.name"],
            ),
            (
                serde_json::json!({"actuator": {"type": "lambda"}}),
                &["actuator.type"],
            ),
            (
                serde_json::json!({"min": 0, "max": 0, "tolerance": 2, "predictive": "x"}),
                &["min", "max", "tolerance", "predictive"],
            ),
        ];
        for (body, fields) in cases {
            assert_eq!(parse(body.clone()).unwrap_err(), *fields, "{body}");
        }
    }

    proptest! {
        #[test]
        fn any_body_parses_or_names_fields(min in -5i64..1100, max in -5i64..1100, tol in -1.0f64..2.0) {
            let req = PolicyRequest { min: Some(min), max: Some(max), tolerance: Some(tol), ..Default::default() };
            match ScalingPolicy::parse(&req) {
                Ok(p) => prop_assert!(1 <= p.min && p.min <= p.max && p.max <= MAX_INSTANCES_CAP),
                Err(errors) => prop_assert!(!errors.is_empty()),
            }
        }
    }
}

/// Bodies as `ApiJson` reads them (an object, each field of its documented type) and then
/// as [`ScalingPolicy::parse`] validates them: (body, status, first field named).
#[cfg(test)]
mod strict_bodies {
    use super::*;
    use aloft_shared::extract::parse_json;
    use aloft_shared::strict::Object;

    fn answer(body: &str) -> (u16, Option<String>) {
        match parse_json::<Object<PolicyRequest>>(body.as_bytes()) {
            Err(p) => (p.status, p.errors.first().map(|e| e.field.clone())),
            Ok(Object(req)) => match ScalingPolicy::parse(&req) {
                Ok(_) => (200, None),
                Err(errors) => (422, errors.first().map(|e| e.field.clone())),
            },
        }
    }

    #[test]
    fn policy_bodies_are_the_documented_shape() {
        let cases: &[(&str, u16, Option<&str>)] = &[
            (r#"{}"#, 200, None),
            (
                r#"{"min": 2, "max": 20, "metrics": [{"metric": "cpu_percent", "target": 60}],
                    "scale_down": {"stabilization_seconds": 300, "max_step": {"percent": 50}},
                    "actuator": {"type": "ecs", "cluster": "prod", "service": "checkout"}}"#,
                200,
                None,
            ),
            // A whole number written as a float is that integer.
            (
                r#"{"min": 3.0, "max": 10.0, "scale_up": {"max_step": {"instances": 2.0}},
                    "metrics": [{"metric": "cpu_percent", "target": 60, "cooldown_seconds": 60.0}]}"#,
                200,
                None,
            ),
            (r#"[1, 10]"#, 422, Some("body")),
            (r#"null"#, 422, Some("body")),
            (r#"{"min": null}"#, 422, Some("min")),
            (r#"{"min": 2.5}"#, 422, Some("min")),
            (r#"{"tolerance": null}"#, 422, Some("tolerance")),
            (r#"{"missing_metrics": null}"#, 422, Some("missing_metrics")),
            (
                r#"{"fallback_instances": null}"#,
                422,
                Some("fallback_instances"),
            ),
            (r#"{"predictive": null}"#, 422, Some("predictive")),
            (r#"{"metrics": null}"#, 422, Some("metrics")),
            (
                r#"{"metrics": {"metric": "cpu_percent", "target": 60}}"#,
                422,
                Some("metrics"),
            ),
            (
                r#"{"metrics": [["cpu_percent", 60]]}"#,
                422,
                Some("metrics[0]"),
            ),
            (
                r#"{"metrics": [{"metric": "cpu_percent", "target": 60, "scale_down_below": null}]}"#,
                422,
                Some("metrics[0].scale_down_below"),
            ),
            (r#"{"scale_up": null}"#, 422, Some("scale_up")),
            (
                r#"{"scale_down": [300, null, 600, false]}"#,
                422,
                Some("scale_down"),
            ),
            (
                r#"{"scale_down": {"disabled": null}}"#,
                422,
                Some("scale_down.disabled"),
            ),
            (
                r#"{"scale_down": {"max_step": null}}"#,
                422,
                Some("scale_down.max_step"),
            ),
            (
                r#"{"scale_down": {"max_step": [1, 50]}}"#,
                422,
                Some("scale_down.max_step"),
            ),
            (
                r#"{"scale_up": {"max_step": {"instances": null}}}"#,
                422,
                Some("scale_up.max_step.instances"),
            ),
            (r#"{"actuator": null}"#, 422, Some("actuator")),
            (
                r#"{"actuator": ["ecs", "prod", "checkout"]}"#,
                422,
                Some("actuator"),
            ),
            (
                r#"{"actuator": {"type": "ecs", "cluster": "prod", "service": null}}"#,
                422,
                Some("actuator.service"),
            ),
            (
                r#"{"actuator": {"type": "ecs", "cluster": "prod"}}"#,
                422,
                Some("actuator.service"),
            ),
            (r#"{"scale_up": {"step": 1}}"#, 400, Some("scale_up.step")),
        ];
        for (body, status, field) in cases {
            assert_eq!(answer(body), (*status, field.map(str::to_owned)), "{body}");
        }
    }
}
