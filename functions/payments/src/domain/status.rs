//! The payment state machine: one table of allowed transitions. The store makes every
//! transition a conditional write on the current state, so a state never goes backwards.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Processing,
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
    PartiallyRefunded,
    Refunded,
}

use PaymentStatus::*;

/// Every allowed `(from, to)`. Anything else is refused.
const TRANSITIONS: &[(PaymentStatus, PaymentStatus)] = &[
    (Processing, Succeeded),
    (Processing, Failed),
    (Processing, RequiresAction),
    (RequiresAction, Succeeded),
    (RequiresAction, Failed),
    (RequiresAction, Canceled),
    (Succeeded, PartiallyRefunded),
    (Succeeded, Refunded),
    (PartiallyRefunded, PartiallyRefunded),
    (PartiallyRefunded, Refunded),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {} payment cannot become {}", from.as_str(), to.as_str())]
pub struct TransitionError {
    pub from: PaymentStatus,
    pub to: PaymentStatus,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 7] = [
        Processing,
        RequiresAction,
        Succeeded,
        Failed,
        Canceled,
        PartiallyRefunded,
        Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Processing => "processing",
            RequiresAction => "requires_action",
            Succeeded => "succeeded",
            Failed => "failed",
            Canceled => "canceled",
            PartiallyRefunded => "partially_refunded",
            Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn transition(self, to: PaymentStatus) -> Result<PaymentStatus, TransitionError> {
        if TRANSITIONS.contains(&(self, to)) {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }

    /// Whether money was taken and can still be (partly) given back.
    pub fn is_refundable(self) -> bool {
        matches!(self, Succeeded | PartiallyRefunded)
    }

    /// No transition leaves this state.
    pub fn is_final(self) -> bool {
        !TRANSITIONS.iter().any(|(from, _)| *from == self)
    }

    /// The status after refunding so that `refunded` of `amount` is given back in total.
    pub fn after_refund(refunded: i64, amount: i64) -> PaymentStatus {
        if refunded >= amount {
            Refunded
        } else {
            PartiallyRefunded
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_table_and_nothing_else() {
        for from in PaymentStatus::ALL {
            for to in PaymentStatus::ALL {
                let allowed = TRANSITIONS.contains(&(from, to));
                assert_eq!(from.transition(to).is_ok(), allowed, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn states_never_go_backwards() {
        assert!(Succeeded.transition(Processing).is_err());
        assert!(Refunded.transition(Succeeded).is_err());
        assert!(Failed.transition(Succeeded).is_err());
        assert!(Canceled.transition(RequiresAction).is_err());
    }

    #[test]
    fn finals_and_refundables() {
        let finals: Vec<_> = PaymentStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(finals, [Failed, Canceled, Refunded]);
        assert!(Succeeded.is_refundable() && PartiallyRefunded.is_refundable());
        assert!(!Processing.is_refundable() && !Refunded.is_refundable());
        assert_eq!(PaymentStatus::after_refund(100, 100), Refunded);
        assert_eq!(PaymentStatus::after_refund(99, 100), PartiallyRefunded);
    }

    #[test]
    fn names_round_trip() {
        for s in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// A `?status=` value is exactly one of the names: no padding, no other case.
            #[test]
            fn only_the_exact_names_are_statuses(s in "[a-z_]{0,20}|[ ]?(succeeded|Failed|REFUNDED)[ ]?|\\PC{0,20}") {
                match PaymentStatus::parse(&s) {
                    Some(st) => prop_assert_eq!(st.as_str(), s.as_str()),
                    None => prop_assert!(PaymentStatus::ALL.iter().all(|st| st.as_str() != s)),
                }
            }
        }
    }
}
