//! The registry sweep, fired by an EventBridge schedule.

use aloft_registry::domain::SelfPreservation;
use aloft_registry::{store::RegistryStore, sweep};
use aloft_shared::{aws, clock, config, telemetry};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
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
    let store = &store;
    let checker = &sweep::HttpChecker::default();
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<EventBridgeEvent>| async move {
            let now_ms = (clock::now().unix_timestamp_nanos() / 1_000_000) as i64;
            let mut report = sweep::sweep(store, now_ms, policy).await?;
            report.checks = sweep::run_checks(store, checker, now_ms).await?;
            Ok::<_, lambda_runtime::Error>(report)
        },
    ))
    .await
}
