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

mod answer;
mod http;
pub mod paypal;
mod registry;
pub mod sandbox;
pub mod stripe;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;

pub use self::answer::{
    CancelOutcome, ChargeOutcome, Failure, NextAction, PROCESSOR_UNAVAILABLE, ProcessorError,
    RefundOutcome,
};
pub use self::registry::{MethodListing, NotSupported, ProcessorRegistry, ProcessorsConfig};
use crate::domain::{Currency, MethodKind, Money, PaymentMethod};

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
/// An adapter implements [`Adapter`] with plain `async fn`s and is a `Processor` by the
/// blanket impl below.
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

/// A [`Processor`] written with `async fn`s: each operation as [`Processor`] documents
/// it, stated once; the blanket impl boxes the futures the registry's trait objects need.
pub trait Adapter: Send + Sync {
    fn name(&self) -> &str;

    fn supported_methods(&self) -> Vec<SupportedMethod>;

    fn charge(
        &self,
        request: &ChargeRequest,
    ) -> impl Future<Output = Result<ChargeOutcome, ProcessorError>> + Send;

    fn confirm(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<ChargeOutcome, ProcessorError>> + Send;

    fn cancel(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<CancelOutcome, ProcessorError>> + Send;

    fn refund(
        &self,
        request: &RefundRequest,
    ) -> impl Future<Output = Result<RefundOutcome, ProcessorError>> + Send;

    fn lookup(
        &self,
        query: &ChargeLookup,
    ) -> impl Future<Output = Result<Option<ChargeOutcome>, ProcessorError>> + Send;
}

impl<A: Adapter> Processor for A {
    fn name(&self) -> &str {
        Adapter::name(self)
    }

    fn supported_methods(&self) -> Vec<SupportedMethod> {
        Adapter::supported_methods(self)
    }

    fn charge<'a>(
        &'a self,
        request: &'a ChargeRequest,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProcessorError>> {
        Box::pin(Adapter::charge(self, request))
    }

    fn confirm<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProcessorError>> {
        Box::pin(Adapter::confirm(self, reference))
    }

    fn cancel<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<CancelOutcome, ProcessorError>> {
        Box::pin(Adapter::cancel(self, reference))
    }

    fn refund<'a>(
        &'a self,
        request: &'a RefundRequest,
    ) -> BoxFuture<'a, Result<RefundOutcome, ProcessorError>> {
        Box::pin(Adapter::refund(self, request))
    }

    fn lookup<'a>(
        &'a self,
        query: &'a ChargeLookup,
    ) -> BoxFuture<'a, Result<Option<ChargeOutcome>, ProcessorError>> {
        Box::pin(Adapter::lookup(self, query))
    }
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

/// Currencies by code, for the processors' own constant lists.
pub(crate) fn currencies(codes: &[&str]) -> Vec<Currency> {
    codes
        .iter()
        .filter_map(|c| Currency::parse(c).ok())
        .collect()
}
