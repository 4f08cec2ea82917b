//! A payment and its refunds as aloft keeps them, and the rules of refunding.

use std::collections::BTreeMap;

use aloft_shared::FieldError;
use aloft_shared::strict::some;
use serde::{Deserialize, Serialize};

use super::method::MethodSummary;
use super::money::Currency;
use super::status::PaymentStatus;

/// Why a payment or refund failed: `{code, message, retryable}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailure {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    pub user_id: String,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: Currency,
    pub method: MethodSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub status: PaymentStatus,
    pub processor: String,
    #[serde(default)]
    pub processor_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<PaymentFailure>,
    /// What the payer must do for a `requires_action` payment (redirect, 3-D Secure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_action: Option<serde_json::Value>,
    #[serde(default)]
    pub amount_refunded: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub payment_id: String,
    pub amount: i64,
    pub currency: Currency,
    pub status: RefundStatus,
    #[serde(default)]
    pub processor_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<PaymentFailure>,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /payments/{id}/refunds` body as sent; `{}` (or no `amount`) refunds the rest.
/// `amount: null` is a wrong type (422 naming it), not "the rest": the spec does not
/// make it nullable.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    #[serde(default, deserialize_with = "some")]
    pub amount: Option<i64>,
}

/// Why a refund cannot be taken from a payment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundRefused {
    #[error("a {} payment cannot be refunded; only succeeded and partially refunded ones can", .0.as_str())]
    NotRefundable(PaymentStatus),
    #[error("{requested} exceeds the {remaining} minor units left to refund")]
    ExceedsRemaining { requested: i64, remaining: i64 },
    #[error("nothing is left to refund")]
    NothingLeft,
}

/// The amount a refund request takes, given what is left of the payment.
pub fn refund_amount(
    req: &RefundRequest,
    status: PaymentStatus,
    remaining: i64,
) -> Result<i64, RefundError> {
    if let Some(a) = req.amount
        && a <= 0
    {
        return Err(RefundError::Invalid(vec![FieldError::new(
            "amount",
            "must be a whole number of minor units greater than 0",
        )]));
    }
    if !status.is_refundable() {
        return Err(RefundError::Refused(RefundRefused::NotRefundable(status)));
    }
    if remaining <= 0 {
        return Err(RefundError::Refused(RefundRefused::NothingLeft));
    }
    let requested = req.amount.unwrap_or(remaining);
    if requested > remaining {
        return Err(RefundError::Refused(RefundRefused::ExceedsRemaining {
            requested,
            remaining,
        }));
    }
    Ok(requested)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundError {
    Invalid(Vec<FieldError>),
    Refused(RefundRefused),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(a: Option<i64>, status: PaymentStatus, remaining: i64) -> Result<i64, RefundError> {
        refund_amount(&RefundRequest { amount: a }, status, remaining)
    }

    #[test]
    fn a_refund_defaults_to_the_rest_and_never_exceeds_it() {
        assert_eq!(amount(None, PaymentStatus::Succeeded, 1000), Ok(1000));
        assert_eq!(
            amount(Some(300), PaymentStatus::PartiallyRefunded, 700),
            Ok(300)
        );
        assert_eq!(
            amount(Some(701), PaymentStatus::PartiallyRefunded, 700),
            Err(RefundError::Refused(RefundRefused::ExceedsRemaining {
                requested: 701,
                remaining: 700
            }))
        );
        assert_eq!(
            amount(None, PaymentStatus::Refunded, 0),
            Err(RefundError::Refused(RefundRefused::NotRefundable(
                PaymentStatus::Refunded
            )))
        );
    }

    #[test]
    fn only_settled_payments_are_refundable_and_amounts_are_positive() {
        for s in [
            PaymentStatus::Processing,
            PaymentStatus::Failed,
            PaymentStatus::RequiresAction,
            PaymentStatus::Canceled,
        ] {
            assert!(matches!(
                amount(None, s, 100),
                Err(RefundError::Refused(RefundRefused::NotRefundable(_)))
            ));
        }
        assert!(matches!(
            amount(Some(0), PaymentStatus::Succeeded, 100),
            Err(RefundError::Invalid(_))
        ));
        assert!(matches!(
            amount(Some(-5), PaymentStatus::Succeeded, 100),
            Err(RefundError::Invalid(_))
        ));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever is asked, a refund takes 1 to what is left, or says why not.
            #[test]
            fn a_refund_takes_at_most_what_is_left(
                a in proptest::option::of(prop_oneof![any::<i64>(), -2i64..2_000]),
                status in proptest::sample::select(PaymentStatus::ALL.to_vec()),
                remaining in prop_oneof![any::<i64>(), -1i64..2_000],
            ) {
                match refund_amount(&RefundRequest { amount: a }, status, remaining) {
                    Ok(took) => {
                        prop_assert!(status.is_refundable());
                        prop_assert!(took >= 1 && took <= remaining);
                        prop_assert_eq!(took, a.unwrap_or(remaining));
                    }
                    Err(RefundError::Invalid(e)) => {
                        prop_assert!(a.is_some_and(|a| a <= 0));
                        prop_assert_eq!(&e[0].field, "amount");
                    }
                    Err(RefundError::Refused(RefundRefused::NotRefundable(s))) => {
                        prop_assert!(!s.is_refundable());
                    }
                    Err(RefundError::Refused(RefundRefused::NothingLeft)) => prop_assert!(remaining <= 0),
                    Err(RefundError::Refused(RefundRefused::ExceedsRemaining { requested, remaining: r })) => {
                        prop_assert_eq!(Some(requested), a);
                        prop_assert!(requested > r);
                    }
                }
            }
        }
    }
}

/// Refund bodies as `ApiJson` reads them and then as [`refund_amount`] takes them from a
/// payment with 500 left: (body, status, first field named).
#[cfg(test)]
mod strict_bodies {
    use super::*;
    use aloft_shared::extract::parse_json;
    use aloft_shared::strict::Object;

    fn answer(body: &str) -> (u16, Option<String>) {
        match parse_json::<Object<RefundRequest>>(body.as_bytes()) {
            Err(p) => (p.status, p.errors.first().map(|e| e.field.clone())),
            Ok(Object(req)) => match refund_amount(&req, PaymentStatus::Succeeded, 500) {
                Ok(_) => (200, None),
                Err(RefundError::Invalid(errors)) => (422, errors.first().map(|e| e.field.clone())),
                Err(RefundError::Refused(_)) => (422, Some("amount".into())),
            },
        }
    }

    #[test]
    fn refund_bodies_are_the_documented_shape() {
        let cases: &[(&str, u16, Option<&str>)] = &[
            (r#"{}"#, 200, None),
            (r#"{"amount": 200}"#, 200, None),
            // A whole number written as a float is that integer.
            (r#"{"amount": 200.0}"#, 200, None),
            (r#"[200]"#, 422, Some("body")),
            (r#"null"#, 422, Some("body")),
            (r#"{"amount": null}"#, 422, Some("amount")),
            (r#"{"amount": 2.5}"#, 422, Some("amount")),
            (r#"{"amount": "200"}"#, 422, Some("amount")),
            (r#"{"amount": 0}"#, 422, Some("amount")),
            (r#"{"amount": 501}"#, 422, Some("amount")),
            (r#"{"reason": "x"}"#, 400, Some("reason")),
        ];
        for (body, status, field) in cases {
            assert_eq!(answer(body), (*status, field.map(str::to_owned)), "{body}");
        }
    }
}
