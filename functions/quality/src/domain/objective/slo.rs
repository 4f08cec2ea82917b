//! A service-level objective on an availability or error-rate objective: its target,
//! window and error budget.

use serde::{Deserialize, Serialize};

use super::{Metric, SloRequest};
use crate::domain::field_errors::Errors;

pub const MAX_SLO_WINDOW_DAYS: u32 = 90;

/// A service-level objective: `target` percent of requests succeed over `window_days`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    pub target: f64,
    pub window_days: u32,
}

impl Slo {
    /// The share of requests allowed to fail (0.001 for 99.9 %).
    pub fn error_budget(&self) -> f64 {
        1.0 - self.target / 100.0
    }
}

pub(super) fn parse_slo(s: &SloRequest, metric: Option<Metric>, e: &mut Errors) -> Option<Slo> {
    if let Some(m) = metric {
        if !matches!(m, Metric::Availability | Metric::ErrorRate) {
            e.add(
                "slo",
                "only availability and error_rate objectives take an slo",
            );
        }
    }
    let target = match s.target {
        None => {
            e.add("slo.target", "is required");
            None
        }
        Some(t) if !(t.is_finite() && (0.001..100.0).contains(&t)) => {
            e.add(
                "slo.target",
                "must be a percentage from 0.001 to below 100, e.g. 99.9",
            );
            None
        }
        Some(t) => Some(t),
    };
    let window_days = match s.window_days.unwrap_or(30) {
        d if (1..=MAX_SLO_WINDOW_DAYS).contains(&d) => Some(d),
        _ => {
            e.add(
                "slo.window_days",
                format!("must be from 1 to {MAX_SLO_WINDOW_DAYS}"),
            );
            None
        }
    };
    Some(Slo {
        target: target?,
        window_days: window_days?,
    })
}

#[cfg(test)]
mod tests {
    use aloft_shared::FieldError;

    use super::*;
    use crate::domain::objective::{Objective, ObjectiveRequest};

    fn req(json: serde_json::Value) -> ObjectiveRequest {
        serde_json::from_value(json).unwrap()
    }

    fn fields(r: Result<Objective, Vec<FieldError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn slos_belong_to_availability_and_error_rate() {
        let ok = Objective::parse(
            "s",
            "slo",
            &req(serde_json::json!({"metric": "availability", "slo": {"target": 99.9}})),
        )
        .unwrap();
        assert_eq!(
            ok.slo,
            Some(Slo {
                target: 99.9,
                window_days: 30
            })
        );
        assert!((ok.slo.unwrap().error_budget() - 0.001).abs() < 1e-12);
        let r = Objective::parse(
            "s",
            "slo",
            &req(
                serde_json::json!({"metric": "latency_p99", "slo": {"target": 100, "window_days": 0}}),
            ),
        );
        assert_eq!(fields(r), ["slo", "slo.target", "slo.window_days"]);
    }
}
