//! The HTTP API Lambda authorizer function.

use aloft_keys::{authorizer::Authorizer, store::KeyStore};
use aloft_shared::{aws, telemetry};
use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let authorizer = Authorizer::from_env(KeyStore::from_env(&sdk)?)?;
    let authorizer = &authorizer;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
            authorizer
                .authorize(&event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}
