//! A service's quality attributes (`sk = ATTRS`) and the `attr-…` objectives they own,
//! and the once-per-deployment seeding of aloft's own default objectives.

use aloft_shared::dynamo::{Item, StoreError, n, s};
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::{ATTRIBUTES_SK, QualityStore, StoredObjective, objective_sk, service_pk};
use crate::domain::attributes::QualityAttributes;
use crate::domain::{AlertStatus, Objective, QualityError, alert};

#[derive(Debug, Serialize, Deserialize)]
struct AttributesItem {
    pk: String,
    sk: String,
    /// As sent: the declarative parts are free-form JSON.
    attributes_json: String,
    updated_at: String,
}

impl QualityStore {
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
        let attrs = QualityAttributes::from_stored(&item.attributes_json)
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
        Err(StoreError::internal(format!("objectives of {service} kept changing")).into())
    }
}
