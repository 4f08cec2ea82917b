//! The webhook fan-out, fed by the notifications queue.

use aloft_notifier::{
    fanout::Fanout, queue::DeliveryQueue, settings::Settings, store::WebhookStore,
};
use aloft_shared::{aws, cursor::CursorCodec, master_key::MasterKey, telemetry};
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let master = MasterKey::from_env(&sdk).await?;
    let fanout = &Fanout {
        store: WebhookStore::from_env(&sdk, CursorCodec::new(&master))?,
        queue: DeliveryQueue::from_env(&sdk)?,
        settings: Settings::from_env()?,
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(fanout.handle(event.payload).await)
    }))
    .await
}
