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

use std::sync::Arc;
use std::time::{Duration, Instant};

use aloft_shared::config::{self, ConfigError};
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use futures::future::BoxFuture;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    CancelOutcome, ChargeLookup, ChargeOutcome, ChargeRequest, Failure, NextAction, Processor,
    ProcessorContext, ProcessorError, RefundOutcome, RefundRequest, SupportedMethod, currencies,
};
use crate::domain::{MethodKind, Money, PaymentMethod};

pub const NAME: &str = "paypal";
pub const DEFAULT_API_BASE: &str = "https://api-m.paypal.com";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// PayPal's published REST currencies that aloft knows.
const CURRENCIES: &[&str] = &[
    "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "ILS", "JPY",
    "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "SEK", "SGD", "THB", "TWD", "USD",
];
/// Currencies PayPal takes in whole units only (ISO gives HUF and TWD two decimals).
const WHOLE_UNITS_ONLY: &[&str] = &["HUF", "JPY", "TWD"];
/// PayPal's limit on `PayPal-Request-Id`.
const MAX_REQUEST_ID: usize = 108;
/// A token is renewed this long before PayPal says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

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

fn misconfigured(detail: impl Into<String>) -> ProcessorError {
    ProcessorError::Misconfigured {
        processor: NAME.to_owned(),
        detail: detail.into(),
    }
}

async fn load_credentials(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Credentials, ProcessorError> {
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
    serde_json::from_str(out.secret_string().unwrap_or_default()).map_err(|_| {
        misconfigured(format!(
            "secret {secret_id} must be JSON {{\"client_id\": …, \"client_secret\": …}}"
        ))
    })
}

/// Registered in [`super::REGISTERED`].
pub fn build(
    context: &ProcessorContext,
) -> BoxFuture<'_, Result<Arc<dyn Processor>, ProcessorError>> {
    Box::pin(async move {
        let config = PayPalConfig::from_env(&context.secrets).await?;
        Ok(Arc::new(PayPal::new(config)?) as Arc<dyn Processor>)
    })
}

struct Token {
    value: String,
    renew_at: Instant,
}

/// The PayPal processor.
pub struct PayPal {
    config: PayPalConfig,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<Token>>,
}

impl std::fmt::Debug for PayPal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayPal")
            .field("config", &self.config)
            .finish()
    }
}

/// Why no answer could be read.
enum NoAnswer {
    /// No money request reached PayPal (connection refused, no token): no effect.
    NotSent(Failure),
    /// A money request may have reached PayPal: its effect is unknown.
    Lost(String),
    /// PayPal refused the client credentials: nothing was sent, an operator must act.
    Credentials(String),
}

/// What went wrong, turned into an error that keeps `reference`.
fn unknown(reference: Option<&str>) -> impl FnOnce(NoAnswer) -> ProcessorError + '_ {
    move |e| match e {
        NoAnswer::Credentials(detail) => misconfigured(detail),
        NoAnswer::NotSent(f) => {
            ProcessorError::unknown(NAME, reference.map(str::to_owned), f.message)
        }
        NoAnswer::Lost(detail) => {
            ProcessorError::unknown(NAME, reference.map(str::to_owned), detail)
        }
    }
}

impl PayPal {
    pub fn new(config: PayPalConfig) -> Result<Self, ProcessorError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| misconfigured(format!("HTTP client: {e}")))?;
        Ok(Self {
            config,
            http,
            token: tokio::sync::Mutex::new(None),
        })
    }

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
            NoAnswer::NotSent(Failure::unavailable(
                "PayPal could not be reached; nothing was charged.",
            ))
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
            .await
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
    async fn call(
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
                request = request.header("PayPal-Request-Id", request_id_for(id));
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let (status, text) = read(request.send().await).await?;
            if status == StatusCode::UNAUTHORIZED && !refresh {
                refresh = true;
                continue;
            }
            return Ok((status, text));
        }
    }

    async fn charge_inner(&self, request: &ChargeRequest) -> Result<ChargeOutcome, ProcessorError> {
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
            Err(other) => return Err(unknown(None)(other)),
        };
        if !status.is_success() {
            return refusal(status, &text, None).map(|f| ChargeOutcome::failed(None, f));
        }
        let order: Order = parse(&text, None)?;
        match order_state(order)? {
            OrderState::Outcome(outcome) => Ok(outcome),
            OrderState::Approved(id) => Err(ProcessorError::unknown(
                NAME,
                Some(id),
                "order approved at creation",
            )),
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
            .map_err(unknown(Some(id)))?;
        if status == StatusCode::NOT_FOUND {
            return Err(ProcessorError::UnknownReference(id.to_owned()));
        }
        if !status.is_success() {
            return Err(match refusal(status, &text, Some(id)) {
                Err(e) => e,
                Ok(f) => ProcessorError::unknown(NAME, Some(id.to_owned()), f.message),
            });
        }
        parse(&text, Some(id))
    }

    /// Captures an approved order; an order not approved yet still requires action.
    async fn confirm_inner(&self, reference: &str) -> Result<ChargeOutcome, ProcessorError> {
        let id = order_id(reference)?;
        let (status, text) = self
            .call(
                Method::POST,
                &format!("/v2/checkout/orders/{id}/capture"),
                Some(&format!("capture-{id}")),
                Some(&json!({})),
            )
            .await
            .map_err(unknown(Some(id)))?;
        if status.is_success() {
            return match order_state(parse(&text, Some(id))?)? {
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

    async fn refund_inner(&self, request: &RefundRequest) -> Result<RefundOutcome, ProcessorError> {
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
        let order = match self.get_order(order_id(&request.charge_reference)?).await {
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
        let capture_id = order_id(&capture.id)?;
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
            Err(other) => return Err(unknown(None)(other)),
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
        let refund: Refunded = parse(&text, None)?;
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

    async fn lookup_inner(
        &self,
        query: &ChargeLookup,
    ) -> Result<Option<ChargeOutcome>, ProcessorError> {
        let Some(reference) = &query.reference else {
            // No order id was ever read, so nobody could approve or capture it.
            return Ok(None);
        };
        match order_state(self.get_order(order_id(reference)?).await?)? {
            OrderState::Outcome(outcome) => Ok(Some(outcome)),
            // The payer approved: capturing is what confirm would do.
            OrderState::Approved(id) => self.confirm_inner(&id).await.map(Some),
        }
    }
}

impl Processor for PayPal {
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
        Box::pin(async move {
            order_id(reference)?;
            Ok(CancelOutcome::Canceled)
        })
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

/// An amount as PayPal writes it: `"12.50"`, `"500"` (JPY); `None` when the currency
/// takes whole units only at PayPal and the amount is not whole.
pub fn paypal_value(amount: Money) -> Option<String> {
    let exponent = u32::from(amount.currency.exponent());
    let unit = 10_i64.pow(exponent);
    let (whole, fraction) = (amount.minor / unit, amount.minor % unit);
    if WHOLE_UNITS_ONLY.contains(&amount.currency.code()) {
        return (fraction == 0).then(|| whole.to_string());
    }
    if exponent == 0 {
        return Some(whole.to_string());
    }
    Some(format!(
        "{whole}.{fraction:0width$}",
        width = exponent as usize
    ))
}

/// PayPal takes request ids up to 108 characters; a longer one is sent as its SHA-256.
fn request_id_for(key: &str) -> String {
    if key.len() <= MAX_REQUEST_ID {
        return key.to_owned();
    }
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An id goes into a URL path, so only PayPal's id alphabet is accepted.
fn order_id(reference: &str) -> Result<&str, ProcessorError> {
    let valid = !reference.is_empty()
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(reference)
    } else {
        Err(ProcessorError::UnknownReference(reference.to_owned()))
    }
}

/// The status and body of an answer PayPal gave, or why there is none.
async fn read(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<(StatusCode, String), NoAnswer> {
    let response = sent.map_err(|e| {
        if e.is_connect() {
            tracing::warn!(processor = NAME, error = %e, "paypal could not be reached");
            return NoAnswer::NotSent(Failure::unavailable(
                "PayPal could not be reached; nothing was charged.",
            ));
        }
        tracing::warn!(processor = NAME, error = %e, "paypal did not answer");
        NoAnswer::Lost(if e.is_timeout() {
            "PayPal did not answer in time".into()
        } else {
            "PayPal failed to answer".into()
        })
    })?;
    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        tracing::warn!(processor = NAME, %status, "paypal gave no answer");
        return Err(NoAnswer::Lost(format!("PayPal answered {status}")));
    }
    let text = response
        .text()
        .await
        .map_err(|_| NoAnswer::Lost("PayPal's answer could not be read".into()))?;
    Ok((status, text))
}

fn parse<T: serde::de::DeserializeOwned>(
    text: &str,
    reference: Option<&str>,
) -> Result<T, ProcessorError> {
    serde_json::from_str(text).map_err(|e| {
        ProcessorError::unknown(
            NAME,
            reference.map(str::to_owned),
            format!("unreadable body: {e}"),
        )
    })
}

#[derive(Debug, Deserialize)]
struct PayPalError {
    name: Option<String>,
    message: Option<String>,
    #[serde(default)]
    details: Vec<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    issue: Option<String>,
    description: Option<String>,
}

impl PayPalError {
    fn issue(&self) -> String {
        self.details
            .iter()
            .find_map(|d| d.issue.clone())
            .or_else(|| self.name.clone())
            .unwrap_or_else(|| "REQUEST_REFUSED".into())
    }
}

fn paypal_error(text: &str) -> Option<PayPalError> {
    serde_json::from_str(text).ok()
}

/// A 4xx: PayPal refused, so nothing happened. Refused credentials are an operator's
/// problem; a 409 (the same request id still running) or an unreadable refusal proves
/// nothing.
fn refusal(
    status: StatusCode,
    text: &str,
    reference: Option<&str>,
) -> Result<Failure, ProcessorError> {
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return Err(misconfigured(format!(
            "PayPal answered {status}: check the client credentials"
        )));
    }
    let error = paypal_error(text);
    let Some(error) = error.filter(|_| status != StatusCode::CONFLICT) else {
        return Err(ProcessorError::unknown(
            NAME,
            reference.map(str::to_owned),
            format!("PayPal answered {status}"),
        ));
    };
    let issue = error.issue();
    tracing::info!(processor = NAME, %status, issue, "paypal refused");
    let message = error
        .details
        .iter()
        .find_map(|d| d.description.clone())
        .or(error.message.clone())
        .unwrap_or_else(|| "PayPal refused the request.".into());
    Ok(Failure::new(issue.to_ascii_lowercase(), message, false))
}

#[derive(Debug, Deserialize)]
struct Order {
    id: String,
    status: String,
    #[serde(default)]
    links: Vec<Link>,
    #[serde(default)]
    purchase_units: Vec<PurchaseUnit>,
}

#[derive(Debug, Deserialize)]
struct Link {
    href: String,
    rel: String,
}

#[derive(Debug, Deserialize)]
struct PurchaseUnit {
    payments: Option<Payments>,
}

#[derive(Debug, Deserialize)]
struct Payments {
    #[serde(default)]
    captures: Vec<Capture>,
}

#[derive(Debug, Deserialize)]
struct Capture {
    id: String,
    status: String,
}

impl Order {
    fn capture(&self) -> Option<&Capture> {
        self.purchase_units
            .iter()
            .filter_map(|u| u.payments.as_ref())
            .flat_map(|p| p.captures.iter())
            .next()
    }
}

enum OrderState {
    Outcome(ChargeOutcome),
    /// Approved by the payer, not captured yet.
    Approved(String),
}

/// How the charge stands by its order.
fn order_state(order: Order) -> Result<OrderState, ProcessorError> {
    let outcome = match order.status.as_str() {
        "PAYER_ACTION_REQUIRED" | "CREATED" => {
            let link = order
                .links
                .iter()
                .find(|l| l.rel == "payer-action" || l.rel == "approve")
                .map(|l| l.href.clone());
            let Some(url) = link else {
                return Err(ProcessorError::unknown(
                    NAME,
                    Some(order.id),
                    "order without an approval link",
                ));
            };
            ChargeOutcome::RequiresAction {
                reference: order.id,
                next_action: NextAction::Redirect { url },
            }
        }
        "APPROVED" => return Ok(OrderState::Approved(order.id)),
        "COMPLETED" => match order.capture().map(|c| c.status.as_str()) {
            Some("COMPLETED") => ChargeOutcome::Succeeded {
                reference: order.id,
            },
            Some("PENDING") | None => {
                return Err(ProcessorError::StillProcessing {
                    processor: NAME.to_owned(),
                    reference: order.id,
                });
            }
            Some(other) => ChargeOutcome::failed(
                Some(order.id.clone()),
                Failure::new(
                    "capture_declined",
                    format!("PayPal reports the capture {other}"),
                    false,
                ),
            ),
        },
        "VOIDED" => ChargeOutcome::failed(
            Some(order.id),
            Failure::new("canceled", "The PayPal order was voided.", false),
        ),
        other => {
            return Err(ProcessorError::unknown(
                NAME,
                Some(order.id.clone()),
                format!("order status {other}"),
            ));
        }
    };
    Ok(OrderState::Outcome(outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Currency;

    fn money(minor: i64, code: &str) -> Money {
        Money::new(minor, Currency::parse(code).unwrap()).unwrap()
    }

    #[test]
    fn amounts_are_written_in_paypal_units() {
        assert_eq!(paypal_value(money(1250, "USD")).as_deref(), Some("12.50"));
        assert_eq!(paypal_value(money(5, "EUR")).as_deref(), Some("0.05"));
        assert_eq!(paypal_value(money(500, "JPY")).as_deref(), Some("500"));
        assert_eq!(paypal_value(money(1000, "HUF")).as_deref(), Some("10"));
        assert_eq!(paypal_value(money(1050, "HUF")), None);
        assert_eq!(paypal_value(money(100, "TWD")).as_deref(), Some("1"));
    }

    #[test]
    fn the_published_currencies_are_all_known() {
        assert_eq!(currencies(CURRENCIES).len(), CURRENCIES.len());
    }

    #[test]
    fn ids_cannot_escape_the_path_and_long_request_ids_are_hashed() {
        assert!(order_id("5O190127TN364715T").is_ok());
        assert!(order_id("../v1/oauth2").is_err());
        assert_eq!(request_id_for("k"), "k");
        assert_eq!(request_id_for(&"k".repeat(200)).len(), 64);
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let paypal =
            PayPal::new(PayPalConfig::new("http://127.0.0.1:1/", "client", "s3cret")).unwrap();
        assert!(!format!("{paypal:?}").contains("s3cret"));
    }
}
