//! The quality tick, fired every minute by an EventBridge schedule. Creates aloft's own
//! default objectives once per function (`SELF_OBJECTIVE_SERVICES`) at cold start.

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
    let now = clock::now();
    for service in defaults::services(&config::parsed_or(
        "SELF_OBJECTIVE_SERVICES",
        String::new(),
    )?) {
        let created = store
            .seed(
                &defaults::marker(&service),
                &defaults::objectives(&service),
                &clock::rfc3339(now),
                now.unix_timestamp(),
            )
            .await?;
        if created > 0 {
            tracing::info!(%service, created, "default objectives created");
        }
    }
    let monitor = &Monitor {
        store,
        metrics: Metrics::from_env(&sdk)?,
        dispatch: SqsDispatch::from_env(&sdk)?,
    };
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<EventBridgeEvent>| async move {
            Ok::<_, lambda_runtime::Error>(monitor.tick(clock::now()).await?)
        },
    ))
    .await
}
