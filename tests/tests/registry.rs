//! The service registry end to end: leases over HTTP, the sweep fired through the local
//! stack's schedule route, events on the queue.

use std::collections::HashMap;
use std::time::Duration;

use aloft_e2e::{Stack, problem_type, send, send_full, unique};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn register(stack: &Stack, service: &str, body: Value) -> Value {
    let (status, out) = send(
        stack
            .admin(Method::POST, &format!("/services/{service}/instances"))
            .json(&body),
    )
    .await;
    assert!(
        status == StatusCode::CREATED || status == StatusCode::OK,
        "{status} {out}"
    );
    out
}

async fn discover(stack: &Stack, service: &str, query: &str) -> Value {
    let (status, body) = send(stack.admin(
        Method::GET,
        &format!("/services/{service}/instances?{query}"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn ids(discovery: &Value) -> Vec<String> {
    let mut ids: Vec<String> = discovery["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn fire_sweep(stack: &Stack) -> Value {
    let (status, body) = send(stack.anonymous(
        Method::POST,
        "/_local/schedules/RegistrySweepFunction.EveryMinute/fire",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fired"][0]["status"], "succeeded", "{body}");
    body["fired"][0]["result"].clone()
}

#[tokio::test]
async fn a_lapsed_lease_is_unhealthy_before_the_sweep_and_gone_after_it() {
    let stack = Stack::connect().await;
    let service = unique("lease-");
    register(
        &stack,
        &service,
        json!({"instance_id": "short", "address": "10.0.0.1", "ttl_seconds": 5}),
    )
    .await;
    register(
        &stack,
        &service,
        json!({"instance_id": "long", "address": "10.0.0.2", "ttl_seconds": 600}),
    )
    .await;
    assert_eq!(
        ids(&discover(&stack, &service, "").await),
        ["long", "short"]
    );

    let (status, beat) = send(
        stack
            .admin(
                Method::PUT,
                &format!("/services/{service}/instances/short/heartbeat"),
            )
            .json(&json!({"status": "passing", "load": {"cpu_percent": 42.0}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{beat}");
    assert!(beat["lease_expires_at"].is_string());

    tokio::time::sleep(Duration::from_secs(6)).await;
    // No sweep yet: the lapsed lease is already not healthy, but still listed under any.
    assert_eq!(ids(&discover(&stack, &service, "").await), ["long"]);
    let any = discover(&stack, &service, "health=any").await;
    assert_eq!(ids(&any), ["long", "short"]);
    let short = any["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance_id"] == "short")
        .unwrap();
    assert_eq!(short["status"], "critical");
    // A heartbeat on a lapsed lease is a 404: the client must register again.
    let (status, body) = send(
        stack
            .admin(
                Method::PUT,
                &format!("/services/{service}/instances/short/heartbeat"),
            )
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(problem_type(&body), "lease-gone");

    let report = fire_sweep(&stack).await;
    let ours = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == service.as_str())
        .cloned();
    assert_eq!(ours.unwrap()["evicted"], json!(["short"]), "{report}");
    assert_eq!(
        ids(&discover(&stack, &service, "health=any").await),
        ["long"]
    );

    let svc = service.clone();
    let events = stack
        .collect_events(
            move |e| e["data"]["service"] == svc.as_str() && e["type"] == "instance.expired",
            Duration::from_secs(3),
        )
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["instance_id"], "short");
}

#[tokio::test]
async fn discovery_filters_and_revalidates_with_etags() {
    let stack = Stack::connect().await;
    let service = unique("disc-");
    register(&stack, &service, json!({"instance_id": "a", "address": "10.0.0.1", "version": "1.0", "tags": ["blue", "eu"], "meta": {"az": "a"}})).await;
    register(&stack, &service, json!({"instance_id": "b", "address": "10.0.0.2", "version": "2.0", "tags": ["green", "eu"], "meta": {"az": "b"}})).await;
    register(&stack, &service, json!({"instance_id": "c", "address": "10.0.0.3", "version": "2.0", "tags": ["green", "us"], "meta": {"az": "a"}})).await;

    assert_eq!(ids(&discover(&stack, &service, "tag=eu").await), ["a", "b"]);
    assert_eq!(
        ids(&discover(&stack, &service, "tag=eu&tag=green").await),
        ["b"]
    );
    assert_eq!(
        ids(&discover(&stack, &service, "version=2.0").await),
        ["b", "c"]
    );
    assert_eq!(
        ids(&discover(&stack, &service, "meta.az=a").await),
        ["a", "c"]
    );
    assert_eq!(
        ids(&discover(&stack, &service, "meta.az=a&version=2.0").await),
        ["c"]
    );

    let path = format!("/services/{service}/instances");
    let (status, headers, first) = send_full(stack.admin(Method::GET, &path)).await;
    assert_eq!(status, StatusCode::OK);
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let (status, _, body) = send_full(
        stack
            .admin(Method::GET, &path)
            .header("If-None-Match", &etag),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(body, Value::Null, "304 has no body");

    send(stack.admin(Method::DELETE, &format!("/services/{service}/instances/c"))).await;
    let (status, headers, after) = send_full(
        stack
            .admin(Method::GET, &path)
            .header("If-None-Match", &etag),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a change answers in full");
    assert_ne!(headers["etag"].to_str().unwrap(), etag);
    assert!(after["revision"].as_u64() > first["revision"].as_u64());
    assert_eq!(ids(&after), ["a", "b"]);
}

#[tokio::test]
async fn round_robin_visits_every_healthy_instance_evenly() {
    let stack = Stack::connect().await;
    let service = unique("rr-");
    for id in ["x", "y", "z"] {
        register(
            &stack,
            &service,
            json!({"instance_id": id, "address": "10.0.0.1"}),
        )
        .await;
    }
    register(
        &stack,
        &service,
        json!({"instance_id": "sick", "address": "10.0.0.9"}),
    )
    .await;
    send(
        stack
            .admin(
                Method::PUT,
                &format!("/services/{service}/instances/sick/heartbeat"),
            )
            .json(&json!({"status": "critical"})),
    )
    .await;

    let mut visits: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let (status, body) = send(stack.admin(
            Method::GET,
            &format!("/services/{service}/resolve?strategy=round_robin"),
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        *visits
            .entry(body["instance_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(visits.len(), 3, "{visits:?}");
    assert!(visits.values().all(|v| *v == 10), "{visits:?}");

    let (status, body) = send(stack.admin(
        Method::GET,
        &format!("/services/{service}/resolve?tag=none"),
    ))
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, _, _) = send_full(stack.admin(
        Method::GET,
        &format!("/services/{}/resolve", unique("nothing-")),
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_sweep_holds_back_when_most_leases_lapse_at_once() {
    let stack = Stack::connect().await;
    let service = unique("part-");
    for i in 0..10 {
        register(
            &stack,
            &service,
            json!({"instance_id": format!("i{i}"), "address": "10.0.0.1", "ttl_seconds": 5}),
        )
        .await;
    }
    // Only i0 keeps heartbeating through a "partition".
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        send(
            stack
                .admin(
                    Method::PUT,
                    &format!("/services/{service}/instances/i0/heartbeat"),
                )
                .json(&json!({})),
        )
        .await;
    }
    fire_sweep(&stack).await;
    assert_eq!(
        ids(&discover(&stack, &service, "health=any").await).len(),
        10,
        "none evicted"
    );
    let (_, detail) = send(stack.admin(Method::GET, &format!("/services/{service}"))).await;
    assert!(
        detail["self_preservation"]
            .as_str()
            .unwrap()
            .starts_with("9 of 10"),
        "{detail}"
    );
    let svc = service.clone();
    let events = stack
        .collect_events(
            move |e| {
                e["data"]["service"] == svc.as_str() && e["type"] == "registry.self_preservation"
            },
            Duration::from_secs(3),
        )
        .await;
    assert!(!events.is_empty());
}

#[tokio::test]
async fn bad_registrations_are_named_and_write_nothing() {
    let stack = Stack::connect().await;
    let service = unique("bad-");
    for (body, field) in [
        (json!({}), "address"),
        (json!({"address": "10.0.0.1", "weight": 0}), "weight"),
        (
            json!({"address": "10.0.0.1", "ttl_seconds": 1}),
            "ttl_seconds",
        ),
        (
            json!({"address": "10.0.0.1", "tags": ["has space"]}),
            "tags[0]",
        ),
        (json!({"address": "10.0.0.1", "port": 70000}), "port"),
        (
            json!({"address": "10.0.0.1", "check": {"http": "ftp://x"}}),
            "check.http",
        ),
        (
            json!({"address": "10.0.0.1", "depends_on": ["Not_A_Name"]}),
            "depends_on[0]",
        ),
    ] {
        let (status, problem) = send(
            stack
                .admin(Method::POST, &format!("/services/{service}/instances"))
                .json(&body),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        let fields: Vec<_> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{body}: {problem}");
    }
    let (status, _) = send(
        stack
            .admin(Method::POST, "/services/Bad_Name/instances")
            .json(&json!({"address": "10.0.0.1"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = send(
        stack
            .admin(Method::POST, &format!("/services/{service}/instances"))
            .json(&json!({"address": "10.0.0.1", "colour": "red"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send(stack.admin(
        Method::GET,
        &format!("/services/{service}/resolve?strategy=random"),
    ))
    .await;
    assert!(status.is_client_error());
    // Nothing was registered under the service.
    let (status, body) = send(stack.admin(Method::GET, &format!("/services/{service}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        discover(&stack, &service, "health=any").await["instances"],
        json!([])
    );
}
