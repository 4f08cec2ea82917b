//! The webhook delivery queue and its dead-letter queue: one message per delivery
//! attempt, so a slow or failing endpoint never holds up another subscriber's.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::{Deserialize, Serialize};

use aloft_shared::config::{self, ConfigError};
use aloft_shared::dynamo::StoreError;

/// SQS takes at most ten messages per `SendMessageBatch`.
const SQS_BATCH: usize = 10;

/// The body of a delivery-queue message: which delivery, and which attempt of its
/// current run (a message for an attempt already made is a duplicate and is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryMessage<'a> {
    pub delivery_id: &'a str,
    pub attempt: u32,
}

/// A message to send, delayed by `delay_secs` (at most 900).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub delivery_id: String,
    pub attempt: u32,
    pub delay_secs: u64,
}

#[derive(Debug, Clone)]
pub struct DeliveryQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl DeliveryQueue {
    /// Reads `WEBHOOK_DELIVERY_QUEUE_URL`.
    pub fn from_env(sdk: &aloft_shared::aws::SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(
            aloft_shared::aws::sqs(sdk),
            config::required("WEBHOOK_DELIVERY_QUEUE_URL")?,
        ))
    }

    pub fn new(sqs: aws_sdk_sqs::Client, url: String) -> Self {
        Self { sqs, url }
    }

    /// Sends every message; the delivery ids SQS did not take.
    #[tracing::instrument(skip_all, fields(messages = messages.len()))]
    pub async fn send(&self, messages: &[Queued]) -> Vec<String> {
        let mut failed = Vec::new();
        for chunk in messages.chunks(SQS_BATCH) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    let body = serde_json::to_string(&DeliveryMessage {
                        delivery_id: &m.delivery_id,
                        attempt: m.attempt,
                    })
                    .ok()?;
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .delay_seconds(i32::try_from(m.delay_secs.min(900)).unwrap_or(900))
                        .build()
                        .ok()
                })
                .collect();
            if entries.len() != chunk.len() {
                failed.extend(chunk.iter().map(|m| m.delivery_id.clone()));
                continue;
            }
            match self
                .sqs
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => failed.extend(
                    out.failed()
                        .iter()
                        .filter_map(|f| f.id().parse::<usize>().ok())
                        .filter_map(|i| chunk.get(i))
                        .map(|m| m.delivery_id.clone()),
                ),
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "SQS did not take the delivery messages");
                    failed.extend(chunk.iter().map(|m| m.delivery_id.clone()));
                }
            }
        }
        failed
    }
}

/// Where a delivery goes when its schedule is exhausted: an operator's view of what
/// failed (the delivery itself stays in the table, `failed`, for retry and replay).
#[derive(Debug, Clone)]
pub struct DeadLetters {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

/// What a dead letter says.
#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    pub delivery_id: &'a str,
    pub subscription_id: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub attempts: usize,
}

impl DeadLetters {
    /// Reads `WEBHOOK_DEAD_LETTER_QUEUE_URL`.
    pub fn from_env(sdk: &aloft_shared::aws::SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(
            aloft_shared::aws::sqs(sdk),
            config::required("WEBHOOK_DEAD_LETTER_QUEUE_URL")?,
        ))
    }

    pub fn new(sqs: aws_sdk_sqs::Client, url: String) -> Self {
        Self { sqs, url }
    }

    pub async fn send(&self, letter: &DeadLetter<'_>) -> Result<(), StoreError> {
        let body = serde_json::to_string(letter).map_err(|e| StoreError::new("dead letter", e))?;
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(StoreError::from)?;
        Ok(())
    }
}
