//! The delivery worker's HTTP side against a receiver on loopback, written the way a
//! subscriber would: it verifies the Standard Webhooks signature itself, answers
//! failures then success, hangs past the timeout, and redirects (never followed).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aloft_notifier::domain::{Delivery, DeliveryStatus, ErrorClass, Next, RetrySchedule};
use aloft_notifier::sender::{Outgoing, Sender};
use aloft_notifier::signing::{SigningSecret, signature_header};
use aloft_notifier::ssrf::{UrlPolicy, WebhookUrl};
use aloft_shared::ssrf::GuardedResolver;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: String,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer, in order; 204 after them.
    script: Arc<Mutex<Vec<u16>>>,
}

async fn hook(
    State(r): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    r.got.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let status = {
        let mut script = r.script.lock().unwrap();
        if script.is_empty() {
            204
        } else {
            script.remove(0)
        }
    };
    let body = format!("{{\"answer\":{status},\"pad\":\"{}\"}}", "x".repeat(3000));
    (StatusCode::from_u16(status).unwrap(), body).into_response()
}

async fn slow() -> StatusCode {
    tokio::time::sleep(Duration::from_secs(30)).await;
    StatusCode::NO_CONTENT
}

async fn redirect() -> Response {
    (StatusCode::FOUND, [(header::LOCATION, "/hook")], "moved").into_response()
}

/// A receiver on 127.0.0.1; its base URL.
async fn start(receiver: Receiver) -> String {
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/slow", post(slow))
        .route("/redirect", post(redirect))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Standard Webhooks verification as a receiver library does it, independent of ours.
fn verifies(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let h = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", h("webhook-id"), h("webhook-timestamp"), body).as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    h("webhook-signature")
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

async fn send(sender: &Sender, url: &str, body: &str) -> aloft_notifier::domain::Attempt {
    let url = WebhookUrl::parse(url, UrlPolicy::LOCAL).unwrap();
    let secret = SigningSecret::parse(SECRET).unwrap();
    let ts = 1_700_000_000;
    let signature = signature_header(&[secret], "msg_test", ts, body.as_bytes());
    sender
        .send(
            &Outgoing {
                url: &url,
                webhook_id: "msg_test",
                timestamp: ts,
                signature: &signature,
                body,
            },
            "2026-01-01T00:00:00.000Z".into(),
        )
        .await
}

#[tokio::test]
async fn a_delivery_is_signed_so_a_standard_webhooks_receiver_verifies_it() {
    let receiver = Receiver::default();
    let base = start(receiver.clone()).await;
    let sender = Sender::new(UrlPolicy::LOCAL, Duration::from_secs(5));
    let body =
        r#"{"id":"e1","type":"user.created","occurred_at":"t","source":"aloft.users","data":{}}"#;
    let attempt = send(&sender, &format!("{base}/hook"), body).await;
    assert!(attempt.succeeded(), "{attempt:?}");
    assert_eq!(attempt.http_status, Some(204));

    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.body, body);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["webhook-id"], "msg_test");
    assert_eq!(r.headers["webhook-timestamp"], "1700000000");
    assert!(verifies(SECRET, &r.headers, &r.body));
    assert!(!verifies("whsec_bm90IHRoZSBzZWNyZXQ=", &r.headers, &r.body));
}

#[tokio::test]
async fn a_receiver_failing_then_answering_is_retried_on_the_schedule_until_delivered() {
    let receiver = Receiver::default();
    receiver.script.lock().unwrap().extend([500, 503]);
    let base = start(receiver.clone()).await;
    let sender = Sender::new(UrlPolicy::LOCAL, Duration::from_secs(5));
    let schedule: RetrySchedule = "0,5,300,1800".parse().unwrap();
    let mut delivery = Delivery::new("e1", "user.created", "s1", "t0");
    let mut nexts = Vec::new();
    for _ in 0..3 {
        let attempt = send(&sender, &format!("{base}/hook"), "{}").await;
        nexts.push(delivery.record(attempt, &schedule, "t", 0));
    }
    assert_eq!(
        nexts,
        [
            Next::Retry {
                attempt: 1,
                delay_secs: 5
            },
            Next::Retry {
                attempt: 2,
                delay_secs: 300
            },
            Next::Delivered
        ]
    );
    assert_eq!(delivery.status, DeliveryStatus::Delivered);
    let statuses: Vec<_> = delivery.attempts.iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, [Some(500), Some(503), Some(204)]);
    assert_eq!(delivery.attempts[0].error, Some(ErrorClass::Status));
    // Only the first KiB of the response body is kept.
    let kept = delivery.attempts[0].response_body.as_deref().unwrap();
    assert!(
        kept.starts_with("{\"answer\":500") && kept.len() == 1024,
        "{}",
        kept.len()
    );
}

#[tokio::test]
async fn a_receiver_that_hangs_is_a_timeout() {
    let base = start(Receiver::default()).await;
    let sender = Sender::new(UrlPolicy::LOCAL, Duration::from_millis(300));
    let started = std::time::Instant::now();
    let attempt = send(&sender, &format!("{base}/slow"), "{}").await;
    assert_eq!(attempt.error, Some(ErrorClass::Timeout), "{attempt:?}");
    assert_eq!(attempt.http_status, None);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_redirect_is_a_failed_attempt_and_is_not_followed() {
    let receiver = Receiver::default();
    let base = start(receiver.clone()).await;
    let sender = Sender::new(UrlPolicy::LOCAL, Duration::from_secs(5));
    let attempt = send(&sender, &format!("{base}/redirect"), "{}").await;
    assert_eq!(attempt.http_status, Some(302));
    assert_eq!(attempt.error, Some(ErrorClass::Status));
    assert!(!attempt.succeeded());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        receiver
            .got
            .lock()
            .unwrap()
            .iter()
            .all(|r| r.path != "/hook"),
        "redirect followed"
    );
}

#[tokio::test]
async fn nothing_closed_answers_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let sender = Sender::new(UrlPolicy::LOCAL, Duration::from_secs(5));
    let attempt = send(&sender, &format!("http://127.0.0.1:{port}/hook"), "{}").await;
    assert_eq!(attempt.error, Some(ErrorClass::Connect), "{attempt:?}");
}

#[tokio::test]
async fn strict_mode_refuses_loopback_literals_and_names_resolving_to_them() {
    let receiver = Receiver::default();
    let base = start(receiver.clone()).await;
    // A URL accepted in local mode, delivered by a strict sender (policy tightened since).
    let sender = Sender::new(UrlPolicy::STRICT, Duration::from_secs(5));
    let attempt = send(&sender, &format!("{base}/hook"), "{}").await;
    assert_eq!(attempt.error, Some(ErrorClass::SsrfRefused));
    assert!(receiver.got.lock().unwrap().is_empty());

    // The resolver inside the client: a name that resolves to loopback is refused.
    let strict = GuardedResolver::new(UrlPolicy::STRICT.addresses());
    assert!(strict.resolve("localhost").await.is_err());
    let local = GuardedResolver::new(UrlPolicy::LOCAL.addresses());
    let addrs = local.resolve("localhost").await.unwrap();
    assert!(addrs.iter().all(|a| a.is_loopback()) && !addrs.is_empty());
}
