//! The delivery worker: one delivery-queue message is one attempt. It signs the stored
//! envelope the Standard Webhooks way, POSTs it, records the attempt and schedules what
//! comes next: a delayed message for short waits, the due index for long ones, the
//! dead-letter queue when the schedule is exhausted.
//!
//! Messages of a batch are attempted concurrently, so an endpoint that hangs until the
//! timeout never holds up another subscriber's delivery in the same batch.

use aloft_shared::clock;
use aloft_shared::dynamo::StoreError;
use aloft_shared::master_key::LazyKey;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

use crate::domain::{DeliveryStatus, ErrorClass, Next, RetryVia, Subscription, sweep_due_ms};
use crate::queue::{DeadLetter, DeadLetters, DeliveryMessage, DeliveryQueue, Queued};
use crate::sender::{Outgoing, Sender};
use crate::settings::Settings;
use crate::signing::{SigningSecret, signature_header};
use crate::store::{StoredDelivery, WebhookStore};

#[derive(Debug, Clone)]
pub struct Worker {
    pub store: WebhookStore,
    pub queue: DeliveryQueue,
    pub dead_letters: DeadLetters,
    pub sender: Sender,
    /// Derived on the first attempt, so a cold start reads no secret.
    pub signing_key: LazyKey,
    pub settings: Settings,
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded: delivered, retry scheduled, or failed for good.
    Attempted(Next),
    /// A duplicate or stale message (the attempt was made already, or the delivery is
    /// gone): dropped.
    Skipped,
    /// Its subscription is gone or disabled: the delivery failed without a request.
    Abandoned,
}

impl Worker {
    #[tracing::instrument(skip_all, fields(records = event.records.len()))]
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let outcomes =
            futures::future::join_all(event.records.iter().map(|m| self.handle_message(m))).await;
        let mut response = SqsBatchResponse::default();
        for (m, ok) in event.records.iter().zip(outcomes) {
            if !ok {
                let mut f = BatchItemFailure::default();
                f.item_identifier = m.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(f);
            }
        }
        response
    }

    async fn handle_message(&self, m: &SqsMessage) -> bool {
        let Some(msg) = m
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<DeliveryMessage>(b).ok())
        else {
            tracing::error!(message_id = ?m.message_id, "not a delivery message; left for the dead-letter queue");
            return false;
        };
        match self.attempt(msg.delivery_id, msg.attempt).await {
            Ok(outcome) => {
                tracing::info!(delivery_id = %msg.delivery_id, attempt = msg.attempt, ?outcome, "delivery message handled");
                true
            }
            Err(e) => {
                tracing::warn!(delivery_id = %msg.delivery_id, error = %e, "delivery attempt could not be recorded; the message is retried");
                false
            }
        }
    }

    /// Makes attempt `attempt` of delivery `id`, if that is still the next one.
    #[tracing::instrument(skip_all, fields(delivery_id = %id, attempt = attempt))]
    pub async fn attempt(&self, id: &str, attempt: u32) -> Result<Outcome, StoreError> {
        let Some(mut stored) = self.store.get_delivery(id).await? else {
            return Ok(Outcome::Skipped);
        };
        let read_version = stored.delivery.version;
        if stored.delivery.status != DeliveryStatus::Pending || stored.delivery.attempt != attempt {
            return Ok(Outcome::Skipped);
        }
        let now = clock::now();
        let (now_s, now_unix) = (clock::rfc3339(now), now.unix_timestamp());
        let sub = match self
            .store
            .get_subscription(&stored.delivery.subscription_id)
            .await?
        {
            Some(sub) if sub.enabled => sub,
            _ => {
                stored.delivery.abandon(ErrorClass::Disabled, &now_s);
                self.store
                    .save_delivery(&stored, read_version, None, now_unix)
                    .await?;
                return Ok(Outcome::Abandoned);
            }
        };

        let key = self
            .signing_key
            .get()
            .await
            .map_err(|e| StoreError::new("reading the webhook signing key", e))?;
        let secrets: Vec<SigningSecret> = sub
            .signing_generations(&now_s)
            .into_iter()
            .map(|g| SigningSecret::derive(key, &sub.id, g))
            .collect();
        let signature = signature_header(&secrets, id, now_unix, stored.payload.as_bytes());
        let result = self
            .sender
            .send(
                &Outgoing {
                    url: &sub.url,
                    webhook_id: id,
                    timestamp: now_unix,
                    signature: &signature,
                    body: &stored.payload,
                },
                now_s.clone(),
            )
            .await;
        let succeeded = result.succeeded();
        tracing::info!(status = ?result.http_status, error = ?result.error, latency_ms = result.latency_ms, "webhook attempt");

        // The attempt's own time, not the start of the request, decides the next due time.
        let done = clock::now();
        let (done_s, done_unix) = (clock::rfc3339(done), done.unix_timestamp());
        let next = stored
            .delivery
            .record(result, &self.settings.schedule, &done_s, done_unix);
        let (due_at_ms, queued) = match next {
            Next::Retry {
                attempt,
                delay_secs,
            } => {
                let via = RetryVia::of(delay_secs, self.settings.max_queue_delay);
                let queued = match via {
                    RetryVia::Queue { delay_secs } => Some(Queued {
                        delivery_id: id.to_owned(),
                        attempt,
                        delay_secs,
                    }),
                    RetryVia::DueIndex => None,
                };
                (
                    Some(sweep_due_ms(done_unix + delay_secs as i64, via)),
                    queued,
                )
            }
            Next::Delivered | Next::Exhausted => (None, None),
        };
        if !self
            .store
            .save_delivery(&stored, read_version, due_at_ms, done_unix)
            .await?
        {
            // Another worker recorded this attempt first (a duplicate message).
            return Ok(Outcome::Skipped);
        }
        self.track_streak(&sub, succeeded, &now_s).await?;
        if let Some(q) = queued {
            // A message SQS loses here is re-queued by the sweep after the grace period.
            let _ = self.queue.send(std::slice::from_ref(&q)).await;
        }
        if next == Next::Exhausted {
            // The delivery is recorded `failed` either way; the dead letter is the
            // operator's signal, not the record.
            if let Err(e) = self.dead_letter(&stored).await {
                tracing::error!(error = %e, "could not send the dead letter");
            }
        }
        Ok(Outcome::Attempted(next))
    }

    async fn track_streak(
        &self,
        sub: &Subscription,
        succeeded: bool,
        now: &str,
    ) -> Result<(), StoreError> {
        match (succeeded, sub.failing_since.is_some()) {
            (true, true) => self.store.clear_failing(&sub.id).await,
            (false, false) => self.store.mark_failing(&sub.id, now).await,
            _ => Ok(()),
        }
    }

    async fn dead_letter(&self, stored: &StoredDelivery) -> Result<(), StoreError> {
        let d = &stored.delivery;
        tracing::warn!(delivery_id = %d.id, webhook_id = %d.subscription_id, "delivery failed after its last attempt");
        self.dead_letters
            .send(&DeadLetter {
                delivery_id: &d.id,
                subscription_id: &d.subscription_id,
                event_id: &d.event_id,
                event_type: &d.event_type,
                attempts: d.attempts.len(),
            })
            .await
    }
}
