//! The local stack's CloudWatch percentile bridge (`local/moto_server.py`), checked
//! through the real SDK path the quality monitor uses: known values in, `p50`/`p95`/`p99`
//! (nearest rank, CloudWatch's definition) out, by `GetMetricData` through
//! [`Metrics::fetch`] and by `GetMetricStatistics`' extended statistics.
//!
//! Needs the stack's endpoint (`make test` provides `AWS_ENDPOINT_URL`).

use aloft_quality::domain::series::MetricSpec;
use aloft_quality::metrics::{Metrics, Query};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StatisticSet};

async fn cloudwatch() -> aws_sdk_cloudwatch::Client {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run these tests with `make test`, which starts the local stack"
    );
    let sdk = aloft_shared::aws::sdk_config().await;
    aloft_shared::aws::cloudwatch(&sdk)
}

fn function(name: &str) -> Dimension {
    Dimension::builder().name("Function").value(name).build()
}

/// The start of the minute two minutes ago: a complete period.
fn period_start() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now / 60 * 60 - 120
}

fn spec(service: &str, stat: &'static str) -> MetricSpec {
    MetricSpec {
        metric_name: "Latency",
        dimensions: vec![("Function", service.to_owned())],
        stat,
    }
}

#[tokio::test]
async fn percentiles_are_nearest_rank_over_the_periods_raw_values() {
    let cw = cloudwatch().await;
    let namespace = format!("quality-bridge-{}", uuid::Uuid::new_v4().simple());
    // moto matches dimensions without the namespace: a name of this run's own.
    let service = &format!("bridge-{}", uuid::Uuid::new_v4().simple());
    let start = period_start();
    // 1..=200 ms, shuffled, in two calls: the period holds every raw value.
    let mut values: Vec<f64> = (1..=200).map(f64::from).collect();
    values.reverse();
    for chunk in values.chunks(100) {
        let datum = MetricDatum::builder()
            .metric_name("Latency")
            .dimensions(function(service))
            .timestamp(DateTime::from_secs(start + 30))
            .set_values(Some(chunk.to_vec()))
            .build();
        cw.put_metric_data()
            .namespace(&namespace)
            .metric_data(datum)
            .send()
            .await
            .expect("PutMetricData");
    }

    let metrics = Metrics::new(cw.clone(), namespace.clone());
    let query = |stat| Query {
        spec: spec(service, stat),
        period: 60,
        start,
        end: start + 60,
    };
    let queries: Vec<Query> = ["p50", "p95", "p99", "p99.9", "Maximum", "SampleCount"]
        .into_iter()
        .map(query)
        .collect();
    let data = metrics.fetch(&queries).await.expect("GetMetricData");
    let value = |stat| data.get(&query(stat)).and_then(|s| s.get(&start)).copied();
    // Nearest rank: ceil(p/100 × 200).
    assert_eq!(value("p50"), Some(100.0));
    assert_eq!(value("p95"), Some(190.0));
    assert_eq!(value("p99"), Some(198.0));
    assert_eq!(value("p99.9"), Some(200.0));
    assert_eq!(value("Maximum"), Some(200.0));
    assert_eq!(value("SampleCount"), Some(200.0));

    let stats = cw
        .get_metric_statistics()
        .namespace(&namespace)
        .metric_name("Latency")
        .dimensions(function(service))
        .start_time(DateTime::from_secs(start))
        .end_time(DateTime::from_secs(start + 60))
        .period(60)
        .extended_statistics("p50")
        .extended_statistics("p99")
        .send()
        .await
        .expect("GetMetricStatistics");
    let point = &stats.datapoints()[0];
    let extended = point.extended_statistics().expect("extended statistics");
    assert_eq!(extended.get("p50"), Some(&100.0));
    assert_eq!(extended.get("p99"), Some(&198.0));
}

#[tokio::test]
async fn a_period_of_only_aggregated_values_has_no_percentile() {
    let cw = cloudwatch().await;
    let namespace = format!("quality-bridge-{}", uuid::Uuid::new_v4().simple());
    let start = period_start();
    let service = &format!("aggregated-{}", uuid::Uuid::new_v4().simple());
    let set = StatisticSet::builder()
        .sample_count(10.0)
        .sum(100.0)
        .minimum(1.0)
        .maximum(30.0)
        .build();
    let datum = MetricDatum::builder()
        .metric_name("Latency")
        .dimensions(function(service))
        .timestamp(DateTime::from_secs(start + 10))
        .statistic_values(set)
        .build();
    cw.put_metric_data()
        .namespace(&namespace)
        .metric_data(datum)
        .send()
        .await
        .expect("PutMetricData");
    let metrics = Metrics::new(cw, namespace);
    let query = |stat| Query {
        spec: spec(service, stat),
        period: 60,
        start,
        end: start + 60,
    };
    let data = metrics
        .fetch(&[query("p99"), query("Maximum")])
        .await
        .expect("GetMetricData answers, not a 500");
    assert!(data.get(&query("p99")).is_none_or(|s| s.is_empty()));
    assert_eq!(
        data.get(&query("Maximum")).and_then(|s| s.get(&start)),
        Some(&30.0)
    );
}
