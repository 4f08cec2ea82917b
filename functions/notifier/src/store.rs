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

use std::collections::HashMap;

use aloft_shared::config::{self, ConfigError};
use aloft_shared::cursor::{CursorCodec, Page};
use aloft_shared::dynamo::{Item, StoreError, n, s};
use aloft_shared::outbox::{Envelope, Outbox};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{Delivery, DeliveryStatus, Subscription, SubscriptionPatch, WebhookError};

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

#[derive(Debug, Serialize, Deserialize)]
struct SubscriptionItem {
    pk: String,
    sk: String,
    listing: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failing: Option<String>,
    #[serde(flatten)]
    sub: Subscription,
}

impl From<&Subscription> for SubscriptionItem {
    fn from(sub: &Subscription) -> Self {
        Self {
            pk: sub_pk(&sub.id),
            sk: SUB_SK.into(),
            listing: LISTING.into(),
            failing: sub.failing_since.as_ref().map(|_| FAILING.into()),
            sub: sub.clone(),
        }
    }
}

/// A delivery with the envelope it sends (exactly the bytes signed and POSTed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDelivery {
    pub delivery: Delivery,
    pub payload: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct DeliveryItem {
    pk: String,
    sk: String,
    created_key: String,
    sub_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_shard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_at_ms: Option<i64>,
    expires_at: i64,
    payload: String,
    #[serde(flatten)]
    delivery: Delivery,
}

impl DeliveryItem {
    fn new(d: &StoredDelivery, due_at_ms: Option<i64>, now_unix: i64) -> Self {
        let delivery = &d.delivery;
        let pending = delivery.status == DeliveryStatus::Pending;
        Self {
            pk: dlv_pk(&delivery.id),
            sk: DLV_SK.into(),
            created_key: format!("{}#{}", delivery.created_at, delivery.id),
            sub_status: sub_status(&delivery.subscription_id, delivery.status),
            due_shard: pending.then(|| due_shard(&delivery.id)),
            due_at_ms: due_at_ms.filter(|_| pending),
            expires_at: now_unix + DELIVERY_RETENTION_DAYS * 86_400,
            payload: d.payload.clone(),
            delivery: delivery.clone(),
        }
    }
}

/// A pending delivery the sweep found due.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Due {
    pub id: String,
    pub attempt: u32,
    pub due_at_ms: i64,
}

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

    // ------------------------------------------------------------ subscriptions

    #[tracing::instrument(skip_all, fields(webhook_id = %sub.id))]
    pub async fn create_subscription(&self, sub: &Subscription) -> Result<(), StoreError> {
        let item: Item = serde_dynamo::to_item(SubscriptionItem::from(sub))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(webhook_id = %id))]
    pub async fn get_subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(sub_pk(id)))
            .key("sk", s(SUB_SK))
            .consistent_read(true)
            .send()
            .await?;
        out.item
            .map(|i| Ok(serde_dynamo::from_item::<_, SubscriptionItem>(i)?.sub))
            .transpose()
    }

    /// Subscriptions in creation order, one page.
    #[tracing::instrument(skip_all)]
    pub async fn list_subscriptions(
        &self,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Subscription>, WebhookError> {
        let scope = "webhooks:list";
        let start = self.cursors.start_key(scope, cursor)?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_SUBSCRIPTIONS)
            .key_condition_expression("listing = :l")
            .expression_attribute_values(":l", s(LISTING))
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(StoreError::from)?;
        Ok(self
            .cursors
            .page::<SubscriptionItem>(scope, out)?
            .map(|i| i.sub))
    }

    /// Every enabled subscription (the fan-out matches events against them in memory:
    /// subscriptions are few, events many).
    #[tracing::instrument(skip_all)]
    pub async fn enabled_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_SUBSCRIPTIONS)
            .key_condition_expression("listing = :l")
            .filter_expression("enabled = :t")
            .expression_attribute_values(":l", s(LISTING))
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .into_paginator()
            .items()
            .send();
        let mut subs = Vec::new();
        while let Some(item) = items.next().await {
            let item: SubscriptionItem = serde_dynamo::from_item(item.map_err(StoreError::from)?)?;
            subs.push(item.sub);
        }
        Ok(subs)
    }

    /// Applies `patch`; `None` when there is no such subscription. Enabling clears the
    /// failure streak and the reason it was disabled.
    #[tracing::instrument(skip_all, fields(webhook_id = %id))]
    pub async fn update_subscription(
        &self,
        id: &str,
        patch: &SubscriptionPatch,
        now: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let mut set = vec!["updated_at = :now".to_owned()];
        let mut remove = Vec::new();
        let mut values: HashMap<String, AttributeValue> = HashMap::from([(":now".into(), s(now))]);
        if let Some(url) = &patch.url {
            set.push("#url = :url".into());
            values.insert(":url".into(), s(url.as_str()));
        }
        if let Some(types) = &patch.event_types {
            set.push("event_types = :types".into());
            values.insert(":types".into(), serde_dynamo::to_attribute_value(types)?);
        }
        match &patch.description {
            None => {}
            Some(None) => remove.push("description"),
            Some(Some(d)) => {
                set.push("description = :d".into());
                values.insert(":d".into(), s(d));
            }
        }
        match patch.enabled {
            None => {}
            Some(true) => {
                set.push("enabled = :t".into());
                values.insert(":t".into(), AttributeValue::Bool(true));
                remove.extend(["disabled_reason", "failing", "failing_since"]);
            }
            Some(false) => {
                set.push("enabled = :f".into());
                values.insert(":f".into(), AttributeValue::Bool(false));
                remove.extend(["failing", "failing_since"]);
            }
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(sub_pk(id)))
            .key("sk", s(SUB_SK))
            .update_expression(expression)
            .condition_expression("attribute_exists(pk)")
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew);
        if patch.url.is_some() {
            update = update.expression_attribute_names("#url", "url");
        }
        match update.send().await {
            Ok(out) => Ok(out
                .attributes
                .map(|a| serde_dynamo::from_item::<_, SubscriptionItem>(a).map(|i| i.sub))
                .transpose()?),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `false` when there was no such subscription. Its deliveries stay until they expire.
    #[tracing::instrument(skip_all, fields(webhook_id = %id))]
    pub async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError> {
        match self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(sub_pk(id)))
            .key("sk", s(SUB_SK))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves to the next secret generation; the current one keeps signing until
    /// `previous_expires_at`. `None` when there is no such subscription.
    #[tracing::instrument(skip_all, fields(webhook_id = %id))]
    pub async fn rotate_secret(
        &self,
        id: &str,
        now: &str,
        previous_expires_at: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(sub_pk(id)))
            .key("sk", s(SUB_SK))
            .update_expression(
                "SET previous_generation = secret_generation, secret_generation = secret_generation + :one, \
                 previous_expires_at = :exp, updated_at = :now",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", s(previous_expires_at))
            .expression_attribute_values(":now", s(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => Ok(out
                .attributes
                .map(|a| serde_dynamo::from_item::<_, SubscriptionItem>(a).map(|i| i.sub))
                .transpose()?),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a failure streak at `now` unless one is running. A subscription deleted or
    /// disabled meanwhile is left alone.
    #[tracing::instrument(skip_all, fields(webhook_id = %id))]
    pub async fn mark_failing(&self, id: &str, now: &str) -> Result<(), StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(sub_pk(id)))
            .key("sk", s(SUB_SK))
            .update_expression(
                "SET failing_since = if_not_exists(failing_since, :now), failing = :f",
            )
            .condition_expression("attribute_exists(pk) AND enabled = :t")
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":f", s(FAILING))
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await;
        ignore_condition(r)
    }

    /// Ends a failure streak (a delivery succeeded).
    #[tracing::instrument(skip_all, fields(webhook_id = %id))]
    pub async fn clear_failing(&self, id: &str) -> Result<(), StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(sub_pk(id)))
            .key("sk", s(SUB_SK))
            .update_expression("REMOVE failing_since, failing")
            .condition_expression("attribute_exists(failing_since)")
            .send()
            .await;
        ignore_condition(r)
    }

    /// Subscriptions failing since `cutoff` or earlier.
    #[tracing::instrument(skip_all)]
    pub async fn failing_since(&self, cutoff: &str) -> Result<Vec<Subscription>, StoreError> {
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_FAILING)
            .key_condition_expression("failing = :f AND failing_since <= :c")
            .expression_attribute_values(":f", s(FAILING))
            .expression_attribute_values(":c", s(cutoff))
            .into_paginator()
            .items()
            .send();
        let mut subs = Vec::new();
        while let Some(item) = items.next().await {
            let item: SubscriptionItem = serde_dynamo::from_item(item.map_err(StoreError::from)?)?;
            subs.push(item.sub);
        }
        Ok(subs)
    }

    /// Disables a subscription whose streak started at `failing_since` and emits
    /// `event` with it, in one transaction. `false` when it changed meanwhile (a
    /// success ended the streak, or someone disabled or deleted it).
    #[tracing::instrument(skip_all, fields(webhook_id = %sub.id))]
    pub async fn disable(
        &self,
        sub: &Subscription,
        reason: &str,
        now: &str,
        event: &Envelope,
    ) -> Result<bool, StoreError> {
        let seen = sub.failing_since.clone().unwrap_or_default();
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(sub_pk(&sub.id)))
            .key("sk", s(SUB_SK))
            .update_expression(
                "SET enabled = :f, disabled_reason = :r, updated_at = :now REMOVE failing, failing_since",
            )
            .condition_expression("enabled = :t AND failing_since = :seen")
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":r", s(reason))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":seen", s(seen))
            .build()
            .map_err(|e| StoreError::new("disable subscription", e))?;
        match self
            .outbox
            .transact(
                vec![TransactWriteItem::builder().update(update).build()],
                std::slice::from_ref(event),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.condition_failed_at(0) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    // ------------------------------------------------------------ deliveries

    /// Writes a new delivery; `false` when it exists already (the event was delivered
    /// to the fan-out before), in which case nothing is written.
    #[tracing::instrument(skip_all, fields(delivery_id = %d.delivery.id))]
    pub async fn put_new_delivery(
        &self,
        d: &StoredDelivery,
        due_at_ms: i64,
        now_unix: i64,
    ) -> Result<bool, StoreError> {
        let item: Item = serde_dynamo::to_item(DeliveryItem::new(d, Some(due_at_ms), now_unix))?;
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure::<PutItemError>(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(skip_all, fields(delivery_id = %id))]
    pub async fn get_delivery(&self, id: &str) -> Result<Option<StoredDelivery>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(dlv_pk(id)))
            .key("sk", s(DLV_SK))
            .consistent_read(true)
            .send()
            .await?;
        out.item
            .map(|i| {
                let item: DeliveryItem = serde_dynamo::from_item(i)?;
                Ok(StoredDelivery {
                    delivery: item.delivery,
                    payload: item.payload,
                })
            })
            .transpose()
    }

    /// Writes `d` over the version it was read at (`d.delivery.version - 1`); `false`
    /// when another writer recorded a change first.
    #[tracing::instrument(skip_all, fields(delivery_id = %d.delivery.id))]
    pub async fn save_delivery(
        &self,
        d: &StoredDelivery,
        read_version: u64,
        due_at_ms: Option<i64>,
        now_unix: i64,
    ) -> Result<bool, StoreError> {
        let item: Item = serde_dynamo::to_item(DeliveryItem::new(d, due_at_ms, now_unix))?;
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(read_version))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure::<PutItemError>(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// A subscription's deliveries, newest first, optionally of one status.
    #[tracing::instrument(skip_all, fields(webhook_id = %sub_id))]
    pub async fn list_deliveries(
        &self,
        sub_id: &str,
        status: Option<DeliveryStatus>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Delivery>, WebhookError> {
        let scope = format!(
            "webhooks:deliveries:{sub_id}:{}",
            status.map(DeliveryStatus::as_str).unwrap_or("any")
        );
        let start = self.cursors.start_key(&scope, cursor)?;
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start);
        let query = match status {
            None => query
                .index_name(INDEX_DELIVERIES)
                .key_condition_expression("subscription_id = :k")
                .expression_attribute_values(":k", s(sub_id)),
            Some(st) => query
                .index_name(INDEX_DELIVERIES_BY_STATUS)
                .key_condition_expression("sub_status = :k")
                .expression_attribute_values(":k", s(sub_status(sub_id, st))),
        };
        let out = query.send().await.map_err(StoreError::from)?;
        Ok(self
            .cursors
            .page::<DeliveryItem>(&scope, out)?
            .map(|i| i.delivery))
    }

    /// Up to `max` of a subscription's deliveries created at or after `since`, oldest
    /// first.
    #[tracing::instrument(skip_all, fields(webhook_id = %sub_id))]
    pub async fn deliveries_since(
        &self,
        sub_id: &str,
        since: &str,
        max: usize,
    ) -> Result<Vec<StoredDelivery>, StoreError> {
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_DELIVERIES)
            .key_condition_expression("subscription_id = :k AND created_key >= :since")
            .expression_attribute_values(":k", s(sub_id))
            .expression_attribute_values(":since", s(since))
            .into_paginator()
            .page_size(i32::try_from(max.min(100)).unwrap_or(100))
            .items()
            .send();
        let mut out = Vec::new();
        while out.len() < max {
            let Some(item) = items.next().await else {
                break;
            };
            let item: DeliveryItem = serde_dynamo::from_item(item.map_err(StoreError::from)?)?;
            out.push(StoredDelivery {
                delivery: item.delivery,
                payload: item.payload,
            });
        }
        Ok(out)
    }

    /// Pending deliveries of `shard` due at `now_ms` or earlier, at most `max`.
    #[tracing::instrument(skip_all, fields(shard))]
    pub async fn due(&self, shard: u32, now_ms: i64, max: usize) -> Result<Vec<Due>, StoreError> {
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_DUE)
            .key_condition_expression("due_shard = :s AND due_at_ms <= :now")
            .expression_attribute_values(":s", s(format!("DUE#{shard}")))
            .expression_attribute_values(":now", n(now_ms))
            .into_paginator()
            .page_size(i32::try_from(max.min(100)).unwrap_or(100))
            .items()
            .send();
        let mut out = Vec::new();
        while out.len() < max {
            let Some(item) = items.next().await else {
                break;
            };
            out.push(serde_dynamo::from_item(item.map_err(StoreError::from)?)?);
        }
        Ok(out)
    }

    /// Moves a due delivery's sweep time to `next_due_ms` if it is still the attempt
    /// and due time the sweep read; `false` when another sweep or the worker moved it.
    #[tracing::instrument(skip_all, fields(delivery_id = %due.id))]
    pub async fn claim_due(&self, due: &Due, next_due_ms: i64) -> Result<bool, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(dlv_pk(&due.id)))
            .key("sk", s(DLV_SK))
            .update_expression("SET due_at_ms = :next")
            .condition_expression("#status = :pending AND attempt = :a AND due_at_ms = :seen")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":next", n(next_due_ms))
            .expression_attribute_values(":pending", s(DeliveryStatus::Pending.as_str()))
            .expression_attribute_values(":a", n(due.attempt))
            .expression_attribute_values(":seen", n(due.due_at_ms))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure::<UpdateItemError>(&e) => Ok(false),
            Err(e) => Err(e.into()),
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
