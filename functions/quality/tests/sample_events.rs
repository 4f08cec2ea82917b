//! The sample events in `events/http/quality-*.json`, fed through `lambda_http`'s own
//! parsing into the quality router as Lambda would, for what needs no AWS: every route
//! is reached and checks its scope, and a bad objective is refused before any write.

use aloft_quality::api::{self, AppState};
use aloft_quality::metrics::Metrics;
use aloft_quality::store::QualityStore;
use aloft_shared::cursor::CursorCodec;
use aloft_shared::http::{handle_event, sample_event};
use aloft_shared::master_key::MasterKey;
use aloft_shared::outbox::Outbox;

/// A router whose clients point at a port nothing listens on: a test that reached AWS
/// would fail, so passing proves nothing was read or written.
fn router() -> axum::Router {
    let sdk = aloft_shared::aws::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .http_client(aloft_shared::trust_roots::https_client())
        .build();
    let ddb = aloft_shared::aws::dynamodb(&sdk);
    let cursors = CursorCodec::new(&MasterKey::from_bytes(
        b"a master key that is long enough!!".to_vec(),
    ));
    let store = QualityStore::new(
        ddb.clone(),
        "QualityTable".into(),
        Outbox::new(ddb, "OutboxTable".into()),
        cursors,
    );
    let metrics = Metrics::new(aloft_shared::aws::cloudwatch(&sdk), "aloft".into());
    api::router(AppState { store, metrics })
}

const SAMPLES: &[&str] = &[
    "quality-alerts.json",
    "quality-create-silence.json",
    "quality-delete-objective.json",
    "quality-delete-silence.json",
    "quality-get-attributes.json",
    "quality-get-objective.json",
    "quality-history.json",
    "quality-list-objectives.json",
    "quality-list-silences.json",
    "quality-put-attributes.json",
    "quality-put-objective.json",
    "quality-service.json",
];

#[tokio::test]
async fn every_route_refuses_a_key_without_its_scope() {
    for file in SAMPLES {
        let event = sample_event(file, |e| {
            e["requestContext"]["authorizer"]["lambda"]["scopes"] = "users:read".into()
        });
        let r = handle_event(router(), &event).await;
        assert_eq!(r.status, 403, "{file}: {}", r.body);
        assert_eq!(
            r.body["type"], "urn:aloft:problem:insufficient-scope",
            "{file}"
        );
    }
}

#[tokio::test]
async fn a_bad_objective_names_every_field_before_any_write() {
    let event = sample_event("quality-put-objective.json", |e| {
        e["body"] = serde_json::json!({
            "metric": "latency_p42", "warning": 900, "critical": -1,
            "period_seconds": 30, "missing_data": "sometimes"
        })
        .to_string()
        .into();
    });
    let r = handle_event(router(), &event).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["metric", "missing_data", "critical", "period_seconds"]
    );
}

#[tokio::test]
async fn bad_silences_and_alert_filters_are_refused_before_any_read() {
    let event = sample_event("quality-create-silence.json", |e| {
        e["body"] = serde_json::json!({"objective": "p99", "until": "yesterday"})
            .to_string()
            .into();
    });
    let r = handle_event(router(), &event).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["service", "until", "reason"]);

    let event = sample_event("quality-alerts.json", |e| {
        e["rawQueryString"] = "state=resolved".into();
        e["queryStringParameters"] = serde_json::json!({"state": "resolved"});
    });
    let r = handle_event(router(), &event).await;
    assert_eq!(
        (r.status.as_u16(), r.body["errors"][0]["field"].as_str()),
        (422, Some("state")),
        "{}",
        r.body
    );
}
