//! The fan-out worker against the local stack's table and delivery queue: one poison
//! message in a batch is the only one reported back, and an event that arrives twice
//! (the relay and SQS deliver at least once) makes one delivery per subscription.
//!
//! Needs the stack (`make test` provides `AWS_ENDPOINT_URL` and the tables).

use aloft_notifier::fanout::Fanout;
use aloft_notifier::queue::DeliveryQueue;
use aloft_notifier::settings::Settings;
use aloft_notifier::store::WebhookStore;
use aloft_shared::cursor::CursorCodec;
use aloft_shared::master_key::MasterKey;
use aloft_shared::outbox::{Envelope, Outbox};
use aws_lambda_events::event::sqs::SqsEvent;

async fn fanout() -> Fanout {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run these tests with `make test`, which starts the local stack"
    );
    let sdk = aloft_shared::aws::sdk_config().await;
    let ddb = aloft_shared::aws::dynamodb(&sdk);
    let sqs = aloft_shared::aws::sqs(&sdk);
    let queue_url = sqs
        .get_queue_url()
        .queue_name("WebhookDeliveryQueue")
        .send()
        .await
        .expect("the stack's delivery queue")
        .queue_url
        .expect("queue url");
    let master = MasterKey::from_bytes(b"fanout-test-master-key-0123456789abcdef".to_vec());
    Fanout {
        store: WebhookStore::new(
            ddb.clone(),
            "WebhooksTable".into(),
            Outbox::new(ddb, "OutboxTable".into()),
            CursorCodec::new(&master),
        ),
        queue: DeliveryQueue::new(sqs, queue_url),
        settings: Settings::default(),
    }
}

fn batch(bodies: &[(&str, String)]) -> SqsEvent {
    let records: Vec<_> = bodies
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": format!("rh-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:NotificationsQueue",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("SQS event")
}

fn event() -> String {
    let e = Envelope::new("fanout.test", "aloft.tests", serde_json::json!({"n": 1})).unwrap();
    serde_json::to_string(&e).unwrap()
}

#[tokio::test]
async fn a_batch_with_one_poison_message_reports_only_that_message() {
    let fanout = fanout().await;
    let response = fanout
        .handle(batch(&[
            ("good-1", event()),
            ("poison", "{not an envelope".into()),
            ("good-2", event()),
            ("wrong-shape", r#"{"id": 7}"#.into()),
        ]))
        .await;
    let mut failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    assert_eq!(failed, ["poison", "wrong-shape"]);
}

#[tokio::test]
async fn an_event_delivered_twice_makes_one_delivery_per_subscription() {
    let fanout = fanout().await;
    let event_type = format!("fanout.test_{}", uuid::Uuid::new_v4().simple());
    let now = aloft_shared::clock::rfc3339(aloft_shared::clock::now());
    let sub: aloft_notifier::domain::Subscription = serde_json::from_value(serde_json::json!({
        "id": format!("wh_{}", uuid::Uuid::new_v4().simple()),
        "url": "https://hooks.example.com/fanout",
        "event_types": [event_type],
        "enabled": true,
        "created_at": now,
        "updated_at": now,
        "secret_generation": 1
    }))
    .expect("a subscription");
    fanout.store.create_subscription(&sub).await.unwrap();

    let e = Envelope::new(&event_type, "aloft.tests", serde_json::json!({})).unwrap();
    let body = serde_json::to_string(&e).unwrap();
    for _ in 0..2 {
        let response = fanout.handle(batch(&[("again", body.clone())])).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "a redelivered event is not a failure, or SQS would retry it into the DLQ"
        );
    }
    let page = fanout
        .store
        .list_deliveries(&sub.id, None, 10, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "{:?}", page.items);
    assert_eq!(page.items[0].event_id, e.id);
    fanout.store.delete_subscription(&sub.id).await.unwrap();
}
