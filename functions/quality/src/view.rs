//! What the API shows: an objective with its alert state, and a service's quality at a
//! glance (objectives, attributes, MTTR, error budgets, and where the time goes).

use serde::Serialize;

use crate::domain::alert::{self, Mttr};
use crate::domain::attributes::QualityAttributes;
use crate::domain::burn::BurnReport;
use crate::domain::series::MetricSpec;
use crate::domain::{AlertState, Objective, ServiceName};
use crate::metrics::{Metrics, Query};
use crate::store::{QualityStore, StoredObjective};

#[derive(Debug, Serialize)]
pub struct ObjectiveView {
    #[serde(flatten)]
    pub objective: Objective,
    pub state: AlertState,
    pub since: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub last_evaluated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burn: Option<BurnReport>,
    pub fingerprint: String,
}

impl From<StoredObjective> for ObjectiveView {
    fn from(o: StoredObjective) -> Self {
        Self {
            objective: o.objective,
            state: o.status.state,
            since: o.status.since,
            value: o.status.value,
            threshold: o.status.threshold,
            last_evaluated_at: o.status.last_evaluated_at,
            burn: o.status.burn,
            fingerprint: o.fingerprint,
        }
    }
}

/// p50/p95/p99 of one part of the latency, in ms, over the latest five minutes.
#[derive(Debug, Default, Serialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Breakdown {
    pub window_seconds: u32,
    pub total: Percentiles,
    pub database: Percentiles,
    pub messaging: Percentiles,
    pub other_aws: Percentiles,
    pub processing: Percentiles,
    pub memory_used_mib_max: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct MttrView {
    #[serde(flatten)]
    pub measured: Mttr,
    /// The attributes' `reliability.mttr_minutes`, and whether the measured MTTR meets it.
    pub target_minutes: Option<f64>,
    pub met: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct QualityView {
    pub service: String,
    pub objectives: Vec<ObjectiveView>,
    pub attributes: Option<QualityAttributes>,
    pub mttr: MttrView,
    pub latency_breakdown: Breakdown,
}

/// The breakdown's window: five one-minute periods would be noisier than one.
const BREAKDOWN_SECONDS: u32 = 300;

pub async fn quality(
    store: &QualityStore,
    metrics: &Metrics,
    service: &ServiceName,
    now: time::OffsetDateTime,
) -> Result<QualityView, aloft_shared::dynamo::StoreError> {
    let objectives = store.all_objectives(service.as_str()).await?;
    let attributes = store.attributes(service.as_str()).await?.map(|(a, _)| a);
    let history = store.service_history(service.as_str()).await?;
    let transitions: Vec<_> = history
        .iter()
        .filter_map(|(o, e)| {
            Some((
                o.as_str(),
                aloft_shared::clock::parse_rfc3339(&e.at)?.unix_timestamp(),
                e.from,
                e.to,
            ))
        })
        .collect();
    let measured = alert::mttr(&transitions);
    let target_minutes = attributes
        .as_ref()
        .and_then(|a| a.reliability.as_ref())
        .and_then(|r| r.mttr_minutes);
    let met = target_minutes
        .zip(measured.mttr_seconds)
        .map(|(t, m)| m <= t * 60.0);
    Ok(QualityView {
        service: service.to_string(),
        objectives: objectives.into_iter().map(Into::into).collect(),
        attributes,
        mttr: MttrView {
            measured,
            target_minutes,
            met,
        },
        latency_breakdown: breakdown(metrics, service, now).await?,
    })
}

async fn breakdown(
    metrics: &Metrics,
    service: &ServiceName,
    now: time::OffsetDateTime,
) -> Result<Breakdown, aloft_shared::dynamo::StoreError> {
    let end = now.unix_timestamp() / 60 * 60;
    let query = |metric_name: &'static str, stat: &'static str| Query {
        spec: MetricSpec {
            metric_name,
            dimensions: vec![("Function", service.to_string())],
            stat,
        },
        period: BREAKDOWN_SECONDS,
        start: end - i64::from(BREAKDOWN_SECONDS),
        end,
    };
    let parts = [
        "Latency",
        "DatabaseLatency",
        "MessagingLatency",
        "OtherAwsLatency",
        "ProcessingLatency",
    ];
    let mut queries: Vec<Query> = parts
        .iter()
        .flat_map(|p| ["p50", "p95", "p99"].map(|s| query(p, s)))
        .collect();
    queries.push(query("MemoryUsedMiB", "Maximum"));
    let data = metrics.fetch(&queries).await?;
    let latest = |q: Query| data.get(&q).and_then(|s| s.values().next_back().copied());
    let pct = |p: &'static str| Percentiles {
        p50: latest(query(p, "p50")),
        p95: latest(query(p, "p95")),
        p99: latest(query(p, "p99")),
    };
    Ok(Breakdown {
        window_seconds: BREAKDOWN_SECONDS,
        total: pct("Latency"),
        database: pct("DatabaseLatency"),
        messaging: pct("MessagingLatency"),
        other_aws: pct("OtherAwsLatency"),
        processing: pct("ProcessingLatency"),
        memory_used_mib_max: latest(query("MemoryUsedMiB", "Maximum")),
    })
}
