//! The rules of the registry, free of I/O: what a valid registration is, when a lease is
//! alive, which instances a discovery query returns, how resolve picks one, and when the
//! sweep must hold back (self-preservation).

use std::collections::BTreeMap;

use aloft_shared::FieldError;
use serde::{Deserialize, Serialize};

pub const MAX_TAGS: usize = 32;
pub const MAX_META: usize = 32;
pub const WEIGHT_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;
pub const DEFAULT_WEIGHT: u32 = 100;
pub const TTL_RANGE: std::ops::RangeInclusive<u32> = 5..=3600;
pub const DEFAULT_TTL_SECONDS: u32 = 30;
pub const CHECK_INTERVAL_RANGE: std::ops::RangeInclusive<u32> = 5..=3600;
pub const DEFAULT_CHECK_INTERVAL_SECONDS: u32 = 30;
pub const CHECK_TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 100..=10_000;
pub const DEFAULT_CHECK_TIMEOUT_MS: u32 = 2_000;
/// Consecutive failed checks after which an instance is `critical` (one makes it
/// `warning`; one success makes it `passing` again).
pub const FAILURES_BEFORE_CRITICAL: u32 = 3;
/// Share of a service's instances that may lapse in one sweep before the sweep suspects
/// a partition rather than deaths, and evicts none (Eureka's self-preservation).
pub const DEFAULT_SELF_PRESERVATION_THRESHOLD: f64 = 0.85;

/// A service name: a DNS label (1–63 of `a-z`, `0-9`, `-`; starts with a letter; does not
/// end with `-`), so it can be used in hostnames and metric dimensions as is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl ServiceName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = (1..=63).contains(&raw.len())
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && !raw.ends_with('-')
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(
                "must be 1 to 63 of a-z, 0-9 and '-', start with a letter and not end with '-'"
                    .into(),
            )
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServiceName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ServiceName> for String {
    fn from(n: ServiceName) -> Self {
        n.0
    }
}

/// Tags and instance ids: 1–128 of letters, digits and `. _ - : =`.
fn is_token(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'='))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Passing,
    Warning,
    Critical,
}

/// Load an instance reports with its heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    pub requests_per_second: Option<f64>,
    pub latency_ms_p95: Option<f64>,
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

/// `POST /services/{service}/instances` body as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub instance_id: Option<String>,
    pub address: Option<String>,
    pub port: Option<u32>,
    pub version: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    pub weight: Option<u32>,
    pub ttl_seconds: Option<u32>,
    pub check: Option<CheckRequest>,
    pub depends_on: Option<Vec<String>>,
}

/// The `check` of a registration as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub http: Option<String>,
    pub interval_seconds: Option<u32>,
    pub timeout_ms: Option<u32>,
}

/// An HTTP health check the sweep runs against an instance: a GET that must answer 2xx
/// within `timeout_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub http: String,
    pub interval_seconds: u32,
    pub timeout_ms: u32,
}

impl HealthCheck {
    /// `address` is the instance's own: a check probes the instance it belongs to, never
    /// another host (the sweep must not become a way to reach arbitrary endpoints).
    fn parse(req: &CheckRequest, address: &str, errors: &mut Vec<FieldError>) -> Option<Self> {
        let before = errors.len();
        let http = req.http.as_deref().map(str::trim).unwrap_or_default();
        if req.http.is_none() {
            errors.push(FieldError::new("check.http", "is required"));
        } else if !(http.starts_with("http://") || http.starts_with("https://"))
            || http.len() > 2048
            || http.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            errors.push(FieldError::new(
                "check.http",
                "must be an http:// or https:// URL of at most 2048 characters",
            ));
        } else {
            match url_host(http) {
                Some(host) if host.starts_with("169.254.") => errors.push(FieldError::new(
                    "check.http",
                    "must not point at a link-local address (169.254.0.0/16)",
                )),
                Some(host) if host.eq_ignore_ascii_case(address) => {}
                _ => errors.push(FieldError::new(
                    "check.http",
                    format!("must point at the instance's own address ({address})"),
                )),
            }
        }
        let interval_seconds = req
            .interval_seconds
            .unwrap_or(DEFAULT_CHECK_INTERVAL_SECONDS);
        if !CHECK_INTERVAL_RANGE.contains(&interval_seconds) {
            errors.push(FieldError::new(
                "check.interval_seconds",
                "must be from 5 to 3600",
            ));
        }
        let timeout_ms = req.timeout_ms.unwrap_or(DEFAULT_CHECK_TIMEOUT_MS);
        if !CHECK_TIMEOUT_RANGE.contains(&timeout_ms) {
            errors.push(FieldError::new(
                "check.timeout_ms",
                "must be from 100 to 10000",
            ));
        }
        (errors.len() == before).then(|| Self {
            http: http.to_owned(),
            interval_seconds,
            timeout_ms,
        })
    }
}

/// The host of an `http(s)://` URL (brackets of an IPv6 literal removed), or `None` if
/// it has user info or no host.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') || authority.is_empty() {
        return None;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then_some(host)
}

/// An instance's status and consecutive failure count after one check.
pub fn after_check(failures_before: u32, passed: bool) -> (HealthStatus, u32) {
    if passed {
        return (HealthStatus::Passing, 0);
    }
    let failures = failures_before.saturating_add(1);
    let status = if failures >= FAILURES_BEFORE_CRITICAL {
        HealthStatus::Critical
    } else {
        HealthStatus::Warning
    };
    (status, failures)
}

/// A validated registration.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub instance_id: Option<String>,
    pub address: String,
    pub port: Option<u16>,
    pub version: Option<String>,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub weight: u32,
    pub ttl_seconds: u32,
    pub check: Option<HealthCheck>,
    pub depends_on: Vec<ServiceName>,
}

impl Registration {
    pub fn parse(req: RegisterRequest) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut fail = |f: &str, m: String| errors.push(FieldError::new(f, m));
        if let Some(id) = &req.instance_id
            && !is_token(id, 128)
        {
            fail(
                "instance_id",
                "must be 1 to 128 of letters, digits and . _ - : =".into(),
            );
        }
        let address = req
            .address
            .as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        let address_ok = (1..=253).contains(&address.len())
            && address.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
        if req.address.is_none() {
            fail("address", "is required".into());
        } else if !address_ok {
            fail("address", "must be a hostname or IP address".into());
        }
        let port = match req.port {
            None => None,
            Some(p) => match u16::try_from(p) {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    fail("port", "must be from 1 to 65535".into());
                    None
                }
            },
        };
        if let Some(v) = &req.version
            && !is_token(v, 64)
        {
            fail(
                "version",
                "must be 1 to 64 of letters, digits and . _ - : =".into(),
            );
        }
        if req.tags.len() > MAX_TAGS {
            fail("tags", format!("must have at most {MAX_TAGS} tags"));
        }
        for (i, t) in req.tags.iter().enumerate() {
            if !is_token(t, 128) {
                fail(
                    &format!("tags[{i}]"),
                    "must be 1 to 128 of letters, digits and . _ - : =".into(),
                );
            }
        }
        if req.meta.len() > MAX_META {
            fail("meta", format!("must have at most {MAX_META} keys"));
        }
        for (k, v) in &req.meta {
            if !is_token(k, 64) || v.len() > 512 {
                fail(
                    &format!("meta.{k}"),
                    "keys are 1 to 64 of letters, digits and . _ - : =; values at most 512 bytes"
                        .into(),
                );
            }
        }
        let weight = req.weight.unwrap_or(DEFAULT_WEIGHT);
        if !WEIGHT_RANGE.contains(&weight) {
            fail("weight", "must be from 1 to 1000".into());
        }
        let ttl_seconds = req.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        if !TTL_RANGE.contains(&ttl_seconds) {
            fail("ttl_seconds", "must be from 5 to 3600".into());
        }
        let check = req
            .check
            .as_ref()
            .and_then(|c| HealthCheck::parse(c, &address, &mut errors));
        let mut fail = |f: &str, m: String| errors.push(FieldError::new(f, m));
        let mut depends_on = Vec::new();
        for (i, d) in req.depends_on.unwrap_or_default().iter().enumerate() {
            match ServiceName::parse(d) {
                Ok(n) => depends_on.push(n),
                Err(m) => fail(&format!("depends_on[{i}]"), m),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut tags = req.tags;
        tags.sort();
        tags.dedup();
        Ok(Self {
            instance_id: req.instance_id,
            address,
            port,
            version: req.version,
            tags,
            meta: req.meta,
            weight,
            ttl_seconds,
            check,
            depends_on,
        })
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
}

/// When a lease renewed at `now_ms` with `ttl_seconds` lapses.
pub fn lease_expiry(now_ms: i64, ttl_seconds: u32) -> i64 {
    now_ms + i64::from(ttl_seconds) * 1000
}

impl Instance {
    /// A lease is alive until its expiry, whatever the sweep has or hasn't done yet.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.lease_expires_at_ms > now_ms
    }

    /// Healthy means: lease alive and status passing.
    pub fn is_healthy(&self, now_ms: i64) -> bool {
        self.is_live(now_ms) && self.status == HealthStatus::Passing
    }
}

/// Which instances a discovery query asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryFilter {
    pub healthy_only: bool,
    pub tags: Vec<String>,
    pub version: Option<String>,
    pub meta: BTreeMap<String, String>,
}

impl DiscoveryFilter {
    pub fn matches(&self, i: &Instance) -> bool {
        self.tags.iter().all(|t| i.tags.contains(t))
            && self
                .version
                .as_ref()
                .is_none_or(|v| i.version.as_ref() == Some(v))
            && self.meta.iter().all(|(k, v)| i.meta.get(k) == Some(v))
    }

    /// The instances to answer with, and whether the answer fell back to all matching
    /// instances because none was healthy (Cloud Map's `HEALTHY_OR_ELSE_ALL`).
    pub fn select<'a>(
        &self,
        instances: &'a [Instance],
        now_ms: i64,
        fail_open: bool,
    ) -> (Vec<&'a Instance>, bool) {
        let matching: Vec<&Instance> = instances.iter().filter(|i| self.matches(i)).collect();
        if !self.healthy_only {
            return (matching, false);
        }
        let healthy: Vec<&Instance> = matching
            .iter()
            .copied()
            .filter(|i| i.is_healthy(now_ms))
            .collect();
        if healthy.is_empty() && fail_open && !matching.is_empty() {
            (matching, true)
        } else {
            (healthy, false)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    RoundRobin,
    Weighted,
    LeastLoaded,
}

impl Strategy {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "round_robin" => Ok(Self::RoundRobin),
            "weighted" => Ok(Self::Weighted),
            "least_loaded" => Ok(Self::LeastLoaded),
            _ => Err("must be one of round_robin, weighted, least_loaded".into()),
        }
    }
}

/// Picks one of `candidates` (already filtered to healthy ones, in a stable order).
/// `counter` is the service's atomic round-robin counter; `draw` a uniform random number
/// in `[0, 1)`. Both are passed in so the rule stays pure and testable.
pub fn resolve<'a>(
    strategy: Strategy,
    candidates: &[&'a Instance],
    counter: u64,
    draw: f64,
) -> Option<&'a Instance> {
    if candidates.is_empty() {
        return None;
    }
    match strategy {
        Strategy::RoundRobin => candidates
            .get((counter % candidates.len() as u64) as usize)
            .copied(),
        Strategy::Weighted => {
            let total: u64 = candidates.iter().map(|i| u64::from(i.weight)).sum();
            let mut target = (draw.clamp(0.0, 1.0 - f64::EPSILON) * total as f64) as u64;
            for i in candidates {
                let w = u64::from(i.weight);
                if target < w {
                    return Some(i);
                }
                target -= w;
            }
            candidates.last().copied()
        }
        Strategy::LeastLoaded => candidates
            .iter()
            .min_by(|a, b| {
                let score = |i: &Instance| i.load.map(|l| l.score()).unwrap_or(0.0);
                score(a).total_cmp(&score(b))
            })
            .copied(),
    }
}

/// When the sweep holds back (Eureka's self-preservation), tuned per deployment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelfPreservation {
    /// Share of a service's instances lapsing in one sweep above which none is evicted.
    pub threshold: f64,
    /// Services smaller than this are never held: one lapsed lease of a singleton is
    /// far likelier a dead instance than a partition.
    pub min_instances: usize,
    /// Leases lapsed longer than this are evicted even when held: a partition that long
    /// is an outage, and the registry should say so.
    pub max_hold_ms: i64,
}

impl Default for SelfPreservation {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_SELF_PRESERVATION_THRESHOLD,
            min_instances: 3,
            max_hold_ms: 15 * 60 * 1000,
        }
    }
}

/// What one sweep does to one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepPlan {
    /// Instance ids to evict (each with a conditional delete: only if still lapsed).
    pub evict: Vec<String>,
    /// Set when lapsed instances were kept, with the reason to record.
    pub held_back: Option<String>,
}

/// Plans the sweep of one service's instances at `now_ms`.
pub fn plan_sweep(instances: &[Instance], now_ms: i64, policy: SelfPreservation) -> SweepPlan {
    let lapsed: Vec<&Instance> = instances.iter().filter(|i| !i.is_live(now_ms)).collect();
    let total = instances.len();
    let hold = total >= policy.min_instances
        && !lapsed.is_empty()
        && lapsed.len() as f64 > policy.threshold * total as f64;
    if !hold {
        return SweepPlan {
            evict: lapsed.iter().map(|i| i.instance_id.clone()).collect(),
            held_back: None,
        };
    }
    let overdue: Vec<String> = lapsed
        .iter()
        .filter(|i| now_ms - i.lease_expires_at_ms > policy.max_hold_ms)
        .map(|i| i.instance_id.clone())
        .collect();
    let reason = format!(
        "{} of {} leases lapsed at once (more than {:.0}%): likely a partition, not deaths",
        lapsed.len(),
        total,
        policy.threshold * 100.0
    );
    SweepPlan {
        evict: overdue,
        held_back: Some(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, weight: u32, status: HealthStatus, expires: i64) -> Instance {
        Instance {
            service: ServiceName::parse("api").unwrap(),
            instance_id: id.into(),
            address: "10.0.0.1".into(),
            port: Some(8080),
            version: Some("1.2.0".into()),
            tags: vec!["blue".into(), "eu".into()],
            meta: BTreeMap::from([("az".into(), "a".into())]),
            weight,
            ttl_seconds: 30,
            status,
            load: None,
            lease_expires_at_ms: expires,
            check: None,
            check_failures: 0,
        }
    }

    #[test]
    fn service_names_are_dns_labels() {
        for ok in ["a", "payments", "user-api-2", &"a".repeat(63)] {
            assert!(ServiceName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "2fa", "-a", "a-", "Api", "a_b", "a.b", &"a".repeat(64)] {
            assert!(ServiceName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registration_defaults_and_bounds() {
        let req: RegisterRequest =
            serde_json::from_str(r#"{"address": "10.0.0.7", "tags": ["b", "a", "b"]}"#).unwrap();
        let r = Registration::parse(req).unwrap();
        assert_eq!(
            (r.weight, r.ttl_seconds, r.tags.clone()),
            (100, 30, vec!["a".to_string(), "b".to_string()])
        );
        let req: RegisterRequest = serde_json::from_str(
            r#"{"port": 70000, "weight": 0, "ttl_seconds": 4, "tags": ["ok", "no spaces"], "depends_on": ["Bad"]}"#,
        )
        .unwrap();
        let fields: Vec<_> = Registration::parse(req)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "address",
                "port",
                "tags[1]",
                "weight",
                "ttl_seconds",
                "depends_on[0]"
            ]
        );
    }

    #[test]
    fn a_lapsed_lease_is_never_healthy_even_before_the_sweep() {
        let i = instance("a", 100, HealthStatus::Passing, 1_000);
        assert!(i.is_healthy(999));
        assert!(!i.is_healthy(1_000));
        let warning = instance("b", 100, HealthStatus::Warning, 5_000);
        assert!(warning.is_live(999) && !warning.is_healthy(999));
    }

    #[test]
    fn discovery_filters_and_fail_open() {
        let all = vec![
            instance("a", 100, HealthStatus::Passing, 10_000),
            instance("b", 100, HealthStatus::Critical, 10_000),
            instance("c", 100, HealthStatus::Passing, 10),
        ];
        let healthy = DiscoveryFilter {
            healthy_only: true,
            ..Default::default()
        };
        let (got, fell_back) = healthy.select(&all, 1_000, false);
        assert_eq!(
            got.iter()
                .map(|i| i.instance_id.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        assert!(!fell_back);

        let tagged = DiscoveryFilter {
            tags: vec!["eu".into(), "green".into()],
            ..Default::default()
        };
        assert!(tagged.select(&all, 1_000, false).0.is_empty());
        let meta = DiscoveryFilter {
            meta: BTreeMap::from([("az".into(), "a".into())]),
            version: Some("1.2.0".into()),
            ..Default::default()
        };
        assert_eq!(meta.select(&all, 1_000, false).0.len(), 3);

        let nobody_healthy = &all[1..2];
        assert!(healthy.select(nobody_healthy, 1_000, false).0.is_empty());
        let (got, fell_back) = healthy.select(nobody_healthy, 1_000, true);
        assert_eq!((got.len(), fell_back), (1, true));
    }

    #[test]
    fn round_robin_visits_every_instance_evenly() {
        let all: Vec<Instance> = (0..3)
            .map(|i| instance(&i.to_string(), 100, HealthStatus::Passing, 10_000))
            .collect();
        let refs: Vec<&Instance> = all.iter().collect();
        let mut counts = [0; 3];
        for counter in 0..300u64 {
            let i = resolve(Strategy::RoundRobin, &refs, counter, 0.0).unwrap();
            counts[i.instance_id.parse::<usize>().unwrap()] += 1;
        }
        assert_eq!(counts, [100, 100, 100]);
    }

    #[test]
    fn weighted_resolve_follows_the_weights_within_two_percent_over_10000_draws() {
        let all = [
            instance("light", 100, HealthStatus::Passing, 10_000),
            instance("heavy", 300, HealthStatus::Passing, 10_000),
        ];
        let refs: Vec<&Instance> = all.iter().collect();
        // A deterministic uniform sequence (golden-ratio stepping), so the test is stable.
        let mut heavy = 0;
        for n in 0..10_000u64 {
            let draw = (n as f64 * 0.618_033_988_749_895) % 1.0;
            if resolve(Strategy::Weighted, &refs, 0, draw)
                .unwrap()
                .instance_id
                == "heavy"
            {
                heavy += 1;
            }
        }
        let share = heavy as f64 / 10_000.0;
        assert!((share - 0.75).abs() < 0.02, "heavy share {share}");
    }

    #[test]
    fn least_loaded_prefers_the_idlest() {
        let mut a = instance("a", 100, HealthStatus::Passing, 10_000);
        a.load = Some(Load {
            cpu_percent: Some(80.0),
            ..Default::default()
        });
        let mut b = instance("b", 100, HealthStatus::Passing, 10_000);
        b.load = Some(Load {
            cpu_percent: Some(20.0),
            memory_percent: Some(30.0),
            ..Default::default()
        });
        assert_eq!(
            resolve(Strategy::LeastLoaded, &[&a, &b], 0, 0.0)
                .unwrap()
                .instance_id,
            "b"
        );
        assert!(resolve(Strategy::LeastLoaded, &[], 0, 0.0).is_none());
    }

    #[test]
    fn http_checks_are_validated_with_defaults() {
        let req: RegisterRequest = serde_json::from_str(
            r#"{"address": "10.0.0.1", "check": {"http": "http://10.0.0.1:8080/health"}}"#,
        )
        .unwrap();
        let check = Registration::parse(req).unwrap().check.unwrap();
        assert_eq!(check.interval_seconds, DEFAULT_CHECK_INTERVAL_SECONDS);
        assert_eq!(check.timeout_ms, DEFAULT_CHECK_TIMEOUT_MS);
        let req: RegisterRequest = serde_json::from_str(
            r#"{"address": "10.0.0.1", "check": {"http": "ftp://x", "interval_seconds": 1, "timeout_ms": 60000}}"#,
        )
        .unwrap();
        let fields: Vec<_> = Registration::parse(req)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            ["check.http", "check.interval_seconds", "check.timeout_ms"]
        );
        for (url, ok) in [
            ("http://10.0.0.1:8080/health", true),
            ("https://10.0.0.1/health?deep=1", true),
            ("http://10.0.0.2:8080/health", false),
            ("http://10.0.0.1@evil.example/", false),
            ("http://evil.example/?h=10.0.0.1", false),
            ("http://169.254.169.254/latest/meta-data/", false),
        ] {
            let req: RegisterRequest = serde_json::from_value(serde_json::json!(
                {"address": "10.0.0.1", "check": {"http": url}}
            ))
            .unwrap();
            assert_eq!(Registration::parse(req).is_ok(), ok, "{url}");
        }
        let req: RegisterRequest = serde_json::from_value(serde_json::json!(
            {"address": "fd00::1", "check": {"http": "http://[fd00::1]:80/"}}
        ))
        .unwrap();
        assert!(Registration::parse(req).is_ok());
    }

    #[test]
    fn failing_checks_warn_then_go_critical_and_one_success_heals() {
        assert_eq!(after_check(0, false), (HealthStatus::Warning, 1));
        assert_eq!(after_check(1, false), (HealthStatus::Warning, 2));
        assert_eq!(after_check(2, false), (HealthStatus::Critical, 3));
        assert_eq!(after_check(7, false), (HealthStatus::Critical, 8));
        assert_eq!(after_check(7, true), (HealthStatus::Passing, 0));
    }

    #[test]
    fn self_preservation_holds_back_mass_expiry_but_not_forever() {
        let policy = SelfPreservation::default();
        let now = 100_000;
        let mut ten: Vec<Instance> = (0..10)
            .map(|i| instance(&format!("i{i}"), 100, HealthStatus::Passing, now + 1))
            .collect();
        for i in ten.iter_mut().take(9) {
            i.lease_expires_at_ms = now - 5_000;
        }
        let plan = plan_sweep(&ten, now, policy);
        assert!(plan.evict.is_empty());
        assert!(plan.held_back.unwrap().starts_with("9 of 10 leases lapsed"));

        for i in ten.iter_mut().skip(1).take(7) {
            i.lease_expires_at_ms = now + 1;
        }
        let plan = plan_sweep(&ten, now, policy);
        assert_eq!(
            (plan.evict, plan.held_back),
            (vec!["i0".to_string(), "i8".to_string()], None),
            "2 of 10 is churn"
        );

        let later = now + policy.max_hold_ms + 10_000;
        let mut held: Vec<Instance> = ten.clone();
        for i in held.iter_mut() {
            i.lease_expires_at_ms = now;
        }
        assert_eq!(
            plan_sweep(&held, later, policy).evict.len(),
            10,
            "held no longer than max_hold"
        );
    }

    #[test]
    fn small_services_are_never_held() {
        let lone = vec![instance("only", 100, HealthStatus::Passing, 10)];
        assert_eq!(
            plan_sweep(&lone, 1_000, SelfPreservation::default()).evict,
            ["only"]
        );
    }

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
}

/// Why a registry operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("no instance {instance_id} of {service} holds a lease")]
    LeaseGone {
        service: String,
        instance_id: String,
    },
    #[error("no service named {0}")]
    ServiceNotFound(String),
    #[error("no healthy instance of {0}")]
    NoHealthyInstance(String),
    #[error(transparent)]
    Store(#[from] aloft_shared::dynamo::StoreError),
}

/// `GET /services/{service}/instances` query: `health=passing|any`, repeated `tag`,
/// `version`, `meta.KEY=VALUE`, `fail_open=true|false`.
pub fn parse_discovery_query(
    pairs: &[(String, String)],
) -> Result<(DiscoveryFilter, bool), Vec<FieldError>> {
    let mut filter = DiscoveryFilter {
        healthy_only: true,
        ..Default::default()
    };
    let mut fail_open = false;
    let mut errors = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "health" => match v.as_str() {
                "passing" => filter.healthy_only = true,
                "any" => filter.healthy_only = false,
                _ => errors.push(FieldError::new("health", "must be passing or any")),
            },
            "tag" if is_token(v, 128) => filter.tags.push(v.clone()),
            "tag" => errors.push(FieldError::new(
                "tag",
                "must be 1 to 128 of letters, digits and . _ - : =",
            )),
            "version" if is_token(v, 64) => filter.version = Some(v.clone()),
            "version" => errors.push(FieldError::new(
                "version",
                "must be 1 to 64 of letters, digits and . _ - : =",
            )),
            "fail_open" => match v.as_str() {
                "true" => fail_open = true,
                "false" => fail_open = false,
                _ => errors.push(FieldError::new("fail_open", "must be true or false")),
            },
            other => match other.strip_prefix("meta.") {
                Some(key) if is_token(key, 64) => {
                    filter.meta.insert(key.to_owned(), v.clone());
                }
                _ => errors.push(FieldError::new(
                    other,
                    "is not a known parameter (health, tag, version, meta.KEY, fail_open)",
                )),
            },
        }
    }
    if errors.is_empty() {
        Ok((filter, fail_open))
    } else {
        Err(errors)
    }
}

/// `GET /services/{service}/resolve` query: `strategy` (default round_robin), repeated `tag`.
pub fn parse_resolve_query(
    pairs: &[(String, String)],
) -> Result<(Strategy, DiscoveryFilter), Vec<FieldError>> {
    let mut strategy = Strategy::RoundRobin;
    let mut filter = DiscoveryFilter {
        healthy_only: true,
        ..Default::default()
    };
    let mut errors = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "strategy" => match Strategy::parse(v) {
                Ok(s) => strategy = s,
                Err(m) => errors.push(FieldError::new("strategy", m)),
            },
            "tag" if is_token(v, 128) => filter.tags.push(v.clone()),
            "tag" => errors.push(FieldError::new(
                "tag",
                "must be 1 to 128 of letters, digits and . _ - : =",
            )),
            other => errors.push(FieldError::new(
                other,
                "is not a known parameter (strategy, tag)",
            )),
        }
    }
    if errors.is_empty() {
        Ok((strategy, filter))
    } else {
        Err(errors)
    }
}

/// `PUT .../heartbeat` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    pub status: Option<HealthStatus>,
    pub load: Option<Load>,
}

#[cfg(test)]
mod query_tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn discovery_query() {
        let (f, open) = parse_discovery_query(&pairs(&[
            ("health", "any"),
            ("tag", "eu"),
            ("tag", "blue"),
            ("meta.az", "a"),
            ("fail_open", "true"),
        ]))
        .unwrap();
        assert!(!f.healthy_only && open);
        assert_eq!(f.tags, ["eu", "blue"]);
        assert_eq!(f.meta["az"], "a");
        let errs = parse_discovery_query(&pairs(&[
            ("health", "sick"),
            ("colour", "x"),
            ("meta.", "x"),
        ]))
        .unwrap_err();
        let fields: Vec<_> = errs.into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["health", "colour", "meta."]);
    }

    #[test]
    fn resolve_query() {
        assert_eq!(parse_resolve_query(&[]).unwrap().0, Strategy::RoundRobin);
        assert_eq!(
            parse_resolve_query(&pairs(&[("strategy", "weighted")]))
                .unwrap()
                .0,
            Strategy::Weighted
        );
        assert_eq!(
            parse_resolve_query(&pairs(&[("strategy", "random")])).unwrap_err()[0].field,
            "strategy"
        );
    }
}
