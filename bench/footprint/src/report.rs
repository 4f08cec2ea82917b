//! The footprint table: raw figures as JSON, and Markdown with each aloft figure as a
//! ratio to the bare echo and the targets marked met or not.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

/// The targets (issue 13).
const INIT_FACTOR: f64 = 1.5;
const INIT_SLACK_MS: f64 = 2.0;
const CREATE_USER_CPU_MS: f64 = 0.8;
const PEAK_RSS_KIB: u64 = 10 * 1024;
const ZIP_BYTES: u64 = 3_000_000;

#[derive(Debug, Serialize)]
pub struct OpFigures {
    pub name: String,
    pub invocations: usize,
    /// Process user + system CPU per warm invocation.
    pub cpu_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// AWS requests per operation, by `service:Operation`.
    pub requests: BTreeMap<String, f64>,
    pub requests_total: f64,
    pub minimum_requests: Option<u64>,
    /// Replies by status, so a run that measured errors says so.
    pub statuses: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct FunctionFigures {
    pub binary: String,
    pub native_bytes: Option<u64>,
    pub arm64_bytes: Option<u64>,
    pub arm64_zip_bytes: Option<u64>,
    pub cold_starts: usize,
    pub init_median_ms: f64,
    pub init_max_ms: f64,
    pub first_invocation_median_ms: f64,
    pub first_invocation_max_ms: f64,
    /// AWS requests made during init, per cold start.
    pub init_requests: BTreeMap<String, f64>,
    pub peak_rss_kib: u64,
    pub ops: Vec<OpFigures>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub machine: String,
    pub cold_starts: usize,
    pub warm_invocations: usize,
    pub functions: Vec<FunctionFigures>,
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "{} {}, {cores} cores, {cpu}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn ratio(v: f64, bare: Option<f64>) -> String {
    match bare {
        Some(b) if b > 0.0 && v.is_finite() => format!(" ({:.1}×)", v / b),
        _ => String::new(),
    }
}

fn mark(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

impl Summary {
    pub fn new(functions: Vec<FunctionFigures>, a: &crate::Args) -> Self {
        Self {
            machine: machine(),
            cold_starts: a.cold,
            warm_invocations: a.warm,
            functions,
        }
    }

    fn bare(&self) -> Option<&FunctionFigures> {
        self.functions.iter().find(|f| f.binary == "bare-echo")
    }

    pub fn markdown(&self) -> String {
        let bare = self.bare();
        let b_init = bare.map(|b| b.init_median_ms);
        let b_first = bare.map(|b| b.first_invocation_median_ms);
        let b_cpu = bare.and_then(|b| b.ops.first()).map(|o| o.cpu_ms);
        let b_rss = bare.map(|b| b.peak_rss_kib as f64);
        let b_zip = bare.and_then(|b| b.arm64_zip_bytes).map(|z| z as f64);
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Footprint on {} ({} cold starts, {} warm invocations per operation; ratios to bare-echo)\n",
            self.machine, self.cold_starts, self.warm_invocations
        );
        md.push_str("| function | operation | arm64 zip / raw | cold init median (max) | first invocation | CPU per warm call | warm p50 / p99 | peak RSS | AWS requests per op | init requests |\n");
        md.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
        for f in &self.functions {
            let size = match (f.arm64_zip_bytes, f.arm64_bytes) {
                (Some(z), Some(r)) => format!("{} / {}{}", mb(z), mb(r), ratio(z as f64, b_zip)),
                _ => format!(
                    "— (x86-64 raw {})",
                    f.native_bytes.map(mb).unwrap_or_default()
                ),
            };
            let init = f
                .init_requests
                .iter()
                .map(|(k, v)| format!("{k} {v:.2}"))
                .collect::<Vec<_>>()
                .join(", ");
            for (i, op) in f.ops.iter().enumerate() {
                let requests = op
                    .requests
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let statuses = op
                    .statuses
                    .iter()
                    .filter(|(s, _)| !s.starts_with('2'))
                    .map(|(s, n)| format!(" {n}×{s}"))
                    .collect::<String>();
                let first = i == 0;
                let _ = writeln!(
                    md,
                    "| {} | {}{} | {} | {} | {} | {:.3} ms{} | {:.2} / {:.2} ms | {} | {} | {} |",
                    if first { f.binary.as_str() } else { "" },
                    op.name,
                    if statuses.is_empty() {
                        String::new()
                    } else {
                        format!(" (non-2xx:{statuses})")
                    },
                    if first { size.clone() } else { String::new() },
                    if first {
                        format!(
                            "{:.1} ({:.1}) ms{}",
                            f.init_median_ms,
                            f.init_max_ms,
                            ratio(f.init_median_ms, b_init)
                        )
                    } else {
                        String::new()
                    },
                    if first {
                        format!(
                            "{:.1} ms{}",
                            f.first_invocation_median_ms,
                            ratio(f.first_invocation_median_ms, b_first)
                        )
                    } else {
                        String::new()
                    },
                    op.cpu_ms,
                    ratio(op.cpu_ms, b_cpu),
                    op.p50_ms,
                    op.p99_ms,
                    if first {
                        format!(
                            "{:.1} MiB{}",
                            f.peak_rss_kib as f64 / 1024.0,
                            ratio(f.peak_rss_kib as f64, b_rss)
                        )
                    } else {
                        String::new()
                    },
                    if requests.is_empty() {
                        "0".into()
                    } else {
                        requests
                    },
                    if first { init.clone() } else { String::new() },
                );
            }
        }
        md.push_str("\nTargets\n\n| function | cold init ≤ 1.5 × bare + 2 ms | CPU per create user ≤ 0.8 ms | peak RSS ≤ 10 MiB | zipped arm64 ≤ 3 MB | AWS requests at the minimum |\n| --- | --- | --- | --- | --- | --- |\n");
        for f in self.functions.iter().filter(|f| f.binary != "bare-echo") {
            let init = match b_init {
                Some(b) => {
                    let limit = INIT_FACTOR * b + INIT_SLACK_MS;
                    format!(
                        "{} ({:.1} vs {:.1} ms)",
                        mark(f.init_median_ms <= limit),
                        f.init_median_ms,
                        limit
                    )
                }
                None => "—".into(),
            };
            let cpu = f
                .ops
                .iter()
                .find(|o| o.name == "create user")
                .map(|o| {
                    format!(
                        "{} ({:.3} ms)",
                        mark(o.cpu_ms <= CREATE_USER_CPU_MS),
                        o.cpu_ms
                    )
                })
                .unwrap_or_else(|| "—".into());
            let rss = format!(
                "{} ({:.1} MiB)",
                mark(f.peak_rss_kib <= PEAK_RSS_KIB),
                f.peak_rss_kib as f64 / 1024.0
            );
            let zip = f
                .arm64_zip_bytes
                .map(|z| format!("{} ({})", mark(z <= ZIP_BYTES), mb(z)))
                .unwrap_or_else(|| "not built".into());
            let requests = f
                .ops
                .iter()
                .map(|o| match o.minimum_requests {
                    Some(min) => format!(
                        "{}: {} ({:.2} vs {min})",
                        o.name,
                        mark(o.requests_total <= min as f64 + 0.005),
                        o.requests_total
                    ),
                    None => format!("{}: {:.2} (no fixed minimum)", o.name, o.requests_total),
                })
                .collect::<Vec<_>>()
                .join("; ");
            let _ = writeln!(
                md,
                "| {} | {init} | {cpu} | {rss} | {zip} | {requests} |",
                f.binary
            );
        }
        md
    }
}
