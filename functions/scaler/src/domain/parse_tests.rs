//! Properties of the scaler's parsers: metric names and whole policy bodies (what
//! passes keeps every documented rule, what fails names its fields, and a policy as
//! shown is a body that gives the same policy back). Service names are shared: see
//! `aloft_shared::names`.

use proptest::prelude::*;

use super::parse::{
    ActuatorRequest, BehaviorRequest, MetricTargetRequest, PolicyRequest, StepRequest,
};
use super::policy::{
    Actuator, MAX_COOLDOWN_SECONDS, MAX_INSTANCES_CAP, MAX_STABILIZATION_SECONDS, MetricKind,
    MissingMetrics, ScalingPolicy,
};
use aloft_shared::extract::parse_json;
use aloft_shared::strict::Object;

/// The spec's `EcsName` pattern: `^(arn:[\x21-\x7e]{1,251}|[A-Za-z0-9_-]{1,255})$`.
fn is_spec_ecs_name(s: &str) -> bool {
    match s.strip_prefix("arn:") {
        Some(rest) => (1..=251).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_graphic()),
        None => {
            (1..=255).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
    }
}

/// The spec's group name: 1–255 characters, none of `\x00-\x1f\x7f-\x9f`.
fn is_spec_group_name(s: &str) -> bool {
    (1..=255).contains(&s.chars().count())
        && !s
            .chars()
            .any(|c| ('\0'..='\x1f').contains(&c) || ('\x7f'..='\u{9f}').contains(&c))
}

/// What DynamoDB can store as a number: 0, or a magnitude from 1e-130 below 1e126.
fn is_storable(v: f64) -> bool {
    v == 0.0 || (1e-130..1e126).contains(&v.abs())
}

/// Mostly a good value, sometimes left out, sometimes a bad one.
fn field<T: std::fmt::Debug + Clone>(
    good: impl Strategy<Value = T> + 'static,
    bad: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![2 => Just(None), 6 => good.prop_map(Some), 1 => bad.prop_map(Some)]
}

/// A number as people write it (a few decimals), so JSON carries it exactly.
fn decimal(range: std::ops::Range<i64>) -> impl Strategy<Value = f64> {
    (range, 0i64..100).prop_map(|(whole, cents)| format!("{whole}.{cents:02}").parse().unwrap())
}

type MetricParts = (String, f64, Option<f64>, Option<i64>);

fn metric_request(
    (metric, target, scale_down_below, cooldown_seconds): MetricParts,
) -> MetricTargetRequest {
    MetricTargetRequest {
        metric,
        target,
        scale_down_below,
        cooldown_seconds,
    }
}

fn metric() -> impl Strategy<Value = MetricParts> {
    (
        prop_oneof![
            8 => proptest::sample::select(MetricKind::ALL.to_vec()).prop_map(|m| m.as_str().to_owned()),
            1 => "disk|CPU_percent|cpu_percent |\\PC{0,6}",
        ],
        prop_oneof![6 => decimal(0..100), 2 => decimal(0..5000), 1 => prop_oneof![Just(0.0), Just(-1.0), Just(1e10), Just(100.01), Just(1e-300), Just(5e-324)]],
        field(
            decimal(0..60),
            prop_oneof![Just(0.0), Just(-5.0), Just(f64::MAX), Just(1e-200)],
        ),
        field(
            0i64..=i64::from(MAX_COOLDOWN_SECONDS),
            prop_oneof![Just(-1i64), Just(86_401), any::<i64>()],
        ),
    )
}

/// A behaviour's fields as sent: stabilisation, max step (instances, percent), cooldown,
/// disabled.
type BehaviorParts = (
    Option<i64>,
    Option<(Option<i64>, Option<f64>)>,
    Option<i64>,
    Option<bool>,
);

fn behavior() -> impl Strategy<Value = BehaviorParts> {
    (
        field(
            0i64..=i64::from(MAX_STABILIZATION_SECONDS),
            prop_oneof![Just(-1i64), Just(3601), any::<i64>()],
        ),
        field(
            (
                field(1i64..=1000, prop_oneof![Just(0i64), Just(1001)]),
                field(
                    decimal(0..1000).prop_filter("positive", |p| *p > 0.0),
                    prop_oneof![Just(0.0), Just(1000.5)],
                ),
            ),
            Just((None, None)),
        ),
        field(
            0i64..=i64::from(MAX_COOLDOWN_SECONDS),
            prop_oneof![Just(-1i64), Just(86_401)],
        ),
        proptest::option::of(any::<bool>()),
    )
}

fn behavior_request(
    (stabilization_seconds, max_step, cooldown_seconds, disabled): BehaviorParts,
) -> BehaviorRequest {
    BehaviorRequest {
        stabilization_seconds,
        max_step: max_step.map(|(instances, percent)| StepRequest { instances, percent }),
        cooldown_seconds,
        disabled,
    }
}

fn actuator() -> impl Strategy<Value = ActuatorRequest> {
    let ecs = "[A-Za-z0-9_-]{1,20}|arn:aws:ecs:[!-~]{1,30}";
    let bad_ecs = "a b|arn:|arn:a b|[a-z]{256}|";
    (
        prop_oneof![8 => "ecs|autoscaling_group", 1 => "lambda|ECS|\\PC{0,5}"],
        field(ecs, bad_ecs),
        field(ecs, bad_ecs),
        field(
            "[^\\x00-\\x1f\\x7f-\\x9f]{1,30}",
            "[a-z]{0,3}[\\x00-\\x1f\\x7f\\u{85}][a-z]{0,3}|[a-zé]{256,260}|",
        ),
    )
        .prop_map(|(kind, cluster, service, name)| ActuatorRequest {
            kind,
            cluster,
            service,
            name,
        })
}

fn policy_request() -> impl Strategy<Value = PolicyRequest> {
    (
        (
            field(1i64..=20, prop_oneof![Just(0i64), Just(1001), any::<i64>()]),
            field(
                1i64..=1000,
                prop_oneof![Just(0i64), Just(1001), any::<i64>()],
            ),
            field(
                proptest::collection::vec(metric(), 1..4),
                proptest::collection::vec(metric(), 0..6),
            ),
            field(
                prop_oneof![4 => decimal(0..1).prop_map(|t| t.min(0.99)), 1 => Just(1e-300)],
                prop_oneof![Just(1.0), Just(-0.01), Just(f64::NAN)],
            ),
        ),
        (
            proptest::option::of(behavior()),
            proptest::option::of(behavior()),
            field("hold|fallback", "guess|Hold|\\PC{0,4}"),
            field(1i64..=20, prop_oneof![Just(0i64), any::<i64>()]),
            field("off|forecast_only|on", "yes|ON|\\PC{0,4}"),
            proptest::option::of(actuator()),
        ),
    )
        .prop_map(
            |(
                (min, max, metrics, tolerance),
                (up, down, missing, fallback, predictive, actuator),
            )| PolicyRequest {
                min,
                max,
                metrics: metrics.map(|list| list.into_iter().map(metric_request).collect()),
                tolerance,
                scale_up: up.map(behavior_request),
                scale_down: down.map(behavior_request),
                missing_metrics: missing,
                fallback_instances: fallback,
                predictive,
                actuator,
            },
        )
}

/// A body every field of which is valid (some left out), consistent across fields.
fn valid_policy_request() -> impl Strategy<Value = PolicyRequest> {
    let metric = |m: MetricKind| {
        let ceiling = if m.is_percent() { 100 } else { 5000 };
        (
            decimal(1..ceiling),
            proptest::option::of(1u32..100),
            proptest::option::of(0i64..=i64::from(MAX_COOLDOWN_SECONDS)),
        )
            .prop_map(move |(target, below, cooldown)| {
                let target = target.min(ceiling as f64);
                // A share of the target, in cents: above 0 and below it.
                let below = below
                    .map(|pct| (target * f64::from(pct)).floor() / 100.0)
                    .filter(|b| *b > 0.0 && *b < target);
                (m.as_str().to_owned(), target, below, cooldown)
            })
    };
    let metrics = proptest::sample::subsequence(MetricKind::ALL.to_vec(), 1..=4)
        .prop_shuffle()
        .prop_flat_map(move |kinds| kinds.into_iter().map(metric).collect::<Vec<_>>());
    let behavior = (
        proptest::option::of(0i64..=i64::from(MAX_STABILIZATION_SECONDS)),
        proptest::option::of(prop_oneof![
            (1i64..=1000).prop_map(|i| (Some(i), None)),
            (1i64..=1000).prop_map(|p| (None, Some(p as f64 / 2.0))),
            ((1i64..=1000), (1i64..=1000)).prop_map(|(i, p)| (Some(i), Some(p as f64))),
        ]),
        proptest::option::of(0i64..=i64::from(MAX_COOLDOWN_SECONDS)),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(behavior_request);
    let actuator = proptest::option::of(prop_oneof![
        (
            "[A-Za-z0-9_-]{1,20}|arn:aws:ecs:[!-~]{1,30}",
            "[A-Za-z0-9_-]{1,20}|arn:aws:ecs:[!-~]{1,30}"
        )
            .prop_map(|(c, s)| ("ecs".to_owned(), Some(c), Some(s), None)),
        "[^\\x00-\\x1f\\x7f-\\x9f]{1,30}".prop_map(|n| (
            "autoscaling_group".to_owned(),
            None,
            None,
            Some(n)
        )),
    ]);
    (
        (1i64..=20).prop_flat_map(|min| (Just(min), min..=1000, min..=1000)),
        any::<bool>(),
        proptest::option::of(metrics),
        proptest::option::of(decimal(0..1).prop_map(|t| t.min(0.99))),
        (
            proptest::option::of(behavior.clone()),
            proptest::option::of(behavior),
        ),
        any::<bool>(),
        proptest::option::of("off|forecast_only|on"),
        actuator,
    )
        .prop_map(
            |(
                (min, max, fallback),
                send_min,
                metrics,
                tolerance,
                (up, down),
                falls_back,
                predictive,
                actuator,
            )| {
                PolicyRequest {
                    min: Some(min).filter(|_| send_min),
                    max: Some(if send_min { max } else { max.max(1) }),
                    metrics: metrics.map(|list| list.into_iter().map(metric_request).collect()),
                    tolerance,
                    scale_up: up,
                    scale_down: down,
                    missing_metrics: Some(if falls_back { "fallback" } else { "hold" }.to_owned()),
                    fallback_instances: falls_back.then_some(fallback.min(max)),
                    predictive,
                    actuator: actuator.map(|(kind, cluster, service, name)| ActuatorRequest {
                        kind,
                        cluster,
                        service,
                        name,
                    }),
                }
            },
        )
}

fn is_known_field(f: &str) -> bool {
    const EXACT: &[&str] = &[
        "min",
        "max",
        "metrics",
        "tolerance",
        "missing_metrics",
        "fallback_instances",
        "predictive",
        "actuator.type",
        "actuator.cluster",
        "actuator.service",
        "actuator.name",
    ];
    EXACT.contains(&f)
        || f.starts_with("metrics[")
        || ["scale_up.", "scale_down."].iter().any(|p| {
            f.strip_prefix(p).is_some_and(|rest| {
                [
                    "stabilization_seconds",
                    "cooldown_seconds",
                    "max_step",
                    "max_step.instances",
                    "max_step.percent",
                ]
                .contains(&rest)
            })
        })
}

/// Every rule the spec states of a valid policy.
fn keeps_the_rules(p: &ScalingPolicy) -> Result<(), TestCaseError> {
    prop_assert!(1 <= p.min && p.min <= p.max && p.max <= MAX_INSTANCES_CAP);
    prop_assert!(!p.metrics.is_empty() && p.metrics.len() <= 4);
    for (i, m) in p.metrics.iter().enumerate() {
        prop_assert!(
            p.metrics[..i].iter().all(|o| o.metric != m.metric),
            "each metric once"
        );
        let ceiling = if m.metric.is_percent() { 100.0 } else { 1e9 };
        prop_assert!(m.target > 0.0 && m.target <= ceiling && is_storable(m.target));
        prop_assert!(
            m.scale_down_below
                .is_none_or(|b| b > 0.0 && b < m.target && is_storable(b))
        );
        prop_assert!(m.cooldown_seconds.is_none_or(|c| c <= MAX_COOLDOWN_SECONDS));
    }
    prop_assert!((0.0..1.0).contains(&p.tolerance) && is_storable(p.tolerance));
    for b in [&p.scale_up, &p.scale_down] {
        prop_assert!(b.stabilization_seconds <= MAX_STABILIZATION_SECONDS);
        prop_assert!(b.cooldown_seconds <= MAX_COOLDOWN_SECONDS);
        if let Some(s) = b.max_step {
            prop_assert!(s.instances.is_some() || s.percent.is_some());
            prop_assert!(
                s.instances
                    .is_none_or(|i| (1..=MAX_INSTANCES_CAP).contains(&i))
            );
            prop_assert!(
                s.percent
                    .is_none_or(|p| p > 0.0 && p <= 1000.0 && is_storable(p))
            );
        }
    }
    match p.missing_metrics {
        MissingMetrics::Fallback => {
            prop_assert!(
                p.fallback_instances
                    .is_some_and(|f| (p.min..=p.max).contains(&f))
            )
        }
        MissingMetrics::Hold => prop_assert_eq!(p.fallback_instances, None),
    }
    match &p.actuator {
        Some(Actuator::Ecs { cluster, service }) => {
            prop_assert!(is_spec_ecs_name(cluster) && is_spec_ecs_name(service))
        }
        Some(Actuator::AutoscalingGroup { name }) => prop_assert!(is_spec_group_name(name)),
        None => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any body: a policy that keeps every documented rule, or every bad field named.
    #[test]
    fn any_policy_keeps_the_rules_or_names_its_fields(req in policy_request()) {
        match ScalingPolicy::parse(&req) {
            Ok(p) => keeps_the_rules(&p)?,
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(is_known_field(&e.field), "{:?}", e);
                }
            }
        }
    }

    /// A policy as GET shows it, PUT back, is the same policy; and as stored (a DynamoDB
    /// item) it reads back as itself.
    #[test]
    fn a_shown_policy_is_a_body_for_itself(req in valid_policy_request()) {
        let p = ScalingPolicy::parse(&req).map_err(|e| TestCaseError::fail(format!("{req:?}: {e:?}")))?;
        keeps_the_rules(&p)?;
        let shown = serde_json::to_string(&p).unwrap();
        let Object(again): Object<PolicyRequest> = parse_json(shown.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{shown}: {e}")))?;
        prop_assert_eq!(ScalingPolicy::parse(&again), Ok(p.clone()), "{}", shown);
        let item: serde_dynamo::Item = serde_dynamo::to_item(&p).unwrap();
        prop_assert_eq!(serde_dynamo::from_item::<_, ScalingPolicy>(item).unwrap(), p);
    }

    /// Text bodies of any shape: a policy or a 400/422, never a panic.
    #[test]
    fn any_text_body_is_read_or_refused(
        body in "\\{(\"(min|max|tolerance|metrics|scale_up|predictive|actuator|x)\": ?(-?[0-9]{1,5}(\\.[0-9]{1,2})?|null|\"[a-z_]{0,8}\"|\\[\\]|\\{\\}|\\[\\{\"metric\": ?\"cpu_percent\", ?\"target\": ?[0-9]{1,3}\\}\\]|\\{\"type\": ?\"ecs\"\\}),?){0,4}\\}|\\PC{0,20}",
    ) {
        match parse_json::<Object<PolicyRequest>>(body.as_bytes()) {
            Ok(Object(req)) => {
                if let Ok(p) = ScalingPolicy::parse(&req) {
                    keeps_the_rules(&p)?;
                }
            }
            Err(p) => prop_assert!(p.status == 400 || p.status == 422, "{}", p),
        }
    }

    #[test]
    fn metric_names_are_exactly_the_four(s in "[a-z_]{0,22}|[ ]?cpu_percent[ ]?|CPU_PERCENT|\\PC{0,10}") {
        match MetricKind::parse(&s) {
            Some(m) => prop_assert_eq!(m.as_str(), s.as_str()),
            None => prop_assert!(MetricKind::ALL.iter().all(|m| m.as_str() != s)),
        }
    }
}
