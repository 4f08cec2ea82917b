//! Reading metrics back from CloudWatch with `GetMetricData`: many objectives' queries
//! per call (CloudWatch's limit is 500), each asking for its statistic exactly as
//! CloudWatch serves it (`p99`, `Sum`, `Average`, …).

use std::collections::{BTreeMap, HashMap};

use aloft_shared::dynamo::StoreError;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};

use crate::domain::series::MetricSpec;

/// CloudWatch's limit of queries in one `GetMetricData` call.
pub const MAX_QUERIES_PER_CALL: usize = 500;

/// One statistic of one metric over `[start, end)` in periods of `period` seconds (epoch
/// seconds, aligned to the period so datapoints fall on period boundaries).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    pub spec: MetricSpec,
    pub period: u32,
    pub start: i64,
    pub end: i64,
}

/// Datapoints by period start (epoch seconds).
pub type Series = BTreeMap<i64, f64>;

#[derive(Debug, Clone)]
pub struct Metrics {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
}

impl Metrics {
    /// Namespace from `METRICS_NAMESPACE` (default `aloft`), where the EMF records go.
    pub fn from_env(
        sdk: &aloft_shared::aws::SdkConfig,
    ) -> Result<Self, aloft_shared::config::ConfigError> {
        Ok(Self::new(
            aloft_shared::aws::cloudwatch(sdk),
            aloft_shared::config::parsed_or("METRICS_NAMESPACE", "aloft".to_owned())?,
        ))
    }

    pub fn new(client: aws_sdk_cloudwatch::Client, namespace: String) -> Self {
        Self { client, namespace }
    }

    /// Every query's datapoints. Identical queries are asked once; queries sharing a
    /// time range go together, up to [`MAX_QUERIES_PER_CALL`] per call.
    #[tracing::instrument(skip_all, fields(queries = queries.len()))]
    pub async fn fetch(&self, queries: &[Query]) -> Result<HashMap<Query, Series>, StoreError> {
        let mut by_range: BTreeMap<(i64, i64), Vec<&Query>> = BTreeMap::new();
        for q in queries {
            let group = by_range.entry((q.start, q.end)).or_default();
            if !group.contains(&q) {
                group.push(q);
            }
        }
        let mut out = HashMap::new();
        for ((start, end), group) in by_range {
            for chunk in group.chunks(MAX_QUERIES_PER_CALL) {
                let results = self.call(start, end, chunk).await?;
                for (i, series) in results {
                    if let Some(q) = chunk.get(i) {
                        out.insert((*q).clone(), series);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn call(
        &self,
        start: i64,
        end: i64,
        chunk: &[&Query],
    ) -> Result<BTreeMap<usize, Series>, StoreError> {
        let data_queries = chunk
            .iter()
            .enumerate()
            .map(|(i, q)| self.data_query(i, q))
            .collect::<Result<Vec<_>, _>>()?;
        let mut pages = self
            .client
            .get_metric_data()
            .set_metric_data_queries(Some(data_queries))
            .start_time(DateTime::from_secs(start))
            .end_time(DateTime::from_secs(end))
            .into_paginator()
            .send();
        let mut out: BTreeMap<usize, Series> = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(StoreError::from)?;
            for r in page.metric_data_results() {
                let Some(i) = r
                    .id()
                    .and_then(|id| id.strip_prefix('q'))
                    .and_then(|i| i.parse().ok())
                else {
                    continue;
                };
                let series = out.entry(i).or_default();
                for (t, v) in r.timestamps().iter().zip(r.values()) {
                    // A split page may repeat a period; CloudWatch's values for one period
                    // are one datapoint, so the last one wins.
                    series.insert(t.secs(), *v);
                }
            }
        }
        Ok(out)
    }

    fn data_query(&self, i: usize, q: &Query) -> Result<MetricDataQuery, StoreError> {
        let dimensions = q
            .spec
            .dimensions
            .iter()
            .map(|(name, value)| Dimension::builder().name(*name).value(value).build())
            .collect();
        let metric = Metric::builder()
            .namespace(&self.namespace)
            .metric_name(q.spec.metric_name)
            .set_dimensions(Some(dimensions))
            .build();
        let stat = MetricStat::builder()
            .metric(metric)
            .period(i32::try_from(q.period).unwrap_or(i32::MAX))
            .stat(q.spec.stat)
            .build();
        Ok(MetricDataQuery::builder()
            .id(format!("q{i}"))
            .metric_stat(stat)
            .return_data(true)
            .build())
    }
}
