//! Reading heartbeat load back from CloudWatch: one `GetMetricData` call carries up to
//! 500 queries across services and metrics (never one call per service or metric).
//!
//! The registry emits each heartbeat's load as `CpuPercent`, `MemoryPercent`,
//! `RequestsPerSecond` and `LatencyP95` with dimension `Service`; every instance
//! reports, so the `Average` over a period is the per-instance average HPA's formula
//! wants. Reached with the workspace's pinned `aws-sdk-cloudwatch` (moto speaks only
//! its awsQuery protocol; see the workspace Cargo.toml).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_smithy_types::DateTime;

use crate::domain::policy::MetricKind;
use crate::domain::recommend::MetricReading;

/// CloudWatch's limit of queries in one `GetMetricData` call.
pub const MAX_QUERIES_PER_CALL: usize = 500;
/// One value per minute: the resolution of EMF metrics and of the tick.
pub const PERIOD_SECONDS: u32 = 60;
/// Periods of history read for forecasting.
pub const HISTORY_PERIODS: i64 = 10;
/// A newest value older than this many periods counts as missing: nobody reports.
pub const FRESH_PERIODS: i64 = 2;
const STAT: &str = "Average";

/// The CloudWatch metric a policy metric is read from.
pub fn metric_name(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::CpuPercent => "CpuPercent",
        MetricKind::MemoryPercent => "MemoryPercent",
        MetricKind::RequestsPerInstance => "RequestsPerSecond",
        MetricKind::LatencyMsP95 => "LatencyP95",
    }
}

/// One query of a batch: its id in the call, and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub id: String,
    pub service: String,
    pub metric: MetricKind,
}

/// The queries for `wanted` (service, its policy's metrics), in calls of at most
/// [`MAX_QUERIES_PER_CALL`]: ⌈queries / 500⌉ calls.
pub fn plan(wanted: &[(String, Vec<MetricKind>)]) -> Vec<Vec<Planned>> {
    let all: Vec<Planned> = wanted
        .iter()
        .flat_map(|(service, metrics)| metrics.iter().map(move |m| (service, *m)))
        .enumerate()
        .map(|(i, (service, metric))| Planned {
            // Ids must start with a lower-case letter; unique within the call.
            id: format!("q{i}"),
            service: service.clone(),
            metric,
        })
        .collect();
    all.chunks(MAX_QUERIES_PER_CALL)
        .map(<[Planned]>::to_vec)
        .collect()
}

/// A reading from a result's points (`(unix ms, value)`, any order): its history oldest
/// first, and its newest value if no older than [`FRESH_PERIODS`].
pub fn reading(mut points: Vec<(i64, f64)>, now_ms: i64) -> MetricReading {
    points.retain(|(_, v)| v.is_finite());
    points.sort_by_key(|(t, _)| *t);
    let fresh_after = now_ms - FRESH_PERIODS * i64::from(PERIOD_SECONDS) * 1000;
    MetricReading {
        latest: points
            .last()
            .filter(|(t, _)| *t >= fresh_after)
            .map(|(_, v)| *v),
        history: points.into_iter().map(|(_, v)| v).collect(),
    }
}

/// What one batch read found, and what it cost.
#[derive(Debug, Default)]
pub struct Fetched {
    pub readings: BTreeMap<String, BTreeMap<MetricKind, MetricReading>>,
    pub queries: usize,
    pub calls: usize,
}

#[derive(Debug, Clone)]
pub struct MetricsReader {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
}

impl MetricsReader {
    /// Reads `METRICS_NAMESPACE` (default `aloft`, as the registry emits).
    pub fn from_env(sdk: &aloft_shared::aws::SdkConfig) -> Self {
        let namespace = std::env::var("METRICS_NAMESPACE")
            .ok()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "aloft".into());
        Self::new(aloft_shared::aws::cloudwatch(sdk), namespace)
    }

    pub fn new(client: aws_sdk_cloudwatch::Client, namespace: String) -> Self {
        Self { client, namespace }
    }

    /// Emits a decision's counts as EMF (`DesiredCount`, `CurrentCount`, dimension
    /// `Service`), which the dashboard graphs side by side: a log line, no API call.
    pub fn emit_counts(&self, service: &str, current: u32, desired: u32) {
        aloft_shared::metrics::MetricRecord::new(self.namespace.as_str())
            .dimension("Service", service)
            .dimension_set(&["Service"])
            .metric(
                "DesiredCount",
                f64::from(desired),
                aloft_shared::metrics::Unit::Count,
            )
            .metric(
                "CurrentCount",
                f64::from(current),
                aloft_shared::metrics::Unit::Count,
            )
            .emit();
    }

    /// Every wanted metric of every service, in as few calls as CloudWatch allows.
    #[tracing::instrument(skip_all, fields(services = wanted.len()))]
    pub async fn fetch(
        &self,
        wanted: &[(String, Vec<MetricKind>)],
        now_ms: i64,
    ) -> Result<Fetched, String> {
        let mut fetched = Fetched::default();
        let start = now_ms - HISTORY_PERIODS * i64::from(PERIOD_SECONDS) * 1000;
        for batch in plan(wanted) {
            fetched.queries += batch.len();
            let queries = batch.iter().map(|p| self.query(p)).collect::<Vec<_>>();
            let by_id: HashMap<&str, &Planned> = batch.iter().map(|p| (p.id.as_str(), p)).collect();
            let mut points: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
            let mut token = None;
            loop {
                fetched.calls += 1;
                let out = self
                    .client
                    .get_metric_data()
                    .set_metric_data_queries(Some(queries.clone()))
                    .start_time(DateTime::from_millis(start))
                    .end_time(DateTime::from_millis(now_ms))
                    .scan_by(ScanBy::TimestampAscending)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| aws_sdk_cloudwatch::error::DisplayErrorContext(e).to_string())?;
                for r in out.metric_data_results() {
                    let entry = points
                        .entry(r.id().unwrap_or_default().to_owned())
                        .or_default();
                    for (t, v) in r.timestamps().iter().zip(r.values()) {
                        if let Ok(ms) = t.to_millis() {
                            entry.push((ms, *v));
                        }
                    }
                }
                token = out.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            for (id, p) in by_id {
                let pts = points.remove(id).unwrap_or_default();
                fetched
                    .readings
                    .entry(p.service.clone())
                    .or_default()
                    .insert(p.metric, reading(pts, now_ms));
            }
        }
        Ok(fetched)
    }

    fn query(&self, p: &Planned) -> MetricDataQuery {
        let metric = Metric::builder()
            .namespace(&self.namespace)
            .metric_name(metric_name(p.metric))
            .dimensions(
                Dimension::builder()
                    .name("Service")
                    .value(&p.service)
                    .build(),
            )
            .build();
        MetricDataQuery::builder()
            .id(&p.id)
            .metric_stat(
                MetricStat::builder()
                    .metric(metric)
                    .period(PERIOD_SECONDS as i32)
                    .stat(STAT)
                    .build(),
            )
            .return_data(true)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(services: usize, metrics: &[MetricKind]) -> Vec<(String, Vec<MetricKind>)> {
        (0..services)
            .map(|i| (format!("svc-{i}"), metrics.to_vec()))
            .collect()
    }

    #[test]
    fn queries_are_batched_500_a_call_across_services() {
        let two = [MetricKind::CpuPercent, MetricKind::RequestsPerInstance];
        let cases = [(0, 0), (1, 1), (250, 1), (251, 2), (1000, 4), (999, 4)];
        for (services, calls) in cases {
            let batches = plan(&wanted(services, &two));
            assert_eq!(batches.len(), calls, "{services} services");
            assert!(batches.iter().all(|b| b.len() <= MAX_QUERIES_PER_CALL));
            assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), services * 2);
        }
        // A batch mixes services: the second call starts mid-list.
        let batches = plan(&wanted(300, &two));
        assert_eq!(batches[1][0].service, "svc-250");
    }

    #[test]
    fn query_ids_are_unique_and_valid() {
        let batches = plan(&wanted(600, &MetricKind::ALL));
        let ids: std::collections::HashSet<_> =
            batches.iter().flatten().map(|p| p.id.clone()).collect();
        assert_eq!(ids.len(), 2400);
        assert!(
            ids.iter()
                .all(|id| id.starts_with('q') && id[1..].bytes().all(|b| b.is_ascii_digit()))
        );
    }

    #[test]
    fn a_reading_is_its_newest_fresh_value_and_its_history() {
        let now = 1_000_000;
        let r = reading(
            vec![
                (now - 60_000, 40.0),
                (now - 180_000, 20.0),
                (now - 120_000, 30.0),
            ],
            now,
        );
        assert_eq!(r.latest, Some(40.0));
        assert_eq!(r.history, [20.0, 30.0, 40.0]);
        // Nobody reported for three minutes: missing, though the history stays.
        let stale = reading(vec![(now - 180_000, 20.0)], now);
        assert_eq!((stale.latest, stale.history.len()), (None, 1));
        assert_eq!(reading(vec![], now).latest, None);
        assert_eq!(reading(vec![(now, f64::NAN)], now).latest, None);
    }

    #[test]
    fn policy_metrics_read_the_registry_metric_names() {
        let names: Vec<_> = MetricKind::ALL.into_iter().map(metric_name).collect();
        assert_eq!(
            names,
            [
                "CpuPercent",
                "MemoryPercent",
                "RequestsPerSecond",
                "LatencyP95"
            ]
        );
    }
}
