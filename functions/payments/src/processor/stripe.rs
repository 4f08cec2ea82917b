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

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use aloft_shared::config::{self, ConfigError};
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use futures::future::BoxFuture;
use reqwest::StatusCode;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{
    CancelOutcome, ChargeLookup, ChargeOutcome, ChargeRequest, Failure, NextAction, Processor,
    ProcessorContext, ProcessorError, RefundOutcome, RefundRequest, SupportedMethod, currencies,
};
use crate::domain::{MethodKind, PaymentMethod};

pub const NAME: &str = "stripe";

pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const CURRENCIES: &[&str] = &[
    "USD", "EUR", "GBP", "JPY", "AUD", "CAD", "CHF", "DKK", "NOK", "NZD", "SEK", "SGD",
];

/// Stripe's limit on an `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// A lookup lists intents from this long before the payment was created (clock skew).
const LOOKUP_SLACK_SECS: i64 = 60;
/// Pages of 100 intents a lookup reads before it gives up (outcome still unknown).
const LOOKUP_MAX_PAGES: usize = 50;

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
    let misconfigured = |detail: String| ProcessorError::Misconfigured {
        processor: NAME.to_owned(),
        detail,
    };
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            misconfigured(format!(
                "could not read secret {secret_id}: {}",
                DisplayErrorContext(e)
            ))
        })?;
    let raw = out.secret_string().unwrap_or_default().trim();
    #[derive(Deserialize)]
    struct Stored {
        secret_key: String,
    }
    let secret = match serde_json::from_str::<Stored>(raw) {
        Ok(stored) => stored.secret_key,
        Err(_) => raw.to_owned(),
    };
    if secret.is_empty() {
        return Err(misconfigured(format!("secret {secret_id} is empty")));
    }
    Ok(secret)
}

/// Registered in [`super::REGISTERED`].
pub fn build(
    context: &ProcessorContext,
) -> BoxFuture<'_, Result<Arc<dyn Processor>, ProcessorError>> {
    Box::pin(async move {
        let config = StripeConfig::from_env(&context.secrets).await?;
        Ok(Arc::new(Stripe::new(config)?) as Arc<dyn Processor>)
    })
}

/// The Stripe processor.
#[derive(Debug, Clone)]
pub struct Stripe {
    config: StripeConfig,
    http: reqwest::Client,
}

impl Stripe {
    pub fn new(config: StripeConfig) -> Result<Self, ProcessorError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| ProcessorError::Misconfigured {
                processor: NAME.to_owned(),
                detail: format!("HTTP client: {e}"),
            })?;
        Ok(Self { config, http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url)
    }

    fn post(&self, path: &str, idempotency_key: Option<&str>) -> reqwest::RequestBuilder {
        let request = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.config.secret);
        match idempotency_key {
            Some(key) => request.header("Idempotency-Key", gateway_key(key)),
            None => request,
        }
    }

    async fn charge_inner(&self, request: &ChargeRequest) -> Result<ChargeOutcome, ProcessorError> {
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
        let (status, body) = match read(sent).await {
            Ok(answer) => answer,
            Err(NoAnswer::NotSent(failure)) => return Ok(ChargeOutcome::failed(None, failure)),
            Err(NoAnswer::Lost(detail)) => return Err(ProcessorError::unknown(NAME, None, detail)),
        };
        intent_outcome(status, &body)
    }

    async fn confirm_inner(&self, reference: &str) -> Result<ChargeOutcome, ProcessorError> {
        let id = intent_id(reference)?;
        let sent = self
            .http
            .get(self.url(&format!("/v1/payment_intents/{id}")))
            .bearer_auth(&self.config.secret)
            .send()
            .await;
        // A read that fails says nothing about the charge: the payment keeps its status.
        let (status, body) = read(sent)
            .await
            .map_err(|e| ProcessorError::unknown(NAME, Some(id.to_owned()), e.detail()))?;
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

    /// Finds the intent of a charge whose answer was lost: by id, or by listing the
    /// intents created since the payment and matching its `metadata[payment_id]`.
    async fn lookup_inner(
        &self,
        query: &ChargeLookup,
    ) -> Result<Option<ChargeOutcome>, ProcessorError> {
        if let Some(reference) = &query.reference {
            return self.confirm_inner(reference).await.map(Some);
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
            let (status, body) = read(sent)
                .await
                .map_err(|e| ProcessorError::unknown(NAME, None, e.detail()))?;
            if !status.is_success() {
                return Err(match error_outcome(status, &body) {
                    Err(e) => e,
                    Ok(_) => ProcessorError::unknown(NAME, None, format!("list answered {status}")),
                });
            }
            let page: IntentList = parse(&body, None)?;
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

    async fn cancel_inner(&self, reference: &str) -> Result<CancelOutcome, ProcessorError> {
        let id = intent_id(reference)?;
        let sent = self
            .post(&format!("/v1/payment_intents/{id}/cancel"), None)
            .send()
            .await;
        let (status, body) = match read(sent).await {
            Ok(answer) => answer,
            Err(NoAnswer::NotSent(failure)) => return Ok(CancelOutcome::Failed { failure }),
            Err(NoAnswer::Lost(detail)) => {
                return Err(ProcessorError::unknown(NAME, Some(id.to_owned()), detail));
            }
        };
        if status.is_success() {
            let intent: Intent = parse(&body, Some(id))?;
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

    async fn refund_inner(&self, request: &RefundRequest) -> Result<RefundOutcome, ProcessorError> {
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
        let (status, body) = match read(sent).await {
            Ok(answer) => answer,
            Err(NoAnswer::NotSent(failure)) => {
                return Ok(RefundOutcome::Failed {
                    reference: None,
                    failure,
                });
            }
            Err(NoAnswer::Lost(detail)) => return Err(ProcessorError::unknown(NAME, None, detail)),
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
        let refund: Refund = parse(&body, None)?;
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
}

impl Processor for Stripe {
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

    fn charge<'a>(
        &'a self,
        request: &'a ChargeRequest,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProcessorError>> {
        Box::pin(self.charge_inner(request))
    }

    fn confirm<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProcessorError>> {
        Box::pin(self.confirm_inner(reference))
    }

    fn cancel<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<CancelOutcome, ProcessorError>> {
        Box::pin(self.cancel_inner(reference))
    }

    fn refund<'a>(
        &'a self,
        request: &'a RefundRequest,
    ) -> BoxFuture<'a, Result<RefundOutcome, ProcessorError>> {
        Box::pin(self.refund_inner(request))
    }

    fn lookup<'a>(
        &'a self,
        query: &'a ChargeLookup,
    ) -> BoxFuture<'a, Result<Option<ChargeOutcome>, ProcessorError>> {
        Box::pin(self.lookup_inner(query))
    }
}

/// Stripe takes keys up to 255 characters; a longer (scoped) key is sent as its SHA-256,
/// which keeps it unique and stable across retries.
fn gateway_key(key: &str) -> String {
    if key.len() <= MAX_IDEMPOTENCY_KEY {
        return key.to_owned();
    }
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A reference goes into a URL path, so only Stripe's id alphabet is accepted.
fn intent_id(reference: &str) -> Result<&str, ProcessorError> {
    let valid = !reference.is_empty()
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(reference)
    } else {
        Err(ProcessorError::UnknownReference(reference.to_owned()))
    }
}

/// Why no answer could be read.
enum NoAnswer {
    /// Nothing reached Stripe (the connection was refused): provably no effect.
    NotSent(Failure),
    /// The request may have reached Stripe: its effect is unknown.
    Lost(String),
}

impl NoAnswer {
    fn detail(self) -> String {
        match self {
            NoAnswer::NotSent(f) => f.message,
            NoAnswer::Lost(detail) => detail,
        }
    }
}

/// The status and body of an answer Stripe gave, or why there is none. A 5xx or 429 is
/// no answer: Stripe may or may not have acted.
async fn read(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<(StatusCode, String), NoAnswer> {
    let lost = |e: reqwest::Error| {
        if e.is_connect() {
            tracing::warn!(processor = NAME, error = %e, "stripe could not be reached");
            return NoAnswer::NotSent(Failure::unavailable(
                "Stripe could not be reached; nothing was charged.",
            ));
        }
        let what = if e.is_timeout() {
            "did not answer in time"
        } else {
            "failed to answer"
        };
        tracing::warn!(processor = NAME, error = %e, "stripe {what}");
        NoAnswer::Lost(format!("Stripe {what}"))
    };
    let response = sent.map_err(lost)?;
    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        tracing::warn!(processor = NAME, %status, "stripe gave no answer");
        return Err(NoAnswer::Lost(format!("Stripe answered {status}")));
    }
    let body = response.text().await.map_err(|e| {
        tracing::warn!(processor = NAME, error = %e, "stripe's answer could not be read");
        NoAnswer::Lost("Stripe's answer could not be read".into())
    })?;
    Ok((status, body))
}

#[derive(Debug, Deserialize)]
struct Intent {
    id: String,
    status: String,
    last_payment_error: Option<StripeError>,
    next_action: Option<IntentNextAction>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct IntentList {
    data: Vec<Intent>,
    #[serde(default)]
    has_more: bool,
}

#[derive(Debug, Deserialize)]
struct IntentNextAction {
    #[serde(rename = "type")]
    kind: String,
    redirect_to_url: Option<RedirectToUrl>,
}

#[derive(Debug, Deserialize)]
struct RedirectToUrl {
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: StripeError,
}

#[derive(Debug, Deserialize)]
struct StripeError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
    payment_intent: Option<IntentRef>,
}

#[derive(Debug, Deserialize)]
struct IntentRef {
    id: String,
}

impl StripeError {
    /// Stripe says `card_declined` and puts the reason in `decline_code`; callers want the
    /// reason (`insufficient_funds`), as the sandbox reports it.
    fn failure(&self) -> Failure {
        let code = match (self.code.as_deref(), self.decline_code.as_deref()) {
            (Some("card_declined") | None, Some(reason)) if reason != "generic_decline" => reason,
            (Some(code), _) => code,
            (None, _) => "card_declined",
        };
        let message = self
            .message
            .clone()
            .unwrap_or_else(|| "The card was declined.".into());
        Failure::new(code, message, code == "processing_error")
    }
}

/// A 2xx body; unreadable, the outcome is unknown (keeping `reference` if known).
fn parse<'de, T: Deserialize<'de>>(
    body: &'de str,
    reference: Option<&str>,
) -> Result<T, ProcessorError> {
    serde_json::from_str(body).map_err(|e| {
        ProcessorError::unknown(
            NAME,
            reference.map(str::to_owned),
            format!("unreadable body: {e}"),
        )
    })
}

/// A PaymentIntent answer (create or retrieve), mapped to how the charge stands.
fn intent_outcome(status: StatusCode, body: &str) -> Result<ChargeOutcome, ProcessorError> {
    if !status.is_success() {
        return error_outcome(status, body)
            .map(|(reference, failure)| ChargeOutcome::failed(reference, failure));
    }
    intent_state(parse(body, None)?)
}

/// How the charge stands by its intent's status.
fn intent_state(intent: Intent) -> Result<ChargeOutcome, ProcessorError> {
    match intent.status.as_str() {
        "succeeded" => Ok(ChargeOutcome::Succeeded {
            reference: intent.id,
        }),
        "requires_action" => {
            let next_action = match intent.next_action {
                Some(IntentNextAction {
                    kind,
                    redirect_to_url: Some(RedirectToUrl { url: Some(url) }),
                }) if kind == "redirect_to_url" => NextAction::Redirect { url },
                _ => NextAction::ThreeDSecure { url: None },
            };
            Ok(ChargeOutcome::RequiresAction {
                reference: intent.id,
                next_action,
            })
        }
        // The attempt failed and the intent waits for another card: for us, failed.
        "requires_payment_method" => {
            let failure = intent.last_payment_error.map_or_else(
                || Failure::new("payment_failed", "The payment failed.", false),
                |e| e.failure(),
            );
            Ok(ChargeOutcome::failed(Some(intent.id), failure))
        }
        "canceled" => Ok(ChargeOutcome::failed(
            Some(intent.id),
            Failure::new("canceled", "The payment was canceled.", false),
        )),
        "processing" => Err(ProcessorError::StillProcessing {
            processor: NAME.to_owned(),
            reference: intent.id,
        }),
        other => Err(ProcessorError::unknown(
            NAME,
            Some(intent.id.clone()),
            format!("payment intent status `{other}`"),
        )),
    }
}

/// A 4xx answer: a decline or a refused request, with the intent's id when Stripe made one.
/// A 409 (a request with the same key still running) or a 4xx that is not Stripe's
/// error shape proves nothing: the outcome is unknown.
fn error_outcome(
    status: StatusCode,
    body: &str,
) -> Result<(Option<String>, Failure), ProcessorError> {
    let error = serde_json::from_str::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    tracing::info!(
        processor = NAME,
        %status,
        kind = error.as_ref().and_then(|e| e.kind.as_deref()),
        code = error.as_ref().and_then(|e| e.code.as_deref()),
        "stripe refused"
    );
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return Err(ProcessorError::Misconfigured {
            processor: NAME.to_owned(),
            detail: format!("Stripe answered {status}: check the secret key"),
        });
    }
    let reference = error
        .as_ref()
        .and_then(|e| e.payment_intent.as_ref())
        .map(|p| p.id.clone());
    if matches!(status, StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS) {
        return Err(ProcessorError::unknown(
            NAME,
            reference,
            format!("Stripe answered {status}"),
        ));
    }
    let Some(error) = error else {
        return Err(ProcessorError::unknown(
            NAME,
            None,
            format!("{status} without a Stripe error body"),
        ));
    };
    let failure = match error.kind.as_deref() {
        Some("card_error") => error.failure(),
        _ => Failure::new(
            error
                .code
                .clone()
                .unwrap_or_else(|| "invalid_request".into()),
            error
                .message
                .clone()
                .unwrap_or_else(|| "Stripe refused the request.".into()),
            false,
        ),
    };
    Ok((reference, failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: u16, body: &str) -> ChargeOutcome {
        intent_outcome(StatusCode::from_u16(status).unwrap(), body).unwrap()
    }

    #[test]
    fn intent_statuses_map_to_outcomes() {
        assert_eq!(
            outcome(200, r#"{"id":"pi_1","status":"succeeded"}"#),
            ChargeOutcome::Succeeded {
                reference: "pi_1".into()
            }
        );
        assert_eq!(
            outcome(
                200,
                r#"{"id":"pi_2","status":"requires_action","next_action":{"type":"redirect_to_url","redirect_to_url":{"url":"https://hooks.stripe.com/3ds","return_url":"x"}}}"#
            )
            .next_action(),
            Some(&NextAction::Redirect {
                url: "https://hooks.stripe.com/3ds".into()
            })
        );
        assert_eq!(
            outcome(
                200,
                r#"{"id":"pi_3","status":"requires_action","next_action":{"type":"use_stripe_sdk","use_stripe_sdk":{}}}"#
            )
            .next_action(),
            Some(&NextAction::ThreeDSecure { url: None })
        );
        let failed = outcome(
            200,
            r#"{"id":"pi_4","status":"requires_payment_method","last_payment_error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds."}}"#,
        );
        assert_eq!(failed.reference(), Some("pi_4"));
        assert_eq!(failed.failure().unwrap().code, "insufficient_funds");
        assert!(matches!(
            intent_outcome(StatusCode::OK, r#"{"id":"pi_5","status":"processing"}"#),
            Err(ProcessorError::StillProcessing { .. })
        ));
        assert!(matches!(
            intent_outcome(StatusCode::OK, "not json"),
            Err(ProcessorError::OutcomeUnknown {
                reference: None,
                ..
            })
        ));
        // An unexpected status keeps the intent's id for the reconciler.
        let unknown = intent_outcome(
            StatusCode::OK,
            r#"{"id":"pi_6","status":"requires_capture"}"#,
        )
        .unwrap_err();
        assert!(unknown.is_uncertain());
        assert_eq!(unknown.reference(), Some("pi_6"));
    }

    #[test]
    fn errors_map_to_failures() {
        let declined = outcome(
            402,
            r#"{"error":{"type":"card_error","code":"card_declined","decline_code":"generic_decline","message":"Your card was declined.","payment_intent":{"id":"pi_9","status":"requires_payment_method"}}}"#,
        );
        assert_eq!(declined.reference(), Some("pi_9"));
        assert_eq!(
            declined.failure(),
            Some(&Failure::new(
                "card_declined",
                "Your card was declined.",
                false
            ))
        );
        let processing = outcome(
            402,
            r#"{"error":{"type":"card_error","code":"processing_error","message":"try again"}}"#,
        );
        assert!(processing.failure().unwrap().retryable);
        let too_small = outcome(
            400,
            r#"{"error":{"type":"invalid_request_error","code":"amount_too_small","message":"Amount must be at least $0.50 usd"}}"#,
        );
        assert_eq!(
            too_small.failure().map(|f| (f.code.as_str(), f.retryable)),
            Some(("amount_too_small", false))
        );
        for status in [StatusCode::TOO_MANY_REQUESTS, StatusCode::CONFLICT] {
            assert!(
                intent_outcome(status, r#"{"error":{"type":"idempotency_error"}}"#)
                    .unwrap_err()
                    .is_uncertain()
            );
        }
        assert!(matches!(
            intent_outcome(
                StatusCode::UNAUTHORIZED,
                r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****"}}"#
            ),
            Err(ProcessorError::Misconfigured { .. })
        ));
    }

    #[test]
    fn long_idempotency_keys_are_hashed_stably() {
        assert_eq!(gateway_key("k1"), "k1");
        let long = "k".repeat(300);
        assert_eq!(gateway_key(&long).len(), 64);
        assert_eq!(gateway_key(&long), gateway_key(&long));
    }

    #[test]
    fn references_cannot_escape_the_path() {
        assert!(intent_id("pi_3MtwBwLkdIwHu7ix28a3tqPa").is_ok());
        assert!(intent_id("../v1/charges").is_err());
        assert!(intent_id("").is_err());
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let config = StripeConfig::new("http://127.0.0.1:1/", "sk_test_secret");
        assert_eq!(config.base_url, "http://127.0.0.1:1");
        assert!(!format!("{config:?}").contains("sk_test_secret"));
        let stripe = Stripe::new(config).unwrap();
        assert!(!format!("{stripe:?}").contains("sk_test_secret"));
    }
}
