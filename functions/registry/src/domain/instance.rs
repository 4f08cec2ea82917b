//! An instance, its lease and health, and what a heartbeat carries.

use std::collections::BTreeMap;

use aloft_shared::FieldError;
use serde::{Deserialize, Serialize};

use super::strict::{some, some_enum, some_object};
use super::{HealthCheck, Registration, ServiceName};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Passing,
    Warning,
    Critical,
}

/// Load an instance reports with its heartbeat, as stored and shown (`null` for what
/// was not reported).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    pub requests_per_second: Option<f64>,
    pub latency_ms_p95: Option<f64>,
}

/// `load` as a heartbeat sends it: an object of numbers, each optional but never `null`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    #[serde(default, deserialize_with = "some")]
    cpu_percent: Option<f64>,
    #[serde(default, deserialize_with = "some")]
    memory_percent: Option<f64>,
    #[serde(default, deserialize_with = "some")]
    requests_per_second: Option<f64>,
    #[serde(default, deserialize_with = "some")]
    latency_ms_p95: Option<f64>,
}

impl From<LoadRequest> for Load {
    fn from(l: LoadRequest) -> Self {
        // Stored as DynamoDB numbers, which cannot hold magnitudes below 1e-130.
        let storable = |v: Option<f64>| v.map(aloft_shared::dynamo::storable);
        Self {
            cpu_percent: storable(l.cpu_percent),
            memory_percent: storable(l.memory_percent),
            requests_per_second: storable(l.requests_per_second),
            latency_ms_p95: storable(l.latency_ms_p95),
        }
    }
}

impl Load {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut check = |name: &str, v: Option<f64>, max: f64| {
            if let Some(v) = v
                && (!v.is_finite() || v < 0.0 || v > max)
            {
                errors.push(FieldError::new(
                    format!("load.{name}"),
                    format!("must be from 0 to {max}"),
                ));
            }
        };
        check("cpu_percent", self.cpu_percent, 100.0);
        check("memory_percent", self.memory_percent, 100.0);
        check("requests_per_second", self.requests_per_second, 1e9);
        check("latency_ms_p95", self.latency_ms_p95, 3.6e6);
        errors
    }

    /// One number to compare instances by for `least_loaded`: the busiest resource, with
    /// nothing reported counting as idle.
    pub fn score(&self) -> f64 {
        [self.cpu_percent, self.memory_percent]
            .into_iter()
            .flatten()
            .fold(0.0, f64::max)
    }
}

/// `PUT .../heartbeat` body (read through [`super::Object`]: a JSON object only).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    #[serde(default, deserialize_with = "some_enum")]
    pub status: Option<HealthStatus>,
    #[serde(default, deserialize_with = "some_object")]
    pub load: Option<LoadRequest>,
}

impl HeartbeatRequest {
    /// The load reported, if any and in bounds.
    pub fn load(&self) -> Result<Option<Load>, Vec<FieldError>> {
        let load = self.load.map(Load::from);
        let errors = load.map(|l| l.validate()).unwrap_or_default();
        if errors.is_empty() {
            Ok(load)
        } else {
            Err(errors)
        }
    }
}

/// An instance as the registry holds it. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub service: ServiceName,
    pub instance_id: String,
    pub address: String,
    pub port: Option<u16>,
    pub version: Option<String>,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub weight: u32,
    pub ttl_seconds: u32,
    pub status: HealthStatus,
    pub load: Option<Load>,
    pub lease_expires_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<HealthCheck>,
    /// Consecutive failed HTTP checks.
    #[serde(default)]
    pub check_failures: u32,
}

impl Instance {
    /// The instance a registration describes, its lease starting now.
    pub fn register(
        service: ServiceName,
        instance_id: String,
        r: &Registration,
        now_ms: i64,
    ) -> Self {
        Self {
            service,
            instance_id,
            address: r.address.clone(),
            port: r.port,
            version: r.version.clone(),
            tags: r.tags.clone(),
            meta: r.meta.clone(),
            weight: r.weight,
            ttl_seconds: r.ttl_seconds,
            status: HealthStatus::Passing,
            load: None,
            lease_expires_at_ms: lease_expiry(now_ms, r.ttl_seconds),
            check: r.check.clone(),
            check_failures: 0,
        }
    }

    /// A lease is alive until its expiry, whatever the sweep has or hasn't done yet.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.lease_expires_at_ms > now_ms
    }

    /// Healthy means: lease alive and status passing.
    pub fn is_healthy(&self, now_ms: i64) -> bool {
        self.is_live(now_ms) && self.status == HealthStatus::Passing
    }

    /// The status discovery shows: a lapsed lease is `critical` whatever the instance
    /// last reported.
    pub fn effective_status(&self, now_ms: i64) -> HealthStatus {
        if self.is_live(now_ms) {
            self.status
        } else {
            HealthStatus::Critical
        }
    }
}

/// When a lease renewed at `now_ms` with `ttl_seconds` lapses.
pub fn lease_expiry(now_ms: i64, ttl_seconds: u32) -> i64 {
    now_ms + i64::from(ttl_seconds) * 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Object;
    use aloft_shared::extract::parse_json;

    #[test]
    fn load_is_bounded() {
        let l = Load {
            cpu_percent: Some(101.0),
            latency_ms_p95: Some(f64::NAN),
            ..Default::default()
        };
        let fields: Vec<_> = l.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["load.cpu_percent", "load.latency_ms_p95"]);
    }

    #[test]
    fn a_heartbeat_body_is_the_documented_object_or_a_422() {
        let parse = |b: &str| parse_json::<Object<HeartbeatRequest>>(b.as_bytes());
        assert!(parse("{}").is_ok());
        assert!(parse(r#"{"status": "warning", "load": {"cpu_percent": 3}}"#).is_ok());
        for (body, field) in [
            ("[null, null]", "body"),
            ("null", "body"),
            (r#"{"status": null}"#, "status"),
            (r#"{"status": "sick"}"#, "status"),
            (r#"{"load": null}"#, "load"),
            (r#"{"load": [1, 2]}"#, "load"),
            (r#"{"load": {"cpu_percent": "high"}}"#, "load.cpu_percent"),
        ] {
            let p = parse(body).unwrap_err();
            let named = p.errors.first().map(|e| e.field.as_str());
            assert_eq!((p.status, named), (422, Some(field)), "{body}: {p:?}");
        }
    }

    mod properties {
        use super::super::*;
        use crate::domain::Object;
        use aloft_shared::extract::parse_json;
        use proptest::prelude::*;

        fn number() -> impl Strategy<Value = f64> {
            prop_oneof![
                any::<f64>(),
                -1.0f64..120.0,
                proptest::sample::select(vec![
                    0.0,
                    -0.0,
                    100.0,
                    100.0f64.next_up(),
                    1e9,
                    3.6e6,
                    f64::NAN
                ]),
            ]
        }

        proptest! {
            /// Each reported number is kept when in its range, else named; never `NaN`.
            #[test]
            fn load_is_kept_exactly_when_in_range(
                cpu in proptest::option::of(number()),
                mem in proptest::option::of(number()),
                rps in proptest::option::of(number()),
                p95 in proptest::option::of(number()),
            ) {
                let load = Load { cpu_percent: cpu, memory_percent: mem, requests_per_second: rps, latency_ms_p95: p95 };
                let errors: Vec<String> = load.validate().into_iter().map(|e| e.field).collect();
                let out = |v: Option<f64>, max: f64| v.is_some_and(|v| !(0.0..=max).contains(&v));
                let mut expected = Vec::new();
                for (name, v, max) in [
                    ("cpu_percent", cpu, 100.0),
                    ("memory_percent", mem, 100.0),
                    ("requests_per_second", rps, 1e9),
                    ("latency_ms_p95", p95, 3.6e6),
                ] {
                    if out(v, max) {
                        expected.push(format!("load.{name}"));
                    }
                }
                prop_assert_eq!(&errors, &expected);
                if errors.is_empty() {
                    prop_assert!((0.0..=100.0).contains(&load.score()));
                }
            }

            /// Any heartbeat body: the documented object, or a 400/422; never a panic.
            #[test]
            fn any_heartbeat_body_is_read_or_refused(
                body in "\\{(\"(status|load|cpu_percent|x)\": ?(\"(passing|warning|critical|sick)\"|null|-?[0-9]{1,4}(\\.[0-9])?|\\{(\"(cpu_percent|memory_percent|latency_ms_p95)\": ?(-?[0-9e.]{1,6}|null|\"x\"),?){0,3}\\}|\\[\\]),?){0,3}\\}|\\PC{0,20}",
            ) {
                match parse_json::<Object<HeartbeatRequest>>(body.as_bytes()) {
                    Ok(Object(hb)) => {
                        if let Ok(Some(load)) = hb.load() {
                            prop_assert!(load.validate().is_empty());
                        }
                    }
                    Err(p) => prop_assert!(p.status == 400 || p.status == 422, "{}", p),
                }
            }
        }
    }
}
