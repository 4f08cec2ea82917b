//! aloft watches itself: the objectives every aloft HTTP function gets on a fresh
//! deployment, in the spirit of the seed's targets (p99 ≤ 500 ms, error rate ≤ 0.1 %,
//! availability 99.9 % over 30 days with burn-rate alerts).

use aloft_shared::{clock, dynamo::StoreError};
use time::OffsetDateTime;

use crate::domain::objective::{ObjectiveRequest, SloRequest};
use crate::domain::{Objective, ServiceName};
use crate::store::QualityStore;

const MARKER_PREFIX: &str = "defaults-v1#";

/// Marker per service, so a default deleted on purpose is not brought back, and a
/// function added later still gets its defaults.
pub fn marker(service: &ServiceName) -> String {
    format!("{MARKER_PREFIX}{service}")
}

/// Creates the defaults of every one of `services` that never had them, after one read
/// of the markers: what a tick does before its first evaluation in a sandbox. Returns
/// how many objectives were created (none, on every start after the first deployment).
pub async fn create_missing(
    store: &QualityStore,
    services: &[ServiceName],
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let seeded = store.seeded(MARKER_PREFIX).await?;
    let mut created = 0;
    for service in services {
        let marker = marker(service);
        if seeded.contains(&marker) {
            continue;
        }
        let n = store
            .seed(
                &marker,
                &objectives(service),
                &clock::rfc3339(now),
                now.unix_timestamp(),
            )
            .await?;
        tracing::info!(%service, created = n, "default objectives created");
        created += n;
    }
    Ok(created)
}

/// The default objectives of one aloft function. Idle functions emit nothing, which is
/// fine, so missing data is not breaching.
pub fn objectives(service: &ServiceName) -> Vec<Objective> {
    let base = ObjectiveRequest {
        missing_data: Some("not_breaching".into()),
        ..ObjectiveRequest::default()
    };
    let requests = [
        (
            "latency-p99",
            ObjectiveRequest {
                metric: Some("latency_p99".into()),
                warning: Some(300.0),
                critical: Some(500.0),
                resolve_margin: Some(50.0),
                evaluation_periods: Some(5),
                datapoints_to_alarm: Some(3),
                ..base.clone()
            },
        ),
        (
            "error-rate",
            ObjectiveRequest {
                metric: Some("error_rate".into()),
                warning: Some(0.1),
                critical: Some(1.0),
                resolve_margin: Some(0.05),
                period_seconds: Some(300),
                evaluation_periods: Some(3),
                datapoints_to_alarm: Some(2),
                ..base.clone()
            },
        ),
        (
            "availability",
            ObjectiveRequest {
                metric: Some("availability".into()),
                slo: Some(SloRequest {
                    target: Some(99.9),
                    window_days: Some(30),
                }),
                period_seconds: Some(300),
                ..base
            },
        ),
    ];
    requests
        .into_iter()
        .filter_map(|(name, req)| Objective::parse(service.as_str(), name, &req).ok())
        .collect()
}

/// Service names from a comma-separated list (`SELF_OBJECTIVE_SERVICES`), skipping
/// blanks and anything that is not a service name.
pub fn services(list: &str) -> Vec<ServiceName> {
    list.split(',')
        .filter_map(|s| ServiceName::parse(s.trim()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_a_valid_objective() {
        let s = ServiceName::parse("UsersFunction").unwrap();
        let names: Vec<_> = objectives(&s)
            .into_iter()
            .map(|o| o.name.to_string())
            .collect();
        assert_eq!(names, ["latency-p99", "error-rate", "availability"]);
        assert_eq!(
            services(" UsersFunction, ,PaymentsFunction"),
            [s, ServiceName::parse("PaymentsFunction").unwrap()]
        );
    }
}
