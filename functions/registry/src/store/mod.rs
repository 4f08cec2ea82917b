//! The registry in DynamoDB. The only module that knows the table's key shapes.
//!
//! One partition per service holds everything discovery needs, so a discover (and the
//! 304 that revalidates it) is one Query:
//!
//! | item | pk | sk |
//! | --- | --- | --- |
//! | the service: revision, round-robin counter, declared dependencies, hold | `SVC#<name>` | `#SERVICE` |
//! | an instance and its lease | `SVC#<name>` | `INST#<id>` |
//! | a service that depends on this one | `SVC#<name>` | `DEPENDENT#<other>` |
//!
//! Three sparse indexes, each sharded over a documented number of partition values
//! (see [`items`]), so no partition value takes every write:
//!
//! | index | partition value | sort key | projects | written by |
//! | --- | --- | --- | --- | --- |
//! | `by-expiry` | `lease#00`..`lease#31` | `lease_expires_at_ms` | `service`, `instance_id` | every heartbeat; a held service's item |
//! | `checks` | `check#00`..`check#07` | `next_check_at_ms` | what a check needs | each check |
//! | `services` | `service#00`..`service#07` | `service_name` | keys only | a new service |

mod instances;
pub mod items;
mod sweep;

use aloft_shared::config::{self, ConfigError};
use aloft_shared::dynamo::{StoreError, n, s};
use aloft_shared::outbox::Outbox;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};
use futures::StreamExt;

pub use self::sweep::DueCheck;
use crate::domain::{RegistryError, ServiceName};
use items::{
    DEPENDENT_PREFIX, DeclaredItem, INDEX_SERVICES, InstanceItem, SERVICE_SHARDS, SERVICE_SK,
    ServiceItem, all_shards, pk, service_listing,
};

/// How many index partitions are read at once when a query fans out.
const FAN_OUT: usize = 8;

/// What a service's partition holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceView {
    pub revision: u64,
    pub depends_on: Vec<String>,
    pub dependents: Vec<String>,
    pub instances: Vec<crate::domain::Instance>,
    pub held_back: Option<String>,
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
            .expression_attribute_values(":pk", s(pk(service)))
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
            } else if sk.starts_with(aloft_shared::keys::INSTANCE_SK_PREFIX) {
                let item: InstanceItem = serde_dynamo::from_item(item).map_err(StoreError::from)?;
                view.instances.push(item.instance);
            }
        }
        Ok(found.then_some(view))
    }

    /// Every service name, sorted, from the `services` index (all its shards).
    pub async fn services(&self) -> Result<Vec<String>, RegistryError> {
        let shards = all_shards("service", SERVICE_SHARDS);
        let mut pages = futures::stream::iter(shards)
            .map(|shard| self.services_in(shard))
            .buffer_unordered(FAN_OUT);
        let mut all = Vec::new();
        while let Some(names) = pages.next().await {
            all.extend(names?);
        }
        all.sort();
        Ok(all)
    }

    async fn services_in(&self, shard: String) -> Result<Vec<String>, RegistryError> {
        let mut names = Vec::new();
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_SERVICES)
            .key_condition_expression("listing = :l")
            .expression_attribute_values(":l", s(shard))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(StoreError::from)?;
            if let Some(name) = item.get("service_name").and_then(|v| v.as_s().ok()) {
                names.push(name.clone());
            }
        }
        Ok(names)
    }

    /// The next value of the service's round-robin counter (atomic ADD). The counter is
    /// not projected into any index, so a pick writes the service item only.
    pub async fn next_round_robin(&self, service: &str) -> Result<u64, RegistryError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk(service)))
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

    /// The service's declared dependencies as last written (consistent read).
    async fn declared(&self, service: &str) -> Result<DeclaredItem, RegistryError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk(service)))
            .key("sk", s(SERVICE_SK))
            .projection_expression("depends_on, deps_version")
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::from)?;
        match out.item {
            Some(item) => Ok(serde_dynamo::from_item(item).map_err(StoreError::from)?),
            None => Ok(DeclaredItem::default()),
        }
    }

    /// The service item's update in a transaction that changes what discovery answers:
    /// the revision goes up; the service is created (and listed) if new. With `deps`,
    /// the declared dependencies are replaced, only if they are still `declared_version`
    /// as read (a racing re-declaration fails the transaction, to be read again).
    fn bump_revision(
        &self,
        service: &str,
        deps: Option<(&[ServiceName], Option<u64>)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(pk(service)))
            .key("sk", s(SERVICE_SK))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":listing", s(service_listing(service)))
            .expression_attribute_values(":name", s(service));
        let mut add = "ADD revision :one".to_owned();
        let mut set = "SET listing = :listing, service_name = :name".to_owned();
        if let Some((deps, version)) = deps {
            add.push_str(", deps_version :one");
            set.push_str(", depends_on = :deps");
            let list = deps.iter().map(|d| s(d.as_str())).collect();
            update = update.expression_attribute_values(":deps", AttributeValue::L(list));
            update = match version {
                None => update.condition_expression("attribute_not_exists(deps_version)"),
                Some(v) => update
                    .condition_expression("deps_version = :version")
                    .expression_attribute_values(":version", n(v)),
            };
        }
        let update = update
            .update_expression(format!("{add} {set}"))
            .build()
            .map_err(|e| StoreError::new("bump revision", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}
