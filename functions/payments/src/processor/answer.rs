//! What a processor answers: the outcome of a charge, refund or cancel, and the errors
//! that are no outcome (see [`super`] for which is which).

use aloft_shared::config::ConfigError;
use serde::Serialize;

use crate::domain::PaymentStatus;

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

#[cfg(test)]
mod tests {
    use super::*;

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
