//! Read paths of the quality table: a service's objectives, histories, and the active
//! alerts from the `alerts` index.

use aloft_shared::cursor::Page;
use aloft_shared::dynamo::{StoreError, s};

use super::{
    HISTORY_PREFIX, HistoryItem, INDEX_ALERTS, OBJECTIVE_PREFIX, ObjectiveItem, QualityStore,
    StoredObjective, service_pk,
};
use crate::domain::{Alert, AlertFilter, HistoryEntry, QualityError};

impl QualityStore {
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

    pub(super) async fn query_all<T: serde::de::DeserializeOwned, U>(
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
            AlertFilter::Nothing => {
                return Ok(Page {
                    items: Vec::new(),
                    next_cursor: None,
                });
            }
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
}
