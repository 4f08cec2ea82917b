//! The payments sample events in `events/http/` go through `lambda_http`'s parsing into
//! the payments router, against the local stack's tables.

mod common;

use common::{create_for, send};
use http::StatusCode;

#[tokio::test]
async fn the_payment_events_create_read_list_and_refund() {
    let stack = common::stack().await;
    let client = || aloft_shared::aws::dynamodb(&stack.sdk);
    let user_id = stack.user().await;

    let r = send(stack.api(client()), "payments-methods.json", |_| {}).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.body["items"].as_array().unwrap().len() >= 5);

    let r = send(
        stack.api(client()),
        "payments-create.json",
        create_for(&user_id),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["status"], "succeeded");
    assert_eq!(r.body["method"]["last4"], "4242");
    let id = r.body["id"].as_str().unwrap().to_owned();

    let at = |e: &mut serde_json::Value, suffix: &str| {
        e["rawPath"] = format!("/payments/{id}{suffix}").into();
        e["requestContext"]["http"]["path"] = format!("/payments/{id}{suffix}").into();
        e["pathParameters"]["id"] = id.clone().into();
    };
    let r = send(stack.api(client()), "payments-get.json", |e| at(e, "")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["id"], id.as_str());

    let r = send(stack.api(client()), "payments-refund.json", |e| {
        at(e, "/refunds");
        // The sample's key names one refund; a test run against a stack that already
        // saw it (a second run) makes a new refund, so it needs a key of its own.
        e["headers"]["idempotency-key"] = uuid::Uuid::new_v4().to_string().into();
    })
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["amount"], 500);
    assert_eq!(r.body["status"], "succeeded");

    let r = send(stack.api(client()), "payments-list.json", |e| {
        let q = format!("user_id={user_id}&status=partially_refunded&limit=10");
        e["rawQueryString"] = q.into();
        e["queryStringParameters"]["user_id"] = user_id.clone().into();
        e["queryStringParameters"]["status"] = "partially_refunded".into();
    })
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["items"][0]["id"], id.as_str());

    // Confirm and cancel apply only to payments waiting for their payer.
    for file in ["payments-confirm.json", "payments-cancel.json"] {
        let suffix = if file.contains("confirm") {
            "/confirm"
        } else {
            "/cancel"
        };
        let r = send(stack.api(client()), file, |e| at(e, suffix)).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{file}: {:?}", r.body);
    }
}
