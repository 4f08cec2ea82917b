//! The sample API Gateway events in `events/http/webhooks-*.json` go through
//! `lambda_http`'s parsing into the webhooks router: each route matches and checks its
//! scope, and bad input is refused before anything is written. No AWS call is made
//! (the clients point nowhere), so every case here is decided before the store.

use aloft_notifier::api::{self, Webhooks};
use aloft_notifier::queue::DeliveryQueue;
use aloft_notifier::settings::Settings;
use aloft_notifier::store::WebhookStore;
use aloft_shared::cursor::CursorCodec;
use aloft_shared::master_key::{LazyKey, MasterKey};
use aloft_shared::outbox::Outbox;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use http::StatusCode;

fn state() -> Webhooks {
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .http_client(aloft_shared::trust_roots::https_client())
        .build();
    let master = MasterKey::from_bytes(b"sample-events-test-master-key-0123456789".to_vec());
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    Webhooks {
        store: WebhookStore::new(
            ddb.clone(),
            "WebhooksTable".into(),
            Outbox::new(ddb, "OutboxTable".into()),
            CursorCodec::new(&master),
        ),
        queue: DeliveryQueue::new(aws_sdk_sqs::Client::new(&sdk), "unused".into()),
        signing_key: LazyKey::new(&master, aloft_notifier::signing::KEY_PURPOSE),
        settings: Settings::default(),
    }
}

async fn send(
    file: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> (StatusCode, serde_json::Value) {
    let event = aloft_shared::http::sample_event(file, edit);
    let r = aloft_shared::http::handle_event(api::router(state()), &event).await;
    (r.status, r.body)
}

const SAMPLES: &[(&str, &str)] = &[
    ("webhooks-create.json", "webhooks:write"),
    ("webhooks-list.json", "webhooks:read"),
    ("webhooks-get.json", "webhooks:read"),
    ("webhooks-update.json", "webhooks:write"),
    ("webhooks-delete.json", "webhooks:write"),
    ("webhooks-rotate-secret.json", "webhooks:write"),
    ("webhooks-test.json", "webhooks:write"),
    ("webhooks-deliveries.json", "webhooks:read"),
    ("webhooks-delivery.json", "webhooks:read"),
    ("webhooks-retry.json", "webhooks:write"),
    ("webhooks-replay.json", "webhooks:write"),
];

#[tokio::test]
async fn every_sample_reaches_its_route_and_needs_its_scope() {
    for (file, scope) in SAMPLES {
        let (status, body) = send(file, |e| {
            e["requestContext"]["authorizer"]["lambda"]["scopes"] = "users:read".into();
        })
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{file}: {body}");
        assert_eq!(
            body["type"], "urn:aloft:problem:insufficient-scope",
            "{file}"
        );
        assert!(
            body["detail"].as_str().unwrap().contains(scope),
            "{file}: {body}"
        );
    }
}

#[tokio::test]
async fn a_create_aimed_at_the_metadata_service_is_422_naming_url() {
    let (status, body) = send("webhooks-create.json", |e| {
        e["body"] =
            serde_json::json!({"url": "https://2852039166/", "event_types": ["user.created"]})
                .to_string()
                .into();
    })
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "url");
}

#[tokio::test]
async fn unknown_fields_and_bad_queries_are_refused_before_the_store() {
    let (status, body) = send("webhooks-update.json", |e| {
        e["body"] = r#"{"enabeld": true}"#.into();
    })
    .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("urn:aloft:problem:unknown-field")
        )
    );
    let (status, body) = send("webhooks-deliveries.json", |e| {
        e["rawQueryString"] = "status=lost&limit=0".into();
        e["queryStringParameters"] = serde_json::json!({"status": "lost", "limit": "0"});
    })
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields: Vec<_> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].clone())
        .collect();
    assert_eq!(fields, ["status", "limit"]);
    let (status, body) = send("webhooks-replay.json", |e| {
        e["body"] = r#"{"since": "last tuesday"}"#.into();
    })
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "since");
}
