//! The payments HTTP API: an axum `Router` behind API Gateway. Each handler extracts,
//! calls the service ([`crate::service::Payments`]) and maps its outcome.

use std::sync::Arc;

use aloft_shared::auth::{Authorized, scope};
use aloft_shared::cursor::{Page, parse_limit};
use aloft_shared::extract::{ApiJson, ApiQuery, parse_json};
use aloft_shared::idempotency::{self, IdempotencyKey, StoredResponse};
use aloft_shared::{FieldError, Problem, clock};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::domain::{
    CreatePaymentRequest, MAX_USER_ID_CHARS, NewPayment, Payment, PaymentStatus, RefundRefused,
    RefundRequest,
};
use crate::processor::MethodListing;
use crate::service::{Caller, Idempotent, PaymentError, PaymentView, Payments, derived};
use crate::store::{PaymentStoreError, StoredPayment};

type Api = State<Arc<Payments>>;

pub fn router(payments: Payments) -> Router {
    Router::new()
        .route("/payment-methods", get(methods))
        .route("/payments", get(list).post(create))
        .route("/payments/{id}", get(fetch))
        .route("/payments/{id}/confirm", post(confirm))
        .route("/payments/{id}/cancel", post(cancel))
        .route("/payments/{id}/refunds", post(refund))
        .route_layer(axum::middleware::from_fn(
            aloft_shared::extract::bounded_path_params,
        ))
        .with_state(Arc::new(payments))
}

#[derive(Debug, Serialize)]
struct Methods {
    items: Vec<MethodListing>,
}

async fn methods(State(api): Api, _auth: Authorized<scope::PaymentsRead>) -> Json<Methods> {
    Json(Methods {
        items: api.processors.methods(),
    })
}

/// The caller of an idempotent write: its API key, `Idempotency-Key` and fingerprint.
async fn caller(
    api: &Payments,
    key_id: &str,
    headers: &HeaderMap,
    path: &str,
    body: &serde_json::Value,
) -> Result<Caller, Problem> {
    let idempotency_key = IdempotencyKey::from_headers(headers)?;
    let secret = derived(&api.idempotency_key).await?;
    Ok(Caller {
        key_id: key_id.to_owned(),
        idempotency_key,
        fingerprint: idempotency::fingerprint(secret, "POST", path, body),
    })
}

async fn create(
    State(api): Api,
    auth: Authorized<scope::PaymentsWrite>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, Problem> {
    let caller = caller(&api, auth.key_id(), &headers, "/payments", &body).await?;
    let req: CreatePaymentRequest = parse_json(body.to_string().as_bytes())?;
    let now = clock::now();
    let new =
        NewPayment::parse(req, (now.year(), u8::from(now.month()))).map_err(Problem::validation)?;
    Ok(idempotent(api.create(&caller, new).await?))
}

async fn refund(
    State(api): Api,
    auth: Authorized<scope::PaymentsWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, Problem> {
    let caller = caller(
        &api,
        auth.key_id(),
        &headers,
        &format!("/payments/{id}/refunds"),
        &body,
    )
    .await?;
    let req: RefundRequest = parse_json(body.to_string().as_bytes())?;
    Ok(idempotent(api.refund(&caller, &id, &req).await?))
}

/// A first answer (what a replay will send, without the replay marker) or the earlier
/// request's.
fn idempotent<T>(outcome: Idempotent<T>) -> Response {
    match outcome {
        Idempotent::Done(_, answer) => fresh(answer),
        Idempotent::Earlier(conflict) => conflict.into_response(),
    }
}

fn fresh(answer: StoredResponse) -> Response {
    let mut response = answer.into_replay();
    response.headers_mut().remove(idempotency::REPLAYED_HEADER);
    response
}

fn view(stored: &StoredPayment) -> Response {
    Json(PaymentView {
        payment: &stored.payment,
        refunds: &stored.refunds,
    })
    .into_response()
}

async fn fetch(
    State(api): Api,
    _auth: Authorized<scope::PaymentsRead>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let stored = api
        .store
        .get(&id)
        .await?
        .ok_or(PaymentError::NotFound(id))?;
    Ok(view(&stored))
}

async fn confirm(
    State(api): Api,
    _auth: Authorized<scope::PaymentsWrite>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    Ok(view(&api.confirm(&id).await?))
}

async fn cancel(
    State(api): Api,
    _auth: Authorized<scope::PaymentsWrite>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    Ok(view(&api.cancel(&id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    user_id: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

async fn list(
    State(api): Api,
    _auth: Authorized<scope::PaymentsRead>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Page<Payment>>, Problem> {
    let (user_id, status, limit) = list_query(&params)?;
    let page = api
        .store
        .list(user_id, status, limit, params.cursor.as_deref())
        .await?;
    Ok(Json(page))
}

/// `GET /payments` filters: the user (required), an optional status and the page size,
/// every bad one named.
fn list_query(params: &ListParams) -> Result<(&str, Option<PaymentStatus>, i32), Problem> {
    let mut errors = Vec::new();
    // Taken as sent (an id with spaces around it is another id, and finds nothing).
    let user_id = params.user_id.as_deref().filter(|u| !u.is_empty());
    match user_id {
        None => errors.push(FieldError::new(
            "user_id",
            "is required: payments are listed per user",
        )),
        Some(u) if u.chars().count() > MAX_USER_ID_CHARS => errors.push(FieldError::new(
            "user_id",
            format!("must be at most {MAX_USER_ID_CHARS} characters"),
        )),
        Some(_) => {}
    }
    let status = params.status.as_deref().and_then(|s| {
        let parsed = PaymentStatus::parse(s);
        if parsed.is_none() {
            let known: Vec<_> = PaymentStatus::ALL.iter().map(|s| s.as_str()).collect();
            errors.push(FieldError::new(
                "status",
                format!("must be one of {}", known.join(", ")),
            ));
        }
        parsed
    });
    let limit = parse_limit(params.limit.as_deref())
        .map_err(|e| errors.push(e))
        .ok();
    match (user_id, limit) {
        (Some(user_id), Some(limit)) if errors.is_empty() => Ok((user_id, status, limit)),
        _ => Err(Problem::validation(errors)),
    }
}

impl From<PaymentError> for Problem {
    fn from(e: PaymentError) -> Self {
        match e {
            PaymentError::Invalid(errors) => Problem::validation(errors),
            PaymentError::NotFound(id) => {
                Problem::new(StatusCode::NOT_FOUND, "payment-not-found", "Payment not found")
                    .detail(format!("no payment with id {id}"))
            }
            PaymentError::WrongState { action, status } => Problem::new(
                StatusCode::CONFLICT,
                "invalid-transition",
                "Not allowed in this state",
            )
            .detail(format!(
                "a {} payment cannot be {action}; only requires_action payments (or processing ones the processor has given a reference) can",
                status.as_str()
            )),
            PaymentError::Refused(r @ RefundRefused::ExceedsRemaining { .. }) => {
                Problem::validation(vec![FieldError::new("amount", r.to_string())])
            }
            PaymentError::Refused(r) => Problem::new(
                StatusCode::CONFLICT,
                "payment-not-refundable",
                "Payment not refundable",
            )
            .detail(r.to_string()),
            PaymentError::ProcessorUnavailable { action } => Problem::new(
                StatusCode::BAD_GATEWAY,
                "processor-error",
                "Processor error",
            )
            .detail(format!("the payment processor could not {action}; the payment is unchanged, try again"))
            .header(header::RETRY_AFTER, HeaderValue::from_static("5")),
            PaymentError::CancelRefused(message) => {
                Problem::new(StatusCode::CONFLICT, "cancel-refused", "Cancel refused")
                    .detail(format!("the processor refused to cancel: {message}"))
            }
            PaymentError::Changed => changed(),
            PaymentError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Problem::internal()
            }
            PaymentError::Store(e) => e.into(),
        }
    }
}

fn changed() -> Problem {
    Problem::new(StatusCode::CONFLICT, "payment-changed", "Payment changed")
        .detail("the payment changed while this request ran; fetch it and decide again")
        .header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

impl From<PaymentStoreError> for Problem {
    fn from(e: PaymentStoreError) -> Self {
        match e {
            PaymentStoreError::Changed | PaymentStoreError::RefundSettled => changed(),
            PaymentStoreError::UnknownUser => {
                Problem::validation(vec![FieldError::new("user_id", "no user with this id")])
            }
            PaymentStoreError::KeyTaken | PaymentStoreError::LockLost => Problem::new(
                StatusCode::CONFLICT,
                "idempotency-in-progress",
                "Request in progress",
            )
            .detail("another request with this Idempotency-Key holds it; retry later")
            .header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            PaymentStoreError::InvalidCursor(e) => e.into(),
            PaymentStoreError::Store(e) => e.into(),
        }
    }
}
