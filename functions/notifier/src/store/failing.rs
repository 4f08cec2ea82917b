//! Failure streaks: a subscription whose attempts keep failing carries `failing_since` and
//! sits in the sparse `failing` index, which the sweep reads to disable it.

use aloft_shared::dynamo::{StoreError, s};
use aloft_shared::outbox::Envelope;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use super::subscriptions::SubscriptionItem;
use super::{FAILING, INDEX_FAILING, SUB_SK, WebhookStore, ignore_condition, sub_pk};
use crate::domain::Subscription;

impl WebhookStore {
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
}
