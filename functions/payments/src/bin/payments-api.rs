//! The payments HTTP API function.

use aloft_payments::api;
use aloft_payments::processor::{ProcessorContext, ProcessorRegistry, ProcessorsConfig};
use aloft_payments::service::Payments;
use aloft_payments::store::PaymentStore;
use aloft_shared::{aws, cursor::CursorCodec, http, master_key::MasterKey, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let master = MasterKey::from_env(&sdk).await?;
    let store = PaymentStore::from_env(&sdk, CursorCodec::new(&master))?;
    let processors = ProcessorRegistry::from_config(
        &ProcessorsConfig::from_env()?,
        &ProcessorContext::from_sdk(&sdk),
    )
    .await?;
    http::serve(api::router(Payments {
        store,
        processors,
        fingerprint_key: master.derive("card-fingerprint"),
        idempotency_key: master.derive("idempotency"),
    }))
    .await
}
