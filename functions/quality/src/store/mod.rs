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

use aloft_shared::config::{self, ConfigError};
use aloft_shared::cursor::{CursorCodec, Page};
use aloft_shared::dynamo::{Item, StoreError, n, s};
use aloft_shared::outbox::{Envelope, Outbox};
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use crate::domain::attributes::QualityAttributes;
use crate::domain::{
    Alert, AlertFilter, AlertState, AlertStatus, HistoryEntry, Objective, QualityError, Silence,
    alert,
};

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

#[derive(Debug, Serialize, Deserialize)]
struct SilenceItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    silence: Silence,
    expires_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct AttributesItem {
    pk: String,
    sk: String,
    /// As sent: the declarative parts are free-form JSON.
    attributes_json: String,
    updated_at: String,
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
        Err(StoreError(format!(
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
        Err(StoreError(format!("objective {service}/{name} kept changing")).into())
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

    pub async fn objectives(
        &self,
        service: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<StoredObjective>, QualityError> {
        let scope = format!("quality:objectives:{service}");
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
            .expression_attribute_values(":pk", s(service_pk(service)))
            .expression_attribute_values(":p", s(OBJECTIVE_PREFIX))
            .limit(limit)
            .set_exclusive_start_key(self.cursors.start_key(&scope, cursor)?)
            .send()
            .await
            .map_err(StoreError::from)?;
        Ok(self
            .cursors
            .page::<ObjectiveItem>(&scope, out)?
            .map(|i| i.stored))
    }

    /// Every objective of `service` (for the quality view and attribute replacement).
    pub async fn all_objectives(&self, service: &str) -> Result<Vec<StoredObjective>, StoreError> {
        self.query_all(service_pk(service), OBJECTIVE_PREFIX, |i: ObjectiveItem| {
            i.stored
        })
        .await
    }

    /// Transitions of one objective, newest first.
    pub async fn history(
        &self,
        service: &str,
        name: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<HistoryEntry>, QualityError> {
        let scope = format!("quality:history:{service}:{name}");
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
            .expression_attribute_values(":pk", s(service_pk(service)))
            .expression_attribute_values(":p", s(format!("{HISTORY_PREFIX}{name}#")))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(self.cursors.start_key(&scope, cursor)?)
            .send()
            .await
            .map_err(StoreError::from)?;
        Ok(self
            .cursors
            .page::<HistoryItem>(&scope, out)?
            .map(|i| i.entry))
    }

    /// Every transition of every objective of `service` with its objective's name,
    /// oldest first (for MTTR).
    pub async fn service_history(
        &self,
        service: &str,
    ) -> Result<Vec<(String, HistoryEntry)>, StoreError> {
        let mut h = self
            .query_all(service_pk(service), HISTORY_PREFIX, |i: HistoryItem| {
                (i.objective, i.entry)
            })
            .await?;
        h.sort_by(|a, b| a.1.at.cmp(&b.1.at));
        Ok(h)
    }

    async fn query_all<T: serde::de::DeserializeOwned, U>(
        &self,
        pk: String,
        prefix: &str,
        map: impl Fn(T) -> U,
    ) -> Result<Vec<U>, StoreError> {
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":p", s(prefix))
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = items.next().await {
            out.push(map(serde_dynamo::from_item(
                item.map_err(StoreError::from)?,
            )?));
        }
        Ok(out)
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

    /// Active alerts from the `alerts` index, most severe first, then oldest first.
    pub async fn alerts(
        &self,
        filter: AlertFilter,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Alert>, QualityError> {
        let (key, prefix) = match filter {
            AlertFilter::Firing(severity) => {
                ("firing", severity.map(|s| format!("{}#", s.as_str())))
            }
            AlertFilter::InsufficientData => ("insufficient_data", None),
        };
        let scope = format!("quality:alerts:{key}:{}", prefix.as_deref().unwrap_or(""));
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_ALERTS)
            .expression_attribute_values(":k", s(key))
            .limit(limit)
            .set_exclusive_start_key(self.cursors.start_key(&scope, cursor)?);
        let query = match prefix {
            Some(p) => query
                .key_condition_expression("alert_key = :k AND begins_with(alert_order, :p)")
                .expression_attribute_values(":p", s(p)),
            None => query.key_condition_expression("alert_key = :k"),
        };
        let out = query.send().await.map_err(StoreError::from)?;
        Ok(self.cursors.page::<ObjectiveItem>(&scope, out)?.map(|i| {
            let o = i.stored;
            Alert {
                service: o.objective.service.to_string(),
                objective: o.objective.name.to_string(),
                severity: o.status.state.severity(),
                state: if o.status.state.is_firing() {
                    "firing".into()
                } else {
                    o.status.state.as_str().into()
                },
                value: o.status.value,
                threshold: o.status.threshold,
                since: o.status.since,
                fingerprint: o.fingerprint,
            }
        }))
    }

    pub async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let until =
            aloft_shared::clock::parse_rfc3339(&silence.until).map_or(0, |t| t.unix_timestamp());
        let item: Item = serde_dynamo::to_item(SilenceItem {
            pk: SILENCES_PK.into(),
            sk: silence.id.clone(),
            silence: silence.clone(),
            expires_at: until + 86400,
        })?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await?;
        Ok(())
    }

    /// Every silence not yet removed by TTL (the caller checks which are active).
    pub async fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(SILENCES_PK))
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = items.next().await {
            out.push(
                serde_dynamo::from_item::<_, SilenceItem>(item.map_err(StoreError::from)?)?.silence,
            );
        }
        Ok(out)
    }

    pub async fn delete_silence(&self, id: &str) -> Result<(), QualityError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(SILENCES_PK))
            .key("sk", s(id))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(QualityError::SilenceNotFound(id.into()))
            }
            Err(e) => Err(StoreError::from(e).into()),
        }
    }

    pub async fn attributes(
        &self,
        service: &str,
    ) -> Result<Option<(QualityAttributes, String)>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(service_pk(service)))
            .key("sk", s(ATTRIBUTES_SK))
            .send()
            .await?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let item: AttributesItem = serde_dynamo::from_item(item)?;
        let attrs = serde_json::from_str(&item.attributes_json)
            .map_err(|e| StoreError::new("attributes", e))?;
        Ok(Some((attrs, item.updated_at)))
    }

    /// Stores `attrs` and makes the service's `attr-…` objectives exactly `objectives`
    /// (created, replaced keeping their state, or deleted), in one transaction.
    #[tracing::instrument(skip_all, fields(service = %service))]
    pub async fn put_attributes(
        &self,
        service: &str,
        attrs: &QualityAttributes,
        objectives: &[Objective],
        now: &str,
        now_s: i64,
    ) -> Result<(), QualityError> {
        use crate::domain::attributes::ATTRIBUTE_OBJECTIVE_PREFIX as PREFIX;
        for _ in 0..3 {
            let existing: Vec<_> = self
                .all_objectives(service)
                .await?
                .into_iter()
                .filter(|o| o.objective.name.as_str().starts_with(PREFIX))
                .collect();
            let mut items = Vec::new();
            for o in objectives {
                let current = existing.iter().find(|c| c.objective.name == o.name);
                let next = StoredObjective {
                    objective: o.clone(),
                    status: current.map_or_else(|| AlertStatus::initial(now), |c| c.status.clone()),
                    version: current.map_or(1, |c| c.version + 1),
                    next_eval_at: now_s,
                    fingerprint: alert::fingerprint(&o.service, &o.name),
                };
                items.push(self.put_stored(&next, current.map(|c| c.version))?);
            }
            for stale in existing
                .iter()
                .filter(|c| objectives.iter().all(|o| o.name != c.objective.name))
            {
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .key("pk", s(service_pk(service)))
                    .key("sk", s(objective_sk(stale.objective.name.as_str())))
                    .condition_expression("version = :v")
                    .expression_attribute_values(":v", n(stale.version))
                    .build()
                    .map_err(|e| StoreError::new("delete objective", e))?;
                items.push(TransactWriteItem::builder().delete(delete).build());
            }
            let json =
                serde_json::to_string(attrs).map_err(|e| StoreError::new("attributes", e))?;
            let item: Item = serde_dynamo::to_item(AttributesItem {
                pk: service_pk(service),
                sk: ATTRIBUTES_SK.into(),
                attributes_json: json,
                updated_at: now.into(),
            })
            .map_err(StoreError::from)?;
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::new("put attributes", e))?;
            items.push(TransactWriteItem::builder().put(put).build());
            match self.outbox.transact(items, &[]).await {
                Ok(()) => return Ok(()),
                Err(e) if !e.failed_conditions().is_empty() || e.is_conflict() => continue,
                Err(e) => return Err(StoreError::from(e).into()),
            }
        }
        Err(StoreError(format!("objectives of {service} kept changing")).into())
    }

    /// Creates `defaults` once per deployment (marker `marker`): objectives that exist
    /// already are left as they are, and a deleted default is not brought back.
    pub async fn seed(
        &self,
        marker: &str,
        defaults: &[Objective],
        now: &str,
        now_s: i64,
    ) -> Result<usize, StoreError> {
        let seeded = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(SEED_PK))
            .key("sk", s(marker))
            .send()
            .await?;
        if seeded.item.is_some() {
            return Ok(0);
        }
        let mut created = 0;
        for o in defaults {
            let stored = StoredObjective {
                objective: o.clone(),
                status: AlertStatus::initial(now),
                version: 1,
                next_eval_at: now_s,
                fingerprint: alert::fingerprint(&o.service, &o.name),
            };
            match self
                .outbox
                .transact(vec![self.put_stored(&stored, None)?], &[])
                .await
            {
                Ok(()) => created += 1,
                Err(e) if e.condition_failed_at(0) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(SEED_PK))
            .item("sk", s(marker))
            .item("at", s(now))
            .send()
            .await?;
        Ok(created)
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
