//! The closed lists of an objective: what it measures, on which side of a threshold a
//! value breaches, and how missing data counts (CloudWatch's `TreatMissingData`).

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
            pub fn parse(raw: &str) -> Result<Self, String> {
                match raw {
                    $($s => Ok($name::$variant),)+
                    _ => Err(format!(
                        "must be one of {}",
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum! {
    /// What an objective measures.
    Metric {
        LatencyP50 => "latency_p50",
        LatencyP95 => "latency_p95",
        LatencyP99 => "latency_p99",
        LatencyMax => "latency_max",
        ErrorRate => "error_rate",
        Availability => "availability",
        Throughput => "throughput",
        CpuPercent => "cpu_percent",
        MemoryPercent => "memory_percent",
    }
}

impl Metric {
    /// The side on which the value is bad, when the request does not say.
    pub fn natural_comparison(self) -> Comparison {
        match self {
            Metric::Availability | Metric::Throughput => Comparison::LessThan,
            _ => Comparison::GreaterThan,
        }
    }

    /// Percentages must lie in 0–100.
    pub fn is_percentage(self) -> bool {
        matches!(
            self,
            Metric::ErrorRate | Metric::Availability | Metric::CpuPercent | Metric::MemoryPercent
        )
    }

    pub fn unit(self) -> &'static str {
        match self {
            Metric::LatencyP50 | Metric::LatencyP95 | Metric::LatencyP99 | Metric::LatencyMax => {
                "ms"
            }
            Metric::Throughput => "requests/s",
            _ => "percent",
        }
    }
}

string_enum! {
    /// On which side of a threshold a value breaches (CloudWatch's
    /// `GreaterThanThreshold` / `LessThanThreshold`; equal is not breaching).
    Comparison {
        GreaterThan => "greater_than",
        LessThan => "less_than",
    }
}

impl Comparison {
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThan => value > threshold,
            Comparison::LessThan => value < threshold,
        }
    }

    /// `threshold` moved by `margin` towards the good side: the line a firing alert's
    /// value must cross to resolve.
    pub fn toward_good(self, threshold: f64, margin: f64) -> f64 {
        match self {
            Comparison::GreaterThan => threshold - margin,
            Comparison::LessThan => threshold + margin,
        }
    }
}

string_enum! {
    /// CloudWatch's `TreatMissingData`.
    MissingData {
        Missing => "missing",
        Breaching => "breaching",
        NotBreaching => "not_breaching",
        Ignore => "ignore",
    }
}
