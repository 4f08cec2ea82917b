//! Serving an axum `Router` as an API Gateway HTTP API function.

use axum::Router;
use axum::response::IntoResponse;

use crate::problem::Problem;
use crate::telemetry::{self, RequestTelemetry};

/// Wraps `router` in what every aloft HTTP function shares (problem+json for unknown
/// routes and methods, request telemetry) and serves it on the Lambda runtime.
pub async fn serve(router: Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(with_platform_layers(router)).await
}

/// The router as `serve` runs it; exposed so tests can drive it without Lambda.
pub fn with_platform_layers(router: Router) -> Router {
    router
        .fallback(|| async { Problem::not_found("no such route").into_response() })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                http::StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            )
            .into_response()
        })
        .layer(axum::middleware::from_fn_with_state(
            RequestTelemetry::from_env(),
            telemetry::observe,
        ))
}

/// What [`handle_event`] got back.
#[derive(Debug)]
pub struct EventResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: serde_json::Value,
}

/// Feeds an API Gateway payload-2.0 `event` through `lambda_http`'s own parsing into
/// `router` (with the platform layers), as the Lambda runtime would: for tests and
/// benchmarks that drive a function from `events/` without a network.
pub async fn handle_event(router: Router, event: &serde_json::Value) -> EventResponse {
    use tower::ServiceExt;
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(r) => r,
        Err(e) => panic!("lambda_http cannot parse the event: {e}"),
    };
    let (parts, body) = request.into_parts();
    let request = http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
    let response = match with_platform_layers(router).oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    EventResponse {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    }
}

/// The sample event `events/http/<file>` of this repository, edited by `edit`.
pub fn sample_event(file: &str, edit: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let path = format!("{}/../events/http/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut event: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    edit(&mut event);
    event
}
