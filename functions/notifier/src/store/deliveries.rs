//! Deliveries: `pk = DLV#<delivery id>`, `sk = DLV`, with the event body they send and
//! their attempts; listed per subscription through `deliveries` (by creation time) and
//! `deliveries-by-status`, and written over the version they were read at.

use aloft_shared::cursor::Page;
use aloft_shared::dynamo::{Item, StoreError, n, s};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use serde::{Deserialize, Serialize};

use super::{
    DELIVERY_RETENTION_DAYS, DLV_SK, INDEX_DELIVERIES, INDEX_DELIVERIES_BY_STATUS, WebhookStore,
    dlv_pk, due_shard, is_condition_failure, sub_status,
};
use crate::domain::{Delivery, DeliveryStatus, WebhookError};

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

impl WebhookStore {
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
}
