//! The quality tick, fired every minute by an EventBridge schedule. Creates aloft's own
//! default objectives once per function (`SELF_OBJECTIVE_SERVICES`), before the first
//! tick of a sandbox.

use aloft_quality::fanout::SqsDispatch;
use aloft_quality::tick::Monitor;
use aloft_quality::{defaults, metrics::Metrics, store::QualityStore};
use aloft_shared::{aws, clock, config, cursor::CursorCodec, master_key::MasterKey, telemetry};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let master = MasterKey::from_env(&sdk).await?;
    let store = QualityStore::from_env(&sdk, CursorCodec::new(&master))?;
    let services = defaults::services(&config::parsed_or(
        "SELF_OBJECTIVE_SERVICES",
        String::new(),
    )?);
    let monitor = &Monitor {
        store,
        metrics: Metrics::from_env(&sdk)?,
        dispatch: SqsDispatch::from_env(&sdk)?,
    };
    // Before the first tick of each sandbox, not at init: a read of the markers at
    // every cold start would cost every start a round trip for what happens once per
    // deployment. A failure fails that tick, and the next one tries again.
    let defaults_created = &tokio::sync::OnceCell::new();
    let services = &services;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<EventBridgeEvent>| async move {
            let now = clock::now();
            defaults_created
                .get_or_try_init(|| defaults::create_missing(&monitor.store, services, now))
                .await?;
            Ok::<_, lambda_runtime::Error>(monitor.tick(now).await?)
        },
    ))
    .await
}
