//! The outbox relay, fed by the outbox table's DynamoDB stream.

use aloft_notifier::relay::Relay;
use aloft_shared::{aws, telemetry};
use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let relay = &Relay::from_env(&aws::sdk_config().await)?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<_, lambda_runtime::Error>(relay.relay(event.payload).await)
    }))
    .await
}
