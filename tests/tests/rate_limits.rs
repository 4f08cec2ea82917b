//! Rate limits: the gateway's token buckets (stage default, `GET /health` its own) answer
//! 429 before the authorizer or any function runs, and a key's own `rate_limit` is
//! enforced by the authorizer against a bucket in DynamoDB, so a key over its limit is
//! refused by the gateway (403) without reaching a capability.
//!
//! The test stack runs with a small `GET /health` bucket (`HealthThrottleBurstLimit=5`,
//! `HealthThrottleRateLimit=1`); other routes keep the stage's large default.

use aloft_e2e::{Stack, problem_type, send, send_full};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_route_past_its_throttle_gets_the_gateways_429_and_other_routes_do_not() {
    let stack = Stack::connect().await;
    // More at once than the bucket holds plus what it can refill meanwhile.
    let burst = futures::future::join_all(
        (0..60).map(|_| send_full(stack.anonymous(Method::GET, "/health"))),
    )
    .await;
    let ok = burst.iter().filter(|(s, ..)| *s == StatusCode::OK).count();
    let throttled: Vec<_> = burst
        .iter()
        .filter(|(s, ..)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(ok >= 1, "the bucket starts full");
    assert!(!throttled.is_empty(), "60 at once exceed the bucket");
    assert_eq!(ok + throttled.len(), 60, "only 200s and 429s");
    for (_, headers, body) in throttled {
        assert_eq!(body, &json!({"message": "Too Many Requests"}));
        assert_eq!(headers["content-type"], "application/json");
    }
    // The stage's bucket is another one: the API is still open.
    let (status, body) = send(stack.admin(Method::GET, "/users?role=viewer&limit=1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_key_over_its_own_limit_is_refused_by_the_gateway_and_other_keys_are_not() {
    let stack = Stack::connect().await;
    // Three at once, then one an hour: the refill cannot reach the test.
    let (status, key) = send(stack.admin(Method::POST, "/keys").json(&json!({
        "name": "e2e limited",
        "scopes": ["users:read"],
        "rate_limit": {"per_second": 1.0 / 3600.0, "burst": 3},
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    assert_eq!(key["rate_limit"]["burst"], 3, "{key}");
    let secret = key["secret"].as_str().unwrap();

    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, body) =
            send(stack.with_key(secret, Method::GET, "/users?role=viewer&limit=1")).await;
        if status == StatusCode::FORBIDDEN {
            // The gateway's body: no function ran (a function's 403 is problem+json).
            assert_eq!(body, json!({"message": "Forbidden"}));
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::FORBIDDEN,
            StatusCode::FORBIDDEN
        ]
    );
    // The admin key has no limit of its own.
    for _ in 0..5 {
        let (status, _) = send(stack.admin(Method::GET, "/users?role=viewer&limit=1")).await;
        assert_eq!(status, StatusCode::OK);
    }
    // The limit is listed with the key, never its bucket.
    let id = key["id"].as_str().unwrap();
    let (status, list) = send(stack.admin(Method::GET, "/keys?limit=100")).await;
    assert_eq!(status, StatusCode::OK);
    let items = list["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .all(|k| !k["id"].as_str().unwrap().starts_with("bucket#"))
    );
    if let Some(listed) = items.iter().find(|k| k["id"] == id) {
        assert_eq!(listed["rate_limit"]["burst"], 3);
    }
    // A bucket item cannot be revoked as if it were a key.
    let (status, problem) =
        send(stack.admin(Method::DELETE, &format!("/keys/bucket%23{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
}

#[tokio::test]
async fn bad_rate_limits_are_named_and_issue_nothing() {
    let stack = Stack::connect().await;
    for (limit, field) in [
        (
            json!({"per_second": 0, "burst": 1}),
            "rate_limit.per_second",
        ),
        (
            json!({"per_second": -1, "burst": 1}),
            "rate_limit.per_second",
        ),
        (
            json!({"per_second": 1e9, "burst": 1}),
            "rate_limit.per_second",
        ),
        (json!({"per_second": 1, "burst": 0}), "rate_limit.burst"),
        (json!({"per_second": 1, "burst": 1.5}), "rate_limit.burst"),
        (
            json!({"per_second": "fast", "burst": 1}),
            "rate_limit.per_second",
        ),
        (json!({"burst": 1}), "rate_limit.per_second"),
    ] {
        let (status, problem) = send(stack.admin(Method::POST, "/keys").json(&json!({
            "name": "e2e bad limit", "scopes": ["users:read"], "rate_limit": limit,
        })))
        .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{limit}: {problem}"
        );
        assert_eq!(problem_type(&problem), "validation");
        assert_eq!(problem["errors"][0]["field"], field, "{limit}: {problem}");
        assert!(problem.get("secret").is_none());
    }
    let (status, problem) = send(stack.admin(Method::POST, "/keys").json(&json!({
        "name": "e2e bad limit", "scopes": ["users:read"], "rate_limit": {"per_minute": 5},
    })))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem_type(&problem), "unknown-field");
}
