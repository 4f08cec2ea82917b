//! Evaluates chunks of objectives the tick fanned out through the evaluation queue,
//! reporting failed messages only (partial batch failure).

use aloft_quality::fanout::{EvaluateMessage, NoFanout};
use aloft_quality::tick::Monitor;
use aloft_quality::{metrics::Metrics, store::QualityStore};
use aloft_shared::{aws, clock, cursor::CursorCodec, master_key::MasterKey, telemetry};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let master = MasterKey::from_env(&sdk).await?;
    let store = QualityStore::from_env(&sdk, CursorCodec::new(&master))?;
    let monitor = &Monitor {
        store,
        metrics: Metrics::from_env(&sdk)?,
        dispatch: NoFanout,
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let mut response = SqsBatchResponse::default();
        for record in event.payload.records {
            let id = record.message_id.clone().unwrap_or_default();
            let parsed: Result<EvaluateMessage, _> =
                serde_json::from_str(record.body.as_deref().unwrap_or_default());
            let outcome = match parsed {
                Ok(m) => monitor
                    .evaluate_keys(&m.objectives, clock::now())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(format!("unreadable message: {e}")),
            };
            if let Err(error) = outcome {
                tracing::error!(message_id = %id, %error, "evaluation failed");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        Ok::<_, lambda_runtime::Error>(response)
    }))
    .await
}
