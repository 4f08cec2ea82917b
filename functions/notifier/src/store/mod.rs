//! Webhook subscriptions and deliveries in DynamoDB. The only module that knows the
//! table's name, key shapes, attribute and index names.
//!
//! One table, `pk`/`sk`:
//! - a subscription: `pk = SUB#<id>`, `sk = SUB`; in the `subscriptions` index (all
//!   of them, by creation time) and, while its attempts keep failing, in the sparse
//!   `failing` index (by `failing_since`) the sweep reads to disable it;
//! - a delivery: `pk = DLV#<delivery id>`, `sk = DLV`, with the event body it sends and
//!   its attempts; in `deliveries` (per subscription, by creation time),
//!   `deliveries-by-status` (per subscription and status) and, while pending, the sparse
//!   sharded `due` index the sweep reads (never a Scan). Deliveries expire by TTL
//!   [`DELIVERY_RETENTION_DAYS`] after their last change.

mod deliveries;
mod due;
mod failing;
mod subscriptions;

pub use deliveries::StoredDelivery;
pub use due::Due;

use aloft_shared::config::{self, ConfigError};
use aloft_shared::cursor::CursorCodec;
use aloft_shared::dynamo::StoreError;
use aloft_shared::outbox::Outbox;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use sha2::{Digest, Sha256};

use crate::domain::DeliveryStatus;

const SUB_PREFIX: &str = "SUB#";
const SUB_SK: &str = "SUB";
const DLV_PREFIX: &str = "DLV#";
const DLV_SK: &str = "DLV";
const LISTING: &str = "SUB";
const FAILING: &str = "FAILING";
const INDEX_SUBSCRIPTIONS: &str = "subscriptions";
const INDEX_FAILING: &str = "failing";
const INDEX_DELIVERIES: &str = "deliveries";
const INDEX_DELIVERIES_BY_STATUS: &str = "deliveries-by-status";
const INDEX_DUE: &str = "due";
/// Shards of the due index, so a burst of retries doesn't all land on one partition.
pub const DUE_SHARDS: u32 = 8;
pub const DELIVERY_RETENTION_DAYS: i64 = 30;

fn sub_pk(id: &str) -> String {
    format!("{SUB_PREFIX}{id}")
}

fn dlv_pk(id: &str) -> String {
    format!("{DLV_PREFIX}{id}")
}

fn sub_status(sub_id: &str, status: DeliveryStatus) -> String {
    format!("{sub_id}#{}", status.as_str())
}

fn due_shard(delivery_id: &str) -> String {
    let h = Sha256::digest(delivery_id.as_bytes());
    format!("DUE#{}", u32::from(h[0]) % DUE_SHARDS)
}

fn is_condition_failure<E>(e: &SdkError<E>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

#[derive(Debug, Clone)]
pub struct WebhookStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    outbox: Outbox,
    cursors: CursorCodec,
}

impl WebhookStore {
    /// Reads `WEBHOOKS_TABLE` and `OUTBOX_TABLE`.
    pub fn from_env(
        config: &aloft_shared::aws::SdkConfig,
        cursors: CursorCodec,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(
            aloft_shared::aws::dynamodb(config),
            config::required("WEBHOOKS_TABLE")?,
            Outbox::from_env(config)?,
            cursors,
        ))
    }

    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: String,
        outbox: Outbox,
        cursors: CursorCodec,
    ) -> Self {
        Self {
            client,
            table,
            outbox,
            cursors,
        }
    }
}

fn ignore_condition<T>(r: Result<T, SdkError<UpdateItemError>>) -> Result<(), StoreError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_condition_failure(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
