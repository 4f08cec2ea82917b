//! PayPal's answers as it sends them (orders, captures, errors), how each maps to a
//! charge outcome, and amounts as PayPal writes them.

use axum::http::StatusCode;
use serde::Deserialize;

use super::{GATEWAY, NAME};
use crate::domain::Money;
use crate::processor::{ChargeOutcome, Failure, NextAction, ProcessorError};

/// Currencies PayPal takes in whole units only (ISO gives HUF and TWD two decimals).
const WHOLE_UNITS_ONLY: &[&str] = &["HUF", "JPY", "TWD"];

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

#[derive(Debug, Deserialize)]
pub(super) struct PayPalError {
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
    pub(super) fn issue(&self) -> String {
        self.details
            .iter()
            .find_map(|d| d.issue.clone())
            .or_else(|| self.name.clone())
            .unwrap_or_else(|| "REQUEST_REFUSED".into())
    }
}

pub(super) fn paypal_error(text: &str) -> Option<PayPalError> {
    serde_json::from_str(text).ok()
}

/// A 4xx: PayPal refused, so nothing happened. Refused credentials are an operator's
/// problem; a 409 (the same request id still running) or an unreadable refusal proves
/// nothing.
pub(super) fn refusal(
    status: StatusCode,
    text: &str,
    reference: Option<&str>,
) -> Result<Failure, ProcessorError> {
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return Err(GATEWAY.misconfigured(format!(
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
pub(super) struct Order {
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
pub(super) struct Capture {
    pub(super) id: String,
    status: String,
}

impl Order {
    pub(super) fn capture(&self) -> Option<&Capture> {
        self.purchase_units
            .iter()
            .filter_map(|u| u.payments.as_ref())
            .flat_map(|p| p.captures.iter())
            .next()
    }
}

pub(super) enum OrderState {
    Outcome(ChargeOutcome),
    /// Approved by the payer, not captured yet.
    Approved(String),
}

/// How the charge stands by its order.
pub(super) fn order_state(order: Order) -> Result<OrderState, ProcessorError> {
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
}
