//! The users HTTP API: an axum `Router` behind API Gateway.

use aloft_shared::auth::{Authorized, scope};
use aloft_shared::cursor::{Page, PageQuery, parse_limit};
use aloft_shared::extract::{ApiJson, ApiQuery};
use aloft_shared::{FieldError, Problem, clock};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::domain::{
    AuditEntry, CreateUserRequest, NewUser, SearchFilter, SearchParams, UpdateUserRequest, User,
    UserError, UserPatch, etag, parse_if_match,
};
use crate::store::UserStore;

pub fn router(store: UserStore) -> Router {
    Router::new()
        .route("/users", get(search).post(create))
        .route("/users/{id}", get(fetch).patch(update).delete(remove))
        .route("/users/{id}/audit", get(audit))
        .route_layer(axum::middleware::from_fn(
            aloft_shared::extract::bounded_path_params,
        ))
        .with_state(store)
}

async fn create(
    State(store): State<UserStore>,
    auth: Authorized<scope::UsersWrite>,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<Response, UserError> {
    let new = NewUser::parse(&req).map_err(UserError::Invalid)?;
    let user = User::create(
        uuid::Uuid::new_v4().to_string(),
        new,
        &clock::rfc3339(clock::now()),
    );
    store.create(&user, auth.key_id()).await?;
    let location = format!("/users/{}", user.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        with_etag(user),
    )
        .into_response())
}

async fn fetch(
    State(store): State<UserStore>,
    _auth: Authorized<scope::UsersRead>,
    Path(id): Path<String>,
) -> Result<Response, UserError> {
    let user = store.get(&id).await?.ok_or(UserError::NotFound(id))?;
    Ok(with_etag(user))
}

async fn update(
    State(store): State<UserStore>,
    auth: Authorized<scope::UsersWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> Result<Response, UserError> {
    let patch = UserPatch::parse(&req).map_err(UserError::Invalid)?;
    let expected = if_match(&headers)?;
    let current = store
        .get(&id)
        .await?
        .ok_or_else(|| UserError::NotFound(id.clone()))?;
    if let Some(expected) = expected.filter(|v| *v != current.version) {
        return Err(UserError::StaleVersion {
            expected,
            current: current.version,
        });
    }
    let (next, changes) = current.apply(&patch, &clock::rfc3339(clock::now()));
    if !changes.is_empty() {
        store
            .update(&current, &next, changes, auth.key_id())
            .await?;
    }
    Ok(with_etag(next))
}

async fn remove(
    State(store): State<UserStore>,
    auth: Authorized<scope::UsersWrite>,
    Path(id): Path<String>,
) -> Result<StatusCode, UserError> {
    store.delete(&id, auth.key_id()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn search(
    State(store): State<UserStore>,
    _auth: Authorized<scope::UsersRead>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<Page<User>>, UserError> {
    let filter = SearchFilter::parse(&params);
    let limit = parse_limit(params.limit.as_deref());
    let (filter, limit) = match (filter, limit) {
        (Ok(f), Ok(l)) => (f, l),
        (f, l) => {
            let errors = f.err().unwrap_or_default().into_iter().chain(l.err());
            return Err(UserError::Invalid(errors.collect()));
        }
    };
    Ok(Json(
        store
            .search(&filter, limit, params.cursor.as_deref())
            .await?,
    ))
}

async fn audit(
    State(store): State<UserStore>,
    _auth: Authorized<scope::UsersRead>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<PageQuery>,
) -> Result<Json<Page<AuditEntry>>, UserError> {
    let limit = parse_limit(params.limit.as_deref()).map_err(|e| UserError::Invalid(vec![e]))?;
    let page = store.audit(&id, limit, params.cursor.as_deref()).await?;
    // A user that never existed has no history; one that was deleted keeps it.
    if page.items.is_empty() && params.cursor.is_none() {
        return Err(UserError::NotFound(id));
    }
    Ok(Json(page))
}

/// The version `If-Match` names, or `None` for `*`: any current version (RFC 9110), so
/// the update still applies only to the version it read.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, UserError> {
    let raw = headers
        .get(header::IF_MATCH)
        .ok_or(UserError::PreconditionRequired)?;
    if raw.as_bytes().trim_ascii() == b"*" {
        return Ok(None);
    }
    raw.to_str()
        .ok()
        .and_then(parse_if_match)
        .map(Some)
        .ok_or_else(|| {
            UserError::Invalid(vec![FieldError::new(
                "If-Match",
                "must be the ETag of the user, e.g. \"3\"",
            )])
        })
}

fn with_etag(user: User) -> Response {
    let tag =
        HeaderValue::from_str(&etag(user.version)).unwrap_or(HeaderValue::from_static("\"0\""));
    ([(header::ETAG, tag)], Json(user)).into_response()
}

impl IntoResponse for UserError {
    fn into_response(self) -> Response {
        let problem = match self {
            UserError::Invalid(errors) => Problem::validation(errors),
            UserError::NotFound(id) => {
                Problem::new(StatusCode::NOT_FOUND, "user-not-found", "User not found").detail(format!("no user with id {id}"))
            }
            UserError::EmailTaken(email) => Problem::new(StatusCode::CONFLICT, "email-taken", "Email already taken")
                .detail(format!("another user already has the email {email} (emails are compared ignoring case)"))
                .with_errors(vec![FieldError::new("email", "is already taken")]),
            e @ UserError::StaleVersion { .. } => {
                Problem::new(StatusCode::PRECONDITION_FAILED, "stale-version", "Precondition failed")
                    .detail(format!("{e}; fetch the user again and retry with its ETag"))
            }
            UserError::PreconditionRequired => {
                Problem::new(StatusCode::PRECONDITION_REQUIRED, "precondition-required", "Precondition required")
                    .detail("send If-Match with the ETag from GET /users/{id}, so concurrent edits are not lost")
            }
            UserError::InvalidCursor(e) => e.into(),
            UserError::Store(e) => e.into(),
        };
        problem.into_response()
    }
}
