//! AWS clients, built once per cold start.
//!
//! `aws_config` honours `AWS_ENDPOINT_URL`, so the same code talks to moto locally and
//! to AWS when deployed; nothing here knows which.

use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;

/// Loads region, credentials and endpoint from the environment (the Lambda sandbox
/// provides all three; locally `local/` does).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

pub fn sqs(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

pub fn secrets_manager(config: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(config)
}
