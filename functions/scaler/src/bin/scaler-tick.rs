//! The scaler tick, fired every minute by an EventBridge schedule.

use aloft_scaler::tick::{Evaluator, FanOut, now_ms};
use aloft_scaler::{
    actuator::Actuators, metrics::MetricsReader, registry::RegistryReader, store::ScalingStore,
};
use aloft_shared::{aws, telemetry};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let evaluator = &Evaluator {
        store: ScalingStore::from_env(&sdk)?,
        registry: RegistryReader::from_env(&sdk)?,
        metrics: MetricsReader::from_env(&sdk),
        actuators: Actuators::from_env(&sdk),
    };
    let fan_out = &FanOut::from_env(&sdk)?;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<EventBridgeEvent>| async move {
            Ok::<_, lambda_runtime::Error>(evaluator.tick(Some(fan_out), now_ms()).await?)
        },
    ))
    .await
}
