//! Processors: the gateways that move the money, behind one trait.
//!
//! A payment picks its processor by method and currency through the
//! [`ProcessorRegistry`]; confirm, cancel and refund later find the same processor again
//! by the name the payment stored. Processors are registered in exactly one place,
//! [`REGISTERED`]: adding one is a new module plus one line there, and choosing which
//! run (and in which order of preference) is configuration (`PAYMENT_PROCESSORS`).
//!
//! A processor answers a charge with a [`ChargeOutcome`]. A decline is an outcome, not an
//! error. **Only an answer that proves nothing was charged may be a failure**: a card
//! error, a refused request, a connection refused before anything was sent
//! (`processor_unavailable`, retryable). Everything else, a timeout after sending, a 5xx,
//! a 429, a body nobody can read, a status nobody expects, is
//! [`ProcessorError::OutcomeUnknown`] (or `StillProcessing`), carrying whatever reference
//! the gateway gave: the payment stays `processing` and the reconciler asks again with
//! [`Processor::lookup`]. The same holds for refunds (they stay `pending`, reserved) and
//! for confirm (the payment keeps its status).

pub mod paypal;
pub mod sandbox;
pub mod stripe;

use std::sync::Arc;

use aloft_shared::config::{self, ConfigError};
use futures::future::BoxFuture;
use serde::Serialize;

use crate::domain::{Currency, MethodKind, Money, PaymentMethod, PaymentStatus};

/// The one list of processors aloft knows, by the name configuration and stored payments
/// use. Adding a processor: write its module and add its line here.
pub const REGISTERED: &[(&str, Factory)] = &[
    (sandbox::CARD_NAME, sandbox::build_card),
    (sandbox::PAYPAL_NAME, sandbox::build_paypal),
    (stripe::NAME, stripe::build),
    (paypal::NAME, paypal::build),
];

/// Builds one processor from its own configuration (read from the environment by the
/// processor's module) and the AWS clients it may need.
pub type Factory =
    for<'a> fn(&'a ProcessorContext) -> BoxFuture<'a, Result<Arc<dyn Processor>, ProcessorError>>;

/// What processors run when nothing is configured: the deterministic test-mode ones.
pub const DEFAULT_PROCESSORS: &str = "sandbox_card,sandbox_paypal";

/// A gateway that can take, confirm, cancel and refund payments.
///
/// Object safe, so the registry can hold any mix of them. Implementations never log or
/// store a card number or CVC; [`ChargeRequest`] is the only place they are reachable.
pub trait Processor: Send + Sync {
    /// Stable name, stored on each payment (`sandbox_card`, `stripe`).
    fn name(&self) -> &str;

    /// The methods this processor takes and, for each, the currencies it settles.
    fn supported_methods(&self) -> Vec<SupportedMethod>;

    fn charge<'a>(
        &'a self,
        request: &'a ChargeRequest,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProcessorError>>;

    /// Completes a charge that answered `RequiresAction`, once the payer has done it
    /// (3-D Secure, PayPal approval). Still waiting → `RequiresAction` again.
    fn confirm<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProcessorError>>;

    /// Abandons a charge that is waiting for the payer.
    fn cancel<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<CancelOutcome, ProcessorError>>;

    /// Sends (or, with the same `idempotency_key`, sends again: gateways answer a repeat
    /// with the first result) a refund.
    fn refund<'a>(
        &'a self,
        request: &'a RefundRequest,
    ) -> BoxFuture<'a, Result<RefundOutcome, ProcessorError>>;

    /// How a charge whose answer was lost stands, found by its reference or, without one,
    /// by what the charge request carried (its gateway key, its payment id). `None`: the
    /// gateway provably has no charge for it (nothing was ever sent, or nothing that
    /// could take money).
    fn lookup<'a>(
        &'a self,
        query: &'a ChargeLookup,
    ) -> BoxFuture<'a, Result<Option<ChargeOutcome>, ProcessorError>>;
}

/// What the reconciler knows of a charge whose outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeLookup {
    pub payment_id: String,
    /// The key the charge was sent with ([`ChargeRequest::idempotency_key`]).
    pub idempotency_key: String,
    pub reference: Option<String>,
    pub amount: Money,
    /// When the payment was created (unix seconds): the charge reached the gateway, if at
    /// all, within the function's timeout of it.
    pub created_at: i64,
}

/// One method a processor takes, with its currencies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupportedMethod {
    pub method: MethodKind,
    pub currencies: Vec<Currency>,
}

impl SupportedMethod {
    pub fn new(method: MethodKind, currencies: &[Currency]) -> Self {
        Self {
            method,
            currencies: currencies.to_vec(),
        }
    }
}

/// One entry of `GET /payment-methods`: a method, the processor that takes it, and the
/// currencies for which that processor is the one chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MethodListing {
    pub method: MethodKind,
    pub processor: String,
    pub currencies: Vec<Currency>,
}

/// One charge, as a processor needs it.
///
/// `Debug` is safe to log: [`PaymentMethod`] redacts the card number and CVC.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    pub payment_id: String,
    /// Passed to the gateway so a retried call cannot charge twice. Gateways scope keys to
    /// the merchant account, not to aloft's API keys, so the caller must pass a key that
    /// is unique across API keys (the payment id, or `{api_key_id}:{Idempotency-Key}`).
    pub idempotency_key: String,
    pub amount: Money,
    pub method: PaymentMethod,
    pub description: Option<String>,
}

/// One refund of (part of) a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub payment_id: String,
    pub refund_id: String,
    /// The processor's reference of the charge being refunded.
    pub charge_reference: String,
    /// As for [`ChargeRequest::idempotency_key`]: unique across API keys.
    pub idempotency_key: String,
    pub amount: Money,
}

/// Why a charge, refund or cancel did not go through, in the words `failure` carries in
/// the API (`{code, message, retryable}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Stable, machine-readable: `card_declined`, `insufficient_funds`,
    /// `processor_unavailable`, …
    pub code: String,
    /// For people; never contains a card number.
    pub message: String,
    /// Whether trying again (with a new Idempotency-Key) may succeed.
    pub retryable: bool,
}

/// The code of a processor that could not be reached: nothing was sent.
pub const PROCESSOR_UNAVAILABLE: &str = "processor_unavailable";

impl Failure {
    pub fn new(code: impl Into<String>, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable,
        }
    }

    /// The gateway could not be reached, so nothing was sent: the payment fails, and
    /// trying again (with a new Idempotency-Key) may work. Never for a request that may
    /// have been sent: that is [`ProcessorError::OutcomeUnknown`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(PROCESSOR_UNAVAILABLE, message, true)
    }
}

/// What the payer must do before a charge can complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum NextAction {
    /// Send the payer to `url` (PayPal approval, a 3-D Secure page).
    #[serde(rename = "redirect")]
    Redirect { url: String },
    /// A 3-D Secure challenge the client completes with the gateway's own SDK.
    #[serde(rename = "3ds")]
    ThreeDSecure {
        #[serde(skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
}

/// How a charge (or its confirmation) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded {
        reference: String,
    },
    Failed {
        /// The gateway's id for the attempt, when it got far enough to have one.
        reference: Option<String>,
        failure: Failure,
    },
    RequiresAction {
        reference: String,
        next_action: NextAction,
    },
}

impl ChargeOutcome {
    pub fn failed(reference: Option<String>, failure: Failure) -> Self {
        Self::Failed { reference, failure }
    }

    /// The payment state this outcome moves a payment to.
    pub fn status(&self) -> PaymentStatus {
        match self {
            Self::Succeeded { .. } => PaymentStatus::Succeeded,
            Self::Failed { .. } => PaymentStatus::Failed,
            Self::RequiresAction { .. } => PaymentStatus::RequiresAction,
        }
    }

    pub fn reference(&self) -> Option<&str> {
        match self {
            Self::Succeeded { reference } | Self::RequiresAction { reference, .. } => {
                Some(reference)
            }
            Self::Failed { reference, .. } => reference.as_deref(),
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Self::Failed { failure, .. } => Some(failure),
            _ => None,
        }
    }

    pub fn next_action(&self) -> Option<&NextAction> {
        match self {
            Self::RequiresAction { next_action, .. } => Some(next_action),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    /// Accepted by the gateway (Stripe's `pending` counts: it settles on its own).
    Succeeded { reference: String },
    Failed {
        reference: Option<String>,
        failure: Failure,
    },
}

impl RefundOutcome {
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Self::Failed { failure, .. } => Some(failure),
            Self::Succeeded { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Canceled,
    Failed { failure: Failure },
}

/// What no payment outcome describes.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("processor `{0}` is configured but not registered (known: {1})")]
    UnknownProcessor(String, String),
    /// The sandbox could not write its ledger, so it did not report the charge as done.
    #[error("sandbox ledger: {0}")]
    Ledger(String),
    /// A confirm, cancel or refund named a charge the processor does not know, or one in
    /// a state that does not allow it.
    #[error("processor does not know a pending charge `{0}`")]
    UnknownReference(String),
    /// The gateway refused our credentials or request shape: an operator must fix it.
    #[error("processor `{processor}` is misconfigured: {detail}")]
    Misconfigured { processor: String, detail: String },
    /// The gateway has not decided yet (Stripe's `processing`); ask again with `confirm`.
    #[error("processor `{processor}` is still processing `{reference}`")]
    StillProcessing {
        processor: String,
        reference: String,
    },
    /// The request may have reached the gateway, but its answer was lost (a timeout
    /// after sending, a 5xx, a 429, an unreadable or unexpected answer): whether money
    /// moved is unknown. Keeps the gateway's reference when one was read.
    #[error("processor `{processor}`: outcome unknown ({detail})")]
    OutcomeUnknown {
        processor: String,
        reference: Option<String>,
        detail: String,
    },
}

impl ProcessorError {
    /// Whether money may have moved anyway: the gateway has not decided yet, or answered
    /// something unreadable. Such a payment or refund must not be reported failed (the
    /// caller would retry and pay twice); it stays open until the gateway is asked again.
    pub fn is_uncertain(&self) -> bool {
        matches!(
            self,
            Self::StillProcessing { .. } | Self::OutcomeUnknown { .. }
        )
    }

    /// The gateway's reference for the charge or refund, when its answer gave one.
    pub fn reference(&self) -> Option<&str> {
        match self {
            Self::StillProcessing { reference, .. } => Some(reference),
            Self::OutcomeUnknown { reference, .. } => reference.as_deref(),
            _ => None,
        }
    }

    pub fn unknown(processor: &str, reference: Option<String>, detail: impl Into<String>) -> Self {
        Self::OutcomeUnknown {
            processor: processor.to_owned(),
            reference,
            detail: detail.into(),
        }
    }
}

/// The method or currency no registered processor takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotSupported {
    #[error("payment method `{}` is not available", .0.as_str())]
    Method(MethodKind),
    #[error("`{}` payments are not available in {currency}; available: {}", .method.as_str(), list(.available))]
    Currency {
        method: MethodKind,
        currency: Currency,
        available: Vec<Currency>,
    },
}

fn list(currencies: &[Currency]) -> String {
    currencies
        .iter()
        .map(|c| c.code())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The AWS clients a processor may need to build itself.
#[derive(Debug, Clone)]
pub struct ProcessorContext {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl ProcessorContext {
    pub fn from_sdk(config: &aloft_shared::aws::SdkConfig) -> Self {
        Self {
            dynamodb: aloft_shared::aws::dynamodb(config),
            secrets: aloft_shared::aws::secrets_manager(config),
        }
    }
}

/// Which processors run, in order of preference: for each method and currency the first
/// one that takes it is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorsConfig {
    pub enabled: Vec<String>,
}

impl ProcessorsConfig {
    pub const VAR: &str = "PAYMENT_PROCESSORS";

    /// `PAYMENT_PROCESSORS`: comma-separated names (default `sandbox_card,sandbox_paypal`),
    /// e.g. `stripe,sandbox_paypal` sends cards to Stripe and PayPal to the sandbox.
    pub fn from_env() -> Result<Self, ConfigError> {
        let raw = config::parsed_or(Self::VAR, DEFAULT_PROCESSORS.to_owned())?;
        Self::parse(&raw)
    }

    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let enabled: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let invalid = |reason: String| ConfigError::Invalid {
            name: Self::VAR.to_owned(),
            reason,
        };
        if enabled.is_empty() {
            return Err(invalid("names no processor".into()));
        }
        if let Some(unknown) = enabled
            .iter()
            .find(|n| !REGISTERED.iter().any(|(name, _)| name == n))
        {
            return Err(invalid(format!(
                "unknown processor `{unknown}` (known: {})",
                registered_names()
            )));
        }
        Ok(Self { enabled })
    }
}

fn registered_names() -> String {
    REGISTERED
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The processors that run, in order of preference.
#[derive(Clone)]
pub struct ProcessorRegistry {
    processors: Vec<Arc<dyn Processor>>,
}

impl std::fmt::Debug for ProcessorRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.processors.iter().map(|p| p.name()))
            .finish()
    }
}

impl ProcessorRegistry {
    /// A registry of already-built processors (tests, or a caller wiring its own).
    pub fn new(processors: Vec<Arc<dyn Processor>>) -> Self {
        Self { processors }
    }

    /// Builds every enabled processor from [`REGISTERED`], once per cold start.
    pub async fn from_config(
        config: &ProcessorsConfig,
        context: &ProcessorContext,
    ) -> Result<Self, ProcessorError> {
        let mut processors = Vec::with_capacity(config.enabled.len());
        for name in &config.enabled {
            let (_, build) = REGISTERED.iter().find(|(n, _)| n == name).ok_or_else(|| {
                ProcessorError::UnknownProcessor(name.clone(), registered_names())
            })?;
            processors.push(build(context).await?);
        }
        Ok(Self::new(processors))
    }

    /// The processor a new payment with this method and currency goes to.
    pub fn select(
        &self,
        method: MethodKind,
        currency: Currency,
    ) -> Result<Arc<dyn Processor>, NotSupported> {
        let mut available = Vec::new();
        for processor in &self.processors {
            for supported in processor.supported_methods() {
                if supported.method != method {
                    continue;
                }
                if supported.currencies.contains(&currency) {
                    return Ok(Arc::clone(processor));
                }
                available.extend(supported.currencies);
            }
        }
        if available.is_empty() {
            return Err(NotSupported::Method(method));
        }
        available.sort();
        available.dedup();
        Err(NotSupported::Currency {
            method,
            currency,
            available,
        })
    }

    /// The processor a stored payment names, for confirm, cancel and refund.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Processor>> {
        self.processors.iter().find(|p| p.name() == name).cloned()
    }

    /// `GET /payment-methods`: each method with the processor chosen for it and the
    /// currencies it is chosen for (a currency an earlier processor already takes is not
    /// listed again under a later one).
    pub fn methods(&self) -> Vec<MethodListing> {
        let mut taken: Vec<(MethodKind, Currency)> = Vec::new();
        let mut listings = Vec::new();
        for processor in &self.processors {
            for supported in processor.supported_methods() {
                let currencies: Vec<Currency> = supported
                    .currencies
                    .into_iter()
                    .filter(|c| !taken.contains(&(supported.method, *c)))
                    .collect();
                if currencies.is_empty() {
                    continue;
                }
                taken.extend(currencies.iter().map(|c| (supported.method, *c)));
                listings.push(MethodListing {
                    method: supported.method,
                    processor: processor.name().to_owned(),
                    currencies,
                });
            }
        }
        listings.sort_by_key(|l| l.method);
        listings
    }
}

/// Currencies by code, for the processors' own constant lists.
pub(crate) fn currencies(codes: &[&str]) -> Vec<Currency> {
    codes
        .iter()
        .filter_map(|c| Currency::parse(c).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::sandbox::Sandbox;

    fn c(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    fn sandbox() -> ProcessorRegistry {
        ProcessorRegistry::new(vec![
            Arc::new(Sandbox::card(None)),
            Arc::new(Sandbox::paypal(None)),
        ])
    }

    #[test]
    fn selects_by_method_and_currency() {
        let r = sandbox();
        assert_eq!(
            r.select(MethodKind::Visa, c("JPY")).unwrap().name(),
            "sandbox_card"
        );
        assert_eq!(
            r.select(MethodKind::PaypalCredit, c("EUR")).unwrap().name(),
            "sandbox_paypal"
        );
        let err = r.select(MethodKind::Paypal, c("JPY")).err().unwrap();
        assert_eq!(
            err.to_string(),
            "`paypal` payments are not available in JPY; available: EUR, GBP, USD"
        );
        let only_cards = ProcessorRegistry::new(vec![Arc::new(Sandbox::card(None))]);
        assert_eq!(
            only_cards.select(MethodKind::Paypal, c("USD")).err(),
            Some(NotSupported::Method(MethodKind::Paypal))
        );
    }

    #[test]
    fn lists_every_method_once_per_chosen_processor() {
        let listed = sandbox().methods();
        let kinds: Vec<_> = listed.iter().map(|l| l.method.as_str()).collect();
        assert_eq!(
            kinds,
            ["visa", "mastercard", "amex", "paypal", "paypal_credit"]
        );
        let json = serde_json::to_value(&listed[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"method": "visa", "processor": "sandbox_card",
                "currencies": ["USD", "EUR", "GBP", "JPY"]})
        );
        // A second card processor behind the first only lists what the first does not take.
        let doubled = ProcessorRegistry::new(vec![
            Arc::new(Sandbox::card(None)),
            Arc::new(Sandbox::card(None)),
        ]);
        assert_eq!(doubled.methods().len(), 3);
    }

    #[test]
    fn configuration_names_only_registered_processors() {
        assert_eq!(
            ProcessorsConfig::parse(" stripe , sandbox_paypal")
                .unwrap()
                .enabled,
            ["stripe", "sandbox_paypal"]
        );
        let err = ProcessorsConfig::parse("sandbox_card,adyen").unwrap_err();
        assert!(
            err.to_string().contains("PAYMENT_PROCESSORS") && err.to_string().contains("adyen"),
            "{err}"
        );
        assert!(ProcessorsConfig::parse(" , ").is_err());
    }

    #[test]
    fn outcomes_map_to_payment_states() {
        let failed = ChargeOutcome::failed(None, Failure::unavailable("connection refused"));
        assert_eq!(failed.status(), PaymentStatus::Failed);
        assert_eq!(
            failed.failure().map(|f| (f.code.as_str(), f.retryable)),
            Some(("processor_unavailable", true))
        );
        let action = NextAction::Redirect {
            url: "https://example.com/approve".into(),
        };
        assert_eq!(
            serde_json::to_value(&action).unwrap(),
            serde_json::json!({"type": "redirect", "url": "https://example.com/approve"})
        );
        assert_eq!(
            serde_json::to_value(NextAction::ThreeDSecure { url: None }).unwrap(),
            serde_json::json!({"type": "3ds"})
        );
    }
}
