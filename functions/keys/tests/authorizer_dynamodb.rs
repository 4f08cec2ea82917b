//! The authorizer on the sample authorizer event (`events/authorizer/request.json`),
//! parsed by `aws_lambda_events` as in Lambda, against the local stack's keys table.

use aloft_keys::authorizer::authorize;
use aloft_keys::domain::{ApiKey, NewKey};
use aloft_keys::store::KeyStore;
use aloft_shared::auth::{NewApiKey, Scopes};
use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;

async fn store() -> KeyStore {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run these tests with `make test`, which starts the local stack"
    );
    let sdk = aloft_shared::aws::sdk_config().await;
    KeyStore::new(aloft_shared::aws::dynamodb(&sdk), "ApiKeysTable".into())
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
        },
        "2026-11-25T00:00:00.000000Z".into(),
        "bootstrap".into(),
    );
    store.create(&key, &minted.token_hash).await.unwrap();

    let yes = authorize(&store, &event(&format!("Bearer {}", minted.token)))
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
        let no = serde_json::to_value(authorize(&store, &e).await.unwrap()).unwrap();
        assert_eq!(no, serde_json::json!({"isAuthorized": false}));
    }

    store
        .revoke(&minted.key_id, "2026-11-25T00:00:01.000000Z")
        .await
        .unwrap();
    let no = serde_json::to_value(
        authorize(&store, &event(&format!("Bearer {}", minted.token)))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(no["isAuthorized"], false, "revoked");
}
