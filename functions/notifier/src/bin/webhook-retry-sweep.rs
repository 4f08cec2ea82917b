//! The webhook retry sweep, fired by an EventBridge schedule.
// Its `main` future nests deeply enough to reach rustc's default query depth.
#![recursion_limit = "256"]

use aloft_notifier::{queue::DeliveryQueue, settings::Settings, store::WebhookStore, sweep};
use aloft_shared::{aws, cursor::CursorCodec, master_key::MasterKey, telemetry};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let master = MasterKey::from_env(&sdk).await?;
    let sweep = &sweep::Sweep {
        store: WebhookStore::from_env(&sdk, CursorCodec::new(&master))?,
        queue: DeliveryQueue::from_env(&sdk)?,
        settings: Settings::from_env()?,
    };
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, lambda_runtime::Error>(sweep.run(sweep::now_unix()).await?)
        },
    ))
    .await
}
