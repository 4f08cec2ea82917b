//! Properties of the quality monitor's parsers: objectives (what passes keeps every
//! documented rule, what fails names its fields, a valid objective written back as a
//! request is itself), silences, quality attributes and the closed lists.

use proptest::prelude::*;
use time::OffsetDateTime;
use time::macros::datetime;

use super::alert::Severity;
use super::attributes::QualityAttributes;
use super::objective::{
    Comparison, MAX_EVALUATION_SECONDS, MAX_SLO_WINDOW_DAYS, Metric, MissingData, Objective,
    ObjectiveName, ObjectiveRequest, ServiceName, SloRequest,
};
use super::silence::{MAX_SILENCE_DAYS, Silence, SilenceRequest};
use super::{AlertFilter, AlertsQuery};
use aloft_shared::extract::parse_json;
use aloft_shared::strict::Object;

/// What DynamoDB can store as a number: 0, or a magnitude from 1e-130 below 1e126.
fn is_storable(v: f64) -> bool {
    v == 0.0 || (1e-130..1e126).contains(&v.abs())
}

/// A number as people write it (a few decimals), so JSON and DynamoDB carry it exactly.
fn decimal(range: std::ops::Range<i64>) -> impl Strategy<Value = f64> {
    (range, 0i64..100).prop_map(|(whole, cents)| format!("{whole}.{cents:02}").parse().unwrap())
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => decimal(0..1000),
        1 => decimal(-10..0),
        1 => proptest::sample::select(vec![0.0, 100.0, 100.01, f64::NAN, f64::INFINITY, 1e300, 1e12, 1.5e12, 5e-324, 1e-200]),
    ]
}

fn objective_request() -> impl Strategy<Value = ObjectiveRequest> {
    (
        (
            proptest::option::of(prop_oneof![
                8 => proptest::sample::select(Metric::ALL.to_vec()).prop_map(|m| m.as_str().to_owned()),
                1 => "latency_p42|Availability|\\PC{0,6}",
            ]),
            proptest::option::of("greater_than|less_than|sideways"),
            proptest::option::of(number()),
            proptest::option::of(number()),
            proptest::option::of(prop_oneof![4 => decimal(0..20), 1 => Just(-1.0), 1 => Just(f64::NAN), 1 => Just(1e-300), 1 => Just(1e300)]),
        ),
        (
            proptest::option::of(prop_oneof![4 => (1u32..=60).prop_map(|m| m * 60), 1 => any::<u32>()]),
            proptest::option::of(prop_oneof![4 => 1u32..=10, 1 => any::<u32>()]),
            proptest::option::of(prop_oneof![4 => 1u32..=10, 1 => any::<u32>()]),
            proptest::option::of("missing|breaching|not_breaching|ignore|maybe"),
            proptest::option::of((
                proptest::option::of(prop_oneof![4 => decimal(50..100), 1 => Just(100.0), 1 => Just(0.0), 1 => Just(1e-300)]),
                proptest::option::of(prop_oneof![4 => 1u32..=MAX_SLO_WINDOW_DAYS, 1 => any::<u32>()]),
            )),
        ),
    )
        .prop_map(
            |((metric, comparison, warning, critical, resolve_margin), (period, periods, datapoints, missing, slo))| {
                ObjectiveRequest {
                    metric,
                    comparison,
                    warning,
                    critical,
                    resolve_margin,
                    period_seconds: period,
                    evaluation_periods: periods,
                    datapoints_to_alarm: datapoints,
                    missing_data: missing,
                    slo: slo.map(|(target, window_days)| SloRequest { target, window_days }),
                }
            },
        )
}

/// A request every field of which is valid (some left out), consistent across fields.
fn valid_objective_request() -> impl Strategy<Value = ObjectiveRequest> {
    (
        proptest::sample::select(Metric::ALL.to_vec()),
        proptest::option::of(any::<bool>()),
        (
            decimal(0..100),
            decimal(0..100),
            any::<bool>(),
            any::<bool>(),
        ),
        proptest::option::of(decimal(0..20)),
        (1u32..=60).prop_flat_map(|minutes| {
            let most = (MAX_EVALUATION_SECONDS / u64::from(minutes * 60)).min(20) as u32;
            (Just(minutes * 60), 1..=most).prop_flat_map(|(p, n)| (Just(p), Just(n), 1..=n))
        }),
        (any::<bool>(), any::<bool>()),
        proptest::option::of("missing|breaching|not_breaching|ignore"),
        proptest::option::of((
            decimal(1..99),
            proptest::option::of(1u32..=MAX_SLO_WINDOW_DAYS),
        )),
    )
        .prop_map(
            |(
                metric,
                flip,
                (a, b, with_warning, with_critical),
                margin,
                (period, periods, datapoints),
                (send_periods, send_datapoints),
                missing,
                slo,
            )| {
                let comparison = match flip {
                    None => None,
                    Some(false) => Some(metric.natural_comparison()),
                    Some(true) => Some(match metric.natural_comparison() {
                        Comparison::GreaterThan => Comparison::LessThan,
                        Comparison::LessThan => Comparison::GreaterThan,
                    }),
                };
                let cmp = comparison.unwrap_or(metric.natural_comparison());
                // `warning` on the good side of `critical`.
                let (low, high) = (a.min(b), a.max(b));
                let (warning, critical) = match cmp {
                    Comparison::GreaterThan => (low, high),
                    Comparison::LessThan => (high, low),
                };
                let takes_slo = matches!(metric, Metric::Availability | Metric::ErrorRate);
                let slo = slo.filter(|_| takes_slo);
                ObjectiveRequest {
                    metric: Some(metric.as_str().to_owned()),
                    comparison: comparison.map(|c| c.as_str().to_owned()),
                    warning: (with_warning || (!with_critical && slo.is_none())).then_some(warning),
                    critical: with_critical.then_some(critical),
                    resolve_margin: margin,
                    period_seconds: Some(period),
                    evaluation_periods: send_periods.then_some(periods),
                    datapoints_to_alarm: (send_periods && send_datapoints).then_some(datapoints),
                    missing_data: missing,
                    slo: slo.map(|(target, window_days)| SloRequest {
                        target: Some(target),
                        window_days,
                    }),
                }
            },
        )
}

/// The request that describes `o`, every field written out.
fn request_of(o: &Objective) -> ObjectiveRequest {
    ObjectiveRequest {
        metric: Some(o.metric.as_str().to_owned()),
        comparison: Some(o.comparison.as_str().to_owned()),
        warning: o.warning,
        critical: o.critical,
        resolve_margin: Some(o.resolve_margin),
        period_seconds: Some(o.period_seconds),
        evaluation_periods: Some(o.evaluation_periods),
        datapoints_to_alarm: Some(o.datapoints_to_alarm),
        missing_data: Some(o.missing_data.as_str().to_owned()),
        slo: o.slo.map(|s| SloRequest {
            target: Some(s.target),
            window_days: Some(s.window_days),
        }),
    }
}

/// Every rule the spec states of a valid objective.
fn keeps_the_rules(o: &Objective) -> Result<(), TestCaseError> {
    prop_assert!(o.warning.is_some() || o.critical.is_some() || o.slo.is_some());
    for t in [o.warning, o.critical].into_iter().flatten() {
        prop_assert!(t.is_finite() && t >= 0.0 && is_storable(t));
        if o.metric.is_percentage() {
            prop_assert!(t <= 100.0);
        }
    }
    if let (Some(w), Some(c)) = (o.warning, o.critical) {
        // `warning` on the good side of `critical`.
        prop_assert!(!o.comparison.breaches(w, c) || w == c);
    }
    prop_assert!(
        o.resolve_margin.is_finite() && o.resolve_margin >= 0.0 && is_storable(o.resolve_margin)
    );
    prop_assert!(o.period_seconds > 0 && o.period_seconds % 60 == 0);
    prop_assert!(o.evaluation_periods >= 1);
    prop_assert!(
        u64::from(o.period_seconds) * u64::from(o.evaluation_periods) <= MAX_EVALUATION_SECONDS
    );
    prop_assert!((1..=o.evaluation_periods).contains(&o.datapoints_to_alarm));
    if let Some(slo) = o.slo {
        prop_assert!(matches!(o.metric, Metric::Availability | Metric::ErrorRate));
        prop_assert!(slo.target > 0.0 && slo.target < 100.0 && is_storable(slo.target));
        prop_assert!((1..=MAX_SLO_WINDOW_DAYS).contains(&slo.window_days));
    }
    Ok(())
}

fn is_known_field(f: &str) -> bool {
    [
        "service",
        "name",
        "metric",
        "comparison",
        "warning",
        "critical",
        "resolve_margin",
        "period_seconds",
        "evaluation_periods",
        "datapoints_to_alarm",
        "missing_data",
        "slo",
        "slo.target",
        "slo.window_days",
    ]
    .contains(&f)
}

const NOW: OffsetDateTime = datetime!(2026-05-01 12:00 UTC);

/// The spec's `reason`: at most 500 characters as sent; trimmed, at least one character,
/// none of them a control character.
fn is_spec_reason(s: &str) -> bool {
    let t = s.trim();
    s.chars().count() <= 500 && !t.is_empty() && !t.chars().any(char::is_control)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any request: an objective that keeps every documented rule, or its bad fields named.
    #[test]
    fn any_objective_keeps_the_rules_or_names_its_fields(
        service in "svc|UsersFunction|-bad|[A-Za-z0-9._-]{1,10}",
        name in "p99|errors|Bad Name|[a-z][a-z0-9_-]{0,8}",
        req in prop_oneof![objective_request(), valid_objective_request()],
    ) {
        match Objective::parse(&service, &name, &req) {
            Ok(o) => {
                keeps_the_rules(&o)?;
                prop_assert_eq!((o.service.as_str(), o.name.as_str()), (service.as_str(), name.as_str()));
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(is_known_field(&e.field), "{:?}", e);
                }
            }
        }
    }

    /// A valid objective, written out as a request (and as JSON), parses to itself; as
    /// stored (a DynamoDB item) it reads back as itself.
    #[test]
    fn a_valid_objective_round_trips(req in valid_objective_request()) {
        let o = Objective::parse("svc", "obj", &req)
            .map_err(|e| TestCaseError::fail(format!("{req:?}: {e:?}")))?;
        keeps_the_rules(&o)?;
        let again = request_of(&o);
        prop_assert_eq!(Objective::parse("svc", "obj", &again), Ok(o.clone()));
        let json = serde_json::to_string(&again).unwrap();
        let Object(read): Object<ObjectiveRequest> = parse_json(json.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{json}: {e}")))?;
        prop_assert_eq!(Objective::parse("svc", "obj", &read), Ok(o.clone()));
        let item: serde_dynamo::Item = serde_dynamo::to_item(&o).unwrap();
        prop_assert_eq!(serde_dynamo::from_item::<_, Objective>(item).unwrap(), o);
    }

    #[test]
    fn closed_lists_take_exactly_their_names(s in "[a-z_0-9]{0,16}|[ ]?(warning|critical|less_than|ignore|latency_p99)[ ]?|WARNING|\\PC{0,8}") {
        let exact = |r: Result<&'static str, String>| match r {
            Ok(name) => name == s,
            Err(m) => m.starts_with("must be"),
        };
        prop_assert!(exact(Metric::parse(&s).map(Metric::as_str)));
        prop_assert!(exact(Comparison::parse(&s).map(Comparison::as_str)));
        prop_assert!(exact(MissingData::parse(&s).map(MissingData::as_str)));
        prop_assert!(exact(Severity::parse(&s).map(Severity::as_str)));
    }

    #[test]
    fn objective_names_round_trip_through_json(s in "[a-z][a-z0-9_-]{0,63}") {
        let n = ObjectiveName::parse(&s).unwrap();
        let json = serde_json::to_string(&n).unwrap();
        prop_assert_eq!(serde_json::from_str::<ObjectiveName>(&json).unwrap(), n);
        let too_long = format!("{s}{}", "a".repeat(65 - s.len()));
        prop_assert!(ObjectiveName::parse(&too_long).is_err());
    }

    /// Any silence: within its rules (ahead, at most 30 days, the spec's names and
    /// reason), or its bad fields named.
    #[test]
    fn any_silence_keeps_the_rules_or_names_its_fields(
        service in prop_oneof![2 => Just(None), 6 => "users|[A-Za-z0-9][A-Za-z0-9._-]{0,10}".prop_map(Some), 1 => "-x|a b|".prop_map(Some)],
        objective in prop_oneof![3 => Just(None), 6 => "p99|[a-z][a-z0-9_-]{0,8}".prop_map(Some), 1 => "Bad|9a".prop_map(Some)],
        until_secs in prop_oneof![
            8 => (1i64..=MAX_SILENCE_DAYS * 86_400).prop_map(Some),
            1 => (-86_400i64..=0).prop_map(Some),
            1 => (MAX_SILENCE_DAYS * 86_400 + 1..MAX_SILENCE_DAYS * 86_400 + 86_400).prop_map(Some),
            1 => Just(None),
        ],
        until_text in proptest::option::of("\\PC{0,12}|9999-12-31T23:59:59-01:00|0000-01-01T00:00:00\\+00:59"),
        reason in prop_oneof![
            6 => "[ \\t]{0,2}[a-zé][a-zé ]{0,20}[ \\t]{0,2}".prop_map(Some),
            1 => "[ ]{1,3}[a-z]{498,500}|[a-z]{1,3}[\\x00-\\x08\\x7f\\u{9f}][a-z]{1,3}|[ \\u{85}\\u{a0}]{0,3}|\\PC{0,10}".prop_map(Some),
            1 => Just(None),
        ],
    ) {
        let until = match (until_secs, until_text) {
            (Some(s), _) => Some(aloft_shared::clock::rfc3339(NOW + time::Duration::seconds(s))),
            (None, t) => t,
        };
        let req = SilenceRequest { service: service.clone(), objective: objective.clone(), until, reason: reason.clone() };
        match Silence::parse(&req, "s1".into(), NOW, "key") {
            Ok(s) => {
                prop_assert!(is_spec_reason(reason.as_deref().unwrap_or_default()), "{:?}", reason);
                prop_assert_eq!(s.reason.as_str(), reason.as_deref().unwrap_or_default().trim());
                let until = aloft_shared::clock::parse_rfc3339(&s.until).unwrap();
                prop_assert!(until > NOW && until <= NOW + time::Duration::days(MAX_SILENCE_DAYS));
                prop_assert_eq!(s.until.len(), 24);
                prop_assert!(s.objective.is_none() || s.service.is_some());
                prop_assert_eq!(s.service.map(String::from), service);
                prop_assert_eq!(s.objective.map(String::from), objective);
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(["service", "objective", "until", "reason"].contains(&e.field.as_str()), "{:?}", e);
                }
                if reason.as_deref().is_some_and(|r| !is_spec_reason(r)) || reason.is_none() {
                    prop_assert!(errors.iter().any(|e| e.field == "reason"));
                }
            }
        }
    }

    /// Attributes as sent and as stored: whatever passes the body reader is stored as
    /// JSON and reads back as itself; its plan never panics and names attribute paths.
    #[test]
    fn attributes_read_back_as_stored(
        body in "\\{(\"(performance|reliability|security|x)\": ?(\\{(\"(response_time_ms|throughput_rps|resource_usage|availability_percent|failure_rate_percent|mttr_minutes|p99|owner)\": ?(-?[0-9]{1,4}(\\.[0-9]{1,2})?|null|\"[a-z]{0,4}\"|\\{(\"(p50|p99|cpu_percent)\": ?-?[0-9]{1,4},?){0,2}\\}),?){0,3}\\}|null|\\[\\]),?){0,3}\\}",
    ) {
        match parse_json::<Object<QualityAttributes>>(body.as_bytes()) {
            Ok(Object(attrs)) => {
                let stored = serde_json::to_string(&attrs).unwrap();
                prop_assert_eq!(QualityAttributes::from_stored(&stored).unwrap(), attrs.clone());
                match attrs.plan("svc") {
                    Ok(plan) => {
                        for o in &plan.objectives {
                            keeps_the_rules(o)?;
                        }
                    }
                    Err(errors) => {
                        for e in errors {
                            prop_assert!(e.field.starts_with("performance.") || e.field.starts_with("reliability."), "{:?}", e);
                        }
                    }
                }
            }
            Err(p) => prop_assert!(p.status == 400 || p.status == 422, "{}", p),
        }
    }

    /// `GET /alerts?state=&severity=`: a filter, or each bad parameter named.
    #[test]
    fn alert_queries_are_a_filter_or_name_the_parameter(
        state in proptest::option::of("firing|insufficient_data|ok|Firing|\\PC{0,6}"),
        severity in proptest::option::of("warning|critical|info|\\PC{0,6}"),
    ) {
        let q = AlertsQuery { state: state.clone(), severity: severity.clone(), ..Default::default() };
        let severity_ok = severity.as_deref().is_none_or(|s| Severity::parse(s).is_ok());
        let state_ok = matches!(state.as_deref(), None | Some("firing" | "insufficient_data"));
        match AlertFilter::parse(&q) {
            Ok(AlertFilter::Firing(s)) => {
                prop_assert!(severity_ok && state.as_deref().is_none_or(|s| s == "firing"));
                prop_assert_eq!(s.map(Severity::as_str), severity.as_deref());
            }
            Ok(AlertFilter::InsufficientData) => prop_assert!(severity.is_none()),
            Ok(AlertFilter::Nothing) => prop_assert!(severity_ok && severity.is_some()),
            Err(errors) => {
                prop_assert!(!(severity_ok && state_ok));
                let field = if severity_ok { "state" } else { "severity" };
                prop_assert_eq!(&errors[0].field, field);
            }
        }
    }

    #[test]
    fn service_names_round_trip_through_json(s in "[A-Za-z0-9][A-Za-z0-9._-]{0,127}") {
        let n = ServiceName::parse(&s).unwrap();
        let json = serde_json::to_string(&n).unwrap();
        prop_assert_eq!(serde_json::from_str::<ServiceName>(&json).unwrap(), n);
    }
}
