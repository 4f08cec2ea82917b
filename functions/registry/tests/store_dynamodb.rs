//! The registry store against real DynamoDB (the local stack's endpoint), each test in
//! tables of its own.

mod common;

use aloft_registry::domain::{
    HealthStatus, Instance, Load, RegisterRequest, Registration, RegistryError, ServiceName,
};
use aloft_shared::ssrf::AddressPolicy;
use common::{Fixture, fixture};

fn instance(service: &str, id: &str, ttl_seconds: u32, now_ms: i64) -> Instance {
    let req: RegisterRequest = serde_json::from_value(
        serde_json::json!({"address": "10.0.0.1", "port": 8080, "ttl_seconds": ttl_seconds}),
    )
    .unwrap();
    let name = ServiceName::parse(service).unwrap();
    let reg = Registration::parse(&name, req, AddressPolicy::STRICT).unwrap();
    Instance::register(name, id.into(), &reg, now_ms)
}

/// The types of the events the store committed to the test's own outbox table, oldest
/// first (the relay that forwards them has its own tests).
async fn event_types(f: &Fixture) -> Vec<String> {
    let sdk = aloft_shared::aws::sdk_config().await;
    let items = aloft_shared::aws::dynamodb(&sdk)
        .scan()
        .table_name(&f.outbox_table)
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let mut records: Vec<aloft_shared::outbox::OutboxRecord> =
        serde_dynamo::from_items(items).unwrap();
    records.sort_by(|a, b| a.occurred_at.cmp(&b.occurred_at));
    records.into_iter().map(|r| r.event_type).collect()
}

#[tokio::test]
async fn registering_twice_updates_and_every_change_bumps_the_revision() {
    let f = fixture().await;
    let now = 1_000_000;
    let deps = [ServiceName::parse("db").unwrap()];
    assert!(
        f.store
            .register(&instance("api", "a", 30, now), Some(&deps))
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .register(&instance("api", "a", 30, now), Some(&deps))
            .await
            .unwrap()
    );
    assert!(
        f.store
            .register(&instance("api", "b", 30, now), None)
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
    let names = f.store.services().await.unwrap();
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
        .register(&instance("api", "a", 30, now), None)
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
        .register(&instance("api", "short", 5, now), None)
        .await
        .unwrap();
    f.store
        .register(&instance("api", "long", 60, now), None)
        .await
        .unwrap();
    f.store
        .register(&instance("web", "w", 60, now), None)
        .await
        .unwrap();

    let sweep_at = now + 6_000;
    assert_eq!(f.store.services_with_due_leases(sweep_at).await.0, ["api"]);
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
        .register(&instance("api", "a", 30, 0), None)
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

fn names(list: &[&str]) -> Vec<ServiceName> {
    list.iter()
        .map(|n| ServiceName::parse(n).unwrap())
        .collect()
}

async fn dependents(f: &Fixture, service: &str) -> Vec<String> {
    f.store.view(service).await.unwrap().unwrap().dependents
}

#[tokio::test]
async fn re_registration_replaces_declared_dependencies_and_their_edges() {
    let f = fixture().await;
    for dep in ["db", "cache", "queue"] {
        f.store
            .register(&instance(dep, "x", 60, 0), None)
            .await
            .unwrap();
    }
    let web = instance("web", "w1", 60, 0);
    f.store
        .register(&web, Some(&names(&["db", "cache"])))
        .await
        .unwrap();
    assert_eq!(dependents(&f, "db").await, ["web"]);
    assert_eq!(dependents(&f, "cache").await, ["web"]);

    // Not sent: left as declared.
    f.store.register(&web, None).await.unwrap();
    assert_eq!(
        f.store.view("web").await.unwrap().unwrap().depends_on,
        ["db", "cache"]
    );

    // Re-declared: the edge to db goes, the one to queue comes.
    f.store
        .register(&web, Some(&names(&["cache", "queue"])))
        .await
        .unwrap();
    let view = f.store.view("web").await.unwrap().unwrap();
    assert_eq!(view.depends_on, ["cache", "queue"]);
    assert!(dependents(&f, "db").await.is_empty(), "edge removed");
    assert_eq!(dependents(&f, "cache").await, ["web"]);
    assert_eq!(dependents(&f, "queue").await, ["web"]);

    // Declared none: every edge goes.
    f.store.register(&web, Some(&[])).await.unwrap();
    assert!(
        f.store
            .view("web")
            .await
            .unwrap()
            .unwrap()
            .depends_on
            .is_empty()
    );
    for dep in ["db", "cache", "queue"] {
        assert!(dependents(&f, dep).await.is_empty(), "{dep}");
    }
}

#[tokio::test]
async fn the_most_dependencies_allowed_fit_one_transaction_when_all_change() {
    use aloft_registry::domain::MAX_DEPENDS_ON;
    let f = fixture().await;
    let first: Vec<String> = (0..MAX_DEPENDS_ON).map(|i| format!("a{i}")).collect();
    let second: Vec<String> = (0..MAX_DEPENDS_ON).map(|i| format!("b{i}")).collect();
    let web = instance("web", "w1", 60, 0);
    let as_names = |l: &[String]| {
        l.iter()
            .map(|n| ServiceName::parse(n).unwrap())
            .collect::<Vec<_>>()
    };
    f.store
        .register(&web, Some(&as_names(&first)))
        .await
        .unwrap();
    // 32 edges removed + 32 written + instance + service + event = 67 items.
    f.store
        .register(&web, Some(&as_names(&second)))
        .await
        .unwrap();
    assert_eq!(
        f.store.view("web").await.unwrap().unwrap().depends_on,
        second
    );
}

#[tokio::test]
async fn a_heartbeat_that_changes_health_is_a_new_revision_and_one_that_does_not_is_not() {
    let f = fixture().await;
    let now = 1_000_000;
    f.store
        .register(&instance("api", "a", 30, now), None)
        .await
        .unwrap();
    let revision = || async { f.store.view("api").await.unwrap().unwrap().revision };
    let before = revision().await;
    let load = Load {
        cpu_percent: Some(10.0),
        ..Default::default()
    };
    f.store
        .heartbeat("api", "a", None, Some(load), now + 1)
        .await
        .unwrap();
    f.store
        .heartbeat("api", "a", Some(HealthStatus::Passing), None, now + 2)
        .await
        .unwrap();
    assert_eq!(revision().await, before, "same health: same revision");
    let beat = f
        .store
        .heartbeat("api", "a", Some(HealthStatus::Warning), None, now + 3)
        .await
        .unwrap();
    assert_eq!(
        (beat.status, beat.lease_expires_at_ms),
        (HealthStatus::Warning, now + 3 + 30_000)
    );
    assert_eq!(revision().await, before + 1);
}
