//! The sample events in `events/http/scaler-*.json`, fed through `lambda_http`'s own
//! parsing into the scaler's router: every route matches and checks its scope, and a bad
//! policy is refused before anything is read or written. No AWS endpoint is reachable
//! here (the clients point at a closed port), so anything these tests see was decided
//! before the first AWS call.

use aloft_scaler::actuator::Actuators;
use aloft_scaler::api::{self, Api};
use aloft_scaler::metrics::MetricsReader;
use aloft_scaler::registry::RegistryReader;
use aloft_scaler::store::ScalingStore;
use aloft_scaler::tick::Evaluator;
use aloft_shared::cursor::CursorCodec;
use aloft_shared::http::{handle_event, sample_event};
use aloft_shared::master_key::MasterKey;
use aloft_shared::outbox::Outbox;
use http::StatusCode;

const ROUTES: &[(&str, &str)] = &[
    ("scaler-put-policy.json", "scaler:write"),
    ("scaler-get-policy.json", "scaler:read"),
    ("scaler-delete-policy.json", "scaler:write"),
    ("scaler-scaling.json", "scaler:read"),
    ("scaler-decisions.json", "scaler:read"),
    ("scaler-evaluate.json", "scaler:read"),
];

async fn unreachable_api() -> axum::Router {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aloft_shared::trust_roots::https_client())
        .endpoint_url("http://127.0.0.1:9")
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let evaluator = Evaluator {
        store: ScalingStore::new(
            ddb.clone(),
            "ScalingTable".into(),
            Outbox::new(ddb.clone(), "OutboxTable".into()),
        ),
        registry: RegistryReader::new(ddb, "RegistryTable".into()),
        metrics: MetricsReader::new(aws_sdk_cloudwatch::Client::new(&sdk), "aloft".into()),
        actuators: Actuators::from_env(&sdk),
    };
    api::router(Api {
        evaluator,
        cursors: CursorCodec::new(&MasterKey::from_bytes(
            b"sample-events-test-master-key-32b!".to_vec(),
        )),
    })
}

fn with_scopes(scopes: &str) -> impl FnOnce(&mut serde_json::Value) + '_ {
    move |e| e["requestContext"]["authorizer"]["lambda"]["scopes"] = scopes.into()
}

#[tokio::test]
async fn every_route_needs_its_scope() {
    let router = unreachable_api().await;
    for (file, scope) in ROUTES {
        let r = handle_event(
            router.clone(),
            &sample_event(file, with_scopes("registry:read registry:write")),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{file}: {}", r.body);
        assert_eq!(
            r.body["type"], "urn:aloft:problem:insufficient-scope",
            "{file}"
        );
        assert!(
            r.body["detail"].as_str().unwrap().contains(scope),
            "{file}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn a_bad_policy_is_refused_naming_every_field_before_any_write() {
    let router = unreachable_api().await;
    let r = handle_event(
        router,
        &sample_event("scaler-put-policy.json", |e| {
            let path = "/services/Not_A_Label/scaling-policy";
            e["rawPath"] = path.into();
            e["requestContext"]["http"]["path"] = path.into();
            e["pathParameters"]["service"] = "Not_A_Label".into();
            e["body"] = serde_json::json!({
                "min": 5, "max": 2,
                "metrics": [{"metric": "cpu_percent", "target": 150}],
                "tolerance": 1.5,
                "actuator": {"type": "ecs", "cluster": "prod"}
            })
            .to_string()
            .into();
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "service",
            "max",
            "metrics[0].target",
            "tolerance",
            "actuator.service"
        ]
    );
}

#[tokio::test]
async fn unknown_policy_fields_are_refused() {
    let router = unreachable_api().await;
    let r = handle_event(
        router,
        &sample_event("scaler-put-policy.json", |e| {
            e["body"] = r#"{"min": 1, "cooldown": 60}"#.into();
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["type"], "urn:aloft:problem:unknown-field");
}
