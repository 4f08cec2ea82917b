//! Where and how to reach PayPal: the variables read at cold start, and the client
//! credentials from the environment or Secrets Manager.

use std::time::Duration;

use aloft_shared::config::{self, ConfigError};
use serde::Deserialize;

use super::{DEFAULT_API_BASE, DEFAULT_TIMEOUT, GATEWAY};
use crate::processor::ProcessorError;

/// Where and how to reach PayPal.
#[derive(Clone)]
pub struct PayPalConfig {
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub timeout: Duration,
    pub return_url: Option<String>,
    pub cancel_url: Option<String>,
}

impl std::fmt::Debug for PayPalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayPalConfig")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Deserialize)]
struct Credentials {
    client_id: String,
    client_secret: String,
}

impl PayPalConfig {
    pub fn new(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            timeout: DEFAULT_TIMEOUT,
            return_url: None,
            cancel_url: None,
        }
    }

    /// Reads the variables listed in the module docs; the credentials from the
    /// environment or, failing that, from Secrets Manager.
    pub async fn from_env(
        secrets: &aws_sdk_secretsmanager::Client,
    ) -> Result<Self, ProcessorError> {
        let base_url = config::parsed_or("PAYPAL_API_BASE", DEFAULT_API_BASE.to_owned())?;
        let credentials = match (
            config::required("PAYPAL_CLIENT_ID"),
            config::required("PAYPAL_CLIENT_SECRET"),
        ) {
            (Ok(client_id), Ok(client_secret)) => Credentials {
                client_id,
                client_secret,
            },
            _ => match config::required("PAYPAL_SECRET_ID") {
                Ok(id) => load_credentials(secrets, &id).await?,
                Err(ConfigError::Missing(_)) => {
                    return Err(ConfigError::Missing(
                        "PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET (or PAYPAL_SECRET_ID)".into(),
                    )
                    .into());
                }
                Err(e) => return Err(e.into()),
            },
        };
        let timeout_ms: u64 =
            config::parsed_or("PAYPAL_TIMEOUT_MS", DEFAULT_TIMEOUT.as_millis() as u64)?;
        Ok(Self {
            timeout: Duration::from_millis(timeout_ms),
            return_url: config::required("PAYPAL_RETURN_URL").ok(),
            cancel_url: config::required("PAYPAL_CANCEL_URL").ok(),
            ..Self::new(base_url, credentials.client_id, credentials.client_secret)
        })
    }
}

async fn load_credentials(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Credentials, ProcessorError> {
    let stored = GATEWAY.secret(client, secret_id).await?;
    serde_json::from_str(&stored).map_err(|_| {
        GATEWAY.misconfigured(format!(
            "secret {secret_id} must be JSON {{\"client_id\": …, \"client_secret\": …}}"
        ))
    })
}
