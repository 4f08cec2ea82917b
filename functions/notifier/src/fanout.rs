//! The fan-out worker: notification events in (SQS, partial batch failures), one
//! delivery per matching enabled subscription out, each its own delivery-queue message.
//!
//! The delivery's id derives from the event id and the subscription id and is written
//! with a condition, so an event that arrives twice (the relay and SQS deliver at least
//! once) never makes a second delivery. Only a message that failed is reported in
//! `batchItemFailures`; a message that is not an event envelope is reported too, so the
//! queue's redrive policy moves it to the dead-letter queue instead of dropping it.

use aloft_shared::clock;
use aloft_shared::dynamo::StoreError;
use aloft_shared::outbox::Envelope;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

use crate::domain::{Delivery, RetryVia, Subscription, sweep_due_ms};
use crate::queue::{DeliveryQueue, Queued};
use crate::settings::Settings;
use crate::store::{StoredDelivery, WebhookStore};

#[derive(Debug, Clone)]
pub struct Fanout {
    pub store: WebhookStore,
    pub queue: DeliveryQueue,
    pub settings: Settings,
}

/// A delivery to create and how its first attempt is scheduled.
pub struct Planned {
    pub delivery: StoredDelivery,
    pub due_at_ms: i64,
    pub queued: Option<Queued>,
}

/// Plans the first attempt of `delivery` on `settings`' schedule.
pub fn plan_first(delivery: StoredDelivery, settings: &Settings, now_unix: i64) -> Planned {
    let delay = settings.schedule.delay_before(0).unwrap_or(0);
    let via = RetryVia::of(delay, settings.max_queue_delay);
    let queued = match via {
        RetryVia::Queue { delay_secs } => Some(Queued {
            delivery_id: delivery.delivery.id.clone(),
            attempt: 0,
            delay_secs,
        }),
        RetryVia::DueIndex => None,
    };
    Planned {
        delivery,
        due_at_ms: sweep_due_ms(now_unix + delay as i64, via),
        queued,
    }
}

impl Fanout {
    #[tracing::instrument(skip_all, fields(records = event.records.len()))]
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        let fail = |m: &SqsMessage, response: &mut SqsBatchResponse| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = m.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(f);
        };
        let subs = match self.store.enabled_subscriptions().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot read subscriptions; the whole batch is retried");
                for m in &event.records {
                    fail(m, &mut response);
                }
                return response;
            }
        };
        let outcomes =
            futures::future::join_all(event.records.iter().map(|m| self.fan_out(m, &subs))).await;
        for (m, ok) in event.records.iter().zip(outcomes) {
            if !ok {
                fail(m, &mut response);
            }
        }
        response
    }

    /// Creates and queues the deliveries of one message; `false` to have it retried.
    async fn fan_out(&self, message: &SqsMessage, subs: &[Subscription]) -> bool {
        let Some(envelope) = message
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<Envelope>(b).ok())
        else {
            tracing::error!(message_id = ?message.message_id, "not an event envelope; left for the dead-letter queue");
            return false;
        };
        match self.deliver(&envelope, subs).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(event_id = %envelope.id, error = %e, "fan-out failed; the event is retried");
                false
            }
        }
    }

    async fn deliver(&self, envelope: &Envelope, subs: &[Subscription]) -> Result<(), StoreError> {
        let payload =
            serde_json::to_string(envelope).map_err(|e| StoreError::new("envelope", e))?;
        let now = clock::now();
        let (now_s, now_unix) = (clock::rfc3339(now), now.unix_timestamp());
        let mut queued = Vec::new();
        for sub in subs.iter().filter(|s| s.wants(&envelope.event_type)) {
            let delivery = StoredDelivery {
                delivery: Delivery::new(&envelope.id, &envelope.event_type, &sub.id, &now_s),
                payload: payload.clone(),
            };
            let plan = plan_first(delivery, &self.settings, now_unix);
            // An existing delivery means this event came before: its first message was
            // sent then (or the sweep re-queues it after the grace period).
            if self
                .store
                .put_new_delivery(&plan.delivery, plan.due_at_ms, now_unix)
                .await?
            {
                queued.extend(plan.queued);
            }
        }
        let failed = self.queue.send(&queued).await;
        if !failed.is_empty() {
            // Left to the sweep's safety net: the deliveries exist and are due.
            tracing::warn!(event_id = %envelope.id, count = failed.len(), "SQS did not take some delivery messages; the sweep re-queues them");
        }
        tracing::info!(event_id = %envelope.id, event_type = %envelope.event_type, deliveries = queued.len(), "fanned out");
        Ok(())
    }
}
