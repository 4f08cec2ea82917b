//! The sample API Gateway events in `events/http/` go through `lambda_http`'s event
//! parsing into the users router, against the local stack's real tables: the route
//! matches, the authorizer context becomes the caller, path and query parameters arrive.
//!
//! Needs the stack's DynamoDB (`make test` provides `AWS_ENDPOINT_URL` and the tables).

use aloft_shared::cursor::CursorCodec;
use aloft_shared::master_key::MasterKey;
use aloft_shared::outbox::Outbox;
use aloft_users::{api, store::UserStore};
use http::StatusCode;

async fn store() -> UserStore {
    store_counting(&aloft_shared::dynamo::RequestCounter::default()).await
}

/// The store with every DynamoDB request it sends counted by `counter`.
async fn store_counting(counter: &aloft_shared::dynamo::RequestCounter) -> UserStore {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run these tests with `make test`, which starts the local stack"
    );
    let sdk = aloft_shared::aws::sdk_config().await;
    let ddb = counter.client(&sdk);
    let outbox = Outbox::new(ddb.clone(), "OutboxTable".into());
    let cursors = CursorCodec::new(&MasterKey::from_bytes(
        b"sample-events-test-master-key-0123456789".to_vec(),
    ));
    UserStore::new(
        ddb,
        "UsersTable".into(),
        "AuditTable".into(),
        outbox,
        cursors,
    )
}

/// Sends a sample event through `lambda_http` into the router; status and JSON body.
async fn send(
    file: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> (StatusCode, serde_json::Value) {
    let event = aloft_shared::http::sample_event(file, edit);
    let r = aloft_shared::http::handle_event(api::router(store().await), &event).await;
    (r.status, r.body)
}

#[tokio::test]
async fn create_event_creates_a_user_as_the_authorizers_key() {
    let email = format!("sample-{}@example.com", uuid::Uuid::new_v4());
    let (status, body) = send("users-create.json", |e| {
        e["body"] = serde_json::json!({"email": email, "name": "Ada Lovelace", "role": "admin"})
            .to_string()
            .into();
    })
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["email"], email);

    let id = body["id"].as_str().unwrap().to_owned();
    let (status, audit) = send("users-audit.json", |e| {
        e["rawPath"] = format!("/users/{id}/audit").into();
        e["pathParameters"]["id"] = id.clone().into();
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    assert_eq!(
        audit["items"][0]["actor"],
        "0123456789abcdef0123456789abcdef"
    );
}

#[tokio::test]
async fn id_routes_reach_the_handler_with_the_path_parameter() {
    for file in [
        "users-get.json",
        "users-update.json",
        "users-delete.json",
        "users-audit.json",
    ] {
        let (status, body) = send(file, |_| {}).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{file}: {body}");
        assert_eq!(body["type"], "urn:aloft:problem:user-not-found", "{file}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("6f1c2b1e-2d7a-4d3e-9a57-0c1b8e9f4a21"),
            "{file}"
        );
    }
}

#[tokio::test]
async fn search_event_reads_its_query_string() {
    let (status, body) = send("users-search.json", |_| {}).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["items"].as_array().unwrap().len() <= 2,
        "limit=2 from the query string: {body}"
    );
}

#[tokio::test]
async fn event_without_authorizer_context_is_refused() {
    let (status, body) = send("users-search.json", |e| {
        e["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("authorizer");
    })
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

/// The outbox rides DynamoDB Streams: a create, an update and a delete are each exactly
/// one request (the transaction carrying the event), with nothing sent to SQS and no
/// record marked sent on the request path.
#[tokio::test]
async fn each_write_is_one_transaction_and_nothing_else() {
    let counter = aloft_shared::dynamo::RequestCounter::default();
    let router = api::router(store_counting(&counter).await);
    let email = format!("one-request-{}@example.com", uuid::Uuid::new_v4());
    let create = aloft_shared::http::sample_event("users-create.json", |e| {
        e["body"] = serde_json::json!({"email": email, "name": "Ada", "role": "member"})
            .to_string()
            .into();
    });
    let r = aloft_shared::http::handle_event(router.clone(), &create).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        counter.take(),
        [("TransactWriteItems".to_owned(), 1)].into(),
        "a create is one transaction"
    );
    let id = r.body["id"].as_str().unwrap().to_owned();
    let delete = aloft_shared::http::sample_event("users-delete.json", |e| {
        e["rawPath"] = format!("/users/{id}").into();
        e["pathParameters"]["id"] = id.clone().into();
    });
    let r = aloft_shared::http::handle_event(router, &delete).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    // A delete reads the user it removes, then writes once.
    assert_eq!(
        counter.take(),
        [
            ("GetItem".to_owned(), 1),
            ("TransactWriteItems".to_owned(), 1)
        ]
        .into()
    );
}
