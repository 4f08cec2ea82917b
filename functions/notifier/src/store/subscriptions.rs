//! Subscriptions: `pk = SUB#<id>`, `sk = SUB`, all of them in the `subscriptions` index by
//! creation time; create, read, list, patch, delete and secret rotation.

use std::collections::HashMap;

use aloft_shared::cursor::Page;
use aloft_shared::dynamo::{Item, StoreError, n, s};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};

use super::{
    FAILING, INDEX_SUBSCRIPTIONS, LISTING, SUB_SK, WebhookStore, is_condition_failure, sub_pk,
};
use crate::domain::{Subscription, SubscriptionPatch, WebhookError};

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SubscriptionItem {
    pk: String,
    sk: String,
    listing: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failing: Option<String>,
    #[serde(flatten)]
    pub(super) sub: Subscription,
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

impl WebhookStore {
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
}
