//! What the sweep reads and writes: due leases, due checks and their results, and holds
//! (self-preservation).

use std::collections::BTreeSet;

use aloft_shared::dynamo::{StoreError, n, s};
use aloft_shared::outbox::Envelope;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use futures::StreamExt;

use super::instances::status_str;
use super::items::{
    CHECK_SHARDS, CHECKS_PROJECTION, DueCheckItem, EVENT_SOURCE, INDEX_BY_EXPIRY, INDEX_CHECKS,
    LEASE_SHARDS, SERVICE_SK, all_shards, check_shard, instance_sk, lease_shard, pk,
};
use super::{FAN_OUT, RegistryStore};
use crate::domain::{HealthCheck, HealthStatus, RegistryError};

/// An instance whose HTTP check is due.
#[derive(Debug, Clone)]
pub struct DueCheck {
    pub service: String,
    pub instance_id: String,
    pub check: HealthCheck,
    pub status: HealthStatus,
    pub failures: u32,
    /// When the check was due, as read: the result is recorded only if that is unchanged
    /// (no overlapping sweep recorded first, no re-registration meanwhile).
    pub due_at_ms: i64,
}

impl RegistryStore {
    /// Services with a lease lapsed before `now_ms`, or held back, from every shard of
    /// the expiry index. A shard that cannot be read is reported, not fatal: the others'
    /// services are still swept.
    pub async fn services_with_due_leases(&self, now_ms: i64) -> (Vec<String>, Vec<RegistryError>) {
        let mut reads = futures::stream::iter(all_shards("lease", LEASE_SHARDS))
            .map(|shard| self.due_in(shard, now_ms))
            .buffer_unordered(FAN_OUT);
        let mut services = BTreeSet::new();
        let mut errors = Vec::new();
        while let Some(read) = reads.next().await {
            match read {
                Ok(names) => services.extend(names),
                Err(e) => errors.push(e),
            }
        }
        (services.into_iter().collect(), errors)
    }

    async fn due_in(&self, shard: String, now_ms: i64) -> Result<Vec<String>, RegistryError> {
        let mut names = Vec::new();
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_BY_EXPIRY)
            .key_condition_expression("expiry_shard = :shard AND lease_expires_at_ms <= :now")
            .expression_attribute_values(":shard", s(shard))
            .expression_attribute_values(":now", n(now_ms))
            .projection_expression("#svc")
            .expression_attribute_names("#svc", "service")
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(StoreError::from)?;
            if let Some(name) = item.get("service").and_then(|v| v.as_s().ok()) {
                names.push(name.clone());
            }
        }
        Ok(names)
    }

    /// Up to `max` instances whose HTTP check is due at `now_ms`, longest overdue first:
    /// the first `max` of each shard of the `checks` index, merged.
    pub async fn due_checks(
        &self,
        now_ms: i64,
        max: usize,
    ) -> Result<Vec<DueCheck>, RegistryError> {
        let mut reads = futures::stream::iter(all_shards("check", CHECK_SHARDS))
            .map(|shard| self.checks_due_in(shard, now_ms, max))
            .buffer_unordered(FAN_OUT);
        let mut due = Vec::new();
        while let Some(read) = reads.next().await {
            due.extend(read?);
        }
        due.sort_by_key(|d: &DueCheck| d.due_at_ms);
        due.truncate(max);
        Ok(due)
    }

    async fn checks_due_in(
        &self,
        shard: String,
        now_ms: i64,
        max: usize,
    ) -> Result<Vec<DueCheck>, RegistryError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_CHECKS)
            .key_condition_expression("check_shard = :shard AND next_check_at_ms <= :now")
            .expression_attribute_values(":shard", s(shard))
            .expression_attribute_values(":now", n(now_ms))
            .limit(i32::try_from(max).unwrap_or(i32::MAX));
        let mut names = vec!["next_check_at_ms"];
        names.extend(CHECKS_PROJECTION);
        for (i, name) in names.iter().enumerate() {
            query = query.expression_attribute_names(format!("#a{i}"), *name);
        }
        let projection: Vec<String> = (0..names.len()).map(|i| format!("#a{i}")).collect();
        let out = query
            .projection_expression(projection.join(", "))
            .send()
            .await
            .map_err(StoreError::from)?;
        let mut due = Vec::new();
        for item in out.items.unwrap_or_default() {
            let d: DueCheckItem = serde_dynamo::from_item(item).map_err(StoreError::from)?;
            due.push(DueCheck {
                service: d.service,
                instance_id: d.instance_id,
                check: d.check,
                status: d.status,
                failures: d.check_failures,
                due_at_ms: d.next_check_at_ms,
            });
        }
        Ok(due)
    }

    /// Records a check's result and when the next is due. A status change bumps the
    /// service's revision (discovery answers change). False when the instance is gone or
    /// was re-registered, or another sweep recorded this check first.
    #[tracing::instrument(skip_all, fields(service = %due.service, instance_id = %due.instance_id))]
    pub async fn record_check(
        &self,
        due: &DueCheck,
        status: HealthStatus,
        failures: u32,
        next_check_at_ms: i64,
    ) -> Result<bool, RegistryError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(pk(&due.service)))
            .key("sk", s(instance_sk(&due.instance_id)))
            .update_expression(
                "SET #status = :status, check_failures = :failures, next_check_at_ms = :next, \
                 check_shard = :shard",
            )
            .condition_expression("next_check_at_ms = :due")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status_str(status)))
            .expression_attribute_values(":failures", n(failures))
            .expression_attribute_values(":next", n(next_check_at_ms))
            .expression_attribute_values(":due", n(due.due_at_ms))
            .expression_attribute_values(":shard", s(check_shard(&due.service, &due.instance_id)))
            .build()
            .map_err(|e| StoreError::new("record check", e))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if status != due.status {
            items.push(self.bump_revision(&due.service, None)?);
        }
        match self.outbox.transact(items, &[]).await {
            Ok(()) => Ok(true),
            Err(e) if e.condition_failed_at(0) => Ok(false),
            Err(e) => Err(StoreError::from(e).into()),
        }
    }

    /// Records why a sweep held a service's lapsed leases back. The first sweep of a hold
    /// announces `registry.self_preservation` (in the same transaction); later sweeps of
    /// the same hold only refresh the reason. While held, the service item itself sits
    /// on the expiry index as due, so every sweep revisits the service until the hold
    /// is cleared, even once no lease is lapsed any more. True when announced.
    pub async fn record_held_back(
        &self,
        service: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool, RegistryError> {
        let event = Envelope::new(
            "registry.self_preservation",
            EVENT_SOURCE,
            serde_json::json!({"service": service, "reason": reason}),
        )?;
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(pk(service)))
            .key("sk", s(SERVICE_SK))
            .update_expression(
                "SET held_back = :r, held_since_ms = :now, expiry_shard = :shard, \
                 lease_expires_at_ms = :now, #svc = :svc",
            )
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(held_back)")
            .expression_attribute_names("#svc", "service")
            .expression_attribute_values(":r", s(reason))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":shard", s(lease_shard(service, SERVICE_SK)))
            .expression_attribute_values(":svc", s(service))
            .build()
            .map_err(|e| StoreError::new("record held back", e))?;
        let items = vec![TransactWriteItem::builder().update(update).build()];
        match self.outbox.transact(items, &[event]).await {
            Ok(()) => return Ok(true),
            Err(e) if e.condition_failed_at(0) => {}
            Err(e) => return Err(StoreError::from(e).into()),
        }
        // Held already: the same hold, its reason as of this sweep.
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk(service)))
            .key("sk", s(SERVICE_SK))
            .update_expression("SET held_back = :r")
            .condition_expression("attribute_exists(held_back)")
            .expression_attribute_values(":r", s(reason))
            .send()
            .await;
        match out {
            Ok(_) => Ok(false),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::from(e).into()),
        }
    }

    /// Ends a hold: the reason goes, and the service item leaves the expiry index. True
    /// when there was one.
    pub async fn clear_held_back(&self, service: &str) -> Result<bool, RegistryError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk(service)))
            .key("sk", s(SERVICE_SK))
            .update_expression(
                "REMOVE held_back, held_since_ms, expiry_shard, lease_expires_at_ms, #svc",
            )
            .condition_expression("attribute_exists(held_back)")
            .expression_attribute_names("#svc", "service")
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
            Err(e) => Err(StoreError::from(e).into()),
        }
    }
}
