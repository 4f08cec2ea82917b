//! The sandbox's test inputs: which card number or payer email picks which outcome, and
//! the failure each code stands for.

use crate::processor::Failure;

/// The test cards that do not simply succeed.
const CARD_SCENARIOS: &[(&str, Scenario)] = &[
    (
        "4000000000000002",
        Scenario::Fail("card_declined", "The card was declined.", false),
    ),
    (
        "4000000000009995",
        Scenario::Fail(
            "insufficient_funds",
            "The card has insufficient funds.",
            false,
        ),
    ),
    (
        "4000000000000069",
        Scenario::Fail("expired_card", "The card has expired.", false),
    ),
    (
        "4000000000000127",
        Scenario::Fail(
            "incorrect_cvc",
            "The card's security code is incorrect.",
            false,
        ),
    ),
    (
        "4000000000000119",
        Scenario::Fail(
            "processing_error",
            "An error occurred while processing the card; try again.",
            true,
        ),
    ),
    ("4000000000003220", Scenario::RequireAction),
    ("4000000000000259", Scenario::Stall),
];

/// What a test input makes the sandbox do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Succeed,
    /// `(code, message, retryable)`
    Fail(&'static str, &'static str, bool),
    RequireAction,
    /// Succeeds at the gateway, whose answer then never comes in time.
    Stall,
}

/// The outcome a test card number selects.
pub fn card_scenario(digits: &str) -> Scenario {
    CARD_SCENARIOS
        .iter()
        .find(|(number, _)| *number == digits)
        .map_or(Scenario::Succeed, |(_, scenario)| *scenario)
}

/// The outcome a PayPal payer email selects.
pub fn paypal_scenario(payer_email: &str) -> Scenario {
    let email = payer_email.to_ascii_lowercase();
    let local = email.rsplit_once('@').map_or(email.as_str(), |(l, _)| l);
    if local == "approve" || local.contains("+approval") {
        Scenario::RequireAction
    } else if local == "decline" || local.contains("+declined") {
        Scenario::Fail(
            "payer_declined",
            "The PayPal payer declined the payment.",
            false,
        )
    } else if local == "unavailable" || local.contains("+unavailable") {
        Scenario::Fail(
            "processing_error",
            "PayPal could not process the payment; try again.",
            true,
        )
    } else {
        Scenario::Succeed
    }
}
/// The failure a test input's code stands for.
pub(super) fn failure_for(code: &str) -> Failure {
    let paypal = [
        paypal_scenario("decline@x"),
        paypal_scenario("unavailable@x"),
    ];
    CARD_SCENARIOS
        .iter()
        .map(|(_, s)| *s)
        .chain(paypal)
        .find_map(|s| match s {
            Scenario::Fail(c, message, retryable) if c == code => {
                Some(Failure::new(c, message, retryable))
            }
            _ => None,
        })
        .unwrap_or_else(|| match code {
            "canceled" => Failure::new("canceled", "The payment was canceled.", false),
            other => Failure::new(other, "The payment failed.", false),
        })
}
