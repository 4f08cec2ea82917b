//! Payments end to end: sandbox processors, idempotency under concurrency, refunds that
//! can never exceed the charge, and no card secret anywhere.

use std::collections::HashSet;
use std::time::Duration;

use aloft_e2e::{Stack, problem_type, send, send_full, unique, unique_email};
use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CVC: &str = "987";

fn card(number: &str) -> Value {
    let cvc = if number.starts_with("37") {
        "9876"
    } else {
        CVC
    };
    json!({"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": cvc}})
}

async fn user(stack: &Stack) -> String {
    let (status, body) = send(
        stack
            .admin(Method::POST, "/users")
            .json(&json!({"email": unique_email(), "name": "Payer", "role": "member"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn pay(
    stack: &Stack,
    key: &str,
    body: &Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    send_full(
        stack
            .admin(Method::POST, "/payments")
            .header("Idempotency-Key", key)
            .json(body),
    )
    .await
}

/// Ledger entries of a payment: what the sandbox gateway actually did.
async fn ledger(stack: &Stack, payment_id: &str) -> Vec<(String, i64)> {
    let out = stack
        .dynamodb
        .query()
        .table_name("SandboxLedgerTable")
        .index_name("by_payment")
        .key_condition_expression("payment_id = :p")
        .expression_attribute_values(":p", AttributeValue::S(payment_id.into()))
        .send()
        .await
        .expect("ledger query");
    out.items()
        .iter()
        .map(|i| {
            (
                i["kind"].as_s().unwrap().clone(),
                i["amount"].as_n().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_test_card_and_paypal_case_ends_as_documented() {
    let stack = Stack::connect().await;
    let user_id = user(&stack).await;
    let cases: Vec<(Value, &str, Option<&str>)> = vec![
        (card("4242424242424242"), "succeeded", None),
        (card("5555555555554444"), "succeeded", None),
        (card("378282246310005"), "succeeded", None),
        (card("4000000000000002"), "failed", Some("card_declined")),
        (
            card("4000000000009995"),
            "failed",
            Some("insufficient_funds"),
        ),
        (card("4000000000000069"), "failed", Some("expired_card")),
        (card("4000000000000127"), "failed", Some("incorrect_cvc")),
        (card("4000000000000119"), "failed", Some("processing_error")),
        (card("4000000000003220"), "requires_action", None),
        (
            json!({"type": "paypal", "payer_email": "buyer@example.com"}),
            "succeeded",
            None,
        ),
        (
            json!({"type": "paypal_credit", "payer_email": "buyer@example.com"}),
            "succeeded",
            None,
        ),
        (
            json!({"type": "paypal", "payer_email": "decline@example.com"}),
            "failed",
            Some("payer_declined"),
        ),
        (
            json!({"type": "paypal", "payer_email": "ann+approval@example.com"}),
            "requires_action",
            None,
        ),
    ];
    for (method, want, code) in cases {
        let body = json!({"user_id": user_id, "amount": 1250, "currency": "USD", "method": method, "description": "e2e"});
        let (status, headers, p) = pay(&stack, &unique("k-"), &body).await;
        assert_eq!(status, StatusCode::CREATED, "{method}: {p}");
        assert_eq!(p["status"], want, "{method}: {p}");
        assert_eq!(p["failure"]["code"].as_str(), code, "{method}: {p}");
        assert_eq!(
            headers["location"],
            format!("/payments/{}", p["id"].as_str().unwrap())
        );
        if code == Some("processing_error") {
            assert_eq!(p["failure"]["retryable"], true);
        }
        if want == "requires_action" {
            assert!(p["next_action"]["type"].is_string(), "{p}");
        }
        let charges = ledger(&stack, p["id"].as_str().unwrap()).await;
        assert_eq!(
            charges.iter().filter(|(k, _)| k == "charge").count(),
            1,
            "{method}: one gateway call"
        );
    }
}

#[tokio::test]
async fn a_payment_waiting_for_its_payer_is_confirmed_or_canceled_once() {
    let stack = Stack::connect().await;
    let user_id = user(&stack).await;
    let body = |k: &str| json!({"user_id": user_id, "amount": 500, "currency": "EUR", "method": card("4000000000003220"), "metadata": {"order": k}});
    let (_, _, a) = pay(&stack, &unique("k-"), &body("a")).await;
    let (_, _, b) = pay(&stack, &unique("k-"), &body("b")).await;
    let a_id = a["id"].as_str().unwrap();
    let b_id = b["id"].as_str().unwrap();

    let (status, confirmed) =
        send(stack.admin(Method::POST, &format!("/payments/{a_id}/confirm"))).await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert_eq!(confirmed["status"], "succeeded");
    let (status, again) =
        send(stack.admin(Method::POST, &format!("/payments/{a_id}/confirm"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(problem_type(&again), "invalid-transition");

    let (status, canceled) =
        send(stack.admin(Method::POST, &format!("/payments/{b_id}/cancel"))).await;
    assert_eq!(status, StatusCode::OK, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    // Canceled is final: it can't be confirmed or refunded.
    let (status, _) = send(stack.admin(Method::POST, &format!("/payments/{b_id}/confirm"))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = send(
        stack
            .admin(Method::POST, &format!("/payments/{b_id}/refunds"))
            .header("Idempotency-Key", unique("r-"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(problem_type(&body), "payment-not-refundable");

    let (_, listed) = send(stack.admin(
        Method::GET,
        &format!("/payments?user_id={user_id}&status=canceled"),
    ))
    .await;
    let ids: Vec<_> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b_id]);
    let (_, all) =
        send(stack.admin(Method::GET, &format!("/payments?user_id={user_id}&limit=1"))).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    assert!(
        all["next_cursor"].is_string(),
        "two payments at limit 1 make two pages"
    );

    let uid = user_id.clone();
    let events = stack
        .collect_events(
            move |e| e["data"]["user_id"] == uid.as_str(),
            Duration::from_secs(3),
        )
        .await;
    let mut types: Vec<_> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(
        types,
        [
            "payment.canceled",
            "payment.requires_action",
            "payment.requires_action",
            "payment.succeeded"
        ]
    );
}

#[tokio::test]
async fn fifty_identical_requests_with_one_key_charge_once() {
    let stack = Stack::connect().await;
    let user_id = user(&stack).await;
    let key = unique("same-");
    let body = json!({"user_id": user_id, "amount": 4200, "currency": "USD", "method": card("4242424242424242")});
    let attempts = (0..50).map(|_| {
        let stack = stack.clone();
        let key = key.clone();
        let body = body.clone();
        tokio::spawn(async move { pay(&stack, &key, &body).await })
    });
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let mut ids = HashSet::new();
    let mut replays = 0;
    for (status, headers, body) in &results {
        match *status {
            StatusCode::CREATED => {
                ids.insert(body["id"].as_str().unwrap().to_owned());
                if headers.get("idempotent-replayed").is_some() {
                    replays += 1;
                }
            }
            StatusCode::CONFLICT => {
                assert_eq!(problem_type(body), "idempotency-in-progress", "{body}");
                assert!(headers.get("retry-after").is_some());
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ids.len(), 1, "one payment, whatever each caller saw");
    let created = results
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(replays, created - 1, "exactly one first answer");
    let id = ids.into_iter().next().unwrap();
    assert_eq!(ledger(&stack, &id).await, [("charge".to_owned(), 4200)]);

    // Afterwards every retry is a replay of the same body.
    let (status, headers, replay) = pay(&stack, &key, &body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(replay["id"], id.as_str());
    // The same key with another body is refused, and charges nothing.
    let other = json!({"user_id": user_id, "amount": 4201, "currency": "USD", "method": card("4242424242424242")});
    let (status, _, problem) = pay(&stack, &key, &other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem_type(&problem), "idempotency-key-reused");
    let (_, listed) = send(stack.admin(Method::GET, &format!("/payments?user_id={user_id}"))).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_refunds_never_exceed_the_amount() {
    let stack = Stack::connect().await;
    let user_id = user(&stack).await;
    let body = json!({"user_id": user_id, "amount": 1000, "currency": "JPY", "method": card("5555555555554444")});
    let (status, _, p) = pay(&stack, &unique("k-"), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();

    let refunds = (0..20).map(|_| {
        let stack = stack.clone();
        let id = id.clone();
        tokio::spawn(async move {
            send(
                stack
                    .admin(Method::POST, &format!("/payments/{id}/refunds"))
                    .header("Idempotency-Key", unique("r-"))
                    .json(&json!({"amount": 150})),
            )
            .await
        })
    });
    let results: Vec<_> = futures::future::join_all(refunds)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let ok = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    for (status, body) in &results {
        assert!(
            *status == StatusCode::CREATED
                || *status == StatusCode::UNPROCESSABLE_ENTITY
                || *status == StatusCode::CONFLICT,
            "{status}: {body}"
        );
    }
    assert_eq!(ok, 6, "six refunds of 150 fit in 1000: {results:?}");

    let (_, after) = send(stack.admin(Method::GET, &format!("/payments/{id}"))).await;
    assert_eq!(after["amount_refunded"], 900);
    assert_eq!(after["status"], "partially_refunded");
    assert_eq!(after["refunds"].as_array().unwrap().len(), 6);
    let refunded: i64 = ledger(&stack, &id)
        .await
        .iter()
        .filter(|(k, _)| k == "refund")
        .map(|(_, a)| a)
        .sum();
    assert_eq!(refunded, 900, "the gateway refunded what the payment says");

    // The rest, by default, makes it refunded; then nothing is left.
    let (status, rest) = send(
        stack
            .admin(Method::POST, &format!("/payments/{id}/refunds"))
            .header("Idempotency-Key", unique("r-"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rest}");
    assert_eq!(rest["amount"], 100);
    let (_, done) = send(stack.admin(Method::GET, &format!("/payments/{id}"))).await;
    assert_eq!(done["status"], "refunded");
    let (status, _) = send(
        stack
            .admin(Method::POST, &format!("/payments/{id}/refunds"))
            .header("Idempotency-Key", unique("r-"))
            .json(&json!({"amount": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn every_bad_payment_gets_its_4xx_and_writes_nothing() {
    let stack = Stack::connect().await;
    let user_id = user(&stack).await;
    let good = json!({"user_id": user_id, "amount": 1000, "currency": "USD", "method": card("4242424242424242")});
    let with = |field: &str, value: Value| {
        let mut b = good.clone();
        b[field] = value;
        b
    };
    let mut expired = good.clone();
    expired["method"]["card"]["exp_year"] = json!(2020);
    let mut bad_luhn = good.clone();
    bad_luhn["method"]["card"]["number"] = json!("4242424242424241");
    let mut short_cvc = good.clone();
    short_cvc["method"]["card"]["cvc"] = json!("1");
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "float amount",
            with("amount", json!(10.5)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount",
        ),
        (
            "string amount",
            with("amount", json!("1000")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount",
        ),
        (
            "negative amount",
            with("amount", json!(-1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount",
        ),
        (
            "zero amount",
            with("amount", json!(0)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount",
        ),
        (
            "huge amount",
            with("amount", json!(100_000_000_000i64)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount",
        ),
        (
            "unknown currency",
            with("currency", json!("XYZ")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency",
        ),
        (
            "unknown user",
            with("user_id", json!("no-such-user")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "user_id",
        ),
        (
            "bad luhn",
            bad_luhn,
            StatusCode::UNPROCESSABLE_ENTITY,
            "method.card.number",
        ),
        (
            "expired card",
            expired,
            StatusCode::UNPROCESSABLE_ENTITY,
            "method.card.exp_year",
        ),
        (
            "short cvc",
            short_cvc,
            StatusCode::UNPROCESSABLE_ENTITY,
            "method.card.cvc",
        ),
        (
            "unsupported currency for paypal",
            json!({"user_id": user_id, "amount": 100, "currency": "JPY", "method": {"type": "paypal", "payer_email": "b@example.com"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency",
        ),
        (
            "unknown method",
            with("method", json!({"type": "bitcoin"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "method.type",
        ),
        (
            "unknown field",
            with("tip", json!(5)),
            StatusCode::BAD_REQUEST,
            "tip",
        ),
    ];
    for (what, body, want, field) in cases {
        let (status, _, problem) = pay(&stack, &unique("k-"), &body).await;
        assert_eq!(status, want, "{what}: {problem}");
        let fields: Vec<_> = problem["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|e| e["field"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(fields.iter().any(|f| f == field), "{what}: {problem}");
    }
    let (status, problem) = send(stack.admin(Method::POST, "/payments").json(&good)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem_type(&problem), "idempotency-key-required");
    let (status, _) = send(
        stack
            .admin(Method::POST, "/payments")
            .header("Idempotency-Key", "x".repeat(256))
            .json(&good),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, listed) = send(stack.admin(Method::GET, &format!("/payments?user_id={user_id}"))).await;
    assert_eq!(
        listed["items"],
        json!([]),
        "no bad request stored a payment"
    );
    for query in ["", "user_id=x&status=paid", "user_id=x&limit=0"] {
        let (status, _) = send(stack.admin(Method::GET, &format!("/payments?{query}"))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
    }
    let (status, body) = send(stack.admin(Method::GET, "/payments/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem_type(&body), "payment-not-found");
    let (status, _) = send(
        stack
            .admin(Method::POST, "/payments/nope/refunds")
            .header("Idempotency-Key", "k")
            .json(&json!({"amount": -1})),
    )
    .await;
    assert!(status.is_client_error());
}

#[tokio::test]
async fn methods_are_listed_from_the_processors_and_scopes_are_enforced() {
    let stack = Stack::connect().await;
    let (status, body) = send(stack.admin(Method::GET, "/payment-methods")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let methods: HashSet<_> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        HashSet::from(["visa", "mastercard", "amex", "paypal", "paypal_credit"])
    );
    let (_, reader) = stack.key_with_scopes(&["payments:read"]).await;
    let (status, _) = send(stack.with_key(&reader, Method::GET, "/payment-methods")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(
        stack
            .with_key(&reader, Method::POST, "/payments")
            .header("Idempotency-Key", "k")
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem_type(&body), "insufficient-scope");
}

/// Runs last in its file by name order only by convention; it reads everything the
/// other payment tests wrote so far, and its own payments make sure there is something.
#[tokio::test]
async fn no_card_number_or_cvc_is_stored_sent_or_logged() {
    let stack = Stack::connect().await;
    let user_id = user(&stack).await;
    let number = "4000000000000002"; // declined: exercises the failure path too
    for n in ["4242424242424242", number] {
        let body = json!({"user_id": user_id, "amount": 77, "currency": "USD", "method": card(n)});
        let (status, _, p) = pay(&stack, &unique("k-"), &body).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(p["method"]["last4"], &n[12..]);
        assert!(p["method"]["fingerprint"].is_string());
        assert!(!p.to_string().contains(n));
    }
    let secrets = ["4242424242424242", number, "4242 4242 4242 4242"];
    let cvc_field = format!("\"cvc\":\"{CVC}\"");

    // Every table, whole (a test may scan; the product never does).
    let tables = stack.dynamodb.list_tables().send().await.unwrap();
    for table in tables.table_names() {
        let mut start = None;
        loop {
            let out = stack
                .dynamodb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in out.items() {
                let text = format!("{item:?}");
                for s in secrets.iter().chain([&cvc_field.as_str()]) {
                    assert!(!text.contains(s), "{table} holds {s}: {text}");
                }
            }
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => break,
            }
        }
    }
    // Every queued message.
    let leaked = stack
        .collect_events(
            |e| {
                let t = e.to_string();
                secrets.iter().any(|s| t.contains(s)) || t.contains("\"cvc\"")
            },
            Duration::from_secs(2),
        )
        .await;
    assert!(leaked.is_empty(), "{leaked:?}");
    // Every log line the functions wrote.
    let log_path =
        std::env::var("ALOFT_LOCAL_LOG").expect("ALOFT_LOCAL_LOG names the local stack's log");
    let log = std::fs::read_to_string(&log_path).expect("local log readable");
    assert!(
        log.contains("[PaymentsFunction]"),
        "the payments function logged something"
    );
    for s in secrets {
        assert!(!log.contains(s), "a log line holds {s}");
    }
}

/// Fires the payments reconciler as EventBridge would; its report.
async fn reconcile(stack: &Stack) -> Value {
    let (status, body) = send(stack.anonymous(
        Method::POST,
        "/_local/schedules/PaymentsReconcilerFunction.EveryFiveMinutes/fire",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fired"][0]["status"], "succeeded", "{body}");
    body["fired"][0]["result"].clone()
}

/// What the reconciler's threshold (minutes) would otherwise make a test wait for: the
/// payment or refund has been open since long ago.
async fn age(stack: &Stack, payment_id: &str, sk: &str) {
    stack
        .dynamodb
        .update_item()
        .table_name("PaymentsTable")
        .key("pk", AttributeValue::S(format!("PAY#{payment_id}")))
        .key("sk", AttributeValue::S(sk.into()))
        .update_expression("SET open_since = :old")
        .condition_expression("attribute_exists(open_since)")
        .expression_attribute_values(":old", AttributeValue::S("2000-01-01T00:00:00.000Z".into()))
        .send()
        .await
        .expect("the item is open");
}

/// Whether the outbox holds the record of event `id`: an event delivered without one
/// was never committed (its transaction was cancelled).
async fn outbox_has(stack: &Stack, id: &str) -> bool {
    stack
        .dynamodb
        .get_item()
        .table_name("OutboxTable")
        .key("id", AttributeValue::S(id.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("outbox read")
        .item
        .is_some()
}

/// What 60 s of waiting would do: the idempotency lock of `key` times out.
async fn expire_lock(stack: &Stack, key: &str) {
    let suffix = format!("#payments.create#{key}");
    let mut records = stack
        .dynamodb
        .scan()
        .table_name("IdempotencyTable")
        .filter_expression("contains(pk, :k)")
        .expression_attribute_values(":k", AttributeValue::S(suffix))
        .into_paginator()
        .items()
        .send();
    let record = records
        .next()
        .await
        .expect("the request's idempotency record")
        .expect("scan idempotency records");
    stack
        .dynamodb
        .update_item()
        .table_name("IdempotencyTable")
        .key("pk", record["pk"].clone())
        .update_expression("SET locked_until = :past")
        .expression_attribute_values(":past", AttributeValue::N("0".into()))
        .send()
        .await
        .expect("expire the lock");
}

/// 4000 0000 0000 0259: the sandbox charges, then holds its answer past the function's
/// timeout, so the function dies with its charge made and its payment `processing`.
const STALL_CARD: &str = "4000000000000259";

#[tokio::test]
async fn a_payment_whose_function_died_after_charging_is_settled_once_and_its_key_keeps_its_promises()
 {
    let stack = Stack::connect().await;
    let user_id = user(&stack).await;
    let key = unique("died-");
    let body =
        json!({"user_id": user_id, "amount": 3100, "currency": "USD", "method": card(STALL_CARD)});
    let (status, _, died) = pay(&stack, &key, &body).await;
    assert!(
        status.is_server_error(),
        "the function timed out: {status} {died}"
    );
    let (_, listed) = send(stack.admin(Method::GET, &format!("/payments?user_id={user_id}"))).await;
    let stuck = &listed["items"][0];
    let id = stuck["id"].as_str().unwrap().to_owned();
    assert_eq!(stuck["status"], "processing", "{stuck}");
    assert_eq!(ledger(&stack, &id).await, [("charge".to_owned(), 3100)]);

    // The reconciler asks the gateway with the payment's gateway key and settles it.
    age(&stack, &id, "PAYMENT").await;
    let report = reconcile(&stack).await;
    assert!(report["settled"].as_u64().unwrap() >= 1, "{report}");
    let (_, settled) = send(stack.admin(Method::GET, &format!("/payments/{id}"))).await;
    assert_eq!(settled["status"], "succeeded", "{settled}");
    assert!(
        settled["processor_reference"]
            .as_str()
            .unwrap()
            .starts_with("sbx_ch_")
    );
    let payment_id = id.clone();
    let events = stack
        .collect_events(
            move |e| e["data"]["id"] == payment_id.as_str(),
            Duration::from_secs(3),
        )
        .await;
    let types: Vec<_> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["payment.succeeded"]);

    // Its key, once the dead request's lock expired: another body is still refused...
    expire_lock(&stack, &key).await;
    let other =
        json!({"user_id": user_id, "amount": 3101, "currency": "USD", "method": card(STALL_CARD)});
    let (status, _, problem) = pay(&stack, &key, &other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem_type(&problem), "idempotency-key-reused");
    // ...and the same body resumes the same payment, charging nothing more.
    let (status, _, resumed) = pay(&stack, &key, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{resumed}");
    assert_eq!(resumed["id"], id.as_str());
    assert_eq!(resumed["status"], "succeeded");
    assert_eq!(ledger(&stack, &id).await, [("charge".to_owned(), 3100)]);
    let (_, listed) = send(stack.admin(Method::GET, &format!("/payments?user_id={user_id}"))).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "one payment");
}

#[tokio::test]
async fn a_retry_after_the_lock_expired_resumes_the_processing_payment_with_its_gateway_key() {
    let stack = Stack::connect().await;
    let user_id = user(&stack).await;
    let key = unique("resume-");
    let body =
        json!({"user_id": user_id, "amount": 2700, "currency": "GBP", "method": card(STALL_CARD)});
    let (status, _, _) = pay(&stack, &key, &body).await;
    assert!(status.is_server_error(), "the function timed out: {status}");
    expire_lock(&stack, &key).await;
    let (status, _, resumed) = pay(&stack, &key, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{resumed}");
    assert_eq!(resumed["status"], "succeeded", "{resumed}");
    let id = resumed["id"].as_str().unwrap();
    let (_, listed) = send(stack.admin(Method::GET, &format!("/payments?user_id={user_id}"))).await;
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        1,
        "no second payment: {listed}"
    );
    assert_eq!(listed["items"][0]["id"], id);
    assert_eq!(
        ledger(&stack, id).await,
        [("charge".to_owned(), 2700)],
        "one charge"
    );
}

#[tokio::test]
async fn parallel_confirms_of_a_three_d_secure_payment_succeed_once() {
    let stack = Stack::connect().await;
    let user_id = user(&stack).await;
    let body = json!({"user_id": user_id, "amount": 990, "currency": "EUR", "method": card("4000000000003220")});
    let (_, _, p) = pay(&stack, &unique("k-"), &body).await;
    assert_eq!(p["status"], "requires_action", "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let confirms = (0..12).map(|_| {
        let (stack, id) = (stack.clone(), id.clone());
        tokio::spawn(async move {
            send(stack.admin(Method::POST, &format!("/payments/{id}/confirm"))).await
        })
    });
    for result in futures::future::join_all(confirms).await {
        let (status, body) = result.unwrap();
        match status {
            StatusCode::OK => assert_eq!(body["status"], "succeeded", "{body}"),
            StatusCode::CONFLICT => assert_eq!(problem_type(&body), "invalid-transition", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    let (_, after) = send(stack.admin(Method::GET, &format!("/payments/{id}"))).await;
    assert_eq!(after["status"], "succeeded", "{after}");
    assert_eq!(ledger(&stack, &id).await, [("charge".to_owned(), 990)]);
    let payment_id = id.clone();
    let events = stack
        .collect_events(
            move |e| {
                e["data"]["id"] == payment_id.as_str() && e["type"] != "payment.requires_action"
            },
            Duration::from_secs(3),
        )
        .await;
    // Delivery is at least once: one outcome is one event id, however often it arrives.
    let ids: HashSet<_> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    if ids.len() != 1 {
        let mut committed = Vec::new();
        for id in &ids {
            committed.push((*id, outbox_has(&stack, id).await));
        }
        panic!(
            "one outcome, got {} event ids (id, its outbox record committed?): {committed:?}\n{events:#?}",
            ids.len()
        );
    }
    assert!(
        events.iter().all(|e| e["type"] == "payment.succeeded"),
        "{events:#?}"
    );
}

#[tokio::test]
async fn a_refund_retried_with_its_key_is_never_refused_as_not_refundable() {
    let stack = Stack::connect().await;
    let user_id = user(&stack).await;
    let body = json!({"user_id": user_id, "amount": 800, "currency": "USD", "method": card("4242424242424242")});
    let (_, _, p) = pay(&stack, &unique("k-"), &body).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let key = unique("r-");
    let refunds = (0..8).map(|_| {
        let (stack, id, key) = (stack.clone(), id.clone(), key.clone());
        tokio::spawn(async move {
            send_full(
                stack
                    .admin(Method::POST, &format!("/payments/{id}/refunds"))
                    .header("Idempotency-Key", key)
                    .json(&json!({})),
            )
            .await
        })
    });
    let mut refund_ids = HashSet::new();
    for result in futures::future::join_all(refunds).await {
        let (status, headers, body) = result.unwrap();
        match status {
            StatusCode::CREATED => {
                refund_ids.insert(body["id"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => {
                // The first still runs: never "not refundable", which its own
                // reservation would otherwise make it.
                assert_eq!(problem_type(&body), "idempotency-in-progress", "{body}");
                assert!(headers.get("retry-after").is_some());
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(refund_ids.len(), 1, "one refund");
    let refunded: Vec<_> = ledger(&stack, &id)
        .await
        .into_iter()
        .filter(|(k, _)| k == "refund")
        .collect();
    assert_eq!(refunded, [("refund".to_owned(), 800)]);
}
