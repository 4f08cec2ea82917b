//! The payments HTTP API: an axum `Router` behind API Gateway.

use std::sync::Arc;

use aloft_shared::auth::{Authorized, scope};
use aloft_shared::cursor::{Page, parse_limit};
use aloft_shared::extract::{ApiJson, ApiQuery, parse_json};
use aloft_shared::idempotency::{self, IdempotencyKey, StoredResponse};
use aloft_shared::master_key::DerivedKey;
use aloft_shared::outbox::Envelope;
use aloft_shared::{FieldError, Problem, clock};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::domain::{
    CreatePaymentRequest, Money, NewPayment, Payment, PaymentFailure, PaymentStatus, Refund,
    RefundError, RefundRefused, RefundRequest, RefundStatus, refund_amount,
};
use crate::processor::{
    CancelOutcome, ChargeOutcome, ChargeRequest, Failure, MethodListing, NotSupported,
    ProcessorError, ProcessorRegistry, RefundOutcome,
};
use crate::store::{EVENT_SOURCE, PaymentStore, PaymentStoreError, StoredPayment};

const CREATE_OPERATION: &str = "payments.create";
const REFUND_OPERATION: &str = "payments.refund";
/// Optimistic reservation attempts when concurrent refunds race for one payment.
const RESERVE_ATTEMPTS: usize = 50;

pub struct PaymentsApi {
    pub store: PaymentStore,
    pub processors: ProcessorRegistry,
    /// Keys the card fingerprint (HMAC of the number), so the same card is recognisable
    /// without the number ever being stored.
    pub fingerprint_key: DerivedKey,
    /// Keys idempotency fingerprints and the keys passed to gateways.
    pub idempotency_key: DerivedKey,
}

type Api = State<Arc<PaymentsApi>>;

impl PaymentsApi {
    /// The key a gateway sees for a request: the same for every retry of one
    /// `Idempotency-Key` from one API key (so a retry after a lost answer cannot charge
    /// twice at the gateway), unique across API keys, and 64 characters whatever the
    /// caller sent.
    fn gateway_key(&self, caller: &str, operation: &str, key: &IdempotencyKey) -> String {
        gateway_key(&self.idempotency_key, caller, operation, key)
    }

    /// After an idempotency key turned out to be taken: what holds it, and the answer.
    async fn conflict(
        &self,
        caller: &str,
        operation: &str,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<aloft_shared::idempotency::Conflict, Problem> {
        Ok(self
            .store
            .idempotency
            .conflict(
                caller,
                operation,
                key,
                fingerprint,
                clock::now().unix_timestamp(),
            )
            .await?)
    }
}

pub fn router(api: PaymentsApi) -> Router {
    Router::new()
        .route("/payment-methods", get(methods))
        .route("/payments", get(list).post(create))
        .route("/payments/{id}", get(fetch))
        .route("/payments/{id}/confirm", post(confirm))
        .route("/payments/{id}/cancel", post(cancel))
        .route("/payments/{id}/refunds", post(refund))
        .with_state(Arc::new(api))
}

fn gateway_key(secret: &DerivedKey, caller: &str, operation: &str, key: &IdempotencyKey) -> String {
    secret
        .sign(format!("gateway\n{caller}\n{operation}\n{}", key.as_str()).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A payment as the API shows it, with its refunds.
#[derive(Debug, Serialize)]
struct PaymentView<'a> {
    #[serde(flatten)]
    payment: &'a Payment,
    refunds: &'a [Refund],
}

fn json_body(v: &impl Serialize) -> Result<String, Problem> {
    serde_json::to_string(v).map_err(|e| {
        tracing::error!(error = %e, "response serialisation");
        Problem::internal()
    })
}

fn not_found(id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "payment-not-found",
        "Payment not found",
    )
    .detail(format!("no payment with id {id}"))
}

fn changed() -> Problem {
    Problem::new(StatusCode::CONFLICT, "payment-changed", "Payment changed")
        .detail("the payment changed while this request ran; fetch it and decide again")
}

impl From<PaymentStoreError> for Problem {
    fn from(e: PaymentStoreError) -> Self {
        match e {
            PaymentStoreError::Changed => changed(),
            PaymentStoreError::UnknownUser => {
                Problem::validation(vec![FieldError::new("user_id", "no user with this id")])
            }
            PaymentStoreError::KeyTaken => Problem::new(
                StatusCode::CONFLICT,
                "idempotency-in-progress",
                "Request in progress",
            ),
            PaymentStoreError::InvalidCursor(e) => e.into(),
            PaymentStoreError::Store(e) => e.into(),
        }
    }
}

fn event_type(status: PaymentStatus) -> Option<&'static str> {
    match status {
        PaymentStatus::Succeeded => Some("payment.succeeded"),
        PaymentStatus::Failed => Some("payment.failed"),
        PaymentStatus::RequiresAction => Some("payment.requires_action"),
        PaymentStatus::Canceled => Some("payment.canceled"),
        _ => None,
    }
}

fn failure(f: Failure) -> PaymentFailure {
    PaymentFailure {
        code: f.code,
        message: f.message,
        retryable: f.retryable,
    }
}

/// A processor that could not give an outcome. When no money moved (misconfigured, ledger
/// down) the payment fails as retryable; when it may have (the gateway is still
/// processing, or answered something unreadable) the outcome is unknown and must not
/// invite a retry. Details go to the log, not the caller.
fn processor_failure(e: &ProcessorError) -> PaymentFailure {
    tracing::error!(error = %e, uncertain = e.is_uncertain(), "processor error");
    if e.is_uncertain() {
        return PaymentFailure {
            code: "outcome_unknown".into(),
            message: "the processor has not confirmed the outcome yet; do not retry: POST /payments/{id}/confirm asks it again".into(),
            retryable: false,
        };
    }
    PaymentFailure {
        code: "processor_error".into(),
        message: "the payment processor could not complete the request; try again with a new Idempotency-Key".into(),
        retryable: true,
    }
}

/// The payment after a processor's answer to a charge or confirm.
fn apply(mut p: Payment, outcome: Result<ChargeOutcome, ProcessorError>, now: &str) -> Payment {
    p.updated_at = now.to_owned();
    match outcome {
        Ok(o) => {
            p.status = o.status();
            if let Some(r) = o.reference() {
                p.processor_reference = Some(r.to_owned());
            }
            p.next_action = o.next_action().and_then(|a| serde_json::to_value(a).ok());
            p.failure = match o {
                ChargeOutcome::Failed { failure: f, .. } => Some(failure(f)),
                _ => None,
            };
        }
        Err(e) => {
            // Uncertain: the payment stays where it was (processing, or waiting for its
            // payer) with the gateway's reference, until confirm asks again.
            if !e.is_uncertain() {
                p.status = PaymentStatus::Failed;
                p.next_action = None;
            }
            if let ProcessorError::StillProcessing { reference, .. } = &e {
                p.processor_reference = Some(reference.clone());
            }
            p.failure = Some(processor_failure(&e));
        }
    }
    p
}

fn envelope(p: &Payment) -> Result<Option<Envelope>, Problem> {
    event_type(p.status)
        .map(|t| Envelope::new(t, EVENT_SOURCE, p).map_err(Problem::from))
        .transpose()
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

fn today() -> (i32, u8) {
    let now = clock::now();
    (now.year(), u8::from(now.month()))
}

async fn create(
    State(api): Api,
    auth: Authorized<scope::PaymentsWrite>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, Problem> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let req: CreatePaymentRequest = parse_json(body.to_string().as_bytes())?;
    let new = NewPayment::parse(req, today()).map_err(Problem::validation)?;
    let processor = api
        .processors
        .select(new.method.kind(), new.amount.currency)
        .map_err(|e| {
            let field = match e {
                NotSupported::Method(_) => "method",
                NotSupported::Currency { .. } => "currency",
            };
            Problem::validation(vec![FieldError::new(field, e.to_string())])
        })?;

    let now = clock::now();
    let at = clock::rfc3339(now);
    let payment = Payment {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: new.user_id.clone(),
        amount: new.amount.minor,
        currency: new.amount.currency,
        method: new.method.summary(&api.fingerprint_key),
        description: new.description.clone(),
        metadata: new.metadata.clone(),
        status: PaymentStatus::Processing,
        processor: processor.name().to_owned(),
        processor_reference: None,
        failure: None,
        next_action: None,
        amount_refunded: 0,
        created_at: at.clone(),
        updated_at: at,
    };
    let fingerprint = idempotency::fingerprint(&api.idempotency_key, "POST", "/payments", &body);
    let (lock, take) = api.store.idempotency.take(
        auth.key_id(),
        CREATE_OPERATION,
        &key,
        &fingerprint,
        now.unix_timestamp(),
    )?;
    match api.store.begin(take, &payment).await {
        Ok(()) => {}
        Err(PaymentStoreError::KeyTaken) => {
            return Ok(api
                .conflict(auth.key_id(), CREATE_OPERATION, &key, &fingerprint)
                .await?
                .into_response());
        }
        Err(PaymentStoreError::UnknownUser) => {
            return Err(Problem::validation(vec![FieldError::new(
                "user_id",
                format!("no user with id {}", new.user_id),
            )]));
        }
        Err(e) => return Err(e.into()),
    }

    let outcome = processor
        .charge(&ChargeRequest {
            payment_id: payment.id.clone(),
            idempotency_key: api.gateway_key(auth.key_id(), CREATE_OPERATION, &key),
            amount: new.amount,
            method: new.method,
            description: new.description,
        })
        .await;
    let next = apply(payment, outcome, &clock::rfc3339(clock::now()));
    let answer = StoredResponse {
        status: StatusCode::CREATED.as_u16(),
        body: json_body(&PaymentView {
            payment: &next,
            refunds: &[],
        })?,
        location: Some(format!("/payments/{}", next.id)),
    };
    let complete = api.store.idempotency.complete(&lock, &answer)?;
    let event = envelope(&next)?;
    api.store
        .finish(
            &next,
            PaymentStatus::Processing,
            Some(complete),
            event.as_ref(),
        )
        .await?;
    Ok(fresh(answer))
}

/// A first answer: what a replay will send, without the replay marker.
fn fresh(answer: StoredResponse) -> Response {
    let mut response = answer.into_replay();
    response.headers_mut().remove(idempotency::REPLAYED_HEADER);
    response
}

async fn fetch(
    State(api): Api,
    _auth: Authorized<scope::PaymentsRead>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let stored = api.store.get(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(PaymentView {
        payment: &stored.payment,
        refunds: &stored.refunds,
    })
    .into_response())
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
    let mut errors = Vec::new();
    let user_id = params
        .user_id
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    if user_id.is_none() {
        errors.push(FieldError::new(
            "user_id",
            "is required: payments are listed per user",
        ));
    }
    let status = match params.status.as_deref() {
        None => None,
        Some(s) => match PaymentStatus::parse(s) {
            Some(st) => Some(st),
            None => {
                let known: Vec<_> = PaymentStatus::ALL.iter().map(|s| s.as_str()).collect();
                errors.push(FieldError::new(
                    "status",
                    format!("must be one of {}", known.join(", ")),
                ));
                None
            }
        },
    };
    let limit = parse_limit(params.limit.as_deref())
        .map_err(|e| errors.push(e))
        .ok();
    match (user_id, limit) {
        (Some(user_id), Some(limit)) if errors.is_empty() => Ok(Json(
            api.store
                .list(user_id, status, limit, params.cursor.as_deref())
                .await?,
        )),
        _ => Err(Problem::validation(errors)),
    }
}

fn wrong_state(action: &str, status: PaymentStatus) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "invalid-transition",
        "Not allowed in this state",
    )
    .detail(format!(
        "a {} payment cannot be {action}; only requires_action payments can",
        status.as_str()
    ))
}

/// The stored payment waiting for its payer, and its processor.
async fn awaiting_action(
    api: &PaymentsApi,
    id: &str,
    action: &str,
    allowed: &[PaymentStatus],
) -> Result<(StoredPayment, Arc<dyn crate::processor::Processor>, String), Problem> {
    let stored = api.store.get(id).await?.ok_or_else(|| not_found(id))?;
    // A processing payment can be confirmed only once the gateway has given it a
    // reference (its outcome was left unknown); one without is still in its first call.
    let open = allowed.contains(&stored.payment.status)
        && (stored.payment.status != PaymentStatus::Processing
            || stored.payment.processor_reference.is_some());
    if !open {
        return Err(wrong_state(action, stored.payment.status));
    }
    let processor = api.processors.get(&stored.payment.processor).ok_or_else(|| {
        tracing::error!(processor = %stored.payment.processor, "payment's processor is not configured");
        Problem::internal()
    })?;
    let reference = stored.payment.processor_reference.clone().ok_or_else(|| {
        tracing::error!(payment_id = %id, "requires_action payment without a processor reference");
        Problem::internal()
    })?;
    Ok((stored, processor, reference))
}

async fn confirm(
    State(api): Api,
    _auth: Authorized<scope::PaymentsWrite>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let (stored, processor, reference) = awaiting_action(
        &api,
        &id,
        "confirmed",
        &[PaymentStatus::RequiresAction, PaymentStatus::Processing],
    )
    .await?;
    let from = stored.payment.status;
    let outcome = processor.confirm(&reference).await;
    let next = apply(
        stored.payment.clone(),
        outcome,
        &clock::rfc3339(clock::now()),
    );
    if next.status != from {
        let event = envelope(&next)?;
        if let Err(e) = api.store.finish(&next, from, None, event.as_ref()).await {
            return Err(match e {
                // Someone else moved it first: say where it is now.
                PaymentStoreError::Changed => match api.store.get(&id).await? {
                    Some(now) => wrong_state("confirmed", now.payment.status),
                    None => not_found(&id),
                },
                other => other.into(),
            });
        }
    }
    Ok(Json(PaymentView {
        payment: &next,
        refunds: &stored.refunds,
    })
    .into_response())
}

async fn cancel(
    State(api): Api,
    _auth: Authorized<scope::PaymentsWrite>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let (stored, processor, reference) =
        awaiting_action(&api, &id, "canceled", &[PaymentStatus::RequiresAction]).await?;
    match processor.cancel(&reference).await {
        Ok(CancelOutcome::Canceled) => {}
        Ok(CancelOutcome::Failed { failure }) => {
            return Err(
                Problem::new(StatusCode::CONFLICT, "cancel-refused", "Cancel refused").detail(
                    format!("the processor refused to cancel: {}", failure.message),
                ),
            );
        }
        Err(e) => {
            processor_failure(&e);
            return Err(Problem::new(
                StatusCode::BAD_GATEWAY,
                "processor-error",
                "Processor error",
            )
            .detail("the payment processor could not cancel the payment; try again"));
        }
    }
    let mut next = stored.payment.clone();
    next.status = PaymentStatus::Canceled;
    next.next_action = None;
    next.updated_at = clock::rfc3339(clock::now());
    let event = envelope(&next)?;
    api.store
        .finish(&next, PaymentStatus::RequiresAction, None, event.as_ref())
        .await?;
    Ok(Json(PaymentView {
        payment: &next,
        refunds: &stored.refunds,
    })
    .into_response())
}

fn refund_problem(e: RefundError) -> Problem {
    match e {
        RefundError::Invalid(errors) => Problem::validation(errors),
        RefundError::Refused(r @ RefundRefused::ExceedsRemaining { .. }) => {
            Problem::validation(vec![FieldError::new("amount", r.to_string())])
        }
        RefundError::Refused(r) => Problem::new(
            StatusCode::CONFLICT,
            "payment-not-refundable",
            "Payment not refundable",
        )
        .detail(r.to_string()),
    }
}

async fn refund(
    State(api): Api,
    auth: Authorized<scope::PaymentsWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, Problem> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let req: RefundRequest = parse_json(body.to_string().as_bytes())?;
    let fingerprint = idempotency::fingerprint(
        &api.idempotency_key,
        "POST",
        &format!("/payments/{id}/refunds"),
        &body,
    );
    let mut stored = api.store.get(&id).await?.ok_or_else(|| not_found(&id))?;
    let mut reserved = None;
    for _ in 0..RESERVE_ATTEMPTS {
        let amount = match refund_amount(&req, stored.payment.status, stored.refundable) {
            Ok(a) => a,
            Err(e) => {
                // A replay of a refund that took the rest must still replay, not refuse.
                let conflict = api
                    .conflict(auth.key_id(), REFUND_OPERATION, &key, &fingerprint)
                    .await?;
                if let aloft_shared::idempotency::Conflict::Replay(_) = conflict {
                    return Ok(conflict.into_response());
                }
                return Err(refund_problem(e));
            }
        };
        let now = clock::now();
        let at = clock::rfc3339(now);
        let refund = Refund {
            id: uuid::Uuid::new_v4().to_string(),
            payment_id: id.clone(),
            amount,
            currency: stored.payment.currency,
            status: RefundStatus::Pending,
            processor_reference: None,
            failure: None,
            created_at: at.clone(),
            updated_at: at,
        };
        let (lock, take) = api.store.idempotency.take(
            auth.key_id(),
            REFUND_OPERATION,
            &key,
            &fingerprint,
            now.unix_timestamp(),
        )?;
        match api
            .store
            .reserve_refund(take, &refund, stored.refundable)
            .await
        {
            Ok(()) => {
                reserved = Some((refund, lock));
                break;
            }
            Err(PaymentStoreError::KeyTaken) => {
                let conflict = api
                    .conflict(auth.key_id(), REFUND_OPERATION, &key, &fingerprint)
                    .await?;
                return Ok(conflict.into_response());
            }
            Err(PaymentStoreError::Changed) => {
                stored = api.store.get(&id).await?.ok_or_else(|| not_found(&id))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let Some((mut refund, lock)) = reserved else {
        return Err(changed().header(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        ));
    };

    let processor = api.processors.get(&stored.payment.processor).ok_or_else(|| {
        tracing::error!(processor = %stored.payment.processor, "payment's processor is not configured");
        Problem::internal()
    })?;
    let outcome = processor
        .refund(&crate::processor::RefundRequest {
            payment_id: id.clone(),
            charge_reference: stored
                .payment
                .processor_reference
                .clone()
                .unwrap_or_default(),
            idempotency_key: api.gateway_key(auth.key_id(), REFUND_OPERATION, &key),
            amount: Money {
                minor: refund.amount,
                currency: refund.currency,
            },
        })
        .await;
    refund.updated_at = clock::rfc3339(clock::now());
    match outcome {
        Ok(RefundOutcome::Succeeded { reference }) => {
            refund.status = RefundStatus::Succeeded;
            refund.processor_reference = Some(reference);
        }
        Ok(RefundOutcome::Failed {
            reference,
            failure: f,
        }) => {
            refund.status = RefundStatus::Failed;
            refund.processor_reference = reference;
            refund.failure = Some(failure(f));
        }
        Err(e) => {
            refund.status = if e.is_uncertain() {
                RefundStatus::Pending
            } else {
                RefundStatus::Failed
            };
            refund.failure = Some(processor_failure(&e));
        }
    }
    let answer = StoredResponse {
        status: StatusCode::CREATED.as_u16(),
        body: json_body(&refund)?,
        location: Some(format!("/payments/{id}")),
    };
    match refund.status {
        RefundStatus::Succeeded => {
            api.store
                .refund_succeeded(&refund, &lock, &answer, &refund.updated_at)
                .await?;
        }
        RefundStatus::Pending => {
            let complete = api.store.idempotency.complete(&lock, &answer)?;
            api.store.refund_uncertain(&refund, complete).await?;
        }
        RefundStatus::Failed => {
            let complete = api.store.idempotency.complete(&lock, &answer)?;
            api.store.refund_failed(&refund, complete).await?;
        }
    }
    Ok(fresh(answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, MethodKind, MethodSummary};

    fn processing() -> Payment {
        Payment {
            id: "p1".into(),
            user_id: "u1".into(),
            amount: 100,
            currency: Currency::parse("USD").unwrap(),
            method: MethodSummary::Paypal {
                kind: MethodKind::Paypal,
                payer_email: "b@example.com".into(),
            },
            description: None,
            metadata: Default::default(),
            status: PaymentStatus::Processing,
            processor: "stripe".into(),
            processor_reference: None,
            failure: None,
            next_action: None,
            amount_refunded: 0,
            created_at: "t0".into(),
            updated_at: "t0".into(),
        }
    }

    #[test]
    fn an_unknown_outcome_keeps_the_payment_open_and_does_not_invite_a_retry() {
        let p = apply(
            processing(),
            Err(ProcessorError::StillProcessing {
                processor: "stripe".into(),
                reference: "pi_1".into(),
            }),
            "t1",
        );
        assert_eq!(p.status, PaymentStatus::Processing);
        assert_eq!(p.processor_reference.as_deref(), Some("pi_1"));
        let f = p.failure.unwrap();
        assert_eq!(f.code, "outcome_unknown");
        assert!(!f.retryable);
    }

    #[test]
    fn a_processor_that_moved_no_money_fails_the_payment_as_retryable() {
        let p = apply(
            processing(),
            Err(ProcessorError::Ledger("down".into())),
            "t1",
        );
        assert_eq!(p.status, PaymentStatus::Failed);
        assert!(p.failure.unwrap().retryable);
    }

    #[test]
    fn gateway_keys_are_stable_per_caller_and_key() {
        let master = aloft_shared::master_key::MasterKey::from_bytes(vec![1; 32]);
        let api_key = master.derive("idempotency");
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("idempotency-key", v.parse().unwrap());
            IdempotencyKey::from_headers(&h).unwrap()
        };
        let sign = |caller: &str, key: &IdempotencyKey| {
            gateway_key(&api_key, caller, CREATE_OPERATION, key)
        };
        assert_eq!(sign("a", &headers("k")), sign("a", &headers("k")));
        assert_ne!(sign("a", &headers("k")), sign("b", &headers("k")));
        assert_ne!(sign("a", &headers("k")), sign("a", &headers("l")));
        assert_eq!(sign("a", &headers(&"x".repeat(255))).len(), 64);
    }
}
