//! API Gateway (HTTP API), locally: route matching, the Lambda authorizer with its cache,
//! payload 2.0 events, and the gateway's own answers, status and body exactly as the
//! real one gives them:
//!
//! | situation                                   | status | body                               |
//! |---------------------------------------------|--------|------------------------------------|
//! | no route matches                            | 404    | `{"message":"Not Found"}`          |
//! | route needs auth, no `Authorization` header | 401    | `{"message":"Unauthorized"}`       |
//! | authorizer says `isAuthorized: false`       | 403    | `{"message":"Forbidden"}`          |
//! | the route's or stage's throttle is spent    | 429    | `{"message":"Too Many Requests"}`  |
//! | authorizer or function fails or crashes     | 500    | `{"message":"Internal Server Error"}` |
//! | no answer within the integration timeout    | 503    | `{"message":"Service Unavailable"}` |
//!
//! A function process that crashes mid-request is an invocation error to API Gateway
//! (HTTP APIs answer those with 500, not REST APIs' 502); the next request starts a fresh
//! process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::provision::ACCOUNT;

mod payload;
mod throttle;
use crate::runtime::{Function, Outcome};
use payload::{event_headers, http_response, query_parameters};
pub use throttle::{Throttles, TokenBucket};

/// HTTP API's payload limit.
const MAX_BODY: usize = 10 * 1024 * 1024;
/// HTTP API's integration timeout: past it the gateway answers 503 on its own.
const INTEGRATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

/// A route's method and path template, e.g. `GET /users/{id}`.
struct Pattern {
    method: String,
    segments: Vec<Segment>,
}

impl Pattern {
    fn parse(method: &str, path: &str) -> Self {
        let segments = path
            .trim_start_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(p) => match p.strip_suffix('+') {
                        Some(g) => Segment::Greedy(g.to_owned()),
                        None => Segment::Param(p.to_owned()),
                    },
                    None => Segment::Literal(s.to_owned()),
                },
            )
            .collect();
        Self {
            method: method.to_owned(),
            segments,
        }
    }

    /// The path parameters if `path` matches, with a rank: lower is more specific
    /// (literal segments beat parameters, which beat greedy ones; a method beats ANY).
    fn matches(&self, method: &str, path: &[&str]) -> Option<(Vec<u8>, HashMap<String, String>)> {
        let method_rank = if self.method == method {
            0
        } else if self.method == "ANY" {
            1
        } else {
            return None;
        };
        let mut rank = Vec::new();
        let mut params = HashMap::new();
        let mut i = 0;
        for seg in &self.segments {
            match seg {
                Segment::Literal(l) => {
                    if path.get(i) != Some(&l.as_str()) {
                        return None;
                    }
                    rank.push(0);
                }
                Segment::Param(p) => {
                    params.insert(p.clone(), (*path.get(i)?).to_owned());
                    rank.push(1);
                }
                Segment::Greedy(g) => {
                    if i >= path.len() {
                        return None;
                    }
                    params.insert(g.clone(), path[i..].join("/"));
                    rank.push(2);
                    i = path.len();
                    continue;
                }
            }
            i += 1;
        }
        if i != path.len() {
            return None;
        }
        rank.push(method_rank);
        Some((rank, params))
    }
}

fn path_segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

pub struct Route {
    pattern: Pattern,
    route_key: String,
    authorized: bool,
    function: Arc<Function>,
}

impl Route {
    pub fn new(method: &str, path: &str, authorized: bool, function: Arc<Function>) -> Self {
        Self {
            pattern: Pattern::parse(method, path),
            route_key: format!("{method} {path}"),
            authorized,
            function,
        }
    }
}

pub struct Authorizer {
    pub function: Arc<Function>,
    pub ttl: Duration,
}

enum Verdict {
    Allow(Value),
    Deny,
}

pub struct Gateway {
    pub routes: Vec<Route>,
    pub authorizer: Option<Authorizer>,
    pub region: String,
    throttles: Throttles,
    cache: Mutex<HashMap<String, (Instant, Arc<Verdict>)>>,
}

impl Gateway {
    pub fn new(
        routes: Vec<Route>,
        authorizer: Option<Authorizer>,
        throttles: Throttles,
        region: String,
    ) -> anyhow::Result<Arc<Self>> {
        for key in throttles.route_keys() {
            if !routes.iter().any(|r| r.route_key == key) {
                anyhow::bail!("RouteSettings names route `{key}`, which no function serves");
            }
        }
        Ok(Arc::new(Self {
            routes,
            authorizer,
            region,
            throttles,
            cache: Mutex::new(HashMap::new()),
        }))
    }

    /// Route keys (`GET /users/{id}`), for `/_local/ready`.
    pub fn route_keys(&self) -> Vec<String> {
        self.routes.iter().map(|r| r.route_key.clone()).collect()
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }

    fn route(&self, method: &str, path: &str) -> Option<(&Route, HashMap<String, String>)> {
        let segments = path_segments(path);
        self.routes
            .iter()
            .filter_map(|r| {
                r.pattern
                    .matches(method, &segments)
                    .map(|(rank, p)| (rank, r, p))
            })
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, r, p)| (r, p))
    }

    async fn authorize(&self, identity: &str, event: Value) -> Result<Arc<Verdict>, Response> {
        let Some(auth) = &self.authorizer else {
            return Ok(Arc::new(Verdict::Allow(Value::Object(Map::new()))));
        };
        if !auth.ttl.is_zero() {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, verdict)) = cache.get(identity) {
                if at.elapsed() < auth.ttl {
                    return Ok(Arc::clone(verdict));
                }
            }
        }
        let invocation = auth.function.invoke(Bytes::from(event.to_string()));
        let outcome = tokio::time::timeout(INTEGRATION_TIMEOUT, invocation)
            .await
            .unwrap_or_else(|_| {
                Outcome::Error(
                    json!({"errorType": "Timeout", "errorMessage": "authorizer did not answer"}),
                )
            });
        let Outcome::Response(body) = outcome else {
            log_failure(auth.function.name(), &outcome);
            return Err(message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            ));
        };
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let verdict = match answer.get("isAuthorized").and_then(Value::as_bool) {
            Some(true) => Verdict::Allow(answer.get("context").cloned().unwrap_or(json!({}))),
            Some(false) => Verdict::Deny,
            None => {
                eprintln!(
                    "[aloft-local] authorizer answered without a boolean isAuthorized: {}",
                    String::from_utf8_lossy(&body)
                );
                return Err(message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error",
                ));
            }
        };
        let verdict = Arc::new(verdict);
        if !auth.ttl.is_zero() {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.retain(|_, (at, _)| at.elapsed() < auth.ttl);
            cache.insert(identity.to_owned(), (Instant::now(), Arc::clone(&verdict)));
        }
        Ok(verdict)
    }
}

fn log_failure(function: &str, outcome: &Outcome) {
    if let Outcome::Error(e) = outcome {
        eprintln!("[{function}] [aloft-local] invocation failed: {e}");
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"message": text}).to_string(),
    )
        .into_response()
}

async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut response = serve(&gw, req, &request_id).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", v);
    }
    response
}

async fn serve(gw: &Gateway, req: Request, request_id: &str) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();
    let Some((route, params)) = gw.route(&method, &path) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    // Throttling comes first: a refused request costs no authorizer or function call.
    if !gw.throttles.admit(&route.route_key) {
        return message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    }
    let body = match axum::body::to_bytes(Body::new(body), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
    };
    let (headers, cookies) = event_headers(&parts.headers);
    let query = query_parameters(&raw_query);
    let now = time::OffsetDateTime::now_utc();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let mut context = json!({
        "accountId": ACCOUNT,
        "apiId": "local",
        "domainName": host,
        "domainPrefix": host.split('.').next().unwrap_or_default(),
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default(),
        },
        "requestId": request_id,
        "routeKey": route.route_key,
        "stage": "$default",
        "time": now.format(time::macros::format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000")).unwrap_or_default(),
        "timeEpoch": (now.unix_timestamp_nanos() / 1_000_000) as i64,
    });
    let mut common = Map::new();
    common.insert("version".into(), json!("2.0"));
    common.insert("routeKey".into(), json!(route.route_key));
    common.insert("rawPath".into(), json!(path));
    common.insert("rawQueryString".into(), json!(raw_query));
    if !cookies.is_empty() {
        common.insert("cookies".into(), json!(cookies));
    }
    common.insert("headers".into(), Value::Object(headers));
    if !query.is_empty() {
        common.insert("queryStringParameters".into(), Value::Object(query));
    }
    if !params.is_empty() {
        common.insert("pathParameters".into(), json!(params));
    }

    if route.authorized && gw.authorizer.is_some() {
        let identity = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .filter(|v| !v.trim().is_empty());
        let Some(identity) = identity else {
            return message(StatusCode::UNAUTHORIZED, "Unauthorized");
        };
        let mut event = common.clone();
        event.insert("type".into(), json!("REQUEST"));
        event.insert(
            "routeArn".into(),
            json!(format!(
                "arn:aws:execute-api:{}:{ACCOUNT}:local/$default/{method}{path}",
                gw.region
            )),
        );
        event.insert("identitySource".into(), json!([identity]));
        event.insert("requestContext".into(), context.clone());
        match gw.authorize(&identity, Value::Object(event)).await {
            Err(response) => return response,
            Ok(verdict) => match verdict.as_ref() {
                Verdict::Deny => return message(StatusCode::FORBIDDEN, "Forbidden"),
                Verdict::Allow(ctx) => {
                    context["authorizer"] = json!({ "lambda": ctx });
                }
            },
        }
    }

    let mut event = common;
    event.insert("requestContext".into(), context);
    if !body.is_empty() {
        match std::str::from_utf8(&body) {
            Ok(text) => {
                event.insert("body".into(), json!(text));
                event.insert("isBase64Encoded".into(), json!(false));
            }
            Err(_) => {
                event.insert("body".into(), json!(STANDARD.encode(&body)));
                event.insert("isBase64Encoded".into(), json!(true));
            }
        }
    } else {
        event.insert("isBase64Encoded".into(), json!(false));
    }
    let invocation = route
        .function
        .invoke(Bytes::from(Value::Object(event).to_string()));
    let Ok(outcome) = tokio::time::timeout(INTEGRATION_TIMEOUT, invocation).await else {
        eprintln!(
            "[{}] [aloft-local] no answer within the gateway's {INTEGRATION_TIMEOUT:?}",
            route.function.name()
        );
        return message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    };
    match outcome {
        Outcome::Response(body) => http_response(&body).unwrap_or_else(|| {
            eprintln!(
                "[{}] [aloft-local] malformed function response: {}",
                route.function.name(),
                String::from_utf8_lossy(&body)
            );
            message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }),
        failure => {
            log_failure(route.function.name(), &failure);
            message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(route: &str, method: &str, path: &str) -> Option<(Vec<u8>, HashMap<String, String>)> {
        let (m, p) = route.split_once(' ').unwrap();
        Pattern::parse(m, p).matches(method, &path_segments(path))
    }

    /// A function whose binary does not exist: invoking it fails (the gateway's 500).
    fn missing_function() -> Arc<Function> {
        let cloudwatch = aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::Config::builder()
                .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
                .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
                .http_client(aloft_shared::trust_roots::https_client())
                .build(),
        );
        let (logs, _) = crate::logs::LogSink::new(cloudwatch);
        Function::new(
            crate::runtime::FunctionConfig {
                name: "Missing".into(),
                binary: "/nonexistent/aloft-test-binary".into(),
                environment: Default::default(),
                timeout: Duration::from_secs(1),
                memory_mb: 128,
                max_instances: 1,
                arn: "arn:aws:lambda:us-east-1:123456789012:function:Missing".into(),
            },
            logs,
        )
    }

    #[tokio::test]
    async fn a_spent_throttle_answers_429_before_the_authorizer_or_function_runs() {
        let gw = Gateway::new(
            vec![
                Route::new("GET", "/health", false, missing_function()),
                Route::new("GET", "/users", true, missing_function()),
            ],
            Some(Authorizer {
                function: missing_function(),
                ttl: Duration::ZERO,
            }),
            Throttles::new(
                Some(TokenBucket::new(0, 0.0)),
                HashMap::from([("GET /health".to_owned(), TokenBucket::new(1, 0.0))]),
            ),
            "us-east-1".into(),
        )
        .unwrap();
        let get = |path: &str| {
            axum::http::Request::get(path)
                .header(header::AUTHORIZATION, "Bearer x")
                .body(Body::empty())
                .unwrap()
        };
        // Its own bucket has one token: the (missing) function is tried, hence 500.
        let r = serve(&gw, get("/health"), "r1").await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        for path in ["/health", "/users"] {
            let r = serve(&gw, get(path), "r2").await;
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
            let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
            assert_eq!(&body[..], br#"{"message":"Too Many Requests"}"#);
        }
    }

    #[test]
    fn route_settings_must_name_a_served_route() {
        let throttles = Throttles::new(
            None,
            HashMap::from([("GET /nope".to_owned(), TokenBucket::new(1, 1.0))]),
        );
        let e = Gateway::new(vec![], None, throttles, "us-east-1".into()).err();
        assert!(e.unwrap().to_string().contains("GET /nope"));
    }

    #[test]
    fn literal_segments_win_over_parameters_and_greedy_ones() {
        let lit = rank("GET /users/me", "GET", "/users/me").unwrap().0;
        let param = rank("GET /users/{id}", "GET", "/users/me").unwrap().0;
        let greedy = rank("GET /{proxy+}", "GET", "/users/me").unwrap().0;
        let any = rank("ANY /users/me", "GET", "/users/me").unwrap().0;
        assert!(lit < param && param < greedy);
        assert!(lit < any);
    }

    #[test]
    fn parameters_are_captured_and_lengths_must_agree() {
        let (_, p) = rank(
            "PUT /services/{service}/instances/{id}/heartbeat",
            "PUT",
            "/services/web/instances/i-1/heartbeat",
        )
        .unwrap();
        assert_eq!(p["service"], "web");
        assert_eq!(p["id"], "i-1");
        assert!(rank("GET /users/{id}", "GET", "/users/1/audit").is_none());
        assert!(rank("GET /users/{id}", "GET", "/users").is_none());
        assert!(rank("GET /users/{id}", "POST", "/users/1").is_none());
        let (_, p) = rank("GET /files/{path+}", "GET", "/files/a/b/c").unwrap();
        assert_eq!(p["path"], "a/b/c");
    }
}
