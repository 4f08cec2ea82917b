//! What a `DynamoDB` or `SQS` event in template.yaml asks of its event-source mapping,
//! with Lambda's defaults for what it leaves out. A property local/ does not emulate is
//! an error naming it, so the mapping never silently behaves unlike the deployed one.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_norway::Value;

/// Resolves a template value (intrinsics included) to a string.
pub type Resolve<'a> = &'a dyn Fn(&Value) -> Result<String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    TrimHorizon,
    Latest,
}

/// A `Type: DynamoDB` event.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    pub stream_arn: String,
    pub starting_position: StartingPosition,
    pub batch_size: usize,
    pub batching_window: Duration,
    pub report_item_failures: bool,
    pub bisect: bool,
    /// `None`: retry until the record expires (Lambda's -1).
    pub max_retries: Option<u32>,
    /// `None`: no limit but the stream's retention (Lambda's -1).
    pub max_record_age: Option<Duration>,
    /// The `OnFailure` SQS queue's ARN.
    pub on_failure: Option<String>,
    pub enabled: bool,
}

/// A `Type: SQS` event.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    pub queue_arn: String,
    pub batch_size: usize,
    pub batching_window: Duration,
    pub report_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`, if set.
    pub max_concurrency: Option<usize>,
    pub enabled: bool,
}

const STREAM_KEYS: &[&str] = &[
    "Stream",
    "StartingPosition",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "FunctionResponseTypes",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "DestinationConfig",
    "Enabled",
];

const QUEUE_KEYS: &[&str] = &[
    "Queue",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "FunctionResponseTypes",
    "ScalingConfig",
    "Enabled",
];

fn check_keys(props: &Value, known: &[&str]) -> Result<()> {
    for key in props.as_mapping().into_iter().flatten().map(|(k, _)| k) {
        let key = key.as_str().unwrap_or_default();
        if !known.contains(&key) {
            bail!(
                "property {key} is not emulated locally (only {})",
                known.join(", ")
            );
        }
    }
    Ok(())
}

fn number(props: &Value, key: &str, resolve: Resolve) -> Result<Option<i64>> {
    props
        .get(key)
        .map(|v| {
            resolve(v)?
                .parse()
                .with_context(|| format!("{key} must be a whole number"))
        })
        .transpose()
}

fn flag(props: &Value, key: &str, resolve: Resolve) -> Result<Option<bool>> {
    props
        .get(key)
        .map(|v| {
            resolve(v)?
                .parse()
                .with_context(|| format!("{key} must be true or false"))
        })
        .transpose()
}

fn report_item_failures(props: &Value, resolve: Resolve) -> Result<bool> {
    let mut report = false;
    if let Some(types) = props.get("FunctionResponseTypes") {
        for t in types
            .as_sequence()
            .context("FunctionResponseTypes must be a list")?
        {
            match resolve(t)?.as_str() {
                "ReportBatchItemFailures" => report = true,
                other => bail!("FunctionResponseTypes: unknown {other}"),
            }
        }
    }
    Ok(report)
}

fn window(props: &Value, resolve: Resolve) -> Result<Duration> {
    let seconds = number(props, "MaximumBatchingWindowInSeconds", resolve)?.unwrap_or(0);
    if !(0..=300).contains(&seconds) {
        bail!("MaximumBatchingWindowInSeconds must be 0 to 300");
    }
    Ok(Duration::from_secs(seconds as u64))
}

fn batch_size(props: &Value, resolve: Resolve, default: i64, max: i64) -> Result<usize> {
    let size = number(props, "BatchSize", resolve)?.unwrap_or(default);
    if !(1..=max).contains(&size) {
        bail!("BatchSize must be 1 to {max}");
    }
    Ok(size as usize)
}

impl StreamConfig {
    pub fn parse(props: &Value, resolve: Resolve) -> Result<Self> {
        check_keys(props, STREAM_KEYS)?;
        let starting_position = match props.get("StartingPosition").map(resolve).transpose()? {
            Some(p) if p == "TRIM_HORIZON" => StartingPosition::TrimHorizon,
            Some(p) if p == "LATEST" => StartingPosition::Latest,
            Some(p) => bail!("StartingPosition {p}: DynamoDB streams take TRIM_HORIZON or LATEST"),
            None => bail!("StartingPosition is required"),
        };
        let max_retries = match number(props, "MaximumRetryAttempts", resolve)? {
            None | Some(-1) => None,
            Some(n @ 0..=10_000) => Some(n as u32),
            Some(_) => bail!("MaximumRetryAttempts must be -1 or 0 to 10000"),
        };
        let max_record_age = match number(props, "MaximumRecordAgeInSeconds", resolve)? {
            None | Some(-1) => None,
            Some(n @ 60..=604_800) => Some(Duration::from_secs(n as u64)),
            Some(_) => bail!("MaximumRecordAgeInSeconds must be -1 or 60 to 604800"),
        };
        let on_failure = match props.get("DestinationConfig") {
            None => None,
            Some(d) => {
                let target = d
                    .get("OnFailure")
                    .context("DestinationConfig needs OnFailure")?;
                if let Some(kind) = target.get("Type") {
                    if resolve(kind)? != "SQS" {
                        bail!("DestinationConfig.OnFailure: only Type SQS is emulated locally");
                    }
                }
                let arn = resolve(
                    target
                        .get("Destination")
                        .context("OnFailure needs Destination")?,
                )?;
                if !arn.starts_with("arn:aws:sqs:") {
                    bail!("OnFailure destination {arn}: only SQS queues are emulated locally");
                }
                Some(arn)
            }
        };
        Ok(Self {
            stream_arn: resolve(props.get("Stream").context("Stream is required")?)?,
            starting_position,
            batch_size: batch_size(props, resolve, 100, 10_000)?,
            batching_window: window(props, resolve)?,
            report_item_failures: report_item_failures(props, resolve)?,
            bisect: flag(props, "BisectBatchOnFunctionError", resolve)?.unwrap_or(false),
            max_retries,
            max_record_age,
            on_failure,
            enabled: flag(props, "Enabled", resolve)?.unwrap_or(true),
        })
    }
}

impl QueueConfig {
    pub fn parse(props: &Value, resolve: Resolve) -> Result<Self> {
        check_keys(props, QUEUE_KEYS)?;
        let batching_window = window(props, resolve)?;
        // Lambda refuses more than ten messages without a window to gather them in.
        let max = if batching_window.is_zero() {
            10
        } else {
            10_000
        };
        let max_concurrency = match props.get("ScalingConfig") {
            None => None,
            Some(s) => match number(s, "MaximumConcurrency", resolve)? {
                None => None,
                Some(n @ 2..=1000) => Some(n as usize),
                Some(_) => bail!("ScalingConfig.MaximumConcurrency must be 2 to 1000"),
            },
        };
        Ok(Self {
            queue_arn: resolve(props.get("Queue").context("Queue is required")?)?,
            batch_size: batch_size(props, resolve, 10, max)?,
            batching_window,
            report_item_failures: report_item_failures(props, resolve)?,
            max_concurrency,
            enabled: flag(props, "Enabled", resolve)?.unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(v: &Value) -> Result<String> {
        match v {
            Value::Tagged(t) => Ok(format!("resolved:{}", crate::template::scalar(&t.value)?)),
            other => crate::template::scalar(other),
        }
    }

    fn yaml(text: &str) -> Value {
        serde_norway::from_str(text).unwrap()
    }

    #[test]
    fn a_stream_event_reads_every_setting() {
        let props = yaml(
            r#"
Stream: !GetAtt OutboxTable.StreamArn
StartingPosition: TRIM_HORIZON
BatchSize: 100
MaximumBatchingWindowInSeconds: 1
FunctionResponseTypes: [ReportBatchItemFailures]
BisectBatchOnFunctionError: true
MaximumRetryAttempts: 100
MaximumRecordAgeInSeconds: 86400
DestinationConfig:
  OnFailure:
    Type: SQS
    Destination: arn:aws:sqs:us-east-1:123456789012:Failures
"#,
        );
        let c = StreamConfig::parse(&props, &plain).unwrap();
        assert_eq!(c.stream_arn, "resolved:OutboxTable.StreamArn");
        assert_eq!(c.starting_position, StartingPosition::TrimHorizon);
        assert_eq!(c.batch_size, 100);
        assert_eq!(c.batching_window, Duration::from_secs(1));
        assert!(c.report_item_failures && c.bisect && c.enabled);
        assert_eq!(c.max_retries, Some(100));
        assert_eq!(c.max_record_age, Some(Duration::from_secs(86_400)));
        assert_eq!(
            c.on_failure.as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:Failures")
        );
    }

    #[test]
    fn stream_defaults_are_lambdas() {
        let props = yaml("{Stream: arn:s, StartingPosition: LATEST}");
        let c = StreamConfig::parse(&props, &plain).unwrap();
        assert_eq!(c.batch_size, 100);
        assert!(c.batching_window.is_zero());
        assert_eq!((c.max_retries, c.max_record_age), (None, None));
        assert!(!c.report_item_failures && !c.bisect && c.on_failure.is_none());
        let props = yaml("{Stream: arn:s, StartingPosition: LATEST, MaximumRetryAttempts: -1}");
        assert_eq!(
            StreamConfig::parse(&props, &plain).unwrap().max_retries,
            None
        );
    }

    #[test]
    fn what_is_not_emulated_is_refused_by_name() {
        for (text, needle) in [
            (
                "{Stream: s, StartingPosition: LATEST, FilterCriteria: {}}",
                "FilterCriteria",
            ),
            ("{Stream: s}", "StartingPosition"),
            (
                "{Stream: s, StartingPosition: AT_TIMESTAMP}",
                "AT_TIMESTAMP",
            ),
            (
                "{Stream: s, StartingPosition: LATEST, BatchSize: 0}",
                "BatchSize",
            ),
            (
                "{Stream: s, StartingPosition: LATEST, MaximumRecordAgeInSeconds: 5}",
                "MaximumRecordAge",
            ),
            (
                "{Stream: s, StartingPosition: LATEST, DestinationConfig: {OnFailure: {Type: SNS, Destination: t}}}",
                "SQS",
            ),
        ] {
            let e = StreamConfig::parse(&yaml(text), &plain)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn a_queue_event_reads_every_setting() {
        let props = yaml(
            r#"
Queue: !GetAtt NotificationsQueue.Arn
BatchSize: 10
FunctionResponseTypes: [ReportBatchItemFailures]
ScalingConfig: {MaximumConcurrency: 5}
"#,
        );
        let c = QueueConfig::parse(&props, &plain).unwrap();
        assert_eq!(c.queue_arn, "resolved:NotificationsQueue.Arn");
        assert_eq!(c.batch_size, 10);
        assert!(c.report_item_failures && c.enabled);
        assert_eq!(c.max_concurrency, Some(5));
        let big = yaml("{Queue: q, BatchSize: 50}");
        assert!(
            QueueConfig::parse(&big, &plain).is_err(),
            "more than 10 needs a window"
        );
        let windowed = yaml("{Queue: q, BatchSize: 50, MaximumBatchingWindowInSeconds: 1}");
        assert_eq!(
            QueueConfig::parse(&windowed, &plain).unwrap().batch_size,
            50
        );
    }
}
