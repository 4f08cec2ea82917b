//! Which instances a discovery query returns, the ETag a client revalidates with, and
//! how resolve picks one instance.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{HealthCheck, HealthStatus, Instance};

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

/// What a discovery answer's ETag covers: membership (who, where, how they are
/// described and weighted) and health, as of `now_ms`. Not a lease's expiry nor the load
/// a heartbeat reports: those move on every heartbeat, and a client revalidating under
/// steady heartbeats must get its 304 (the body it holds shows them as of its last 200).
#[derive(Serialize)]
struct Membership<'a> {
    revision: u64,
    fail_open: bool,
    instances: Vec<Member<'a>>,
}

#[derive(Serialize)]
struct Member<'a> {
    id: &'a str,
    address: &'a str,
    port: Option<u16>,
    version: Option<&'a str>,
    tags: &'a [String],
    meta: &'a BTreeMap<String, String>,
    weight: u32,
    status: HealthStatus,
    check: Option<&'a HealthCheck>,
}

/// The strong ETag (quoted) of a discovery answer.
pub fn discovery_etag(revision: u64, fail_open: bool, chosen: &[&Instance], now_ms: i64) -> String {
    let membership = Membership {
        revision,
        fail_open,
        instances: chosen
            .iter()
            .map(|i| Member {
                id: &i.instance_id,
                address: &i.address,
                port: i.port,
                version: i.version.as_deref(),
                tags: &i.tags,
                meta: &i.meta,
                weight: i.weight,
                status: i.effective_status(now_ms),
                check: i.check.as_ref(),
            })
            .collect(),
    };
    // Serialising these plain types cannot fail; an empty input still hashes.
    let bytes = serde_json::to_vec(&membership).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{Load, ServiceName};

    pub(crate) fn instance(id: &str, weight: u32, status: HealthStatus, expires: i64) -> Instance {
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
    fn a_lapsed_lease_is_never_healthy_even_before_the_sweep() {
        let i = instance("a", 100, HealthStatus::Passing, 1_000);
        assert!(i.is_healthy(999));
        assert!(!i.is_healthy(1_000));
        assert_eq!(i.effective_status(1_000), HealthStatus::Critical);
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
        let ids: Vec<&str> = got.iter().map(|i| i.instance_id.as_str()).collect();
        assert_eq!((ids, fell_back), (vec!["a"], false));
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
    fn the_etag_follows_membership_and_health_not_heartbeats() {
        let a = instance("a", 100, HealthStatus::Passing, 10_000);
        let b = instance("b", 100, HealthStatus::Passing, 10_000);
        let tag = |is: &[&Instance], now| discovery_etag(7, false, is, now);
        let base = tag(&[&a, &b], 1_000);
        assert!(base.starts_with('"') && base.len() == 34);

        let mut beat = a.clone();
        beat.lease_expires_at_ms = 40_000;
        beat.load = Some(Load {
            cpu_percent: Some(55.0),
            ..Default::default()
        });
        assert_eq!(
            tag(&[&beat, &b], 2_000),
            base,
            "a heartbeat changes nothing"
        );

        let mut sick = a.clone();
        sick.status = HealthStatus::Warning;
        let mut heavier = a.clone();
        heavier.weight = 200;
        for (what, changed) in [
            ("health", tag(&[&sick, &b], 1_000)),
            ("a lapsed lease", tag(&[&a, &b], 10_000)),
            ("membership", tag(&[&a], 1_000)),
            ("weight", tag(&[&heavier, &b], 1_000)),
            ("revision", discovery_etag(8, false, &[&a, &b], 1_000)),
            ("fail-open", discovery_etag(7, true, &[&a, &b], 1_000)),
        ] {
            assert_ne!(changed, base, "{what}");
        }
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
        let heavy = (0..10_000u64)
            .filter(|n| {
                let draw = (*n as f64 * 0.618_033_988_749_895) % 1.0;
                resolve(Strategy::Weighted, &refs, 0, draw)
                    .unwrap()
                    .instance_id
                    == "heavy"
            })
            .count();
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
}
