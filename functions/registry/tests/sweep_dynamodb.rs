//! The sweep against real DynamoDB (the local stack's endpoint): evictions,
//! self-preservation holds, HTTP checks, and a failing step not stopping the others.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aloft_registry::domain::{
    HealthChecksAllow, HealthStatus, Instance, RegisterRequest, Registration, SelfPreservation,
    ServiceName,
};
use aloft_registry::store::RegistryStore;
use aloft_registry::sweep::{CheckReport, HttpChecker, SweepReport, run_checks, sweep};
use aloft_shared::ssrf::AddressPolicy;
use common::{Fixture, fixture};
use tokio::time::{Duration, Instant};

const LOOPBACK: AddressPolicy = AddressPolicy {
    allow_private: false,
    allow_loopback: true,
};

fn later() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn instance(service: &str, id: &str, ttl_seconds: u32, now_ms: i64) -> Instance {
    let req: RegisterRequest = serde_json::from_value(
        serde_json::json!({"address": "10.0.0.1", "port": 8080, "ttl_seconds": ttl_seconds}),
    )
    .unwrap();
    let name = ServiceName::parse(service).unwrap();
    let reg = Registration::parse(&name, req, AddressPolicy::STRICT).unwrap();
    Instance::register(name, id.into(), &reg, now_ms)
}

async fn checks(store: &RegistryStore, checker: &HttpChecker, now_ms: i64) -> Vec<CheckReport> {
    let mut report = SweepReport::default();
    run_checks(store, checker, now_ms, later(), &mut report).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    report.checks
}

/// The types of the events committed to the test's own outbox table, oldest first.
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
async fn the_sweep_holds_back_when_nine_of_ten_leases_lapse_and_evicts_ordinary_churn() {
    let f = fixture().await;
    let now = 1_000_000;
    for i in 0..10 {
        f.store
            .register(&instance("api", &format!("i{i}"), 5, now), None)
            .await
            .unwrap();
    }
    f.store
        .heartbeat("api", "i0", None, None, now + 4_000)
        .await
        .unwrap();
    let report = sweep(&f.store, now + 6_000, SelfPreservation::default(), later()).await;
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
            .register(&instance("api", &format!("i{i}"), 60, now + 6_500), None)
            .await
            .unwrap();
    }
    let report = sweep(&f.store, now + 7_000, SelfPreservation::default(), later()).await;
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
    let name = ServiceName::parse("checked").unwrap();
    let reg = Registration::parse(&name, req, LOOPBACK).unwrap();
    Instance::register(name, id.into(), &reg, now_ms)
}

#[tokio::test]
async fn http_checks_follow_a_server_going_down_and_up() {
    let f = fixture().await;
    let checker = HttpChecker::new(LOOPBACK);
    let (url, up) = switchable_server().await;
    let now = 1_000_000;
    f.store
        .register(&checked_instance("web-1", &url, now), None)
        .await
        .unwrap();
    // A second instance pointing at a port nobody listens on.
    f.store
        .register(
            &checked_instance("gone", "http://127.0.0.1:9/health", now),
            None,
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

    let reports = checks(&f.store, &checker, now).await;
    assert_eq!(reports.len(), 2, "both checks are due at registration");
    assert_eq!(status("web-1").await, HealthStatus::Passing);
    assert_eq!(status("gone").await, HealthStatus::Warning);

    // Not due again until the interval has passed.
    assert!(checks(&f.store, &checker, now + 5_000).await.is_empty());

    up.store(false, Ordering::SeqCst);
    let mut seen = Vec::new();
    for round in 1..=3 {
        checks(&f.store, &checker, now + round * 10_000).await;
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
    checks(&f.store, &checker, now + 40_000).await;
    assert_eq!(status("web-1").await, HealthStatus::Passing);
    assert!(
        f.store.view("checked").await.unwrap().unwrap().revision > revision_down,
        "a health change is a new revision for discovery"
    );
}

#[tokio::test]
async fn a_hold_is_announced_once_and_cleared_when_the_partition_heals() {
    let f = fixture().await;
    let now = 1_000_000;
    for i in 0..10 {
        let ttl = if i == 0 { 600 } else { 5 };
        f.store
            .register(&instance("api", &format!("i{i}"), ttl, now), None)
            .await
            .unwrap();
    }
    // Four sweeps while 9 of 10 leases stay lapsed: one hold, one announcement.
    let mut announced = Vec::new();
    for k in 0..4 {
        let at = now + 6_000 + k * 60_000;
        let report = sweep(&f.store, at, SelfPreservation::default(), later()).await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.services[0].held_back.is_some());
        announced.push(report.services[0].announced);
    }
    assert_eq!(announced, [true, false, false, false]);
    let holds = event_types(&f)
        .await
        .into_iter()
        .filter(|t| t == "registry.self_preservation")
        .count();
    assert_eq!(holds, 1, "announced once per hold, not every sweep");

    // The partition heals: every instance heartbeats again, so no lease is due. The
    // held service is still visited, and its stale hold cleared.
    let healed = now + 250_000;
    for i in 0..10 {
        f.store
            .register(&instance("api", &format!("i{i}"), 600, healed), None)
            .await
            .unwrap();
    }
    let report = sweep(
        &f.store,
        healed + 1_000,
        SelfPreservation::default(),
        later(),
    )
    .await;
    let api = report.services.iter().find(|s| s.service == "api").unwrap();
    assert!(api.hold_cleared && api.held_back.is_none(), "{report:?}");
    assert_eq!(f.store.view("api").await.unwrap().unwrap().held_back, None);
    let again = sweep(
        &f.store,
        healed + 61_000,
        SelfPreservation::default(),
        later(),
    )
    .await;
    assert!(again.services.is_empty(), "no longer visited: {again:?}");
}

#[tokio::test]
async fn one_failing_step_does_not_stop_the_other_evictions_and_checks() {
    let f = fixture().await;
    let now = 1_000_000;
    f.store
        .register(&instance("fine", "gone", 5, now), None)
        .await
        .unwrap();
    // An instance item the store cannot read (no address, weight, …): reading its
    // service fails, every time.
    let sdk = aloft_shared::aws::sdk_config().await;
    let shard = aloft_registry::store::items::lease_shard("broken", "x");
    aloft_shared::aws::dynamodb(&sdk)
        .put_item()
        .table_name(&f.table)
        .item("pk", aloft_shared::dynamo::s("SVC#broken"))
        .item("sk", aloft_shared::dynamo::s("INST#x"))
        .item("service", aloft_shared::dynamo::s("broken"))
        .item("expiry_shard", aloft_shared::dynamo::s(shard))
        .item("lease_expires_at_ms", aloft_shared::dynamo::n(now))
        .send()
        .await
        .unwrap();
    let report = sweep(&f.store, now + 6_000, SelfPreservation::default(), later()).await;
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(
        (report.errors[0].step, report.errors[0].service.as_deref()),
        ("read service", Some("broken"))
    );
    let fine = report
        .services
        .iter()
        .find(|s| s.service == "fine")
        .unwrap();
    assert_eq!(fine.evicted, ["gone"], "the other service was still swept");
}

/// A loopback listener that answers 200 to anything and counts the connections made.
async fn counting_server() -> (u16, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, count)
}

#[tokio::test]
async fn a_check_on_a_name_that_resolves_to_a_refused_address_never_connects() {
    let f = fixture().await;
    let (port, connections) = counting_server().await;
    // Registered through the API under the deployed default: a name passes (it is
    // checked at every connection), a literal in a refused form does not.
    let register = |address: &'static str, url: String| {
        let store = f.store.clone();
        async move {
            common::send_event_with(&store, HealthChecksAllow::default(), "registry-register.json", |e| {
                e["body"] = serde_json::json!({"instance_id": address, "address": address, "check": {"http": url, "interval_seconds": 5}}).to_string().into();
            })
            .await
        }
    };
    let (status, _, body) = register(
        "rebound.example",
        format!("http://rebound.example:{port}/health"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _, body) =
        register("2130706433", format!("http://2130706433:{port}/health")).await;
    assert_eq!(status, 422, "{body}");

    // DNS now answers the name with loopback (rebinding), where our listener waits.
    let hosts = HashMap::from([(
        "rebound.example".to_owned(),
        vec!["127.0.0.1".parse().unwrap()],
    )]);
    let strict = HttpChecker::with_hosts(AddressPolicy::STRICT, hosts.clone());
    let now = aloft_shared::clock::now().unix_timestamp() * 1000 + 1_000;
    let reports = checks(&f.store, &strict, now).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].status, HealthStatus::Warning);
    let error = reports[0].error.as_deref().unwrap();
    assert!(
        error.contains("refused") && error.contains("loopback"),
        "{error}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0, "never connected");

    // The same name where loopback is allowed (the local stack): it connects and passes.
    let local = HttpChecker::with_hosts(LOOPBACK, hosts);
    let reports = checks(&f.store, &local, now + 5_000).await;
    assert_eq!(
        (reports[0].passed, reports[0].status),
        (true, HealthStatus::Passing)
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}
