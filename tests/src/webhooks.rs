//! A webhook receiver on loopback, written the way a subscriber would write one: it
//! records every delivery (headers, body, when), verifies Standard Webhooks signatures
//! and answers with whatever the test scripts (a status per delivery, or a hang).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde_json::Value;

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub webhook_id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub body: String,
    pub received_at: Instant,
}

impl Delivery {
    pub fn envelope(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// Whether `secret` (`whsec_…`) signed this delivery, per the Standard Webhooks
    /// specification: any `v1,` signature in the header that equals
    /// base64(HMAC-SHA256(base64-decoded secret, "{id}.{timestamp}.{body}")).
    pub fn signed_by(&self, secret: &str) -> bool {
        verify(
            secret,
            &self.webhook_id,
            &self.timestamp,
            &self.body,
            &self.signature,
        )
    }
}

pub fn verify(secret: &str, id: &str, timestamp: &str, body: &str, header: &str) -> bool {
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|k| B64.decode(k).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(&key) else {
        return false;
    };
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let expected = B64.encode(mac.finalize().into_bytes());
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

/// What the receiver answers to the next delivery.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// Never answers (the sender's timeout decides).
    Hang,
}

#[derive(Default)]
struct Inner {
    deliveries: Vec<Delivery>,
    /// Answers for deliveries whose body contains the marker, in order. A subscription
    /// receives other tests' events of the same type too; they get 204.
    scripts: Vec<(String, VecDeque<Answer>)>,
}

/// A receiver serving on its own thread and runtime, so it outlives any one test's
/// runtime.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1 that answers 204 unless scripted otherwise.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let inner = Arc::new(Mutex::new(Inner::default()));
        let state = inner.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = Router::new()
                    .fallback(axum::routing::post(receive))
                    .with_state(state);
                let _ = axum::serve(listener, app).await;
            });
        });
        Self {
            url: format!("http://{addr}/hook"),
            inner,
        }
    }

    /// The answers to give the next deliveries whose body contains `marker`, in order;
    /// after them, 204.
    pub fn script(&self, marker: &str, answers: &[Answer]) {
        self.inner
            .lock()
            .unwrap()
            .scripts
            .push((marker.to_owned(), answers.iter().copied().collect()));
    }

    /// Drops the answers not given yet: 204 from now on.
    pub fn clear_script(&self) {
        self.inner.lock().unwrap().scripts.clear();
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner.lock().unwrap().deliveries.clone()
    }

    /// Waits (up to `deadline`) until `count` deliveries satisfy `wanted`, then returns
    /// all that do.
    pub async fn wait_for(
        &self,
        wanted: impl Fn(&Delivery) -> bool,
        count: usize,
        deadline: Duration,
    ) -> Vec<Delivery> {
        let start = Instant::now();
        loop {
            let got: Vec<_> = self.deliveries().into_iter().filter(&wanted).collect();
            if got.len() >= count || start.elapsed() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    let answer = {
        let mut inner = inner.lock().unwrap();
        let answer = inner
            .scripts
            .iter_mut()
            .find(|(marker, answers)| !answers.is_empty() && text.contains(marker.as_str()))
            .and_then(|(_, answers)| answers.pop_front());
        inner.deliveries.push(Delivery {
            webhook_id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            content_type: header("content-type"),
            body: text,
            received_at: Instant::now(),
        });
        answer
    };
    match answer {
        None => StatusCode::NO_CONTENT,
        Some(Answer::Status(s)) => StatusCode::from_u16(s).unwrap_or(StatusCode::NO_CONTENT),
        Some(Answer::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::NO_CONTENT
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_the_standard_webhooks_example() {
        // The example in the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = "1614265330";
        let body = r#"{"test": 2432232314}"#;
        let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert!(verify(secret, id, ts, body, sig));
        assert!(verify(secret, id, ts, body, &format!("v1,bm9wZQ== {sig}")));
        assert!(!verify(secret, id, "1614265331", body, sig));
        assert!(!verify("whsec_bm9wZQ==", id, ts, body, sig));
    }
}
