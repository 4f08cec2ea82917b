//! The idempotency records against real DynamoDB (the local stack's endpoint): one
//! winner among concurrent takers, replay after completion, takeover of a dead lock.

use aloft_shared::idempotency::{Conflict, IdempotencyKey, IdempotencyStore, StoredResponse};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};

async fn store() -> (IdempotencyStore, aws_sdk_dynamodb::Client) {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run these tests with `make test`, which starts the local stack"
    );
    let client = aloft_shared::aws::dynamodb(&aloft_shared::aws::sdk_config().await);
    let table = format!("idempotency-test-{}", uuid::Uuid::new_v4().simple());
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create test table");
    (IdempotencyStore::new(client.clone(), table), client)
}

fn key(v: &str) -> IdempotencyKey {
    let mut h = http::HeaderMap::new();
    h.insert("idempotency-key", v.parse().unwrap());
    IdempotencyKey::from_headers(&h).unwrap()
}

#[tokio::test]
async fn one_of_many_concurrent_takers_wins_and_the_rest_see_it_in_progress() {
    let (store, client) = store().await;
    let k = key("order-1");
    let attempts = (0..20).map(|_| {
        let (store, client, k) = (store.clone(), client.clone(), k.clone());
        async move {
            let (_, item) = store.take("caller", "op", &k, "fp", "r1", 1_000).unwrap();
            match client
                .transact_write_items()
                .transact_items(item)
                .send()
                .await
            {
                Ok(_) => None,
                Err(_) => Some(
                    store
                        .conflict("caller", "op", &k, "fp", 1_000)
                        .await
                        .unwrap(),
                ),
            }
        }
    });
    let outcomes = futures::future::join_all(attempts).await;
    assert_eq!(
        outcomes.iter().filter(|o| o.is_none()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .flatten()
            .all(|c| matches!(c, Conflict::InProgress { .. })),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn completed_requests_replay_and_other_bodies_are_refused() {
    let (store, client) = store().await;
    let k = key("order-2");
    let (lock, item) = store.take("caller", "op", &k, "fp", "r1", 1_000).unwrap();
    client
        .transact_write_items()
        .transact_items(item)
        .send()
        .await
        .unwrap();
    let answer = StoredResponse {
        status: 201,
        body: r#"{"id":"p1"}"#.into(),
        location: Some("/payments/p1".into()),
    };
    client
        .transact_write_items()
        .transact_items(store.complete(&lock, &answer).unwrap())
        .send()
        .await
        .unwrap();

    let (_, again) = store.take("caller", "op", &k, "fp", "r1", 1_001).unwrap();
    assert!(
        client
            .transact_write_items()
            .transact_items(again)
            .send()
            .await
            .is_err(),
        "key is taken"
    );
    assert_eq!(
        store
            .conflict("caller", "op", &k, "fp", 1_001)
            .await
            .unwrap(),
        Conflict::Replay(answer)
    );
    assert_eq!(
        store
            .conflict("caller", "op", &k, "other", 1_001)
            .await
            .unwrap(),
        Conflict::Reused
    );
    // Another caller's identical key is a different record.
    let (_, theirs) = store
        .take("someone-else", "op", &k, "fp", "r1", 1_001)
        .unwrap();
    client
        .transact_write_items()
        .transact_items(theirs)
        .send()
        .await
        .unwrap();
}

async fn commit(
    client: &aws_sdk_dynamodb::Client,
    item: aws_sdk_dynamodb::types::TransactWriteItem,
) -> bool {
    client
        .transact_write_items()
        .transact_items(item)
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn a_dead_holders_lock_is_taken_over_once_by_the_same_request_only() {
    let (store, client) = store().await;
    let k = key("order-3");
    let (first, item) = store
        .take("caller", "op", &k, "fp", "pay_1", 1_000)
        .unwrap();
    assert!(commit(&client, item).await);
    let (_, soon) = store
        .take("caller", "op", &k, "fp", "pay_2", 1_030)
        .unwrap();
    assert!(!commit(&client, soon).await, "lock still held");
    let after_timeout = 1_000 + aloft_shared::idempotency::LOCK_TIMEOUT_SECS + 1;
    // Taking afresh never replaces a dead holder's record: the resource it started must
    // be resumed, not duplicated.
    let (_, later) = store
        .take("caller", "op", &k, "fp", "pay_3", after_timeout)
        .unwrap();
    assert!(!commit(&client, later).await);
    // Another body is refused even after the lock expired.
    assert_eq!(
        store
            .conflict("caller", "op", &k, "other", after_timeout)
            .await
            .unwrap(),
        Conflict::Reused
    );
    let Conflict::Abandoned(abandoned) = store
        .conflict("caller", "op", &k, "fp", after_timeout)
        .await
        .unwrap()
    else {
        panic!("the same request finds the lock abandoned");
    };
    assert_eq!(abandoned.resource(), Some("pay_1"));
    // Many resume at once: one takes over.
    let takers = (0..10).map(|_| store.take_over(&abandoned, after_timeout));
    let locks: Vec<_> = futures::future::join_all(takers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<_> = locks.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1);
    let answer = StoredResponse {
        status: 201,
        body: "{}".into(),
        location: None,
    };
    // The first holder woke up: it no longer holds the lock and cannot answer.
    assert!(!commit(&client, store.complete(&first, &answer).unwrap()).await);
    assert!(commit(&client, store.complete(&winners[0], &answer).unwrap()).await);
    assert_eq!(
        store
            .conflict("caller", "op", &k, "fp", after_timeout)
            .await
            .unwrap(),
        Conflict::Replay(answer)
    );

    let after_expiry = 1_000 + aloft_shared::idempotency::RECORD_TTL_SECS + 1_000;
    let (_, fresh) = store
        .take("caller", "op", &k, "new body", "pay_4", after_expiry)
        .unwrap();
    assert!(commit(&client, fresh).await, "expired record is replaced");
}
