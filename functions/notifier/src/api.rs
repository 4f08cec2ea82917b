//! The webhooks HTTP API: an axum `Router` behind API Gateway.

use aloft_shared::auth::{Authorized, scope};
use aloft_shared::cursor::{Page, PageQuery, parse_limit};
use aloft_shared::dynamo::StoreError;
use aloft_shared::extract::{ApiJson, ApiQuery};
use aloft_shared::master_key::{DerivedKey, LazyKey};
use aloft_shared::{FieldError, Problem, clock};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::domain::{
    Attempt, CreateWebhookRequest, DeliveriesQuery, Delivery, DeliveryStatus, EventTypeFilter,
    NewSubscription, ROTATION_OVERLAP_SECS, ReplayRequest, Subscription, SubscriptionPatch,
    UpdateWebhookRequest, WebhookError, unix_to_rfc3339,
};
use crate::on_demand::ReplayView;
use crate::queue::DeliveryQueue;
use crate::settings::Settings;
use crate::signing::SigningSecret;
use crate::store::{StoredDelivery, WebhookStore};

/// What the handlers share, built once per cold start.
#[derive(Debug, Clone)]
pub struct Webhooks {
    pub store: WebhookStore,
    pub queue: DeliveryQueue,
    /// Derived on first use (a create or a rotation), so a cold start reads no secret.
    pub signing_key: LazyKey,
    pub settings: Settings,
}

pub fn router(state: Webhooks) -> Router {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(fetch).patch(update).delete(remove))
        .route("/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/webhooks/{id}/test", post(send_test))
        .route("/webhooks/{id}/deliveries", get(deliveries))
        .route("/webhooks/{id}/deliveries/{delivery_id}", get(delivery))
        .route("/webhooks/{id}/deliveries/{delivery_id}/retry", post(retry))
        .route("/webhooks/{id}/replay", post(replay))
        .route_layer(axum::middleware::from_fn(
            aloft_shared::extract::bounded_path_params,
        ))
        .with_state(state)
}

/// A subscription as shown: never its secret.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionView {
    pub id: String,
    pub url: String,
    pub event_types: Vec<EventTypeFilter>,
    pub description: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<String>,
    pub previous_secret_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Subscription> for SubscriptionView {
    fn from(s: Subscription) -> Self {
        Self {
            id: s.id,
            url: s.url.into(),
            event_types: s.event_types,
            description: s.description,
            enabled: s.enabled,
            disabled_reason: s.disabled_reason,
            failing_since: s.failing_since,
            previous_secret_expires_at: s.previous_expires_at,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// The answer to a create or a rotation: the only time the secret is shown.
#[derive(Debug, Serialize)]
struct WithSecret {
    #[serde(flatten)]
    webhook: SubscriptionView,
    secret: String,
}

#[derive(Debug, Serialize)]
pub struct DeliveryView {
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub created_at: String,
    pub updated_at: String,
    pub next_attempt_at: Option<String>,
    pub attempts: Vec<Attempt>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            webhook_id: d.subscription_id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            created_at: d.created_at,
            updated_at: d.updated_at,
            next_attempt_at: d.next_attempt_at,
            attempts: d.attempts,
        }
    }
}

impl Webhooks {
    /// The signing key, read before the write that will show a secret, so a key that
    /// cannot be read fails the request with nothing changed.
    async fn signing_key(&self) -> Result<&DerivedKey, WebhookError> {
        self.signing_key
            .get()
            .await
            .map_err(|e| StoreError::new("reading the webhook signing key", e).into())
    }

    fn secret(key: &DerivedKey, sub: &Subscription) -> String {
        SigningSecret::derive(key, &sub.id, sub.secret_generation).expose()
    }

    async fn subscription(&self, id: &str) -> Result<Subscription, WebhookError> {
        self.store
            .get_subscription(id)
            .await?
            .ok_or_else(|| WebhookError::NotFound(id.to_owned()))
    }

    /// The subscription, refused as disabled for anything that would send to it.
    async fn enabled_subscription(&self, id: &str) -> Result<Subscription, WebhookError> {
        let sub = self.subscription(id).await?;
        if !sub.enabled {
            return Err(WebhookError::Disabled(id.to_owned()));
        }
        Ok(sub)
    }

    async fn delivery_of(
        &self,
        id: &str,
        delivery_id: &str,
    ) -> Result<StoredDelivery, WebhookError> {
        match self.store.get_delivery(delivery_id).await? {
            Some(d) if d.delivery.subscription_id == id => Ok(d),
            _ => Err(WebhookError::DeliveryNotFound(delivery_id.to_owned())),
        }
    }
}

async fn create(
    State(app): State<Webhooks>,
    _auth: Authorized<scope::WebhooksWrite>,
    ApiJson(req): ApiJson<CreateWebhookRequest>,
) -> Result<Response, WebhookError> {
    let new = NewSubscription::parse(&req, app.settings.policy).map_err(WebhookError::Invalid)?;
    let sub = Subscription::create(
        uuid::Uuid::new_v4().to_string(),
        new,
        &clock::rfc3339(clock::now()),
    );
    let key = app.signing_key().await?;
    app.store.create_subscription(&sub).await?;
    let secret = Webhooks::secret(key, &sub);
    let location = format!("/webhooks/{}", sub.id);
    let body = WithSecret {
        webhook: sub.into(),
        secret,
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

async fn list(
    State(app): State<Webhooks>,
    _auth: Authorized<scope::WebhooksRead>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<SubscriptionView>>, WebhookError> {
    let limit = parse_limit(q.limit.as_deref()).map_err(|e| WebhookError::Invalid(vec![e]))?;
    let page = app
        .store
        .list_subscriptions(limit, q.cursor.as_deref())
        .await?;
    Ok(Json(page.map(SubscriptionView::from)))
}

async fn fetch(
    State(app): State<Webhooks>,
    _auth: Authorized<scope::WebhooksRead>,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionView>, WebhookError> {
    Ok(Json(app.subscription(&id).await?.into()))
}

async fn update(
    State(app): State<Webhooks>,
    _auth: Authorized<scope::WebhooksWrite>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateWebhookRequest>,
) -> Result<Json<SubscriptionView>, WebhookError> {
    let patch =
        SubscriptionPatch::parse(&req, app.settings.policy).map_err(WebhookError::Invalid)?;
    let sub = app
        .store
        .update_subscription(&id, &patch, &clock::rfc3339(clock::now()))
        .await?
        .ok_or(WebhookError::NotFound(id))?;
    Ok(Json(sub.into()))
}

async fn remove(
    State(app): State<Webhooks>,
    _auth: Authorized<scope::WebhooksWrite>,
    Path(id): Path<String>,
) -> Result<StatusCode, WebhookError> {
    if !app.store.delete_subscription(&id).await? {
        return Err(WebhookError::NotFound(id));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_secret(
    State(app): State<Webhooks>,
    _auth: Authorized<scope::WebhooksWrite>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, WebhookError> {
    let key = app.signing_key().await?;
    let now = clock::now();
    let expires = unix_to_rfc3339(now.unix_timestamp() + ROTATION_OVERLAP_SECS);
    let sub = app
        .store
        .rotate_secret(&id, &clock::rfc3339(now), &expires)
        .await?
        .ok_or(WebhookError::NotFound(id))?;
    Ok(Json(serde_json::json!({
        "secret": Webhooks::secret(key, &sub),
        "previous_secret_expires_at": sub.previous_expires_at,
    })))
}

async fn send_test(
    State(app): State<Webhooks>,
    _auth: Authorized<scope::WebhooksWrite>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryView>), WebhookError> {
    let sub = app.enabled_subscription(&id).await?;
    let delivery = app.send_test(&sub).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery.into())))
}

async fn deliveries(
    State(app): State<Webhooks>,
    _auth: Authorized<scope::WebhooksRead>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Json<Page<DeliveryView>>, WebhookError> {
    let status = q.status.as_deref().map(DeliveryStatus::parse).transpose();
    let limit = parse_limit(q.limit.as_deref());
    let (status, limit) = match (status, limit) {
        (Ok(s), Ok(l)) => (s, l),
        (s, l) => {
            let errors: Vec<FieldError> = s.err().into_iter().chain(l.err()).collect();
            return Err(WebhookError::Invalid(errors));
        }
    };
    app.subscription(&id).await?;
    let page = app
        .store
        .list_deliveries(&id, status, limit, q.cursor.as_deref())
        .await?;
    Ok(Json(page.map(DeliveryView::from)))
}

async fn delivery(
    State(app): State<Webhooks>,
    _auth: Authorized<scope::WebhooksRead>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Json<DeliveryView>, WebhookError> {
    Ok(Json(
        app.delivery_of(&id, &delivery_id).await?.delivery.into(),
    ))
}

async fn retry(
    State(app): State<Webhooks>,
    _auth: Authorized<scope::WebhooksWrite>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<DeliveryView>), WebhookError> {
    app.enabled_subscription(&id).await?;
    let stored = app.delivery_of(&id, &delivery_id).await?;
    let delivery = app.restart(stored).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery.into())))
}

async fn replay(
    State(app): State<Webhooks>,
    _auth: Authorized<scope::WebhooksWrite>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReplayRequest>,
) -> Result<(StatusCode, Json<ReplayView>), WebhookError> {
    let since = req.parse().map_err(WebhookError::Invalid)?;
    app.enabled_subscription(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(app.replay(&id, &since).await?)))
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let problem = match self {
            WebhookError::Invalid(errors) => Problem::validation(errors),
            e @ WebhookError::NotFound(_) => Problem::new(
                StatusCode::NOT_FOUND,
                "webhook-not-found",
                "Webhook not found",
            )
            .detail(e.to_string()),
            e @ WebhookError::DeliveryNotFound(_) => Problem::new(
                StatusCode::NOT_FOUND,
                "delivery-not-found",
                "Delivery not found",
            )
            .detail(e.to_string()),
            e @ WebhookError::DeliveryInProgress(_) => Problem::new(
                StatusCode::CONFLICT,
                "delivery-in-progress",
                "Delivery in progress",
            )
            .detail(e.to_string()),
            e @ WebhookError::Disabled(_) => {
                Problem::new(StatusCode::CONFLICT, "webhook-disabled", "Webhook disabled")
                    .detail(e.to_string())
            }
            WebhookError::InvalidCursor(e) => e.into(),
            WebhookError::Store(e) => e.into(),
        };
        problem.into_response()
    }
}
