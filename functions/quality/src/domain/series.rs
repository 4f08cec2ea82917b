//! Which CloudWatch metrics an objective reads and how their per-period statistics
//! become the objective's values.
//!
//! Request metrics come from the EMF record every aloft function emits (namespace
//! `METRICS_NAMESPACE`, dimension `Function`); load metrics from registry heartbeats
//! (dimension `Service`). Percentiles are asked for as CloudWatch's `p50`/`p95`/`p99`
//! statistics over the raw values; error rate and availability are computed here from
//! two counts (`Requests` by `Function`, and by `Function, StatusClass=5xx`), not with
//! metric math, so a period without requests is missing data rather than a division by
//! zero.

use super::objective::{Metric, Objective, ServiceName};

/// One metric stream and statistic to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricSpec {
    pub metric_name: &'static str,
    pub dimensions: Vec<(&'static str, String)>,
    pub stat: &'static str,
}

fn function(metric_name: &'static str, service: &ServiceName, stat: &'static str) -> MetricSpec {
    MetricSpec {
        metric_name,
        dimensions: vec![("Function", service.as_str().to_owned())],
        stat,
    }
}

/// Requests of `service` (Sum), then its 5xx requests (Sum).
pub fn request_counts(service: &ServiceName) -> [MetricSpec; 2] {
    [
        function("Requests", service, "Sum"),
        MetricSpec {
            metric_name: "Requests",
            dimensions: vec![
                ("Function", service.as_str().to_owned()),
                ("StatusClass", "5xx".to_owned()),
            ],
            stat: "Sum",
        },
    ]
}

/// The statistics `objective`'s values are computed from, in the order [`values`] takes.
pub fn inputs(objective: &Objective) -> Vec<MetricSpec> {
    let s = &objective.service;
    match objective.metric {
        Metric::LatencyP50 => vec![function("Latency", s, "p50")],
        Metric::LatencyP95 => vec![function("Latency", s, "p95")],
        Metric::LatencyP99 => vec![function("Latency", s, "p99")],
        Metric::LatencyMax => vec![function("Latency", s, "Maximum")],
        Metric::Throughput => vec![function("Requests", s, "Sum")],
        Metric::ErrorRate | Metric::Availability => request_counts(s).to_vec(),
        Metric::CpuPercent | Metric::MemoryPercent => vec![MetricSpec {
            metric_name: if objective.metric == Metric::CpuPercent {
                "CpuPercent"
            } else {
                "MemoryPercent"
            },
            dimensions: vec![("Service", s.as_str().to_owned())],
            stat: "Average",
        }],
    }
}

/// Error rate in percent from a period's request and 5xx counts; `None` without requests.
pub fn error_rate(total: Option<f64>, errors: Option<f64>) -> Option<f64> {
    let total = total.filter(|t| *t > 0.0)?;
    Some((100.0 * errors.unwrap_or(0.0) / total).clamp(0.0, 100.0))
}

/// The objective's value per period from its inputs' per-period statistics (each as
/// long as the range, oldest first; `None` where CloudWatch had no datapoint).
pub fn values(objective: &Objective, inputs: &[Vec<Option<f64>>]) -> Vec<Option<f64>> {
    let first = inputs.first().cloned().unwrap_or_default();
    let period = f64::from(objective.period_seconds);
    match objective.metric {
        Metric::ErrorRate | Metric::Availability => {
            let errors = inputs.get(1).cloned().unwrap_or_default();
            first
                .iter()
                .enumerate()
                .map(|(i, total)| {
                    let rate = error_rate(*total, errors.get(i).copied().flatten());
                    if objective.metric == Metric::Availability {
                        rate.map(|r| 100.0 - r)
                    } else {
                        rate
                    }
                })
                .collect()
        }
        Metric::Throughput => first.iter().map(|sum| sum.map(|s| s / period)).collect(),
        _ => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::objective::ObjectiveRequest;

    fn objective(metric: &str) -> Objective {
        let req = ObjectiveRequest {
            metric: Some(metric.into()),
            critical: Some(50.0),
            ..Default::default()
        };
        Objective::parse("UsersFunction", "o", &req).unwrap()
    }

    #[test]
    fn percentiles_are_asked_for_as_cloudwatch_statistics() {
        assert_eq!(inputs(&objective("latency_p99"))[0].stat, "p99");
        assert_eq!(inputs(&objective("latency_p50"))[0].stat, "p50");
        assert_eq!(inputs(&objective("latency_max"))[0].stat, "Maximum");
        let cpu = &inputs(&objective("cpu_percent"))[0];
        assert_eq!(
            (cpu.metric_name, cpu.dimensions[0].0, cpu.stat),
            ("CpuPercent", "Service", "Average")
        );
    }

    #[test]
    fn error_rate_and_availability_come_from_counts() {
        let totals = vec![Some(200.0), Some(100.0), None, Some(0.0)];
        let errors = vec![Some(2.0), None, Some(1.0), None];
        let e = values(&objective("error_rate"), &[totals.clone(), errors.clone()]);
        assert_eq!(e, [Some(1.0), Some(0.0), None, None]);
        let a = values(&objective("availability"), &[totals, errors]);
        assert_eq!(a, [Some(99.0), Some(100.0), None, None]);
        assert_eq!(
            inputs(&objective("availability"))[1].dimensions[1],
            ("StatusClass", "5xx".to_owned())
        );
    }

    #[test]
    fn throughput_is_requests_per_second_of_the_period() {
        let v = values(&objective("throughput"), &[vec![Some(120.0), None]]);
        assert_eq!(v, [Some(2.0), None]);
    }
}
