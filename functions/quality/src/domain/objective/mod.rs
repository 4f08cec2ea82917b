//! Objectives: what is measured (a metric of a service), what counts as breaching
//! (comparison and thresholds) and how the evaluation reads the data (CloudWatch's
//! period, M-of-N and missing-data settings). Parsed from requests with every bad field
//! named at once.

mod metric;
mod names;
mod parse;
mod request;
mod slo;

pub use metric::{Comparison, Metric, MissingData};
pub use names::{ObjectiveName, ServiceName};
pub use parse::{
    DEFAULT_EVALUATION_PERIODS, DEFAULT_PERIOD_SECONDS, MAX_EVALUATION_SECONDS, MAX_THRESHOLD,
};
pub use request::{ObjectiveRequest, SloRequest};
pub use slo::{MAX_SLO_WINDOW_DAYS, Slo};

use serde::{Deserialize, Serialize};

/// A valid objective. Thresholds are in the metric's unit (ms, percent, requests/s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub service: ServiceName,
    pub name: ObjectiveName,
    pub metric: Metric,
    pub comparison: Comparison,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    pub resolve_margin: f64,
    pub period_seconds: u32,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub missing_data: MissingData,
    pub slo: Option<Slo>,
}

impl Objective {
    /// CloudWatch's evaluation range: the periods read to find `evaluation_periods` real
    /// datapoints (5 for 3, as in CloudWatch's documented examples).
    pub fn evaluation_range(&self) -> u32 {
        self.evaluation_periods + 2
    }

    pub fn threshold(&self, severity: super::Severity) -> Option<f64> {
        match severity {
            super::Severity::Warning => self.warning,
            super::Severity::Critical => self.critical,
        }
    }
}
