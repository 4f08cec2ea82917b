//! What CloudWatch Logs does with a function's output: lines in Embedded Metric Format
//! become metrics (`PutMetricData` against the local endpoint, so they can be queried
//! with `aws cloudwatch get-metric-statistics`), every other line is shown, tagged with
//! the function's name.

use std::io::Write;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use serde_json::Value;
use tokio::sync::mpsc;

#[derive(Clone)]
pub struct LogSink {
    metrics: mpsc::UnboundedSender<Vec<(String, MetricDatum)>>,
}

impl LogSink {
    /// The sink, and the task that forwards metrics to CloudWatch until the sink is gone.
    pub fn new(cloudwatch: aws_sdk_cloudwatch::Client) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<(String, MetricDatum)>>();
        let forwarder = tokio::spawn(async move {
            while let Some(data) = rx.recv().await {
                for (namespace, datum) in data {
                    if let Err(e) = cloudwatch
                        .put_metric_data()
                        .namespace(&namespace)
                        .metric_data(datum)
                        .send()
                        .await
                    {
                        eprintln!(
                            "[aloft-local] PutMetricData failed: {}",
                            aws_sdk_cloudwatch::error::DisplayErrorContext(e)
                        );
                    }
                }
            }
        });
        (Self { metrics: tx }, forwarder)
    }

    /// One line of a function's stdout or stderr.
    pub fn line(&self, function: &str, line: &str) {
        if let Some(data) = emf_metrics(line) {
            let _ = self.metrics.send(data);
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "[{function}] {line}");
    }

    /// A line from aloft-local itself about a function (cold starts, timeouts, exits).
    pub fn system(&self, function: &str, message: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "[{function}] [aloft-local] {message}");
    }
}

/// The metrics an EMF line declares, one datum per metric and dimension set, or `None`
/// if the line is not EMF.
pub fn emf_metrics(line: &str) -> Option<Vec<(String, MetricDatum)>> {
    let root: Value = serde_json::from_str(line.trim()).ok()?;
    let aws = root.get("_aws")?;
    let directives = aws.get("CloudWatchMetrics")?.as_array()?;
    let timestamp = aws
        .get("Timestamp")
        .and_then(Value::as_i64)
        .map(DateTime::from_millis);
    let mut out = Vec::new();
    for d in directives {
        let namespace = d.get("Namespace")?.as_str()?.to_owned();
        let sets: Vec<Vec<&str>> = d
            .get("Dimensions")
            .and_then(Value::as_array)
            .map(|sets| {
                sets.iter()
                    .filter_map(Value::as_array)
                    .map(|s| s.iter().filter_map(Value::as_str).collect())
                    .collect()
            })
            .unwrap_or_default();
        let sets = if sets.is_empty() { vec![vec![]] } else { sets };
        for m in d.get("Metrics")?.as_array()? {
            let name = m.get("Name")?.as_str()?;
            let Some(value) = root.get(name).and_then(Value::as_f64) else {
                continue;
            };
            let unit = m
                .get("Unit")
                .and_then(Value::as_str)
                .map(StandardUnit::from)
                .unwrap_or(StandardUnit::None);
            for set in &sets {
                let dimensions = set
                    .iter()
                    .filter_map(|dim| {
                        let v = root.get(*dim)?.as_str()?;
                        Some(Dimension::builder().name(*dim).value(v).build())
                    })
                    .collect();
                out.push((
                    namespace.clone(),
                    MetricDatum::builder()
                        .metric_name(name)
                        .value(value)
                        .unit(unit.clone())
                        .set_dimensions(Some(dimensions))
                        .set_timestamp(timestamp)
                        .build(),
                ));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_become_one_datum_per_metric_and_dimension_set() {
        let line = r#"{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"aloft","Dimensions":[["Function"],["Function","Route"]],"Metrics":[{"Name":"Latency","Unit":"Milliseconds"},{"Name":"Requests","Unit":"Count"}]}]},"Function":"UsersFunction","Route":"POST /users","Latency":12.5,"Requests":1}"#;
        let data = emf_metrics(line).unwrap();
        assert_eq!(data.len(), 4);
        let (ns, first) = &data[0];
        assert_eq!(ns, "aloft");
        assert_eq!(first.metric_name(), Some("Latency"));
        assert_eq!(first.value(), Some(12.5));
        assert_eq!(first.unit(), Some(&StandardUnit::Milliseconds));
        assert_eq!(first.dimensions().len(), 1);
        assert_eq!(data[1].1.dimensions().len(), 2);
    }

    #[test]
    fn ordinary_log_lines_are_not_metrics() {
        assert!(emf_metrics(r#"{"level":"INFO","message":"hi"}"#).is_none());
        assert!(emf_metrics("plain text").is_none());
    }
}
