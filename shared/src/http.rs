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
