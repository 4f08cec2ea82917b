//! The client's behaviour against a small registry server on loopback that speaks the
//! registry's HTTP contract and counts what it is asked. (The client against the real
//! registry function runs in the end-to-end tests.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aloft_registry_client::{Discovery, DiscoveryQuery, Registration, RegistryClient};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, put};

#[derive(Default)]
struct Registry {
    registrations: AtomicUsize,
    heartbeats: AtomicUsize,
    deregistrations: AtomicUsize,
    discoveries: AtomicUsize,
    full_bodies: AtomicUsize,
    evicted: AtomicBool,
    revision: AtomicUsize,
}

async fn serve(state: Arc<Registry>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let app = Router::new()
        .route(
            "/services/{service}/instances",
            get(|State(s): State<Arc<Registry>>, headers: HeaderMap| async move {
                s.discoveries.fetch_add(1, Ordering::SeqCst);
                let etag = format!("\"{}\"", s.revision.load(Ordering::SeqCst));
                if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
                    return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)], String::new()).into_response();
                }
                s.full_bodies.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::json!({
                    "instances": [{"instance_id": "a", "address": "10.0.0.1", "port": 80, "status": "passing", "new_field": 1}],
                    "revision": s.revision.load(Ordering::SeqCst),
                });
                (StatusCode::OK, [(header::ETAG, etag)], axum::Json(body)).into_response()
            })
            .post(|State(s): State<Arc<Registry>>| async move {
                s.registrations.fetch_add(1, Ordering::SeqCst);
                s.evicted.store(false, Ordering::SeqCst);
                (StatusCode::CREATED, axum::Json(serde_json::json!({"instance_id": "i-1", "lease_expires_at": "2026-01-01T00:00:30.000Z"})))
            }),
        )
        .route(
            "/services/{service}/instances/{id}/heartbeat",
            put(|State(s): State<Arc<Registry>>| async move {
                s.heartbeats.fetch_add(1, Ordering::SeqCst);
                if s.evicted.load(Ordering::SeqCst) {
                    return StatusCode::NOT_FOUND.into_response();
                }
                axum::Json(serde_json::json!({"instance_id": "i-1", "lease_expires_at": "2026-01-01T00:01:00.000Z"})).into_response()
            }),
        )
        .route(
            "/services/{service}/instances/{id}",
            delete(|State(s): State<Arc<Registry>>| async move {
                s.deregistrations.fetch_add(1, Ordering::SeqCst);
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                rx.await.ok();
            })
            .await
            .unwrap();
    });
    (url, tx)
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn discovery_is_served_from_cache_within_the_ttl_and_revalidated_with_304_after() {
    let state = Arc::new(Registry::default());
    let (url, _stop) = serve(state.clone()).await;
    let cached = Discovery::new(
        RegistryClient::new(&url, "aloft_test"),
        Duration::from_secs(60),
    );
    for _ in 0..3 {
        assert_eq!(
            cached
                .instances("api", &DiscoveryQuery::healthy())
                .await
                .unwrap()
                .instances
                .len(),
            1
        );
    }
    assert_eq!(
        state.discoveries.load(Ordering::SeqCst),
        1,
        "within the TTL only the first call reaches aloft"
    );

    let revalidating = Discovery::new(RegistryClient::new(&url, "aloft_test"), Duration::ZERO);
    for _ in 0..3 {
        let found = revalidating
            .instances("api", &DiscoveryQuery::healthy())
            .await
            .unwrap();
        assert!(!found.stale);
    }
    assert_eq!(state.discoveries.load(Ordering::SeqCst), 4);
    assert_eq!(
        state.full_bodies.load(Ordering::SeqCst),
        2,
        "revalidations are 304s without a body"
    );

    state.revision.fetch_add(1, Ordering::SeqCst);
    let found = revalidating
        .instances("api", &DiscoveryQuery::healthy())
        .await
        .unwrap();
    assert_eq!(
        found.revision, 1,
        "a changed revision brings the new answer"
    );
}

#[tokio::test]
async fn the_last_good_answer_is_served_while_aloft_is_down_with_its_age() {
    let state = Arc::new(Registry::default());
    let (url, stop) = serve(state.clone()).await;
    let discovery = Discovery::new(
        RegistryClient::new(&url, "aloft_test"),
        Duration::from_millis(50),
    );
    let first = discovery
        .instances("api", &DiscoveryQuery::healthy())
        .await
        .unwrap();
    assert!(!first.stale);
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stale = discovery
        .instances("api", &DiscoveryQuery::healthy())
        .await
        .unwrap();
    assert!(stale.stale);
    assert!(
        stale.age >= Duration::from_millis(150),
        "age {:?}",
        stale.age
    );
    assert_eq!(stale.instances, first.instances);

    let never_seen = discovery
        .instances("other", &DiscoveryQuery::healthy())
        .await;
    assert!(never_seen.is_err(), "nothing cached, nothing to serve");
}

#[tokio::test]
async fn keep_alive_re_registers_when_the_lease_is_gone_and_deregisters_on_shutdown() {
    let state = Arc::new(Registry::default());
    let (url, _stop) = serve(state.clone()).await;
    let client = RegistryClient::new(&url, "aloft_test");
    let me = Registration {
        address: "10.0.0.9".into(),
        ..Default::default()
    };
    let lease = client
        .keep_alive("api", me, Duration::from_millis(30))
        .await
        .unwrap();
    assert_eq!(lease.lease.instance_id, "i-1");
    eventually("a heartbeat", || {
        state.heartbeats.load(Ordering::SeqCst) >= 2
    })
    .await;

    state.evicted.store(true, Ordering::SeqCst);
    eventually("re-registration", || {
        state.registrations.load(Ordering::SeqCst) == 2
    })
    .await;

    lease.shutdown().await;
    assert_eq!(state.deregistrations.load(Ordering::SeqCst), 1);
}
