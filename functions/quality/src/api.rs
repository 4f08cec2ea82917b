//! The quality HTTP API: objectives, quality attributes, alerts, history and silences.

use aloft_shared::auth::{Authorized, scope};
use aloft_shared::cursor::{Page, PageQuery, parse_limit};
use aloft_shared::extract::{ApiJson, ApiQuery};
use aloft_shared::{FieldError, Problem, clock};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};

use crate::domain::attributes::QualityAttributes;
use crate::domain::objective::ObjectiveRequest;
use crate::domain::silence::SilenceRequest;
use crate::domain::{
    Alert, AlertFilter, AlertsQuery, HistoryEntry, Objective, QualityError, ServiceName, Silence,
};
use crate::metrics::Metrics;
use crate::store::{QualityStore, Upsert};
use crate::view::{self, ObjectiveView, QualityView};

#[derive(Clone)]
pub struct AppState {
    pub store: QualityStore,
    pub metrics: Metrics,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/services/{service}/quality", get(quality))
        .route(
            "/services/{service}/quality-attributes",
            get(get_attributes).put(put_attributes),
        )
        .route("/services/{service}/objectives", get(list_objectives))
        .route(
            "/services/{service}/objectives/{name}",
            get(get_objective)
                .put(put_objective)
                .delete(delete_objective),
        )
        .route(
            "/services/{service}/objectives/{name}/history",
            get(history),
        )
        .route("/alerts", get(alerts))
        .route("/silences", get(list_silences).post(create_silence))
        .route("/silences/{id}", delete(delete_silence))
        .route_layer(axum::middleware::from_fn(
            aloft_shared::extract::bounded_path_params,
        ))
        .with_state(state)
}

fn service(raw: &str) -> Result<ServiceName, QualityError> {
    ServiceName::parse(raw).map_err(|m| QualityError::Invalid(vec![FieldError::new("service", m)]))
}

fn limit(raw: Option<&str>) -> Result<i32, QualityError> {
    parse_limit(raw).map_err(|e| QualityError::Invalid(vec![e]))
}

async fn put_objective(
    State(s): State<AppState>,
    _auth: Authorized<scope::QualityWrite>,
    Path((svc, name)): Path<(String, String)>,
    ApiJson(req): ApiJson<ObjectiveRequest>,
) -> Result<Response, QualityError> {
    let objective = Objective::parse(&svc, &name, &req).map_err(QualityError::Invalid)?;
    let now = clock::now();
    let (upsert, stored) = s
        .store
        .put_objective(&objective, &clock::rfc3339(now), now.unix_timestamp())
        .await?;
    let status = if upsert == Upsert::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/services/{svc}/objectives/{name}");
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(ObjectiveView::from(stored)),
    )
        .into_response())
}

async fn get_objective(
    State(s): State<AppState>,
    _auth: Authorized<scope::QualityRead>,
    Path((svc, name)): Path<(String, String)>,
) -> Result<Json<ObjectiveView>, QualityError> {
    let found = s.store.get(&svc, &name).await?;
    let o = found.ok_or(QualityError::ObjectiveNotFound { service: svc, name })?;
    Ok(Json(o.into()))
}

async fn delete_objective(
    State(s): State<AppState>,
    _auth: Authorized<scope::QualityWrite>,
    Path((svc, name)): Path<(String, String)>,
) -> Result<StatusCode, QualityError> {
    s.store
        .delete_objective(&svc, &name, &clock::rfc3339(clock::now()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_objectives(
    State(s): State<AppState>,
    _auth: Authorized<scope::QualityRead>,
    Path(svc): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<ObjectiveView>>, QualityError> {
    let svc = service(&svc)?;
    let page = s
        .store
        .objectives(
            svc.as_str(),
            limit(q.limit.as_deref())?,
            q.cursor.as_deref(),
        )
        .await?;
    Ok(Json(page.map(Into::into)))
}

async fn history(
    State(s): State<AppState>,
    _auth: Authorized<scope::QualityRead>,
    Path((svc, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<HistoryEntry>>, QualityError> {
    let page = s
        .store
        .history(&svc, &name, limit(q.limit.as_deref())?, q.cursor.as_deref())
        .await?;
    // An objective that never existed has no history; a deleted one keeps it.
    if page.items.is_empty() && q.cursor.is_none() && s.store.get(&svc, &name).await?.is_none() {
        return Err(QualityError::ObjectiveNotFound { service: svc, name });
    }
    Ok(Json(page))
}

async fn alerts(
    State(s): State<AppState>,
    _auth: Authorized<scope::QualityRead>,
    ApiQuery(q): ApiQuery<AlertsQuery>,
) -> Result<Json<Page<Alert>>, QualityError> {
    let filter = AlertFilter::parse(&q).map_err(QualityError::Invalid)?;
    Ok(Json(
        s.store
            .alerts(filter, limit(q.limit.as_deref())?, q.cursor.as_deref())
            .await?,
    ))
}

async fn create_silence(
    State(s): State<AppState>,
    auth: Authorized<scope::QualityWrite>,
    ApiJson(req): ApiJson<SilenceRequest>,
) -> Result<Response, QualityError> {
    let id = uuid::Uuid::new_v4().to_string();
    let silence =
        Silence::parse(&req, id, clock::now(), auth.key_id()).map_err(QualityError::Invalid)?;
    s.store.put_silence(&silence).await?;
    let location = format!("/silences/{}", silence.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(silence),
    )
        .into_response())
}

async fn list_silences(
    State(s): State<AppState>,
    _auth: Authorized<scope::QualityRead>,
) -> Result<Json<Page<Silence>>, QualityError> {
    let now = clock::now();
    let items = s
        .store
        .silences()
        .await?
        .into_iter()
        .filter(|x| x.is_active(now))
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

async fn delete_silence(
    State(s): State<AppState>,
    _auth: Authorized<scope::QualityWrite>,
    Path(id): Path<String>,
) -> Result<StatusCode, QualityError> {
    s.store.delete_silence(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_attributes(
    State(s): State<AppState>,
    _auth: Authorized<scope::QualityWrite>,
    Path(svc): Path<String>,
    ApiJson(attrs): ApiJson<QualityAttributes>,
) -> Result<Json<serde_json::Value>, QualityError> {
    let svc = service(&svc)?;
    let plan = attrs.plan(svc.as_str()).map_err(QualityError::Invalid)?;
    let now = clock::now();
    s.store
        .put_attributes(
            svc.as_str(),
            &attrs,
            &plan.objectives,
            &clock::rfc3339(now),
            now.unix_timestamp(),
        )
        .await?;
    let objectives: Vec<_> = plan.objectives.iter().map(|o| o.name.as_str()).collect();
    Ok(Json(serde_json::json!({
        "service": svc, "attributes": attrs, "measured": plan.measured,
        "not_measured": plan.not_measured, "objectives": objectives,
    })))
}

async fn get_attributes(
    State(s): State<AppState>,
    _auth: Authorized<scope::QualityRead>,
    Path(svc): Path<String>,
) -> Result<Json<serde_json::Value>, QualityError> {
    let (attrs, updated_at) = s
        .store
        .attributes(&svc)
        .await?
        .ok_or(QualityError::AttributesNotFound(svc.clone()))?;
    let plan = attrs.plan(&svc).map_err(QualityError::Invalid)?;
    Ok(Json(serde_json::json!({
        "service": svc, "attributes": attrs, "measured": plan.measured,
        "not_measured": plan.not_measured, "updated_at": updated_at,
    })))
}

async fn quality(
    State(s): State<AppState>,
    _auth: Authorized<scope::QualityRead>,
    Path(svc): Path<String>,
) -> Result<Json<QualityView>, QualityError> {
    let svc = service(&svc)?;
    Ok(Json(
        view::quality(&s.store, &s.metrics, &svc, clock::now()).await?,
    ))
}

impl IntoResponse for QualityError {
    fn into_response(self) -> Response {
        let problem = match self {
            QualityError::Invalid(errors) => Problem::validation(errors),
            e @ QualityError::ObjectiveNotFound { .. } => Problem::new(
                StatusCode::NOT_FOUND,
                "objective-not-found",
                "Objective not found",
            )
            .detail(e.to_string()),
            e @ QualityError::SilenceNotFound(_) => Problem::new(
                StatusCode::NOT_FOUND,
                "silence-not-found",
                "Silence not found",
            )
            .detail(e.to_string()),
            e @ QualityError::AttributesNotFound(_) => Problem::new(
                StatusCode::NOT_FOUND,
                "quality-attributes-not-found",
                "Quality attributes not found",
            )
            .detail(format!("{e}; PUT them first")),
            QualityError::InvalidCursor(e) => e.into(),
            QualityError::Store(e) => e.into(),
        };
        problem.into_response()
    }
}
