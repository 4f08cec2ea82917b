//! The scheduled sweep: evicts lapsed leases, holding back when a service loses too many
//! at once (self-preservation).

use serde::Serialize;

use crate::domain::{RegistryError, SelfPreservation, plan_sweep};
use crate::store::RegistryStore;

#[derive(Debug, Default, Serialize)]
pub struct SweepReport {
    pub services: Vec<ServiceSweep>,
}

#[derive(Debug, Serialize)]
pub struct ServiceSweep {
    pub service: String,
    pub evicted: Vec<String>,
    /// Evictions skipped because a heartbeat renewed the lease meanwhile.
    pub renewed: Vec<String>,
    pub held_back: Option<String>,
}

/// One sweep at `now_ms`: only services with due leases (from the expiry index) are read.
#[tracing::instrument(skip_all)]
pub async fn sweep(
    store: &RegistryStore,
    now_ms: i64,
    policy: SelfPreservation,
) -> Result<SweepReport, RegistryError> {
    let mut report = SweepReport::default();
    for service in store.services_with_due_leases(now_ms).await? {
        let Some(view) = store.view(&service).await? else {
            continue;
        };
        let plan = plan_sweep(&view.instances, now_ms, policy);
        if let Some(reason) = &plan.held_back {
            tracing::warn!(%service, %reason, "self-preservation: lapsed leases kept");
            store.record_held_back(&service, reason).await?;
        }
        let mut evicted = Vec::new();
        let mut renewed = Vec::new();
        for id in plan.evict {
            if store.evict(&service, &id, now_ms).await? {
                evicted.push(id);
            } else {
                renewed.push(id);
            }
        }
        tracing::info!(%service, evicted = evicted.len(), renewed = renewed.len(), "swept");
        report.services.push(ServiceSweep {
            service,
            evicted,
            renewed,
            held_back: plan.held_back,
        });
    }
    Ok(report)
}
