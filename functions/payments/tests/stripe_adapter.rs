//! The Stripe adapter against a fake Stripe on loopback that checks what it receives
//! (secret, Idempotency-Key, form fields) and answers the way Stripe documents.
//!
//! The rule for lost answers: only an answer proving nothing was charged (a card error,
//! a refused request, a connection refused) is a failure; a timeout after sending, a 5xx,
//! a 429, an unreadable body is an unknown outcome that keeps what reference is known.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aloft_payments::domain::{CardNumber, Currency, Cvc, Expiry, MethodKind, Money, PaymentMethod};
use aloft_payments::processor::stripe::{Stripe, StripeConfig};
use aloft_payments::processor::{
    CancelOutcome, ChargeOutcome, ChargeRequest, NextAction, Processor, ProcessorError,
    RefundOutcome, RefundRequest,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

const SECRET: &str = "sk_test_aloft_fake";
/// Amounts the fake answers specially, like Stripe's failure-injection test cards.
const AMOUNT_SERVER_ERROR: i64 = 5000;
const AMOUNT_SLOW: i64 = 7000;
const AMOUNT_RATE_LIMITED: i64 = 4290;
const AMOUNT_GARBLED: i64 = 2000;
const AMOUNT_ODD_STATUS: i64 = 3000;

/// One request as the fake Stripe received it.
#[derive(Debug, Clone)]
struct Received {
    method: Method,
    path: String,
    idempotency_key: Option<String>,
    form: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Fake {
    received: Arc<Mutex<Vec<Received>>>,
}

impl Fake {
    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn stripe_error(status: StatusCode, error: serde_json::Value) -> Response {
    (status, axum::Json(json!({ "error": error }))).into_response()
}

/// Checks what every Stripe call must carry; records the request; `Err` is Stripe's answer
/// to a malformed one.
fn check(
    fake: &Fake,
    method: Method,
    path: String,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<BTreeMap<String, String>, Box<Response>> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {SECRET}")) {
        return Err(Box::new(stripe_error(
            StatusCode::UNAUTHORIZED,
            json!({"type": "invalid_request_error", "message": "Invalid API Key provided"}),
        )));
    }
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if method == Method::POST && !body.is_empty() {
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
        if content_type != Some("application/x-www-form-urlencoded") {
            return Err(Box::new(stripe_error(
                StatusCode::BAD_REQUEST,
                json!({"type": "invalid_request_error", "message": "form-encoded bodies only"}),
            )));
        }
    }
    let form: BTreeMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    fake.received.lock().unwrap().push(Received {
        method,
        path,
        idempotency_key,
        form: form.clone(),
    });
    Ok(form)
}

fn missing(param: &str) -> Response {
    stripe_error(
        StatusCode::BAD_REQUEST,
        json!({"type": "invalid_request_error", "code": "parameter_missing", "param": param,
               "message": format!("Missing required param: {param}.")}),
    )
}

async fn create_intent(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match check(
        &fake,
        Method::POST,
        "/v1/payment_intents".into(),
        &headers,
        &body,
    ) {
        Ok(form) => form,
        Err(answer) => return *answer,
    };
    if !headers.contains_key("idempotency-key") {
        return missing("Idempotency-Key");
    }
    for param in [
        "amount",
        "currency",
        "confirm",
        "payment_method_data[type]",
        "payment_method_data[card][number]",
        "payment_method_data[card][exp_month]",
        "payment_method_data[card][exp_year]",
        "payment_method_data[card][cvc]",
    ] {
        if !form.contains_key(param) {
            return missing(param);
        }
    }
    let amount: i64 = match form["amount"].parse() {
        Ok(a) => a,
        Err(_) => return missing("amount"),
    };
    let currency = &form["currency"];
    if currency.chars().any(|c| c.is_ascii_uppercase()) {
        return missing("currency");
    }
    let intent = |status: &str| {
        json!({"id": "pi_fake_1", "object": "payment_intent", "amount": amount,
               "currency": currency, "status": status})
    };
    match amount {
        AMOUNT_SERVER_ERROR => {
            return stripe_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"type": "api_error", "message": "Something went wrong on Stripe's end."}),
            );
        }
        AMOUNT_RATE_LIMITED => {
            return stripe_error(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"type": "invalid_request_error", "code": "rate_limit"}),
            );
        }
        AMOUNT_GARBLED => return (StatusCode::OK, "{\"id\": \"pi_fake_1\", \"sta").into_response(),
        AMOUNT_ODD_STATUS => return axum::Json(intent("requires_capture")).into_response(),
        AMOUNT_SLOW => tokio::time::sleep(Duration::from_secs(3)).await,
        _ => {}
    }
    let decline = |code: &str, decline_code: Option<&str>, message: &str| {
        let mut error = json!({"type": "card_error", "code": code, "message": message,
            "payment_intent": {"id": "pi_fake_declined", "status": "requires_payment_method"}});
        if let Some(d) = decline_code {
            error["decline_code"] = json!(d);
        }
        stripe_error(StatusCode::PAYMENT_REQUIRED, error)
    };
    match form["payment_method_data[card][number]"].as_str() {
        "4000000000000002" => decline(
            "card_declined",
            Some("generic_decline"),
            "Your card was declined.",
        ),
        "4000000000009995" => decline(
            "card_declined",
            Some("insufficient_funds"),
            "Your card has insufficient funds.",
        ),
        "4000000000000119" => decline(
            "processing_error",
            None,
            "An error occurred while processing your card. Try again in a little bit.",
        ),
        "4000000000003220" => {
            let mut answer = intent("requires_action");
            answer["id"] = json!("pi_fake_3ds");
            answer["next_action"] = json!({"type": "redirect_to_url",
                "redirect_to_url": {"url": "https://hooks.stripe.com/3d_secure_2/hosted/fake",
                                    "return_url": "https://example.com/back"}});
            axum::Json(answer).into_response()
        }
        _ => axum::Json(intent("succeeded")).into_response(),
    }
}

async fn retrieve_intent(
    State(fake): State<Fake>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(answer) = check(
        &fake,
        Method::GET,
        format!("/v1/payment_intents/{id}"),
        &headers,
        b"",
    ) {
        return *answer;
    }
    if id == "pi_fake_down" {
        return stripe_error(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"type": "api_error", "message": "unavailable"}),
        );
    }
    if id == "pi_fake_busy" {
        return stripe_error(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"type": "invalid_request_error", "code": "rate_limit"}),
        );
    }
    if id != "pi_fake_3ds" {
        return stripe_error(
            StatusCode::NOT_FOUND,
            json!({"type": "invalid_request_error", "code": "resource_missing",
                   "message": format!("No such payment_intent: '{id}'")}),
        );
    }
    // The payer completed 3-D Secure.
    axum::Json(json!({"id": id, "object": "payment_intent", "status": "succeeded"})).into_response()
}

async fn cancel_intent(
    State(fake): State<Fake>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(answer) = check(
        &fake,
        Method::POST,
        format!("/v1/payment_intents/{id}/cancel"),
        &headers,
        &body,
    ) {
        return *answer;
    }
    axum::Json(json!({"id": id, "object": "payment_intent", "status": "canceled"})).into_response()
}

async fn create_refund(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match check(&fake, Method::POST, "/v1/refunds".into(), &headers, &body) {
        Ok(form) => form,
        Err(answer) => return *answer,
    };
    if !headers.contains_key("idempotency-key") {
        return missing("Idempotency-Key");
    }
    let Some(intent) = form.get("payment_intent") else {
        return missing("payment_intent");
    };
    if form.get("amount").map(String::as_str) == Some("5000") {
        return stripe_error(
            StatusCode::BAD_GATEWAY,
            json!({"type": "api_error", "message": "upstream"}),
        );
    }
    if form.get("amount").map(String::as_str) == Some("7000") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if intent == "pi_fake_declined" {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            json!({"type": "invalid_request_error", "code": "charge_already_refunded",
                   "message": "This PaymentIntent has already been refunded."}),
        );
    }
    axum::Json(json!({"id": "re_fake_1", "object": "refund", "status": "succeeded",
        "payment_intent": intent, "amount": form.get("amount").and_then(|a| a.parse::<i64>().ok())}))
    .into_response()
}

/// A fake Stripe on a free loopback port: its base URL and what it received.
async fn spawn_fake() -> (String, Fake) {
    let fake = Fake::default();
    let app = Router::new()
        .route("/v1/payment_intents", post(create_intent))
        .route("/v1/payment_intents/{id}", get(retrieve_intent))
        .route("/v1/payment_intents/{id}/cancel", post(cancel_intent))
        .route("/v1/refunds", post(create_refund))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, fake)
}

/// A fake Stripe, and an adapter pointed at it.
async fn spawn_stripe(timeout: Duration) -> (Stripe, Fake) {
    let (base, fake) = spawn_fake().await;
    let config = StripeConfig {
        timeout,
        ..StripeConfig::new(base, SECRET)
    };
    (Stripe::new(config), fake)
}

fn money(minor: i64, currency: &str) -> Money {
    Money::new(minor, Currency::parse(currency).unwrap()).unwrap()
}

fn card_charge(number: &str, amount: Money) -> ChargeRequest {
    let number = CardNumber::parse(number).unwrap();
    ChargeRequest {
        payment_id: "pay_123".into(),
        idempotency_key: "key_abc".into(),
        amount,
        method: PaymentMethod::Card {
            cvc: Cvc::parse("123", number.brand()).unwrap(),
            number,
            expiry: Expiry {
                month: 12,
                year: 2030,
            },
        },
        description: Some("Order 42".into()),
    }
}

#[tokio::test]
async fn a_card_charge_sends_what_stripe_expects_and_succeeds() {
    let (stripe, fake) = spawn_stripe(Duration::from_secs(5)).await;
    let outcome = stripe
        .charge(&card_charge("4242424242424242", money(1000, "USD")))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ChargeOutcome::Succeeded {
            reference: "pi_fake_1".into()
        }
    );
    let sent = fake.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (&sent[0].method, sent[0].path.as_str()),
        (&Method::POST, "/v1/payment_intents")
    );
    assert_eq!(sent[0].idempotency_key.as_deref(), Some("key_abc"));
    let field = |name: &str| sent[0].form.get(name).map(String::as_str);
    assert_eq!(field("amount"), Some("1000"));
    assert_eq!(field("currency"), Some("usd"));
    assert_eq!(field("confirm"), Some("true"));
    assert_eq!(field("payment_method_data[type]"), Some("card"));
    assert_eq!(
        field("payment_method_data[card][number]"),
        Some("4242424242424242")
    );
    assert_eq!(field("payment_method_data[card][exp_month]"), Some("12"));
    assert_eq!(field("payment_method_data[card][exp_year]"), Some("2030"));
    assert_eq!(field("payment_method_data[card][cvc]"), Some("123"));
    assert_eq!(field("metadata[payment_id]"), Some("pay_123"));
    assert_eq!(field("description"), Some("Order 42"));
}

#[tokio::test]
async fn zero_decimal_currencies_are_sent_in_whole_units() {
    let (stripe, fake) = spawn_stripe(Duration::from_secs(5)).await;
    stripe
        .charge(&card_charge("5555555555554444", money(500, "JPY")))
        .await
        .unwrap();
    let form = &fake.received()[0].form;
    assert_eq!(
        (form["amount"].as_str(), form["currency"].as_str()),
        ("500", "jpy")
    );
}

#[tokio::test]
async fn three_d_secure_requires_action_then_confirm_reads_the_result() {
    let (stripe, fake) = spawn_stripe(Duration::from_secs(5)).await;
    let outcome = stripe
        .charge(&card_charge("4000000000003220", money(1000, "EUR")))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ChargeOutcome::RequiresAction {
            reference: "pi_fake_3ds".into(),
            next_action: NextAction::Redirect {
                url: "https://hooks.stripe.com/3d_secure_2/hosted/fake".into()
            },
        }
    );
    assert_eq!(
        stripe.confirm("pi_fake_3ds").await.unwrap(),
        ChargeOutcome::Succeeded {
            reference: "pi_fake_3ds".into()
        }
    );
    let confirm = &fake.received()[1];
    assert_eq!(
        (&confirm.method, confirm.path.as_str()),
        (&Method::GET, "/v1/payment_intents/pi_fake_3ds")
    );
    assert_eq!(
        stripe.cancel("pi_fake_3ds").await.unwrap(),
        CancelOutcome::Canceled
    );
    assert_eq!(
        fake.received()[2].path,
        "/v1/payment_intents/pi_fake_3ds/cancel"
    );
    assert!(matches!(
        stripe.confirm("../v1/charges").await,
        Err(ProcessorError::UnknownReference(_))
    ));
}

#[tokio::test]
async fn declines_become_failures_with_stripe_codes() {
    let (stripe, _fake) = spawn_stripe(Duration::from_secs(5)).await;
    let cases = [
        ("4000000000000002", "card_declined", false),
        ("4000000000009995", "insufficient_funds", false),
        ("4000000000000119", "processing_error", true),
    ];
    for (number, code, retryable) in cases {
        let outcome = stripe
            .charge(&card_charge(number, money(1000, "USD")))
            .await
            .unwrap();
        assert_eq!(outcome.reference(), Some("pi_fake_declined"), "{number}");
        let failure = outcome.failure().unwrap();
        assert_eq!(
            (failure.code.as_str(), failure.retryable),
            (code, retryable),
            "{number}"
        );
        assert!(!failure.message.contains(number));
    }
}

/// The charge's outcome is unknown: an error, not a failure, and no invitation to retry.
fn assert_unknown(result: Result<ChargeOutcome, ProcessorError>, reference: Option<&str>) {
    match result {
        Err(e @ ProcessorError::OutcomeUnknown { .. }) => {
            assert_eq!(e.reference(), reference, "{e}")
        }
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_error_leaves_the_outcome_unknown() {
    let (stripe, _fake) = spawn_stripe(Duration::from_secs(5)).await;
    let result = stripe
        .charge(&card_charge(
            "4242424242424242",
            money(AMOUNT_SERVER_ERROR, "USD"),
        ))
        .await;
    assert_unknown(result, None);
}

#[tokio::test]
async fn a_slow_gateway_times_out_into_an_unknown_outcome() {
    let (stripe, fake) = spawn_stripe(Duration::from_millis(300)).await;
    let started = Instant::now();
    let result = stripe
        .charge(&card_charge("4242424242424242", money(AMOUNT_SLOW, "USD")))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "did not time out"
    );
    // The request reached Stripe: it may well have charged.
    assert_eq!(fake.received().len(), 1);
    assert_unknown(result, None);
}

#[tokio::test]
async fn rate_limits_and_unreadable_answers_leave_the_outcome_unknown() {
    let (stripe, _fake) = spawn_stripe(Duration::from_secs(5)).await;
    for amount in [AMOUNT_RATE_LIMITED, AMOUNT_GARBLED] {
        let result = stripe
            .charge(&card_charge("4242424242424242", money(amount, "USD")))
            .await;
        assert_unknown(result, None);
    }
    // An unexpected status keeps the intent's id.
    let result = stripe
        .charge(&card_charge(
            "4242424242424242",
            money(AMOUNT_ODD_STATUS, "USD"),
        ))
        .await;
    assert_unknown(result, Some("pi_fake_1"));
}

#[tokio::test]
async fn a_confirm_that_cannot_read_stripe_reports_an_error_not_a_failure() {
    let (stripe, _fake) = spawn_stripe(Duration::from_secs(5)).await;
    for id in ["pi_fake_down", "pi_fake_busy"] {
        let result = stripe.confirm(id).await;
        assert_unknown(result, Some(id));
    }
}

#[tokio::test]
async fn a_refund_whose_answer_is_lost_is_unknown_not_failed() {
    let (stripe, _fake) = spawn_stripe(Duration::from_millis(300)).await;
    for amount in [5000, 7000] {
        let result = stripe
            .refund(&RefundRequest {
                payment_id: "pay_123".into(),
                refund_id: "ref_1".into(),
                charge_reference: "pi_fake_1".into(),
                idempotency_key: "refund_key_1".into(),
                amount: money(amount, "USD"),
            })
            .await;
        assert!(
            matches!(&result, Err(e) if e.is_uncertain()),
            "{amount}: {result:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_gateway_is_a_retryable_failure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let stripe = Stripe::new(StripeConfig::new(base, SECRET));
    let outcome = stripe
        .charge(&card_charge("4242424242424242", money(1000, "USD")))
        .await
        .unwrap();
    assert_eq!(
        outcome.failure().map(|f| (f.code.as_str(), f.retryable)),
        Some(("processor_unavailable", true))
    );
}

#[tokio::test]
async fn a_wrong_secret_is_a_configuration_error() {
    let (base, _fake) = spawn_fake().await;
    let wrong = Stripe::new(StripeConfig::new(base, "sk_test_wrong"));
    let err = wrong
        .charge(&card_charge("4242424242424242", money(1000, "USD")))
        .await
        .unwrap_err();
    assert!(matches!(err, ProcessorError::Misconfigured { .. }), "{err}");
    assert!(!err.to_string().contains("sk_test_wrong"));
}

#[tokio::test]
async fn refunds_send_the_intent_amount_and_key() {
    let (stripe, fake) = spawn_stripe(Duration::from_secs(5)).await;
    let refund = |intent: &str| RefundRequest {
        payment_id: "pay_123".into(),
        refund_id: "ref_1".into(),
        charge_reference: intent.into(),
        idempotency_key: "refund_key_1".into(),
        amount: money(400, "USD"),
    };
    assert_eq!(
        stripe.refund(&refund("pi_fake_1")).await.unwrap(),
        RefundOutcome::Succeeded {
            reference: "re_fake_1".into()
        }
    );
    let sent = &fake.received()[0];
    assert_eq!(sent.path, "/v1/refunds");
    assert_eq!(sent.idempotency_key.as_deref(), Some("refund_key_1"));
    assert_eq!(sent.form["payment_intent"], "pi_fake_1");
    assert_eq!(sent.form["amount"], "400");
    assert_eq!(sent.form["metadata[refund_id]"], "ref_1");
    let RefundOutcome::Failed { failure, .. } =
        stripe.refund(&refund("pi_fake_declined")).await.unwrap()
    else {
        panic!("a refused refund must fail");
    };
    assert_eq!(
        (failure.code.as_str(), failure.retryable),
        ("charge_already_refunded", false)
    );
}

#[tokio::test]
async fn paypal_is_not_sent_to_stripe() {
    let (stripe, fake) = spawn_stripe(Duration::from_secs(5)).await;
    let request = ChargeRequest {
        method: PaymentMethod::Paypal {
            kind: MethodKind::Paypal,
            payer_email: "buyer@example.com".into(),
        },
        ..card_charge("4242424242424242", money(1000, "USD"))
    };
    let outcome = stripe.charge(&request).await.unwrap();
    assert_eq!(
        outcome.failure().map(|f| f.code.as_str()),
        Some("method_not_supported")
    );
    assert!(fake.received().is_empty());
}
