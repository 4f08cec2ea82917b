//! Deliveries started by an API call rather than by an event: a test event, a retry of
//! one delivery, a replay of many. Each starts a fresh run of the retry schedule.

use aloft_shared::clock;
use aloft_shared::dynamo::StoreError;
use aloft_shared::outbox::Envelope;
use futures::StreamExt;
use serde::Serialize;

use crate::api::Webhooks;
use crate::domain::{Delivery, EVENT_SOURCE, Subscription, TEST_EVENT, WebhookError};
use crate::fanout::plan_first;
use crate::queue::Queued;
use crate::store::StoredDelivery;

/// Deliveries one replay call re-queues at most; `next_since` continues from there.
pub const MAX_REPLAY: usize = 200;

/// Deliveries a replay writes back at once.
const REPLAY_CONCURRENCY: usize = 16;

/// The answer to a replay.
#[derive(Debug, Serialize)]
pub struct ReplayView {
    pub replayed: usize,
    /// Deliveries left alone because an attempt is already pending.
    pub pending: usize,
    /// Call again with this `since` to replay the rest; `null` when done.
    pub next_since: Option<String>,
}

impl Webhooks {
    /// Queues a signed `webhook.test` event to `sub` alone, as a delivery of its own.
    pub(crate) async fn send_test(&self, sub: &Subscription) -> Result<Delivery, WebhookError> {
        let event = Envelope::new(
            TEST_EVENT,
            EVENT_SOURCE,
            serde_json::json!({"webhook_id": sub.id}),
        )?;
        let payload = serde_json::to_string(&event).map_err(|e| StoreError::new("envelope", e))?;
        let now = clock::now();
        let delivery = Delivery::new(&event.id, &event.event_type, &sub.id, &clock::rfc3339(now));
        let plan = plan_first(
            StoredDelivery { delivery, payload },
            &self.settings,
            now.unix_timestamp(),
        );
        self.store
            .put_new_delivery(&plan.delivery, plan.due_at_ms, now.unix_timestamp())
            .await?;
        self.queue.send(plan.queued.as_slice()).await;
        Ok(plan.delivery.delivery)
    }

    /// Starts a new run of the schedule for `stored` and queues its first attempt.
    pub(crate) async fn restart(&self, stored: StoredDelivery) -> Result<Delivery, WebhookError> {
        let (delivery, queued) = self.reset(stored).await?;
        self.queue.send(queued.as_slice()).await;
        Ok(delivery)
    }

    /// Writes `stored` back as a fresh first attempt; the message to queue for it (none
    /// when its first attempt waits for the sweep) is returned, so a replay sends them in
    /// batches. A message that is lost is caught by the retry sweep, as the delivery is
    /// due.
    async fn reset(
        &self,
        mut stored: StoredDelivery,
    ) -> Result<(Delivery, Option<Queued>), WebhookError> {
        let now = clock::now();
        let read_version = stored.delivery.version;
        stored.delivery.restart(&clock::rfc3339(now))?;
        let plan = plan_first(stored, &self.settings, now.unix_timestamp());
        if !self
            .store
            .save_delivery(
                &plan.delivery,
                read_version,
                Some(plan.due_at_ms),
                now.unix_timestamp(),
            )
            .await?
        {
            return Err(WebhookError::DeliveryInProgress(plan.delivery.delivery.id));
        }
        Ok((plan.delivery.delivery, plan.queued))
    }

    /// Restarts up to MAX_REPLAY deliveries of `id` made at or after `since`: a few writes
    /// at a time and the messages in batches of ten, so a full page stays well inside the
    /// function's timeout. The messages of every delivery reset are sent, even when
    /// another one failed.
    pub(crate) async fn replay(&self, id: &str, since: &str) -> Result<ReplayView, WebhookError> {
        let found = self
            .store
            .deliveries_since(id, since, MAX_REPLAY + 1)
            .await?;
        let next_since = found.get(MAX_REPLAY).map(|d| d.delivery.created_at.clone());
        let resets: Vec<_> = futures::stream::iter(found.into_iter().take(MAX_REPLAY))
            .map(|stored| self.reset(stored))
            .buffer_unordered(REPLAY_CONCURRENCY)
            .collect()
            .await;
        let (mut replayed, mut pending, mut queued, mut failed) = (0, 0, Vec::new(), None);
        for reset in resets {
            match reset {
                Ok((_, message)) => {
                    replayed += 1;
                    queued.extend(message);
                }
                Err(WebhookError::DeliveryInProgress(_)) => pending += 1,
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        self.queue.send(&queued).await;
        match failed {
            Some(e) => Err(e),
            None => Ok(ReplayView {
                replayed,
                pending,
                next_since,
            }),
        }
    }
}
