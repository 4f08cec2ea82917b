//! Structured JSON logs and per-request telemetry.
//!
//! Every log line is one JSON object carrying the request id, function name and cold
//! start flag of the request it belongs to; every request emits EMF records with its
//! latency, status class and cold start, where the time went (inside DynamoDB, SQS,
//! other AWS calls, and the rest) and the process's peak memory. Request bodies are
//! never logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

use crate::aws::{AwsPart, CallTimes, measure_calls};
use crate::metrics::{MetricRecord, Unit, peak_rss_mib};

/// JSON logs to stdout (CloudWatch Logs), filtered by `RUST_LOG` (default `info`).
/// Call once at the top of `main`.
pub fn init() {
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false);
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    // A second init (tests) is harmless; ignore the error it returns.
    let _ = tracing_subscriber::registry()
        .with(json.with_filter(filter))
        .try_init();
}

/// `RUST_LOG` as levels by target (`info`, `warn,aloft_users=debug`): what template.yaml's
/// `LogLevel` sets. `Targets` rather than `EnvFilter`, whose span and field directives
/// nothing here uses and whose regex engine was 0.17 MiB of every binary (issue 13).
/// Unset, empty, unreadable or without a default level means `info` for everything not
/// named, so a typo never silences a function.
fn log_filter(rust_log: Option<&str>) -> Targets {
    let targets = rust_log
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| s.parse::<Targets>().ok())
        .unwrap_or_default();
    match targets.default_level() {
        Some(_) => targets,
        None => targets.with_default(LevelFilter::INFO),
    }
}

/// The process serves its first request cold. A process-wide flag is the fact itself,
/// not shared state: it flips once, on the first request this sandbox handles.
static COLD: AtomicBool = AtomicBool::new(true);

/// What the request telemetry middleware needs, built once per cold start.
#[derive(Debug, Clone)]
pub struct RequestTelemetry {
    function: Arc<str>,
    namespace: Arc<str>,
}

impl RequestTelemetry {
    /// Function name from `AWS_LAMBDA_FUNCTION_NAME` (set by Lambda and by `local/`),
    /// namespace from `METRICS_NAMESPACE` (default `aloft`).
    pub fn from_env() -> Self {
        let function =
            std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "unknown".into());
        let namespace = std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| "aloft".into());
        Self {
            function: function.into(),
            namespace: namespace.into(),
        }
    }
}

/// axum middleware: a span per request and one EMF record when it completes.
pub async fn observe(State(t): State<RequestTelemetry>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let cold_start = COLD.swap(false, Ordering::Relaxed);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let request_id = req
        .extensions()
        .get::<lambda_http::Context>()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let method = req.method().clone();
    let span = tracing::info_span!("request", function = %t.function, %request_id, cold_start, %method, %route);
    let (response, calls) = measure_calls(next.run(req).instrument(span.clone())).await;

    let status = response.status();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status = status.as_u16(), latency_ms, "request completed"));
    let record = MetricRecord::new(t.namespace.as_ref())
        .dimension("Function", t.function.as_ref())
        .dimension("StatusClass", format!("{}xx", status.as_u16() / 100))
        .dimension_set(&["Function"])
        .dimension_set(&["Function", "StatusClass"])
        .metric("Latency", latency_ms, Unit::Milliseconds)
        .metric("Requests", 1.0, Unit::Count)
        .metric("ColdStart", if cold_start { 1.0 } else { 0.0 }, Unit::Count);
    breakdown(record.group(), latency_ms, &calls).emit();
    response
}

/// Where a request's time went, by function only (a status class would multiply the
/// streams without saying more about where the time goes), with peak memory: a second
/// group of the request's record.
fn breakdown(record: MetricRecord, latency_ms: f64, calls: &CallTimes) -> MetricRecord {
    let ms = |part| calls.get(part).as_secs_f64() * 1000.0;
    let (db, messaging, other) = (
        ms(AwsPart::Database),
        ms(AwsPart::Messaging),
        ms(AwsPart::OtherAws),
    );
    let record = record
        .dimension_set(&["Function"])
        .metric("DatabaseLatency", db, Unit::Milliseconds)
        .metric("MessagingLatency", messaging, Unit::Milliseconds)
        .metric("OtherAwsLatency", other, Unit::Milliseconds)
        .metric(
            "ProcessingLatency",
            (latency_ms - db - messaging - other).max(0.0),
            Unit::Milliseconds,
        );
    match peak_rss_mib() {
        Some(mib) => record.metric("MemoryUsedMiB", mib, Unit::Megabytes),
        None => record,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_sets_levels_by_target_and_anything_unreadable_means_info() {
        let info = log_filter(None);
        assert!(info.would_enable("aloft_users", &Level::INFO));
        assert!(!info.would_enable("aloft_users", &Level::DEBUG));
        // "loud" reads as a target name; everything else keeps the default.
        for unreadable in ["", "  ", "loud", "aloft=noisy"] {
            let f = log_filter(Some(unreadable));
            assert!(f.would_enable("x", &Level::INFO), "{unreadable:?}");
            assert!(!f.would_enable("x", &Level::DEBUG), "{unreadable:?}");
        }
        let warn = log_filter(Some("warn"));
        assert!(!warn.would_enable("aloft_users", &Level::INFO));
        assert!(warn.would_enable("aloft_users", &Level::WARN));
        let mixed = log_filter(Some("warn,aloft_users=debug"));
        assert!(mixed.would_enable("aloft_users::store", &Level::DEBUG));
        assert!(!mixed.would_enable("hyper", &Level::INFO));
    }
}
