//! Money under uncertainty, process-level: the payments API and the reconciler on the
//! local stack's tables, with a fake Stripe on loopback that keeps its own ledger,
//! deduplicates by `Idempotency-Key` as Stripe does, and can commit a charge or refund
//! and then stall past the adapter's timeout.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aloft_payments::processor::ProcessorRegistry;
use aloft_payments::processor::stripe::{Stripe, StripeConfig};
use aloft_payments::reconcile::Reconciler;
use aloft_payments::service::{CREATE_OPERATION, Caller, Payments};
use aloft_shared::idempotency::{self, IdempotencyKey};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

const SECRET: &str = "sk_test_uncertain";
/// The adapter's timeout; a stalling fake answers well after it.
const TIMEOUT: Duration = Duration::from_millis(400);
const STALL: Duration = Duration::from_millis(1500);

#[derive(Clone, Default)]
struct FakeStripe {
    /// Intents by Idempotency-Key, in creation order.
    intents: Arc<Mutex<Vec<(String, Value)>>>,
    refunds: Arc<Mutex<HashMap<String, Value>>>,
    stall: Arc<AtomicBool>,
}

impl FakeStripe {
    fn charges(&self, payment_id: &str) -> usize {
        let intents = self.intents.lock().unwrap();
        intents
            .iter()
            .filter(|(_, i)| i["metadata"]["payment_id"] == payment_id)
            .count()
    }

    fn refunds(&self, payment_id: &str) -> usize {
        let refunds = self.refunds.lock().unwrap();
        refunds
            .values()
            .filter(|r| r["metadata"]["payment_id"] == payment_id)
            .count()
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {SECRET}"))
}

fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

async fn create_intent(
    State(fake): State<FakeStripe>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let key = headers["idempotency-key"].to_str().unwrap().to_owned();
    let form = form(&body);
    let intent = {
        let mut intents = fake.intents.lock().unwrap();
        match intents.iter().find(|(k, _)| *k == key) {
            // Stripe answers a repeated key with the first result.
            Some((_, intent)) => intent.clone(),
            None => {
                let intent = json!({
                    "id": format!("pi_unc_{}", uuid::Uuid::new_v4().simple()),
                    "object": "payment_intent",
                    "status": "succeeded",
                    "amount": form["amount"].parse::<i64>().unwrap(),
                    "created": aloft_shared::clock::now().unix_timestamp(),
                    "metadata": {"payment_id": form["metadata[payment_id]"]},
                });
                intents.push((key, intent.clone()));
                intent
            }
        }
    };
    if fake.stall.load(Ordering::SeqCst) {
        tokio::time::sleep(STALL).await;
    }
    axum::Json(intent).into_response()
}

async fn list_intents(State(fake): State<FakeStripe>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let data: Vec<Value> = fake
        .intents
        .lock()
        .unwrap()
        .iter()
        .map(|(_, i)| i.clone())
        .collect();
    axum::Json(json!({"object": "list", "data": data, "has_more": false})).into_response()
}

async fn get_intent(State(fake): State<FakeStripe>, Path(id): Path<String>) -> Response {
    let intents = fake.intents.lock().unwrap();
    match intents.iter().find(|(_, i)| i["id"] == id.as_str()) {
        Some((_, i)) => axum::Json(i.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn create_refund(
    State(fake): State<FakeStripe>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = headers["idempotency-key"].to_str().unwrap().to_owned();
    let form = form(&body);
    let refund = fake
        .refunds
        .lock()
        .unwrap()
        .entry(key)
        .or_insert_with(|| {
            json!({"id": format!("re_unc_{}", uuid::Uuid::new_v4().simple()), "object": "refund",
                   "status": "succeeded", "metadata": {"payment_id": form["metadata[payment_id]"]}})
        })
        .clone();
    if fake.stall.load(Ordering::SeqCst) {
        tokio::time::sleep(STALL).await;
    }
    axum::Json(refund).into_response()
}

async fn spawn_fake() -> (String, FakeStripe) {
    let fake = FakeStripe::default();
    let app = Router::new()
        .route("/v1/payment_intents", post(create_intent).get(list_intents))
        .route("/v1/payment_intents/{id}", get(get_intent))
        .route("/v1/refunds", post(create_refund))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, fake)
}

/// The reconciler here runs with no threshold: a test's run must not settle another
/// test's payment while its request is still in flight (against another fake Stripe).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct World {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    stack: common::Stack,
    processors: ProcessorRegistry,
    fake: FakeStripe,
    user_id: String,
}

impl World {
    async fn new() -> Self {
        let serial = SERIAL.lock().await;
        let stack = common::stack().await;
        let (base, fake) = spawn_fake().await;
        let stripe = Stripe::new(StripeConfig {
            timeout: TIMEOUT,
            ..StripeConfig::new(base, SECRET)
        });
        let user_id = stack.user().await;
        Self {
            _serial: serial,
            processors: ProcessorRegistry::new(vec![Arc::new(stripe)]),
            stack,
            fake,
            user_id,
        }
    }

    fn api(&self) -> Payments {
        self.stack.api_with(
            aloft_shared::aws::dynamodb(&self.stack.sdk),
            self.processors.clone(),
        )
    }

    fn reconciler(&self) -> Reconciler {
        Reconciler {
            store: self
                .stack
                .store(aloft_shared::aws::dynamodb(&self.stack.sdk)),
            processors: self.processors.clone(),
            threshold: Duration::ZERO,
        }
    }

    fn body(&self, amount: i64) -> Value {
        json!({"user_id": self.user_id, "amount": amount, "currency": "USD",
               "method": {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}})
    }

    async fn create(&self, key: &str, body: &Value) -> common::Response {
        let (key, body) = (key.to_owned(), body.to_string());
        common::send(self.api(), "payments-create.json", move |e| {
            e["body"] = body.into();
            e["headers"]["idempotency-key"] = key.into();
        })
        .await
    }

    async fn refund(&self, id: &str, key: &str, body: Value) -> common::Response {
        let (id, key) = (id.to_owned(), key.to_owned());
        common::send(self.api(), "payments-refund.json", move |e| {
            e["body"] = body.to_string().into();
            e["headers"]["idempotency-key"] = key.into();
            e["pathParameters"]["id"] = id.clone().into();
            e["rawPath"] = format!("/payments/{id}/refunds").into();
            e["requestContext"]["http"]["path"] = format!("/payments/{id}/refunds").into();
        })
        .await
    }

    async fn get(&self, id: &str) -> Value {
        let stored = self.api().store.get(id).await.unwrap().unwrap();
        json!({"payment": stored.payment, "refunds": stored.refunds, "refundable": stored.refundable})
    }
}

#[tokio::test]
async fn a_charge_whose_answer_is_lost_stays_processing_and_the_reconciler_settles_it_once() {
    let w = World::new().await;
    w.fake.stall.store(true, Ordering::SeqCst);
    let r = w
        .create(&uuid::Uuid::new_v4().to_string(), &w.body(1500))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    // Stripe charged; its answer never came: unknown, not failed, no retry invited.
    assert_eq!(w.fake.charges(&id), 1);
    assert_eq!(r.body["status"], "processing", "{}", r.body);
    assert_eq!(r.body["failure"]["code"], "outcome_unknown");
    assert_eq!(r.body["failure"]["retryable"], false);

    w.fake.stall.store(false, Ordering::SeqCst);
    let report = w.reconciler().run().await.unwrap();
    assert!(report.settled >= 1, "{report:?}");
    let p = w.get(&id).await;
    assert_eq!(p["payment"]["status"], "succeeded", "{p}");
    assert!(
        p["payment"]["processor_reference"]
            .as_str()
            .unwrap()
            .starts_with("pi_unc_")
    );
    assert!(p["payment"]["failure"].is_null(), "{p}");
    assert_eq!(p["refundable"], 1500);
    assert_eq!(w.fake.charges(&id), 1, "one charge at the gateway");
    // A second run finds nothing left to do for it.
    w.reconciler().run().await.unwrap();
    assert_eq!(w.get(&id).await["payment"]["status"], "succeeded");
}

#[tokio::test]
async fn a_refund_that_times_out_keeps_its_reservation_until_the_reconciler_settles_it() {
    let w = World::new().await;
    let r = w
        .create(&uuid::Uuid::new_v4().to_string(), &w.body(2000))
        .await;
    assert_eq!(r.body["status"], "succeeded", "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();

    w.fake.stall.store(true, Ordering::SeqCst);
    let r = w
        .refund(&id, &uuid::Uuid::new_v4().to_string(), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["status"], "pending", "{:?}", r.body);
    assert_eq!(r.body["failure"]["code"], "outcome_unknown");
    let p = w.get(&id).await;
    assert_eq!(p["refundable"], 0, "the reservation is kept: {p}");

    // A second refund cannot take what the first may have refunded.
    let r = w
        .refund(&id, &uuid::Uuid::new_v4().to_string(), json!({"amount": 1}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(common::problem(&r.body), "payment-not-refundable");

    w.fake.stall.store(false, Ordering::SeqCst);
    w.reconciler().run().await.unwrap();
    let p = w.get(&id).await;
    assert_eq!(p["payment"]["status"], "refunded", "{p}");
    assert_eq!(p["payment"]["amount_refunded"], 2000);
    assert_eq!(p["refunds"][0]["status"], "succeeded", "{p}");
    assert_eq!(w.fake.refunds(&id), 1, "one refund at the gateway");
}

#[tokio::test]
async fn a_refund_retried_with_its_key_while_the_first_runs_is_in_progress() {
    let w = World::new().await;
    let r = w
        .create(&uuid::Uuid::new_v4().to_string(), &w.body(900))
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    // Slow but in time: the first refund is still running when the retry arrives.
    w.fake.stall.store(true, Ordering::SeqCst);
    let key = uuid::Uuid::new_v4().to_string();
    let first = w.refund(&id, &key, json!({}));
    let retry = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        w.refund(&id, &key, json!({})).await
    };
    let (_, retry) = tokio::join!(first, retry);
    assert_eq!(retry.status, StatusCode::CONFLICT, "{:?}", retry.body);
    assert_eq!(common::problem(&retry.body), "idempotency-in-progress");
}

/// Simulates a create that took its key `age` ago and died: after the `processing`
/// payment was stored, and, with `charged`, after its charge reached the gateway.
async fn died_mid_flight(w: &World, key: &str, body: &Value, charged: bool) -> String {
    let api = w.api();
    let mut headers = http::HeaderMap::new();
    headers.insert("idempotency-key", key.parse().unwrap());
    let caller = Caller {
        key_id: "0123456789abcdef0123456789abcdef".into(),
        idempotency_key: IdempotencyKey::from_headers(&headers).unwrap(),
        fingerprint: idempotency::fingerprint(
            api.idempotency_key.get().await.unwrap(),
            "POST",
            "/payments",
            body,
        ),
    };
    let gateway_key = api.gateway_key(&caller, CREATE_OPERATION).await.unwrap();
    let started = aloft_shared::clock::now() - Duration::from_secs(120);
    let payment: aloft_payments::domain::Payment = serde_json::from_value(json!({
        "id": uuid::Uuid::new_v4().to_string(), "user_id": w.user_id, "amount": body["amount"],
        "currency": "USD", "method": {"type": "card", "brand": "visa", "last4": "4242", "exp_month": 12,
        "exp_year": 2034, "fingerprint": "fp"}, "status": "processing", "processor": "stripe",
        "created_at": aloft_shared::clock::rfc3339(started), "updated_at": aloft_shared::clock::rfc3339(started),
    }))
    .unwrap();
    let (_, take) = api
        .store
        .idempotency
        .take(
            &caller.key_id,
            CREATE_OPERATION,
            &caller.idempotency_key,
            &caller.fingerprint,
            &payment.id,
            started.unix_timestamp(),
        )
        .unwrap();
    api.store.begin(take, &payment, &gateway_key).await.unwrap();
    if charged {
        let stripe = w.processors.get("stripe").unwrap();
        let number = aloft_payments::domain::CardNumber::parse("4242424242424242").unwrap();
        let outcome = stripe
            .charge(&aloft_payments::processor::ChargeRequest {
                payment_id: payment.id.clone(),
                idempotency_key: gateway_key,
                amount: aloft_payments::domain::Money::new(
                    body["amount"].as_i64().unwrap(),
                    aloft_payments::domain::Currency::parse("USD").unwrap(),
                )
                .unwrap(),
                method: aloft_payments::domain::PaymentMethod::Card {
                    cvc: aloft_payments::domain::Cvc::parse("123", number.brand()).unwrap(),
                    number,
                    expiry: aloft_payments::domain::Expiry {
                        month: 12,
                        year: 2034,
                    },
                },
                description: None,
            })
            .await;
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    payment.id
}

#[tokio::test]
async fn after_the_lock_expired_the_same_request_resumes_its_payment_and_another_is_refused() {
    let w = World::new().await;
    let key = uuid::Uuid::new_v4().to_string();
    let body = w.body(1234);
    let id = died_mid_flight(&w, &key, &body, true).await;
    assert_eq!(w.fake.charges(&id), 1);

    // A different body with the key: still refused, dead holder or not.
    let r = w.create(&key, &w.body(4321)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(common::problem(&r.body), "idempotency-key-reused");

    // The same request resumes the same payment with the same gateway key.
    let r = w.create(&key, &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["status"], "succeeded");
    assert_eq!(w.fake.charges(&id), 1, "the gateway saw one charge");
    // And now it replays.
    let again = w.create(&key, &body).await;
    assert_eq!(again.body["id"], id.as_str());
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
}

#[tokio::test]
async fn a_payment_that_died_before_its_charge_is_failed_never_sent_by_the_reconciler() {
    let w = World::new().await;
    let id = died_mid_flight(&w, &uuid::Uuid::new_v4().to_string(), &w.body(777), false).await;
    w.reconciler().run().await.unwrap();
    let p = w.get(&id).await;
    assert_eq!(p["payment"]["status"], "failed", "{p}");
    assert_eq!(p["payment"]["failure"]["code"], "never_sent");
    assert_eq!(w.fake.charges(&id), 0);
}
