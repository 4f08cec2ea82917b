//! The registry HTTP API: an axum `Router` behind API Gateway.

use aloft_shared::auth::{Authorized, scope};
use aloft_shared::extract::ApiJson;
use aloft_shared::metrics::{MetricRecord, Unit};
use aloft_shared::{Problem, clock};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::{
    HealthStatus, HeartbeatRequest, Instance, Load, RegisterRequest, Registration, RegistryError,
    ServiceName, parse_discovery_query, parse_resolve_query, resolve,
};
use crate::store::{RegistryStore, ServiceView};

type Pairs = Query<Vec<(String, String)>>;

pub fn router(store: RegistryStore) -> Router {
    Router::new()
        .route("/services", get(list_services))
        .route("/services/{service}", get(service_detail))
        .route(
            "/services/{service}/instances",
            post(register).get(discover),
        )
        .route(
            "/services/{service}/instances/{id}",
            axum::routing::delete(deregister),
        )
        .route(
            "/services/{service}/instances/{id}/heartbeat",
            put(heartbeat),
        )
        .route("/services/{service}/resolve", get(resolve_one))
        .with_state(store)
}

fn now_ms() -> i64 {
    (clock::now().unix_timestamp_nanos() / 1_000_000) as i64
}

fn ms_to_rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(clock::rfc3339)
        .unwrap_or_default()
}

fn service_name(raw: &str) -> Result<ServiceName, RegistryError> {
    ServiceName::parse(raw)
        .map_err(|m| RegistryError::Invalid(vec![aloft_shared::FieldError::new("service", m)]))
}

#[derive(Debug, Serialize)]
struct LeaseView {
    instance_id: String,
    lease_expires_at: String,
}

/// An instance as discovery shows it. `status` is the effective one: a lapsed lease is
/// `critical` whatever the instance last reported.
#[derive(Debug, Serialize)]
struct InstanceView<'a> {
    instance_id: &'a str,
    address: &'a str,
    port: Option<u16>,
    version: Option<&'a str>,
    tags: &'a [String],
    meta: &'a std::collections::BTreeMap<String, String>,
    weight: u32,
    status: HealthStatus,
    load: Option<Load>,
    lease_expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<&'a crate::domain::HealthCheck>,
}

fn view(i: &Instance, now: i64) -> InstanceView<'_> {
    InstanceView {
        instance_id: &i.instance_id,
        address: &i.address,
        port: i.port,
        version: i.version.as_deref(),
        tags: &i.tags,
        meta: &i.meta,
        weight: i.weight,
        status: if i.is_live(now) {
            i.status
        } else {
            HealthStatus::Critical
        },
        load: i.load,
        lease_expires_at: ms_to_rfc3339(i.lease_expires_at_ms),
        check: i.check.as_ref(),
    }
}

async fn register(
    State(store): State<RegistryStore>,
    _auth: Authorized<scope::RegistryWrite>,
    Path(service): Path<String>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<Response, RegistryError> {
    let service = service_name(&service)?;
    let reg = Registration::parse(req).map_err(RegistryError::Invalid)?;
    let id = reg
        .instance_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let instance = Instance::register(service, id, &reg, now_ms());
    let created = store.register(&instance, &reg.depends_on).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = LeaseView {
        instance_id: instance.instance_id.clone(),
        lease_expires_at: ms_to_rfc3339(instance.lease_expires_at_ms),
    };
    Ok((status, Json(body)).into_response())
}

async fn heartbeat(
    State(store): State<RegistryStore>,
    _auth: Authorized<scope::RegistryWrite>,
    Path((service, id)): Path<(String, String)>,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> Result<Json<LeaseView>, RegistryError> {
    let service = service_name(&service)?;
    if let Some(load) = &req.load {
        let errors = load.validate();
        if !errors.is_empty() {
            return Err(RegistryError::Invalid(errors));
        }
    }
    let instance = store
        .heartbeat(service.as_str(), &id, req.status, req.load, now_ms())
        .await?;
    if let Some(load) = req.load {
        emit_load(service.as_str(), &id, load);
    }
    Ok(Json(LeaseView {
        instance_id: id,
        lease_expires_at: ms_to_rfc3339(instance.lease_expires_at_ms),
    }))
}

/// Heartbeat load as CloudWatch metrics (EMF), namespace `METRICS_NAMESPACE`, dimension
/// `Service`, so the scaler and the quality monitor can read them.
fn emit_load(service: &str, instance_id: &str, load: Load) {
    let namespace = std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| "aloft".into());
    let mut record = MetricRecord::new(namespace)
        .dimension("Service", service)
        .dimension_set(&["Service"]);
    let metrics = [
        ("CpuPercent", load.cpu_percent, Unit::Percent),
        ("MemoryPercent", load.memory_percent, Unit::Percent),
        (
            "RequestsPerSecond",
            load.requests_per_second,
            Unit::CountPerSecond,
        ),
        ("LatencyP95", load.latency_ms_p95, Unit::Milliseconds),
    ];
    for (name, value, unit) in metrics {
        if let Some(v) = value {
            record = record.metric(name, v, unit);
        }
    }
    tracing::debug!(%service, %instance_id, "load reported");
    record.emit();
}

async fn deregister(
    State(store): State<RegistryStore>,
    _auth: Authorized<scope::RegistryWrite>,
    Path((service, id)): Path<(String, String)>,
) -> Result<StatusCode, RegistryError> {
    let service = service_name(&service)?;
    if store.deregister(service.as_str(), &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(RegistryError::LeaseGone {
            service: service.as_str().to_owned(),
            instance_id: id,
        })
    }
}

#[derive(Debug, Serialize)]
struct DiscoveryView<'a> {
    instances: Vec<InstanceView<'a>>,
    revision: u64,
    /// No instance was healthy and `fail_open=true` was asked: these are all of them.
    fail_open: bool,
}

async fn discover(
    State(store): State<RegistryStore>,
    _auth: Authorized<scope::RegistryRead>,
    Path(service): Path<String>,
    Query(pairs): Pairs,
    headers: HeaderMap,
) -> Result<Response, RegistryError> {
    let service = service_name(&service)?;
    let (filter, fail_open) = parse_discovery_query(&pairs).map_err(RegistryError::Invalid)?;
    let state = store.view(service.as_str()).await?.unwrap_or_default();
    let now = now_ms();
    let (chosen, fell_back) = filter.select(&state.instances, now, fail_open);
    let body = DiscoveryView {
        instances: chosen.into_iter().map(|i| view(i, now)).collect(),
        revision: state.revision,
        fail_open: fell_back,
    };
    let json = serde_json::to_vec(&body)
        .map_err(|e| aloft_shared::dynamo::StoreError::new("discovery body", e))?;
    // The ETag is the answer's own hash, not just the revision: a lease lapsing changes
    // the answer without any write, and a client must see that.
    let etag = format!("\"{}\"", &hex(&Sha256::digest(&json))[..32]);
    let tag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        });
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    Ok((
        [
            (header::ETAG, tag),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        json,
    )
        .into_response())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn resolve_one(
    State(store): State<RegistryStore>,
    _auth: Authorized<scope::RegistryRead>,
    Path(service): Path<String>,
    Query(pairs): Pairs,
) -> Result<Response, RegistryError> {
    let service = service_name(&service)?;
    let (strategy, filter) = parse_resolve_query(&pairs).map_err(RegistryError::Invalid)?;
    let state = store
        .view(service.as_str())
        .await?
        .ok_or_else(|| RegistryError::ServiceNotFound(service.as_str().into()))?;
    let now = now_ms();
    let (candidates, _) = filter.select(&state.instances, now, false);
    if candidates.is_empty() {
        return Err(RegistryError::NoHealthyInstance(
            service.as_str().to_owned(),
        ));
    }
    let counter = match strategy {
        crate::domain::Strategy::RoundRobin => store.next_round_robin(service.as_str()).await?,
        _ => 0,
    };
    let draw: f64 = rand_unit();
    let chosen = resolve(strategy, &candidates, counter, draw)
        .ok_or_else(|| RegistryError::NoHealthyInstance(service.as_str().to_owned()))?;
    Ok(Json(view(chosen, now)).into_response())
}

/// A uniform draw in `[0, 1)` for weighted resolve.
fn rand_unit() -> f64 {
    rand::random::<f64>()
}

#[derive(Debug, Serialize)]
struct HealthCounts {
    passing: usize,
    warning: usize,
    critical: usize,
}

fn counts(instances: &[Instance], now: i64) -> HealthCounts {
    let mut c = HealthCounts {
        passing: 0,
        warning: 0,
        critical: 0,
    };
    for i in instances {
        match if i.is_live(now) {
            i.status
        } else {
            HealthStatus::Critical
        } {
            HealthStatus::Passing => c.passing += 1,
            HealthStatus::Warning => c.warning += 1,
            HealthStatus::Critical => c.critical += 1,
        }
    }
    c
}

#[derive(Debug, Serialize)]
struct ServiceDetail {
    name: String,
    revision: u64,
    instances: HealthCounts,
    depends_on: Vec<String>,
    dependents: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    self_preservation: Option<String>,
}

fn detail(name: String, v: ServiceView, now: i64) -> ServiceDetail {
    ServiceDetail {
        instances: counts(&v.instances, now),
        name,
        revision: v.revision,
        depends_on: v.depends_on,
        dependents: v.dependents,
        self_preservation: v.held_back,
    }
}

async fn service_detail(
    State(store): State<RegistryStore>,
    _auth: Authorized<scope::RegistryRead>,
    Path(service): Path<String>,
) -> Result<Json<ServiceDetail>, RegistryError> {
    let service = service_name(&service)?;
    let v = store
        .view(service.as_str())
        .await?
        .ok_or_else(|| RegistryError::ServiceNotFound(service.as_str().into()))?;
    Ok(Json(detail(service.as_str().to_owned(), v, now_ms())))
}

#[derive(Debug, Serialize)]
struct ServiceList {
    services: Vec<ServiceDetail>,
}

async fn list_services(
    State(store): State<RegistryStore>,
    _auth: Authorized<scope::RegistryRead>,
) -> Result<Json<ServiceList>, RegistryError> {
    let now = now_ms();
    let mut services = Vec::new();
    for summary in store.services().await? {
        if let Some(v) = store.view(&summary.name).await? {
            services.push(detail(summary.name, v, now));
        }
    }
    Ok(Json(ServiceList { services }))
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let problem = match self {
            RegistryError::Invalid(errors) => Problem::validation(errors),
            e @ RegistryError::LeaseGone { .. } => {
                Problem::new(StatusCode::NOT_FOUND, "lease-gone", "Lease gone")
                    .detail(format!("{e}; register the instance again"))
            }
            e @ RegistryError::ServiceNotFound(_) => Problem::new(
                StatusCode::NOT_FOUND,
                "service-not-found",
                "Service not found",
            )
            .detail(e.to_string()),
            e @ RegistryError::NoHealthyInstance(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-healthy-instance",
                "No healthy instance",
            )
            .detail(e.to_string())
            .header(header::RETRY_AFTER, HeaderValue::from_static("5")),
            RegistryError::Store(e) => e.into(),
        };
        problem.into_response()
    }
}
