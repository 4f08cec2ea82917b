//! The sparse, sharded `due` index of pending deliveries: what the sweep reads (never a
//! Scan) and how it claims a due delivery before re-queueing it.

use aloft_shared::dynamo::{StoreError, n, s};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use serde::Deserialize;

use super::{DLV_SK, INDEX_DUE, WebhookStore, dlv_pk, is_condition_failure};
use crate::domain::DeliveryStatus;

/// A pending delivery the sweep found due.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Due {
    pub id: String,
    pub attempt: u32,
    pub due_at_ms: i64,
}

impl WebhookStore {
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
