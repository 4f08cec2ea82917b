//! The scaler's fan-out worker: evaluates the batches of services the tick queued.

use aloft_scaler::tick::{Batch, Evaluator, now_ms};
use aloft_scaler::{
    actuator::Actuators, metrics::MetricsReader, registry::RegistryReader, store::ScalingStore,
};
use aloft_shared::{aws, telemetry};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
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
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let mut response = SqsBatchResponse::default();
        for message in event.payload.records {
            let id = message.message_id.clone().unwrap_or_default();
            let evaluated =
                match serde_json::from_str::<Batch>(message.body.as_deref().unwrap_or_default()) {
                    // A body that is not a batch will never become one: drop it, loudly.
                    Err(e) => {
                        tracing::error!(error = %e, message_id = %id, "not a scaling batch");
                        continue;
                    }
                    Ok(batch) => match evaluator.store.get_many(&batch.services).await {
                        Ok(items) => evaluator
                            .evaluate_all(items, now_ms())
                            .await
                            .errors
                            .is_empty(),
                        Err(e) => {
                            tracing::error!(error = %e, "reading the batch's policies failed");
                            false
                        }
                    },
                };
            if !evaluated {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        Ok::<_, lambda_runtime::Error>(response)
    }))
    .await
}
