//! Stripe, through its PaymentIntents and Refunds API (form-encoded, `Bearer` secret,
//! `Idempotency-Key` passed through).
//!
//! A charge is one `POST /v1/payment_intents` with `confirm=true` and the card in
//! `payment_method_data[card][…]`. Sending raw card numbers needs Stripe's "raw card data"
//! access on the account (normal for a PCI-compliant platform that collects cards
//! itself, as aloft's API does); Stripe's test mode accepts them for its test cards.
//! The card travels only in that request body and is never logged.
//!
//! Confirm reads the intent back (`GET /v1/payment_intents/{id}`): the payer completes
//! 3-D Secure with Stripe, and confirm reports where that left the charge.
//!
//! Unknown outcomes (see [`super`]): a connection refused is the only transport failure
//! that proves nothing was sent. A timeout, a 5xx, a 409 (the same key still running), a
//! 429, an unreadable body or an unexpected intent status is
//! [`ProcessorError::OutcomeUnknown`] with the intent's id when it was read. The
//! reconciler then finds the intent by id, or, when its answer never arrived, by listing
//! the intents created since the payment and matching `metadata[payment_id]` (Stripe's
//! list is strongly consistent, unlike its search).
//!
//! Configuration (read at cold start by [`StripeConfig::from_env`]):
//! - `STRIPE_API_BASE`: default `https://api.stripe.com`
//! - `STRIPE_SECRET_KEY`, or else `STRIPE_SECRET_ID`: a Secrets Manager id whose
//!   SecretString is the key itself or JSON `{"secret_key": "sk_…"}`
//! - `STRIPE_TIMEOUT_MS`: per request, default 10000
//! - `STRIPE_RETURN_URL`: optional; where Stripe sends the payer back after a redirect

mod config;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use aloft_shared::outbound::{OutboundClient, OutboundRequest};
use axum::http::StatusCode;
use futures::future::BoxFuture;
use serde::Deserialize;

pub use self::config::{StripeConfig, load_secret};
use self::wire::{IntentList, error_outcome, intent_outcome, intent_state};
use super::http::{Gateway, NoAnswer, bounded_key, path_id};
use super::{
    Adapter, CancelOutcome, ChargeLookup, ChargeOutcome, ChargeRequest, Failure, ProcessorContext,
    ProcessorError, RefundOutcome, RefundRequest, SupportedMethod, currencies,
};
use crate::domain::{MethodKind, PaymentMethod};

pub const NAME: &str = "stripe";
const GATEWAY: Gateway = Gateway {
    processor: NAME,
    label: "Stripe",
};

pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const CURRENCIES: &[&str] = &[
    "USD", "EUR", "GBP", "JPY", "AUD", "CAD", "CHF", "DKK", "NOK", "NZD", "SEK", "SGD",
];

/// Stripe's limit on an `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Besides letters and digits, what Stripe's ids (`pi_…`) contain.
const INTENT_ID_PUNCTUATION: &[u8] = b"_";
/// A lookup lists intents from this long before the payment was created (clock skew).
const LOOKUP_SLACK_SECS: i64 = 60;
/// Pages of 100 intents a lookup reads before it gives up (outcome still unknown).
const LOOKUP_MAX_PAGES: usize = 50;

/// Registered in [`super::REGISTERED`].
pub fn build(
    context: &ProcessorContext,
) -> BoxFuture<'_, Result<Arc<dyn super::Processor>, ProcessorError>> {
    Box::pin(async move {
        let config = StripeConfig::from_env(&context.secrets).await?;
        Ok(Arc::new(Stripe::new(config)) as Arc<dyn super::Processor>)
    })
}

/// The Stripe processor.
#[derive(Debug, Clone)]
pub struct Stripe {
    config: StripeConfig,
    http: OutboundClient,
}

impl Stripe {
    pub fn new(config: StripeConfig) -> Self {
        let http = GATEWAY.client(config.timeout);
        Self { config, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url)
    }

    fn post(&self, path: &str, idempotency_key: Option<&str>) -> OutboundRequest<'_> {
        let request = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.config.secret);
        match idempotency_key {
            Some(key) => request.header("Idempotency-Key", bounded_key(key, MAX_IDEMPOTENCY_KEY)),
            None => request,
        }
    }
}

impl Adapter for Stripe {
    fn name(&self) -> &str {
        NAME
    }

    fn supported_methods(&self) -> Vec<SupportedMethod> {
        let cur = currencies(CURRENCIES);
        [MethodKind::Visa, MethodKind::Mastercard, MethodKind::Amex]
            .into_iter()
            .map(|m| SupportedMethod::new(m, &cur))
            .collect()
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, ProcessorError> {
        let PaymentMethod::Card {
            number,
            cvc,
            expiry,
        } = &request.method
        else {
            return Ok(ChargeOutcome::failed(
                None,
                Failure::new(
                    "method_not_supported",
                    format!(
                        "stripe is not configured for {} payments",
                        request.method.kind().as_str()
                    ),
                    false,
                ),
            ));
        };
        let mut form: Vec<(&str, String)> = vec![
            ("amount", request.amount.minor.to_string()),
            (
                "currency",
                request.amount.currency.code().to_ascii_lowercase(),
            ),
            ("confirm", "true".into()),
            // Only cards: keeps Stripe from offering redirect-based methods we never asked for.
            ("payment_method_types[]", "card".into()),
            ("payment_method_data[type]", "card".into()),
            (
                "payment_method_data[card][number]",
                number.expose_digits().into(),
            ),
            (
                "payment_method_data[card][exp_month]",
                expiry.month.to_string(),
            ),
            (
                "payment_method_data[card][exp_year]",
                expiry.year.to_string(),
            ),
            ("payment_method_data[card][cvc]", cvc.expose().into()),
            ("metadata[payment_id]", request.payment_id.clone()),
        ];
        if let Some(description) = &request.description {
            form.push(("description", description.clone()));
        }
        if let Some(return_url) = &self.config.return_url {
            form.push(("return_url", return_url.clone()));
        }
        let sent = self
            .post("/v1/payment_intents", Some(&request.idempotency_key))
            .form(&form)
            .send()
            .await;
        let (status, body) = match GATEWAY.read(sent) {
            Ok(answer) => answer,
            Err(NoAnswer::NotSent(failure)) => return Ok(ChargeOutcome::failed(None, failure)),
            Err(other) => return Err(other.unknown(GATEWAY, None)),
        };
        intent_outcome(status, &body)
    }

    async fn confirm(&self, reference: &str) -> Result<ChargeOutcome, ProcessorError> {
        let id = path_id(reference, INTENT_ID_PUNCTUATION)?;
        let sent = self
            .http
            .get(self.url(&format!("/v1/payment_intents/{id}")))
            .bearer_auth(&self.config.secret)
            .send()
            .await;
        // A read that fails says nothing about the charge: the payment keeps its status.
        let (status, body) = GATEWAY
            .read(sent)
            .map_err(|e| e.unknown(GATEWAY, Some(id)))?;
        if status == StatusCode::NOT_FOUND {
            return Err(ProcessorError::UnknownReference(id.to_owned()));
        }
        if !status.is_success() {
            return Err(match error_outcome(status, &body) {
                Err(e) => e,
                Ok(_) => ProcessorError::unknown(
                    NAME,
                    Some(id.to_owned()),
                    format!("read answered {status}"),
                ),
            });
        }
        intent_outcome(status, &body)
    }

    async fn cancel(&self, reference: &str) -> Result<CancelOutcome, ProcessorError> {
        let id = path_id(reference, INTENT_ID_PUNCTUATION)?;
        let sent = self
            .post(&format!("/v1/payment_intents/{id}/cancel"), None)
            .send()
            .await;
        let (status, body) = match GATEWAY.read(sent) {
            Ok(answer) => answer,
            Err(NoAnswer::NotSent(failure)) => return Ok(CancelOutcome::Failed { failure }),
            Err(other) => return Err(other.unknown(GATEWAY, Some(id))),
        };
        if status.is_success() {
            let intent: wire::Intent = GATEWAY.parse(&body, Some(id))?;
            return if intent.status == "canceled" {
                Ok(CancelOutcome::Canceled)
            } else {
                Err(ProcessorError::unknown(
                    NAME,
                    Some(intent.id),
                    format!("cancel left the intent {}", intent.status),
                ))
            };
        }
        error_outcome(status, &body).map(|(_, failure)| CancelOutcome::Failed { failure })
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, ProcessorError> {
        let form = [
            ("payment_intent", request.charge_reference.clone()),
            ("amount", request.amount.minor.to_string()),
            ("metadata[payment_id]", request.payment_id.clone()),
            ("metadata[refund_id]", request.refund_id.clone()),
        ];
        let sent = self
            .post("/v1/refunds", Some(&request.idempotency_key))
            .form(&form)
            .send()
            .await;
        let (status, body) = match GATEWAY.read(sent) {
            Ok(answer) => answer,
            Err(NoAnswer::NotSent(failure)) => {
                return Ok(RefundOutcome::Failed {
                    reference: None,
                    failure,
                });
            }
            Err(other) => return Err(other.unknown(GATEWAY, None)),
        };
        if !status.is_success() {
            return error_outcome(status, &body).map(|(_, failure)| RefundOutcome::Failed {
                reference: None,
                failure,
            });
        }
        #[derive(Deserialize)]
        struct Refund {
            id: String,
            status: String,
            failure_reason: Option<String>,
        }
        let refund: Refund = GATEWAY.parse(&body, None)?;
        Ok(match refund.status.as_str() {
            // `pending` settles on Stripe's side without anything more from us.
            "succeeded" | "pending" => RefundOutcome::Succeeded {
                reference: refund.id,
            },
            "requires_action" => {
                return Err(ProcessorError::unknown(
                    NAME,
                    Some(refund.id),
                    "refund requires action",
                ));
            }
            other => RefundOutcome::Failed {
                reference: Some(refund.id),
                failure: Failure::new(
                    refund
                        .failure_reason
                        .unwrap_or_else(|| "refund_failed".into()),
                    format!("Stripe reports the refund {other}"),
                    false,
                ),
            },
        })
    }

    /// Finds the intent of a charge whose answer was lost: by id, or by listing the
    /// intents created since the payment and matching its `metadata[payment_id]`.
    async fn lookup(&self, query: &ChargeLookup) -> Result<Option<ChargeOutcome>, ProcessorError> {
        if let Some(reference) = &query.reference {
            return self.confirm(reference).await.map(Some);
        }
        let now = aloft_shared::clock::now().unix_timestamp();
        let mut after: Option<String> = None;
        for _ in 0..LOOKUP_MAX_PAGES {
            let mut params = vec![
                (
                    "created[gte]",
                    (query.created_at - LOOKUP_SLACK_SECS).to_string(),
                ),
                ("created[lte]", (now + LOOKUP_SLACK_SECS).to_string()),
                ("limit", "100".to_owned()),
            ];
            params.extend(after.take().map(|id| ("starting_after", id)));
            let sent = self
                .http
                .get(self.url("/v1/payment_intents"))
                .bearer_auth(&self.config.secret)
                .query(&params)
                .send()
                .await;
            let (status, body) = GATEWAY.read(sent).map_err(|e| e.unknown(GATEWAY, None))?;
            if !status.is_success() {
                return Err(match error_outcome(status, &body) {
                    Err(e) => e,
                    Ok(_) => ProcessorError::unknown(NAME, None, format!("list answered {status}")),
                });
            }
            let page: IntentList = GATEWAY.parse(&body, None)?;
            let last = page.data.last().map(|i| i.id.clone());
            if let Some(intent) = page.data.into_iter().find(|i| {
                i.metadata.get("payment_id").map(String::as_str) == Some(query.payment_id.as_str())
            }) {
                return intent_state(intent).map(Some);
            }
            match (page.has_more, last) {
                (true, Some(last)) => after = Some(last),
                _ => return Ok(None),
            }
        }
        Err(ProcessorError::unknown(
            NAME,
            None,
            "too many intents to list",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_idempotency_keys_are_hashed_stably() {
        assert_eq!(bounded_key("k1", MAX_IDEMPOTENCY_KEY), "k1");
        let long = "k".repeat(300);
        assert_eq!(bounded_key(&long, MAX_IDEMPOTENCY_KEY).len(), 64);
    }

    #[test]
    fn references_cannot_escape_the_path() {
        assert!(path_id("pi_3MtwBwLkdIwHu7ix28a3tqPa", INTENT_ID_PUNCTUATION).is_ok());
        assert!(path_id("../v1/charges", INTENT_ID_PUNCTUATION).is_err());
        assert!(path_id("", INTENT_ID_PUNCTUATION).is_err());
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let config = StripeConfig::new("http://127.0.0.1:1/", "sk_test_secret");
        assert_eq!(config.base_url, "http://127.0.0.1:1");
        assert!(!format!("{config:?}").contains("sk_test_secret"));
        let stripe = Stripe::new(config);
        assert!(!format!("{stripe:?}").contains("sk_test_secret"));
    }
}
