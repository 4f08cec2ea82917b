//! Scaling policies, state and decisions in DynamoDB. The only module that knows the
//! scaling table's key shapes and attribute names.
//!
//! | item | pk | sk |
//! | --- | --- | --- |
//! | a service's policy and the scaler's memory of it (`state`, `version`) | `SERVICE#<name>` | `SCALING` |
//! | one recorded decision (expires after 30 days) | `SERVICE#<name>` | `DECISION#<unix ms, 13 digits>` |
//!
//! Policy items carry `due_shard` and `next_eval_at_ms` on the `due` index (projection
//! ALL), so a tick reads due policies and their state in one Query, never a Scan. Every
//! write of the state is conditioned on `version`, so two evaluations racing (an
//! overlapping tick, a policy replaced meanwhile) cannot both record.

use aloft_shared::config::{self, ConfigError};
use aloft_shared::cursor::{CursorCodec, Page};
use aloft_shared::dynamo::{Item, StoreError, n, s};
use aloft_shared::outbox::{Envelope, Outbox};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use crate::domain::decision::Actuation;
use crate::domain::recommend::Evaluation;
use crate::domain::{Decision, ScalerError, ScalingPolicy, State};

const INDEX_DUE: &str = "due";
const DUE_SHARD: &str = "due";
const SCALING_SK: &str = "SCALING";
const DECISION_PREFIX: &str = "DECISION#";
const EVENT_SOURCE: &str = "aloft.scaler";
pub const EVENT_DECIDED: &str = "scaling.decided";
const DECISION_RETENTION_SECS: i64 = 30 * 24 * 3600;
/// BatchGetItem's limit of keys per call.
const BATCH_GET_MAX: usize = 100;

fn service_pk(service: &str) -> String {
    format!("SERVICE#{service}")
}

fn decision_sk(at_ms: i64) -> String {
    format!("{DECISION_PREFIX}{at_ms:013}")
}

/// The history key a decision made at `at_ms` is recorded under, so a state can point at
/// the decision whose actuation it carries.
pub fn decision_key(at_ms: i64) -> String {
    decision_sk(at_ms)
}

/// A service's policy with what the scaler remembers about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceScaling {
    pub service: String,
    pub policy: ScalingPolicy,
    #[serde(default)]
    pub state: State,
    #[serde(default)]
    pub version: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct DecisionItem {
    pk: String,
    sk: String,
    service: String,
    decision: Decision,
    expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct ScalingStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    outbox: Outbox,
}

/// What recording an evaluation did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// Written; the decision's history key when it was kept in the history.
    Done { decision_key: Option<String> },
    /// Another evaluation or a policy change got there first: nothing written.
    Conflict,
}

impl ScalingStore {
    /// Reads `SCALING_TABLE` (and the outbox's variables).
    pub fn from_env(sdk: &aloft_shared::aws::SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(
            aloft_shared::aws::dynamodb(sdk),
            config::required("SCALING_TABLE")?,
            Outbox::from_env(sdk)?,
        ))
    }

    pub fn new(client: aws_sdk_dynamodb::Client, table: String, outbox: Outbox) -> Self {
        Self {
            client,
            table,
            outbox,
        }
    }

    /// Creates or replaces a service's policy; the scaler's state of it is kept. Due at
    /// the next tick.
    #[tracing::instrument(skip_all, fields(%service))]
    pub async fn put_policy(
        &self,
        service: &str,
        policy: &ScalingPolicy,
        now: &str,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(service_pk(service)))
            .key("sk", s(SCALING_SK))
            .update_expression(
                "SET policy = :p, service = :svc, due_shard = :due, updated_at = :now, \
                 next_eval_at_ms = if_not_exists(next_eval_at_ms, :zero) ADD version :one",
            )
            .expression_attribute_values(":p", AttributeValue::M(serde_dynamo::to_item(policy)?))
            .expression_attribute_values(":svc", s(service))
            .expression_attribute_values(":due", s(DUE_SHARD))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .send()
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(%service))]
    pub async fn get(&self, service: &str) -> Result<Option<ServiceScaling>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(service_pk(service)))
            .key("sk", s(SCALING_SK))
            .consistent_read(true)
            .send()
            .await?;
        Ok(out.item.map(serde_dynamo::from_item).transpose()?)
    }

    /// Several services' policies and state (the fan-out worker's read), 100 a call.
    pub async fn get_many(&self, services: &[String]) -> Result<Vec<ServiceScaling>, StoreError> {
        let mut found = Vec::new();
        for chunk in services.chunks(BATCH_GET_MAX) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|svc| {
                    Item::from([
                        ("pk".to_owned(), s(service_pk(svc))),
                        ("sk".to_owned(), s(SCALING_SK)),
                    ])
                })
                .collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::new("batch get keys", e))?,
            );
            while let Some(keys) = request.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    found.push(serde_dynamo::from_item(item)?);
                }
                request = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
            }
        }
        Ok(found)
    }

    /// Removes the policy and the scaler's state; false when there was none. Recorded
    /// decisions stay until they expire.
    #[tracing::instrument(skip_all, fields(%service))]
    pub async fn delete_policy(&self, service: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(service_pk(service)))
            .key("sk", s(SCALING_SK))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every policy due at `now_ms`, with its state, from the `due` index.
    #[tracing::instrument(skip_all)]
    pub async fn due(&self, now_ms: i64) -> Result<Vec<ServiceScaling>, StoreError> {
        let mut due = Vec::new();
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_DUE)
            .key_condition_expression("due_shard = :due AND next_eval_at_ms <= :now")
            .expression_attribute_values(":due", s(DUE_SHARD))
            .expression_attribute_values(":now", n(now_ms))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            due.push(serde_dynamo::from_item(item?)?);
        }
        Ok(due)
    }

    /// Records an evaluation of `current` (read at its `version`): the new state always;
    /// the decision in the history when `keep`; `scaling.decided` when the desired count
    /// changed, in the same transaction.
    #[tracing::instrument(skip_all, fields(service = %current.service))]
    pub async fn record(
        &self,
        current: &ServiceScaling,
        eval: &Evaluation,
        keep: bool,
        now_ms: i64,
    ) -> Result<Recorded, StoreError> {
        let update = self.state_update(&current.service, current.version, &eval.state, now_ms)?;
        let changed = eval.decision.changed();
        if !keep && !changed {
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(service_pk(&current.service)))
                .key("sk", s(SCALING_SK))
                .update_expression(update.update_expression())
                .condition_expression("version = :v")
                .set_expression_attribute_names(update.expression_attribute_names().cloned())
                .set_expression_attribute_values(update.expression_attribute_values().cloned())
                .send()
                .await;
            return match out {
                Ok(_) => Ok(Recorded::Done { decision_key: None }),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
                {
                    Ok(Recorded::Conflict)
                }
                Err(e) => Err(e.into()),
            };
        }
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        let key = decision_sk(now_ms);
        {
            let item: Item = serde_dynamo::to_item(DecisionItem {
                pk: service_pk(&current.service),
                sk: key.clone(),
                service: current.service.clone(),
                decision: eval.decision.clone(),
                expires_at: now_ms / 1000 + DECISION_RETENTION_SECS,
            })?;
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::new("put decision", e))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let events = if changed {
            vec![Envelope::new(
                EVENT_DECIDED,
                EVENT_SOURCE,
                serde_json::json!({"service": current.service, "decision": eval.decision}),
            )?]
        } else {
            Vec::new()
        };
        match self.outbox.transact(items, &events).await {
            Ok(()) => Ok(Recorded::Done {
                decision_key: Some(key),
            }),
            Err(e) if e.condition_failed_at(0) || e.is_conflict() => Ok(Recorded::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// Records an actuator call's outcome in the state (at `version`) and in the decision
    /// that asked for it.
    #[tracing::instrument(skip_all, fields(%service))]
    pub async fn record_actuation(
        &self,
        service: &str,
        version: u64,
        state: &State,
        actuation: &Actuation,
        now_ms: i64,
    ) -> Result<Recorded, StoreError> {
        let mut items = vec![
            TransactWriteItem::builder()
                .update(self.state_update(service, version, state, now_ms)?)
                .build(),
        ];
        if let Some(key) = &state.actuation_decision_key {
            let update = Update::builder()
                .table_name(&self.table)
                .key("pk", s(service_pk(service)))
                .key("sk", s(key))
                .update_expression("SET decision.actuation = :a")
                .condition_expression("attribute_exists(sk)")
                .expression_attribute_values(
                    ":a",
                    AttributeValue::M(serde_dynamo::to_item(actuation)?),
                )
                .build()
                .map_err(|e| StoreError::new("update decision", e))?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        match self.outbox.transact(items, &[]).await {
            Ok(()) => Ok(Recorded::Done { decision_key: None }),
            Err(e) if e.condition_failed_at(0) || e.is_conflict() => Ok(Recorded::Conflict),
            // The decision expired from the history: the state still tells.
            Err(e) if e.condition_failed_at(1) => Ok(Recorded::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// A service's recorded decisions, newest first.
    #[tracing::instrument(skip_all, fields(%service))]
    pub async fn decisions(
        &self,
        cursors: &CursorCodec,
        service: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Decision>, ScalerError> {
        let scope = format!("scaler:decisions:{service}");
        let start = cursors.start_key(&scope, cursor)?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :d)")
            .expression_attribute_values(":pk", s(service_pk(service)))
            .expression_attribute_values(":d", s(DECISION_PREFIX))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(StoreError::from)?;
        Ok(cursors
            .page::<DecisionItem>(&scope, out)?
            .map(|i| i.decision))
    }

    /// `SET state, next_eval_at_ms ADD version`, on the condition that nobody wrote since
    /// `version` was read.
    fn state_update(
        &self,
        service: &str,
        version: u64,
        state: &State,
        now_ms: i64,
    ) -> Result<Update, StoreError> {
        Update::builder()
            .table_name(&self.table)
            .key("pk", s(service_pk(service)))
            .key("sk", s(SCALING_SK))
            .update_expression("SET #state = :state, next_eval_at_ms = :next ADD version :one")
            .condition_expression("version = :v")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", AttributeValue::M(serde_dynamo::to_item(state)?))
            .expression_attribute_values(":next", n(now_ms))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":v", n(version))
            .build()
            .map_err(|e| StoreError::new("update state", e))
    }
}
