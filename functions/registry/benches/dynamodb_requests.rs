//! DynamoDB requests (what DynamoDB bills) and latency per registry call, through the
//! real router and store against the local stack's endpoint. Targets: a heartbeat is one
//! request; a discover, 304 included, is one Query.
//!
//!   make bench      (or: local/scripts/stack.sh test cargo bench -p aloft-registry)

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use aloft_shared::dynamo::RequestCounter;
use common::send_event;
use http::StatusCode;

const ROUNDS: usize = 200;

struct Measured {
    name: &'static str,
    target: usize,
    requests: std::collections::BTreeMap<String, usize>,
    latencies: Vec<Duration>,
}

impl Measured {
    fn print(&mut self) {
        self.latencies.sort();
        let per_call: f64 = self.requests.values().sum::<usize>() as f64 / ROUNDS as f64;
        let pct = |p: f64| self.latencies[((self.latencies.len() as f64 - 1.0) * p) as usize];
        let by_op: Vec<String> = self
            .requests
            .iter()
            .map(|(op, n)| format!("{op} {:.2}", *n as f64 / ROUNDS as f64))
            .collect();
        println!(
            "{:<22} {:>6.2} req/call (target {}) [{}]  p50 {:>7.2?}  p95 {:>7.2?}  {}",
            self.name,
            per_call,
            self.target,
            by_op.join(", "),
            pct(0.5),
            pct(0.95),
            if per_call <= self.target as f64 {
                "ok"
            } else {
                "OVER TARGET"
            }
        );
    }
}

async fn measure<F, Fut>(
    counter: &RequestCounter,
    name: &'static str,
    target: usize,
    mut call: F,
) -> Measured
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StatusCode>,
{
    counter.take();
    let mut latencies = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let status = call().await;
        latencies.push(started.elapsed());
        assert!(
            status.is_success() || status == StatusCode::NOT_MODIFIED,
            "{name}: {status}"
        );
    }
    Measured {
        name,
        target,
        requests: counter.take(),
        latencies,
    }
}

#[tokio::main]
async fn main() {
    let f = common::fixture().await;
    let counter = RequestCounter::default();
    let sdk = aloft_shared::aws::sdk_config().await;
    let store = f.store_with(counter.client(&sdk));
    let (status, _, _) = send_event(&store, "registry-register.json", |_| {}).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, headers, _) = send_event(&store, "registry-discover.json", |_| {}).await;
    let etag = headers["etag"].to_str().unwrap().to_owned();

    println!("registry: DynamoDB requests and latency per call ({ROUNDS} calls each, via moto)");
    let store = &store;
    measure(&counter, "heartbeat", 1, || async move {
        send_event(store, "registry-heartbeat.json", |_| {}).await.0
    })
    .await
    .print();
    measure(&counter, "discover (200)", 1, || async move {
        send_event(store, "registry-discover.json", |_| {}).await.0
    })
    .await
    .print();
    let etag = &etag;
    measure(&counter, "discover (304)", 1, || async move {
        send_event(store, "registry-discover.json", |e| {
            e["headers"]["if-none-match"] = etag.clone().into()
        })
        .await
        .0
    })
    .await
    .print();
    measure(&counter, "resolve round_robin", 2, || async move {
        send_event(store, "registry-resolve.json", |_| {}).await.0
    })
    .await
    .print();
}
