//! What every end-to-end test needs: the running local stack (started by
//! `local/scripts/stack.sh test`, which `make test` uses), an HTTP client with the admin
//! key, and direct access to the stack's DynamoDB and SQS to check what was (not)
//! written and what was announced.
//!
//! Without the stack these tests fail loudly; they never pass vacuously.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

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
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self {
            url,
            admin_key,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            authorizer_ttl: Duration::from_secs(ttl),
        }
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

    /// Every event envelope on the notifications queue that `wanted` picks, waiting
    /// until none has arrived for `quiet`.
    ///
    /// One thread per test process drains the queue (receive, then delete) into a log
    /// that every test reads: a message is seen once, by all, and no test has to page
    /// past the others' messages (handing them back would make the queue's order decide
    /// what a test sees in time).
    pub async fn collect_events(
        &self,
        wanted: impl Fn(&Value) -> bool,
        quiet: Duration,
    ) -> Vec<Value> {
        let log = event_log(self.queue_url("NotificationsQueue").await);
        let mut seen = 0;
        let mut last_change = std::time::Instant::now();
        loop {
            let count = log.lock().unwrap().iter().filter(|e| wanted(e)).count();
            if count != seen {
                seen = count;
                last_change = std::time::Instant::now();
            }
            if last_change.elapsed() >= quiet {
                return log
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|e| wanted(e))
                    .cloned()
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

type EventLog = std::sync::Arc<std::sync::Mutex<Vec<Value>>>;

/// The process-wide log of drained events, started on first use.
fn event_log(queue_url: String) -> EventLog {
    static LOG: std::sync::OnceLock<EventLog> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = EventLog::default();
        let sink = log.clone();
        // Its own runtime: each #[tokio::test] has one that ends with the test.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("drain runtime");
            rt.block_on(drain(queue_url, sink));
        });
        log
    })
    .clone()
}

async fn drain(queue_url: String, log: EventLog) {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    loop {
        let Ok(out) = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        for m in out.messages.unwrap_or_default() {
            let body: Value =
                serde_json::from_str(m.body().unwrap_or_default()).unwrap_or(Value::Null);
            log.lock().unwrap().push(body);
            let _ = sqs
                .delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await;
        }
    }
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
