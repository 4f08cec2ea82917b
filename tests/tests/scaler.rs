//! The scaler end to end: instances register and heartbeat their load (which reaches
//! moto's CloudWatch through the local stack's EMF forwarding), the tick is fired through
//! the local schedule route, decisions are read back over HTTP, `scaling.decided` arrives
//! through the notification pipeline, and moto's ECS service and Auto Scaling group
//! follow the decisions.
//!
//! Every wait polls with a deadline; windows are a few seconds long in these policies.

use std::time::{Duration, Instant};

use aloft_e2e::{Stack, problem_type, send, unique};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------- moto's ECS and ASG
// Spoken directly over HTTP (moto reads the service from the credential scope), so the
// test crate needs no SDK beyond what it has; the scaler itself uses the real SDKs.

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL: run under the local stack")
}

fn credential_scope(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    )
}

async fn ecs(stack: &Stack, action: &str, body: Value) -> Value {
    let resp = stack
        .http
        .post(endpoint())
        .header(
            "X-Amz-Target",
            format!("AmazonEC2ContainerServiceV20141113.{action}"),
        )
        .header("Content-Type", "application/x-amz-json-1.1")
        .header("Authorization", credential_scope("ecs"))
        .body(body.to_string())
        .send()
        .await
        .expect("moto answers");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert!(status.is_success(), "ECS {action}: {status} {text}");
    serde_json::from_str(&text).expect("ECS answers JSON")
}

async fn autoscaling(stack: &Stack, action: &str, params: &[(&str, &str)]) -> String {
    let mut form = vec![("Action", action), ("Version", "2011-01-01")];
    form.extend_from_slice(params);
    let resp = stack
        .http
        .post(endpoint())
        .header("Authorization", credential_scope("autoscaling"))
        .form(&form)
        .send()
        .await
        .expect("moto answers");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert!(
        status.is_success(),
        "Auto Scaling {action}: {status} {text}"
    );
    text
}

/// An ECS cluster and service in moto running `count` tasks; returns (cluster, service).
async fn ecs_service(stack: &Stack, count: u32) -> (String, String) {
    let cluster = unique("cl-");
    let service = unique("svc-");
    ecs(stack, "CreateCluster", json!({"clusterName": cluster})).await;
    ecs(
        stack,
        "RegisterTaskDefinition",
        json!({"family": service, "containerDefinitions": [{"name": "app", "image": "nginx", "memory": 128}]}),
    )
    .await;
    ecs(
        stack,
        "CreateService",
        json!({"cluster": cluster, "serviceName": service, "taskDefinition": service, "desiredCount": count}),
    )
    .await;
    (cluster, service)
}

async fn ecs_desired(stack: &Stack, cluster: &str, service: &str) -> u64 {
    let out = ecs(
        stack,
        "DescribeServices",
        json!({"cluster": cluster, "services": [service]}),
    )
    .await;
    out["services"][0]["desiredCount"]
        .as_u64()
        .expect("desiredCount")
}

// ---------------------------------------------------------------- aloft

async fn register(stack: &Stack, service: &str, id: &str, ttl: u32) {
    let (status, body) = send(
        stack
            .admin(Method::POST, &format!("/services/{service}/instances"))
            .json(&json!({"instance_id": id, "address": "10.0.0.1", "ttl_seconds": ttl})),
    )
    .await;
    assert!(status.is_success(), "{status} {body}");
}

async fn heartbeat(stack: &Stack, service: &str, id: &str, cpu: f64) {
    let (status, body) = send(
        stack
            .admin(
                Method::PUT,
                &format!("/services/{service}/instances/{id}/heartbeat"),
            )
            .json(&json!({"load": {"cpu_percent": cpu}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn put_policy(stack: &Stack, service: &str, policy: Value) -> (StatusCode, Value) {
    send(
        stack
            .admin(Method::PUT, &format!("/services/{service}/scaling-policy"))
            .json(&policy),
    )
    .await
}

async fn fire_tick(stack: &Stack) -> Value {
    let (status, body) = send(stack.anonymous(
        Method::POST,
        "/_local/schedules/ScalerTickFunction.EveryMinute/fire",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fired"][0]["status"], "succeeded", "{body}");
    body["fired"][0]["result"].clone()
}

async fn scaling(stack: &Stack, service: &str) -> Value {
    let (status, body) =
        send(stack.admin(Method::GET, &format!("/services/{service}/scaling"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn decisions(stack: &Stack, service: &str) -> Vec<Value> {
    let (status, body) = send(stack.admin(
        Method::GET,
        &format!("/services/{service}/scaling/decisions?limit=100"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

/// Fires the tick (and runs `between`) until `done` holds for the service's scaling, or
/// fails after [`DEADLINE`] showing the last answer.
async fn tick_until<F, Fut>(
    stack: &Stack,
    service: &str,
    mut between: F,
    done: impl Fn(&Value) -> bool,
) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    loop {
        between().await;
        fire_tick(stack).await;
        let now = scaling(stack, service).await;
        if done(&now) {
            return now;
        }
        assert!(start.elapsed() < DEADLINE, "gave up waiting; last: {now:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn decided_for(service: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| e["type"] == "scaling.decided" && e["data"]["service"] == service
}

#[tokio::test]
async fn high_cpu_scales_up_once_drives_ecs_and_scales_down_the_least_loaded_after_the_window() {
    let stack = Stack::connect().await;
    let service = unique("scale-");
    let (cluster, ecs_svc) = ecs_service(&stack, 4).await;
    let ids = ["a", "b", "c", "d"];
    for id in ids {
        register(&stack, &service, id, 120).await;
    }
    let (status, body) = put_policy(
        &stack,
        &service,
        json!({
            "min": 1, "max": 10,
            "metrics": [{"metric": "cpu_percent", "target": 50}],
            "scale_up": {"cooldown_seconds": 0},
            "scale_down": {"stabilization_seconds": 15, "cooldown_seconds": 0},
            "actuator": {"type": "ecs", "cluster": cluster, "service": ecs_svc},
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["policy"]["tolerance"], 0.1, "defaults filled in");

    // High cpu on all four: ceil(4 × 75 / 50) = 6. (Until the heartbeats' metrics reach
    // CloudWatch they are missing, which holds the count.)
    let up = tick_until(
        &stack,
        &service,
        || async {
            for id in ids {
                heartbeat(&stack, &service, id, 75.0).await;
            }
        },
        |s| s["desired"] == 6,
    )
    .await;
    // The decision that moved the count: other tests fire the tick too, so a later
    // no-change decision may already be the last one.
    let history = decisions(&stack, &service).await;
    let decision = history
        .iter()
        .find(|d| d["desired"] == 6 && d["previous"] != 6)
        .unwrap_or_else(|| panic!("no decision moved the count to 6: {history:#?}"));
    assert_eq!(up["current"], 4, "{up:#}");
    assert_eq!(decision["per_metric"][0]["metric"], "cpu_percent");
    assert_eq!(
        decision["per_metric"][0]["recommendation"], 6,
        "{decision:#}"
    );
    assert_eq!(decision["limited_by"], "none");
    assert_eq!(decision["actuation"]["status"], "succeeded", "{decision:#}");
    assert_eq!(ecs_desired(&stack, &cluster, &ecs_svc).await, 6);
    // Another tick at the same load changes nothing (the event is counted at the end).
    fire_tick(&stack).await;
    assert_eq!(scaling(&stack, &service).await["desired"], 6);

    // Load drops, `a` least loaded, then `c`, `d`, `b`. The average falls as the low
    // heartbeats outnumber the high ones in CloudWatch's latest minute.
    let loads = [("a", 2.0), ("b", 9.0), ("c", 4.0), ("d", 8.0)];
    let down = tick_until(
        &stack,
        &service,
        || async {
            for _ in 0..3 {
                for (id, cpu) in loads {
                    heartbeat(&stack, &service, id, cpu).await;
                }
            }
        },
        |s| s["desired"].as_u64().is_some_and(|d| d < 4),
    )
    .await;
    let desired = down["desired"].as_u64().unwrap() as usize;
    let moves = decisions(&stack, &service).await;
    let decision = moves
        .iter()
        .find(|d| d["desired"] == desired as u64 && d["previous"] != d["desired"])
        .unwrap_or_else(|| panic!("no decision moved the count to {desired}: {moves:#?}"));
    let remove: Vec<&str> = decision["remove"]
        .as_array()
        .unwrap_or_else(|| panic!("a scale-down names instances: {decision:#}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(remove.len(), 4 - desired, "{decision:#}");
    assert_eq!(
        remove,
        ["a", "c", "d", "b"][..remove.len()],
        "least loaded first"
    );
    // Not before the window passed: the history shows lower recommendations held at 6.
    let history = decisions(&stack, &service).await;
    let held = history
        .iter()
        .any(|d| d["limited_by"] == "stabilization" && d["desired"] == 6);
    assert!(held, "{history:#?}");
    assert_eq!(history[0]["desired"], desired as u64, "newest first");
    assert_eq!(
        ecs_desired(&stack, &cluster, &ecs_svc).await,
        desired as u64
    );

    // scaling.decided: the rise to 6 announced exactly once, each change once.
    let events = stack
        .collect_events(decided_for(&service), Duration::from_secs(3))
        .await;
    let rises: Vec<_> = events
        .iter()
        .filter(|e| e["data"]["decision"]["desired"] == 6)
        .collect();
    assert_eq!(rises.len(), 1, "{events:#?}");
    assert_eq!(rises[0]["data"]["decision"]["previous"], 4);
    let changes = history
        .iter()
        .filter(|d| d["desired"] != d["previous"])
        .count();
    assert_eq!(events.len(), changes, "{events:#?}");
}

#[tokio::test]
async fn stopped_heartbeats_stop_counting() {
    let stack = Stack::connect().await;
    let service = unique("dead-");
    // "keeps" heartbeats between ticks; its longer lease outlasts a tick that is slow
    // on a loaded machine, while the other two lapse after 5 s.
    register(&stack, &service, "keeps", 30).await;
    register(&stack, &service, "stops-1", 5).await;
    register(&stack, &service, "stops-2", 5).await;
    let (status, body) = put_policy(&stack, &service, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(scaling(&stack, &service).await["current"], 3);
    let after = tick_until(
        &stack,
        &service,
        || heartbeat(&stack, &service, "keeps", 50.0),
        |s| s["current"] == 1 && s["last_decision"]["current"] == 1,
    )
    .await;
    assert_eq!(after["last_decision"]["current"], 1, "{after:#}");
}

#[tokio::test]
async fn a_bad_policy_is_422_naming_every_field_and_nothing_is_written() {
    let stack = Stack::connect().await;
    let service = unique("bad-");
    let (status, body) = put_policy(
        &stack,
        &service,
        json!({
            "min": 0, "max": 2000,
            "metrics": [{"metric": "memory_percent", "target": 101}, {"metric": "qps", "target": 1}],
            "missing_metrics": "fallback",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(problem_type(&body), "validation");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "min",
            "max",
            "metrics[0].target",
            "metrics[1].metric",
            "fallback_instances"
        ]
    );
    let (status, body) =
        send(stack.admin(Method::GET, &format!("/services/{service}/scaling-policy"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(problem_type(&body), "scaling-policy-not-found");
    let items = stack
        .dynamodb
        .query()
        .table_name("ScalingTable")
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("SERVICE#{service}")),
        )
        .send()
        .await
        .expect("query scaling table");
    assert_eq!(items.count(), 0);
}

#[tokio::test]
async fn an_auto_scaling_group_follows_a_decision() {
    let stack = Stack::connect().await;
    let service = unique("asg-");
    let group = unique("grp-");
    let lc = unique("lc-");
    autoscaling(
        &stack,
        "CreateLaunchConfiguration",
        &[
            ("LaunchConfigurationName", &lc),
            ("ImageId", "ami-12c6146b"),
            ("InstanceType", "t2.micro"),
        ],
    )
    .await;
    autoscaling(
        &stack,
        "CreateAutoScalingGroup",
        &[
            ("AutoScalingGroupName", &group),
            ("LaunchConfigurationName", &lc),
            ("MinSize", "0"),
            ("MaxSize", "10"),
            ("DesiredCapacity", "1"),
            ("AvailabilityZones.member.1", "us-east-1a"),
        ],
    )
    .await;
    register(&stack, &service, "only", 120).await;
    let (status, body) = put_policy(
        &stack,
        &service,
        json!({
            "metrics": [{"metric": "cpu_percent", "target": 40}],
            "scale_up": {"cooldown_seconds": 0},
            "actuator": {"type": "autoscaling_group", "name": group},
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // ceil(1 × 100 / 40) = 3.
    let up = tick_until(
        &stack,
        &service,
        || heartbeat(&stack, &service, "only", 100.0),
        |s| s["desired"] == 3,
    )
    .await;
    let history = decisions(&stack, &service).await;
    let moved = history
        .iter()
        .find(|d| d["desired"] == 3 && d["previous"] != 3)
        .unwrap_or_else(|| panic!("no decision moved the count to 3: {up:#} {history:#?}"));
    assert_eq!(moved["actuation"]["status"], "succeeded", "{moved:#}");
    let described = autoscaling(
        &stack,
        "DescribeAutoScalingGroups",
        &[("AutoScalingGroupNames.member.1", &group)],
    )
    .await;
    assert!(
        described.contains("<DesiredCapacity>3</DesiredCapacity>"),
        "{described}"
    );
}

#[tokio::test]
async fn evaluate_is_a_dry_run() {
    let stack = Stack::connect().await;
    let service = unique("dry-");
    register(&stack, &service, "x", 120).await;
    heartbeat(&stack, &service, "x", 95.0).await;
    let (status, body) = put_policy(&stack, &service, json!({"predictive": "forecast_only"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let evaluate = || {
        send(stack.admin(
            Method::POST,
            &format!("/services/{service}/scaling/evaluate"),
        ))
    };
    let (status, decision) = evaluate().await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    assert_eq!(decision["current"], 1);
    assert_eq!(
        decision["per_metric"].as_array().unwrap().len(),
        4,
        "the seed's four metrics"
    );
    assert!(decision["forecast"].is_object(), "{decision:#}");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, again) = evaluate().await;
    assert_eq!(status, StatusCode::OK, "{again}");
    // Other tests in this binary fire the tick, which may decide for this service too,
    // and a tick deciding in the same millisecond as a dry run records the same `at` (it
    // happened once). A dry run that recorded would have recorded both of these; a tick
    // cannot match both. Without a recorded decision nothing is desired; the state is read
    // before the history, so a tick recording in between shows in the history.
    let now = scaling(&stack, &service).await;
    let history = decisions(&stack, &service).await;
    let recorded = |d: &Value| history.iter().any(|h| h["at"] == d["at"]);
    assert!(
        !(recorded(&decision) && recorded(&again)),
        "the dry runs were recorded: {history:#?}"
    );
    if history.is_empty() {
        assert_eq!(now["desired"], Value::Null, "nothing recorded: {now:#}");
    }
}
