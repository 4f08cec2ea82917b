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

fn query(e: &mut serde_json::Value, raw: &str) {
    e["rawQueryString"] = raw.into();
    let mut params = serde_json::Map::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let joined = match params.get(k).and_then(|v| v.as_str()) {
            Some(prev) => format!("{prev},{v}"),
            None => v.to_owned(),
        };
        params.insert(k.to_owned(), joined.into());
    }
    e["queryStringParameters"] = params.into();
}

fn long_id(e: &mut serde_json::Value, suffix: &str) {
    let id = "i".repeat(2_000);
    e["rawPath"] = format!("/services/checkout/instances/{id}{suffix}").into();
    e["pathParameters"]["id"] = id.into();
}

#[tokio::test]
async fn bodies_paths_and_queries_outside_the_documented_shapes_are_named_4xx() {
    let f = common::fixture().await;
    send(&f.store, "registry-register.json", |_| {}).await;
    // (file, edit, status, problem type, field named)
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, u16, &str, &str)> = vec![
        (
            "registry-heartbeat.json",
            Box::new(|e| e["body"] = "[null, null]".into()),
            422,
            "validation",
            "body",
        ),
        (
            "registry-heartbeat.json",
            Box::new(|e| e["body"] = r#"{"status": null}"#.into()),
            422,
            "validation",
            "status",
        ),
        (
            "registry-register.json",
            Box::new(|e| e["body"] = r#"{"address": "10.0.0.1", "depends_on": null}"#.into()),
            422,
            "validation",
            "depends_on",
        ),
        (
            "registry-register.json",
            Box::new(|e| e["body"] = r#"[{"address": "10.0.0.1"}]"#.into()),
            422,
            "validation",
            "body",
        ),
        (
            "registry-heartbeat.json",
            Box::new(|e| long_id(e, "/heartbeat")),
            422,
            "validation",
            "instance_id",
        ),
        (
            "registry-deregister.json",
            Box::new(|e| long_id(e, "")),
            422,
            "validation",
            "instance_id",
        ),
        (
            "registry-discover.json",
            Box::new(|e| query(e, "colour=red")),
            400,
            "invalid-query",
            "colour",
        ),
        (
            "registry-discover.json",
            Box::new(|e| query(e, "health=any&health=passing")),
            400,
            "invalid-query",
            "health",
        ),
        (
            "registry-discover.json",
            Box::new(|e| query(e, &format!("tag={}", "t".repeat(2_000)))),
            422,
            "validation",
            "tag",
        ),
        (
            "registry-resolve.json",
            Box::new(|e| query(e, "strategy=weighted&strategy=round_robin")),
            400,
            "invalid-query",
            "strategy",
        ),
        (
            "registry-resolve.json",
            Box::new(|e| query(e, "strategy=random")),
            422,
            "validation",
            "strategy",
        ),
    ];
    for (i, (file, edit, status, kind, field)) in cases.into_iter().enumerate() {
        let (got, headers, problem) = send(&f.store, file, edit).await;
        assert_eq!(got.as_u16(), status, "case {i}: {problem}");
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "case {i}"
        );
        assert_eq!(
            problem["type"],
            format!("urn:aloft:problem:{kind}"),
            "case {i}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "case {i}: {problem}");
    }
}

#[tokio::test]
async fn steady_heartbeats_keep_the_etag_and_a_health_change_moves_it() {
    let f = common::fixture().await;
    send(&f.store, "registry-register.json", |_| {}).await;
    let (_, headers, _) = send(&f.store, "registry-discover.json", |_| {}).await;
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let revalidate = |etag: String| {
        let store = f.store.clone();
        async move {
            send(&store, "registry-discover.json", move |e| {
                e["headers"]["if-none-match"] = etag.into()
            })
            .await
            .0
        }
    };
    for cpu in [10.0, 20.0, 30.0] {
        let (status, _, _) = send(&f.store, "registry-heartbeat.json", |e| {
            e["body"] = serde_json::json!({"status": "passing", "load": {"cpu_percent": cpu}})
                .to_string()
                .into();
        })
        .await;
        assert_eq!(status, StatusCode::OK);
        let (_, h, body) = send(&f.store, "registry-discover.json", |_| {}).await;
        assert_eq!(h["etag"].to_str().unwrap(), etag, "{body}");
        assert_eq!(revalidate(etag.clone()).await, StatusCode::NOT_MODIFIED);
    }
    send(&f.store, "registry-heartbeat.json", |e| {
        e["body"] = r#"{"status": "warning"}"#.into();
    })
    .await;
    assert_eq!(revalidate(etag).await, StatusCode::OK, "health changed");
}
