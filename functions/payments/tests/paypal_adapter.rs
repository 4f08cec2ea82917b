//! The PayPal adapter against a fake PayPal on loopback that checks what it receives
//! (client credentials on the token call, the bearer token, `PayPal-Request-Id`, JSON
//! bodies), deduplicates by request id as PayPal does, and answers the way PayPal's
//! Orders v2 and Payments v2 document. Unknown outcomes follow the same rule as Stripe.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aloft_payments::domain::{Currency, MethodKind, Money, PaymentMethod};
use aloft_payments::processor::paypal::{PayPal, PayPalConfig};
use aloft_payments::processor::{
    CancelOutcome, ChargeLookup, ChargeOutcome, ChargeRequest, NextAction, Processor,
    ProcessorError, RefundOutcome, RefundRequest,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

const CLIENT_ID: &str = "AaloftFakeClient";
const CLIENT_SECRET: &str = "EaloftFakeSecret";
/// Amounts the fake answers specially.
const VALUE_SERVER_ERROR: &str = "50.00";
const VALUE_SLOW: &str = "70.00";
const VALUE_RESTRICTED: &str = "42.00";

/// One API request as the fake received it.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    request_id: Option<String>,
    body: Value,
}

/// An order's status and its capture's status, by order id.
type Orders = HashMap<String, (String, Option<String>)>;

#[derive(Clone, Default)]
struct Fake {
    received: Arc<Mutex<Vec<Received>>>,
    tokens_issued: Arc<AtomicUsize>,
    /// Seconds each issued token lives.
    token_lifetime: Arc<AtomicUsize>,
    /// Orders by id: (status, capture status).
    orders: Arc<Mutex<Orders>>,
    /// Answers by `PayPal-Request-Id`, as PayPal replays them.
    replies: Arc<Mutex<HashMap<String, Value>>>,
    /// Tokens the fake no longer accepts.
    revoked: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn approve(&self, order: &str) {
        self.orders.lock().unwrap().get_mut(order).unwrap().0 = "APPROVED".into();
    }

    fn token(&self) -> String {
        format!("A21AA.fake.{}", self.tokens_issued.load(Ordering::SeqCst))
    }
}

fn paypal_error(status: StatusCode, name: &str, issue: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"name": name, "message": "The requested action could not be performed.",
            "details": [{"issue": issue, "description": format!("{issue} (fake)")}]}),
        ),
    )
        .into_response()
}

async fn token(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Basic {basic}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if body.as_ref() != b"grant_type=client_credentials" {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    fake.tokens_issued.fetch_add(1, Ordering::SeqCst);
    let lifetime = match fake.token_lifetime.load(Ordering::SeqCst) {
        0 => 32_400,
        n => n,
    };
    axum::Json(
        json!({"scope": "https://uri.paypal.com/services/payments", "access_token": fake.token(),
        "token_type": "Bearer", "app_id": "APP-FAKE", "expires_in": lifetime}),
    )
    .into_response()
}

/// Checks the bearer token and JSON body every API call carries, and records the call.
fn check(
    fake: &Fake,
    path: String,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, Box<Response>> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let current = format!("Bearer {}", fake.token());
    if auth != current
        || fake
            .revoked
            .lock()
            .unwrap()
            .iter()
            .any(|t| auth.ends_with(t.as_str()))
    {
        return Err(Box::new(paypal_error(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_FAILURE",
            "INVALID_TOKEN",
        )));
    }
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
            return Err(Box::new(paypal_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "INVALID_CONTENT_TYPE",
            )));
        }
        serde_json::from_slice(body).map_err(|_| {
            Box::new(paypal_error(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "MALFORMED_REQUEST_JSON",
            ))
        })?
    };
    let request_id = headers
        .get("paypal-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    fake.received.lock().unwrap().push(Received {
        path,
        request_id,
        body: body.clone(),
    });
    Ok(body)
}

fn order_json(fake: &Fake, id: &str) -> Value {
    let (status, capture) = fake.orders.lock().unwrap()[id].clone();
    let mut order = json!({"id": id, "status": status, "links": [
        {"href": format!("https://api-m.sandbox.paypal.com/v2/checkout/orders/{id}"), "rel": "self", "method": "GET"},
        {"href": format!("https://www.sandbox.paypal.com/checkoutnow?token={id}"), "rel": "payer-action", "method": "GET"}]});
    if let Some(capture) = capture {
        order["purchase_units"] =
            json!([{"payments": {"captures": [{"id": format!("CAP{id}"), "status": capture}]}}]);
    }
    order
}

async fn create_order(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match check(&fake, "/v2/checkout/orders".into(), &headers, &body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Some(request_id) = headers
        .get("paypal-request-id")
        .and_then(|v| v.to_str().ok())
    else {
        return paypal_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "MISSING_REQUEST_ID",
        );
    };
    let unit = &body["purchase_units"][0];
    if body["intent"] != "CAPTURE" || unit["amount"]["currency_code"].as_str().is_none() {
        return paypal_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "MISSING_REQUIRED_PARAMETER",
        );
    }
    match unit["amount"]["value"].as_str() {
        Some(VALUE_SERVER_ERROR) => {
            return paypal_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "INTERNAL_SERVICE_ERROR",
            );
        }
        Some(VALUE_SLOW) => tokio::time::sleep(Duration::from_secs(3)).await,
        Some(VALUE_RESTRICTED) => {
            return paypal_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UNPROCESSABLE_ENTITY",
                "PAYEE_ACCOUNT_RESTRICTED",
            );
        }
        _ => {}
    }
    if let Some(reply) = fake.replies.lock().unwrap().get(request_id) {
        return (StatusCode::OK, axum::Json(reply.clone())).into_response();
    }
    let id = format!("5O1901{}", fake.orders.lock().unwrap().len() + 27);
    fake.orders
        .lock()
        .unwrap()
        .insert(id.clone(), ("PAYER_ACTION_REQUIRED".into(), None));
    let reply = order_json(&fake, &id);
    fake.replies
        .lock()
        .unwrap()
        .insert(request_id.to_owned(), reply.clone());
    (StatusCode::OK, axum::Json(reply)).into_response()
}

async fn get_order(
    State(fake): State<Fake>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check(&fake, format!("/v2/checkout/orders/{id}"), &headers, b"") {
        return *r;
    }
    if id == "DOWN" {
        return paypal_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "SERVICE_UNAVAILABLE",
        );
    }
    if !fake.orders.lock().unwrap().contains_key(&id) {
        return paypal_error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            "INVALID_RESOURCE_ID",
        );
    }
    axum::Json(order_json(&fake, &id)).into_response()
}

async fn capture(
    State(fake): State<Fake>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = check(
        &fake,
        format!("/v2/checkout/orders/{id}/capture"),
        &headers,
        &body,
    ) {
        return *r;
    }
    if id == "SLOW" {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let status = match fake.orders.lock().unwrap().get(&id) {
        None => {
            return paypal_error(
                StatusCode::NOT_FOUND,
                "RESOURCE_NOT_FOUND",
                "INVALID_RESOURCE_ID",
            );
        }
        Some((status, _)) => status.clone(),
    };
    match status.as_str() {
        "APPROVED" => {
            fake.orders
                .lock()
                .unwrap()
                .insert(id.clone(), ("COMPLETED".into(), Some("COMPLETED".into())));
            (StatusCode::CREATED, axum::Json(order_json(&fake, &id))).into_response()
        }
        "COMPLETED" => paypal_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "UNPROCESSABLE_ENTITY",
            "ORDER_ALREADY_CAPTURED",
        ),
        _ => paypal_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "UNPROCESSABLE_ENTITY",
            "ORDER_NOT_APPROVED",
        ),
    }
}

async fn refund(
    State(fake): State<Fake>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match check(
        &fake,
        format!("/v2/payments/captures/{id}/refund"),
        &headers,
        &body,
    ) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Some(request_id) = headers
        .get("paypal-request-id")
        .and_then(|v| v.to_str().ok())
    else {
        return paypal_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "MISSING_REQUEST_ID",
        );
    };
    match body["amount"]["value"].as_str() {
        Some(VALUE_SERVER_ERROR) => {
            return paypal_error(
                StatusCode::BAD_GATEWAY,
                "INTERNAL_SERVER_ERROR",
                "INTERNAL_SERVICE_ERROR",
            );
        }
        Some(VALUE_SLOW) => tokio::time::sleep(Duration::from_secs(3)).await,
        Some("999.00") => {
            return paypal_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UNPROCESSABLE_ENTITY",
                "REFUND_AMOUNT_EXCEEDED",
            );
        }
        _ => {}
    }
    let mut replies = fake.replies.lock().unwrap();
    let n = replies.len();
    let reply = replies
        .entry(request_id.to_owned())
        .or_insert_with(|| json!({"id": format!("1JU08902781691{n}"), "status": "COMPLETED"}))
        .clone();
    (StatusCode::CREATED, axum::Json(reply)).into_response()
}

async fn spawn_fake() -> (String, Fake) {
    let fake = Fake::default();
    let app = Router::new()
        .route("/v1/oauth2/token", post(token))
        .route("/v2/checkout/orders", post(create_order))
        .route("/v2/checkout/orders/{id}", get(get_order))
        .route("/v2/checkout/orders/{id}/capture", post(capture))
        .route("/v2/payments/captures/{id}/refund", post(refund))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, fake)
}

async fn spawn_paypal(timeout: Duration) -> (PayPal, Fake) {
    let (base, fake) = spawn_fake().await;
    let config = PayPalConfig {
        timeout,
        return_url: Some("https://shop.example.com/paid".into()),
        ..PayPalConfig::new(base, CLIENT_ID, CLIENT_SECRET)
    };
    (PayPal::new(config), fake)
}

fn money(minor: i64, currency: &str) -> Money {
    Money::new(minor, Currency::parse(currency).unwrap()).unwrap()
}

fn order(amount: Money) -> ChargeRequest {
    ChargeRequest {
        payment_id: "pay_pp_1".into(),
        idempotency_key: "gw_key_1".into(),
        amount,
        method: PaymentMethod::Paypal {
            kind: MethodKind::Paypal,
            payer_email: "buyer@example.com".into(),
        },
        description: Some("Order 42".into()),
    }
}

fn refund_of(order_id: &str, amount: Money) -> RefundRequest {
    RefundRequest {
        payment_id: "pay_pp_1".into(),
        refund_id: "ref_pp_1".into(),
        charge_reference: order_id.into(),
        idempotency_key: "gw_refund_1".into(),
        amount,
    }
}

/// An order created and approved by the payer; its id.
async fn approved_order(paypal: &PayPal, fake: &Fake) -> String {
    let outcome = paypal.charge(&order(money(1250, "USD"))).await.unwrap();
    let id = outcome.reference().unwrap().to_owned();
    fake.approve(&id);
    id
}

#[tokio::test]
async fn a_charge_creates_an_order_with_the_request_id_and_asks_the_payer_to_approve() {
    let (paypal, fake) = spawn_paypal(Duration::from_secs(5)).await;
    let outcome = paypal.charge(&order(money(1250, "USD"))).await.unwrap();
    let ChargeOutcome::RequiresAction {
        reference,
        next_action: NextAction::Redirect { url },
    } = &outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!(
        url,
        &format!("https://www.sandbox.paypal.com/checkoutnow?token={reference}")
    );
    let sent = &fake.received()[0];
    assert_eq!(sent.path, "/v2/checkout/orders");
    assert_eq!(sent.request_id.as_deref(), Some("gw_key_1"));
    let unit = &sent.body["purchase_units"][0];
    assert_eq!(
        unit["amount"],
        json!({"currency_code": "USD", "value": "12.50"})
    );
    assert_eq!(unit["reference_id"], "pay_pp_1");
    assert_eq!(unit["description"], "Order 42");
    assert_eq!(sent.body["intent"], "CAPTURE");
    let source = &sent.body["payment_source"]["paypal"];
    assert_eq!(source["email_address"], "buyer@example.com");
    assert_eq!(
        source["experience_context"]["return_url"],
        "https://shop.example.com/paid"
    );
    // A repeat with the same key is the same order, as PayPal replays a request id.
    let again = paypal.charge(&order(money(1250, "USD"))).await.unwrap();
    assert_eq!(again.reference(), Some(reference.as_str()));
}

#[tokio::test]
async fn the_token_is_fetched_once_and_reused_until_it_expires() {
    let (paypal, fake) = spawn_paypal(Duration::from_secs(5)).await;
    for n in 0..3 {
        let mut request = order(money(1000 + n, "EUR"));
        request.idempotency_key = format!("k{n}");
        paypal.charge(&request).await.unwrap();
    }
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 1);
    // Short-lived tokens are renewed before they run out.
    let (paypal, fake) = spawn_paypal(Duration::from_secs(5)).await;
    fake.token_lifetime.store(1, Ordering::SeqCst);
    paypal.charge(&order(money(1000, "EUR"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    paypal.charge(&order(money(1000, "EUR"))).await.unwrap();
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_token_is_renewed_once() {
    let (paypal, fake) = spawn_paypal(Duration::from_secs(5)).await;
    paypal.charge(&order(money(1000, "USD"))).await.unwrap();
    fake.revoked.lock().unwrap().push(fake.token());
    let mut next = order(money(1000, "USD"));
    next.idempotency_key = "k2".into();
    let outcome = paypal.charge(&next).await.unwrap();
    assert!(
        matches!(outcome, ChargeOutcome::RequiresAction { .. }),
        "{outcome:?}"
    );
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn wrong_credentials_are_a_configuration_error_and_charge_nothing() {
    let (base, fake) = spawn_fake().await;
    let paypal = PayPal::new(PayPalConfig::new(base, CLIENT_ID, "wrong"));
    let err = paypal.charge(&order(money(1000, "USD"))).await.unwrap_err();
    // No token, so no money request was ever sent: nothing charged, an operator must act.
    assert!(matches!(err, ProcessorError::Misconfigured { .. }), "{err}");
    assert!(!err.is_uncertain());
    assert!(!err.to_string().contains("wrong"));
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn jpy_is_sent_without_a_minor_unit_and_huf_only_whole() {
    let (paypal, fake) = spawn_paypal(Duration::from_secs(5)).await;
    paypal.charge(&order(money(500, "JPY"))).await.unwrap();
    assert_eq!(
        fake.received()[0].body["purchase_units"][0]["amount"],
        json!({"currency_code": "JPY", "value": "500"})
    );
    let outcome = paypal.charge(&order(money(1050, "HUF"))).await.unwrap();
    assert_eq!(
        outcome.failure().map(|f| f.code.as_str()),
        Some("amount_not_supported")
    );
    assert_eq!(
        fake.received().len(),
        1,
        "nothing sent for an amount PayPal cannot take"
    );
    let methods = paypal.supported_methods();
    let currencies: Vec<_> = methods[0].currencies.iter().map(|c| c.code()).collect();
    for code in [
        "USD", "EUR", "GBP", "JPY", "AUD", "CAD", "HUF", "TWD", "THB", "ILS",
    ] {
        assert!(currencies.contains(&code), "{code}");
    }
    assert!(!currencies.contains(&"INR"));
}

#[tokio::test]
async fn confirm_captures_once_approved_and_twice_is_still_one_capture() {
    let (paypal, fake) = spawn_paypal(Duration::from_secs(5)).await;
    let outcome = paypal.charge(&order(money(1250, "USD"))).await.unwrap();
    let id = outcome.reference().unwrap().to_owned();
    // Not approved yet: still waiting for the payer.
    assert!(matches!(
        paypal.confirm(&id).await.unwrap(),
        ChargeOutcome::RequiresAction { .. }
    ));
    fake.approve(&id);
    assert_eq!(
        paypal.confirm(&id).await.unwrap(),
        ChargeOutcome::Succeeded {
            reference: id.clone()
        }
    );
    assert_eq!(
        paypal.confirm(&id).await.unwrap(),
        ChargeOutcome::Succeeded {
            reference: id.clone()
        }
    );
    let captures: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.path.ends_with("/capture"))
        .collect();
    assert!(
        captures
            .iter()
            .all(|c| c.request_id.as_deref() == Some(&format!("capture-{id}")))
    );
    assert!(matches!(
        paypal.confirm("../v1/oauth2").await,
        Err(ProcessorError::UnknownReference(_))
    ));
    assert_eq!(paypal.cancel(&id).await.unwrap(), CancelOutcome::Canceled);
}

#[tokio::test]
async fn refunds_go_to_the_orders_capture_with_their_request_id() {
    let (paypal, fake) = spawn_paypal(Duration::from_secs(5)).await;
    let id = approved_order(&paypal, &fake).await;
    paypal.confirm(&id).await.unwrap();
    let outcome = paypal
        .refund(&refund_of(&id, money(400, "USD")))
        .await
        .unwrap();
    assert!(
        matches!(outcome, RefundOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    let sent = fake
        .received()
        .into_iter()
        .find(|r| r.path.ends_with("/refund"))
        .unwrap();
    assert_eq!(sent.path, format!("/v2/payments/captures/CAP{id}/refund"));
    assert_eq!(sent.request_id.as_deref(), Some("gw_refund_1"));
    assert_eq!(
        sent.body["amount"],
        json!({"currency_code": "USD", "value": "4.00"})
    );
    assert_eq!(sent.body["custom_id"], "ref_pp_1");
    let RefundOutcome::Failed { failure, .. } = paypal
        .refund(&refund_of(&id, money(99_900, "USD")))
        .await
        .unwrap()
    else {
        panic!("a refused refund fails");
    };
    assert_eq!(failure.code, "refund_amount_exceeded");
}

#[tokio::test]
async fn lost_answers_are_unknown_outcomes_and_refusals_are_failures() {
    let (paypal, _fake) = spawn_paypal(Duration::from_millis(300)).await;
    for value in [5000, 7000] {
        let started = Instant::now();
        let result = paypal.charge(&order(money(value, "USD"))).await;
        assert!(
            matches!(&result, Err(e @ ProcessorError::OutcomeUnknown { .. }) if e.reference().is_none()),
            "{value}: {result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let refused = paypal.charge(&order(money(4200, "USD"))).await.unwrap();
    assert_eq!(
        refused.failure().map(|f| (f.code.as_str(), f.retryable)),
        Some(("payee_account_restricted", false))
    );
    // A confirm that cannot read PayPal is an error that keeps the order id.
    let result = paypal.confirm("SLOW").await;
    assert!(
        matches!(&result, Err(e) if e.is_uncertain() && e.reference() == Some("SLOW")),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_refund_whose_answer_is_lost_is_unknown_not_failed() {
    let (paypal, fake) = spawn_paypal(Duration::from_millis(300)).await;
    let id = approved_order(&paypal, &fake).await;
    paypal.confirm(&id).await.unwrap();
    for value in [5000, 7000] {
        let result = paypal.refund(&refund_of(&id, money(value, "USD"))).await;
        assert!(
            matches!(&result, Err(e) if e.is_uncertain()),
            "{value}: {result:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_paypal_is_a_retryable_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let paypal = PayPal::new(PayPalConfig::new(base, CLIENT_ID, CLIENT_SECRET));
    let outcome = paypal.charge(&order(money(1000, "USD"))).await.unwrap();
    assert_eq!(
        outcome.failure().map(|f| (f.code.as_str(), f.retryable)),
        Some(("processor_unavailable", true))
    );
}

#[tokio::test]
async fn lookups_read_the_order_and_without_one_nothing_was_taken() {
    let (paypal, fake) = spawn_paypal(Duration::from_secs(5)).await;
    let query = |reference: Option<&str>| ChargeLookup {
        payment_id: "pay_pp_1".into(),
        idempotency_key: "gw_key_1".into(),
        reference: reference.map(str::to_owned),
        amount: money(1250, "USD"),
        created_at: 0,
    };
    assert_eq!(paypal.lookup(&query(None)).await.unwrap(), None);
    let id = approved_order(&paypal, &fake).await;
    // Approved but not captured: the lookup captures, as confirm would.
    assert_eq!(
        paypal.lookup(&query(Some(&id))).await.unwrap(),
        Some(ChargeOutcome::Succeeded {
            reference: id.clone()
        })
    );
    assert_eq!(
        paypal.lookup(&query(Some(&id))).await.unwrap(),
        Some(ChargeOutcome::Succeeded {
            reference: id.clone()
        })
    );
    assert!(
        paypal
            .lookup(&query(Some("DOWN")))
            .await
            .unwrap_err()
            .is_uncertain()
    );
}
