//! Faults of the local stack itself: a function process that dies mid-request, and web
//! pages that try to reach aloft-local's control ports through DNS rebinding.

use std::collections::HashSet;
use std::time::Duration;

use aloft_e2e::{Stack, send, send_full, unique_email};
use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `POST /_local/functions/{name}/kill`: how many busy processes it killed.
async fn kill_busy(stack: &Stack, function: &str) -> u64 {
    let (status, body) =
        send(stack.anonymous(Method::POST, &format!("/_local/functions/{function}/kill"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["killed"].as_u64().unwrap()
}

async fn create_user(stack: &Stack, email: &str) -> (StatusCode, Value) {
    send(stack.admin(Method::POST, "/users").json(&json!({
        "email": email, "name": "Crash Test", "role": "viewer",
    })))
    .await
}

/// What the stack holds for `email`: (user items, email claim, audit entries, outbox
/// records). A create writes all four in one transaction.
async fn written(stack: &Stack, email: &str, outbox: &[String]) -> (usize, bool, usize, usize) {
    let users = stack
        .dynamodb
        .query()
        .table_name("UsersTable")
        .index_name("by-email")
        .key_condition_expression("email_key = :e")
        .expression_attribute_values(":e", AttributeValue::S(email.to_lowercase()))
        .send()
        .await
        .unwrap();
    let ids: Vec<String> = users
        .items()
        .iter()
        .filter_map(|i| i.get("id").and_then(|v| v.as_s().ok()).cloned())
        .collect();
    let claim = stack
        .dynamodb
        .get_item()
        .table_name("UsersTable")
        .key(
            "pk",
            AttributeValue::S(format!("EMAIL#{}", email.to_lowercase())),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .is_some();
    let mut audit = 0;
    for id in &ids {
        audit += stack
            .dynamodb
            .query()
            .table_name("AuditTable")
            .key_condition_expression("subject = :s")
            .expression_attribute_values(":s", AttributeValue::S(id.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .count() as usize;
    }
    let events = outbox.iter().filter(|e| e.contains(email)).count();
    (users.count() as usize, claim, audit, events)
}

/// Every `user.created` outbox envelope (the outbox is read only by tests and the relay).
async fn outbox_envelopes(stack: &Stack) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = stack
            .dynamodb
            .scan()
            .table_name("OutboxTable")
            .filter_expression("#t = :t")
            .expression_attribute_names("#t", "type")
            .expression_attribute_values(":t", AttributeValue::S("user.created".into()))
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.extend(
            page.items()
                .iter()
                .filter_map(|i| i.get("envelope").and_then(|v| v.as_s().ok()).cloned()),
        );
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return out;
        }
    }
}

#[tokio::test]
async fn a_process_killed_mid_request_is_a_500_from_the_gateway_and_writes_all_or_nothing() {
    let stack = Stack::connect().await;
    let mut emails = Vec::new();
    let mut crashed = Vec::new();
    // Each round sends creates and kills the users function's busy processes while they
    // run; rounds repeat until a kill has landed on a request in flight (bounded).
    for _round in 0..20 {
        let batch: Vec<String> = (0..8).map(|_| unique_email()).collect();
        let requests = futures::future::join_all(batch.iter().map(|e| create_user(&stack, e)));
        let killer = async {
            let mut killed = 0;
            for _ in 0..200 {
                killed += kill_busy(&stack, "UsersFunction").await;
                if killed > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            killed
        };
        let (answers, killed) = tokio::join!(requests, killer);
        for (email, (status, body)) in batch.iter().zip(answers) {
            match status {
                StatusCode::CREATED => {}
                StatusCode::INTERNAL_SERVER_ERROR => {
                    assert_eq!(body, json!({"message": "Internal Server Error"}));
                    crashed.push(email.clone());
                }
                other => panic!("{email}: unexpected {other}: {body}"),
            }
        }
        emails.extend(batch);
        if killed > 0 && !crashed.is_empty() {
            break;
        }
    }
    assert!(!crashed.is_empty(), "no kill landed on a request in flight");

    // Whatever the moment of the kill: each user is written whole or not at all.
    let outbox = outbox_envelopes(&stack).await;
    let mut whole = HashSet::new();
    for email in &emails {
        match written(&stack, email, &outbox).await {
            (0, false, 0, 0) => {}
            (1, true, 1, 1) => {
                whole.insert(email.clone());
            }
            partial => panic!("{email} is half-written: {partial:?}"),
        }
    }
    assert!(
        emails
            .iter()
            .filter(|e| !crashed.contains(e))
            .all(|e| whole.contains(e)),
        "every 201 is fully written"
    );

    // A fresh process serves the next request.
    let email = unique_email();
    let (status, body) = create_user(&stack, &email).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The Runtime API addresses aloft-local has started processes on, newest first.
fn runtime_api_addresses() -> Vec<String> {
    let path = std::env::var("ALOFT_LOCAL_LOG").expect("ALOFT_LOCAL_LOG names the stack's log");
    let log = std::fs::read_to_string(path).expect("the stack's log");
    let mut out: Vec<String> = log
        .lines()
        .filter_map(|l| l.split("runtime API ").nth(1))
        .filter_map(|rest| rest.strip_suffix(')'))
        .map(str::to_owned)
        .collect();
    out.reverse();
    out
}

#[tokio::test]
async fn control_routes_and_runtime_ports_refuse_non_loopback_host_names() {
    let stack = Stack::connect().await;
    let port = stack.url.rsplit(':').next().unwrap().to_owned();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let (status, _) = send(
            stack
                .anonymous(Method::GET, "/_local/ready")
                .header("host", host.as_str()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{host}");
    }
    for (method, path) in [
        (Method::GET, "/_local/ready"),
        (Method::POST, "/_local/schedules/fire"),
        (Method::POST, "/_local/functions/UsersFunction/kill"),
        (Method::GET, "/_local/event-sources"),
    ] {
        let (status, headers, _) = send_full(
            stack
                .anonymous(method.clone(), path)
                .header("host", format!("rebound.example:{port}")),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(headers["content-type"], "application/json");
    }

    // A Runtime API port: with a foreign Host it refuses before looking at the request;
    // with loopback it answers as the Runtime API (no such invocation).
    let (status, _) = send(stack.admin(Method::GET, "/keys?limit=1")).await;
    assert_eq!(status, StatusCode::OK, "a keys process is running");
    let http = stack.http.clone();
    let mut checked = false;
    for addr in runtime_api_addresses() {
        let url = format!("http://{addr}/2018-06-01/runtime/invocation/no-such-id/response");
        let Ok(foreign) = http
            .post(&url)
            .header("host", "rebound.example")
            .body("{}")
            .send()
            .await
        else {
            continue; // that process has exited
        };
        assert_eq!(foreign.status(), StatusCode::FORBIDDEN, "{addr}");
        let local = http.post(&url).body("{}").send().await.unwrap();
        assert_eq!(local.status(), StatusCode::BAD_REQUEST, "{addr}");
        checked = true;
        break;
    }
    assert!(checked, "no live Runtime API port found in the log");
}

/// A path id no key could hold is a 422 naming it on every capability, never a 500 from
/// DynamoDB's key-size limit (or a scan of its absence).
#[tokio::test]
async fn path_ids_longer_than_a_key_holds_are_422_naming_them() {
    let stack = Stack::connect().await;
    let long = "i".repeat(3_000);
    let webhook = format!("/webhooks/{}/deliveries/{long}", uuid::Uuid::new_v4());
    for (method, path, field) in [
        (Method::GET, format!("/users/{long}"), "id"),
        (Method::GET, format!("/users/{long}/audit"), "id"),
        (Method::DELETE, format!("/keys/{long}"), "id"),
        (Method::GET, format!("/payments/{long}"), "id"),
        (Method::GET, format!("/webhooks/{long}"), "id"),
        (Method::GET, webhook, "delivery_id"),
        (Method::DELETE, format!("/silences/{long}"), "id"),
    ] {
        let (status, problem) = send(stack.admin(method.clone(), &path)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {}: {problem}",
            &path[..40]
        );
        let named: Vec<_> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(named, [field], "{method} {}", &path[..40]);
    }
}
