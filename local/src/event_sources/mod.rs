//! Lambda's event-source mappings, locally: every `DynamoDB` and `SQS` event in
//! template.yaml becomes a poller that reads its stream or queue and invokes the function
//! over the Runtime API with the event Lambda sends, handling the answer as Lambda does.
//! Each mapping can be disabled and enabled like `UpdateEventSourceMapping Enabled=…`:
//! polling stops, the stream or queue keeps the records, and enabling picks them up.

pub mod config;
mod response;
mod sqs;
mod sqs_event;
mod stream;
mod stream_event;
mod stream_plan;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{RwLock, RwLockReadGuard, watch};

use crate::provision::Resolver;
use crate::runtime::Function;
use crate::template::EventSourceDef;
use config::{QueueConfig, StreamConfig};

/// The AWS clients the pollers use.
#[derive(Clone)]
pub struct Clients {
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub sqs: aws_sdk_sqs::Client,
}

/// What a mapping has done so far, shown by `GET /_local/event-sources`.
#[derive(Debug, Default)]
struct Stats {
    invocations: u64,
    failed_invocations: u64,
    /// Stream records or queue messages the function finished with.
    processed: u64,
    /// Stream records given up on (sent to the `OnFailure` destination).
    discarded: u64,
    last_error: Option<String>,
    /// Stream mappings: each shard's checkpoint (the last sequence number done).
    checkpoints: BTreeMap<String, String>,
}

/// One event-source mapping and its switch.
pub struct Mapping {
    /// `<Function>.<Event>`, as in the template.
    pub name: String,
    pub function: String,
    kind: &'static str,
    source_arn: String,
    batch_size: usize,
    enabled: watch::Sender<bool>,
    /// Held shared by a poller while it works on a batch, so `disable` can wait until
    /// no invocation is in flight: after it answers, nothing new reaches the function.
    busy: RwLock<()>,
    stats: Mutex<Stats>,
}

impl Mapping {
    fn new(def: &EventSourceDef, kind: &'static str, arn: &str, batch: usize, on: bool) -> Self {
        Self {
            name: def.name.clone(),
            function: def.function.clone(),
            kind,
            source_arn: arn.to_owned(),
            batch_size: batch,
            enabled: watch::Sender::new(on),
            busy: RwLock::new(()),
            stats: Mutex::new(Stats::default()),
        }
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_enabled(&self) -> bool {
        *self.enabled.borrow()
    }

    /// Waits until the mapping is enabled and returns the guard a poller holds while it
    /// works on one batch.
    async fn batch_guard(&self) -> RwLockReadGuard<'_, ()> {
        loop {
            let mut on = self.enabled.subscribe();
            let _ = on.wait_for(|e| *e).await;
            let guard = self.busy.read().await;
            if self.is_enabled() {
                return guard;
            }
        }
    }

    /// Resolves when the mapping is disabled (for cutting a retry's back-off short).
    async fn disabled(&self) {
        let mut on = self.enabled.subscribe();
        let _ = on.wait_for(|e| !*e).await;
    }

    /// Enables or disables polling; disabling answers once no batch is in flight.
    async fn set_enabled(&self, on: bool) {
        self.enabled.send_replace(on);
        if !on {
            drop(self.busy.write().await);
        }
    }

    /// Counts an invocation with `batch` (described for the log) and logs it in the
    /// function's log, as Lambda's REPORT line would.
    fn note_invocation(&self, function: &Function, batch: &str, failed: Option<String>) {
        let outcome = match &failed {
            None => "succeeded".to_owned(),
            Some(e) => format!("failed: {e}"),
        };
        function.log(&format!("event source {}: {batch}: {outcome}", self.name));
        let mut s = self.stats();
        s.invocations += 1;
        if let Some(error) = failed {
            s.failed_invocations += 1;
            s.last_error = Some(error);
        }
    }

    fn note_processed(&self, n: usize) {
        self.stats().processed += n as u64;
    }

    fn note_discarded(&self, n: usize) {
        self.stats().discarded += n as u64;
    }

    fn note_checkpoint(&self, shard: &str, sequence: &str) {
        self.stats()
            .checkpoints
            .insert(shard.to_owned(), sequence.to_owned());
    }

    fn json(&self) -> Value {
        let s = self.stats();
        let mut v = json!({
            "name": self.name,
            "function": self.function,
            "type": self.kind,
            "source": self.source_arn,
            "batch_size": self.batch_size,
            "state": if self.is_enabled() { "Enabled" } else { "Disabled" },
            "invocations": s.invocations,
            "failed_invocations": s.failed_invocations,
            "processed": s.processed,
            "last_error": s.last_error,
        });
        if self.kind == "DynamoDB" {
            v["discarded"] = json!(s.discarded);
            v["checkpoints"] = json!(s.checkpoints);
        }
        v
    }
}

/// Every mapping of the template.
pub struct EventSources {
    mappings: Vec<Arc<Mapping>>,
}

/// Lambda's SQS pollers per queue when `ScalingConfig` does not say.
const DEFAULT_QUEUE_POLLERS: usize = 5;

/// The queue URL for a queue ARN (`arn:aws:sqs:<region>:<account>:<name>`).
async fn queue_url(sqs: &aws_sdk_sqs::Client, arn: &str) -> Result<String> {
    let name = arn
        .rsplit(':')
        .next()
        .filter(|_| arn.starts_with("arn:aws:sqs:"))
        .with_context(|| format!("{arn} is not an SQS queue ARN"))?;
    sqs.get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))?
        .queue_url
        .with_context(|| format!("no URL for queue {name}"))
}

impl EventSources {
    /// Reads every mapping from the template and starts its pollers.
    pub async fn start(
        defs: &[EventSourceDef],
        resolver: &Resolver,
        functions: &HashMap<String, Arc<Function>>,
        clients: &Clients,
    ) -> Result<Arc<Self>> {
        let resolve = |v: &serde_norway::Value| resolver.string(v);
        let mut mappings = Vec::new();
        for def in defs {
            let function = functions
                .get(&def.function)
                .cloned()
                .with_context(|| format!("{}: no function {}", def.name, def.function))?;
            let mapping = match def.kind.as_str() {
                "DynamoDB" => {
                    let c = StreamConfig::parse(&def.properties, &resolve)
                        .with_context(|| format!("{}: DynamoDB event", def.name))?;
                    let on_failure = match &c.on_failure {
                        Some(arn) => Some(queue_url(&clients.sqs, arn).await?),
                        None => None,
                    };
                    let m = Arc::new(Mapping::new(
                        def,
                        "DynamoDB",
                        &c.stream_arn,
                        c.batch_size,
                        c.enabled,
                    ));
                    stream::StreamPoller::new(
                        Arc::clone(&m),
                        c,
                        function,
                        clients.clone(),
                        on_failure,
                        resolver.region.clone(),
                    )
                    .spawn();
                    m
                }
                "SQS" => {
                    let c = QueueConfig::parse(&def.properties, &resolve)
                        .with_context(|| format!("{}: SQS event", def.name))?;
                    let url = queue_url(&clients.sqs, &c.queue_arn)
                        .await
                        .with_context(|| format!("{}: its queue", def.name))?;
                    let pollers = c
                        .max_concurrency
                        .unwrap_or(DEFAULT_QUEUE_POLLERS)
                        .min(function.max_instances())
                        .max(1);
                    let m = Arc::new(Mapping::new(
                        def,
                        "SQS",
                        &c.queue_arn,
                        c.batch_size,
                        c.enabled,
                    ));
                    sqs::QueuePoller::new(
                        Arc::clone(&m),
                        c,
                        function,
                        clients.sqs.clone(),
                        url,
                        resolver.region.clone(),
                    )
                    .spawn(pollers);
                    m
                }
                other => bail!("{}: unknown event-source type {other}", def.name),
            };
            mappings.push(mapping);
        }
        Ok(Arc::new(Self { mappings }))
    }

    pub fn names(&self) -> Vec<String> {
        self.mappings.iter().map(|m| m.name.clone()).collect()
    }

    /// `GET /_local/event-sources` and `POST /_local/event-sources/{name}/{enable,disable}`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/_local/event-sources", get(list))
            .route("/_local/event-sources/{name}/enable", post(enable))
            .route("/_local/event-sources/{name}/disable", post(disable))
            .with_state(self)
    }

    /// The mapping named `<Function>.<Event>`, or by event name alone when unique.
    fn find(&self, name: &str) -> Result<&Arc<Mapping>, Box<Response>> {
        let matching: Vec<_> = self
            .mappings
            .iter()
            .filter(|m| m.name == name || m.name.split_once('.').is_some_and(|(_, e)| e == name))
            .collect();
        match matching.as_slice() {
            [one] => Ok(one),
            [] => Err(Box::new(
                (
                StatusCode::NOT_FOUND,
                axum::Json(json!({
                    "message": format!("no event source named {name}"),
                    "event_sources": self.names(),
                })),
            )
                .into_response(),
            )),
            _ => Err(Box::new(
                (
                StatusCode::CONFLICT,
                axum::Json(json!({"message": format!("{name} names several event sources; use <Function>.<Event>")})),
            )
                .into_response(),
            )),
        }
    }
}

async fn list(State(sources): State<Arc<EventSources>>) -> Response {
    let all: Vec<_> = sources.mappings.iter().map(|m| m.json()).collect();
    axum::Json(json!({ "event_sources": all })).into_response()
}

async fn switch(sources: &EventSources, name: &str, on: bool) -> Response {
    match sources.find(name) {
        Ok(m) => {
            m.set_enabled(on).await;
            println!(
                "[{}] [aloft-local] event source {} {}",
                m.function,
                m.name,
                if on { "enabled" } else { "disabled" }
            );
            axum::Json(m.json()).into_response()
        }
        Err(response) => *response,
    }
}

async fn enable(State(sources): State<Arc<EventSources>>, Path(name): Path<String>) -> Response {
    switch(&sources, &name, true).await
}

async fn disable(State(sources): State<Arc<EventSources>>, Path(name): Path<String>) -> Response {
    switch(&sources, &name, false).await
}
