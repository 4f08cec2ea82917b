//! A registry store in tables of the test's own, on the local stack's endpoint.
#![allow(dead_code)]

use aloft_registry::domain::HealthChecksAllow;
use aloft_registry::store::RegistryStore;
use aloft_shared::outbox::Outbox;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};

fn attr(name: &str, t: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(t)
        .build()
        .unwrap()
}

fn key(name: &str, t: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(t)
        .build()
        .unwrap()
}

/// An index as template.yaml declares it: `include` empty means keys only.
fn gsi(name: &str, hash: &str, range: &str, include: &[&str]) -> GlobalSecondaryIndex {
    let projection = if include.is_empty() {
        Projection::builder().projection_type(ProjectionType::KeysOnly)
    } else {
        include.iter().fold(
            Projection::builder().projection_type(ProjectionType::Include),
            |p, a| p.non_key_attributes(*a),
        )
    };
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash))
        .key_schema(key(range, KeyType::Range))
        .projection(projection.build())
        .build()
        .unwrap()
}

pub struct Fixture {
    pub store: RegistryStore,
    pub table: String,
    pub outbox_table: String,
}

impl Fixture {
    /// The same tables, through another DynamoDB client (e.g. a counting one).
    pub fn store_with(&self, ddb: aws_sdk_dynamodb::Client) -> RegistryStore {
        let outbox = Outbox::new(ddb.clone(), self.outbox_table.clone());
        RegistryStore::new(ddb, self.table.clone(), outbox)
    }
}

/// Feeds the sample event `events/http/<file>` (edited by `edit`) through `lambda_http`'s
/// parsing into the registry router, as Lambda would.
pub async fn send_event(
    store: &RegistryStore,
    file: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> (http::StatusCode, http::HeaderMap, serde_json::Value) {
    send_event_with(store, HealthChecksAllow::default(), file, edit).await
}

/// [`send_event`] under a deployment's health-check setting.
pub async fn send_event_with(
    store: &RegistryStore,
    checks: HealthChecksAllow,
    file: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> (http::StatusCode, http::HeaderMap, serde_json::Value) {
    let r = aloft_shared::http::handle_event(
        aloft_registry::api::router(store.clone(), checks),
        &aloft_shared::http::sample_event(file, edit),
    )
    .await;
    (r.status, r.headers, r.body)
}

pub async fn fixture() -> Fixture {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run these tests with `make test`, which starts the local stack"
    );
    let sdk = aloft_shared::aws::sdk_config().await;
    let ddb = aloft_shared::aws::dynamodb(&sdk);
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let table = format!("registry-test-{suffix}");
    ddb.create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk", ScalarAttributeType::S))
        .attribute_definitions(attr("sk", ScalarAttributeType::S))
        .attribute_definitions(attr("expiry_shard", ScalarAttributeType::S))
        .attribute_definitions(attr("lease_expires_at_ms", ScalarAttributeType::N))
        .attribute_definitions(attr("listing", ScalarAttributeType::S))
        .attribute_definitions(attr("service_name", ScalarAttributeType::S))
        .attribute_definitions(attr("check_shard", ScalarAttributeType::S))
        .attribute_definitions(attr("next_check_at_ms", ScalarAttributeType::N))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(gsi(
            "by-expiry",
            "expiry_shard",
            "lease_expires_at_ms",
            &["service", "instance_id"],
        ))
        .global_secondary_indexes(gsi("services", "listing", "service_name", &[]))
        .global_secondary_indexes(gsi(
            "checks",
            "check_shard",
            "next_check_at_ms",
            &[
                "service",
                "instance_id",
                "check",
                "status",
                "check_failures",
            ],
        ))
        .send()
        .await
        .expect("create registry table");
    let outbox_table = format!("registry-outbox-{suffix}");
    ddb.create_table()
        .table_name(&outbox_table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("id", ScalarAttributeType::S))
        .key_schema(key("id", KeyType::Hash))
        .send()
        .await
        .expect("create outbox table");
    let outbox = Outbox::new(ddb.clone(), outbox_table.clone());
    Fixture {
        store: RegistryStore::new(ddb, table.clone(), outbox),
        table,
        outbox_table,
    }
}
