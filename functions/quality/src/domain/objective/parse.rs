//! Validating an objective request: each field against its metric, thresholds against
//! each other, the evaluation against CloudWatch's limits, with every bad field named at
//! once.

use aloft_shared::FieldError;
use aloft_shared::dynamo::storable;

use super::slo::parse_slo;
use super::{
    Comparison, Metric, MissingData, Objective, ObjectiveName, ObjectiveRequest, ServiceName,
};
use crate::domain::field_errors::Errors;

/// The largest threshold or margin: far above any latency, rate or percentage, and
/// inside what DynamoDB stores.
pub const MAX_THRESHOLD: f64 = 1e12;
pub const DEFAULT_PERIOD_SECONDS: u32 = 60;
pub const DEFAULT_EVALUATION_PERIODS: u32 = 3;
/// CloudWatch's limit: evaluation periods × period at most one day.
pub const MAX_EVALUATION_SECONDS: u64 = 24 * 3600;

impl Objective {
    /// Validates a request for `service`/`name` (path parameters, named `service` and
    /// `name` in errors).
    pub fn parse(
        service: &str,
        name: &str,
        req: &ObjectiveRequest,
    ) -> Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let service = e.check("service", ServiceName::parse(service));
        let name = e.check("name", ObjectiveName::parse(name));
        let metric = match req.metric.as_deref() {
            None => {
                e.add("metric", "is required");
                None
            }
            Some(m) => e.check("metric", Metric::parse(m)),
        };
        let comparison = match (req.comparison.as_deref(), metric) {
            (Some(c), _) => e.check("comparison", Comparison::parse(c)),
            (None, m) => m.map(Metric::natural_comparison),
        };
        let missing_data = e.check(
            "missing_data",
            req.missing_data
                .as_deref()
                .map_or(Ok(MissingData::Missing), MissingData::parse),
        );
        let mut thresholds_valid = true;
        for (field, v) in [("warning", req.warning), ("critical", req.critical)] {
            let problem = match (v, metric) {
                (Some(v), _) if !v.is_finite() => Some("must be a number"),
                (Some(v), Some(m)) if m.is_percentage() && !(0.0..=100.0).contains(&v) => {
                    Some("must be a percentage from 0 to 100")
                }
                (Some(v), _) if v < 0.0 => Some("must not be negative"),
                (Some(v), _) if v > MAX_THRESHOLD => Some("must be at most 1e12"),
                _ => None,
            };
            if let Some(p) = problem {
                e.add(field, p);
                thresholds_valid = false;
            }
        }
        // Their order only means something once each is valid on its own.
        if let (Some(w), Some(c), Some(cmp), true) =
            (req.warning, req.critical, comparison, thresholds_valid)
        {
            let ordered = match cmp {
                Comparison::GreaterThan => w <= c,
                Comparison::LessThan => w >= c,
            };
            if !ordered {
                e.add(
                    "warning",
                    format!(
                        "must be on the good side of critical ({} for {})",
                        if cmp == Comparison::GreaterThan {
                            "at most critical"
                        } else {
                            "at least critical"
                        },
                        cmp.as_str()
                    ),
                );
            }
        }
        let resolve_margin = req.resolve_margin.unwrap_or(0.0);
        if !resolve_margin.is_finite() || !(0.0..=MAX_THRESHOLD).contains(&resolve_margin) {
            e.add("resolve_margin", "must be a number from 0 to 1e12");
        }
        let period_seconds = req.period_seconds.unwrap_or(DEFAULT_PERIOD_SECONDS);
        if period_seconds == 0 || period_seconds % 60 != 0 {
            e.add("period_seconds", "must be a positive multiple of 60");
        }
        let evaluation_periods = req.evaluation_periods.unwrap_or(DEFAULT_EVALUATION_PERIODS);
        if evaluation_periods == 0 {
            e.add("evaluation_periods", "must be at least 1");
        } else if u64::from(evaluation_periods) * u64::from(period_seconds) > MAX_EVALUATION_SECONDS
        {
            e.add(
                "evaluation_periods",
                "times period_seconds must be at most one day (86400 s), as in CloudWatch",
            );
        }
        let datapoints_to_alarm = req.datapoints_to_alarm.unwrap_or(evaluation_periods);
        if datapoints_to_alarm == 0 || datapoints_to_alarm > evaluation_periods {
            e.add(
                "datapoints_to_alarm",
                "must be from 1 to evaluation_periods",
            );
        }
        let slo = req.slo.as_ref().and_then(|s| parse_slo(s, metric, &mut e));
        if req.warning.is_none() && req.critical.is_none() && req.slo.is_none() {
            e.add("critical", "an objective needs warning, critical or slo");
        }
        e.finish(|| {
            Some(Objective {
                service: service?,
                name: name?,
                metric: metric?,
                comparison: comparison?,
                warning: req.warning.map(storable),
                critical: req.critical.map(storable),
                resolve_margin: storable(resolve_margin),
                period_seconds,
                evaluation_periods,
                datapoints_to_alarm,
                missing_data: missing_data?,
                slo,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(json: serde_json::Value) -> ObjectiveRequest {
        serde_json::from_value(json).unwrap()
    }

    fn fields(r: Result<Objective, Vec<FieldError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn defaults_follow_cloudwatch() {
        let o = Objective::parse(
            "UsersFunction",
            "p99",
            &req(serde_json::json!({"metric": "latency_p99", "critical": 500})),
        )
        .unwrap();
        assert_eq!(o.comparison, Comparison::GreaterThan);
        assert_eq!(
            (
                o.period_seconds,
                o.evaluation_periods,
                o.datapoints_to_alarm
            ),
            (60, 3, 3)
        );
        assert_eq!(o.missing_data, MissingData::Missing);
        assert_eq!(o.evaluation_range(), 5);
        let a = Objective::parse(
            "svc",
            "avail",
            &req(serde_json::json!({"metric": "availability", "warning": 99.9})),
        )
        .unwrap();
        assert_eq!(a.comparison, Comparison::LessThan);
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let r = Objective::parse(
            "-bad",
            "Bad Name",
            &req(serde_json::json!({
                "metric": "latency_p42",
                "comparison": "sideways",
                "resolve_margin": -1,
                "period_seconds": 90,
                "evaluation_periods": 0,
                "datapoints_to_alarm": 2,
                "missing_data": "maybe",
            })),
        );
        assert_eq!(
            fields(r),
            [
                "service",
                "name",
                "metric",
                "comparison",
                "missing_data",
                "resolve_margin",
                "period_seconds",
                "evaluation_periods",
                "datapoints_to_alarm",
                "critical"
            ]
        );
    }

    #[test]
    fn thresholds_are_checked_against_the_metric_and_each_other() {
        let r = Objective::parse(
            "s",
            "e",
            &req(serde_json::json!({"metric": "error_rate", "warning": 150, "critical": -2})),
        );
        assert_eq!(fields(r), ["warning", "critical"]);
        let r = Objective::parse(
            "s",
            "l",
            &req(serde_json::json!({"metric": "latency_p95", "warning": 900, "critical": 500})),
        );
        assert_eq!(fields(r), ["warning"]);
        let r = Objective::parse(
            "s",
            "a",
            &req(serde_json::json!({"metric": "availability", "warning": 99.0, "critical": 99.9})),
        );
        assert_eq!(fields(r), ["warning"]);
        let r = Objective::parse(
            "s",
            "m",
            &req(
                serde_json::json!({"metric": "latency_max", "critical": 500, "period_seconds": 3600, "evaluation_periods": 25}),
            ),
        );
        assert_eq!(fields(r), ["evaluation_periods"]);
    }

    proptest! {
        #[test]
        fn parse_never_panics(metric in "[a-z_0-9]{0,14}", w in proptest::option::of(-1e3f64..1e6), c in proptest::option::of(-1e3f64..1e6), p in proptest::option::of(0u32..100_000), n in proptest::option::of(0u32..2000), m in proptest::option::of(0u32..2000)) {
            let r = ObjectiveRequest { metric: Some(metric), warning: w, critical: c, period_seconds: p, evaluation_periods: n, datapoints_to_alarm: m, ..Default::default() };
            if let Ok(o) = Objective::parse("svc", "obj", &r) {
                prop_assert!(o.datapoints_to_alarm >= 1 && o.datapoints_to_alarm <= o.evaluation_periods);
                prop_assert!(u64::from(o.period_seconds) * u64::from(o.evaluation_periods) <= MAX_EVALUATION_SECONDS);
            }
        }
    }
}
