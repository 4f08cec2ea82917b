//! The outbox relay: the outbox table's DynamoDB stream in, the notifications queue out.
//!
//! Capability functions only write outbox records inside their transactions; this
//! relay, fed by the stream's event-source mapping, hands each new record's envelope to
//! SQS. A record SQS did not take is reported as a batch item failure (the stream's
//! sequence number), so the mapping retries from it and nothing committed is skipped.
//! Records after a failed one are re-sent on that retry too: delivery is at least
//! once, and consumers deduplicate by event id.

use aloft_shared::outbox::OutboxRecord;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

/// SQS takes at most ten messages per `SendMessageBatch`.
const SQS_BATCH: usize = 10;

#[derive(Debug, Clone)]
pub struct Relay {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

/// A stream record that is not an outbox record we can read. It is skipped (and
/// logged) rather than retried: retrying cannot make it readable, and blocking the
/// shard on it would hold back every event behind it.
#[derive(Debug, thiserror::Error)]
#[error("stream record {sequence}: {reason}")]
struct Unreadable {
    sequence: String,
    reason: String,
}

impl Relay {
    /// Reads `NOTIFICATIONS_QUEUE_URL`.
    pub fn from_env(
        config: &aloft_shared::aws::SdkConfig,
    ) -> Result<Self, aloft_shared::config::ConfigError> {
        Ok(Self::new(
            aloft_shared::aws::sqs(config),
            aloft_shared::config::required("NOTIFICATIONS_QUEUE_URL")?,
        ))
    }

    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self { sqs, queue_url }
    }

    /// Sends the batch's new outbox records, in stream order, and reports the first
    /// record SQS did not take (the mapping retries from there).
    #[tracing::instrument(skip_all, fields(records = event.records.len()))]
    pub async fn relay(&self, event: Event) -> DynamoDbEventResponse {
        let mut pending = Vec::new();
        for record in &event.records {
            match outbox_record(record) {
                Ok(Some(r)) => pending.push((sequence(record), r)),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "skipping unreadable outbox stream record"),
            }
        }
        let mut response = DynamoDbEventResponse::default();
        for chunk in pending.chunks(SQS_BATCH) {
            if let Some(first_failed) = self.send(chunk).await {
                // Lambda retries from the lowest sequence number reported.
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(first_failed);
                response.batch_item_failures.push(failure);
                break;
            }
        }
        response
    }

    /// Sends one SQS batch; the sequence number of the first record not taken.
    async fn send(&self, chunk: &[(String, OutboxRecord)]) -> Option<String> {
        let mut entries = Vec::with_capacity(chunk.len());
        for (i, (_, r)) in chunk.iter().enumerate() {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(&r.envelope)
                .message_attributes(
                    "type",
                    MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(&r.event_type)
                        .build()
                        .ok()?,
                )
                .build();
            match entry {
                Ok(e) => entries.push(e),
                Err(e) => {
                    tracing::error!(event_id = %r.id, error = %e, "cannot build the SQS entry");
                    return Some(chunk[i].0.clone());
                }
            }
        }
        let out = match self
            .sqs
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "SQS did not take the batch; the stream mapping retries it");
                return Some(chunk[0].0.clone());
            }
        };
        let first_failed = out
            .failed()
            .iter()
            .filter_map(|f| f.id().parse::<usize>().ok())
            .min()?;
        tracing::warn!(
            event_id = %chunk[first_failed].1.id,
            "SQS refused part of the batch; the stream mapping retries from it"
        );
        Some(chunk[first_failed].0.clone())
    }
}

fn sequence(record: &EventRecord) -> String {
    record.change.sequence_number.clone().unwrap_or_default()
}

/// The outbox record a stream record inserted, or `None` for changes that are not new
/// events (TTL removals).
fn outbox_record(record: &EventRecord) -> Result<Option<OutboxRecord>, Unreadable> {
    if record.event_name != "INSERT" {
        return Ok(None);
    }
    serde_dynamo::from_item(record.change.new_image.clone())
        .map(Some)
        .map_err(|e| Unreadable {
            sequence: sequence(record),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_record(name: &str, image: serde_json::Value) -> EventRecord {
        serde_json::from_value(serde_json::json!({
            "awsRegion": "us-east-1",
            "eventID": "1",
            "eventName": name,
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_700_000_000,
                "Keys": {"id": {"S": "e1"}},
                "NewImage": image,
                "SequenceNumber": "100",
                "SizeBytes": 10,
                "StreamViewType": "NEW_IMAGE"
            }
        }))
        .unwrap()
    }

    #[test]
    fn an_insert_is_read_as_its_outbox_record() {
        let r = stream_record(
            "INSERT",
            serde_json::json!({
                "id": {"S": "e1"}, "type": {"S": "user.created"},
                "occurred_at": {"S": "2026-01-01T00:00:00Z"},
                "envelope": {"S": "{\"id\":\"e1\"}"}, "expires_at": {"N": "1"}
            }),
        );
        let record = outbox_record(&r).unwrap().unwrap();
        assert_eq!(record.id, "e1");
        assert_eq!(record.envelope, "{\"id\":\"e1\"}");
    }

    #[test]
    fn ttl_removals_are_not_events_and_garbage_is_an_error() {
        let removal = stream_record("REMOVE", serde_json::json!({}));
        assert!(outbox_record(&removal).unwrap().is_none());
        let garbage = stream_record("INSERT", serde_json::json!({"id": {"S": "e1"}}));
        assert!(outbox_record(&garbage).is_err());
    }
}
