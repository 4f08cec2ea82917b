//! The registry HTTP API function.

use aloft_registry::{api, store::RegistryStore};
use aloft_shared::{aws, http, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    http::serve(api::router(RegistryStore::from_env(&sdk)?)).await
}
