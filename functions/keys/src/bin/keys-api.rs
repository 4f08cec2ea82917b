//! The keys HTTP API function (and `GET /health`).

use aloft_keys::{api, store::KeyStore};
use aloft_shared::{aws, cursor::CursorCodec, http, master_key::MasterKey, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let master = MasterKey::from_env(&sdk).await?;
    let store = KeyStore::from_env(&sdk)?.with_cursors(CursorCodec::new(&master));
    http::serve(api::router(store)).await
}
