//! The registry table, read-only, through the scaler's own read model: only the fields it
//! needs (status, lease expiry, load, join time), so the scaler never depends on the
//! registry crate. The key scheme is shared (`aloft_shared::keys`).

use aloft_shared::config::{self, ConfigError};
use aloft_shared::dynamo::{StoreError, s};
use aloft_shared::keys::{INSTANCE_SK_PREFIX, service_pk};
use serde::Deserialize;

use crate::domain::State;
use crate::domain::instances::{Health, InstanceView};

/// An instance item as the scaler reads it; every other attribute is ignored.
#[derive(Debug, Clone, Deserialize)]
struct InstanceRecord {
    instance_id: String,
    status: Health,
    lease_expires_at_ms: i64,
    #[serde(default)]
    load: Option<LoadRecord>,
    /// Not every registry version records it; the scaler then uses when it first saw
    /// the instance.
    #[serde(default)]
    registered_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct LoadRecord {
    #[serde(default)]
    cpu_percent: Option<f64>,
    #[serde(default)]
    memory_percent: Option<f64>,
}

/// An instance as read, before its join time is settled against the scaler's memory.
#[derive(Debug, Clone)]
pub struct RegisteredInstance {
    record: InstanceRecord,
}

impl RegisteredInstance {
    pub fn view(&self, state: &State, now_ms: i64) -> InstanceView {
        let r = &self.record;
        let load = r
            .load
            .map(|l| {
                [l.cpu_percent, l.memory_percent]
                    .into_iter()
                    .flatten()
                    .fold(0.0, f64::max)
            })
            .unwrap_or(0.0);
        InstanceView {
            instance_id: r.instance_id.clone(),
            status: r.status,
            lease_expires_at_ms: r.lease_expires_at_ms,
            load,
            joined_at_ms: state.joined_at(&r.instance_id, r.registered_at_ms, now_ms),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RegistryReader {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl RegistryReader {
    /// Reads `REGISTRY_TABLE`.
    pub fn from_env(sdk: &aloft_shared::aws::SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(
            aloft_shared::aws::dynamodb(sdk),
            config::required("REGISTRY_TABLE")?,
        ))
    }

    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        Self { client, table }
    }

    /// A service's instances: one Query on its partition, instance items only, only the
    /// attributes above.
    #[tracing::instrument(skip_all, fields(%service))]
    pub async fn instances(&self, service: &str) -> Result<Vec<RegisteredInstance>, StoreError> {
        let mut out = Vec::new();
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :inst)")
            .expression_attribute_values(":pk", s(service_pk(service)))
            .expression_attribute_values(":inst", s(INSTANCE_SK_PREFIX))
            .projection_expression(
                "instance_id, #status, lease_expires_at_ms, #load, registered_at_ms",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#load", "load")
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let record: InstanceRecord = serde_dynamo::from_item(item?)?;
            out.push(RegisteredInstance { record });
        }
        Ok(out)
    }
}
