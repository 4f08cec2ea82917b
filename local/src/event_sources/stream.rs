//! The DynamoDB stream poller: follows the stream's shards (a child only after its
//! parent is drained), reads each in order from its checkpoint, gathers a batch within
//! the batching window, and works through it with `stream_plan`.
//!
//! Positions are sequence numbers, and every poll asks for a fresh iterator after the
//! checkpoint: moto replaces a table's stream shard object when it rolls back a
//! cancelled transaction, so an iterator held across polls could keep reading the
//! discarded copy and never see later records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use axum::body::Bytes;
use time::OffsetDateTime;

use super::config::{StartingPosition, StreamConfig};
use super::response::{Verdict, failure, judge};
use super::stream_event::{Discarded, StreamRecord, event, invocation_record};
use super::stream_plan::{Plan, Policy, Result as Tried, Step};
use super::{Clients, Mapping};
use crate::runtime::{Function, Outcome};

/// How often an idle shard is polled (Lambda: four times a second).
const POLL: Duration = Duration::from_millis(250);
/// How often the shard list is read again.
const DESCRIBE_EVERY: Duration = Duration::from_secs(5);
/// `GetRecords` returns at most this many records.
const MAX_GET: usize = 1000;

#[derive(Debug, Clone)]
enum Position {
    TrimHorizon,
    After(String),
}

#[derive(Debug)]
struct Shard {
    parent: Option<String>,
    position: Position,
    /// Closed and read to its end: its children may start.
    finished: bool,
}

pub struct StreamPoller {
    mapping: Arc<Mapping>,
    config: StreamConfig,
    function: Arc<Function>,
    clients: Clients,
    on_failure: Option<String>,
    region: String,
    shards: BTreeMap<String, Shard>,
}

/// An SDK error with its whole chain of causes, for the log.
fn sdk_error(e: impl std::error::Error) -> anyhow::Error {
    anyhow!("{}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(e))
}

impl StreamPoller {
    pub fn new(
        mapping: Arc<Mapping>,
        config: StreamConfig,
        function: Arc<Function>,
        clients: Clients,
        on_failure: Option<String>,
        region: String,
    ) -> Self {
        Self {
            mapping,
            config,
            function,
            clients,
            on_failure,
            region,
            shards: BTreeMap::new(),
        }
    }

    pub fn spawn(self) {
        tokio::spawn(self.run());
    }

    async fn run(mut self) {
        let mut described: Option<Instant> = None;
        let mut first = true;
        loop {
            let mapping = Arc::clone(&self.mapping);
            let guard = mapping.batch_guard().await;
            if described.is_none_or(|at| at.elapsed() >= DESCRIBE_EVERY) {
                match self.describe(first).await {
                    Ok(()) => {
                        described = Some(Instant::now());
                        first = false;
                    }
                    Err(e) => self.log(&format!("DescribeStream failed: {e:#}")),
                }
            }
            let mut busy = false;
            for id in self.ready_shards() {
                match self.poll_shard(&id).await {
                    Ok(n) => busy |= n > 0,
                    Err(e) => self.log(&format!("reading shard {id}: {e:#}")),
                }
            }
            drop(guard);
            if !busy {
                tokio::time::sleep(POLL).await;
            }
        }
    }

    fn log(&self, message: &str) {
        self.function
            .log(&format!("event source {}: {message}", self.mapping.name));
    }

    /// Reads the shard list; new shards start at their beginning, except the ones there
    /// when a `LATEST` mapping starts, which start after their last record.
    async fn describe(&mut self, first: bool) -> Result<()> {
        let mut start: Option<String> = None;
        loop {
            let out = self
                .clients
                .streams
                .describe_stream()
                .stream_arn(&self.config.stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(sdk_error)?;
            let Some(d) = out.stream_description else {
                return Ok(());
            };
            for s in d.shards() {
                let Some(id) = s.shard_id() else { continue };
                if self.shards.contains_key(id) {
                    continue;
                }
                let position = if first && self.config.starting_position == StartingPosition::Latest
                {
                    self.latest(id).await?
                } else {
                    Position::TrimHorizon
                };
                self.shards.insert(
                    id.to_owned(),
                    Shard {
                        parent: s.parent_shard_id().map(str::to_owned),
                        position,
                        finished: false,
                    },
                );
            }
            match d.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => return Ok(()),
            }
        }
    }

    /// The position after the shard's current last record.
    async fn latest(&self, shard: &str) -> Result<Position> {
        let mut position = Position::TrimHorizon;
        let mut iterator = Some(self.iterator(shard, &position).await?);
        while let Some(it) = iterator {
            let out = self
                .clients
                .streams
                .get_records()
                .shard_iterator(it)
                .limit(MAX_GET as i32)
                .send()
                .await
                .map_err(sdk_error)?;
            let Some(last) = out.records().last() else {
                break;
            };
            let seq = last.dynamodb().and_then(|d| d.sequence_number());
            position = Position::After(seq.unwrap_or_default().to_owned());
            iterator = out.next_shard_iterator;
        }
        Ok(position)
    }

    /// Unfinished shards whose parent (if still listed) is finished, oldest first.
    fn ready_shards(&self) -> Vec<String> {
        self.shards
            .iter()
            .filter(|(_, s)| !s.finished)
            .filter(|(_, s)| {
                s.parent
                    .as_ref()
                    .and_then(|p| self.shards.get(p))
                    .is_none_or(|p| p.finished)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    async fn iterator(&self, shard: &str, position: &Position) -> Result<String> {
        let req = self
            .clients
            .streams
            .get_shard_iterator()
            .stream_arn(&self.config.stream_arn)
            .shard_id(shard);
        let req = match position {
            Position::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Position::After(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
        };
        req.send()
            .await
            .map_err(sdk_error)?
            .shard_iterator
            .ok_or_else(|| anyhow!("GetShardIterator returned no iterator"))
    }

    /// Reads a batch from the shard's checkpoint and processes it; the number of
    /// records read.
    async fn poll_shard(&mut self, shard: &str) -> Result<usize> {
        let Some(position) = self.shards.get(shard).map(|s| s.position.clone()) else {
            return Ok(0);
        };
        let mut iterator = Some(self.iterator(shard, &position).await?);
        let mut records = Vec::new();
        let mut deadline: Option<Instant> = None;
        let mut drained = false;
        while let Some(it) = iterator.take() {
            let want = (self.config.batch_size - records.len()).min(MAX_GET);
            let out = self
                .clients
                .streams
                .get_records()
                .shard_iterator(it)
                .limit(want as i32)
                .send()
                .await
                .map_err(sdk_error)?;
            records.extend(
                out.records()
                    .iter()
                    .map(|r| StreamRecord::from_sdk(r, &self.region, &self.config.stream_arn)),
            );
            // No next iterator: the shard is closed and this was its end.
            drained = out.next_shard_iterator.is_none();
            iterator = out.next_shard_iterator;
            if records.len() >= self.config.batch_size || records.is_empty() {
                break;
            }
            // Gather more until the batch is full or its window closes.
            let until =
                *deadline.get_or_insert_with(|| Instant::now() + self.config.batching_window);
            let now = Instant::now();
            if now >= until {
                break;
            }
            tokio::time::sleep(POLL.min(until - now)).await;
        }
        let read = records.len();
        if read > 0 {
            self.process(shard, &records).await;
        }
        if drained && read == 0 {
            if let Some(s) = self.shards.get_mut(shard) {
                s.finished = true;
            }
        }
        Ok(read)
    }

    /// Works through one batch; stops early (at the last checkpoint) when disabled.
    async fn process(&mut self, shard: &str, records: &[StreamRecord]) {
        let policy = Policy {
            bisect: self.config.bisect,
            max_retries: self.config.max_retries,
        };
        let mut plan = Plan::new(records.len(), policy);
        let mut done = 0;
        loop {
            if let (Some(max), Some(front)) = (self.config.max_record_age, plan.next()) {
                let now = OffsetDateTime::now_utc();
                let expired = records[front]
                    .iter()
                    .take_while(|r| r.created.is_some_and(|c| now - c > max))
                    .count();
                let steps = plan.expire(expired);
                self.apply(shard, records, &mut done, steps).await;
            }
            let Some(range) = plan.next() else { return };
            // Disabled mid-batch: stop at the checkpoint; enabling reads on from there.
            tokio::select! {
                biased;
                () = self.mapping.disabled() => return,
                () = tokio::time::sleep(plan.delay()) => {}
            }
            let batch = &records[range];
            let outcome = self
                .function
                .invoke(Bytes::from(event(batch).to_string()))
                .await;
            let ids: Vec<&str> = batch.iter().map(|r| r.sequence.as_str()).collect();
            let (verdict, error) = match &outcome {
                Outcome::Response(body) => (
                    judge(Some(body), self.config.report_item_failures, &ids),
                    None,
                ),
                Outcome::Error(e) => (Verdict::BatchFailed, Some(e)),
            };
            let described = format!(
                "{} record(s) of {shard}, {}..{}",
                ids.len(),
                ids.first().unwrap_or(&""),
                ids.last().unwrap_or(&"")
            );
            self.mapping
                .note_invocation(&self.function, &described, failure(error, &verdict));
            let tried = match &verdict {
                Verdict::AllDone => Tried::AllDone,
                Verdict::ItemsFailed(failed) => Tried::FailedFrom(
                    ids.iter()
                        .position(|id| failed.iter().any(|f| f == id))
                        .unwrap_or(0),
                ),
                Verdict::BatchFailed => Tried::Error,
            };
            let steps = plan.record(tried);
            self.apply(shard, records, &mut done, steps).await;
        }
    }

    /// Carries out the plan's steps; `done` is how many of the batch's records are done.
    async fn apply(
        &mut self,
        shard: &str,
        records: &[StreamRecord],
        done: &mut usize,
        steps: Vec<Step>,
    ) {
        for step in steps {
            match step {
                Step::Checkpoint(end) => {
                    let Some(last) = end.checked_sub(1).and_then(|i| records.get(i)) else {
                        continue;
                    };
                    self.mapping.note_processed(end.saturating_sub(*done));
                    *done = end;
                    if let Some(s) = self.shards.get_mut(shard) {
                        s.position = Position::After(last.sequence.clone());
                    }
                    self.mapping.note_checkpoint(shard, &last.sequence);
                }
                Step::Discard {
                    range,
                    condition,
                    invocations,
                    function_error,
                } => {
                    *done = range.end;
                    let gone = &records[range];
                    self.mapping.note_discarded(gone.len());
                    let record = invocation_record(
                        &Discarded {
                            function_arn: self.function.arn(),
                            stream_arn: &self.config.stream_arn,
                            shard_id: shard,
                            records: gone,
                            condition,
                            invocations,
                            function_error,
                        },
                        OffsetDateTime::now_utc(),
                    );
                    self.log(&format!(
                        "gave up on {} record(s) ({}): {}",
                        gone.len(),
                        condition.as_str(),
                        record["DDBStreamBatchInfo"]
                    ));
                    self.send_on_failure(record.to_string()).await;
                }
            }
        }
    }

    async fn send_on_failure(&self, body: String) {
        let Some(url) = &self.on_failure else { return };
        for attempt in 1..=3 {
            match self
                .clients
                .sqs
                .send_message()
                .queue_url(url)
                .message_body(&body)
                .send()
                .await
            {
                Ok(_) => return,
                Err(e) if attempt == 3 => self.log(&format!(
                    "could not send to the OnFailure destination: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}
