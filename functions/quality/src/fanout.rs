//! Fan-out of due objectives through the evaluation queue, past what one tick evaluates
//! itself.

use aloft_shared::dynamo::StoreError;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::tick::{Dispatch, ObjectiveKey};

/// A message carries one chunk of objective keys.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct EvaluateMessage {
    pub objectives: Vec<ObjectiveKey>,
}

/// Sends chunks to the evaluation queue, ten messages per `SendMessageBatch`.
#[derive(Debug, Clone)]
pub struct SqsDispatch {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDispatch {
    /// Reads `QUALITY_QUEUE_URL`.
    pub fn from_env(
        sdk: &aloft_shared::aws::SdkConfig,
    ) -> Result<Self, aloft_shared::config::ConfigError> {
        Ok(Self {
            client: aloft_shared::aws::sqs(sdk),
            queue_url: aloft_shared::config::required("QUALITY_QUEUE_URL")?,
        })
    }
}

impl Dispatch for SqsDispatch {
    async fn send(&self, chunks: Vec<Vec<ObjectiveKey>>) -> Result<(), StoreError> {
        let messages = chunks
            .into_iter()
            .map(|objectives| EvaluateMessage { objectives });
        let messages: Vec<_> = messages.collect();
        for batch in messages.chunks(10) {
            let entries = batch
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let body = serde_json::to_string(m)
                        .map_err(|e| StoreError::new("fan-out message", e))?;
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| StoreError::new("fan-out entry", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await?;
            if !out.failed().is_empty() {
                return Err(StoreError::internal(format!(
                    "{} fan-out messages refused",
                    out.failed().len()
                )));
            }
        }
        Ok(())
    }
}

/// For the evaluator, which never fans out further.
#[derive(Debug, Clone, Copy)]
pub struct NoFanout;

impl Dispatch for NoFanout {
    async fn send(&self, _chunks: Vec<Vec<ObjectiveKey>>) -> Result<(), StoreError> {
        Err(StoreError::internal("the evaluator does not fan out"))
    }
}
