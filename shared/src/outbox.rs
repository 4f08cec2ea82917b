//! The transactional outbox: every event is written in the same DynamoDB transaction as
//! the change it announces, and nothing else happens on the request path.
//!
//! The outbox table has a DynamoDB stream (`NEW_IMAGE`). A relay function, fed by the
//! stream's event-source mapping, sends each new record's envelope to the notifications
//! queue (AWS's transactional-outbox pattern). A write that does not commit never
//! notifies (its record is rolled back with it); a write that commits is never lost (the
//! stream keeps the record for 24 h and the mapping retries the relay). Delivery is at
//! least once: consumers deduplicate by [`Envelope::id`]. Records expire by TTL once the
//! stream no longer needs them.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use crate::config::{self, ConfigError};
use crate::dynamo::{Item, StoreError, cancellation_codes, condition_failed_at};

/// How long an outbox record is kept: past the stream's 24 h retention, then DynamoDB
/// TTL removes it (a REMOVE the relay ignores).
const RETENTION_SECS: i64 = 2 * 24 * 3600;

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

/// An outbox record as the table (and so its stream) holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: String,
    /// The envelope as JSON, exactly the message body the relay sends.
    pub envelope: String,
    pub expires_at: i64,
}

impl OutboxRecord {
    pub fn new(event: &Envelope) -> Result<Self, StoreError> {
        Ok(Self {
            id: event.id.clone(),
            event_type: event.event_type.clone(),
            occurred_at: event.occurred_at.clone(),
            envelope: serde_json::to_string(event)
                .map_err(|e| StoreError::new("event envelope", e))?,
            expires_at: crate::clock::now().unix_timestamp() + RETENTION_SECS,
        })
    }
}

/// A transaction that did not commit: either DynamoDB cancelled it (a condition failed
/// or it conflicted with another transaction; `codes` has one entry per item, in request
/// order, the change's items first and the outbox records after them), or the store
/// failed.
#[derive(Debug, thiserror::Error)]
pub enum TransactError {
    #[error("transaction cancelled: {codes:?}")]
    Cancelled { codes: Vec<String> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TransactError {
    /// Whether item `index` (of the items passed to [`Outbox::transact`]) failed its
    /// condition.
    pub fn condition_failed_at(&self, index: usize) -> bool {
        matches!(self, Self::Cancelled { codes } if condition_failed_at(codes, index))
    }

    /// The indexes of the items whose condition failed.
    pub fn failed_conditions(&self) -> Vec<usize> {
        match self {
            Self::Cancelled { codes } => (0..codes.len())
                .filter(|i| condition_failed_at(codes, *i))
                .collect(),
            Self::Store(_) => Vec::new(),
        }
    }

    /// Cancelled because another transaction touched the same items at the same time:
    /// reading again and retrying may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Cancelled { codes } if codes.iter().any(|c| c == "TransactionConflict"))
    }
}

impl From<TransactError> for StoreError {
    fn from(e: TransactError) -> Self {
        match e {
            TransactError::Store(e) => e,
            TransactError::Cancelled { ref codes } => StoreError::cancelled(codes, e.to_string()),
        }
    }
}

impl From<TransactError> for crate::Problem {
    fn from(e: TransactError) -> Self {
        StoreError::from(e).into()
    }
}

#[derive(Debug, Clone)]
pub struct Outbox {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
}

impl Outbox {
    /// Reads `OUTBOX_TABLE`.
    pub fn from_env(config: &crate::aws::SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(
            crate::aws::dynamodb(config),
            config::required("OUTBOX_TABLE")?,
        ))
    }

    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { dynamodb, table }
    }

    /// The transaction item that records `event`. [`Outbox::transact`] adds these for
    /// you; use this only to build a transaction by hand.
    pub fn record(&self, event: &Envelope) -> Result<TransactWriteItem, StoreError> {
        let item: Item = serde_dynamo::to_item(OutboxRecord::new(event)?)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .build()
            .map_err(|e| StoreError::new("outbox put", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Commits `items` and the records of `events` as one DynamoDB transaction: one
    /// request, and the events exist if and only if the change committed.
    pub async fn transact(
        &self,
        mut items: Vec<TransactWriteItem>,
        events: &[Envelope],
    ) -> Result<(), TransactError> {
        for event in events {
            items.push(self.record(event)?);
        }
        // The token makes the SDK's own retries idempotent: an attempt whose answer was
        // lost but which committed is not applied again (and not reported as a failed
        // condition) when the retry arrives within DynamoDB's 10-minute window.
        match self
            .dynamodb
            .transact_write_items()
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match cancellation_codes(&e) {
                Some(codes) => Err(TransactError::Cancelled { codes }),
                None => Err(TransactError::Store(e.into())),
            },
        }
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

    #[test]
    fn a_record_carries_the_envelope_as_the_message_body() {
        let e = Envelope::new(
            "user.created",
            "aloft.users",
            serde_json::json!({"id": "u1"}),
        )
        .unwrap();
        let record = OutboxRecord::new(&e).unwrap();
        let back: Envelope = serde_json::from_str(&record.envelope).unwrap();
        assert_eq!(back, e);
        assert!(record.expires_at > crate::clock::now().unix_timestamp() + 24 * 3600);
    }

    #[test]
    fn cancellation_reasons_name_the_failed_items() {
        let e = TransactError::Cancelled {
            codes: vec![
                "None".into(),
                "ConditionalCheckFailed".into(),
                "None".into(),
            ],
        };
        assert!(e.condition_failed_at(1));
        assert!(!e.condition_failed_at(0));
        assert!(!e.condition_failed_at(7));
        assert_eq!(e.failed_conditions(), [1]);
        assert!(!e.is_conflict());
        let conflict = TransactError::Cancelled {
            codes: vec!["TransactionConflict".into()],
        };
        assert!(conflict.is_conflict());
    }
}
