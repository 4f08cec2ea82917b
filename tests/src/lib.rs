//! What every end-to-end test needs: the running local stack (started by
//! `local/scripts/stack.sh test`, which `make test` uses), an HTTP client with the admin
//! key, direct access to the stack's DynamoDB and SQS to check what was (not) written,
//! and a webhook subscription per test process that receives every event announced.
//!
//! Without the stack these tests fail loudly; they never pass vacuously.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

pub mod webhooks;

pub use serde_json;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: end-to-end tests need the local stack. Run `make test`, \
             or `local/scripts/stack.sh test cargo test -p aloft-e2e`"
        )
    })
}

#[derive(Clone)]
pub struct Stack {
    pub url: String,
    pub admin_key: String,
    pub http: reqwest::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// How long the gateway may serve a cached authorizer decision.
    pub authorizer_ttl: Duration,
}

impl Stack {
    pub async fn connect() -> Self {
        let url = env("ALOFT_URL");
        let admin_key = env("ALOFT_ADMIN_KEY");
        env("AWS_ENDPOINT_URL");
        let ttl: u64 = env("ALOFT_AUTHORIZER_TTL_SECONDS")
            .parse()
            .expect("ALOFT_AUTHORIZER_TTL_SECONDS is a number");
        // reqwest is built without a TLS provider of its own (aloft links ring only).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(aloft_shared::trust_roots::https_client())
            .load()
            .await;
        let stack = Self {
            url,
            admin_key,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            authorizer_ttl: Duration::from_secs(ttl),
        };
        // Subscribe before the test writes anything, so none of its events is missed.
        stack.collector().await;
        stack
    }

    /// A request with no credentials at all.
    pub fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
    }

    /// A request with `key`.
    pub fn with_key(&self, key: &str, method: Method, path: &str) -> RequestBuilder {
        self.anonymous(method, path).bearer_auth(key)
    }

    /// A request with the admin key.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.with_key(&self.admin_key, method, path)
    }

    /// Issues a key with `scopes` and returns `(id, secret)`.
    pub async fn key_with_scopes(&self, scopes: &[&str]) -> (String, String) {
        let (status, body) = send(
            self.admin(Method::POST, "/keys")
                .json(&json!({"name": format!("e2e {}", scopes.join(" ")), "scopes": scopes})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["id"].as_str().expect("id").to_owned(),
            body["secret"].as_str().expect("secret").to_owned(),
        )
    }

    /// Items of the users table whose folded email is `email` (one GSI Query).
    pub async fn users_with_email(&self, email: &str) -> usize {
        let out = self
            .dynamodb
            .query()
            .table_name("UsersTable")
            .index_name("by-email")
            .key_condition_expression("email_key = :e")
            .expression_attribute_values(":e", AttributeValue::S(email.to_lowercase()))
            .send()
            .await
            .expect("query users by email");
        out.count() as usize
    }

    pub async fn queue_url(&self, name: &str) -> String {
        self.sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .expect("queue exists")
            .queue_url
            .expect("queue url")
    }

    /// Every event envelope delivered to this test process's webhook subscription that
    /// `wanted` picks: waits until at least one has arrived (up to a minute: events
    /// travel outbox stream → relay → queue → fan-out → delivery), then until none has
    /// arrived for `quiet`. Deliveries are deduplicated by `webhook-id`, as a receiver
    /// must (delivery is at least once).
    pub async fn collect_events(
        &self,
        wanted: impl Fn(&Value) -> bool,
        quiet: Duration,
    ) -> Vec<Value> {
        self.collect_at_least(wanted, 1, quiet).await
    }

    /// Like [`Stack::collect_events`], waiting for `count` matching events first.
    pub async fn collect_at_least(
        &self,
        wanted: impl Fn(&Value) -> bool,
        count: usize,
        quiet: Duration,
    ) -> Vec<Value> {
        let collector = self.collector().await;
        let matching = || -> Vec<Value> {
            let mut seen = std::collections::HashSet::new();
            collector
                .receiver
                .deliveries()
                .into_iter()
                .filter(|d| seen.insert(d.webhook_id.clone()))
                .map(|d| d.envelope())
                .filter(|e| wanted(e))
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while matching().len() < count && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut seen = matching().len();
        let mut last_change = std::time::Instant::now();
        loop {
            let now = matching().len();
            if now != seen {
                seen = now;
                last_change = std::time::Instant::now();
            }
            if last_change.elapsed() >= quiet {
                return matching();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// This process's event collector: a webhook receiver on loopback subscribed to
    /// every event type. Set up by [`Stack::connect`], before the test writes anything.
    pub async fn collector(&self) -> &'static Collector {
        COLLECTOR
            .get_or_init(|| async {
                let receiver = webhooks::Receiver::start();
                // Subscriptions of earlier test processes point at receivers that are
                // gone; remove them so deliveries don't pile up against dead ports.
                let (status, list) = send(self.admin(Method::GET, "/webhooks?limit=100")).await;
                assert_eq!(status, StatusCode::OK, "{list}");
                for w in list["items"].as_array().cloned().unwrap_or_default() {
                    if w["description"] == COLLECTOR_DESCRIPTION {
                        let id = w["id"].as_str().unwrap_or_default();
                        send(self.admin(Method::DELETE, &format!("/webhooks/{id}"))).await;
                    }
                }
                let (status, sub) = send(self.admin(Method::POST, "/webhooks").json(&json!({
                    "url": receiver.url,
                    "event_types": ["*"],
                    "description": COLLECTOR_DESCRIPTION,
                })))
                .await;
                assert_eq!(status, StatusCode::CREATED, "{sub}");
                Collector {
                    receiver,
                    secret: sub["secret"].as_str().expect("secret").to_owned(),
                }
            })
            .await
    }
}

const COLLECTOR_DESCRIPTION: &str = "aloft-e2e event collector";
static COLLECTOR: tokio::sync::OnceCell<Collector> = tokio::sync::OnceCell::const_new();

/// The process-wide subscriber every test reads events from.
pub struct Collector {
    pub receiver: webhooks::Receiver,
    /// The subscription's signing secret: every delivery must verify with it.
    pub secret: String,
}

/// Sends and returns the status and the JSON body (`Null` when there is none).
pub async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let (status, _, body) = send_full(req).await;
    (status, body)
}

pub async fn send_full(req: RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let resp = req.send().await.expect("the local stack answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, headers, body)
}

/// A string no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Now as RFC 3339 UTC, the way the API writes times.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("now formats as RFC 3339")
}

pub fn unique_email() -> String {
    format!("{}@example.com", unique("e2e-"))
}

/// The problem `type` slug of a problem+json body.
pub fn problem_type(body: &Value) -> &str {
    body["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("urn:aloft:problem:"))
        .unwrap_or_default()
}

pub fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).expect("method")
}
