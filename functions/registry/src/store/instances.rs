//! Writes to instances: register, heartbeat, deregister, evict.

use std::collections::BTreeSet;

use aloft_shared::dynamo::{StoreError, n, s};
use aloft_shared::outbox::Envelope;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ReturnValue, TransactWriteItem};

use super::RegistryStore;
use super::items::{
    DEPENDENT_PREFIX, EVENT_SOURCE, InstanceItem, SERVICE_SK, instance_sk, lease_shard, pk,
};
use crate::domain::{HealthStatus, Instance, Load, RegistryError, ServiceName};

/// A registration whose declared dependencies keep changing under it gives up after
/// this many reads (each attempt is a read and a transaction).
const REGISTER_ATTEMPTS: usize = 4;

impl RegistryStore {
    /// Registers or re-registers `instance`; true when it was new. Bumps the revision,
    /// and with `depends_on` replaces the service's declared dependencies: edges to the
    /// services named are written, edges to those no longer named removed, all in one
    /// transaction with the event.
    #[tracing::instrument(skip_all, fields(service = %instance.service.as_str(), instance_id = %instance.instance_id))]
    pub async fn register(
        &self,
        instance: &Instance,
        depends_on: Option<&[ServiceName]>,
    ) -> Result<bool, RegistryError> {
        let service = instance.service.as_str();
        let events = [Envelope::new(
            "instance.registered",
            EVENT_SOURCE,
            instance,
        )?];
        let mut only_new = true;
        for _ in 0..REGISTER_ATTEMPTS {
            let declared = match depends_on {
                Some(_) => Some(self.declared(service).await?),
                None => None,
            };
            let mut put = Put::builder().table_name(&self.table).set_item(Some(
                serde_dynamo::to_item(InstanceItem::from(instance)).map_err(StoreError::from)?,
            ));
            if only_new {
                put = put.condition_expression("attribute_not_exists(pk)");
            }
            let put = put
                .build()
                .map_err(|e| StoreError::new("put instance", e))?;
            let deps = depends_on.zip(declared.as_ref().map(|d| d.deps_version));
            let mut items = vec![
                TransactWriteItem::builder().put(put).build(),
                self.bump_revision(service, deps)?,
            ];
            if let (Some(new), Some(old)) = (depends_on, &declared) {
                items.extend(self.edges(service, new, &old.depends_on)?);
            }
            match self.outbox.transact(items, &events).await {
                Ok(()) => return Ok(only_new),
                // Registered already: the same writes without the "new" condition.
                Err(e) if only_new && e.condition_failed_at(0) => only_new = false,
                // The declared dependencies changed since read: read them again.
                Err(e) if e.condition_failed_at(1) => {}
                Err(e) => return Err(StoreError::from(e).into()),
            }
        }
        Err(StoreError::internal(format!(
            "{service}: declared dependencies kept changing during {REGISTER_ATTEMPTS} attempts"
        ))
        .into())
    }

    /// Puts an edge under every dependency named (idempotent) and deletes the edges of
    /// those `old` named that `new` does not.
    fn edges(
        &self,
        service: &str,
        new: &[ServiceName],
        old: &[String],
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let named: BTreeSet<&str> = new.iter().map(ServiceName::as_str).collect();
        let mut items = Vec::new();
        for dep in &named {
            let edge = Put::builder()
                .table_name(&self.table)
                .item("pk", s(pk(dep)))
                .item("sk", s(format!("{DEPENDENT_PREFIX}{service}")))
                .item("service", s(service))
                .build()
                .map_err(|e| StoreError::new("put dependent", e))?;
            items.push(TransactWriteItem::builder().put(edge).build());
        }
        let dropped: BTreeSet<&str> = old
            .iter()
            .map(String::as_str)
            .filter(|d| !named.contains(d))
            .collect();
        for dep in dropped {
            let edge = Delete::builder()
                .table_name(&self.table)
                .key("pk", s(pk(dep)))
                .key("sk", s(format!("{DEPENDENT_PREFIX}{service}")))
                .build()
                .map_err(|e| StoreError::new("delete dependent", e))?;
            items.push(TransactWriteItem::builder().delete(edge).build());
        }
        Ok(items)
    }

    /// Renews a live lease: one conditional UpdateItem. A lapsed or evicted lease is
    /// gone (404), so the client registers again. A reported status that differs from
    /// the one held is a health change: the revision goes up (a second request, only
    /// then).
    #[tracing::instrument(skip_all, fields(%service, %instance_id))]
    pub async fn heartbeat(
        &self,
        service: &str,
        instance_id: &str,
        status: Option<HealthStatus>,
        load: Option<Load>,
        now_ms: i64,
    ) -> Result<Instance, RegistryError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk(service)))
            .key("sk", s(instance_sk(instance_id)))
            .condition_expression("attribute_exists(pk) AND lease_expires_at_ms > :now")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":shard", s(lease_shard(service, instance_id)))
            .return_values(ReturnValue::AllOld);
        // The shard is set again so items written before sharding move on their first
        // heartbeat; it is the same value afterwards.
        let mut set = vec![
            "lease_expires_at_ms = ttl_ms + :now",
            "expiry_shard = :shard",
        ];
        if let Some(st) = status {
            set.push("#status = :status");
            update = update
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status_str(st)));
        }
        if let Some(l) = load {
            set.push("#load = :load");
            let map = serde_dynamo::to_item(l).map_err(StoreError::from)?;
            update = update
                .expression_attribute_names("#load", "load")
                .expression_attribute_values(":load", AttributeValue::M(map));
        }
        let out = update
            .update_expression(format!("SET {}", set.join(", ")))
            .send()
            .await;
        let old = match out {
            Ok(o) => o.attributes.unwrap_or_default(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                return Err(RegistryError::LeaseGone {
                    service: service.into(),
                    instance_id: instance_id.into(),
                });
            }
            Err(e) => return Err(StoreError::from(e).into()),
        };
        let old: InstanceItem = serde_dynamo::from_item(old).map_err(StoreError::from)?;
        let mut instance = old.instance;
        instance.lease_expires_at_ms = old.ttl_ms + now_ms;
        if let Some(l) = load {
            instance.load = Some(l);
        }
        if let Some(st) = status
            && st != instance.status
        {
            instance.status = st;
            self.bump_revision_alone(service).await?;
        }
        Ok(instance)
    }

    /// The revision up by one, outside a transaction (the service item exists: an
    /// instance of it was just renewed).
    async fn bump_revision_alone(&self, service: &str) -> Result<(), RegistryError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk(service)))
            .key("sk", s(SERVICE_SK))
            .update_expression("ADD revision :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(StoreError::from)?;
        Ok(())
    }

    /// Removes an instance and bumps the revision; false when there was none.
    #[tracing::instrument(skip_all, fields(%service, %instance_id))]
    pub async fn deregister(
        &self,
        service: &str,
        instance_id: &str,
    ) -> Result<bool, RegistryError> {
        let event = Envelope::new(
            "instance.deregistered",
            EVENT_SOURCE,
            serde_json::json!({"service": service, "instance_id": instance_id}),
        )?;
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(pk(service)))
            .key("sk", s(instance_sk(instance_id)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| StoreError::new("delete instance", e))?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.bump_revision(service, None)?,
        ];
        match self.outbox.transact(items, &[event]).await {
            Ok(()) => Ok(true),
            Err(e) if e.condition_failed_at(0) => Ok(false),
            Err(e) => Err(StoreError::from(e).into()),
        }
    }

    /// Evicts a lapsed lease, only if it is still lapsed: a heartbeat racing the sweep
    /// wins. True when evicted.
    #[tracing::instrument(skip_all, fields(%service, %instance_id))]
    pub async fn evict(
        &self,
        service: &str,
        instance_id: &str,
        now_ms: i64,
    ) -> Result<bool, RegistryError> {
        let event = Envelope::new(
            "instance.expired",
            EVENT_SOURCE,
            serde_json::json!({"service": service, "instance_id": instance_id}),
        )?;
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(pk(service)))
            .key("sk", s(instance_sk(instance_id)))
            .condition_expression("lease_expires_at_ms <= :now")
            .expression_attribute_values(":now", n(now_ms))
            .build()
            .map_err(|e| StoreError::new("evict instance", e))?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.bump_revision(service, None)?,
        ];
        match self.outbox.transact(items, &[event]).await {
            Ok(()) => Ok(true),
            Err(e) if e.condition_failed_at(0) => Ok(false),
            Err(e) => Err(StoreError::from(e).into()),
        }
    }
}

pub(super) fn status_str(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Passing => "passing",
        HealthStatus::Warning => "warning",
        HealthStatus::Critical => "critical",
    }
}
