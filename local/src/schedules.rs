//! EventBridge schedules, locally: each `Schedule` event of the template invokes its
//! function with a "Scheduled Event" at its `rate(…)`, or on demand through
//! `POST /_local/schedules/fire` and `POST /_local/schedules/{name}/fire`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::provision::ACCOUNT;
use crate::runtime::{Function, Outcome};

pub struct ScheduleTarget {
    pub name: String,
    pub event: String,
    pub expression: String,
    pub function: Arc<Function>,
}

pub struct Schedules {
    targets: Vec<ScheduleTarget>,
    region: String,
}

impl Schedules {
    pub fn new(targets: Vec<ScheduleTarget>, region: String) -> Arc<Self> {
        Arc::new(Self { targets, region })
    }

    pub fn names(&self) -> Vec<String> {
        self.targets.iter().map(|s| s.name.clone()).collect()
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/_local/schedules/fire", post(fire_all))
            .route("/_local/schedules/{name}/fire", post(fire_one))
            .with_state(self)
    }

    async fn fire(&self, schedule: &ScheduleTarget) -> Value {
        let now = time::OffsetDateTime::now_utc();
        let event = json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "time": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "region": self.region,
            "resources": [format!("arn:aws:events:{}:{ACCOUNT}:rule/{}", self.region, schedule.name)],
            "detail": {}
        });
        let started = Instant::now();
        let outcome = schedule
            .function
            .invoke(Bytes::from(event.to_string()))
            .await;
        let elapsed = started.elapsed().as_millis() as u64;
        match outcome {
            Outcome::Response(body) => json!({
                "schedule": schedule.name,
                "function": schedule.function.name(),
                "status": "succeeded",
                "duration_ms": elapsed,
                "result": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
            }),
            Outcome::Error(error) => json!({
                "schedule": schedule.name,
                "function": schedule.function.name(),
                "status": "failed",
                "duration_ms": elapsed,
                "error": error,
            }),
        }
    }

    /// Fires `schedule` every `every` until the process ends (first firing after one
    /// period, as EventBridge does for a new rule).
    pub fn run(self: &Arc<Self>, index: usize, every: Duration) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                ticks.tick().await;
                let schedule = &this.targets[index];
                let result = this.fire(schedule).await;
                if result["status"] != "succeeded" {
                    eprintln!(
                        "[aloft-local] schedule {} failed: {}",
                        schedule.name, result["error"]
                    );
                }
            }
        });
    }
}

async fn fire_all(State(s): State<Arc<Schedules>>) -> Response {
    let results = futures::future::join_all(s.targets.iter().map(|t| s.fire(t))).await;
    axum::Json(json!({ "fired": results })).into_response()
}

async fn fire_one(State(s): State<Arc<Schedules>>, Path(name): Path<String>) -> Response {
    // The full `<Function>.<Event>` name, or just the event's name when that is unique.
    let matching: Vec<_> = s
        .targets
        .iter()
        .filter(|s| s.name == name || s.event == name)
        .collect();
    match matching.as_slice() {
        [one] => axum::Json(json!({ "fired": [s.fire(one).await] })).into_response(),
        [] => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({
                "message": format!("no schedule named {name}"),
                "schedules": s.targets.iter().map(|s| format!("{} ({})", s.name, s.expression)).collect::<Vec<_>>(),
            })),
        )
            .into_response(),
        _ => (
            StatusCode::CONFLICT,
            axum::Json(json!({"message": format!("{name} names several schedules; use <Function>.<Event>")})),
        )
            .into_response(),
    }
}
