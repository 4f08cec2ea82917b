//! An objective request as sent, and its `slo` part.

use aloft_shared::strict::{some, some_object};
use serde::{Deserialize, Serialize};

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

/// Bodies as `ApiJson` reads them (an object, each field of its documented type) and then
/// as [`Objective::parse`] validates them: (body, status, first field named).
#[cfg(test)]
mod strict_bodies {
    use super::*;
    use crate::domain::Objective;
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
