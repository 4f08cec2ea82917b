//! aloft's own default objectives (`crate::defaults`), created once per function and
//! never brought back: a marker item per function records that its defaults were made.

use std::collections::HashSet;

use aloft_shared::dynamo::{StoreError, s};
use serde::Deserialize;

use super::{QualityStore, SEED_PK, StoredObjective};
use crate::domain::{AlertStatus, Objective, alert};

#[derive(Deserialize)]
struct Marker {
    sk: String,
}

impl QualityStore {
    /// The markers starting with `prefix` of every function whose defaults were created:
    /// one Query, however many functions there are.
    pub async fn seeded(&self, prefix: &str) -> Result<HashSet<String>, StoreError> {
        let markers = self
            .query_all(SEED_PK.to_owned(), prefix, |m: Marker| m.sk)
            .await?;
        Ok(markers.into_iter().collect())
    }

    /// Creates `defaults` and then `marker`, for a function [`seeded`](Self::seeded) did
    /// not list. An objective that exists already (made by hand, or by another sandbox
    /// seeding at the same moment) is left as it is. Returns how many were created.
    pub async fn seed(
        &self,
        marker: &str,
        defaults: &[Objective],
        now: &str,
        now_s: i64,
    ) -> Result<usize, StoreError> {
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
