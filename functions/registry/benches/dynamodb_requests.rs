//! DynamoDB requests (what DynamoDB bills) and latency per registry call, through the
//! real router and store against the local stack's endpoint. Targets: a heartbeat is one
//! request; a discover, 304 included, is one Query.
//!
//! Then a steady run: heartbeats at a stated rate over many instances, with clients
//! revalidating discovery meanwhile. It counts the index writes per partition value the
//! heartbeats cause (from the shard each written item carries) and the share of 304s.
//!
//!   make bench      (or: local/scripts/stack.sh test cargo bench -p aloft-registry)

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use aloft_shared::dynamo::RequestCounter;
use common::send_event;
use http::StatusCode;

fn rounds() -> usize {
    aloft_shared::dynamo::bench_size(200, 10)
}

struct Measured {
    name: &'static str,
    target: usize,
    requests: std::collections::BTreeMap<String, usize>,
    latencies: Vec<Duration>,
}

impl Measured {
    fn print(&mut self) {
        self.latencies.sort();
        let per_call: f64 = self.requests.values().sum::<usize>() as f64 / rounds() as f64;
        let pct = |p: f64| self.latencies[((self.latencies.len() as f64 - 1.0) * p) as usize];
        let by_op: Vec<String> = self
            .requests
            .iter()
            .map(|(op, n)| format!("{op} {:.2}", *n as f64 / rounds() as f64))
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
    let mut latencies = Vec::with_capacity(rounds());
    for _ in 0..rounds() {
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

    println!(
        "registry: DynamoDB requests and latency per call ({} calls each, via moto)",
        rounds()
    );
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
    steady::run(&f, store, &counter).await;
}

/// Heartbeats at a stated rate, index writes per partition value, share of 304s.
mod steady {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use aloft_registry::store::RegistryStore;
    use aloft_registry::store::items::LEASE_SHARDS;
    use aloft_shared::dynamo::RequestCounter;
    use futures::StreamExt;
    use http::StatusCode;

    use super::common::{Fixture, send_event};

    const SERVICES: usize = 8;
    const INSTANCES_PER_SERVICE: usize = 32;
    /// The rate the run asks for. moto serialises DynamoDB requests, so the achieved
    /// rate is printed too; the distribution over partition values does not depend on it.
    const TARGET_PER_SECOND: u64 = 200;
    fn seconds() -> u64 {
        aloft_shared::dynamo::bench_size(10, 1) as u64
    }
    /// One discovery revalidation (If-None-Match) per this many heartbeats.
    const HEARTBEATS_PER_DISCOVERY: usize = 10;
    /// What one DynamoDB partition takes, writes per second.
    const PARTITION_WRITES_PER_SECOND: f64 = 1_000.0;

    fn id(service: usize, instance: usize) -> (String, String) {
        (format!("steady-{service}"), format!("i-{instance}"))
    }

    async fn register_all(store: &RegistryStore) {
        let all = (0..SERVICES).flat_map(|s| (0..INSTANCES_PER_SERVICE).map(move |i| (s, i)));
        futures::stream::iter(all)
            .for_each_concurrent(8, |(s, i)| async move {
                let (service, instance) = id(s, i);
                let (status, _, body) = send_event(store, "registry-register.json", |e| {
                    e["rawPath"] = format!("/services/{service}/instances").into();
                    e["pathParameters"]["service"] = service.clone().into();
                    e["body"] = serde_json::json!({"instance_id": instance,
                        "address": "10.0.0.1", "ttl_seconds": 300})
                    .to_string()
                    .into();
                })
                .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
            })
            .await;
    }

    async fn heartbeat(store: &RegistryStore, n: usize) -> StatusCode {
        let (service, instance) = id(n % SERVICES, (n / SERVICES) % INSTANCES_PER_SERVICE);
        send_event(store, "registry-heartbeat.json", |e| {
            e["rawPath"] = format!("/services/{service}/instances/{instance}/heartbeat").into();
            e["pathParameters"]["service"] = service.clone().into();
            e["pathParameters"]["id"] = instance.clone().into();
            let cpu = (n % 100) as f64;
            e["body"] = serde_json::json!({"status": "passing", "load": {"cpu_percent": cpu}})
                .to_string()
                .into();
        })
        .await
        .0
    }

    async fn discover(
        store: &RegistryStore,
        service: &str,
        etag: Option<&str>,
    ) -> (StatusCode, String) {
        let (status, headers, _) = send_event(store, "registry-discover.json", |e| {
            e["rawPath"] = format!("/services/{service}/instances").into();
            e["pathParameters"]["service"] = service.into();
            e["rawQueryString"] = "".into();
            e["queryStringParameters"] = serde_json::json!({});
            if let Some(tag) = etag {
                e["headers"]["if-none-match"] = tag.into();
            }
        })
        .await;
        let tag = headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        (status, tag.to_owned())
    }

    /// The `by-expiry` partition value each instance's item carries, read back.
    async fn shards(f: &Fixture) -> BTreeMap<(String, String), String> {
        let sdk = aloft_shared::aws::sdk_config().await;
        let ddb = aloft_shared::aws::dynamodb(&sdk);
        let mut out = BTreeMap::new();
        for s in 0..SERVICES {
            let (service, _) = id(s, 0);
            let items = ddb
                .query()
                .table_name(&f.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :inst)")
                .expression_attribute_values(
                    ":pk",
                    aloft_shared::dynamo::s(format!("SVC#{service}")),
                )
                .expression_attribute_values(":inst", aloft_shared::dynamo::s("INST#"))
                .send()
                .await
                .unwrap()
                .items
                .unwrap_or_default();
            for item in items {
                let get = |k: &str| item[k].as_s().unwrap().clone();
                out.insert((service.clone(), get("instance_id")), get("expiry_shard"));
            }
        }
        out
    }

    pub async fn run(f: &Fixture, store: &RegistryStore, counter: &RequestCounter) {
        register_all(store).await;
        let mut etags: Vec<String> = Vec::new();
        for s in 0..SERVICES {
            etags.push(discover(store, &id(s, 0).0, None).await.1);
        }
        counter.take();
        let total = (TARGET_PER_SECOND * seconds()) as usize;
        let interval = Duration::from_secs(1) / TARGET_PER_SECOND as u32;
        let started = Instant::now();
        let beats: Vec<StatusCode> = futures::stream::iter(0..total)
            .map(|n| async move {
                // Paced: heartbeat n leaves no earlier than n / rate after the start.
                let due = started + interval * n as u32;
                tokio::time::sleep_until(due.into()).await;
                heartbeat(store, n).await
            })
            .buffer_unordered(32)
            .collect()
            .await;
        let elapsed = started.elapsed();
        assert!(beats.iter().all(|s| *s == StatusCode::OK));
        let requests = counter.take();

        // Clients revalidating at one discovery per HEARTBEATS_PER_DISCOVERY heartbeats,
        // interleaved with a second round of heartbeats.
        let (mut not_modified, mut discoveries) = (0usize, 0usize);
        for n in 0..total / 2 {
            assert_eq!(heartbeat(store, n).await, StatusCode::OK);
            if n % HEARTBEATS_PER_DISCOVERY == 0 {
                let s = (n / HEARTBEATS_PER_DISCOVERY) % SERVICES;
                let (status, tag) = discover(store, &id(s, 0).0, Some(&etags[s])).await;
                discoveries += 1;
                if status == StatusCode::NOT_MODIFIED {
                    not_modified += 1;
                } else {
                    etags[s] = tag;
                }
            }
        }

        // Each heartbeat moves its instance's `by-expiry` sort key: a delete and a put in
        // the partition value its item carries. It touches nothing `checks` or `services`
        // project (lease and load are not projected; the status sent is unchanged).
        let shard_of = shards(f).await;
        let mut writes: BTreeMap<String, usize> = BTreeMap::new();
        for n in 0..total {
            let key = id(n % SERVICES, (n / SERVICES) % INSTANCES_PER_SERVICE);
            *writes.entry(shard_of[&key].clone()).or_default() += 2;
        }
        let index_writes: usize = writes.values().sum();
        let (hot_value, hot) = writes
            .iter()
            .max_by_key(|(_, w)| **w)
            .map(|(k, w)| (k.clone(), *w))
            .unwrap_or_default();
        let achieved = total as f64 / elapsed.as_secs_f64();
        let share = hot as f64 / index_writes as f64;
        println!();
        println!(
            "steady heartbeats: {} instances in {SERVICES} services, target {TARGET_PER_SECOND}/s for {} s: {total} heartbeats in {:.1?} ({achieved:.0}/s achieved), DynamoDB requests {:?}",
            SERVICES * INSTANCES_PER_SERVICE,
            seconds(),
            elapsed,
            requests
        );
        println!(
            "  by-expiry index: {index_writes} writes over {} of {LEASE_SHARDS} partition values; busiest {hot_value} took {hot} ({:.1}%, {:.0} writes/s at the achieved rate); checks and services indexes: 0 writes",
            writes.len(),
            share * 100.0,
            hot as f64 / elapsed.as_secs_f64()
        );
        for rate in [1_000.0, 5_000.0] {
            let per_value = rate * 2.0 * share;
            println!(
                "  at {rate:.0} heartbeats/s: busiest partition value ≈ {per_value:.0} writes/s ({:.0}% of one partition's {PARTITION_WRITES_PER_SECOND:.0}); unsharded it would be {:.0} ({:.0}%)",
                per_value / PARTITION_WRITES_PER_SECOND * 100.0,
                rate * 2.0,
                rate * 2.0 / PARTITION_WRITES_PER_SECOND * 100.0
            );
        }
        println!(
            "  discovery under steady heartbeats: {not_modified} of {discoveries} revalidations answered 304 ({:.0}%)",
            not_modified as f64 / discoveries.max(1) as f64 * 100.0
        );
    }
}
