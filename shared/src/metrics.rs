//! CloudWatch Embedded Metric Format: a metric is a JSON line on stdout that CloudWatch
//! Logs turns into a datapoint, with no API call in the request path (`local/` does the
//! same against the local endpoint).

use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Milliseconds,
    Count,
    Percent,
    CountPerSecond,
    Megabytes,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Milliseconds => "Milliseconds",
            Unit::Count => "Count",
            Unit::Percent => "Percent",
            Unit::CountPerSecond => "Count/Second",
            Unit::Megabytes => "Megabytes",
            Unit::None => "None",
        }
    }
}

/// One EMF record: a namespace, dimension values, and metrics sharing them.
#[derive(Debug, Clone)]
pub struct MetricRecord {
    namespace: String,
    dimensions: Vec<(String, String)>,
    /// Dimension sets, by name; each set is one CloudWatch metric stream per metric.
    dimension_sets: Vec<Vec<String>>,
    metrics: Vec<(String, f64, Unit)>,
}

impl MetricRecord {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            dimensions: Vec::new(),
            dimension_sets: Vec::new(),
            metrics: Vec::new(),
        }
    }

    pub fn dimension(mut self, name: &str, value: impl Into<String>) -> Self {
        self.dimensions.push((name.to_owned(), value.into()));
        self
    }

    pub fn dimension_set(mut self, names: &[&str]) -> Self {
        self.dimension_sets
            .push(names.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    pub fn metric(mut self, name: &str, value: f64, unit: Unit) -> Self {
        self.metrics.push((name.to_owned(), value, unit));
        self
    }

    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let mut root = Map::new();
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": self.dimension_sets,
                    "Metrics": definitions,
                }]
            }),
        );
        for (name, value) in &self.dimensions {
            root.insert(name.clone(), Value::String(value.clone()));
        }
        for (name, value, _) in &self.metrics {
            root.insert(name.clone(), json!(value));
        }
        Value::Object(root)
    }

    /// Writes the record as one line on stdout, where the Lambda log pipeline reads it.
    pub fn emit(&self) {
        let ts = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        println!("{}", self.to_json(ts as i64));
    }
}

/// Peak resident memory of this process in MiB (`VmHWM` in `/proc/self/status`): one
/// small read, cheap enough for every request. `None` where there is no procfs.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_read_from_proc_status() {
        let status =
            "Name:\tbootstrap\nVmPeak:\t  20000 kB\nVmHWM:\t    5120 kB\nVmRSS:\t 4000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(5.0));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        if cfg!(target_os = "linux") {
            assert!(peak_rss_mib().is_some_and(|m| m > 0.0));
        }
    }

    #[test]
    fn record_follows_the_emf_specification() {
        let v = MetricRecord::new("aloft")
            .dimension("Function", "users")
            .dimension("StatusClass", "2xx")
            .dimension_set(&["Function", "StatusClass"])
            .metric("Latency", 12.5, Unit::Milliseconds)
            .to_json(1_700_000_000_000);
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "aloft");
        assert_eq!(m["Dimensions"], json!([["Function", "StatusClass"]]));
        assert_eq!(
            m["Metrics"],
            json!([{"Name": "Latency", "Unit": "Milliseconds"}])
        );
        assert_eq!(v["Latency"], 12.5);
        assert_eq!(v["StatusClass"], "2xx");
    }
}
