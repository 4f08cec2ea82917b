//! When the sweep evicts and when it holds back (Eureka's self-preservation).

use super::{DEFAULT_SELF_PRESERVATION_THRESHOLD, Instance};

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
    use crate::domain::HealthStatus;
    use crate::domain::discovery::tests::instance;

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
}
