//! The sample events in `events/` go through the same parsing as in Lambda
//! (`lambda_http` for HTTP, `aws_lambda_events` for the schedule) into the registry.

mod common;

use common::send_event as send;
use http::StatusCode;

#[tokio::test]
async fn the_registry_lifecycle_through_sample_events() {
    let f = common::fixture().await;
    let (status, _, lease) = send(&f.store, "registry-register.json", |_| {}).await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    assert_eq!(lease["instance_id"], "checkout-1");
    let (status, _, _) = send(&f.store, "registry-register.json", |_| {}).await;
    assert_eq!(status, StatusCode::OK, "registering again updates");

    let (status, _, beat) = send(&f.store, "registry-heartbeat.json", |_| {}).await;
    assert_eq!(status, StatusCode::OK, "{beat}");

    let (status, headers, found) = send(&f.store, "registry-discover.json", |_| {}).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["instances"][0]["instance_id"], "checkout-1");
    assert_eq!(found["instances"][0]["status"], "passing");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let (status, _, _) = send(&f.store, "registry-discover.json", |e| {
        e["headers"]["if-none-match"] = etag.clone().into()
    })
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    let (status, _, chosen) = send(&f.store, "registry-resolve.json", |_| {}).await;
    assert_eq!(
        (status, chosen["instance_id"].as_str()),
        (StatusCode::OK, Some("checkout-1"))
    );
    let (_, _, detail) = send(&f.store, "registry-service.json", |_| {}).await;
    assert_eq!(detail["depends_on"], serde_json::json!(["payments"]));
    assert_eq!(detail["instances"]["passing"], 1);

    let (status, _, _) = send(&f.store, "registry-deregister.json", |_| {}).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, gone) = send(&f.store, "registry-heartbeat.json", |_| {}).await;
    assert_eq!(
        (status, gone["type"].as_str()),
        (StatusCode::NOT_FOUND, Some("urn:aloft:problem:lease-gone"))
    );
    let (status, headers, none) = send(&f.store, "registry-resolve.json", |_| {}).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{none}");
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn bad_registrations_are_refused_and_write_nothing() {
    let f = common::fixture().await;
    let (status, _, problem) = send(&f.store, "registry-register.json", |e| {
        e["body"] = r#"{"address": "10.0.0.1", "weight": 0, "ttl_seconds": 99999}"#.into();
    })
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<_> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["weight", "ttl_seconds"]);
    let (status, _, _) = send(&f.store, "registry-register.json", |e| {
        e["rawPath"] = "/services/Bad_Name/instances".into();
        e["pathParameters"]["service"] = "Bad_Name".into();
    })
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        f.store.view("checkout").await.unwrap().is_none(),
        "nothing was written"
    );
}

#[test]
fn the_schedule_event_parses_as_eventbridge_sends_it() {
    let path = format!(
        "{}/../../events/schedule/registry-sweep.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let event: aws_lambda_events::eventbridge::EventBridgeEvent =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(event.detail_type, "Scheduled Event");
}
