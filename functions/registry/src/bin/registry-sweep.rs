//! The registry sweep, fired by an EventBridge schedule.

use std::time::{Duration, SystemTime};

use aloft_registry::domain::{HealthChecksAllow, SelfPreservation};
use aloft_registry::{store::RegistryStore, sweep};
use aloft_shared::{aws, clock, config, telemetry};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};

/// Nothing new starts this close to the function's timeout, so the sweep ends on its
/// own (with its report) rather than being cut off.
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);
const FALLBACK_BUDGET: Duration = Duration::from_secs(45);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let store = RegistryStore::from_env(&sdk)?;
    let policy = SelfPreservation {
        threshold: config::parsed_or(
            "SELF_PRESERVATION_THRESHOLD",
            SelfPreservation::default().threshold,
        )?,
        ..SelfPreservation::default()
    };
    let allow: HealthChecksAllow =
        config::parsed_or("REGISTRY_HEALTH_CHECKS_ALLOW", HealthChecksAllow::default())?;
    let checker = sweep::HttpChecker::new(allow.0);
    let (store, checker) = (&store, &checker);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            let left = match event.context.deadline().duration_since(SystemTime::now()) {
                Ok(left) => left.saturating_sub(DEADLINE_MARGIN),
                // A runtime that sent no deadline: the template's timeout less the margin.
                Err(_) => FALLBACK_BUDGET,
            };
            let deadline = tokio::time::Instant::now() + left;
            let now_ms = (clock::now().unix_timestamp_nanos() / 1_000_000) as i64;
            let mut report = sweep::sweep(store, now_ms, policy, deadline).await;
            sweep::run_checks(store, checker, now_ms, deadline, &mut report).await;
            if report.errors.is_empty() {
                return Ok::<_, lambda_runtime::Error>(report);
            }
            // Everything else was done; failing now sends the invocation to the
            // OnFailure destination, with what failed.
            let errors = serde_json::to_string(&report.errors)?;
            tracing::error!(%errors, "sweep steps failed");
            Err(format!("{} sweep steps failed: {errors}", report.errors.len()).into())
        },
    ))
    .await
}
