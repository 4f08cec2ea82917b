//! The registry HTTP API: an axum `Router` behind API Gateway.

use aloft_shared::auth::{Authorized, scope};
use aloft_shared::extract::{ApiJson, ApiQuery};
use aloft_shared::metrics::{MetricRecord, Unit};
use aloft_shared::{Problem, clock};
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;

use crate::domain::{
    HealthChecksAllow, HealthStatus, HeartbeatRequest, Instance, Load, Object, QueryError,
    RegisterRequest, Registration, RegistryError, ServiceName, discovery_etag,
    parse_discovery_query, parse_instance_id, parse_resolve_query, resolve,
};
use crate::store::{RegistryStore, ServiceView};

/// Query strings through the shared extractor (an unreadable one is a 400 problem); the
/// pairs keep repeated `tag`s and `meta.KEY`s for `domain` to judge.
type Pairs = ApiQuery<Vec<(String, String)>>;

/// What the handlers share: the store, and which address kinds health checks may reach
/// in this deployment (`REGISTRY_HEALTH_CHECKS_ALLOW`).
#[derive(Debug, Clone)]
pub struct ApiState {
    pub store: RegistryStore,
    pub checks: HealthChecksAllow,
}

impl FromRef<ApiState> for RegistryStore {
    fn from_ref(s: &ApiState) -> Self {
        s.store.clone()
    }
}

pub fn router(store: RegistryStore, checks: HealthChecksAllow) -> Router {
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
        .with_state(ApiState { store, checks })
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
    ServiceName::from_path(raw).map_err(|e| RegistryError::Invalid(vec![e]))
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
        status: i.effective_status(now),
        load: i.load,
        lease_expires_at: ms_to_rfc3339(i.lease_expires_at_ms),
        check: i.check.as_ref(),
    }
}

async fn register(
    State(api): State<ApiState>,
    _auth: Authorized<scope::RegistryWrite>,
    Path(service): Path<String>,
    ApiJson(Object(req)): ApiJson<Object<RegisterRequest>>,
) -> Result<Response, RegistryError> {
    let service = service_name(&service)?;
    let reg = Registration::parse(&service, req, api.checks.0).map_err(RegistryError::Invalid)?;
    let store = api.store;
    let id = reg
        .instance_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let instance = Instance::register(service, id, &reg, now_ms());
    let created = store.register(&instance, reg.depends_on.as_deref()).await?;
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
    ApiJson(Object(req)): ApiJson<Object<HeartbeatRequest>>,
) -> Result<Json<LeaseView>, RegistryError> {
    let service = service_name(&service)?;
    let id = parse_instance_id(&id)?;
    let load = req.load().map_err(RegistryError::Invalid)?;
    let instance = store
        .heartbeat(service.as_str(), &id, req.status, load, now_ms())
        .await?;
    if let Some(load) = load {
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
    let id = parse_instance_id(&id)?;
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
    ApiQuery(pairs): Pairs,
    headers: HeaderMap,
) -> Result<Response, RegistryError> {
    let service = service_name(&service)?;
    let (filter, fail_open) = parse_discovery_query(&pairs).map_err(RegistryError::Query)?;
    let state = store.view(service.as_str()).await?.unwrap_or_default();
    let now = now_ms();
    let (chosen, fell_back) = filter.select(&state.instances, now, fail_open);
    // The ETag covers membership and health, not leases or load: under steady
    // heartbeats a revalidating client gets its 304.
    let etag = discovery_etag(state.revision, fell_back, &chosen, now);
    let body = DiscoveryView {
        instances: chosen.into_iter().map(|i| view(i, now)).collect(),
        revision: state.revision,
        fail_open: fell_back,
    };
    let json = serde_json::to_vec(&body)
        .map_err(|e| aloft_shared::dynamo::StoreError::new("discovery body", e))?;
    Ok(tagged_json(&etag, json, &headers))
}

/// `json` with its `ETag`, or a bodiless 304 when the request's `If-None-Match` already
/// names that tag.
fn tagged_json(etag: &str, json: Vec<u8>, headers: &HeaderMap) -> Response {
    let tag = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if if_none_match.is_some_and(|v| names_tag(v, etag)) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response();
    }
    let json_type = HeaderValue::from_static("application/json");
    (
        [(header::ETAG, tag), (header::CONTENT_TYPE, json_type)],
        json,
    )
        .into_response()
}

/// Whether an `If-None-Match` list names `etag`, weakly compared; `*` matches any current
/// representation (RFC 9110 §13.1.2).
fn names_tag(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

async fn resolve_one(
    State(store): State<RegistryStore>,
    _auth: Authorized<scope::RegistryRead>,
    Path(service): Path<String>,
    ApiQuery(pairs): Pairs,
) -> Result<Response, RegistryError> {
    let service = service_name(&service)?;
    let (strategy, filter) = parse_resolve_query(&pairs).map_err(RegistryError::Query)?;
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
        match i.effective_status(now) {
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
    for name in store.services().await? {
        if let Some(v) = store.view(&name).await? {
            services.push(detail(name, v, now));
        }
    }
    Ok(Json(ServiceList { services }))
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let problem = match self {
            RegistryError::Invalid(errors) => Problem::validation(errors),
            RegistryError::Query(QueryError::Invalid(errors)) => Problem::validation(errors),
            RegistryError::Query(e) => {
                let name = e.parameter().unwrap_or_default().to_owned();
                Problem::bad_request("invalid-query", e.to_string()).with_errors(vec![
                    aloft_shared::FieldError::new(name, "is not accepted here"),
                ])
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_names_a_tag_weakly_in_a_list_or_by_star() {
        let tag = "\"r7-a1b2\"";
        assert!(names_tag("\"r7-a1b2\"", tag));
        assert!(names_tag("W/\"r7-a1b2\"", tag));
        assert!(names_tag("\"old\", W/\"r7-a1b2\"", tag));
        assert!(names_tag("*", tag));
        assert!(!names_tag("\"r6-a1b2\"", tag));
        assert!(!names_tag("", tag));
    }

    #[test]
    fn a_named_tag_is_a_bodiless_304_and_any_other_the_tagged_json() {
        let tag = "\"r7\"";
        let mut headers = HeaderMap::new();
        let fresh = tagged_json(tag, b"{}".to_vec(), &headers);
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(fresh.headers()[header::ETAG], tag);
        assert_eq!(fresh.headers()[header::CONTENT_TYPE], "application/json");

        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"r7\""));
        let same = tagged_json(tag, b"{}".to_vec(), &headers);
        assert_eq!(same.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(same.headers()[header::ETAG], tag);
        assert!(same.headers().get(header::CONTENT_TYPE).is_none());
    }
}
