//! The payments HTTP API function.

use aloft_payments::api;
use aloft_payments::processor::{ProcessorContext, ProcessorRegistry, ProcessorsConfig};
use aloft_payments::service::Payments;
use aloft_payments::store::PaymentStore;
use aloft_shared::master_key::{LazyKey, MasterKey};
use aloft_shared::{aws, cursor::CursorCodec, http, telemetry};

#[tokio::main(flavor = "current_thread")]
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
        // Derived on first use: a cold start reads no secret.
        fingerprint_key: LazyKey::new(&master, "card-fingerprint"),
        idempotency_key: LazyKey::new(&master, "idempotency"),
    }))
    .await
}
