//! The HTTP plumbing the real gateways (Stripe, PayPal) share: their client, their
//! credentials in Secrets Manager, and the one rule that sorts an exchange into an
//! answer, "nothing was sent" or "the outcome is unknown" (see [`super`]).

use std::time::Duration;

use aloft_shared::outbound::{OutboundClient, OutboundError, OutboundResponse};
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::{Failure, ProcessorError};

/// One gateway as its adapter names it: `processor` in logs and errors, `label` in the
/// words a payer or operator reads.
#[derive(Debug, Clone, Copy)]
pub struct Gateway {
    pub processor: &'static str,
    pub label: &'static str,
}

/// Why no answer could be read.
pub enum NoAnswer {
    /// No money request reached the gateway (the connection was refused, no token was
    /// had): provably no effect.
    NotSent(Failure),
    /// A money request may have reached the gateway: its effect is unknown.
    Lost(String),
    /// The gateway refused the client credentials: nothing was sent, an operator must act.
    Credentials(String),
}

impl NoAnswer {
    /// The error a caller that cannot fail the payment gets, keeping `reference`.
    pub fn unknown(self, gateway: Gateway, reference: Option<&str>) -> ProcessorError {
        let reference = reference.map(str::to_owned);
        match self {
            NoAnswer::Credentials(detail) => gateway.misconfigured(detail),
            NoAnswer::NotSent(f) => {
                ProcessorError::unknown(gateway.processor, reference, f.message)
            }
            NoAnswer::Lost(detail) => ProcessorError::unknown(gateway.processor, reference, detail),
        }
    }
}

impl Gateway {
    pub fn misconfigured(self, detail: impl Into<String>) -> ProcessorError {
        ProcessorError::Misconfigured {
            processor: self.processor.to_owned(),
            detail: detail.into(),
        }
    }

    /// The failure of a request that never reached the gateway.
    pub fn unreachable(self) -> Failure {
        Failure::unavailable(format!(
            "{} could not be reached; nothing was charged.",
            self.label
        ))
    }

    /// The client every request to this gateway goes through, with its timeout.
    pub fn client(self, timeout: Duration) -> OutboundClient {
        OutboundClient::new(timeout, "aloft-payments/1")
    }

    /// The SecretString stored in Secrets Manager under `secret_id`.
    pub async fn secret(
        self,
        client: &aws_sdk_secretsmanager::Client,
        secret_id: &str,
    ) -> Result<String, ProcessorError> {
        let out = client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| {
                self.misconfigured(format!(
                    "could not read secret {secret_id}: {}",
                    DisplayErrorContext(e)
                ))
            })?;
        Ok(out.secret_string().unwrap_or_default().to_owned())
    }

    /// The status and body of an answer the gateway gave, or why there is none. A
    /// connection refused is the only transport failure that proves nothing was sent; a
    /// 5xx or 429 is no answer: the gateway may or may not have acted.
    pub fn read(
        self,
        sent: Result<OutboundResponse, OutboundError>,
    ) -> Result<(StatusCode, String), NoAnswer> {
        let processor = self.processor;
        let response = sent.map_err(|e| {
            if e.is_unsent() {
                tracing::warn!(processor, error = %e, "the gateway could not be reached");
                return NoAnswer::NotSent(self.unreachable());
            }
            let what = if e.is_timeout() {
                "did not answer in time"
            } else {
                "failed to answer"
            };
            tracing::warn!(processor, error = %e, "the gateway {what}");
            NoAnswer::Lost(format!("{} {what}", self.label))
        })?;
        let status = response.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            tracing::warn!(processor, %status, "the gateway gave no answer");
            return Err(NoAnswer::Lost(format!("{} answered {status}", self.label)));
        }
        // The whole answer was read within the timeout (a body cut short is an error of
        // `sent`, so no answer); bytes that are not UTF-8 cannot parse as JSON anyway.
        Ok((status, response.text()))
    }

    /// A 2xx body; unreadable, the outcome is unknown (keeping `reference` if known).
    pub fn parse<T: DeserializeOwned>(
        self,
        body: &str,
        reference: Option<&str>,
    ) -> Result<T, ProcessorError> {
        serde_json::from_str(body).map_err(|e| {
            ProcessorError::unknown(
                self.processor,
                reference.map(str::to_owned),
                format!("unreadable body: {e}"),
            )
        })
    }
}

/// A key the gateway takes up to `max` characters: a longer (scoped) one is sent as its
/// SHA-256, which keeps it unique and stable across retries.
pub fn bounded_key(key: &str, max: usize) -> String {
    if key.len() <= max {
        return key.to_owned();
    }
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A gateway's id that goes into a URL path: only ASCII letters, digits and the
/// gateway's own `punctuation` are accepted, so it cannot escape the path.
pub fn path_id<'a>(reference: &'a str, punctuation: &[u8]) -> Result<&'a str, ProcessorError> {
    let valid = !reference.is_empty()
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || punctuation.contains(&b));
    if valid {
        Ok(reference)
    } else {
        Err(ProcessorError::UnknownReference(reference.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_hashed_stably() {
        assert_eq!(bounded_key("k1", 255), "k1");
        let long = "k".repeat(300);
        assert_eq!(bounded_key(&long, 255).len(), 64);
        assert_eq!(bounded_key(&long, 255), bounded_key(&long, 255));
        assert_eq!(bounded_key(&"k".repeat(200), 108).len(), 64);
    }

    #[test]
    fn ids_cannot_escape_the_path() {
        assert!(path_id("pi_3MtwBwLkdIwHu7ix28a3tqPa", b"_").is_ok());
        assert!(path_id("5O190127TN-364715T", b"-_").is_ok());
        assert!(path_id("5O190127TN-364715T", b"_").is_err());
        assert!(path_id("../v1/charges", b"-_").is_err());
        assert!(path_id("", b"_").is_err());
    }
}
