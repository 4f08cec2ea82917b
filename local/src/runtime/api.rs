//! The Lambda Runtime API one function process talks to: `next` hands it an invocation,
//! `response` and `error` complete it, `init/error` reports a failed start.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::oneshot;

use super::{Function, MAX_RESPONSE, Outcome};

type InstanceRef = (Arc<Function>, u64);

/// The Runtime API one process talks to.
pub(super) fn instance_api(function: Arc<Function>, instance: u64) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(report_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_RESPONSE))
        // Any local web page could reach this port; only the function process may.
        .layer(axum::middleware::from_fn(crate::control::loopback_only))
        .with_state((function, instance))
}

fn unknown(what: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({"errorType": "InvalidRequestID", "errorMessage": what})),
    )
        .into_response()
}

async fn next(State((f, instance)): State<InstanceRef>) -> Response {
    let waiting = {
        let mut pool = f.pool();
        match pool.instances.get_mut(&instance) {
            Some(i) => i.initialised = true,
            None => return unknown("unknown process"),
        }
        match pool.queue.pop_front() {
            Some(inv) => {
                f.assign(&mut pool, &inv.request_id.clone(), instance);
                Ok(inv)
            }
            None => {
                let (tx, rx) = oneshot::channel();
                pool.idle.push_back((instance, tx));
                Err(rx)
            }
        }
    };
    let inv = match waiting {
        Ok(inv) => inv,
        Err(rx) => match rx.await {
            Ok(inv) => inv,
            Err(_) => return StatusCode::GONE.into_response(),
        },
    };
    (StatusCode::OK, f.headers(&inv.request_id), inv.payload).into_response()
}

fn complete(f: &Function, id: &str, outcome: Outcome) -> Response {
    match f.pool().inflight.remove(id) {
        Some(inflight) => {
            let _ = inflight.reply.send(outcome);
            (
                StatusCode::ACCEPTED,
                axum::Json(serde_json::json!({"status": "OK"})),
            )
                .into_response()
        }
        None => unknown("no such invocation in flight (it may have timed out)"),
    }
}

async fn respond(
    State((f, _)): State<InstanceRef>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    complete(&f, &id, Outcome::Response(body))
}

async fn report_error(
    State((f, _)): State<InstanceRef>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let error = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::json!({"errorType": "Unknown", "errorMessage": String::from_utf8_lossy(&body)}));
    complete(&f, &id, Outcome::Error(error))
}

async fn init_error(State((f, instance)): State<InstanceRef>, body: Bytes) -> Response {
    f.logs.system(
        &f.config.name,
        &format!(
            "process {instance} failed to initialise: {}",
            String::from_utf8_lossy(&body)
        ),
    );
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"status": "OK"})),
    )
        .into_response()
}
