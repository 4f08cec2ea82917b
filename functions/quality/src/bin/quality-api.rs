//! The quality HTTP API function.

use aloft_quality::api::{self, AppState};
use aloft_quality::{metrics::Metrics, store::QualityStore};
use aloft_shared::{aws, cursor::CursorCodec, http, master_key::MasterKey, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let master = MasterKey::from_env(&sdk).await?;
    let store = QualityStore::from_env(&sdk, CursorCodec::new(&master))?;
    http::serve(api::router(AppState {
        store,
        metrics: Metrics::from_env(&sdk)?,
    }))
    .await
}
