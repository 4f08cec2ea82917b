//! Key shapes, index shards and item mappings: the only place that knows them.

use aloft_shared::keys::{INSTANCE_SK_PREFIX, service_pk};
use serde::{Deserialize, Serialize};

use crate::domain::{HealthCheck, HealthStatus, Instance, lease_expiry};

pub(super) const INDEX_BY_EXPIRY: &str = "by-expiry";
pub(super) const INDEX_SERVICES: &str = "services";
pub(super) const INDEX_CHECKS: &str = "checks";
pub(super) const SERVICE_SK: &str = "#SERVICE";
pub(super) const DEPENDENT_PREFIX: &str = "DEPENDENT#";
pub(super) const EVENT_SOURCE: &str = "aloft.registry";

/// Partition values of the `by-expiry` index. Every heartbeat moves its instance's sort
/// key there (a delete and a put in one partition value), so at 5,000 heartbeats/s the
/// index takes 10,000 writes/s: over 32 values, about 310 each, a third of what one
/// partition takes (1,000 writes/s). The sweep queries all 32 (and [`LEGACY_SHARDS`]).
pub const LEASE_SHARDS: u32 = 32;
/// Partition values of the `checks` index, written once per check (and when a
/// heartbeat changes an instance's status): the sweep records at most 64 checks a
/// minute, so 8 values leave headroom for raising that cap by two orders of magnitude.
pub const CHECK_SHARDS: u32 = 8;
/// Partition values of the `services` index, written only when a service first appears
/// (the index projects keys only, so revisions and round-robin picks never touch it).
pub const SERVICE_SHARDS: u32 = 8;

/// FNV-1a: stable across builds and Rust versions (std's hasher is not), so an item's
/// shard never moves between deployments.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn shard(prefix: &str, parts: &[&str], count: u32) -> String {
    format!("{prefix}#{:02}", fnv1a(parts) % u64::from(count))
}

/// The `by-expiry` partition value of an instance's lease.
pub fn lease_shard(service: &str, instance_id: &str) -> String {
    shard("lease", &[service, instance_id], LEASE_SHARDS)
}

/// The `checks` partition value of an instance's HTTP check.
pub fn check_shard(service: &str, instance_id: &str) -> String {
    shard("check", &[service, instance_id], CHECK_SHARDS)
}

/// The `services` partition value of a service.
pub fn service_listing(service: &str) -> String {
    shard("service", &[service], SERVICE_SHARDS)
}

/// Every partition value of an index, and the single value (`lease`, `check`,
/// `service`) items written before sharding carry until a heartbeat, a check or a
/// revision moves them: still read, never written.
pub(super) fn all_shards(prefix: &'static str, count: u32) -> Vec<String> {
    let mut all: Vec<String> = (0..count).map(|i| format!("{prefix}#{i:02}")).collect();
    all.push(prefix.to_owned());
    all
}

pub(super) fn instance_sk(instance_id: &str) -> String {
    format!("{INSTANCE_SK_PREFIX}{instance_id}")
}

pub(super) fn pk(service: &str) -> String {
    service_pk(service)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct InstanceItem {
    pub pk: String,
    pub sk: String,
    pub expiry_shard: String,
    /// The lease length in milliseconds, so a heartbeat renews with one UpdateItem
    /// (`SET lease_expires_at_ms = ttl_ms + :now`).
    pub ttl_ms: i64,
    /// Only on instances with an HTTP check: puts them on the `checks` index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_shard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check_at_ms: Option<i64>,
    #[serde(flatten)]
    pub instance: Instance,
}

impl From<&Instance> for InstanceItem {
    fn from(i: &Instance) -> Self {
        let ttl_ms = lease_expiry(0, i.ttl_seconds);
        let has_check = i.check.is_some();
        let (service, id) = (i.service.as_str(), i.instance_id.as_str());
        Self {
            pk: pk(service),
            sk: instance_sk(id),
            expiry_shard: lease_shard(service, id),
            ttl_ms,
            check_shard: has_check.then(|| check_shard(service, id)),
            // First check on the next sweep after (re-)registration.
            next_check_at_ms: has_check.then(|| i.lease_expires_at_ms - ttl_ms),
            instance: i.clone(),
        }
    }
}

/// What the `checks` index projects: what the sweep needs to run a check and record it.
pub(super) const CHECKS_PROJECTION: [&str; 5] = [
    "service",
    "instance_id",
    "check",
    "status",
    "check_failures",
];

#[derive(Debug, Clone, Deserialize)]
pub(super) struct DueCheckItem {
    pub service: String,
    pub instance_id: String,
    pub check: HealthCheck,
    pub status: HealthStatus,
    #[serde(default)]
    pub check_failures: u32,
    pub next_check_at_ms: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct ServiceItem {
    #[serde(default)]
    pub revision: u64,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub held_back: Option<String>,
}

/// The declared dependencies as last written, with the counter a re-declaration is
/// conditioned on.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct DeclaredItem {
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub deps_version: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(lease_shard("api", "web-1"), lease_shard("api", "web-1"));
        assert_ne!(
            lease_shard("ab", "c"),
            lease_shard("a", "bc"),
            "parts are separated"
        );
        let mut counts = vec![0usize; LEASE_SHARDS as usize];
        for i in 0..32_000 {
            let s = lease_shard("checkout", &format!("i-{i}"));
            counts[s["lease#".len()..].parse::<usize>().unwrap()] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 850 && *max < 1150, "{counts:?}");
        assert_eq!(all_shards("check", CHECK_SHARDS).len(), 9);
        assert!(all_shards("lease", LEASE_SHARDS).contains(&lease_shard("x", "y")));
        assert!(all_shards("service", SERVICE_SHARDS).contains(&service_listing("x")));
        assert!(all_shards("lease", LEASE_SHARDS).contains(&"lease".to_owned()));
    }
}
