//! The scaler HTTP API function.

use aloft_scaler::api::{self, Api};
use aloft_scaler::tick::Evaluator;
use aloft_scaler::{
    actuator::Actuators, metrics::MetricsReader, registry::RegistryReader, store::ScalingStore,
};
use aloft_shared::{aws, cursor::CursorCodec, http, master_key::MasterKey, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let master = MasterKey::from_env(&sdk).await?;
    let evaluator = Evaluator {
        store: ScalingStore::from_env(&sdk)?,
        registry: RegistryReader::from_env(&sdk)?,
        metrics: MetricsReader::from_env(&sdk),
        actuators: Actuators::from_env(&sdk),
    };
    http::serve(api::router(Api {
        evaluator,
        cursors: CursorCodec::new(&master),
    }))
    .await
}
