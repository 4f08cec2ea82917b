//! The quality table. The only module that knows its key shapes, index names and
//! attribute names.
//!
//! One table, partitioned by service (`pk = SVC#<service>`): objectives (`sk = OBJ#<name>`)
//! carrying their alert state, their transitions (`sk = HIST#<name>#<at>`) and the
//! service's quality attributes (`sk = ATTRS`). Silences live under `pk = SILENCES`.
//! Two sparse-free indexes: `due` (objectives by the time they are next due, read by the
//! tick instead of a Scan) and `alerts` (objectives that are firing or without data, the
//! only ones carrying `alert_key`). Every objective write is conditioned on the version
//! read, so a concurrent edit or a second tick can never announce a transition twice.

mod attributes;
mod queries;
mod seed;
mod silences;

use aloft_shared::config::{self, ConfigError};
use aloft_shared::cursor::CursorCodec;
use aloft_shared::dynamo::{Item, StoreError, n, s};
use aloft_shared::outbox::{Envelope, Outbox};
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use crate::domain::{AlertState, AlertStatus, HistoryEntry, Objective, QualityError, alert};

const SERVICE_PREFIX: &str = "SVC#";
const OBJECTIVE_PREFIX: &str = "OBJ#";
const HISTORY_PREFIX: &str = "HIST#";
const ATTRIBUTES_SK: &str = "ATTRS";
const SILENCES_PK: &str = "SILENCES";
const SEED_PK: &str = "SEED";
const INDEX_DUE: &str = "due";
const INDEX_ALERTS: &str = "alerts";
/// Objectives spread over this many `due` partitions, so the tick's reads and the
/// evaluations' writes never concentrate on one index partition.
pub const DUE_SHARDS: u32 = 4;
/// History is kept this long, then DynamoDB TTL removes it.
const HISTORY_RETENTION_SECS: i64 = 400 * 86400;
pub const EVENT_SOURCE: &str = "aloft.quality";

fn service_pk(service: &str) -> String {
    format!("{SERVICE_PREFIX}{service}")
}

fn objective_sk(name: &str) -> String {
    format!("{OBJECTIVE_PREFIX}{name}")
}

/// An objective with its alert state, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredObjective {
    #[serde(flatten)]
    pub objective: Objective,
    #[serde(flatten)]
    pub status: AlertStatus,
    pub version: u64,
    /// Epoch seconds from which the tick evaluates it again.
    pub next_eval_at: i64,
    pub fingerprint: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ObjectiveItem {
    pk: String,
    sk: String,
    due_shard: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert_order: Option<String>,
    #[serde(flatten)]
    stored: StoredObjective,
}

impl From<&StoredObjective> for ObjectiveItem {
    fn from(o: &StoredObjective) -> Self {
        let (service, name) = (o.objective.service.as_str(), o.objective.name.as_str());
        let (alert_key, alert_order) = match o.status.state {
            AlertState::Ok => (None, None),
            AlertState::InsufficientData => (
                Some("insufficient_data"),
                Some(format!("{}#{service}#{name}", o.status.since)),
            ),
            s => (
                Some("firing"),
                Some(format!(
                    "{}#{}#{service}#{name}",
                    s.as_str(),
                    o.status.since
                )),
            ),
        };
        let shard = o
            .fingerprint
            .bytes()
            .fold(0u32, |a, b| a.wrapping_add(u32::from(b)))
            % DUE_SHARDS;
        Self {
            pk: service_pk(service),
            sk: objective_sk(name),
            due_shard: format!("due#{shard}"),
            alert_key: alert_key.map(Into::into),
            alert_order,
            stored: o.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct HistoryItem {
    pk: String,
    sk: String,
    objective: String,
    #[serde(flatten)]
    entry: HistoryEntry,
    expires_at: i64,
}

/// Whether a `PUT` created or replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Created,
    Updated,
}

#[derive(Debug, Clone)]
pub struct QualityStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    outbox: Outbox,
    cursors: CursorCodec,
}

impl QualityStore {
    /// Reads `QUALITY_TABLE` (and the outbox's variables).
    pub fn from_env(
        sdk: &aloft_shared::aws::SdkConfig,
        cursors: CursorCodec,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(
            aloft_shared::aws::dynamodb(sdk),
            config::required("QUALITY_TABLE")?,
            Outbox::from_env(sdk)?,
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

    #[tracing::instrument(skip_all, fields(service = %service, objective = %name))]
    pub async fn get(
        &self,
        service: &str,
        name: &str,
    ) -> Result<Option<StoredObjective>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(service_pk(service)))
            .key("sk", s(objective_sk(name)))
            .consistent_read(true)
            .send()
            .await?;
        out.item
            .map(|i| Ok(serde_dynamo::from_item::<_, ObjectiveItem>(i)?.stored))
            .transpose()
    }

    /// Creates `objective`, or replaces its definition keeping its alert state (as
    /// CloudWatch's `PutMetricAlarm` does); either way it is due at the next tick.
    #[tracing::instrument(skip_all, fields(service = %objective.service, objective = %objective.name))]
    pub async fn put_objective(
        &self,
        objective: &Objective,
        now: &str,
        now_s: i64,
    ) -> Result<(Upsert, StoredObjective), QualityError> {
        for _ in 0..3 {
            let current = self
                .get(objective.service.as_str(), objective.name.as_str())
                .await?;
            let next = StoredObjective {
                objective: objective.clone(),
                status: current
                    .as_ref()
                    .map_or_else(|| AlertStatus::initial(now), |c| c.status.clone()),
                version: current.as_ref().map_or(1, |c| c.version + 1),
                next_eval_at: now_s,
                fingerprint: alert::fingerprint(&objective.service, &objective.name),
            };
            let put = self.put_stored(&next, current.as_ref().map(|c| c.version))?;
            match self.outbox.transact(vec![put], &[]).await {
                Ok(()) => {
                    return Ok((
                        if current.is_some() {
                            Upsert::Updated
                        } else {
                            Upsert::Created
                        },
                        next,
                    ));
                }
                Err(e) if e.condition_failed_at(0) || e.is_conflict() => continue,
                Err(e) => return Err(StoreError::from(e).into()),
            }
        }
        Err(StoreError::internal(format!(
            "objective {}/{} kept changing",
            objective.service, objective.name
        ))
        .into())
    }

    /// The objective item, conditioned on `expected` (its version when read), or on its
    /// absence.
    fn put_stored(
        &self,
        o: &StoredObjective,
        expected: Option<u64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let item: Item = serde_dynamo::to_item(ObjectiveItem::from(o))?;
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = match expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(v) => put
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(v)),
        };
        Ok(TransactWriteItem::builder()
            .put(
                put.build()
                    .map_err(|e| StoreError::new("put objective", e))?,
            )
            .build())
    }

    fn put_history(
        &self,
        o: &Objective,
        entry: &HistoryEntry,
        now_s: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let item: Item = serde_dynamo::to_item(HistoryItem {
            pk: service_pk(o.service.as_str()),
            sk: format!(
                "{HISTORY_PREFIX}{}#{}#{}",
                o.name,
                entry.at,
                uuid::Uuid::new_v4().simple()
            ),
            objective: o.name.to_string(),
            entry: entry.clone(),
            expires_at: now_s + HISTORY_RETENTION_SECS,
        })?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(|e| StoreError::new("put history", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Deletes an objective; its history stays. A firing alert announces that it is
    /// resolved, so no receiver is left with an alert that never ends.
    #[tracing::instrument(skip_all, fields(service = %service, objective = %name))]
    pub async fn delete_objective(
        &self,
        service: &str,
        name: &str,
        now: &str,
    ) -> Result<(), QualityError> {
        for _ in 0..3 {
            let Some(current) = self.get(service, name).await? else {
                return Err(QualityError::ObjectiveNotFound {
                    service: service.into(),
                    name: name.into(),
                });
            };
            let delete = Delete::builder()
                .table_name(&self.table)
                .key("pk", s(service_pk(service)))
                .key("sk", s(objective_sk(name)))
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(current.version))
                .build()
                .map_err(|e| StoreError::new("delete objective", e))?;
            let events = match current.status.state.severity() {
                Some(_) => vec![Envelope::new(
                    "alert.resolved",
                    EVENT_SOURCE,
                    deleted_event(&current, now),
                )?],
                None => vec![],
            };
            match self
                .outbox
                .transact(
                    vec![TransactWriteItem::builder().delete(delete).build()],
                    &events,
                )
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if e.condition_failed_at(0) || e.is_conflict() => continue,
                Err(e) => return Err(StoreError::from(e).into()),
            }
        }
        Err(StoreError::internal(format!("objective {service}/{name} kept changing")).into())
    }

    /// Records an evaluation: the new state (and the version it was read at), the
    /// transition and its event if any, all in one transaction. `false` when the
    /// objective changed meanwhile (edited, deleted, or evaluated by another tick): the
    /// evaluation is dropped and nothing is announced.
    pub async fn record(
        &self,
        before: &StoredObjective,
        after: &StoredObjective,
        entry: Option<&HistoryEntry>,
        events: &[Envelope],
        now_s: i64,
    ) -> Result<bool, StoreError> {
        let mut items = vec![self.put_stored(after, Some(before.version))?];
        if let Some(entry) = entry {
            items.push(self.put_history(&after.objective, entry, now_s)?);
        }
        match self.outbox.transact(items, events).await {
            Ok(()) => Ok(true),
            Err(e) if e.condition_failed_at(0) || e.is_conflict() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Objectives due at `now_s`, from the `due` index (never a Scan), at most `max`.
    #[tracing::instrument(skip_all)]
    pub async fn due(&self, now_s: i64, max: usize) -> Result<Vec<StoredObjective>, StoreError> {
        let mut due = Vec::new();
        for shard in 0..DUE_SHARDS {
            let mut items = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(INDEX_DUE)
                .key_condition_expression("due_shard = :s AND next_eval_at <= :now")
                .expression_attribute_values(":s", s(format!("due#{shard}")))
                .expression_attribute_values(":now", n(now_s))
                .into_paginator()
                .items()
                .send();
            while due.len() < max {
                let Some(item) = items.next().await else {
                    break;
                };
                due.push(
                    serde_dynamo::from_item::<_, ObjectiveItem>(item.map_err(StoreError::from)?)?
                        .stored,
                );
            }
        }
        Ok(due)
    }
}

fn deleted_event(o: &StoredObjective, now: &str) -> serde_json::Value {
    serde_json::json!({
        "fingerprint": o.fingerprint,
        "service": o.objective.service,
        "objective": o.objective.name,
        "metric": o.objective.metric.as_str(),
        "severity": "info",
        "state": "ok",
        "previous_state": o.status.state,
        "value": o.status.value,
        "threshold": o.status.threshold,
        "reason": "objective_deleted",
        "since": now,
    })
}
