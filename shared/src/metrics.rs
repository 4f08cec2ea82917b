//! CloudWatch Embedded Metric Format: a metric is a JSON line on stdout that CloudWatch
//! Logs turns into a datapoint, with no API call in the request path (`local/` does the
//! same against the local endpoint).

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};

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

/// One EMF record: a namespace, dimension values, and metrics sharing them, under one or
/// more directives (each a group of metrics with its own dimension sets).
#[derive(Debug, Clone)]
pub struct MetricRecord {
    namespace: String,
    dimensions: Vec<(String, String)>,
    directives: Vec<Directive>,
}

/// Metrics and the dimension sets they are published under: one CloudWatch metric
/// stream per metric and set.
#[derive(Debug, Clone, Default)]
struct Directive {
    dimension_sets: Vec<Vec<String>>,
    metrics: Vec<(String, f64, Unit)>,
}

impl MetricRecord {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            dimensions: Vec::new(),
            directives: vec![Directive::default()],
        }
    }

    pub fn dimension(mut self, name: &str, value: impl Into<String>) -> Self {
        self.dimensions.push((name.to_owned(), value.into()));
        self
    }

    pub fn dimension_set(mut self, names: &[&str]) -> Self {
        self.current()
            .dimension_sets
            .push(names.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    pub fn metric(mut self, name: &str, value: f64, unit: Unit) -> Self {
        self.current().metrics.push((name.to_owned(), value, unit));
        self
    }

    /// Starts another group in the same record: the dimension sets and metrics added
    /// after it are published apart from those before. One line instead of two for a
    /// request's metrics (issue 13: every line is a formatted write on the request path).
    pub fn group(mut self) -> Self {
        self.directives.push(Directive::default());
        self
    }

    fn current(&mut self) -> &mut Directive {
        self.directives
            .last_mut()
            .expect("a record starts with a group")
    }

    /// The record as a JSON value, for tests to inspect; [`MetricRecord::emit`] writes the
    /// same document without building one.
    #[cfg(test)]
    fn to_json(&self, timestamp_ms: i64) -> serde_json::Value {
        serde_json::to_value(Document {
            record: self,
            timestamp_ms,
        })
        .expect("an EMF record is plain JSON")
    }

    /// Writes the record as one line on stdout, where the Lambda log pipeline reads it:
    /// serialised straight into one buffer and written with one call.
    pub fn emit(&self) {
        let timestamp_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let mut line = Vec::with_capacity(512);
        let document = Document {
            record: self,
            timestamp_ms: timestamp_ms as i64,
        };
        if serde_json::to_writer(&mut line, &document).is_ok() {
            line.push(b'\n');
            // A full or closed stdout loses a metric, never the request.
            let _ = std::io::stdout().lock().write_all(&line);
        }
    }
}

/// The record as EMF's JSON: `_aws` metadata, then dimension and metric values at the
/// root, as CloudWatch Logs reads them.
struct Document<'a> {
    record: &'a MetricRecord,
    timestamp_ms: i64,
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.record;
        let mut root = serializer.serialize_map(None)?;
        root.serialize_entry(
            "_aws",
            &Metadata {
                timestamp_ms: self.timestamp_ms,
                record: r,
            },
        )?;
        // A JSON object names each key once: a metric two groups share, or named like a
        // dimension, is written the first time only (the directives still refer to it).
        let mut written: Vec<&str> = Vec::new();
        for (name, value) in &r.dimensions {
            if !written.contains(&name.as_str()) {
                written.push(name);
                root.serialize_entry(name, value)?;
            }
        }
        for (name, value, _) in r.directives.iter().flat_map(|d| &d.metrics) {
            if !written.contains(&name.as_str()) {
                written.push(name);
                root.serialize_entry(name, value)?;
            }
        }
        root.end()
    }
}

struct Metadata<'a> {
    timestamp_ms: i64,
    record: &'a MetricRecord,
}

impl Serialize for Metadata<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let directives: Vec<_> = self
            .record
            .directives
            .iter()
            .filter(|d| !d.metrics.is_empty())
            .map(|d| DirectiveJson {
                namespace: &self.record.namespace,
                directive: d,
            })
            .collect();
        let mut m = serializer.serialize_struct("Metadata", 2)?;
        m.serialize_field("Timestamp", &self.timestamp_ms)?;
        m.serialize_field("CloudWatchMetrics", &directives)?;
        m.end()
    }
}

struct DirectiveJson<'a> {
    namespace: &'a str,
    directive: &'a Directive,
}

impl Serialize for DirectiveJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Definition<'a>(&'a str, Unit);
        impl Serialize for Definition<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut m = serializer.serialize_struct("Metric", 2)?;
                m.serialize_field("Name", self.0)?;
                m.serialize_field("Unit", self.1.as_str())?;
                m.end()
            }
        }
        let definitions: Vec<_> = self
            .directive
            .metrics
            .iter()
            .map(|(name, _, unit)| Definition(name, *unit))
            .collect();
        let mut m = serializer.serialize_struct("Directive", 3)?;
        m.serialize_field("Namespace", self.namespace)?;
        m.serialize_field("Dimensions", &self.directive.dimension_sets)?;
        m.serialize_field("Metrics", &definitions)?;
        m.end()
    }
}

/// Peak resident memory of this process in MiB: `VmHWM` from `/proc/self/status`, read
/// at most once a second (a peak only grows; the dashboards take each minute's Maximum),
/// with one `pread` of a file opened once. Reading it afresh on every request was 4–5 %
/// of a warm create's CPU (issue 13). Not `getrusage`'s `ru_maxrss`: across `exec` the
/// kernel carries the launching process's peak into it, so a function started by a large
/// parent (Lambda's init, aloft-local) would report that parent's memory. `None` where
/// there is no procfs.
pub fn peak_rss_mib() -> Option<f64> {
    static LAST: Mutex<Option<(Instant, Option<f64>)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match *last {
        Some((at, peak)) if at.elapsed() < Duration::from_secs(1) => peak,
        _ => {
            let peak = read_vm_hwm();
            *last = Some((Instant::now(), peak));
            peak
        }
    }
}

fn read_vm_hwm() -> Option<f64> {
    use std::os::unix::fs::FileExt;
    static STATUS: OnceLock<Option<std::fs::File>> = OnceLock::new();
    let file = STATUS
        .get_or_init(|| std::fs::File::open("/proc/self/status").ok())
        .as_ref()?;
    let mut buf = [0u8; 4096];
    let n = file.read_at(&mut buf, 0).ok()?;
    parse_vm_hwm(std::str::from_utf8(&buf[..n]).ok()?)
}

fn parse_vm_hwm(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn peak_rss_is_this_processs_own_high_water_mark() {
        let status =
            "Name:\tbootstrap\nVmPeak:\t  20000 kB\nVmHWM:\t    5120 kB\nVmRSS:\t 4000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(5.0));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        if !cfg!(target_os = "linux") {
            return;
        }
        let before = read_vm_hwm().expect("procfs is there");
        // Touch more than the whole peak so far: the mark must rise past it, and the file
        // opened once must give the new figure on the next read.
        let mut block = vec![0u8; (before as usize + 32) << 20];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        std::hint::black_box(&block);
        let after = read_vm_hwm().unwrap();
        assert!(after >= before + 31.0, "{before} MiB -> {after} MiB");
        // What requests report lags the mark by at most a second.
        let reported = peak_rss_mib().unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert!(peak_rss_mib().unwrap() >= after.max(reported));
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

    #[test]
    fn groups_share_one_line_each_with_its_own_dimension_sets() {
        let v = MetricRecord::new("aloft")
            .dimension("Function", "users")
            .dimension("StatusClass", "5xx")
            .dimension_set(&["Function"])
            .dimension_set(&["Function", "StatusClass"])
            .metric("Requests", 1.0, Unit::Count)
            .group()
            .dimension_set(&["Function"])
            .metric("DatabaseLatency", 3.25, Unit::Milliseconds)
            .metric("MemoryUsedMiB", 7.5, Unit::Megabytes)
            .to_json(1);
        let directives = v["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 2);
        assert_eq!(
            directives[0]["Dimensions"],
            json!([["Function"], ["Function", "StatusClass"]])
        );
        assert_eq!(directives[1]["Dimensions"], json!([["Function"]]));
        assert_eq!(
            directives[1]["Metrics"],
            json!([
                {"Name": "DatabaseLatency", "Unit": "Milliseconds"},
                {"Name": "MemoryUsedMiB", "Unit": "Megabytes"}
            ])
        );
        assert_eq!(directives[1]["Namespace"], "aloft");
        assert_eq!(v["Requests"], 1.0);
        assert_eq!(v["DatabaseLatency"], 3.25);
        assert_eq!(v["MemoryUsedMiB"], 7.5);
        // A group left empty declares nothing.
        let lone = MetricRecord::new("aloft")
            .metric("Requests", 1.0, Unit::Count)
            .group()
            .to_json(1);
        assert_eq!(
            lone["_aws"]["CloudWatchMetrics"].as_array().unwrap().len(),
            1
        );
    }

    #[test]
    fn a_name_is_written_once_however_many_groups_declare_it() {
        let record = MetricRecord::new("aloft")
            .dimension("Function", "users")
            .dimension_set(&["Function"])
            .metric("Requests", 1.0, Unit::Count)
            .group()
            .dimension_set(&[])
            .metric("Requests", 1.0, Unit::Count)
            .metric("Function", 2.0, Unit::Count);
        let line = serde_json::to_string(&Document {
            record: &record,
            timestamp_ms: 1,
        })
        .unwrap();
        assert_eq!(line.matches("\"Requests\":").count(), 1, "{line}");
        assert_eq!(line.matches("\"Function\":").count(), 1, "{line}");
        assert_eq!(
            record.to_json(1)["_aws"]["CloudWatchMetrics"][1]["Metrics"][0]["Name"],
            "Requests"
        );
    }
}
