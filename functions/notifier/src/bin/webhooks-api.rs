//! The webhooks HTTP API function.

use aloft_notifier::api::{self, Webhooks};
use aloft_notifier::{queue::DeliveryQueue, settings::Settings, signing, store::WebhookStore};
use aloft_shared::master_key::{LazyKey, MasterKey};
use aloft_shared::{aws, cursor::CursorCodec, http, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let master = MasterKey::from_env(&sdk).await?;
    let state = Webhooks {
        store: WebhookStore::from_env(&sdk, CursorCodec::new(&master))?,
        queue: DeliveryQueue::from_env(&sdk)?,
        signing_key: LazyKey::new(&master, signing::KEY_PURPOSE),
        settings: Settings::from_env()?,
    };
    http::serve(api::router(state)).await
}
