//! What guards aloft-local's own endpoints, and the fault-injection route.
//!
//! The Runtime API ports and the `/_local/*` routes answer only requests whose `Host`
//! names loopback (`127.0.0.1`, `localhost` or `[::1]`, with or without a port). A web
//! page can make a browser send requests to a name it controls that it then re-points
//! at 127.0.0.1 (DNS rebinding); those requests carry the page's host name, so they are
//! refused with 403 and cannot fire schedules, kill functions or answer invocations.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use crate::runtime::Function;

/// Whether a `Host` header value names the loopback interface.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]` or `[::1]:port`
        Some(rest) => match rest.split_once(']') {
            Some((ip, port)) if port.is_empty() || valid_port(port.strip_prefix(':')) => ip,
            _ => return false,
        },
        None => match host.split_once(':') {
            Some((name, port)) if valid_port(Some(port)) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name == "127.0.0.1" || name == "::1" || name.eq_ignore_ascii_case("localhost")
}

fn valid_port(port: Option<&str>) -> bool {
    port.is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Middleware: 403 unless the request's `Host` is loopback.
pub async fn loopback_only(req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    match host {
        Some(h) if is_loopback_host(h) => next.run(req).await,
        _ => (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"message": "aloft-local answers loopback host names only"}).to_string(),
        )
            .into_response(),
    }
}

type Functions = Arc<HashMap<String, Arc<Function>>>;

/// `POST /_local/functions/{name}/kill`: kills every process of the function that is
/// running an invocation, as a crash would (tests use it to crash a request midway).
pub fn functions_router(functions: Functions) -> Router {
    Router::new()
        .route("/_local/functions/{name}/kill", post(kill))
        .with_state(functions)
}

async fn kill(State(functions): State<Functions>, Path(name): Path<String>) -> Response {
    match functions.get(&name) {
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": format!("no function {name}")})),
        )
            .into_response(),
        Some(f) => axum::Json(json!({"killed": f.kill_busy()})).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_pass() {
        for ok in [
            "127.0.0.1",
            "127.0.0.1:3000",
            "localhost",
            "LOCALHOST:8080",
            "[::1]",
            "[::1]:3000",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:3000",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "127.0.0.2",
            "0.0.0.0:3000",
            "127.0.0.1:",
            "127.0.0.1:abc",
            "127.0.0.1:3000:1",
            "[::1]x",
            "[::2]:3000",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn other_hosts_get_403() {
        use tower::ServiceExt;
        let app = Router::new()
            .route("/_local/ready", axum::routing::get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(loopback_only));
        let call = |host: &'static str| {
            let app = app.clone();
            async move {
                let req = axum::http::Request::get("/_local/ready")
                    .header(header::HOST, host)
                    .body(axum::body::Body::empty())
                    .unwrap();
                app.oneshot(req).await.unwrap().status()
            }
        };
        assert_eq!(call("127.0.0.1:3000").await, StatusCode::OK);
        assert_eq!(call("rebound.example:3000").await, StatusCode::FORBIDDEN);
    }
}
