//! The users HTTP API function.

use aloft_shared::{aws, cursor::CursorCodec, http, master_key::MasterKey, telemetry};
use aloft_users::{api, store::UserStore};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let sdk = aws::sdk_config().await;
    let master = MasterKey::from_env(&sdk).await?;
    let store = UserStore::from_env(&sdk, CursorCodec::new(&master))?;
    http::serve(api::router(store)).await
}
