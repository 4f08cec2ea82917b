//! The payments reconciler, fired by an EventBridge schedule: settles payments stuck in
//! `processing` and refunds stuck in `pending` (see `aloft_payments::reconcile`).

use std::time::Duration;

use aloft_payments::processor::{ProcessorContext, ProcessorRegistry, ProcessorsConfig};
use aloft_payments::reconcile::{DEFAULT_THRESHOLD, Reconciler};
use aloft_payments::store::PaymentStore;
use aloft_shared::{aws, config, cursor::CursorCodec, master_key::MasterKey, telemetry};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    // It pages nothing for callers: a cursor key of its own, never shown to anyone, so
    // it needs no access to the master key.
    let cursors = CursorCodec::new(&MasterKey::from_bytes(
        uuid::Uuid::new_v4().as_bytes().to_vec(),
    ));
    let reconciler = Reconciler {
        store: PaymentStore::from_env(&sdk, cursors)?,
        processors: ProcessorRegistry::from_config(
            &ProcessorsConfig::from_env()?,
            &ProcessorContext::from_sdk(&sdk),
        )
        .await?,
        threshold: Duration::from_secs(config::parsed_or(
            "RECONCILE_AFTER_SECS",
            DEFAULT_THRESHOLD.as_secs(),
        )?),
    };
    let reconciler = &reconciler;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<EventBridgeEvent>| async move {
            // Boxed: the run's future is deep enough to overflow the layout query inline.
            Ok::<_, lambda_runtime::Error>(Box::pin(reconciler.run()).await?)
        },
    ))
    .await
}
