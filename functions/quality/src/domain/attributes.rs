//! A service's quality attributes as its owners state them (performance, reliability, and
//! the declarative security, maintainability and usability), and the objectives the
//! measurable ones become.

use aloft_shared::FieldError;
use aloft_shared::strict::{some, some_object};
use serde::{Deserialize, Serialize};

use super::field_errors::Errors;
use super::objective::{Objective, ObjectiveRequest, SloRequest};

/// `PUT /services/{service}/quality-attributes` as sent; stored as sent.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QualityAttributes {
    #[serde(
        default,
        deserialize_with = "some_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub performance: Option<Performance>,
    #[serde(
        default,
        deserialize_with = "some_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub reliability: Option<Reliability>,
    /// Declarative: stored and shown, not measured.
    #[serde(
        default,
        deserialize_with = "some_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub security: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(
        default,
        deserialize_with = "some_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub maintainability: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(
        default,
        deserialize_with = "some_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub usability: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Performance {
    #[serde(
        default,
        deserialize_with = "some_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_time_ms: Option<ResponseTime>,
    /// The lowest acceptable request rate.
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub throughput_rps: Option<f64>,
    #[serde(
        default,
        deserialize_with = "some_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_usage: Option<ResourceUsage>,
    /// Targets for where the time goes; shown beside the measured breakdown.
    #[serde(
        default,
        deserialize_with = "some_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub latency_breakdown_ms: Option<LatencyBreakdown>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseTime {
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub p50: Option<f64>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub p95: Option<f64>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub p99: Option<f64>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceUsage {
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_percent: Option<f64>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_percent: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyBreakdown {
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub database: Option<f64>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub network: Option<f64>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub processing: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Reliability {
    /// Over the default 30-day SLO window.
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub availability_percent: Option<f64>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub failure_rate_percent: Option<f64>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub mttr_minutes: Option<f64>,
}

impl QualityAttributes {
    /// Attributes as stored (`serde_json::to_string` of what was sent). Items written
    /// before bodies were strict have a `null` for every attribute left out, which meant
    /// "absent" and still does here; only the documented objects are cleaned, never the
    /// free-form declarative maps, whose values are stored as sent.
    pub fn from_stored(json: &str) -> Result<Self, serde_json::Error> {
        use serde_json::Value;
        fn drop_null_members(v: &mut Value) {
            if let Value::Object(fields) = v {
                fields.retain(|_, f| !f.is_null());
                fields.values_mut().for_each(drop_null_members);
            }
        }
        let mut value: Value = serde_json::from_str(json)?;
        if let Value::Object(top) = &mut value {
            top.retain(|_, f| !f.is_null());
            for measured in ["performance", "reliability"] {
                if let Some(v) = top.get_mut(measured) {
                    drop_null_members(v);
                }
            }
        }
        serde_json::from_value(value)
    }
}

/// What a `PUT` of attributes became.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributePlan {
    /// Objectives the measured attributes become (named `attr-…`).
    #[serde(skip)]
    pub objectives: Vec<Objective>,
    /// Attribute paths evaluated as objectives, or measured and shown (breakdown, MTTR).
    pub measured: Vec<String>,
    /// Attribute paths stored and shown but not measured.
    pub not_measured: Vec<String>,
}

/// Prefix of the objectives attributes own; a `PUT` of attributes replaces all of them.
pub const ATTRIBUTE_OBJECTIVE_PREFIX: &str = "attr-";

impl QualityAttributes {
    /// The objectives of `service`'s measurable attributes; every bad value named.
    pub fn plan(&self, service: &str) -> Result<AttributePlan, Vec<FieldError>> {
        let mut e = Errors::default();
        let mut objectives = Vec::new();
        let mut measured = Vec::new();
        let mut not_measured = Vec::new();
        let mut add = |path: &str, name: &str, req: ObjectiveRequest, e: &mut Errors| {
            measured.push(path.to_owned());
            match Objective::parse(
                service,
                &format!("{ATTRIBUTE_OBJECTIVE_PREFIX}{name}"),
                &req,
            ) {
                Ok(o) => objectives.push(o),
                // The first problem is the one to fix; the rest usually follow from it.
                Err(errs) => {
                    if let Some(fe) = errs.into_iter().next() {
                        e.add(path, fe.message);
                    }
                }
            }
        };
        let threshold = |metric: &str, critical: f64| ObjectiveRequest {
            metric: Some(metric.into()),
            critical: Some(critical),
            ..ObjectiveRequest::default()
        };
        let perf = self.performance.clone().unwrap_or_default();
        let rt = perf.response_time_ms.unwrap_or_default();
        for (key, metric, v) in [
            ("p50", "latency_p50", rt.p50),
            ("p95", "latency_p95", rt.p95),
            ("p99", "latency_p99", rt.p99),
            ("max", "latency_max", rt.max),
        ] {
            if let Some(v) = v {
                add(
                    &format!("performance.response_time_ms.{key}"),
                    &format!("latency-{key}"),
                    threshold(metric, v),
                    &mut e,
                );
            }
        }
        if let Some(v) = perf.throughput_rps {
            add(
                "performance.throughput_rps",
                "throughput",
                threshold("throughput", v),
                &mut e,
            );
        }
        let ru = perf.resource_usage.unwrap_or_default();
        if let Some(v) = ru.cpu_percent {
            add(
                "performance.resource_usage.cpu_percent",
                "cpu",
                threshold("cpu_percent", v),
                &mut e,
            );
        }
        if let Some(v) = ru.memory_percent {
            add(
                "performance.resource_usage.memory_percent",
                "memory",
                threshold("memory_percent", v),
                &mut e,
            );
        }
        let rel = self.reliability.clone().unwrap_or_default();
        if let Some(v) = rel.availability_percent {
            let req = ObjectiveRequest {
                metric: Some("availability".into()),
                critical: Some(v),
                slo: Some(SloRequest {
                    target: Some(v),
                    window_days: None,
                }),
                ..ObjectiveRequest::default()
            };
            add(
                "reliability.availability_percent",
                "availability",
                req,
                &mut e,
            );
        }
        if let Some(v) = rel.failure_rate_percent {
            add(
                "reliability.failure_rate_percent",
                "error-rate",
                threshold("error_rate", v),
                &mut e,
            );
        }
        if perf.latency_breakdown_ms.is_some() {
            measured.push("performance.latency_breakdown_ms".into());
        }
        if let Some(v) = rel.mttr_minutes {
            if !(v.is_finite() && v > 0.0) {
                e.add(
                    "reliability.mttr_minutes",
                    "must be a positive number of minutes",
                );
            }
            measured.push("reliability.mttr_minutes".into());
        }
        for (name, v) in [
            ("security", &self.security),
            ("maintainability", &self.maintainability),
            ("usability", &self.usability),
        ] {
            if v.is_some() {
                not_measured.push(name.into());
            }
        }
        e.finish(|| {
            Some(AttributePlan {
                objectives,
                measured,
                not_measured,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::objective::Metric;

    fn attrs(json: serde_json::Value) -> QualityAttributes {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn measurable_attributes_become_objectives_and_the_rest_is_named() {
        let a = attrs(serde_json::json!({
            "performance": {"response_time_ms": {"p95": 200, "p99": 500}, "throughput_rps": 5,
                             "resource_usage": {"cpu_percent": 80}, "latency_breakdown_ms": {"database": 50}},
            "reliability": {"availability_percent": 99.9, "failure_rate_percent": 0.1, "mttr_minutes": 30},
            "security": {"authentication": "api keys"},
            "usability": {"docs": "openapi"}
        }));
        let plan = a.plan("UsersFunction").unwrap();
        let names: Vec<_> = plan
            .objectives
            .iter()
            .map(|o| (o.name.as_str().to_owned(), o.metric))
            .collect();
        assert_eq!(
            names,
            [
                ("attr-latency-p95".into(), Metric::LatencyP95),
                ("attr-latency-p99".into(), Metric::LatencyP99),
                ("attr-throughput".into(), Metric::Throughput),
                ("attr-cpu".into(), Metric::CpuPercent),
                ("attr-availability".into(), Metric::Availability),
                ("attr-error-rate".into(), Metric::ErrorRate),
            ]
        );
        let availability = &plan.objectives[4];
        assert_eq!(availability.slo.map(|s| s.target), Some(99.9));
        assert!(
            plan.measured
                .contains(&"reliability.mttr_minutes".to_owned())
        );
        assert!(
            plan.measured
                .contains(&"performance.latency_breakdown_ms".to_owned())
        );
        assert_eq!(plan.not_measured, ["security", "usability"]);
    }

    #[test]
    fn bad_attributes_are_named_by_their_path() {
        let a = attrs(serde_json::json!({
            "performance": {"response_time_ms": {"p99": -5}},
            "reliability": {"availability_percent": 120, "mttr_minutes": 0}
        }));
        let fields: Vec<_> = a
            .plan("svc")
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "performance.response_time_ms.p99",
                "reliability.availability_percent",
                "reliability.mttr_minutes"
            ]
        );
    }

    #[test]
    fn stored_attributes_read_back_old_and_new() {
        // As stored before bodies were strict: every attribute left out written as null.
        let old = r#"{"performance":{"response_time_ms":{"p50":null,"p95":200.0,"p99":null,"max":null},"throughput_rps":null,"resource_usage":null,"latency_breakdown_ms":null},"reliability":null,"security":{"mfa":null},"maintainability":null,"usability":null}"#;
        let a = QualityAttributes::from_stored(old).unwrap();
        let p95 = a
            .performance
            .as_ref()
            .and_then(|p| p.response_time_ms.as_ref());
        assert_eq!(p95.and_then(|r| r.p95), Some(200.0));
        assert!(a.reliability.is_none() && a.usability.is_none());
        // A free-form map keeps its values as sent.
        let security = a.security.as_ref().unwrap();
        assert_eq!(security.get("mfa"), Some(&serde_json::Value::Null));
        // As stored now: no nulls, and it reads back the same.
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json.matches("null").count(), 1, "{json}");
        assert_eq!(QualityAttributes::from_stored(&json).unwrap(), a);
    }

    #[test]
    fn unknown_attribute_fields_are_refused() {
        let r: Result<QualityAttributes, _> =
            serde_json::from_value(serde_json::json!({"performance": {"latency": 5}}));
        assert!(r.is_err());
    }
}
