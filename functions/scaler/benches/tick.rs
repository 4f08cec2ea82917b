//! A scaler tick over 1,000 services with policies, against the local stack's endpoint
//! (moto), in tables and metrics of the bench's own: GetMetricData calls (target
//! ⌈queries / 500⌉), DynamoDB requests by operation (what DynamoDB bills), CPU time of
//! this process and wall time. Numbers only; nothing here passes or fails on speed.
//! Writes are measured on a sample of the services: moto copies whole tables on every
//! transaction, which says nothing about DynamoDB.
//!
//!   make bench      (or: local/scripts/stack.sh test cargo bench -p aloft-scaler)

use std::time::Instant;

use aloft_scaler::actuator::Actuators;
use aloft_scaler::domain::ScalingPolicy;
use aloft_scaler::domain::parse::PolicyRequest;
use aloft_scaler::metrics::{MAX_QUERIES_PER_CALL, MetricsReader};
use aloft_scaler::registry::RegistryReader;
use aloft_scaler::store::ScalingStore;
use aloft_scaler::tick::{DEFAULT_FANOUT_THRESHOLD, Evaluator, TickReport, now_ms, plan_batches};
use aloft_shared::dynamo::{RequestCounter, n, s};
use aloft_shared::outbox::Outbox;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, PutRequest, ScalarAttributeType, WriteRequest,
};

fn service_count() -> usize {
    aloft_shared::dynamo::bench_size(1000, 20)
}
const INSTANCES_PER_SERVICE: usize = 2;
/// Services whose decisions are written (see the note in `main`).
fn write_sample() -> usize {
    aloft_shared::dynamo::bench_size(50, 5)
}

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

async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str, range: bool, due_index: bool) {
    let mut t = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk", ScalarAttributeType::S))
        .key_schema(key("pk", KeyType::Hash));
    if range {
        t = t
            .attribute_definitions(attr("sk", ScalarAttributeType::S))
            .key_schema(key("sk", KeyType::Range));
    }
    if due_index {
        t = t
            .attribute_definitions(attr("due_shard", ScalarAttributeType::S))
            .attribute_definitions(attr("next_eval_at_ms", ScalarAttributeType::N))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("due")
                    .key_schema(key("due_shard", KeyType::Hash))
                    .key_schema(key("next_eval_at_ms", KeyType::Range))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            );
    }
    t.send().await.expect("create table");
}

/// CPU time of this process (user + system), from /proc (Linux, 100 ticks a second).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat(5), counted after the ")" that ends the command name.
    (ticks(11) + ticks(12)) * 10.0
}

fn print(
    name: &str,
    report: &TickReport,
    requests: std::collections::BTreeMap<String, usize>,
    cpu: f64,
    wall: f64,
) {
    let total: usize = requests.values().sum();
    let target = report.metric_queries.div_ceil(MAX_QUERIES_PER_CALL);
    let by_op: Vec<String> = requests.iter().map(|(op, k)| format!("{op} {k}")).collect();
    println!(
        "{name:<30} {} services: GetMetricData {} calls for {} queries (target {target}) {}",
        report.evaluated,
        report.get_metric_data_calls,
        report.metric_queries,
        if report.get_metric_data_calls <= target {
            "ok"
        } else {
            "OVER TARGET"
        },
    );
    println!(
        "{:<30} DynamoDB {total} requests ({:.2}/service) [{}]; {} errors",
        "",
        total as f64 / report.evaluated.max(1) as f64,
        by_op.join(", "),
        report.errors.len(),
    );
    println!(
        "{:<30} CPU {cpu:.0} ms in this process, wall {wall:.0} ms (moto on this machine)",
        ""
    );
}

fn print_writes(
    name: &str,
    report: &TickReport,
    requests: std::collections::BTreeMap<String, usize>,
    cpu: f64,
    wall: f64,
) {
    let total: usize = requests.values().sum();
    let by_op: Vec<String> = requests.iter().map(|(op, k)| format!("{op} {k}")).collect();
    println!(
        "{:<30} writes on {} services: {:.2} DynamoDB requests/service [{}]; {} changed, {} conflicts; CPU {cpu:.0} ms, wall {wall:.0} ms",
        format!("{name}: writes"),
        report.evaluated,
        total as f64 / report.evaluated.max(1) as f64,
        by_op.join(", "),
        report.changed.len(),
        report.conflicts,
    );
    if let Some(e) = report.errors.first() {
        println!("{:<30} {} errors, e.g. {e}", "", report.errors.len());
    }
}

/// Half a minute old cpu and requests for every service, as heartbeats would leave them.
async fn put_metrics(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    services: &[String],
) {
    let now = now_ms();
    let datums: Vec<MetricDatum> = services
        .iter()
        .enumerate()
        .flat_map(|(i, svc)| {
            let dim = Dimension::builder().name("Service").value(svc).build();
            let at = aws_smithy_types::DateTime::from_millis(now - 30_000);
            [
                ("CpuPercent", 30.0 + (i % 60) as f64),
                ("RequestsPerSecond", 50.0 + (i % 100) as f64),
            ]
            .map(|(name, v)| {
                MetricDatum::builder()
                    .metric_name(name)
                    .dimensions(dim.clone())
                    .value(v)
                    .timestamp(at)
                    .build()
            })
        })
        .collect();
    for chunk in datums.chunks(1000) {
        cloudwatch
            .put_metric_data()
            .namespace(namespace)
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .expect("seed metrics");
    }
}

#[tokio::main]
async fn main() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run with `make bench`, which starts the local stack"
    );
    let sdk = aloft_shared::aws::sdk_config().await;
    let ddb = aloft_shared::aws::dynamodb(&sdk);
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let (scaling_table, registry_table, outbox_table) = (
        format!("scaling-bench-{run}"),
        format!("registry-bench-{run}"),
        format!("outbox-bench-{run}"),
    );
    create_table(&ddb, &scaling_table, true, true).await;
    create_table(&ddb, &registry_table, true, false).await;
    let outbox_key = ddb
        .create_table()
        .table_name(&outbox_table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("id", ScalarAttributeType::S))
        .key_schema(key("id", KeyType::Hash));
    outbox_key.send().await.expect("outbox table");

    let seed_store = ScalingStore::new(
        ddb.clone(),
        scaling_table.clone(),
        Outbox::new(ddb.clone(), outbox_table.clone()),
    );
    let req: PolicyRequest = serde_json::from_value(serde_json::json!({
        "metrics": [{"metric": "cpu_percent", "target": 50}, {"metric": "requests_per_instance", "target": 100}],
        "scale_up": {"cooldown_seconds": 0},
    }))
    .unwrap();
    let policy = ScalingPolicy::parse(&req).unwrap();
    let services: Vec<String> = (0..service_count())
        .map(|i| format!("bench-{run}-{i}"))
        .collect();
    println!(
        "scaler: seeding {} services with policies, {INSTANCES_PER_SERVICE} instances each and their metrics...",
        services.len()
    );
    let now = now_ms();
    let stamp = aloft_shared::clock::rfc3339(aloft_shared::clock::now());
    for svc in &services {
        seed_store
            .put_policy(svc, &policy, &stamp)
            .await
            .expect("policy");
    }
    let instances: Vec<WriteRequest> = services
        .iter()
        .flat_map(|svc| (0..INSTANCES_PER_SERVICE).map(move |i| (svc, i)))
        .map(|(svc, i)| {
            let load = AttributeValue::M([("cpu_percent".to_owned(), n(20 + 10 * i))].into());
            let item = [
                ("pk".to_owned(), s(aloft_shared::keys::service_pk(svc))),
                (
                    "sk".to_owned(),
                    s(format!(
                        "{}{svc}-{i}",
                        aloft_shared::keys::INSTANCE_SK_PREFIX
                    )),
                ),
                ("instance_id".to_owned(), s(format!("{svc}-{i}"))),
                ("status".to_owned(), s("passing")),
                ("lease_expires_at_ms".to_owned(), n(now + 3_600_000)),
                ("load".to_owned(), load),
            ]
            .into();
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    for chunk in instances.chunks(25) {
        ddb.batch_write_item()
            .request_items(&registry_table, chunk.to_vec())
            .send()
            .await
            .expect("seed instances");
    }
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
    let namespace = format!("aloft-bench-{run}");
    let counter = RequestCounter::default();
    let counted = counter.client(&sdk);
    let evaluator = Evaluator {
        store: ScalingStore::new(
            counted.clone(),
            scaling_table,
            Outbox::new(counted.clone(), outbox_table),
        ),
        registry: RegistryReader::new(counted, registry_table),
        metrics: MetricsReader::new(cloudwatch.clone(), namespace.clone()),
        actuators: Actuators::from_env(&sdk),
    };
    println!(
        "scaler tick over {} services with policies (2 metrics each), in one process, via moto:",
        services.len()
    );
    // moto's TransactWriteItems deep-copies every table it touches, per call: a thousand
    // transactional writes against it take minutes and gigabytes. So the reads and
    // decisions run over all 1,000 services, and the writes over a sample of them.
    for name in ["tick (first decisions)", "tick (steady)"] {
        // Fresh load for every tick, as heartbeats would report it.
        put_metrics(&cloudwatch, &namespace, &services).await;
        counter.take();
        let (cpu0, wall0) = (cpu_ms(), Instant::now());
        let due = evaluator.store.due(now_ms()).await.expect("due");
        let (decided, mut report) = evaluator.decide_all(due, now_ms()).await;
        let (cpu, wall) = (cpu_ms() - cpu0, wall0.elapsed().as_secs_f64() * 1000.0);
        report.evaluated = decided.len();
        print(
            &format!("{name}: reads"),
            &report,
            counter.take(),
            cpu,
            wall,
        );
        // The same services each tick, so the second one writes their steady decisions.
        let sampled = &services[..write_sample()];
        let mut sample: Vec<_> = decided
            .into_iter()
            .filter(|(item, _)| sampled.contains(&item.service))
            .collect();
        let (cpu0, wall0) = (cpu_ms(), Instant::now());
        let mut written = TickReport::default();
        // A few at a time: moto applies DynamoDB requests one by one, and each of its
        // slow transactions would otherwise wait past the SDK's operation timeout.
        while !sample.is_empty() {
            let chunk: Vec<_> = sample.drain(..sample.len().min(2)).collect();
            evaluator.record_all(chunk, now_ms(), &mut written).await;
        }
        let (cpu, wall) = (cpu_ms() - cpu0, wall0.elapsed().as_secs_f64() * 1000.0);
        print_writes(name, &written, counter.take(), cpu, wall);
    }
    let batches = plan_batches(&services, DEFAULT_FANOUT_THRESHOLD);
    println!(
        "deployed, a tick past {DEFAULT_FANOUT_THRESHOLD} services fans out: {} batches of {DEFAULT_FANOUT_THRESHOLD} in {} SendMessageBatch call(s), then each worker as above",
        batches.len(),
        batches.len().div_ceil(10)
    );
}
