//! The users HTTP API function.

use aloft_shared::{aws, config, cursor::CursorCodec, http, master_key::MasterKey, telemetry};
use aloft_users::{api, store::UserStore};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let master = MasterKey::load(
        &aws::secrets_manager(&sdk),
        &config::required("MASTER_KEY_SECRET_ID")?,
    )
    .await?;
    let store = UserStore::from_env(&sdk, CursorCodec::new(&master))?;
    http::serve(api::router(store)).await
}
