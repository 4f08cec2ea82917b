//! The retry sweep, fired every minute: re-queues pending deliveries whose next attempt
//! is due (long waits live in the sharded due index, never in a sleeping function; a
//! queued message that never arrived is caught here after a grace period) and disables
//! subscriptions whose attempts have all failed for the configured period, emitting
//! `webhook.disabled` through the outbox in the same transaction.

use aloft_shared::clock;
use aloft_shared::dynamo::StoreError;
use aloft_shared::outbox::Envelope;
use serde::Serialize;

use crate::api::SubscriptionView;
use crate::domain::{DISABLED_EVENT, EVENT_SOURCE, REQUEUE_GRACE_SECS, unix_to_rfc3339};
use crate::queue::{DeliveryQueue, Queued};
use crate::settings::Settings;
use crate::store::{DUE_SHARDS, WebhookStore};

/// At most this many deliveries are re-queued per shard per run; the rest wait a minute.
const MAX_DUE_PER_SHARD: usize = 500;

#[derive(Debug, Clone)]
pub struct Sweep {
    pub store: WebhookStore,
    pub queue: DeliveryQueue,
    pub settings: Settings,
}

/// What one run did (the function's result, shown by `local/`'s fire route).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub requeued: usize,
    pub disabled: Vec<String>,
}

impl Sweep {
    #[tracing::instrument(skip_all)]
    pub async fn run(&self, now_unix: i64) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport {
            requeued: self.requeue_due(now_unix).await?,
            ..SweepReport::default()
        };
        report.disabled = self.disable_failing(now_unix).await?;
        tracing::info!(
            requeued = report.requeued,
            disabled = report.disabled.len(),
            "webhook sweep"
        );
        Ok(report)
    }

    async fn requeue_due(&self, now_unix: i64) -> Result<usize, StoreError> {
        let now_ms = now_unix * 1000;
        let mut queued = Vec::new();
        for shard in 0..DUE_SHARDS {
            for due in self.store.due(shard, now_ms, MAX_DUE_PER_SHARD).await? {
                // Claimed with a condition, so two sweeps never both queue it; if the
                // message is lost too, the next grace period catches it again.
                if self
                    .store
                    .claim_due(&due, (now_unix + REQUEUE_GRACE_SECS) * 1000)
                    .await?
                {
                    queued.push(Queued {
                        delivery_id: due.id,
                        attempt: due.attempt,
                        delay_secs: 0,
                    });
                }
            }
        }
        let failed = self.queue.send(&queued).await;
        Ok(queued.len() - failed.len())
    }

    async fn disable_failing(&self, now_unix: i64) -> Result<Vec<String>, StoreError> {
        let cutoff = unix_to_rfc3339(now_unix - self.settings.disable_after_secs);
        let now = unix_to_rfc3339(now_unix);
        let mut disabled = Vec::new();
        for sub in self.store.failing_since(&cutoff).await? {
            if !sub.enabled {
                continue;
            }
            let reason = format!(
                "every delivery attempt failed since {}",
                sub.failing_since.as_deref().unwrap_or_default()
            );
            let mut after = sub.clone();
            after.enabled = false;
            after.disabled_reason = Some(reason.clone());
            after.failing_since = None;
            after.updated_at = now.clone();
            let event = Envelope::new(
                DISABLED_EVENT,
                EVENT_SOURCE,
                serde_json::json!({
                    "webhook": SubscriptionView::from(after),
                    "reason": reason,
                    "failing_since": sub.failing_since,
                }),
            )?;
            if self.store.disable(&sub, &reason, &now, &event).await? {
                tracing::warn!(webhook_id = %sub.id, "webhook disabled after failing for the configured period");
                disabled.push(sub.id);
            }
        }
        Ok(disabled)
    }
}

/// `now` for a sweep run.
pub fn now_unix() -> i64 {
    clock::now().unix_timestamp()
}
