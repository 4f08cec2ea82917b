//! The transactional outbox: every event is written in the same DynamoDB transaction as
//! the change it announces, then handed to SQS after the commit and marked sent.
//!
//! A write that does not commit never notifies (its outbox record is rolled back with
//! it); a write that commits is never lost (if SQS does not take the event now, its
//! record keeps the sparse `pending` key and the relay re-sends it). Delivery is
//! therefore at least once: consumers deduplicate by [`Envelope::id`].

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use crate::config::{self, ConfigError};
use crate::dynamo::{Item, StoreError, n, s};

/// How long a sent event's record is kept (DynamoDB TTL cleans it up after that).
const SENT_RETENTION_SECS: i64 = 7 * 24 * 3600;
/// Value of the sparse `pending` index key for events SQS has not taken yet.
pub const PENDING: &str = "pending";

/// The envelope every aloft notification travels in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: String,
    pub source: String,
    pub data: serde_json::Value,
}

impl Envelope {
    pub fn new(event_type: &str, source: &str, data: impl Serialize) -> Result<Self, StoreError> {
        Ok(Self {
            id: uuid::Uuid::new_v4().to_string(),
            event_type: event_type.to_owned(),
            occurred_at: crate::clock::rfc3339(crate::clock::now()),
            source: source.to_owned(),
            data: serde_json::to_value(data).map_err(|e| StoreError::new("event data", e))?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Outbox {
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    table: String,
    queue_url: String,
}

impl Outbox {
    /// Reads `OUTBOX_TABLE` and `NOTIFICATIONS_QUEUE_URL`.
    pub fn from_env(config: &crate::aws::SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(
            crate::aws::dynamodb(config),
            crate::aws::sqs(config),
            config::required("OUTBOX_TABLE")?,
            config::required("NOTIFICATIONS_QUEUE_URL")?,
        ))
    }

    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        table: String,
        queue_url: String,
    ) -> Self {
        Self {
            dynamodb,
            sqs,
            table,
            queue_url,
        }
    }

    /// The transaction item that records `event`; put it in the same
    /// `TransactWriteItems` as the change.
    pub fn record(&self, event: &Envelope) -> Result<TransactWriteItem, StoreError> {
        let body =
            serde_json::to_string(event).map_err(|e| StoreError::new("event envelope", e))?;
        let item: Item = [
            ("id".to_owned(), s(&event.id)),
            ("type".to_owned(), s(&event.event_type)),
            ("occurred_at".to_owned(), s(&event.occurred_at)),
            ("envelope".to_owned(), s(body)),
            ("pending".to_owned(), s(PENDING)),
        ]
        .into();
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .build()
            .map_err(|e| StoreError::new("outbox put", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Sends committed events to SQS and marks each sent. Failures are logged, not
    /// returned: the change has committed, and the relay owns what is still pending.
    pub async fn publish(&self, events: &[Envelope]) {
        for event in events {
            if let Err(e) = self.publish_one(event).await {
                tracing::warn!(event_id = %event.id, event_type = %event.event_type, error = %e, "event left pending for the relay");
            }
        }
    }

    #[tracing::instrument(skip_all, fields(event_id = %event.id, event_type = %event.event_type))]
    async fn publish_one(&self, event: &Envelope) -> Result<(), StoreError> {
        let body =
            serde_json::to_string(event).map_err(|e| StoreError::new("event envelope", e))?;
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes(
                "type",
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(&event.event_type)
                    .build()
                    .map_err(|e| StoreError::new("message attribute", e))?,
            )
            .send()
            .await
            .map_err(|e| StoreError::new("sqs send", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        let now = crate::clock::now();
        self.dynamodb
            .update_item()
            .table_name(&self.table)
            .key("id", s(&event.id))
            .update_expression("SET sent_at = :now, expires_at = :exp REMOVE pending")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":now", s(crate::clock::rfc3339(now)))
            .expression_attribute_values(":exp", n(now.unix_timestamp() + SENT_RETENTION_SECS))
            .send()
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_the_documented_shape() {
        let e = Envelope::new(
            "user.created",
            "aloft.users",
            serde_json::json!({"id": "u1"}),
        )
        .unwrap();
        let v = serde_json::to_value(&e).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["data", "id", "occurred_at", "source", "type"]);
        assert_eq!(v["type"], "user.created");
        assert!(crate::clock::parse_rfc3339(&e.occurred_at).is_some());
        assert_ne!(
            e.id,
            Envelope::new("user.created", "aloft.users", ()).unwrap().id
        );
    }
}
