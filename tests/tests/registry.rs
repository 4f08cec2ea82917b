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
    // `*` matches any current representation (RFC 9110).
    let (status, _, _) =
        send_full(stack.admin(Method::GET, &path).header("If-None-Match", "*")).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED, "If-None-Match: *");

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

async fn register_status(stack: &Stack, service: &str, body: Value) -> (StatusCode, Value) {
    send(
        stack
            .admin(Method::POST, &format!("/services/{service}/instances"))
            .json(&body),
    )
    .await
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_check_aimed_at_a_refused_address_in_any_spelling_is_422() {
    let stack = Stack::connect().await;
    let service = unique("ssrf-");
    // The local stack allows loopback checks (RegistryHealthChecksAllow=loopback), never
    // link-local, metadata or private ranges.
    for (address, url) in [
        (
            "169.254.169.254",
            "http://169.254.169.254/latest/meta-data/",
        ),
        ("0xa9fea9fe", "http://0xa9fea9fe/"),
        ("2852039166", "http://2852039166/"),
        ("0251.254.169.254", "http://0251.254.169.254/"),
        ("::ffff:169.254.169.254", "http://[::ffff:169.254.169.254]/"),
        ("fd00:ec2::254", "http://[fd00:ec2::254]/"),
        ("169.254.10.1", "http://169.254.10.1:8080/health"),
        ("10.0.0.1", "http://10.0.0.1:8080/health"),
        ("10.0.0.1", "http://012.0.0.1:8080/health"),
        ("fd12::1", "http://[fd12::1]/"),
        ("0.0.0.0", "http://0.0.0.0/"),
        ("224.0.0.1", "http://224.0.0.1/"),
        ("10.0.0.1", "http://10.0.0.1@evil.example/"),
        ("10.0.0.1", "http://evil.example/?h=10.0.0.1"),
    ] {
        let (status, problem) = register_status(
            &stack,
            &service,
            json!({"address": address, "check": {"http": url}}),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {problem}");
        assert_eq!(fields(&problem), ["check.http"], "{url}: {problem}");
    }
    let (status, _) = send(stack.admin(Method::GET, &format!("/services/{service}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was registered");
}

/// A loopback listener answering 200 that counts the connections made to it.
async fn health_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, count)
}

#[tokio::test]
async fn a_loopback_check_passes_through_the_fired_sweep_where_the_stack_allows_loopback() {
    let stack = Stack::connect().await;
    let service = unique("check-");
    let (port, connections) = health_server().await;
    register(
        &stack,
        &service,
        json!({"instance_id": "web-1", "address": "127.0.0.1", "port": port,
               "check": {"http": format!("http://127.0.0.1:{port}/health"), "timeout_ms": 2000}}),
    )
    .await;
    let report = fire_sweep(&stack).await;
    let ours = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == service.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("our check ran: {report}"));
    assert_eq!(ours["passed"], true, "{ours}");
    assert!(connections.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn bodies_that_are_not_the_documented_object_are_422_naming_the_field() {
    let stack = Stack::connect().await;
    let service = unique("shape-");
    register(
        &stack,
        &service,
        json!({"instance_id": "a", "address": "10.0.0.1"}),
    )
    .await;
    let beat = format!("/services/{service}/instances/a/heartbeat");
    for (body, field) in [
        (json!([null, null]), "body"),
        (json!(null), "body"),
        (json!({"status": null}), "status"),
        (json!({"load": null}), "load"),
        (json!({"load": [1, 2]}), "load"),
    ] {
        let (status, problem) = send(stack.admin(Method::PUT, &beat).json(&body)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(fields(&problem), [field], "{body}: {problem}");
    }
    for (body, field) in [
        (
            json!({"address": "10.0.0.1", "depends_on": null}),
            "depends_on",
        ),
        (json!({"address": "10.0.0.1", "tags": null}), "tags"),
        (json!({"address": "10.0.0.1", "check": null}), "check"),
        (json!([{"address": "10.0.0.1"}]), "body"),
    ] {
        let (status, problem) = register_status(&stack, &service, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(fields(&problem), [field], "{body}: {problem}");
    }
    // Ids longer than a key holds are a 422, never a 500.
    let long = "i".repeat(3_000);
    for (method, path, body) in [
        (
            Method::PUT,
            format!("/services/{service}/instances/{long}/heartbeat"),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("/services/{service}/instances/{long}"),
            None,
        ),
    ] {
        let mut req = stack.admin(method, &path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let (status, problem) = send(req).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(fields(&problem), ["instance_id"]);
    }
}

#[tokio::test]
async fn unknown_or_repeated_query_parameters_are_400_problems() {
    let stack = Stack::connect().await;
    let service = unique("query-");
    for (path, status, name) in [
        ("instances?colour=red", StatusCode::BAD_REQUEST, "colour"),
        (
            "instances?health=any&health=passing",
            StatusCode::BAD_REQUEST,
            "health",
        ),
        (
            "resolve?strategy=weighted&strategy=weighted",
            StatusCode::BAD_REQUEST,
            "strategy",
        ),
        ("resolve?health=any", StatusCode::BAD_REQUEST, "health"),
        (
            "instances?health=sick",
            StatusCode::UNPROCESSABLE_ENTITY,
            "health",
        ),
    ] {
        let (got, headers, problem) =
            send_full(stack.admin(Method::GET, &format!("/services/{service}/{path}"))).await;
        assert_eq!(got, status, "{path}: {problem}");
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{path}"
        );
        assert_eq!(fields(&problem), [name], "{path}: {problem}");
    }
    let long = "t".repeat(3_000);
    let (got, problem) = send(stack.admin(
        Method::GET,
        &format!("/services/{service}/instances?tag={long}"),
    ))
    .await;
    assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
}

#[tokio::test]
async fn re_registering_replaces_the_declared_dependencies_and_their_edges() {
    let stack = Stack::connect().await;
    let (web, db, cache) = (unique("web-"), unique("db-"), unique("cache-"));
    for dep in [&db, &cache] {
        register(
            &stack,
            dep,
            json!({"instance_id": "x", "address": "10.0.0.9"}),
        )
        .await;
    }
    let dependents = |service: String| {
        let stack = &stack;
        async move {
            let (_, detail) = send(stack.admin(Method::GET, &format!("/services/{service}"))).await;
            detail["dependents"].clone()
        }
    };
    register(
        &stack,
        &web,
        json!({"instance_id": "w", "address": "10.0.0.1", "depends_on": [db, db, cache]}),
    )
    .await;
    let (_, detail) = send(stack.admin(Method::GET, &format!("/services/{web}"))).await;
    let mut declared: Vec<String> = serde_json::from_value(detail["depends_on"].clone()).unwrap();
    declared.sort();
    let mut expected = vec![db.clone(), cache.clone()];
    expected.sort();
    assert_eq!(declared, expected, "deduplicated");
    assert_eq!(dependents(db.clone()).await, json!([web]));

    register(
        &stack,
        &web,
        json!({"instance_id": "w", "address": "10.0.0.1", "depends_on": [cache]}),
    )
    .await;
    assert_eq!(dependents(db.clone()).await, json!([]), "edge removed");
    assert_eq!(dependents(cache.clone()).await, json!([web]));
    let (status, problem) = register_status(
        &stack,
        &web,
        json!({"address": "10.0.0.1", "depends_on": (0..33).map(|i| format!("s{i}")).collect::<Vec<_>>()}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(fields(&problem), ["depends_on"]);
}

#[tokio::test]
async fn discovery_answers_304_under_steady_heartbeats() {
    let stack = Stack::connect().await;
    let service = unique("etag-");
    register(
        &stack,
        &service,
        json!({"instance_id": "a", "address": "10.0.0.1"}),
    )
    .await;
    let path = format!("/services/{service}/instances");
    let (_, headers, _) = send_full(stack.admin(Method::GET, &path)).await;
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let beat = format!("/services/{service}/instances/a/heartbeat");
    for cpu in [10.0, 50.0, 90.0] {
        let (status, _) = send(
            stack
                .admin(Method::PUT, &beat)
                .json(&json!({"load": {"cpu_percent": cpu}})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = send_full(
            stack
                .admin(Method::GET, &path)
                .header("If-None-Match", &etag),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_MODIFIED,
            "a heartbeat is not a change"
        );
    }
    send(
        stack
            .admin(Method::PUT, &beat)
            .json(&json!({"status": "critical"})),
    )
    .await;
    let (status, _, body) = send_full(
        stack
            .admin(Method::GET, &path)
            .header("If-None-Match", &etag),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a health change is: {body}");
}
