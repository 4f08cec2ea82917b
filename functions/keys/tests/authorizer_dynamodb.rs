//! The authorizer on the sample authorizer event (`events/authorizer/request.json`),
//! parsed by `aws_lambda_events` as in Lambda, against the local stack's keys table.

use std::collections::BTreeMap;
use std::time::Duration;

use aloft_keys::authorizer::Authorizer;
use aloft_keys::domain::{ApiKey, NewKey};
use aloft_keys::limit::RateLimit;
use aloft_keys::store::KeyStore;
use aloft_shared::auth::{NewApiKey, Scopes};
use aloft_shared::dynamo::RequestCounter;
use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;

async fn store() -> KeyStore {
    counting_store(&RequestCounter::default()).await
}

async fn counting_store(counter: &RequestCounter) -> KeyStore {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run these tests with `make test`, which starts the local stack"
    );
    let sdk = aloft_shared::aws::sdk_config().await;
    KeyStore::new(counter.client(&sdk), "ApiKeysTable".into())
}

/// An authorizer that reads every key afresh (no cache), as a cold process does.
fn uncached(store: KeyStore) -> Authorizer {
    Authorizer::new(store, Duration::ZERO)
}

/// Issues a key straight into the table.
async fn issue(store: &KeyStore, rate_limit: Option<RateLimit>) -> NewApiKey {
    let minted = NewApiKey::generate();
    let key = ApiKey::new(
        minted.key_id.clone(),
        &NewKey {
            name: "authorizer test".into(),
            scopes: Scopes::parse("users:read").unwrap(),
            rate_limit,
        },
        "2026-11-25T00:00:00.000000Z".into(),
        "bootstrap".into(),
    );
    store.create(&key, &minted.token_hash).await.unwrap();
    minted
}

async fn allowed(authorizer: &Authorizer, token: &str) -> bool {
    let answer = authorizer
        .authorize(&event(&format!("Bearer {token}")))
        .await
        .unwrap();
    serde_json::to_value(&answer).unwrap()["isAuthorized"] == true
}

fn event(authorization: &str) -> ApiGatewayV2CustomAuthorizerV2Request {
    let path = format!(
        "{}/../../events/authorizer/request.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    e["identitySource"] = serde_json::json!([authorization]);
    e["headers"]["authorization"] = authorization.into();
    serde_json::from_value(e).expect("aws_lambda_events parses the sample")
}

#[tokio::test]
async fn live_keys_pass_with_their_scopes_and_revoked_or_unknown_ones_do_not() {
    let store = store().await;
    let minted = NewApiKey::generate();
    let key = ApiKey::new(
        minted.key_id.clone(),
        &NewKey {
            name: "authorizer test".into(),
            scopes: Scopes::parse("users:read payments:write").unwrap(),
            rate_limit: None,
        },
        "2026-11-25T00:00:00.000000Z".into(),
        "bootstrap".into(),
    );
    store.create(&key, &minted.token_hash).await.unwrap();
    let authorizer = uncached(store.clone());

    let yes = authorizer
        .authorize(&event(&format!("Bearer {}", minted.token)))
        .await
        .unwrap();
    let json = serde_json::to_value(&yes).unwrap();
    assert_eq!(json["isAuthorized"], true);
    assert_eq!(json["context"]["key_id"], minted.key_id.as_str());
    assert_eq!(json["context"]["scopes"], "users:read payments:write");

    // The sample's own token is well formed but belongs to no key.
    let path = format!(
        "{}/../../events/authorizer/request.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let sample: ApiGatewayV2CustomAuthorizerV2Request =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for e in [
        sample,
        event("Basic abc"),
        event(&format!("Bearer {}x", minted.token)),
    ] {
        let no = serde_json::to_value(authorizer.authorize(&e).await.unwrap()).unwrap();
        assert_eq!(no, serde_json::json!({"isAuthorized": false}));
    }

    store
        .revoke(&minted.key_id, "2026-11-25T00:00:01.000000Z")
        .await
        .unwrap();
    let no = serde_json::to_value(
        authorizer
            .authorize(&event(&format!("Bearer {}", minted.token)))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(no["isAuthorized"], false, "revoked");
}

#[tokio::test]
async fn a_key_without_a_limit_costs_no_request_beyond_its_lookup() {
    let counter = RequestCounter::default();
    let store = counting_store(&counter).await;
    let minted = issue(&store, None).await;
    counter.take();

    // No cache: one GetItem per authorization and nothing else.
    let fresh = uncached(store.clone());
    for _ in 0..3 {
        assert!(allowed(&fresh, &minted.token).await);
    }
    assert_eq!(counter.take(), BTreeMap::from([("GetItem".to_owned(), 3)]));

    // Cached: one GetItem for the process, then none.
    let cached = Authorizer::new(store, Duration::from_secs(60));
    for _ in 0..5 {
        assert!(allowed(&cached, &minted.token).await);
    }
    assert_eq!(counter.take(), BTreeMap::from([("GetItem".to_owned(), 1)]));
}

#[tokio::test]
async fn a_limited_key_gets_its_burst_then_is_refused_and_costs_one_update_per_request_let_in() {
    let counter = RequestCounter::default();
    let store = counting_store(&counter).await;
    // Three at once, then one an hour: the refill cannot reach the test.
    let limit = RateLimit {
        per_second: 1.0 / 3600.0,
        burst: 3,
    };
    let minted = issue(&store, Some(limit)).await;
    counter.take();

    let first = Authorizer::new(store.clone(), Duration::from_secs(60));
    let answers: Vec<bool> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(allowed(&first, &minted.token).await);
        }
        v
    };
    assert_eq!(answers, [true, true, true, false, false]);
    // One GetItem (then cached), one UpdateItem per request let in; the refusals cost
    // nothing, since the TAT this process saw already says "over".
    assert_eq!(
        counter.take(),
        BTreeMap::from([("GetItem".to_owned(), 1), ("UpdateItem".to_owned(), 3)])
    );

    // Another process shares the bucket through DynamoDB: its optimistic write loses,
    // the failed condition hands it the current TAT, and it refuses.
    let second = Authorizer::new(store.clone(), Duration::from_secs(60));
    assert!(!allowed(&second, &minted.token).await);
    assert_eq!(
        counter.take(),
        BTreeMap::from([("GetItem".to_owned(), 1), ("UpdateItem".to_owned(), 1)])
    );

    // A different key's bucket is untouched.
    let other = issue(&store, Some(limit)).await;
    assert!(allowed(&second, &other.token).await);
}

#[tokio::test]
async fn concurrent_processes_never_let_more_than_the_burst_through() {
    let store = store().await;
    let limit = RateLimit {
        per_second: 1.0 / 3600.0,
        burst: 5,
    };
    let minted = issue(&store, Some(limit)).await;
    let processes: Vec<Authorizer> = (0..4).map(|_| uncached(store.clone())).collect();
    let token = minted.token.as_str();
    let attempts = processes
        .iter()
        .flat_map(|a| (0..5).map(move |_| allowed(a, token)));
    let let_in = futures::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count();
    assert_eq!(
        let_in, 5,
        "the bucket is shared and its writes conditional: exactly the burst gets in"
    );
}
