//! What a processor's answer does to a payment, and the event it announces. The API and
//! the reconciler settle payments through these same rules.

use aloft_shared::outbox::Envelope;

use crate::domain::{Payment, PaymentFailure, PaymentStatus};
use crate::processor::{ChargeOutcome, Failure, PROCESSOR_UNAVAILABLE, ProcessorError};
use crate::service::PaymentError;
use crate::store::EVENT_SOURCE;

pub const OUTCOME_UNKNOWN: &str = "outcome_unknown";
pub const NEVER_SENT: &str = "never_sent";

pub fn failure(f: Failure) -> PaymentFailure {
    PaymentFailure {
        code: f.code,
        message: f.message,
        retryable: f.retryable,
    }
}

/// A processor that could not give an outcome. When no money can have moved
/// (misconfigured, a ledger that could not record) the payment fails as retryable; when
/// it may have, the outcome is unknown and must not invite a retry with a new key.
/// Details go to the log, not the caller.
pub fn processor_failure(e: &ProcessorError) -> PaymentFailure {
    tracing::error!(error = %e, uncertain = e.is_uncertain(), "processor error");
    if e.is_uncertain() {
        return PaymentFailure {
            code: OUTCOME_UNKNOWN.into(),
            message: "the processor has not confirmed the outcome yet; do not pay again: the payment settles on its own (GET it later)".into(),
            retryable: false,
        };
    }
    PaymentFailure {
        code: "processor_error".into(),
        message: "the payment processor could not take the request and nothing was charged; try again with a new Idempotency-Key".into(),
        retryable: true,
    }
}

/// The payment after a processor's answer to a charge (or a lookup of one).
pub fn apply(mut p: Payment, outcome: Result<ChargeOutcome, ProcessorError>, now: &str) -> Payment {
    p.updated_at = now.to_owned();
    match outcome {
        Ok(o) => {
            p.status = o.status();
            if let Some(r) = o.reference() {
                p.processor_reference = Some(r.to_owned());
            }
            p.next_action = o.next_action().and_then(|a| serde_json::to_value(a).ok());
            p.failure = match o {
                ChargeOutcome::Failed { failure: f, .. } => Some(failure(f)),
                _ => None,
            };
        }
        Err(e) => {
            // Uncertain: the payment stays where it was, keeping any reference the
            // gateway gave, until the gateway is asked again.
            if !e.is_uncertain() {
                p.status = PaymentStatus::Failed;
                p.next_action = None;
            }
            if let Some(reference) = e.reference() {
                p.processor_reference = Some(reference.to_owned());
            }
            p.failure = Some(processor_failure(&e));
        }
    }
    p
}

/// A processor's answer to a request sent again with the same key (a takeover of a dead
/// request, the reconciler). The first sending may have reached the gateway, so "not
/// sent this time" (a connection refused, no credentials) proves nothing: unknown.
pub fn as_repeat<T>(
    outcome: Result<T, ProcessorError>,
    failure_of: impl Fn(&T) -> Option<&Failure>,
    processor: &str,
) -> Result<T, ProcessorError> {
    match outcome {
        Ok(o) if failure_of(&o).is_some_and(|f| f.code == PROCESSOR_UNAVAILABLE) => {
            Err(ProcessorError::unknown(
                processor,
                None,
                "not sent again; the first sending may have arrived",
            ))
        }
        Err(e) if !e.is_uncertain() => Err(ProcessorError::unknown(
            processor,
            e.reference().map(str::to_owned),
            e.to_string(),
        )),
        other => other,
    }
}

/// A payment whose charge the gateway provably never received: failed, nothing taken.
pub fn never_sent(mut p: Payment, now: &str) -> Payment {
    p.status = PaymentStatus::Failed;
    p.updated_at = now.to_owned();
    p.next_action = None;
    p.failure = Some(PaymentFailure {
        code: NEVER_SENT.into(),
        message: "the charge never reached the processor; nothing was charged".into(),
        retryable: true,
    });
    p
}

fn event_type(status: PaymentStatus) -> Option<&'static str> {
    match status {
        PaymentStatus::Succeeded => Some("payment.succeeded"),
        PaymentStatus::Failed => Some("payment.failed"),
        PaymentStatus::RequiresAction => Some("payment.requires_action"),
        PaymentStatus::Canceled => Some("payment.canceled"),
        _ => None,
    }
}

/// The event a payment's new state announces, if any.
pub fn envelope(p: &Payment) -> Result<Option<Envelope>, PaymentError> {
    event_type(p.status)
        .map(|t| Envelope::new(t, EVENT_SOURCE, p).map_err(PaymentError::from))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, MethodKind, MethodSummary};

    fn processing() -> Payment {
        Payment {
            id: "p1".into(),
            user_id: "u1".into(),
            amount: 100,
            currency: Currency::parse("USD").unwrap(),
            method: MethodSummary::Paypal {
                kind: MethodKind::Paypal,
                payer_email: "b@example.com".into(),
            },
            description: None,
            metadata: Default::default(),
            status: PaymentStatus::Processing,
            processor: "stripe".into(),
            processor_reference: None,
            failure: None,
            next_action: None,
            amount_refunded: 0,
            created_at: "t0".into(),
            updated_at: "t0".into(),
        }
    }

    #[test]
    fn an_unknown_outcome_keeps_the_payment_open_with_its_reference() {
        for e in [
            ProcessorError::StillProcessing {
                processor: "stripe".into(),
                reference: "pi_1".into(),
            },
            ProcessorError::unknown("stripe", Some("pi_1".into()), "timed out"),
        ] {
            let p = apply(processing(), Err(e), "t1");
            assert_eq!(p.status, PaymentStatus::Processing);
            assert_eq!(p.processor_reference.as_deref(), Some("pi_1"));
            let f = p.failure.unwrap();
            assert_eq!(f.code, "outcome_unknown");
            assert!(!f.retryable);
            assert!(!f.message.contains("new Idempotency-Key"));
        }
        let p = apply(
            processing(),
            Err(ProcessorError::unknown("stripe", None, "5xx")),
            "t1",
        );
        assert_eq!(
            (p.status, p.processor_reference),
            (PaymentStatus::Processing, None)
        );
    }

    #[test]
    fn a_repeat_not_sent_this_time_proves_nothing() {
        let refused = Ok(ChargeOutcome::failed(None, Failure::unavailable("refused")));
        let repeat = as_repeat(refused, ChargeOutcome::failure, "stripe");
        assert!(repeat.unwrap_err().is_uncertain());
        let config = Err(ProcessorError::Ledger("down".into()));
        assert!(
            as_repeat::<ChargeOutcome>(config, ChargeOutcome::failure, "sandbox_card")
                .unwrap_err()
                .is_uncertain()
        );
        let declined = Ok(ChargeOutcome::failed(
            None,
            Failure::new("card_declined", "no", false),
        ));
        assert!(as_repeat(declined, ChargeOutcome::failure, "stripe").is_ok());
    }

    #[test]
    fn a_processor_that_moved_no_money_fails_the_payment_as_retryable() {
        let p = apply(
            processing(),
            Err(ProcessorError::Ledger("down".into())),
            "t1",
        );
        assert_eq!(p.status, PaymentStatus::Failed);
        assert!(p.failure.unwrap().retryable);
        let p = never_sent(processing(), "t2");
        assert_eq!(p.status, PaymentStatus::Failed);
        assert_eq!(p.failure.unwrap().code, "never_sent");
    }
}
