//! The registry store against real DynamoDB and SQS (the local stack's endpoint), each
//! test in tables and a queue of its own.

use aloft_registry::domain::{
    HealthStatus, Instance, Load, RegisterRequest, Registration, RegistryError, ServiceName,
};
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

fn gsi(name: &str, hash: &str, range: &str) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash))
        .key_schema(key(range, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .unwrap()
}

struct Fixture {
    store: RegistryStore,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

async fn fixture() -> Fixture {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run these tests with `make test`, which starts the local stack"
    );
    let sdk = aloft_shared::aws::sdk_config().await;
    let ddb = aloft_shared::aws::dynamodb(&sdk);
    let sqs = aloft_shared::aws::sqs(&sdk);
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
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(gsi("by-expiry", "expiry_shard", "lease_expires_at_ms"))
        .global_secondary_indexes(gsi("services", "listing", "service_name"))
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
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("registry-test-{suffix}"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .unwrap();
    let outbox = Outbox::new(ddb.clone(), sqs.clone(), outbox_table, queue_url.clone());
    Fixture {
        store: RegistryStore::new(ddb, table, outbox),
        sqs,
        queue_url,
    }
}

fn instance(service: &str, id: &str, ttl_seconds: u32, now_ms: i64) -> Instance {
    let req: RegisterRequest = serde_json::from_value(
        serde_json::json!({"address": "10.0.0.1", "port": 8080, "ttl_seconds": ttl_seconds}),
    )
    .unwrap();
    let reg = Registration::parse(req).unwrap();
    Instance::register(
        ServiceName::parse(service).unwrap(),
        id.into(),
        &reg,
        now_ms,
    )
}

async fn event_types(f: &Fixture) -> Vec<String> {
    let mut types = Vec::new();
    loop {
        let out = f
            .sqs
            .receive_message()
            .queue_url(&f.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let msgs = out.messages.unwrap_or_default();
        if msgs.is_empty() {
            return types;
        }
        for m in msgs {
            let v: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
            types.push(v["type"].as_str().unwrap().to_owned());
        }
    }
}

#[tokio::test]
async fn registering_twice_updates_and_every_change_bumps_the_revision() {
    let f = fixture().await;
    let now = 1_000_000;
    let deps = [ServiceName::parse("db").unwrap()];
    assert!(
        f.store
            .register(&instance("api", "a", 30, now), &deps)
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .register(&instance("api", "a", 30, now), &deps)
            .await
            .unwrap()
    );
    assert!(
        f.store
            .register(&instance("api", "b", 30, now), &[])
            .await
            .unwrap()
    );

    let view = f.store.view("api").await.unwrap().unwrap();
    assert_eq!(view.revision, 3);
    assert_eq!(view.instances.len(), 2);
    assert_eq!(view.depends_on, ["db"]);
    let db = f.store.view("db").await.unwrap();
    assert!(
        db.is_none(),
        "a dependency with no instances is not a service yet"
    );
    assert!(f.store.deregister("api", "b").await.unwrap());
    assert!(!f.store.deregister("api", "b").await.unwrap());
    assert_eq!(f.store.view("api").await.unwrap().unwrap().revision, 4);
    let names: Vec<_> = f
        .store
        .services()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["api"]);
    assert_eq!(
        event_types(&f).await,
        [
            "instance.registered",
            "instance.registered",
            "instance.registered",
            "instance.deregistered"
        ]
    );
}

#[tokio::test]
async fn heartbeats_renew_live_leases_only() {
    let f = fixture().await;
    let now = 1_000_000;
    f.store
        .register(&instance("api", "a", 30, now), &[])
        .await
        .unwrap();
    let load = Load {
        cpu_percent: Some(42.0),
        ..Default::default()
    };
    let renewed = f
        .store
        .heartbeat(
            "api",
            "a",
            Some(HealthStatus::Warning),
            Some(load),
            now + 10_000,
        )
        .await
        .unwrap();
    assert_eq!(renewed.lease_expires_at_ms, now + 40_000);
    assert_eq!(renewed.status, HealthStatus::Warning);
    assert_eq!(renewed.load.unwrap().cpu_percent, Some(42.0));

    let lapsed = f
        .store
        .heartbeat("api", "a", None, None, now + 40_000)
        .await;
    assert!(
        matches!(lapsed, Err(RegistryError::LeaseGone { .. })),
        "{lapsed:?}"
    );
    let unknown = f.store.heartbeat("api", "nope", None, None, now).await;
    assert!(matches!(unknown, Err(RegistryError::LeaseGone { .. })));
}

#[tokio::test]
async fn the_sweep_finds_due_leases_and_a_renewed_lease_wins_the_race() {
    let f = fixture().await;
    let now = 1_000_000;
    f.store
        .register(&instance("api", "short", 5, now), &[])
        .await
        .unwrap();
    f.store
        .register(&instance("api", "long", 60, now), &[])
        .await
        .unwrap();
    f.store
        .register(&instance("web", "w", 60, now), &[])
        .await
        .unwrap();

    let sweep_at = now + 6_000;
    assert_eq!(
        f.store.services_with_due_leases(sweep_at).await.unwrap(),
        ["api"]
    );
    // A heartbeat lands between the sweep's read and its delete: the delete must not win.
    f.store
        .heartbeat("api", "short", None, None, now + 4_000)
        .await
        .unwrap();
    assert!(!f.store.evict("api", "short", sweep_at).await.unwrap());
    assert!(f.store.evict("api", "short", now + 20_000).await.unwrap());
    let view = f.store.view("api").await.unwrap().unwrap();
    assert_eq!(
        view.instances
            .iter()
            .map(|i| i.instance_id.as_str())
            .collect::<Vec<_>>(),
        ["long"]
    );
    assert!(
        event_types(&f)
            .await
            .contains(&"instance.expired".to_owned())
    );
}

#[tokio::test]
async fn round_robin_counter_is_atomic_per_service() {
    let f = fixture().await;
    f.store
        .register(&instance("api", "a", 30, 0), &[])
        .await
        .unwrap();
    let draws = futures::future::join_all((0..10).map(|_| f.store.next_round_robin("api"))).await;
    let mut values: Vec<u64> = draws.into_iter().map(Result::unwrap).collect();
    values.sort();
    assert_eq!(values, (1..=10).collect::<Vec<_>>());
    assert!(matches!(
        f.store.next_round_robin("ghost").await,
        Err(RegistryError::ServiceNotFound(_))
    ));
}
