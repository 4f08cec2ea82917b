//! The rules of payments, free of I/O.

pub mod card;
pub mod method;
pub mod money;
pub mod payment;
pub mod status;

pub use card::{Brand, CardError, CardNumber, Cvc, Expiry};
pub use method::{
    CreatePaymentRequest, MAX_USER_ID_CHARS, MethodKind, MethodSummary, NewPayment, PaymentMethod,
};
pub use money::{Currency, Money, MoneyError};
pub use payment::{
    Payment, PaymentFailure, Refund, RefundError, RefundRefused, RefundRequest, RefundStatus,
    refund_amount,
};
pub use status::{PaymentStatus, TransitionError};
