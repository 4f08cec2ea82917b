//! Silences in the quality table (`pk = SILENCES`), removed by TTL a day after they end.

use aloft_shared::dynamo::{Item, StoreError, s};
use serde::{Deserialize, Serialize};

use super::{QualityStore, SILENCES_PK};
use crate::domain::{QualityError, Silence};

#[derive(Debug, Serialize, Deserialize)]
struct SilenceItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    silence: Silence,
    expires_at: i64,
}

impl QualityStore {
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
}
