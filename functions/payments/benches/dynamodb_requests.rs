//! DynamoDB requests (what DynamoDB bills) and latency per successful payment, through
//! the real router and store against the local stack's endpoint. Target: 1 user read +
//! 2 writes. We do better: the user check is a ConditionCheck inside the first
//! transaction (lock + user check + processing payment), the second commits outcome +
//! answer + event. The outbox then marks the event sent (1 UpdateItem), the
//! foundation's relay contract.
//!
//!   make bench      (or: local/scripts/stack.sh test cargo bench -p aloft-payments)

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use aloft_shared::dynamo::RequestCounter;
use common::{create_for, send};
use http::StatusCode;

fn rounds() -> usize {
    aloft_shared::dynamo::bench_size(100, 5)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

#[tokio::main]
async fn main() {
    let stack = common::stack().await;
    let user_id = stack.user().await;
    let counter = RequestCounter::default();
    let client = counter.client(&stack.sdk);

    for (name, file) in [
        ("card payment", "payments-create.json"),
        ("replayed payment", "payments-create.json"),
    ] {
        counter.take();
        let mut latencies = Vec::with_capacity(rounds());
        for _ in 0..rounds() {
            let key = uuid::Uuid::new_v4().to_string();
            let edit = |e: &mut serde_json::Value| {
                create_for(&user_id)(e);
                e["headers"]["idempotency-key"] = key.clone().into();
            };
            if name == "replayed payment" {
                // The first answer, then measure its replay alone.
                send(
                    stack.api(aloft_shared::aws::dynamodb(&stack.sdk)),
                    file,
                    edit,
                )
                .await;
            }
            let started = Instant::now();
            let r = send(stack.api(client.clone()), file, |e| {
                create_for(&user_id)(e);
                e["headers"]["idempotency-key"] = key.clone().into();
            })
            .await;
            latencies.push(started.elapsed());
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        }
        latencies.sort();
        let requests = counter.take();
        let total: usize = requests.values().sum();
        let by_op: Vec<String> = requests
            .iter()
            .map(|(op, n)| format!("{op} {:.2}", *n as f64 / rounds() as f64))
            .collect();
        println!(
            "{name:<18} {:>5.2} DynamoDB req/call [{}]  p50 {:>8.2?}  p95 {:>8.2?}",
            total as f64 / rounds() as f64,
            by_op.join(", "),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.95),
        );
    }
    println!(
        "target for a new payment: 1 user read + 2 writes; here the user check rides in the first TransactWriteItems, and the outbox's mark-sent UpdateItem is extra"
    );
}
