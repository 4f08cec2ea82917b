//! The registry HTTP API function.

use aloft_registry::domain::HealthChecksAllow;
use aloft_registry::{api, store::RegistryStore};
use aloft_shared::{aws, config, http, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let checks: HealthChecksAllow =
        config::parsed_or("REGISTRY_HEALTH_CHECKS_ALLOW", HealthChecksAllow::default())?;
    http::serve(api::router(RegistryStore::from_env(&sdk)?, checks)).await
}
