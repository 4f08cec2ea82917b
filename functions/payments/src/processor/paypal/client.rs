//! The OAuth2 token every PayPal call carries (cached until shortly before it expires),
//! and the call that carries it.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::{GATEWAY, MAX_REQUEST_ID, NAME, PayPal};
use crate::processor::http::{NoAnswer, bounded_key};

/// A token is renewed this long before PayPal says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

pub(super) struct Token {
    value: String,
    renew_at: Instant,
}

impl PayPal {
    /// A valid access token: the cached one until shortly before it expires.
    async fn token(&self, refresh: bool) -> Result<String, NoAnswer> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached
            .as_ref()
            .filter(|t| !refresh && Instant::now() < t.renew_at)
        {
            return Ok(token.value.clone());
        }
        let not_sent = |detail: String| {
            tracing::warn!(processor = NAME, %detail, "no paypal token");
            NoAnswer::NotSent(GATEWAY.unreachable())
        };
        let response = self
            .http
            .post(format!("{}/v1/oauth2/token", self.config.base_url))
            .basic_auth(&self.config.client_id, Some(&self.config.client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| not_sent(e.to_string()))?;
        let status = response.status();
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(NoAnswer::Credentials(format!(
                "PayPal refused the client credentials ({status})"
            )));
        }
        if !status.is_success() {
            return Err(not_sent(format!("token endpoint answered {status}")));
        }
        #[derive(Deserialize)]
        struct Granted {
            access_token: String,
            expires_in: u64,
        }
        let granted: Granted = response
            .json()
            .map_err(|e| not_sent(format!("unreadable token: {e}")))?;
        let lifetime = Duration::from_secs(granted.expires_in);
        let renew_at = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN.min(lifetime / 2));
        *cached = Some(Token {
            value: granted.access_token.clone(),
            renew_at,
        });
        Ok(granted.access_token)
    }

    /// Sends one API request; with a refused token, fetches a new one and sends again
    /// once (the request id makes that safe).
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        request_id: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(StatusCode, String), NoAnswer> {
        let mut refresh = false;
        loop {
            let token = self.token(refresh).await?;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.config.base_url))
                .bearer_auth(token)
                .header("Prefer", "return=representation");
            if let Some(id) = request_id {
                request = request.header("PayPal-Request-Id", bounded_key(id, MAX_REQUEST_ID));
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let (status, text) = GATEWAY.read(request.send().await)?;
            if status == StatusCode::UNAUTHORIZED && !refresh {
                refresh = true;
                continue;
            }
            return Ok((status, text));
        }
    }
}
