//! Notifications end to end: a change commits its event with it, the outbox stream's
//! relay queues it, the fan-out and delivery workers POST it, signed, to each matching
//! webhook subscriber, retrying on the configured schedule (shortened by the local
//! stack's `WebhookRetrySchedule`, same code path), into a dead-letter queue when every
//! attempt failed, and again on request.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aloft_e2e::webhooks::{Answer, Delivery, Receiver};
use aloft_e2e::{Stack, problem_type, send, unique_email};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// A subscription for `receiver`; returns `(id, secret)`.
async fn subscribe(stack: &Stack, receiver: &Receiver, types: &[&str]) -> (String, String) {
    let (status, body) = send(stack.admin(Method::POST, "/webhooks").json(&json!({
        "url": receiver.url,
        "event_types": types,
        "description": "notifications e2e",
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = body["secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (body["id"].as_str().expect("id").to_owned(), secret)
}

/// Deletes a test's subscription once it is done. Left behind, it would get every later
/// test's events at a receiver that is gone: attempts, retries and dead letters that
/// only load the shared stack.
async fn unsubscribe(stack: &Stack, webhook: &str) {
    let (status, body) = send(stack.admin(Method::DELETE, &format!("/webhooks/{webhook}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

async fn create_user(stack: &Stack) -> String {
    create_user_with_email(stack, &unique_email()).await
}

/// A user whose email the test knows before its event exists, so a receiver can be
/// scripted for that event alone (subscribers also get other tests' users).
async fn create_user_with_email(stack: &Stack, email: &str) -> String {
    let (status, body) = send(stack.admin(Method::POST, "/users").json(&json!({
        "email": email, "name": "Grace Hopper", "role": "member",
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

fn about_user(user_id: &str) -> impl Fn(&Delivery) -> bool + '_ {
    move |d| d.envelope()["data"]["id"] == user_id
}

/// Polls the subscription's deliveries until `done` holds for the one of `event_id`.
async fn delivery_of(
    stack: &Stack,
    webhook: &str,
    event_id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = std::time::Instant::now();
    loop {
        let (status, body) = send(stack.admin(
            Method::GET,
            &format!("/webhooks/{webhook}/deliveries?limit=100"),
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let found = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["event_id"] == event_id)
            .cloned();
        if let Some(d) = found {
            if done(&d) || start.elapsed() > WAIT {
                return d;
            }
        }
        assert!(start.elapsed() < WAIT, "no delivery of {event_id}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_new_user_reaches_its_subscriber_once_signed_the_standard_webhooks_way() {
    let stack = Stack::connect().await;
    let receiver = Receiver::start();
    let (webhook, secret) = subscribe(&stack, &receiver, &["user.created"]).await;
    let user_id = create_user(&stack).await;

    let got = receiver.wait_for(about_user(&user_id), 1, WAIT).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let d = &got[0];
    assert!(
        d.signed_by(&secret),
        "signature {} does not verify",
        d.signature
    );
    assert!(!d.signed_by("whsec_bm90IHRoZSBzZWNyZXQ="));
    assert_eq!(d.content_type, "application/json");
    let sent_at: i64 = d
        .timestamp
        .parse()
        .expect("webhook-timestamp is unix seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - sent_at).abs() < 300,
        "timestamp {sent_at} vs now {now}"
    );
    let envelope = d.envelope();
    assert_eq!(envelope["type"], "user.created");
    assert_eq!(envelope["source"], "aloft.users");
    assert!(!d.webhook_id.is_empty());

    // Only the types asked for: deleting the user announces user.deleted, not to us.
    let (status, _) = send(stack.admin(Method::DELETE, &format!("/users/{user_id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let deleted = stack
        .collect_events(
            |e| e["type"] == "user.deleted" && e["data"]["id"] == user_id.as_str(),
            Duration::from_secs(1),
        )
        .await;
    assert_eq!(deleted.len(), 1, "the collector saw the deletion");
    assert_eq!(
        receiver
            .wait_for(about_user(&user_id), 2, Duration::from_secs(2))
            .await
            .len(),
        1
    );
    unsubscribe(&stack, &webhook).await;
}

#[tokio::test]
async fn events_committed_while_the_relay_is_stopped_all_arrive_once_it_runs_again() {
    let stack = Stack::connect().await;
    let receiver = Receiver::start();
    let (webhook, _) = subscribe(&stack, &receiver, &["user.created"]).await;
    let mapping = format!(
        "{}/_local/event-sources/OutboxRelayFunction.OutboxStream",
        stack.url
    );

    let (status, body) = send(stack.http.post(format!("{mapping}/disable"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut users = Vec::new();
    for _ in 0..5 {
        // Each write still succeeds: it is one transaction, nothing waits on SQS.
        users.push(create_user(&stack).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let early: Vec<_> = receiver
        .deliveries()
        .into_iter()
        .filter(|d| {
            users
                .iter()
                .any(|u| d.envelope()["data"]["id"] == u.as_str())
        })
        .collect();
    let (status, body) = send(stack.http.post(format!("{mapping}/enable"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        early.is_empty(),
        "delivered while the relay was stopped: {early:?}"
    );

    let wanted = |d: &Delivery| {
        users
            .iter()
            .any(|u| d.envelope()["data"]["id"] == u.as_str())
    };
    assert_eq!(receiver.wait_for(wanted, 5, WAIT).await.len(), 5);
    tokio::time::sleep(Duration::from_secs(2)).await; // room for a duplicate to show up
    let got: Vec<_> = receiver.deliveries().into_iter().filter(wanted).collect();
    // Exactly once per subscription, counted by webhook-id; a resend keeps its id.
    let mut by_id: HashMap<String, HashSet<String>> = HashMap::new();
    for d in &got {
        by_id
            .entry(d.webhook_id.clone())
            .or_default()
            .insert(d.envelope()["data"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(by_id.len(), 5, "{got:?}");
    let delivered: HashSet<String> = by_id.into_values().flatten().collect();
    assert_eq!(delivered, users.iter().cloned().collect::<HashSet<_>>());
    unsubscribe(&stack, &webhook).await;
}

#[tokio::test]
async fn a_failing_receiver_is_retried_on_schedule_until_it_answers() {
    let stack = Stack::connect().await;
    let receiver = Receiver::start();
    let email = unique_email();
    receiver.script(
        &email,
        &[
            Answer::Status(500),
            Answer::Status(503),
            Answer::Status(404),
        ],
    );
    let (webhook, secret) = subscribe(&stack, &receiver, &["user.created"]).await;
    let user_id = create_user_with_email(&stack, &email).await;

    let got = receiver.wait_for(about_user(&user_id), 4, WAIT).await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(
        got.iter().all(|d| d.webhook_id == got[0].webhook_id),
        "one id for every attempt"
    );
    assert!(got.iter().all(|d| d.signed_by(&secret)));
    // The local stack's schedule is 0 s, 1 s, 2 s, 3 s…: each retry waits at least its
    // delay after the previous attempt.
    for (i, pair) in got.windows(2).enumerate() {
        let gap = pair[1].received_at - pair[0].received_at;
        assert!(
            gap >= Duration::from_millis(900 * (i as u64 + 1) - 100),
            "retry {i} after {gap:?}"
        );
    }

    let event_id = got[0].envelope()["id"].as_str().unwrap().to_owned();
    let d = delivery_of(&stack, &webhook, &event_id, |d| d["status"] == "delivered").await;
    assert_eq!(d["status"], "delivered", "{d}");
    let statuses: Vec<_> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["http_status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [json!(500), json!(503), json!(404), json!(204)],
        "{d}"
    );
    assert_eq!(
        receiver
            .wait_for(about_user(&user_id), 5, Duration::from_secs(2))
            .await
            .len(),
        4
    );
    unsubscribe(&stack, &webhook).await;
}

#[tokio::test]
async fn a_receiver_that_always_fails_ends_dead_lettered_and_can_be_retried_and_replayed() {
    let stack = Stack::connect().await;
    let receiver = Receiver::start();
    let email = unique_email();
    receiver.script(&email, &[Answer::Status(500); 20]);
    let (webhook, _) = subscribe(&stack, &receiver, &["user.created"]).await;
    let since = aloft_e2e::now_rfc3339();
    let user_id = create_user_with_email(&stack, &email).await;

    let first = receiver.wait_for(about_user(&user_id), 1, WAIT).await;
    let event_id = first[0].envelope()["id"].as_str().unwrap().to_owned();
    let failed = delivery_of(&stack, &webhook, &event_id, |d| d["status"] == "failed").await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let attempts = failed["attempts"].as_array().unwrap().len();
    assert!(attempts >= 2, "{failed}");
    assert_eq!(
        receiver
            .deliveries()
            .iter()
            .filter(|d| about_user(&user_id)(d))
            .count(),
        attempts
    );
    let delivery_id = failed["id"].as_str().unwrap().to_owned();
    let dead = dead_letters(&stack, &delivery_id).await;
    assert!(dead, "the failed delivery is in WebhookDeadLetterQueue");

    // The subscriber is back: a retry delivers it, with the same webhook-id.
    receiver.clear_script();
    let (status, body) = send(stack.admin(
        Method::POST,
        &format!("/webhooks/{webhook}/deliveries/{delivery_id}/retry"),
    ))
    .await;
    assert!(status.is_success(), "{status} {body}");
    let d = delivery_of(&stack, &webhook, &event_id, |d| d["status"] == "delivered").await;
    assert_eq!(d["status"], "delivered", "{d}");
    let all = receiver.deliveries();
    let ours: Vec<_> = all.iter().filter(|d| about_user(&user_id)(d)).collect();
    assert!(ours.iter().all(|d| d.webhook_id == first[0].webhook_id));

    // Replay re-sends everything since a time, again under the same webhook-id.
    let before = ours.len();
    let (status, body) = send(
        stack
            .admin(Method::POST, &format!("/webhooks/{webhook}/replay"))
            .json(&json!({"since": since})),
    )
    .await;
    assert!(status.is_success(), "{status} {body}");
    let again = receiver
        .wait_for(about_user(&user_id), before + 1, WAIT)
        .await;
    assert_eq!(again.len(), before + 1, "replayed once");
    assert_eq!(again.last().unwrap().webhook_id, first[0].webhook_id);
    unsubscribe(&stack, &webhook).await;
}

/// Whether WebhookDeadLetterQueue holds a message naming `delivery_id`. The queue holds
/// other tests' dead letters too, possibly many: each receive hides what it read for a
/// while, so the next one reads further on instead of the same first ten (nothing else
/// reads this queue, and nothing is deleted).
async fn dead_letters(stack: &Stack, delivery_id: &str) -> bool {
    let url = stack.queue_url("WebhookDeadLetterQueue").await;
    let start = std::time::Instant::now();
    while start.elapsed() < WAIT {
        let out = stack
            .sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(20)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from the DLQ");
        if out
            .messages()
            .iter()
            .any(|m| m.body().unwrap_or_default().contains(delivery_id))
        {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_hold_back_another_subscribers_delivery() {
    let stack = Stack::connect().await;
    let hanging = Receiver::start();
    let email = unique_email();
    hanging.script(&email, &[Answer::Hang; 5]);
    let healthy = Receiver::start();
    let (to_hanging, _) = subscribe(&stack, &hanging, &["user.created"]).await;
    let (to_healthy, _) = subscribe(&stack, &healthy, &["user.created"]).await;
    let user_id = create_user_with_email(&stack, &email).await;

    let got = healthy.wait_for(about_user(&user_id), 1, WAIT).await;
    assert_eq!(got.len(), 1);
    // The hanging endpoint is still on its first attempt (10 s timeout, then a retry
    // delay): the healthy one did not wait for it.
    let hung = hanging
        .deliveries()
        .into_iter()
        .filter(|d| about_user(&user_id)(d))
        .count();
    assert!(hung <= 1, "{hung} attempts at the hanging endpoint already");
    unsubscribe(&stack, &to_hanging).await;
    unsubscribe(&stack, &to_healthy).await;
}

#[tokio::test]
async fn urls_aimed_at_metadata_or_link_local_addresses_are_refused_in_every_spelling() {
    let stack = Stack::connect().await;
    for url in [
        "https://169.254.169.254/latest/meta-data",
        "https://2852039166/",
        "https://0xa9fea9fe/",
        "https://0251.254.169.254/",
        "https://[::ffff:169.254.169.254]/",
        "https://[fd00:ec2::254]/",
        "https://[fe80::1]/",
        "ftp://example.com/hook",
        "not a url",
    ] {
        let (status, body) = send(stack.admin(Method::POST, "/webhooks").json(&json!({
            "url": url, "event_types": ["user.created"],
        })))
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(problem_type(&body), "validation", "{url}: {body}");
        assert_eq!(body["errors"][0]["field"], "url", "{url}: {body}");
    }
    let (status, body) = send(stack.admin(Method::POST, "/webhooks").json(&json!({
        "url": "https://hooks.example.com/x", "event_types": [],
    })))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "event_types", "{body}");
}

#[tokio::test]
async fn after_a_rotation_both_secrets_verify_until_the_old_one_expires() {
    let stack = Stack::connect().await;
    let receiver = Receiver::start();
    let (webhook, old) = subscribe(&stack, &receiver, &["webhook.test"]).await;
    let (status, body) =
        send(stack.admin(Method::POST, &format!("/webhooks/{webhook}/rotate-secret"))).await;
    assert!(status.is_success(), "{status} {body}");
    let new = body["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new, old);

    let (status, body) =
        send(stack.admin(Method::POST, &format!("/webhooks/{webhook}/test"))).await;
    assert!(status.is_success(), "{status} {body}");
    let got = receiver
        .wait_for(|d| d.envelope()["type"] == "webhook.test", 1, WAIT)
        .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].signed_by(&new), "{}", got[0].signature);
    assert!(got[0].signed_by(&old), "{}", got[0].signature);
    assert_eq!(got[0].signature.split(' ').count(), 2);
    unsubscribe(&stack, &webhook).await;
}

#[tokio::test]
async fn webhook_routes_need_webhook_scopes() {
    let stack = Stack::connect().await;
    let (_, reader) = stack.key_with_scopes(&["webhooks:read"]).await;
    let (status, body) = send(stack.with_key(&reader, Method::GET, "/webhooks")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(
        stack
            .with_key(&reader, Method::POST, "/webhooks")
            .json(&json!({"url": "https://hooks.example.com/x", "event_types": ["*"]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(problem_type(&body), "insufficient-scope");
}

#[tokio::test]
async fn a_subscription_failing_for_the_configured_period_is_disabled_and_announced() {
    let stack = Stack::connect().await;
    let receiver = Receiver::start();
    // Every delivery fails (it also receives other tests' users: one success would end
    // the streak, as it should).
    receiver.script("", &[Answer::Status(500); 1000]);
    let (webhook, _) = subscribe(&stack, &receiver, &["user.created"]).await;
    let user_id = create_user(&stack).await;
    let first = receiver.wait_for(about_user(&user_id), 1, WAIT).await;
    assert_eq!(first.len(), 1);

    // The local stack disables after 20 s of failures (5 days deployed). The sweep before
    // that leaves the subscription alone; the one after disables it.
    fire_retry_sweep(&stack).await;
    let (_, sub) = send(stack.admin(Method::GET, &format!("/webhooks/{webhook}"))).await;
    assert_eq!(sub["enabled"], true, "{sub}");
    tokio::time::sleep(Duration::from_secs(21)).await;
    fire_retry_sweep(&stack).await;
    let (_, sub) = send(stack.admin(Method::GET, &format!("/webhooks/{webhook}"))).await;
    assert_eq!(sub["enabled"], false, "{sub}");

    let announced = stack
        .collect_events(
            |e| e["type"] == "webhook.disabled" && e.to_string().contains(webhook.as_str()),
            Duration::from_secs(2),
        )
        .await;
    assert_eq!(announced.len(), 1, "{announced:?}");
    unsubscribe(&stack, &webhook).await;
}

async fn fire_retry_sweep(stack: &Stack) {
    let (status, body) = send(stack.http.post(format!(
        "{}/_local/schedules/WebhookRetrySweepFunction.EveryMinute/fire",
        stack.url
    )))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
