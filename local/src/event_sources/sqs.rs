//! The SQS poller: several pollers per queue long-poll it, each invoking the function
//! with its own batch, so one slow invocation never holds back other messages. After an
//! invocation the messages the function finished with are deleted; the rest reappear
//! after the queue's visibility timeout, and its redrive policy (SQS's job, honoured by
//! moto on receive) moves them to the dead-letter queue after `maxReceiveCount`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use axum::body::Bytes;

use super::Mapping;
use super::config::QueueConfig;
use super::response::{Verdict, failure, judge};
use super::sqs_event::{event, to_delete};
use crate::runtime::{Function, Outcome};

/// One long poll's wait. Short, so that disabling a mapping takes effect quickly; moto
/// answers as soon as a message is visible, so it adds no latency.
const LONG_POLL_SECONDS: i32 = 1;
/// SQS returns at most ten messages per receive.
const MAX_RECEIVE: usize = 10;

pub struct QueuePoller {
    mapping: Arc<Mapping>,
    config: QueueConfig,
    function: Arc<Function>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    region: String,
}

impl QueuePoller {
    pub fn new(
        mapping: Arc<Mapping>,
        config: QueueConfig,
        function: Arc<Function>,
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
        region: String,
    ) -> Self {
        Self {
            mapping,
            config,
            function,
            sqs,
            queue_url,
            region,
        }
    }

    pub fn spawn(self, pollers: usize) {
        let this = Arc::new(self);
        for _ in 0..pollers {
            tokio::spawn(Arc::clone(&this).run());
        }
    }

    fn log(&self, message: &str) {
        self.function
            .log(&format!("event source {}: {message}", self.mapping.name));
    }

    async fn run(self: Arc<Self>) {
        loop {
            let guard = self.mapping.batch_guard().await;
            let messages = match self.receive().await {
                Ok(m) => m,
                Err(e) => {
                    self.log(&format!("ReceiveMessage failed: {e}"));
                    drop(guard);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if !messages.is_empty() {
                self.deliver(&messages).await;
            }
            drop(guard);
        }
    }

    /// A batch: one long poll, then (with a batching window) more receives until the
    /// batch is full or the window closes.
    async fn receive(&self) -> Result<Vec<Message>, String> {
        let mut batch: Vec<Message> = Vec::new();
        let window_ends = Instant::now() + self.config.batching_window;
        loop {
            let want = (self.config.batch_size - batch.len()).min(MAX_RECEIVE);
            let wait = if batch.is_empty() {
                LONG_POLL_SECONDS
            } else {
                let left = window_ends.saturating_duration_since(Instant::now());
                left.as_secs().min(LONG_POLL_SECONDS as u64) as i32
            };
            if wait == 0 && !batch.is_empty() {
                // Under a second of window left: short receives, not a busy loop.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(want as i32)
                .wait_time_seconds(wait)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
            batch.extend(out.messages.unwrap_or_default());
            let window_open = Instant::now() < window_ends;
            if batch.is_empty() || batch.len() >= self.config.batch_size || !window_open {
                return Ok(batch);
            }
        }
    }

    async fn deliver(&self, messages: &[Message]) {
        let payload = event(messages, &self.config.queue_arn, &self.region);
        let outcome = self.function.invoke(Bytes::from(payload.to_string())).await;
        let ids: Vec<&str> = messages
            .iter()
            .map(|m| m.message_id().unwrap_or_default())
            .collect();
        let verdict = match &outcome {
            Outcome::Response(body) => judge(Some(body), self.config.report_item_failures, &ids),
            Outcome::Error(_) => Verdict::BatchFailed,
        };
        let error = match &outcome {
            Outcome::Error(e) => Some(e),
            Outcome::Response(_) => None,
        };
        let batch = format!("{} message(s)", messages.len());
        self.mapping
            .note_invocation(&self.function, &batch, failure(error, &verdict));
        let done = to_delete(&ids, &verdict);
        self.mapping.note_processed(done.len());
        for chunk in done.chunks(MAX_RECEIVE) {
            let entries: Vec<_> = chunk
                .iter()
                .filter_map(|&i| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(messages[i].receipt_handle().unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            let deleted = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match deleted {
                Ok(out) if out.failed().is_empty() => {}
                Ok(out) => self.log(&format!("could not delete {:?}", out.failed())),
                Err(e) => self.log(&format!(
                    "DeleteMessageBatch failed (the messages will be delivered again): {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )),
            }
        }
    }
}
