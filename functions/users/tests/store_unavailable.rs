//! DynamoDB out of reach, for real: the users router runs in-process with an SDK client
//! aimed at a port nothing listens on (or at a listener that never answers), with the
//! SDK's own retries and operation timeout, and a request comes back as a 503 with
//! `Retry-After` and a problem+json body that says what happened, never as a 500 or a
//! hung function. No fake DynamoDB: the failures are the SDK's own.
//!
//! The last test needs the stack's DynamoDB (`make test` provides `AWS_ENDPOINT_URL` and
//! the tables) to show that a write that failed this way left nothing behind.

use std::time::{Duration, Instant};

use aloft_shared::aws::SdkConfig;
use aloft_shared::cursor::CursorCodec;
use aloft_shared::dynamo::RequestCounter;
use aloft_shared::http::{EventResponse, handle_event, sample_event};
use aloft_shared::master_key::MasterKey;
use aloft_shared::outbox::Outbox;
use aloft_users::{api, store::UserStore};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use http::{StatusCode, header};

/// How many times the SDK tries one call in these tests (the SDK's standard retry, with
/// a short backoff so the test stays quick).
const ATTEMPTS: u32 = 3;

fn cursors() -> CursorCodec {
    CursorCodec::new(&MasterKey::from_bytes(
        b"store-unavailable-test-master-key-0123456789".to_vec(),
    ))
}

/// An endpoint on this machine that refuses connections: a port the OS just handed
/// out, closed again.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// `base` aimed at `endpoint`, with the standard retry mode (short backoff) and an
/// operation timeout of `timeout`, as `aloft_shared::aws::sdk_config` sets one.
fn aimed_at(base: SdkConfig, endpoint: &str, timeout: Duration) -> SdkConfig {
    base.into_builder()
        .endpoint_url(endpoint)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(10)),
        )
        .timeout_config(TimeoutConfig::builder().operation_timeout(timeout).build())
        .build()
}

/// A configuration that needs nothing from the environment.
fn offline() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "test",
        )))
        .http_client(aloft_shared::trust_roots::https_client())
        .build()
}

/// A users store whose every DynamoDB request goes through `config`, counted.
fn store(config: &SdkConfig, counter: &RequestCounter) -> UserStore {
    let ddb = counter.client(config);
    let outbox = Outbox::new(ddb.clone(), "OutboxTable".into());
    UserStore::new(
        ddb,
        "UsersTable".into(),
        "AuditTable".into(),
        outbox,
        cursors(),
    )
}

fn create_event(email: &str) -> serde_json::Value {
    sample_event("users-create.json", |e| {
        e["body"] = serde_json::json!({"email": email, "name": "Ada Lovelace", "role": "member"})
            .to_string()
            .into();
    })
}

fn unique_email(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::new_v4())
}

/// The answer is a 503 `database-unavailable` with `Retry-After` and a detail that says
/// `cause`.
fn assert_unavailable(r: &EventResponse, cause: &str) {
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(
        r.headers[header::CONTENT_TYPE],
        aloft_shared::problem::CONTENT_TYPE
    );
    let retry_after = r.headers[header::RETRY_AFTER].to_str().unwrap();
    assert_eq!(
        retry_after,
        aloft_shared::dynamo::RETRY_AFTER_UNAVAILABLE_SECS.to_string()
    );
    assert_eq!(r.body["type"], "urn:aloft:problem:database-unavailable");
    assert_eq!(r.body["status"], 503);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains(cause), "{detail}");
    assert!(
        detail.ends_with(&format!("retry after {retry_after} s")),
        "{detail}"
    );
}

#[tokio::test]
async fn create_with_dynamodb_unreachable_is_a_503_after_the_sdks_retries() {
    let counter = RequestCounter::default();
    let config = aimed_at(offline(), &closed_port(), Duration::from_secs(4));
    let router = api::router(store(&config, &counter));

    let r = handle_event(router, &create_event(&unique_email("unreachable"))).await;

    assert_unavailable(&r, "the database could not be reached");
    // The SDK tried the one transaction a create is, as often as its retry mode allows,
    // before the function gave up.
    assert_eq!(
        counter.take(),
        [("TransactWriteItems".to_owned(), ATTEMPTS as usize)].into()
    );
}

#[tokio::test]
async fn a_database_that_never_answers_is_a_503_within_the_operation_timeout() {
    // Accepts connections and never says a word: a hung network path, not a DynamoDB.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let timeout = Duration::from_millis(500);
    let config = aimed_at(offline(), &endpoint, timeout);
    let router = api::router(store(&config, &RequestCounter::default()));

    let started = Instant::now();
    let r = handle_event(router, &create_event(&unique_email("hung"))).await;
    let took = started.elapsed();
    held.abort();

    assert_unavailable(&r, "the database did not answer in time");
    assert!(
        took >= timeout && took < timeout * 4,
        "the operation timeout bounds the request: took {took:?}"
    );
}

/// An update reads the user from DynamoDB, then writes the new version, its audit entry,
/// both email claims and its event in one transaction. With the reads answered by the
/// local stack and the transaction unable to reach it, the caller gets a 503 and the
/// user, its email claims and its history are exactly as before.
#[tokio::test]
async fn an_update_whose_write_cannot_reach_dynamodb_changes_nothing() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run these tests with `make test`, which starts the local stack"
    );
    let stack = aloft_shared::aws::sdk_config().await;
    let healthy = api::router(store(&stack, &RequestCounter::default()));

    let email = unique_email("before");
    let r = handle_event(healthy.clone(), &create_event(&email)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();

    // Reads go to the stack; the transaction goes to a closed port. (Not `stack`
    // re-aimed: `AWS_ENDPOINT_URL` in the environment would win over its endpoint.)
    let reads = aws_sdk_dynamodb::Client::new(&stack);
    let writes = RequestCounter::default().client(&aimed_at(
        offline(),
        &closed_port(),
        Duration::from_secs(4),
    ));
    let half_reachable = api::router(UserStore::new(
        reads,
        "UsersTable".into(),
        "AuditTable".into(),
        Outbox::new(writes, "OutboxTable".into()),
        cursors(),
    ));
    let new_email = unique_email("after");
    let at_user = |file: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        sample_event(file, |e| {
            e["rawPath"] = format!("/users/{id}").into();
            e["pathParameters"]["id"] = id.clone().into();
            edit(e);
        })
    };
    let update = at_user("users-update.json", &|e| {
        e["body"] = serde_json::json!({"email": new_email, "name": "Changed"})
            .to_string()
            .into();
    });
    let r = handle_event(half_reachable, &update).await;
    assert_unavailable(&r, "the database could not be reached");

    let r = handle_event(healthy.clone(), &at_user("users-get.json", &|_| {})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["email"], email);
    assert_eq!(r.body["name"], "Ada Lovelace");
    assert_eq!(r.body["version"], 1);
    let r = handle_event(
        healthy.clone(),
        &sample_event("users-audit.json", |e| {
            e["rawPath"] = format!("/users/{id}/audit").into();
            e["pathParameters"]["id"] = id.clone().into();
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["items"].as_array().unwrap().len(),
        1,
        "only the creation: {}",
        r.body
    );
    // The new email was never claimed: another user can take it.
    let r = handle_event(healthy, &create_event(&new_email)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}
