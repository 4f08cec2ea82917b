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

/// Peak resident memory of this process in MiB (`ru_maxrss`, the same high-water mark
/// as `VmHWM`): one system call, with no file to open and parse on every request (that
/// read was about 4 % of a warm create's CPU, issue 13). `None` if the call fails.
pub fn peak_rss_mib() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer it is given, which points
    // at one, and reads nothing from it; the value is only read after it returned 0.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    // Linux reports kibibytes; macOS, where tests may run, bytes.
    let kib = if cfg!(target_os = "macos") {
        usage.ru_maxrss as f64 / 1024.0
    } else {
        usage.ru_maxrss as f64
    };
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_the_processs_high_water_mark() {
        let before = peak_rss_mib().expect("getrusage works");
        // Touch more than this process's whole peak so far: the mark must rise.
        let mut block = vec![0u8; (before as usize + 16) << 20];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        std::hint::black_box(&block);
        let after = peak_rss_mib().expect("getrusage works");
        assert!(after >= before + 15.0, "{before} MiB -> {after} MiB");
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            // The same figure procfs gives, within what this thread allocates meanwhile.
            let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
            let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert!(
                (kib / 1024.0 - after).abs() < 1.0,
                "{kib} KiB vs {after} MiB"
            );
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
