//! The keys HTTP API: issue, list and revoke API keys (scope `admin`), and the
//! unauthenticated health check.

use aloft_shared::auth::{Authorized, NewApiKey, scope};
use aloft_shared::cursor::{Page, PageQuery, parse_limit};
use aloft_shared::extract::{ApiJson, ApiQuery};
use aloft_shared::{Problem, clock};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Serialize;

use crate::domain::{ApiKey, CreateKeyRequest, NewKey};
use crate::store::{KeyStore, KeyStoreError};

pub fn router(store: KeyStore) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/keys", get(list).post(create))
        .route("/keys/{id}", delete(revoke))
        .route_layer(axum::middleware::from_fn(
            aloft_shared::extract::bounded_path_params,
        ))
        .with_state(store)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// The one response that carries the secret.
#[derive(Debug, Serialize)]
struct IssuedKey {
    #[serde(flatten)]
    key: ApiKey,
    /// Shown once; only its hash is stored.
    secret: String,
}

async fn create(
    State(store): State<KeyStore>,
    auth: Authorized<scope::Admin>,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> Result<Response, Problem> {
    let new = NewKey::parse(&req).map_err(Problem::validation)?;
    let minted = NewApiKey::generate();
    let key = ApiKey::new(
        minted.key_id.clone(),
        &new,
        clock::rfc3339(clock::now()),
        auth.key_id().to_owned(),
    );
    store.create(&key, &minted.token_hash).await?;
    tracing::info!(key_id = %key.id, scopes = %new.scopes, "API key issued");
    let location = format!("/keys/{}", key.id);
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        Json(IssuedKey {
            key,
            secret: minted.token,
        }),
    )
        .into_response())
}

async fn list(
    State(store): State<KeyStore>,
    _auth: Authorized<scope::Admin>,
    ApiQuery(params): ApiQuery<PageQuery>,
) -> Result<Json<Page<ApiKey>>, Problem> {
    let limit = parse_limit(params.limit.as_deref()).map_err(|e| Problem::validation(vec![e]))?;
    Ok(Json(store.list(limit, params.cursor.as_deref()).await?))
}

async fn revoke(
    State(store): State<KeyStore>,
    auth: Authorized<scope::Admin>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let key = store.revoke(&id, &clock::rfc3339(clock::now())).await?;
    tracing::info!(key_id = %key.id, revoked_by = %auth.key_id(), "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

impl From<KeyStoreError> for Problem {
    fn from(e: KeyStoreError) -> Self {
        match e {
            KeyStoreError::NotFound(id) => {
                Problem::new(StatusCode::NOT_FOUND, "key-not-found", "API key not found")
                    .detail(format!("no API key with id {id}"))
            }
            KeyStoreError::InvalidCursor(e) => e.into(),
            KeyStoreError::Store(e) => e.into(),
        }
    }
}
