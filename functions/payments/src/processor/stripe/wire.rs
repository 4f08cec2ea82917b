//! Stripe's answers as it sends them (PaymentIntents, errors), and how each maps to a
//! charge outcome.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde::Deserialize;

use super::{GATEWAY, NAME};
use crate::processor::{ChargeOutcome, Failure, NextAction, ProcessorError};

#[derive(Debug, Deserialize)]
pub(super) struct Intent {
    pub(super) id: String,
    pub(super) status: String,
    last_payment_error: Option<StripeError>,
    next_action: Option<IntentNextAction>,
    #[serde(default)]
    pub(super) metadata: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct IntentList {
    pub(super) data: Vec<Intent>,
    #[serde(default)]
    pub(super) has_more: bool,
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

/// A PaymentIntent answer (create or retrieve), mapped to how the charge stands.
pub(super) fn intent_outcome(
    status: StatusCode,
    body: &str,
) -> Result<ChargeOutcome, ProcessorError> {
    if !status.is_success() {
        return error_outcome(status, body)
            .map(|(reference, failure)| ChargeOutcome::failed(reference, failure));
    }
    intent_state(GATEWAY.parse(body, None)?)
}

/// How the charge stands by its intent's status.
pub(super) fn intent_state(intent: Intent) -> Result<ChargeOutcome, ProcessorError> {
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
pub(super) fn error_outcome(
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
        return Err(
            GATEWAY.misconfigured(format!("Stripe answered {status}: check the secret key"))
        );
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
}
