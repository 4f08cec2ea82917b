//! The scaler HTTP API: an axum `Router` behind API Gateway.

use aloft_shared::auth::{Authorized, scope};
use aloft_shared::cursor::{CursorCodec, Page, PageQuery, parse_limit};
use aloft_shared::extract::{ApiJson, ApiQuery};
use aloft_shared::{Problem, clock};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::domain::parse::PolicyRequest;
use crate::domain::{Decision, ScalerError, ScalingPolicy, ServiceName};
use crate::store::ServiceScaling;
use crate::tick::{Evaluator, now_ms};

#[derive(Clone)]
pub struct Api {
    pub evaluator: Evaluator,
    pub cursors: CursorCodec,
}

pub fn router(api: Api) -> Router {
    Router::new()
        .route(
            "/services/{service}/scaling-policy",
            get(get_policy).put(put_policy).delete(delete_policy),
        )
        .route("/services/{service}/scaling", get(scaling))
        .route("/services/{service}/scaling/decisions", get(decisions))
        .route("/services/{service}/scaling/evaluate", post(evaluate))
        .route_layer(axum::middleware::from_fn(
            aloft_shared::extract::bounded_path_params,
        ))
        .with_state(api)
}

#[derive(Serialize)]
struct PolicyView {
    service: String,
    policy: ScalingPolicy,
}

#[derive(Serialize)]
struct ScalingView {
    service: String,
    current: u32,
    desired: Option<u32>,
    last_decision: Option<Decision>,
    policy: ScalingPolicy,
}

async fn put_policy(
    State(api): State<Api>,
    _auth: Authorized<scope::ScalerWrite>,
    Path(service): Path<String>,
    ApiJson(req): ApiJson<PolicyRequest>,
) -> Result<Json<PolicyView>, ScalerError> {
    // Every bad field in one answer: the path's service name and the body's.
    let (service, policy) = match (ServiceName::from_path(&service), ScalingPolicy::parse(&req)) {
        (Ok(s), Ok(p)) => (s, p),
        (s, p) => {
            let errors = s.err().into_iter().chain(p.err().into_iter().flatten());
            return Err(ScalerError::Invalid(errors.collect()));
        }
    };
    let now = clock::rfc3339(clock::now());
    api.evaluator
        .store
        .put_policy(service.as_str(), &policy, &now)
        .await?;
    Ok(Json(PolicyView {
        service: service.as_str().to_owned(),
        policy,
    }))
}

async fn get_policy(
    State(api): State<Api>,
    _auth: Authorized<scope::ScalerRead>,
    Path(service): Path<String>,
) -> Result<Json<PolicyView>, ScalerError> {
    let item = load(&api, &service).await?;
    Ok(Json(PolicyView {
        service: item.service,
        policy: item.policy,
    }))
}

async fn delete_policy(
    State(api): State<Api>,
    _auth: Authorized<scope::ScalerWrite>,
    Path(service): Path<String>,
) -> Result<StatusCode, ScalerError> {
    let service = ServiceName::from_path(&service)?;
    if api.evaluator.store.delete_policy(service.as_str()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ScalerError::NoPolicy(service.as_str().to_owned()))
    }
}

async fn scaling(
    State(api): State<Api>,
    _auth: Authorized<scope::ScalerRead>,
    Path(service): Path<String>,
) -> Result<Json<ScalingView>, ScalerError> {
    let item = load(&api, &service).await?;
    let current = api.evaluator.current(&item.service, now_ms()).await?;
    Ok(Json(ScalingView {
        service: item.service,
        current,
        desired: item.state.desired,
        last_decision: item.state.last_decision,
        policy: item.policy,
    }))
}

async fn decisions(
    State(api): State<Api>,
    _auth: Authorized<scope::ScalerRead>,
    Path(service): Path<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<Decision>>, ScalerError> {
    let service = ServiceName::from_path(&service)?;
    let limit = parse_limit(page.limit.as_deref())?;
    let page = api
        .evaluator
        .store
        .decisions(
            &api.cursors,
            service.as_str(),
            limit,
            page.cursor.as_deref(),
        )
        .await?;
    Ok(Json(page))
}

/// The decision the tick would make now; nothing is recorded or acted on.
async fn evaluate(
    State(api): State<Api>,
    _auth: Authorized<scope::ScalerRead>,
    Path(service): Path<String>,
) -> Result<Json<Decision>, ScalerError> {
    let item = load(&api, &service).await?;
    Ok(Json(api.evaluator.dry_run(&item, now_ms()).await?))
}

async fn load(api: &Api, service: &str) -> Result<ServiceScaling, ScalerError> {
    let service = ServiceName::from_path(service)?;
    api.evaluator
        .store
        .get(service.as_str())
        .await?
        .ok_or_else(|| ScalerError::NoPolicy(service.as_str().to_owned()))
}

impl IntoResponse for ScalerError {
    fn into_response(self) -> Response {
        let problem = match self {
            ScalerError::Invalid(errors) => Problem::validation(errors),
            ScalerError::NoPolicy(service) => Problem::new(
                StatusCode::NOT_FOUND,
                "scaling-policy-not-found",
                "Scaling policy not found",
            )
            .detail(format!(
                "service {service} has no scaling policy; PUT /services/{service}/scaling-policy to create one"
            )),
            ScalerError::InvalidCursor(e) => e.into(),
            ScalerError::Store(e) => e.into(),
            ScalerError::Metrics(e) => {
                tracing::error!(error = %e, "metrics unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "metrics-unavailable",
                    "Metrics unavailable",
                )
                .detail("CloudWatch could not be read; try again shortly")
            }
        };
        problem.into_response()
    }
}
