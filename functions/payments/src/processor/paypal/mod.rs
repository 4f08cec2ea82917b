//! PayPal, through its Orders v2 and Payments v2 REST APIs (JSON, OAuth2 bearer token).
//!
//! - A charge creates an order (`POST /v2/checkout/orders`, intent `CAPTURE`, the payer
//!   email as `payment_source.paypal`), sent with `PayPal-Request-Id` set to the derived
//!   gateway key, so a repeat answers the first order. The payer approves at the
//!   `payer-action` link, which the payment shows as its `next_action`.
//! - Confirm captures the approved order (`POST /v2/checkout/orders/{id}/capture`, with a
//!   request id derived from the order, so concurrent confirms capture once).
//! - A refund refunds the order's capture (`POST /v2/payments/captures/{id}/refund`) with
//!   its own derived request id.
//! - Cancel calls nothing: an order never captured takes no money and expires.
//! - The token (`POST /v1/oauth2/token`, client credentials) is cached until shortly
//!   before it expires, and fetched again once if PayPal refuses it.
//!
//! Unknown outcomes follow [`super`]: only a refusal (4xx), a connection refused or a
//! failure to get a token (no money request was sent) fails; a timeout, 5xx, 429 or
//! unreadable answer is `OutcomeUnknown`. A lookup without an order id is `None`:
//! without the id nobody could approve or capture, so nothing was taken.
//!
//! Configuration (read at cold start by [`PayPalConfig::from_env`]):
//! - `PAYPAL_API_BASE`: default `https://api-m.paypal.com`; the sandbox is
//!   `https://api-m.sandbox.paypal.com`
//! - `PAYPAL_CLIENT_ID` and `PAYPAL_CLIENT_SECRET`, or else `PAYPAL_SECRET_ID`: a
//!   Secrets Manager id whose SecretString is `{"client_id": …, "client_secret": …}`
//! - `PAYPAL_TIMEOUT_MS`: per request, default 10000
//! - `PAYPAL_RETURN_URL`, `PAYPAL_CANCEL_URL`: optional; where PayPal sends the payer back

mod client;
mod config;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use aloft_shared::outbound::OutboundClient;
use axum::http::{Method, StatusCode};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use self::client::Token;
pub use self::config::PayPalConfig;
pub use self::wire::paypal_value;
use self::wire::{Order, OrderState, order_state, paypal_error, refusal};
use super::http::{Gateway, NoAnswer, path_id};
use super::{
    Adapter, CancelOutcome, ChargeLookup, ChargeOutcome, ChargeRequest, Failure, ProcessorContext,
    ProcessorError, RefundOutcome, RefundRequest, SupportedMethod, currencies,
};
use crate::domain::{MethodKind, PaymentMethod};

pub const NAME: &str = "paypal";
const GATEWAY: Gateway = Gateway {
    processor: NAME,
    label: "PayPal",
};
pub const DEFAULT_API_BASE: &str = "https://api-m.paypal.com";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// PayPal's published REST currencies that aloft knows.
const CURRENCIES: &[&str] = &[
    "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "ILS", "JPY",
    "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "SEK", "SGD", "THB", "TWD", "USD",
];
/// PayPal's limit on `PayPal-Request-Id`.
const MAX_REQUEST_ID: usize = 108;
/// Besides letters and digits, what PayPal's order and capture ids contain.
const ID_PUNCTUATION: &[u8] = b"-_";

/// Registered in [`super::REGISTERED`].
pub fn build(
    context: &ProcessorContext,
) -> BoxFuture<'_, Result<Arc<dyn super::Processor>, ProcessorError>> {
    Box::pin(async move {
        let config = PayPalConfig::from_env(&context.secrets).await?;
        Ok(Arc::new(PayPal::new(config)) as Arc<dyn super::Processor>)
    })
}

/// The PayPal processor.
pub struct PayPal {
    config: PayPalConfig,
    http: OutboundClient,
    token: tokio::sync::Mutex<Option<Token>>,
}

impl std::fmt::Debug for PayPal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayPal")
            .field("config", &self.config)
            .finish()
    }
}

impl PayPal {
    pub fn new(config: PayPalConfig) -> Self {
        let http = GATEWAY.client(config.timeout);
        Self {
            config,
            http,
            token: tokio::sync::Mutex::new(None),
        }
    }

    async fn get_order(&self, id: &str) -> Result<Order, ProcessorError> {
        let (status, text) = self
            .call(
                Method::GET,
                &format!("/v2/checkout/orders/{id}"),
                None,
                None,
            )
            .await
            .map_err(|e| e.unknown(GATEWAY, Some(id)))?;
        if status == StatusCode::NOT_FOUND {
            return Err(ProcessorError::UnknownReference(id.to_owned()));
        }
        if !status.is_success() {
            return Err(match refusal(status, &text, Some(id)) {
                Err(e) => e,
                Ok(f) => ProcessorError::unknown(NAME, Some(id.to_owned()), f.message),
            });
        }
        GATEWAY.parse(&text, Some(id))
    }
}

impl Adapter for PayPal {
    fn name(&self) -> &str {
        NAME
    }

    fn supported_methods(&self) -> Vec<SupportedMethod> {
        let cur = currencies(CURRENCIES);
        [MethodKind::Paypal, MethodKind::PaypalCredit]
            .into_iter()
            .map(|m| SupportedMethod::new(m, &cur))
            .collect()
    }

    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, ProcessorError> {
        let PaymentMethod::Paypal { payer_email, .. } = &request.method else {
            return Ok(ChargeOutcome::failed(
                None,
                Failure::new(
                    "method_not_supported",
                    "paypal takes PayPal payments only",
                    false,
                ),
            ));
        };
        let Some(value) = paypal_value(request.amount) else {
            return Ok(ChargeOutcome::failed(
                None,
                Failure::new(
                    "amount_not_supported",
                    format!(
                        "PayPal takes whole {} amounts only",
                        request.amount.currency
                    ),
                    false,
                ),
            ));
        };
        let mut unit = json!({
            "reference_id": request.payment_id,
            "custom_id": request.payment_id,
            "amount": {"currency_code": request.amount.currency.code(), "value": value},
        });
        if let Some(description) = &request.description {
            unit["description"] = json!(description.chars().take(127).collect::<String>());
        }
        let mut experience = json!({"user_action": "PAY_NOW"});
        if let Some(url) = &self.config.return_url {
            experience["return_url"] = json!(url);
        }
        if let Some(url) = &self.config.cancel_url {
            experience["cancel_url"] = json!(url);
        }
        let body = json!({
            "intent": "CAPTURE",
            "purchase_units": [unit],
            "payment_source": {"paypal": {"email_address": payer_email, "experience_context": experience}},
        });
        let sent = self
            .call(
                Method::POST,
                "/v2/checkout/orders",
                Some(&request.idempotency_key),
                Some(&body),
            )
            .await;
        let (status, text) = match sent {
            Ok(answer) => answer,
            Err(NoAnswer::NotSent(failure)) => return Ok(ChargeOutcome::failed(None, failure)),
            Err(other) => return Err(other.unknown(GATEWAY, None)),
        };
        if !status.is_success() {
            return refusal(status, &text, None).map(|f| ChargeOutcome::failed(None, f));
        }
        let order: Order = GATEWAY.parse(&text, None)?;
        match order_state(order)? {
            OrderState::Outcome(outcome) => Ok(outcome),
            OrderState::Approved(id) => Err(ProcessorError::unknown(
                NAME,
                Some(id),
                "order approved at creation",
            )),
        }
    }

    /// Captures an approved order; an order not approved yet still requires action.
    async fn confirm(&self, reference: &str) -> Result<ChargeOutcome, ProcessorError> {
        let id = path_id(reference, ID_PUNCTUATION)?;
        let (status, text) = self
            .call(
                Method::POST,
                &format!("/v2/checkout/orders/{id}/capture"),
                Some(&format!("capture-{id}")),
                Some(&json!({})),
            )
            .await
            .map_err(|e| e.unknown(GATEWAY, Some(id)))?;
        if status.is_success() {
            return match order_state(GATEWAY.parse(&text, Some(id))?)? {
                OrderState::Outcome(outcome) => Ok(outcome),
                OrderState::Approved(id) => Err(ProcessorError::unknown(
                    NAME,
                    Some(id),
                    "capture left the order approved",
                )),
            };
        }
        if status == StatusCode::NOT_FOUND {
            return Err(ProcessorError::UnknownReference(id.to_owned()));
        }
        let issue = paypal_error(&text).map(|e| e.issue());
        match issue.as_deref() {
            // Not approved yet, or captured already (a concurrent confirm): read where
            // the order stands.
            Some("ORDER_NOT_APPROVED" | "ORDER_ALREADY_CAPTURED" | "PAYER_ACTION_REQUIRED") => {
                match order_state(self.get_order(id).await?)? {
                    OrderState::Outcome(outcome) => Ok(outcome),
                    OrderState::Approved(id) => Err(ProcessorError::unknown(
                        NAME,
                        Some(id),
                        "approved order did not capture",
                    )),
                }
            }
            _ => refusal(status, &text, Some(id))
                .map(|f| ChargeOutcome::failed(Some(id.to_owned()), f)),
        }
    }

    async fn cancel(&self, reference: &str) -> Result<CancelOutcome, ProcessorError> {
        path_id(reference, ID_PUNCTUATION)?;
        Ok(CancelOutcome::Canceled)
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, ProcessorError> {
        let not_sent = |failure| {
            Ok(RefundOutcome::Failed {
                reference: None,
                failure,
            })
        };
        let Some(value) = paypal_value(request.amount) else {
            return not_sent(Failure::new(
                "amount_not_supported",
                format!(
                    "PayPal takes whole {} amounts only",
                    request.amount.currency
                ),
                false,
            ));
        };
        // The order's capture is what is refunded; reading it moves no money.
        let order = match self
            .get_order(path_id(&request.charge_reference, ID_PUNCTUATION)?)
            .await
        {
            Ok(order) => order,
            Err(e) if e.is_uncertain() => {
                return not_sent(Failure::unavailable(
                    "PayPal could not be read; nothing was refunded.",
                ));
            }
            Err(e) => return Err(e),
        };
        let Some(capture) = order.capture() else {
            return not_sent(Failure::new(
                "not_captured",
                "the PayPal order has no capture to refund",
                false,
            ));
        };
        let capture_id = path_id(&capture.id, ID_PUNCTUATION)?;
        let body = json!({
            "amount": {"currency_code": request.amount.currency.code(), "value": value},
            "custom_id": request.refund_id,
        });
        let sent = self
            .call(
                Method::POST,
                &format!("/v2/payments/captures/{capture_id}/refund"),
                Some(&request.idempotency_key),
                Some(&body),
            )
            .await;
        let (status, text) = match sent {
            Ok(answer) => answer,
            Err(NoAnswer::NotSent(failure)) => return not_sent(failure),
            Err(other) => return Err(other.unknown(GATEWAY, None)),
        };
        if !status.is_success() {
            return refusal(status, &text, None).map(|failure| RefundOutcome::Failed {
                reference: None,
                failure,
            });
        }
        #[derive(Deserialize)]
        struct Refunded {
            id: String,
            status: String,
        }
        let refund: Refunded = GATEWAY.parse(&text, None)?;
        match refund.status.as_str() {
            // PENDING settles on PayPal's side without anything more from us.
            "COMPLETED" | "PENDING" => Ok(RefundOutcome::Succeeded {
                reference: refund.id,
            }),
            "CANCELLED" | "FAILED" => Ok(RefundOutcome::Failed {
                reference: Some(refund.id),
                failure: Failure::new(
                    "refund_failed",
                    format!("PayPal reports the refund {}", refund.status),
                    false,
                ),
            }),
            other => Err(ProcessorError::unknown(
                NAME,
                Some(refund.id.clone()),
                format!("refund status {other}"),
            )),
        }
    }

    async fn lookup(&self, query: &ChargeLookup) -> Result<Option<ChargeOutcome>, ProcessorError> {
        let Some(reference) = &query.reference else {
            // No order id was ever read, so nobody could approve or capture it.
            return Ok(None);
        };
        match order_state(self.get_order(path_id(reference, ID_PUNCTUATION)?).await?)? {
            OrderState::Outcome(outcome) => Ok(Some(outcome)),
            // The payer approved: capturing is what confirm would do.
            OrderState::Approved(id) => self.confirm(&id).await.map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_currencies_are_all_known() {
        assert_eq!(currencies(CURRENCIES).len(), CURRENCIES.len());
    }

    #[test]
    fn ids_cannot_escape_the_path() {
        assert!(path_id("5O190127TN364715T", ID_PUNCTUATION).is_ok());
        assert!(path_id("../v1/oauth2", ID_PUNCTUATION).is_err());
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let paypal = PayPal::new(PayPalConfig::new("http://127.0.0.1:1/", "client", "s3cret"));
        assert!(!format!("{paypal:?}").contains("s3cret"));
    }
}
