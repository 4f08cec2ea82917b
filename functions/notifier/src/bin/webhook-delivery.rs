//! The webhook delivery worker, fed by the delivery queue.

use aloft_notifier::queue::{DeadLetters, DeliveryQueue};
use aloft_notifier::{sender, settings::Settings, signing, store::WebhookStore, worker::Worker};
use aloft_shared::master_key::{LazyKey, MasterKey};
use aloft_shared::{aws, cursor::CursorCodec, telemetry};
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let master = MasterKey::from_env(&sdk).await?;
    let settings = Settings::from_env()?;
    let worker = &Worker {
        store: WebhookStore::from_env(&sdk, CursorCodec::new(&master))?,
        queue: DeliveryQueue::from_env(&sdk)?,
        dead_letters: DeadLetters::from_env(&sdk)?,
        sender: sender::Sender::new(settings.policy, sender::TIMEOUT),
        signing_key: LazyKey::new(&master, signing::KEY_PURPOSE),
        settings,
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(worker.handle(event.payload).await)
    }))
    .await
}
