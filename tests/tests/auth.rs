//! API keys and the three ways a request is refused, exactly as API Gateway refuses them.

use aloft_e2e::{Stack, problem_type, send, send_full};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn no_authorization_header_is_the_gateways_401() {
    let stack = Stack::connect().await;
    for (m, path) in [("GET", "/users"), ("POST", "/keys"), ("GET", "/services")] {
        let (status, headers, body) = send_full(stack.anonymous(aloft_e2e::method(m), path)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{m} {path}");
        assert_eq!(body, json!({"message": "Unauthorized"}));
        assert_eq!(headers["content-type"], "application/json");
    }
    // The health check is the one open route.
    let (status, body) = send(stack.anonymous(Method::GET, "/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn unknown_or_malformed_keys_are_the_gateways_403() {
    let stack = Stack::connect().await;
    let forged = format!("aloft_{}_{}", "0".repeat(32), "A".repeat(43));
    let wrong_secret = format!(
        "{}{}",
        &stack.admin_key[..stack.admin_key.len() - 4],
        "AAAA"
    );
    for key in [forged.as_str(), wrong_secret.as_str(), "not-a-key"] {
        let (status, body) = send(stack.with_key(key, Method::GET, "/users?role=admin")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{key}");
        assert_eq!(
            body,
            json!({"message": "Forbidden"}),
            "the gateway's body, not a function's"
        );
    }
    let (status, body) = send(
        stack
            .anonymous(Method::GET, "/users")
            .header("Authorization", "Basic abc"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, json!({"message": "Forbidden"}));
}

#[tokio::test]
async fn a_key_without_the_routes_scope_gets_a_problem_from_the_function() {
    let stack = Stack::connect().await;
    let (_, reader) = stack.key_with_scopes(&["users:read"]).await;
    let (status, _) = send(stack.with_key(&reader, Method::GET, "/users?role=admin")).await;
    assert_eq!(status, StatusCode::OK);
    for (m, path, scope) in [
        ("POST", "/users", "users:write"),
        ("GET", "/keys", "admin"),
        ("POST", "/keys", "admin"),
        ("GET", "/services", "registry:read"),
    ] {
        let (status, headers, body) = send_full(
            stack
                .with_key(&reader, aloft_e2e::method(m), path)
                .json(&json!({"email": "a@example.com", "name": "A", "role": "member"})),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{m} {path}: {body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(problem_type(&body), "insufficient-scope");
        assert!(body["detail"].as_str().unwrap().contains(scope), "{body}");
    }
}

#[tokio::test]
async fn keys_are_issued_listed_and_revoked_and_a_revoked_key_stops_within_the_ttl() {
    let stack = Stack::connect().await;
    let (id, secret) = stack
        .key_with_scopes(&["users:read", "registry:read"])
        .await;
    assert!(
        secret.starts_with(&format!("aloft_{id}_")),
        "recognisable prefix"
    );
    let (status, _) = send(stack.with_key(&secret, Method::GET, "/users?role=viewer")).await;
    assert_eq!(status, StatusCode::OK);

    // Listed without its secret.
    let mut cursor = None::<String>;
    let mut listed = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/keys?limit=10&cursor={c}"),
            None => "/keys?limit=10".into(),
        };
        let (status, body) = send(stack.admin(Method::GET, &path)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for k in body["items"].as_array().unwrap() {
            assert!(
                k.get("secret").is_none() && k.get("secret_hash").is_none(),
                "{k}"
            );
            if k["id"] == id.as_str() {
                listed = Some(k.clone());
            }
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let listed = listed.expect("the new key is listed");
    let mut scopes: Vec<_> = listed["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    scopes.sort();
    assert_eq!(scopes, ["registry:read", "users:read"]);

    let (status, _) = send(stack.admin(Method::DELETE, &format!("/keys/{id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(stack.admin(Method::DELETE, &format!("/keys/{id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "revoking twice is fine");
    tokio::time::sleep(stack.authorizer_ttl + std::time::Duration::from_millis(500)).await;
    let (status, body) = send(stack.with_key(&secret, Method::GET, "/users?role=viewer")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body, json!({"message": "Forbidden"}));

    let (status, body) =
        send(stack.admin(Method::DELETE, "/keys/0123456789abcdef0123456789abcdef")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem_type(&body), "key-not-found");
}

#[tokio::test]
async fn bad_key_requests_are_named_and_issue_nothing() {
    let stack = Stack::connect().await;
    for (body, field) in [
        (json!({"name": "x"}), "scopes"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (
            json!({"name": "x", "scopes": ["users:read", "root"]}),
            "scopes/1",
        ),
        (json!({"name": "", "scopes": ["admin"]}), "name"),
    ] {
        let (status, problem) = send(stack.admin(Method::POST, "/keys").json(&body)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        assert!(problem.get("secret").is_none());
    }
    let (status, problem) = send(stack.admin(Method::GET, "/keys?cursor=forged")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem_type(&problem), "invalid-cursor");
}

#[tokio::test]
async fn unknown_routes_are_the_gateways_404() {
    let stack = Stack::connect().await;
    for (m, path) in [("GET", "/nope"), ("PUT", "/users"), ("GET", "/users/a/b/c")] {
        let (status, body) = send(stack.admin(aloft_e2e::method(m), path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{m} {path}");
        assert_eq!(body, json!({"message": "Not Found"}));
    }
}
