//! Objectives: what is measured (a metric of a service), what counts as breaching
//! (comparison and thresholds) and how the evaluation reads the data (CloudWatch's
//! period, M-of-N and missing-data settings). Parsed from requests with every bad field
//! named at once.

use std::fmt;

use aloft_shared::FieldError;
use aloft_shared::dynamo::storable;
use aloft_shared::strict::{some, some_object};
use serde::{Deserialize, Serialize};

/// The largest threshold or margin: far above any latency, rate or percentage, and
/// inside what DynamoDB stores.
pub const MAX_THRESHOLD: f64 = 1e12;

/// A service as its metrics name it: the `Function` dimension of aloft's request metrics,
/// the `Service` dimension of registry heartbeat metrics. Lambda function names and
/// registry service names both fit: 1–128 of letters, digits, `.`, `_`, `-`, starting with
/// a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl ServiceName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        match raw.chars().next() {
            None => Err("must not be empty".into()),
            _ if raw.len() > 128 => Err("must be at most 128 characters".into()),
            Some(c) if !c.is_ascii_alphanumeric() => {
                Err("must start with a letter or digit".into())
            }
            _ if !raw.chars().all(ok_char) => {
                Err("may contain only letters, digits, `.`, `_` and `-`".into())
            }
            _ => Ok(Self(raw.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServiceName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<ServiceName> for String {
    fn from(s: ServiceName) -> Self {
        s.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An objective's name within its service: 1–64 of `a-z`, `0-9`, `_`, `-`, starting with
/// a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectiveName(String);

impl ObjectiveName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        match raw.chars().next() {
            None => Err("must not be empty".into()),
            _ if raw.len() > 64 => Err("must be at most 64 characters".into()),
            Some(c) if !c.is_ascii_lowercase() => Err("must start with a lowercase letter".into()),
            _ if !raw.chars().all(ok_char) => Err("may contain only a-z, 0-9, `_` and `-`".into()),
            _ => Ok(Self(raw.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ObjectiveName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<ObjectiveName> for String {
    fn from(s: ObjectiveName) -> Self {
        s.0
    }
}

impl fmt::Display for ObjectiveName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
            pub fn parse(raw: &str) -> Result<Self, String> {
                match raw {
                    $($s => Ok($name::$variant),)+
                    _ => Err(format!(
                        "must be one of {}",
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum! {
    /// What an objective measures.
    Metric {
        LatencyP50 => "latency_p50",
        LatencyP95 => "latency_p95",
        LatencyP99 => "latency_p99",
        LatencyMax => "latency_max",
        ErrorRate => "error_rate",
        Availability => "availability",
        Throughput => "throughput",
        CpuPercent => "cpu_percent",
        MemoryPercent => "memory_percent",
    }
}

impl Metric {
    /// The side on which the value is bad, when the request does not say.
    pub fn natural_comparison(self) -> Comparison {
        match self {
            Metric::Availability | Metric::Throughput => Comparison::LessThan,
            _ => Comparison::GreaterThan,
        }
    }

    /// Percentages must lie in 0–100.
    pub fn is_percentage(self) -> bool {
        matches!(
            self,
            Metric::ErrorRate | Metric::Availability | Metric::CpuPercent | Metric::MemoryPercent
        )
    }

    pub fn unit(self) -> &'static str {
        match self {
            Metric::LatencyP50 | Metric::LatencyP95 | Metric::LatencyP99 | Metric::LatencyMax => {
                "ms"
            }
            Metric::Throughput => "requests/s",
            _ => "percent",
        }
    }
}

string_enum! {
    /// On which side of a threshold a value breaches (CloudWatch's
    /// `GreaterThanThreshold` / `LessThanThreshold`; equal is not breaching).
    Comparison {
        GreaterThan => "greater_than",
        LessThan => "less_than",
    }
}

impl Comparison {
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThan => value > threshold,
            Comparison::LessThan => value < threshold,
        }
    }

    /// `threshold` moved by `margin` towards the good side: the line a firing alert's
    /// value must cross to resolve.
    pub fn toward_good(self, threshold: f64, margin: f64) -> f64 {
        match self {
            Comparison::GreaterThan => threshold - margin,
            Comparison::LessThan => threshold + margin,
        }
    }
}

string_enum! {
    /// CloudWatch's `TreatMissingData`.
    MissingData {
        Missing => "missing",
        Breaching => "breaching",
        NotBreaching => "not_breaching",
        Ignore => "ignore",
    }
}

/// A service-level objective: `target` percent of requests succeed over `window_days`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    pub target: f64,
    pub window_days: u32,
}

impl Slo {
    /// The share of requests allowed to fail (0.001 for 99.9 %).
    pub fn error_budget(&self) -> f64 {
        1.0 - self.target / 100.0
    }
}

/// A valid objective. Thresholds are in the metric's unit (ms, percent, requests/s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub service: ServiceName,
    pub name: ObjectiveName,
    pub metric: Metric,
    pub comparison: Comparison,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    pub resolve_margin: f64,
    pub period_seconds: u32,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub missing_data: MissingData,
    pub slo: Option<Slo>,
}

/// `PUT /services/{service}/objectives/{name}` as sent. No field is nullable in the spec:
/// `null`, or `slo` written as an array, is a wrong type (422 naming it), not "absent".
/// Written back out (never with a `null`), it reads again as it was.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveRequest {
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub metric: Option<String>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub comparison: Option<String>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub warning: Option<f64>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub critical: Option<f64>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub resolve_margin: Option<f64>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub period_seconds: Option<u32>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub evaluation_periods: Option<u32>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub datapoints_to_alarm: Option<u32>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub missing_data: Option<String>,
    #[serde(
        default,
        deserialize_with = "some_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub slo: Option<SloRequest>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SloRequest {
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub target: Option<f64>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub window_days: Option<u32>,
}

pub const DEFAULT_PERIOD_SECONDS: u32 = 60;
pub const DEFAULT_EVALUATION_PERIODS: u32 = 3;
/// CloudWatch's limit: evaluation periods × period at most one day.
pub const MAX_EVALUATION_SECONDS: u64 = 24 * 3600;
pub const MAX_SLO_WINDOW_DAYS: u32 = 90;

/// Collects field errors so a request learns every problem at once.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// The value, or `None` with the error recorded against `field`.
    pub fn check<T>(&mut self, field: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.add(field, e)).ok()
    }

    pub fn finish<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            if let Some(v) = value() {
                return Ok(v);
            }
        }
        Err(self.0)
    }
}

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

    /// CloudWatch's evaluation range: the periods read to find `evaluation_periods` real
    /// datapoints (5 for 3, as in CloudWatch's documented examples).
    pub fn evaluation_range(&self) -> u32 {
        self.evaluation_periods + 2
    }

    pub fn threshold(&self, severity: super::Severity) -> Option<f64> {
        match severity {
            super::Severity::Warning => self.warning,
            super::Severity::Critical => self.critical,
        }
    }
}

fn parse_slo(s: &SloRequest, metric: Option<Metric>, e: &mut Errors) -> Option<Slo> {
    if let Some(m) = metric {
        if !matches!(m, Metric::Availability | Metric::ErrorRate) {
            e.add(
                "slo",
                "only availability and error_rate objectives take an slo",
            );
        }
    }
    let target = match s.target {
        None => {
            e.add("slo.target", "is required");
            None
        }
        Some(t) if !(t.is_finite() && (0.001..100.0).contains(&t)) => {
            e.add(
                "slo.target",
                "must be a percentage from 0.001 to below 100, e.g. 99.9",
            );
            None
        }
        Some(t) => Some(t),
    };
    let window_days = match s.window_days.unwrap_or(30) {
        d if (1..=MAX_SLO_WINDOW_DAYS).contains(&d) => Some(d),
        _ => {
            e.add(
                "slo.window_days",
                format!("must be from 1 to {MAX_SLO_WINDOW_DAYS}"),
            );
            None
        }
    };
    Some(Slo {
        target: target?,
        window_days: window_days?,
    })
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

    #[test]
    fn slos_belong_to_availability_and_error_rate() {
        let ok = Objective::parse(
            "s",
            "slo",
            &req(serde_json::json!({"metric": "availability", "slo": {"target": 99.9}})),
        )
        .unwrap();
        assert_eq!(
            ok.slo,
            Some(Slo {
                target: 99.9,
                window_days: 30
            })
        );
        assert!((ok.slo.unwrap().error_budget() - 0.001).abs() < 1e-12);
        let r = Objective::parse(
            "s",
            "slo",
            &req(
                serde_json::json!({"metric": "latency_p99", "slo": {"target": 100, "window_days": 0}}),
            ),
        );
        assert_eq!(fields(r), ["slo", "slo.target", "slo.window_days"]);
    }

    proptest! {
        #[test]
        fn service_names_round_trip_or_are_refused(s in "\\PC{0,140}") {
            match ServiceName::parse(&s) {
                Ok(n) => {
                    prop_assert_eq!(n.as_str(), s.as_str());
                    prop_assert!(s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)));
                }
                Err(_) => prop_assert!(s.is_empty() || s.len() > 128 || !s.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)) || !s.starts_with(|c: char| c.is_ascii_alphanumeric())),
            }
        }

        #[test]
        fn objective_names_never_panic_and_accept_only_the_alphabet(s in "[a-zA-Z0-9_ -]{0,70}") {
            let ok = ObjectiveName::parse(&s).is_ok();
            let expected = !s.is_empty() && s.len() <= 64 && s.starts_with(|c: char| c.is_ascii_lowercase())
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            prop_assert_eq!(ok, expected);
        }

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

/// Bodies as `ApiJson` reads them (an object, each field of its documented type) and then
/// as [`Objective::parse`] validates them: (body, status, first field named).
#[cfg(test)]
mod strict_bodies {
    use super::*;
    use aloft_shared::extract::parse_json;
    use aloft_shared::strict::Object;

    fn answer(body: &str) -> (u16, Option<String>) {
        match parse_json::<Object<ObjectiveRequest>>(body.as_bytes()) {
            Err(p) => (p.status, p.errors.first().map(|e| e.field.clone())),
            Ok(Object(req)) => match Objective::parse("checkout", "latency", &req) {
                Ok(_) => (200, None),
                Err(errors) => (422, errors.first().map(|e| e.field.clone())),
            },
        }
    }

    #[test]
    fn objective_bodies_are_the_documented_shape() {
        let cases: &[(&str, u16, Option<&str>)] = &[
            (r#"{"metric": "latency_p99", "critical": 500}"#, 200, None),
            (
                r#"{"metric": "availability", "slo": {"target": 99.9}}"#,
                200,
                None,
            ),
            // A whole number written as a float is that integer.
            (
                r#"{"metric": "latency_p99", "critical": 500, "period_seconds": 300.0,
                    "evaluation_periods": 3.0, "datapoints_to_alarm": 2.0}"#,
                200,
                None,
            ),
            (
                r#"{"metric": "availability", "slo": {"target": 99.9, "window_days": 30.0}}"#,
                200,
                None,
            ),
            (r#"["latency_p99", null, null, 500]"#, 422, Some("body")),
            (r#"null"#, 422, Some("body")),
            (r#"{"metric": null, "critical": 500}"#, 422, Some("metric")),
            (
                r#"{"metric": "latency_p99", "critical": null}"#,
                422,
                Some("critical"),
            ),
            (
                r#"{"metric": "latency_p99", "critical": "500"}"#,
                422,
                Some("critical"),
            ),
            (
                r#"{"metric": "latency_p99", "critical": 500, "comparison": null}"#,
                422,
                Some("comparison"),
            ),
            (
                r#"{"metric": "latency_p99", "critical": 500, "missing_data": null}"#,
                422,
                Some("missing_data"),
            ),
            (
                r#"{"metric": "latency_p99", "critical": 500, "period_seconds": null}"#,
                422,
                Some("period_seconds"),
            ),
            (
                r#"{"metric": "latency_p99", "critical": 500, "period_seconds": 60.5}"#,
                422,
                Some("period_seconds"),
            ),
            (
                r#"{"metric": "availability", "slo": null}"#,
                422,
                Some("slo"),
            ),
            (
                r#"{"metric": "availability", "slo": [99.9, 30]}"#,
                422,
                Some("slo"),
            ),
            (
                r#"{"metric": "availability", "slo": {"target": null}}"#,
                422,
                Some("slo.target"),
            ),
            (
                r#"{"metric": "availability", "slo": {"target": 99.9, "window_days": null}}"#,
                422,
                Some("slo.window_days"),
            ),
            (
                r#"{"metric": "availability", "slo": {}}"#,
                422,
                Some("slo.target"),
            ),
            (
                r#"{"metric": "availability", "slo": {"goal": 1}}"#,
                400,
                Some("slo.goal"),
            ),
        ];
        for (body, status, field) in cases {
            assert_eq!(answer(body), (*status, field.map(str::to_owned)), "{body}");
        }
    }

    #[test]
    fn a_request_written_out_reads_back() {
        let req: ObjectiveRequest =
            serde_json::from_str(r#"{"metric": "availability", "slo": {"target": 99.9}}"#).unwrap();
        let json = serde_json::to_string(&req).unwrap();
        assert!(!json.contains("null"), "{json}");
        let again: ObjectiveRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&again).unwrap(), json);
    }
}
