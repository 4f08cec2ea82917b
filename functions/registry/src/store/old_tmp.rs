//! The registry in DynamoDB. The only module that knows the table's key shapes.
//!
//! One partition per service holds everything discovery needs, so a discover (and the
//! 304 that revalidates it) is one Query:
//!
//! | item | pk | sk |
//! | --- | --- | --- |
//! | the service: revision, round-robin counter, declared dependencies | `SVC#<name>` | `#SERVICE` |
//! | an instance and its lease | `SVC#<name>` | `INST#<id>` |
//! | a service that depends on this one | `SVC#<name>` | `DEPENDENT#<other>` |
//!
//! Instances carry `lease_expires_at_ms` on the sparse `by-expiry` index, so the sweep
//! reads only due leases; instances with an HTTP check also carry `next_check_at_ms` on
//! the sparse `checks` index, so it reads only due checks. Services carry `listing` for
//! the `services` index.

use aloft_shared::config::{self, ConfigError};
use aloft_shared::dynamo::{StoreError, n, s};
use aloft_shared::keys::{INSTANCE_SK_PREFIX as INSTANCE_PREFIX, service_pk};
use aloft_shared::outbox::{Envelope, Outbox};
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};

use crate::domain::{
    HealthCheck, HealthStatus, Instance, Load, RegistryError, ServiceName, lease_expiry,
};

const INDEX_BY_EXPIRY: &str = "by-expiry";
const INDEX_SERVICES: &str = "services";
const INDEX_CHECKS: &str = "checks";
const EXPIRY_SHARD: &str = "lease";
const CHECK_SHARD: &str = "check";
const SERVICE_SK: &str = "#SERVICE";
const DEPENDENT_PREFIX: &str = "DEPENDENT#";
const EVENT_SOURCE: &str = "aloft.registry";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct InstanceItem {
    pk: String,
    sk: String,
    expiry_shard: String,
    /// The lease length in milliseconds, so a heartbeat renews with one UpdateItem
    /// (`SET lease_expires_at_ms = ttl_ms + :now`).
    ttl_ms: i64,
    /// Only on instances with an HTTP check: puts them on the `checks` index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    check_shard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_check_at_ms: Option<i64>,
    #[serde(flatten)]
    instance: Instance,
}

impl From<&Instance> for InstanceItem {
    fn from(i: &Instance) -> Self {
        let ttl_ms = lease_expiry(0, i.ttl_seconds);
        let has_check = i.check.is_some();
        Self {
            pk: service_pk(i.service.as_str()),
            sk: format!("{INSTANCE_PREFIX}{}", i.instance_id),
            expiry_shard: EXPIRY_SHARD.to_owned(),
            ttl_ms,
            check_shard: has_check.then(|| CHECK_SHARD.to_owned()),
            // First check on the next sweep after (re-)registration.
            next_check_at_ms: has_check.then(|| i.lease_expires_at_ms - ttl_ms),
            instance: i.clone(),
        }
    }
}

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

/// What a service's partition holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceView {
    pub revision: u64,
    pub depends_on: Vec<String>,
    pub dependents: Vec<String>,
    pub instances: Vec<Instance>,
    pub held_back: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct ServiceItem {
    service_name: String,
    #[serde(default)]
    revision: u64,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    held_back: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceSummary {
    pub name: String,
    pub revision: u64,
}

#[derive(Debug, Clone)]
pub struct RegistryStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    outbox: Outbox,
}

impl RegistryStore {
    /// Reads `REGISTRY_TABLE` (and the outbox's variables).
    pub fn from_env(sdk: &aloft_shared::aws::SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(
            aloft_shared::aws::dynamodb(sdk),
            config::required("REGISTRY_TABLE")?,
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

    /// Registers or re-registers `instance`; true when it was new. Bumps the revision and
    /// records the service's declared dependencies, all in one transaction.
    #[tracing::instrument(skip_all, fields(service = %instance.service.as_str(), instance_id = %instance.instance_id))]
    pub async fn register(
        &self,
        instance: &Instance,
        depends_on: &[ServiceName],
    ) -> Result<bool, RegistryError> {
        let service = instance.service.as_str();
        let event = Envelope::new("instance.registered", EVENT_SOURCE, instance)?;
        let build = |only_new: bool| -> Result<Vec<TransactWriteItem>, StoreError> {
            let mut put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(serde_dynamo::to_item(InstanceItem::from(instance))?));
            if only_new {
                put = put.condition_expression("attribute_not_exists(pk)");
            }
            let put = put
                .build()
                .map_err(|e| StoreError::new("put instance", e))?;
            let mut items = vec![
                TransactWriteItem::builder().put(put).build(),
                self.bump_revision(service, Some(depends_on))?,
            ];
            for dep in depends_on {
                let edge = Put::builder()
                    .table_name(&self.table)
                    .item("pk", s(service_pk(dep.as_str())))
                    .item("sk", s(format!("{DEPENDENT_PREFIX}{service}")))
                    .item("service", s(service))
                    .build()
                    .map_err(|e| StoreError::new("put dependent", e))?;
                items.push(TransactWriteItem::builder().put(edge).build());
            }
            Ok(items)
        };
        let events = [event];
        match self.outbox.transact(build(true)?, &events).await {
            Ok(()) => Ok(true),
            // Registered already: the same writes without the "new" condition.
            Err(e) if e.condition_failed_at(0) => {
                self.outbox
                    .transact(build(false)?, &events)
                    .await
                    .map_err(StoreError::from)?;
                Ok(false)
            }
            Err(e) => Err(StoreError::from(e).into()),
        }
    }

    /// Renews a live lease: one conditional UpdateItem. A lapsed or evicted lease is
    /// gone (404), so the client registers again.
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
            .key("pk", s(service_pk(service)))
            .key("sk", s(format!("{INSTANCE_PREFIX}{instance_id}")))
            .condition_expression("attribute_exists(pk) AND lease_expires_at_ms > :now")
            .expression_attribute_values(":now", n(now_ms))
            .return_values(ReturnValue::AllNew);
        let mut set = vec!["lease_expires_at_ms = ttl_ms + :now"];
        if let Some(st) = status {
            set.push("#status = :status");
            update = update
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", AttributeValue::S(serde_plain(&st)));
        }
        if let Some(l) = load {
            set.push("#load = :load");
            update = update
                .expression_attribute_names("#load", "load")
                .expression_attribute_values(
                    ":load",
                    AttributeValue::M(serde_dynamo::to_item(l).map_err(StoreError::from)?),
                );
        }
        let out = update
            .update_expression(format!("SET {}", set.join(", ")))
            .send()
            .await;
        match out {
            Ok(o) => {
                let item = o.attributes.unwrap_or_default();
                Ok(serde_dynamo::from_item::<_, InstanceItem>(item)
                    .map_err(StoreError::from)?
                    .instance)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Err(RegistryError::LeaseGone {
                    service: service.into(),
                    instance_id: instance_id.into(),
                })
            }
            Err(e) => Err(StoreError::from(e).into()),
        }
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
            .key("pk", s(service_pk(service)))
            .key("sk", s(format!("{INSTANCE_PREFIX}{instance_id}")))
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

    /// Everything discovery needs about a service, in one consistent Query.
    #[tracing::instrument(skip_all, fields(%service))]
    pub async fn view(&self, service: &str) -> Result<Option<ServiceView>, RegistryError> {
        let mut view = ServiceView::default();
        let mut found = false;
        // A service's partition fits one page unless it has thousands of instances.
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(service_pk(service)))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(StoreError::from)?;
            let sk = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            if sk == SERVICE_SK {
                found = true;
                let svc: ServiceItem = serde_dynamo::from_item(item).map_err(StoreError::from)?;
                view.revision = svc.revision;
                view.depends_on = svc.depends_on;
                view.held_back = svc.held_back;
            } else if let Some(dependent) = sk.strip_prefix(DEPENDENT_PREFIX) {
                view.dependents.push(dependent.to_owned());
            } else if sk.starts_with(INSTANCE_PREFIX) {
                view.instances.push(
                    serde_dynamo::from_item::<_, InstanceItem>(item)
                        .map_err(StoreError::from)?
                        .instance,
                );
            }
        }
        Ok(found.then_some(view))
    }

    /// Every service, by name, from the `services` index.
    pub async fn services(&self) -> Result<Vec<ServiceSummary>, RegistryError> {
        let mut all = Vec::new();
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_SERVICES)
            .key_condition_expression("listing = :l")
            .expression_attribute_values(":l", s("service"))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(StoreError::from)?;
            let svc: ServiceItem = serde_dynamo::from_item(item).map_err(StoreError::from)?;
            all.push(ServiceSummary {
                name: svc.service_name,
                revision: svc.revision,
            });
        }
        Ok(all)
    }

    /// The next value of the service's round-robin counter (atomic ADD).
    pub async fn next_round_robin(&self, service: &str) -> Result<u64, RegistryError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(service_pk(service)))
            .key("sk", s(SERVICE_SK))
            .update_expression("ADD rr_counter :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match out {
            Ok(o) => Ok(o
                .attributes
                .and_then(|a| {
                    a.get("rr_counter")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse().ok())
                })
                .unwrap_or(0)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Err(RegistryError::ServiceNotFound(service.to_owned()))
            }
            Err(e) => Err(StoreError::from(e).into()),
        }
    }

    /// Services with at least one lease lapsed before `now_ms`, from the expiry index.
    pub async fn services_with_due_leases(
        &self,
        now_ms: i64,
    ) -> Result<Vec<String>, RegistryError> {
        let mut services = std::collections::BTreeSet::new();
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_BY_EXPIRY)
            .key_condition_expression("expiry_shard = :shard AND lease_expires_at_ms <= :now")
            .expression_attribute_values(":shard", s(EXPIRY_SHARD))
            .expression_attribute_values(":now", n(now_ms))
            .projection_expression("#svc")
            .expression_attribute_names("#svc", "service")
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(StoreError::from)?;
            if let Some(name) = item.get("service").and_then(|v| v.as_s().ok()) {
                services.insert(name.clone());
            }
        }
        Ok(services.into_iter().collect())
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
            .key("pk", s(service_pk(service)))
            .key("sk", s(format!("{INSTANCE_PREFIX}{instance_id}")))
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

    /// Up to `max` instances whose HTTP check is due at `now_ms`, longest overdue first,
    /// from the sparse `checks` index.
    pub async fn due_checks(
        &self,
        now_ms: i64,
        max: usize,
    ) -> Result<Vec<DueCheck>, RegistryError> {
        let mut due = Vec::new();
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_CHECKS)
            .key_condition_expression("check_shard = :shard AND next_check_at_ms <= :now")
            .expression_attribute_values(":shard", s(CHECK_SHARD))
            .expression_attribute_values(":now", n(now_ms))
            .into_paginator()
            .page_size(i32::try_from(max).unwrap_or(i32::MAX))
            .items()
            .send();
        while due.len() < max {
            let Some(item) = items.next().await else {
                break;
            };
            let item: InstanceItem = serde_dynamo::from_item(item.map_err(StoreError::from)?)
                .map_err(StoreError::from)?;
            let due_at_ms = item.next_check_at_ms.unwrap_or_default();
            let i = item.instance;
            if let Some(check) = i.check {
                due.push(DueCheck {
                    service: i.service.as_str().to_owned(),
                    instance_id: i.instance_id,
                    check,
                    status: i.status,
                    failures: i.check_failures,
                    due_at_ms,
                });
            }
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
            .key("pk", s(service_pk(&due.service)))
            .key("sk", s(format!("{INSTANCE_PREFIX}{}", due.instance_id)))
            .update_expression(
                "SET #status = :status, check_failures = :failures, next_check_at_ms = :next",
            )
            .condition_expression("next_check_at_ms = :due")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(serde_plain(&status)))
            .expression_attribute_values(":failures", n(failures))
            .expression_attribute_values(":next", n(next_check_at_ms))
            .expression_attribute_values(":due", n(due.due_at_ms))
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

    /// Records why a sweep held a service's lapsed leases back, and announces it.
    pub async fn record_held_back(&self, service: &str, reason: &str) -> Result<(), RegistryError> {
        let event = Envelope::new(
            "registry.self_preservation",
            EVENT_SOURCE,
            serde_json::json!({"service": service, "reason": reason}),
        )?;
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(service_pk(service)))
            .key("sk", s(SERVICE_SK))
            .update_expression("SET held_back = :r")
            .expression_attribute_values(":r", s(reason))
            .build()
            .map_err(|e| StoreError::new("record held back", e))?;
        let items = vec![TransactWriteItem::builder().update(update).build()];
        self.outbox
            .transact(items, &[event])
            .await
            .map_err(StoreError::from)?;
        Ok(())
    }

    fn bump_revision(
        &self,
        service: &str,
        depends_on: Option<&[ServiceName]>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(service_pk(service)))
            .key("sk", s(SERVICE_SK))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":listing", s("service"))
            .expression_attribute_values(":name", s(service));
        let mut expr = "ADD revision :one SET listing = :listing, service_name = :name".to_owned();
        if let Some(deps) = depends_on
            && !deps.is_empty()
        {
            expr.push_str(", depends_on = :deps");
            let list = deps.iter().map(|d| s(d.as_str())).collect();
            update = update.expression_attribute_values(":deps", AttributeValue::L(list));
        }
        let update = update
            .update_expression(expr)
            .build()
            .map_err(|e| StoreError::new("bump revision", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

fn serde_plain<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
