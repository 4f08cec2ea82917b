//! The quality monitor end to end: datapoints go into the stack's CloudWatch (moto, with
//! the launcher's percentile bridge), the tick is fired through aloft-local's schedule
//! route, and alert events arrive through the notification pipeline.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aloft_e2e::{Stack, problem_type, send, unique};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Puts `count` values of `value` ms into `service`'s `Latency` for each of the last
/// five complete minutes and the next two, so the evaluation range stays covered however
/// the minutes turn while the test runs. Through CloudWatch's query API directly, as an
/// EMF line would arrive (the test crate has no CloudWatch SDK).
async fn put_latency(stack: &Stack, service: &str, value: f64, count: u32) {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("the stack's endpoint");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let minute = now / 60 * 60;
    let mut form = vec![
        ("Action".to_owned(), "PutMetricData".to_owned()),
        ("Version".to_owned(), "2010-08-01".to_owned()),
        ("Namespace".to_owned(), "aloft".to_owned()),
    ];
    for (i, offset) in (-5..=2).enumerate() {
        let m = format!("MetricData.member.{}", i + 1);
        for (k, v) in [
            ("MetricName", "Latency".to_owned()),
            ("Unit", "Milliseconds".to_owned()),
            ("Dimensions.member.1.Name", "Function".to_owned()),
            ("Dimensions.member.1.Value", service.to_owned()),
            ("Timestamp", iso8601(minute + offset * 60 + 30)),
            ("Values.member.1", value.to_string()),
            ("Counts.member.1", count.to_string()),
        ] {
            form.push((format!("{m}.{k}"), v));
        }
    }
    let response = stack
        .http
        .post(endpoint)
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/monitoring/aws4_request, SignedHeaders=host, Signature=0",
        )
        .form(&form)
        .send()
        .await
        .expect("PutMetricData");
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap_or_default()
    );
}

/// `YYYY-MM-DDTHH:MM:SSZ` for epoch seconds (civil-from-days).
fn iso8601(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86400), t.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

async fn put_objective(
    stack: &Stack,
    service: &str,
    name: &str,
    body: &Value,
) -> (StatusCode, Value) {
    send(
        stack
            .admin(
                Method::PUT,
                &format!("/services/{service}/objectives/{name}"),
            )
            .json(body),
    )
    .await
}

async fn objective(stack: &Stack, service: &str, name: &str) -> Value {
    let (status, body) = send(stack.admin(
        Method::GET,
        &format!("/services/{service}/objectives/{name}"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Fires the tick, as EventBridge would every minute.
async fn tick(stack: &Stack) {
    let (status, body) = send(stack.admin(
        Method::POST,
        "/_local/schedules/QualityTickFunction.EveryMinute/fire",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Fires ticks until `name` has been evaluated since `after` (another test's tick may
/// have done it first) and returns it.
async fn evaluated_after(stack: &Stack, service: &str, name: &str, after: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        tick(stack).await;
        let o = objective(stack, service, name).await;
        if o["last_evaluated_at"].as_str().is_some_and(|t| t > after)
            || std::time::Instant::now() > deadline
        {
            return o;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Makes the objective due again (a PUT of its definition keeps its state) and waits for
/// its next evaluation.
async fn reevaluate(stack: &Stack, service: &str, name: &str, body: &Value) -> Value {
    let before = objective(stack, service, name).await;
    let after = before["last_evaluated_at"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let (status, put) = put_objective(stack, service, name, body).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    evaluated_after(stack, service, name, &after).await
}

fn alert_events<'a>(
    kind: &'a str,
    service: &'a str,
    name: &'a str,
) -> impl Fn(&Value) -> bool + 'a {
    move |e| e["type"] == kind && e["data"]["service"] == service && e["data"]["objective"] == name
}

const QUIET: Duration = Duration::from_secs(3);

/// aloft watches itself: the tick creates every HTTP function's default objectives
/// before it first evaluates, and a default deleted on purpose is not brought back.
#[tokio::test]
async fn every_http_function_gets_its_default_objectives_once() {
    let stack = Stack::connect().await;
    tick(&stack).await;
    for service in ["UsersFunction", "PaymentsFunction", "KeysFunction"] {
        for (name, metric) in [
            ("latency-p99", "latency_p99"),
            ("error-rate", "error_rate"),
            ("availability", "availability"),
        ] {
            let o = objective(&stack, service, name).await;
            assert_eq!(o["metric"], metric, "{service}/{name}: {o}");
        }
    }

    // Deleting a default is a decision the tick respects. (Another test's tick may be
    // running: any tick after the delete must leave it gone.)
    let path = "/services/RegistryFunction/objectives/error-rate";
    let (status, body) = send(stack.admin(Method::DELETE, path)).await;
    assert!(
        status == StatusCode::NO_CONTENT || status == StatusCode::NOT_FOUND,
        "{status} {body}"
    );
    tick(&stack).await;
    let (status, body) = send(stack.admin(Method::GET, path)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "brought back: {body}");
}

#[tokio::test]
async fn a_breach_fires_once_holds_within_the_margin_and_resolves_beyond_it() {
    let stack = Stack::connect().await;
    let service = unique("q-fire-");
    let body = json!({
        "metric": "latency_p95", "critical": 500, "resolve_margin": 100,
        "period_seconds": 60, "evaluation_periods": 2, "datapoints_to_alarm": 2
    });
    put_latency(&stack, &service, 900.0, 1).await;
    let (status, created) = put_objective(&stack, &service, "p95", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["state"], "insufficient_data");

    let o = evaluated_after(&stack, &service, "p95", "").await;
    assert_eq!(o["state"], "critical", "{o}");
    assert_eq!(o["value"], 900.0);
    let firing = stack
        .collect_events(alert_events("alert.firing", &service, "p95"), QUIET)
        .await;
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(firing[0]["data"]["severity"], "critical");
    assert_eq!(firing[0]["data"]["fingerprint"], o["fingerprint"]);

    let (status, alerts) = send(stack.admin(
        Method::GET,
        "/alerts?state=firing&severity=critical&limit=100",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{alerts}");
    assert!(
        alerts["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["fingerprint"] == o["fingerprint"] && a["state"] == "firing"),
        "{alerts}"
    );

    // The same state again: evaluated, never re-announced.
    let again = reevaluate(&stack, &service, "p95", &body).await;
    assert_eq!(again["state"], "critical");
    // Hovering inside the margin (p95 = 450 > 500 − 100) does not resolve.
    put_latency(&stack, &service, 450.0, 30).await;
    let hovering = reevaluate(&stack, &service, "p95", &body).await;
    assert_eq!(
        (hovering["state"].as_str(), hovering["value"].as_f64()),
        (Some("critical"), Some(450.0)),
        "{hovering}"
    );
    let firing = stack
        .collect_events(alert_events("alert.firing", &service, "p95"), QUIET)
        .await;
    assert_eq!(firing.len(), 1, "re-notified: {firing:?}");

    // Beyond the margin: resolved, once.
    put_latency(&stack, &service, 100.0, 600).await;
    let resolved = reevaluate(&stack, &service, "p95", &body).await;
    assert_eq!(
        (resolved["state"].as_str(), resolved["value"].as_f64()),
        (Some("ok"), Some(100.0)),
        "{resolved}"
    );
    let events = stack
        .collect_events(alert_events("alert.resolved", &service, "p95"), QUIET)
        .await;
    assert_eq!(events.len(), 1, "{events:?}");

    let (status, history) = send(stack.admin(
        Method::GET,
        &format!("/services/{service}/objectives/p95/history"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let moves: Vec<(&str, &str)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["from"].as_str().unwrap(), h["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        moves,
        [("critical", "ok"), ("insufficient_data", "critical")]
    );

    let (status, quality) =
        send(stack.admin(Method::GET, &format!("/services/{service}/quality"))).await;
    assert_eq!(status, StatusCode::OK, "{quality}");
    assert_eq!(quality["mttr"]["resolved_incidents"], 1, "{quality}");
    assert_eq!(
        quality["latency_breakdown"]["total"]["p95"], 100.0,
        "{quality}"
    );
}

#[tokio::test]
async fn missing_data_is_insufficient_data_and_an_info_event() {
    let stack = Stack::connect().await;
    let service = unique("q-nodata-");
    let latency = json!({"metric": "latency_p99", "critical": 500, "evaluation_periods": 1});
    put_latency(&stack, &service, 20.0, 1).await;
    let (status, _) = put_objective(&stack, &service, "watch", &latency).await;
    assert_eq!(status, StatusCode::CREATED);
    let ok = evaluated_after(&stack, &service, "watch", "").await;
    assert_eq!(ok["state"], "ok", "{ok}");

    // Now pointed at a metric nobody reports for this service: no data at all.
    let cpu = json!({"metric": "cpu_percent", "critical": 90, "evaluation_periods": 1});
    let missing = reevaluate(&stack, &service, "watch", &cpu).await;
    assert_eq!(missing["state"], "insufficient_data", "{missing}");
    let info = stack
        .collect_events(alert_events("alert.info", &service, "watch"), QUIET)
        .await;
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0]["data"]["severity"], "info");
    assert_eq!(info[0]["data"]["info"], "insufficient_data");

    let (status, alerts) =
        send(stack.admin(Method::GET, "/alerts?state=insufficient_data&limit=100")).await;
    assert_eq!(status, StatusCode::OK, "{alerts}");
    assert!(
        alerts["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["service"] == service.as_str()),
        "{alerts}"
    );
}

#[tokio::test]
async fn a_silenced_objective_changes_state_without_notifying() {
    let stack = Stack::connect().await;
    let service = unique("q-quiet-");
    let body = json!({"metric": "latency_max", "critical": 100, "evaluation_periods": 1});
    put_latency(&stack, &service, 300.0, 1).await;
    let until = iso8601(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 3600,
    );
    let (status, silence) = send(stack.admin(Method::POST, "/silences").json(&json!({
        "service": service, "objective": "muted", "until": until, "reason": "e2e: planned work"
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{silence}");
    for name in ["muted", "loud"] {
        let (status, _) = put_objective(&stack, &service, name, &body).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let muted = evaluated_after(&stack, &service, "muted", "").await;
    let loud = evaluated_after(&stack, &service, "loud", "").await;
    assert_eq!(
        (muted["state"].as_str(), loud["state"].as_str()),
        (Some("critical"), Some("critical"))
    );

    // The loud one's event proves the pipeline delivered; the muted one has none.
    let loud_events = stack
        .collect_events(alert_events("alert.firing", &service, "loud"), QUIET)
        .await;
    assert_eq!(loud_events.len(), 1);
    let all = stack
        .collect_events(|e| e["data"]["service"] == service.as_str(), QUIET)
        .await;
    assert!(
        all.iter().all(|e| e["data"]["objective"] != "muted"),
        "{all:?}"
    );
    let (_, history) = send(stack.admin(
        Method::GET,
        &format!("/services/{service}/objectives/muted/history"),
    ))
    .await;
    assert_eq!(history["items"][0]["to"], "critical", "{history}");
    assert_eq!(
        history["items"][0]["silenced_by"], silence["id"],
        "{history}"
    );
    assert_eq!(history["items"][0]["event"], Value::Null);

    let (status, listed) = send(stack.admin(Method::GET, "/silences")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == silence["id"])
    );
    let id = silence["id"].as_str().unwrap();
    let (status, _) = send(stack.admin(Method::DELETE, &format!("/silences/{id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = send(stack.admin(Method::DELETE, &format!("/silences/{id}"))).await;
    assert_eq!(
        (status, problem_type(&gone)),
        (StatusCode::NOT_FOUND, "silence-not-found")
    );
}

#[tokio::test]
async fn bad_objectives_name_every_field_and_write_nothing() {
    let stack = Stack::connect().await;
    let service = unique("q-bad-");
    let (status, body) = put_objective(
        &stack,
        &service,
        "Bad Name",
        &json!({
            "metric": "latency_p42", "comparison": "sideways", "period_seconds": 90,
            "evaluation_periods": 2, "datapoints_to_alarm": 3, "missing_data": "maybe",
        }),
    )
    .await;
    assert_eq!(
        (status, problem_type(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
        "{body}"
    );
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "name",
            "metric",
            "comparison",
            "missing_data",
            "period_seconds",
            "datapoints_to_alarm",
            "critical"
        ]
    );

    let (status, body) = put_objective(
        &stack,
        &service,
        "ok-name",
        &json!({"metric": "availability", "warning": 99.0, "critical": 99.9}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "warning");
    let (status, body) = send(stack.admin(
        Method::GET,
        &format!("/services/{service}/objectives/ok-name"),
    ))
    .await;
    assert_eq!(
        (status, problem_type(&body)),
        (StatusCode::NOT_FOUND, "objective-not-found")
    );
    let (status, body) =
        send(stack.admin(Method::GET, &format!("/services/{service}/objectives"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"], json!([]));

    let (status, body) = put_objective(
        &stack,
        &service,
        "typo",
        &json!({"metric": "latency_p99", "critcal": 5}),
    )
    .await;
    assert_eq!(
        (status, problem_type(&body)),
        (StatusCode::BAD_REQUEST, "unknown-field")
    );
}

#[tokio::test]
async fn quality_attributes_become_objectives_and_say_what_is_measured() {
    let stack = Stack::connect().await;
    let service = unique("q-attrs-");
    let (status, body) = send(stack.admin(Method::PUT, &format!("/services/{service}/quality-attributes")).json(&json!({
        "performance": {"response_time_ms": {"p99": 500}, "latency_breakdown_ms": {"database": 50}},
        "reliability": {"availability_percent": 99.9, "mttr_minutes": 30},
        "security": {"authentication": "api keys"}
    })))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["objectives"],
        json!(["attr-latency-p99", "attr-availability"])
    );
    assert_eq!(body["not_measured"], json!(["security"]));
    let availability = objective(&stack, &service, "attr-availability").await;
    assert_eq!(availability["slo"]["target"], 99.9);

    // A second PUT replaces the attr-* objectives.
    let (status, body) = send(
        stack
            .admin(
                Method::PUT,
                &format!("/services/{service}/quality-attributes"),
            )
            .json(&json!({
                "performance": {"response_time_ms": {"p95": 200}}
            })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) =
        send(stack.admin(Method::GET, &format!("/services/{service}/objectives"))).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["attr-latency-p95"]);
}

#[tokio::test]
async fn quality_routes_need_their_scopes() {
    let stack = Stack::connect().await;
    let (_, reader) = stack.key_with_scopes(&["quality:read"]).await;
    let (status, _) = send(stack.with_key(&reader, Method::GET, "/alerts")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(
        stack
            .with_key(&reader, Method::PUT, "/services/svc/objectives/x")
            .json(&json!({"metric": "latency_p99", "critical": 1})),
    )
    .await;
    assert_eq!(
        (status, problem_type(&body)),
        (StatusCode::FORBIDDEN, "insufficient-scope")
    );
}
