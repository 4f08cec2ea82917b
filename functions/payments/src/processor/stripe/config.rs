//! Where and how to reach Stripe: the variables read at cold start, and the secret key
//! from the environment or Secrets Manager.

use std::time::Duration;

use aloft_shared::config::{self, ConfigError};
use serde::Deserialize;

use super::{DEFAULT_API_BASE, DEFAULT_TIMEOUT, GATEWAY};
use crate::processor::ProcessorError;

/// Where and how to reach Stripe.
#[derive(Clone)]
pub struct StripeConfig {
    pub base_url: String,
    pub secret: String,
    pub timeout: Duration,
    pub return_url: Option<String>,
}

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("base_url", &self.base_url)
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("return_url", &self.return_url)
            .finish()
    }
}

impl StripeConfig {
    pub fn new(base_url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            secret: secret.into(),
            timeout: DEFAULT_TIMEOUT,
            return_url: None,
        }
    }

    /// Reads the variables listed in the module docs; the secret from the environment or,
    /// failing that, from Secrets Manager.
    pub async fn from_env(
        secrets: &aws_sdk_secretsmanager::Client,
    ) -> Result<Self, ProcessorError> {
        let base_url = config::parsed_or("STRIPE_API_BASE", DEFAULT_API_BASE.to_owned())?;
        let secret = match config::required("STRIPE_SECRET_KEY") {
            Ok(secret) => secret,
            Err(ConfigError::Missing(_)) => match config::required("STRIPE_SECRET_ID") {
                Ok(id) => load_secret(secrets, &id).await?,
                Err(ConfigError::Missing(_)) => {
                    return Err(ConfigError::Missing(
                        "STRIPE_SECRET_KEY (or STRIPE_SECRET_ID)".into(),
                    )
                    .into());
                }
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
        let timeout_ms: u64 =
            config::parsed_or("STRIPE_TIMEOUT_MS", DEFAULT_TIMEOUT.as_millis() as u64)?;
        let return_url = config::required("STRIPE_RETURN_URL").ok();
        Ok(Self {
            timeout: Duration::from_millis(timeout_ms),
            return_url,
            ..Self::new(base_url, secret)
        })
    }
}

/// The Stripe secret key stored in Secrets Manager under `secret_id`.
pub async fn load_secret(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<String, ProcessorError> {
    let stored = GATEWAY.secret(client, secret_id).await?;
    let raw = stored.trim();
    #[derive(Deserialize)]
    struct Stored {
        secret_key: String,
    }
    let secret = match serde_json::from_str::<Stored>(raw) {
        Ok(stored) => stored.secret_key,
        Err(_) => raw.to_owned(),
    };
    if secret.is_empty() {
        return Err(GATEWAY.misconfigured(format!("secret {secret_id} is empty")));
    }
    Ok(secret)
}
