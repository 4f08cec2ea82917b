//! The registry as the scaler sees it: which instances count as capacity, and which to
//! remove first when scaling down (the seed's `findInstanceToRemove`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    // Declared in removal order: critical first.
    Critical,
    Warning,
    Passing,
}

/// One instance, with only what scaling needs.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceView {
    pub instance_id: String,
    pub status: Health,
    pub lease_expires_at_ms: i64,
    /// The busiest of its reported cpu and memory, 0 when it reported none (the
    /// registry's `least_loaded` score).
    pub load: f64,
    /// When it joined: its registration, or when the scaler first saw it.
    pub joined_at_ms: i64,
}

impl InstanceView {
    /// A lease is alive until its expiry, whatever the registry's sweep has done.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.lease_expires_at_ms > now_ms
    }

    pub fn is_healthy(&self, now_ms: i64) -> bool {
        self.is_live(now_ms) && self.status == Health::Passing
    }
}

/// Current capacity: healthy instances with an unexpired lease.
pub fn healthy_count(instances: &[InstanceView], now_ms: i64) -> u32 {
    let n = instances.iter().filter(|i| i.is_healthy(now_ms)).count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Which `count` live instances to remove: critical ones first, then warning, then the
/// least loaded (ties by id, so the answer is stable); never one that joined after
/// `protected_after_ms` (within the scale-up stabilization window), since a new instance
/// has not had the chance to take load yet.
pub fn pick_removals(
    instances: &[InstanceView],
    count: usize,
    now_ms: i64,
    protected_after_ms: i64,
) -> Vec<String> {
    let mut candidates: Vec<&InstanceView> = instances
        .iter()
        .filter(|i| i.is_live(now_ms) && i.joined_at_ms <= protected_after_ms)
        .collect();
    candidates.sort_by(|a, b| {
        a.status
            .cmp(&b.status)
            .then(a.load.total_cmp(&b.load))
            .then_with(|| a.instance_id.cmp(&b.instance_id))
    });
    candidates
        .into_iter()
        .take(count)
        .map(|i| i.instance_id.clone())
        .collect()
}

#[cfg(test)]
pub(crate) fn instance(id: &str, status: Health, load: f64) -> InstanceView {
    InstanceView {
        instance_id: id.to_owned(),
        status,
        lease_expires_at_ms: i64::MAX / 2,
        load,
        joined_at_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_healthy_unexpired_instances_count() {
        let mut lapsed = instance("lapsed", Health::Passing, 0.0);
        lapsed.lease_expires_at_ms = 500;
        let list = [
            instance("a", Health::Passing, 10.0),
            instance("b", Health::Warning, 10.0),
            instance("c", Health::Critical, 10.0),
            lapsed,
        ];
        assert_eq!(healthy_count(&list, 500), 1);
        assert_eq!(healthy_count(&list, 499), 2);
        assert_eq!(healthy_count(&[], 0), 0);
    }

    #[test]
    fn removal_order_is_critical_then_warning_then_least_loaded() {
        let list = [
            instance("busy", Health::Passing, 90.0),
            instance("idle", Health::Passing, 5.0),
            instance("also-idle", Health::Passing, 5.0),
            instance("sick", Health::Warning, 99.0),
            instance("dying", Health::Critical, 99.0),
        ];
        let cases: &[(usize, &[&str])] = &[
            (0, &[]),
            (1, &["dying"]),
            (2, &["dying", "sick"]),
            (4, &["dying", "sick", "also-idle", "idle"]),
            (9, &["dying", "sick", "also-idle", "idle", "busy"]),
        ];
        for (count, expected) in cases {
            assert_eq!(pick_removals(&list, *count, 0, i64::MAX), *expected);
        }
    }

    #[test]
    fn new_and_lapsed_instances_are_never_named() {
        let mut new = instance("new", Health::Passing, 0.0);
        new.joined_at_ms = 900;
        let mut lapsed = instance("lapsed", Health::Critical, 0.0);
        lapsed.lease_expires_at_ms = 100;
        let list = [new, lapsed, instance("old", Health::Passing, 50.0)];
        assert_eq!(pick_removals(&list, 3, 200, 800), ["old"]);
        assert_eq!(pick_removals(&list, 3, 200, 900), ["new", "old"]);
    }
}
