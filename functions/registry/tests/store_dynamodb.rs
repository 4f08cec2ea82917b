//! The registry store against real DynamoDB (the local stack's endpoint), each test in
//! tables of its own.

mod common;

use aloft_registry::domain::{
    HealthStatus, Instance, Load, RegisterRequest, Registration, RegistryError, ServiceName,
};
use common::{Fixture, fixture};

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

#[tokio::test]
async fn the_sweep_holds_back_when_nine_of_ten_leases_lapse_and_evicts_ordinary_churn() {
    use aloft_registry::domain::SelfPreservation;
    use aloft_registry::sweep::sweep;

    let f = fixture().await;
    let now = 1_000_000;
    for i in 0..10 {
        f.store
            .register(&instance("api", &format!("i{i}"), 5, now), &[])
            .await
            .unwrap();
    }
    f.store
        .heartbeat("api", "i0", None, None, now + 4_000)
        .await
        .unwrap();
    let report = sweep(&f.store, now + 6_000, SelfPreservation::default())
        .await
        .unwrap();
    assert_eq!(report.services.len(), 1);
    assert!(report.services[0].evicted.is_empty());
    assert!(
        report.services[0]
            .held_back
            .as_deref()
            .unwrap()
            .starts_with("9 of 10")
    );
    assert_eq!(
        f.store.view("api").await.unwrap().unwrap().instances.len(),
        10
    );
    assert!(
        event_types(&f)
            .await
            .contains(&"registry.self_preservation".to_owned())
    );

    // The partition heals for seven of them: the two still lapsed are ordinary deaths.
    for i in 1..8 {
        f.store
            .register(&instance("api", &format!("i{i}"), 60, now + 6_500), &[])
            .await
            .unwrap();
    }
    let report = sweep(&f.store, now + 7_000, SelfPreservation::default())
        .await
        .unwrap();
    assert_eq!(report.services[0].evicted, ["i8", "i9"]);
    assert_eq!(report.services[0].held_back, None);
}

/// A loopback HTTP server whose health endpoint can be switched up and down.
async fn switchable_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let up = std::sync::Arc::new(AtomicBool::new(true));
    let state = up.clone();
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let up = state.clone();
            async move {
                if up.load(Ordering::SeqCst) {
                    http::StatusCode::OK
                } else {
                    http::StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/health"), up)
}

fn checked_instance(id: &str, url: &str, now_ms: i64) -> Instance {
    let req: RegisterRequest = serde_json::from_value(serde_json::json!({
        "address": "127.0.0.1", "ttl_seconds": 3600,
        "check": {"http": url, "interval_seconds": 10, "timeout_ms": 300}
    }))
    .unwrap();
    Instance::register(
        ServiceName::parse("checked").unwrap(),
        id.into(),
        &Registration::parse(req).unwrap(),
        now_ms,
    )
}

#[tokio::test]
async fn http_checks_follow_a_server_going_down_and_up() {
    use aloft_registry::sweep::{HttpChecker, run_checks};
    use std::sync::atomic::Ordering;

    let f = fixture().await;
    let checker = HttpChecker::default();
    let (url, up) = switchable_server().await;
    let now = 1_000_000;
    f.store
        .register(&checked_instance("web-1", &url, now), &[])
        .await
        .unwrap();
    // A second instance pointing at a port nobody listens on.
    f.store
        .register(
            &checked_instance("gone", "http://127.0.0.1:9/health", now),
            &[],
        )
        .await
        .unwrap();
    let status = |id: &'static str| {
        let store = f.store.clone();
        async move {
            store
                .view("checked")
                .await
                .unwrap()
                .unwrap()
                .instances
                .into_iter()
                .find(|i| i.instance_id == id)
                .unwrap()
                .status
        }
    };

    let reports = run_checks(&f.store, &checker, now).await.unwrap();
    assert_eq!(reports.len(), 2, "both checks are due at registration");
    assert_eq!(status("web-1").await, HealthStatus::Passing);
    assert_eq!(status("gone").await, HealthStatus::Warning);

    // Not due again until the interval has passed.
    assert!(
        run_checks(&f.store, &checker, now + 5_000)
            .await
            .unwrap()
            .is_empty()
    );

    up.store(false, Ordering::SeqCst);
    let mut seen = Vec::new();
    for round in 1..=3 {
        run_checks(&f.store, &checker, now + round * 10_000)
            .await
            .unwrap();
        seen.push(status("web-1").await);
    }
    assert_eq!(
        seen,
        [
            HealthStatus::Warning,
            HealthStatus::Warning,
            HealthStatus::Critical
        ]
    );
    assert_eq!(status("gone").await, HealthStatus::Critical);
    let revision_down = f.store.view("checked").await.unwrap().unwrap().revision;

    up.store(true, Ordering::SeqCst);
    run_checks(&f.store, &checker, now + 40_000).await.unwrap();
    assert_eq!(status("web-1").await, HealthStatus::Passing);
    assert!(
        f.store.view("checked").await.unwrap().unwrap().revision > revision_down,
        "a health change is a new revision for discovery"
    );
}
