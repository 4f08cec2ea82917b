//! The rules of webhooks, free of I/O: which event types a subscription takes, what a
//! valid subscription and patch are, and how a delivery moves through its attempts on
//! the retry schedule.

mod attempt;
mod delivery;
mod event_types;
mod patch;
mod retry;
mod subscription;

#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod strict_bodies;

pub use attempt::{Attempt, ErrorClass, RESPONSE_BODY_KEPT, keep_body};
pub use delivery::{
    DeliveriesQuery, Delivery, DeliveryStatus, MAX_ATTEMPTS_KEPT, Next, ReplayRequest, delivery_id,
};
pub use event_types::{EventTypeFilter, MAX_EVENT_TYPE_CHARS, MAX_EVENT_TYPES, parse_event_types};
pub use patch::{PatchField, SubscriptionPatch, UpdateWebhookRequest};
pub use retry::{REQUEUE_GRACE_SECS, RetrySchedule, RetryVia, SQS_MAX_DELAY_SECS, sweep_due_ms};
pub use subscription::{
    CreateWebhookRequest, MAX_DESCRIPTION_CHARS, NewSubscription, ROTATION_OVERLAP_SECS,
    Subscription,
};

use aloft_shared::FieldError;
use aloft_shared::cursor::CursorError;
use aloft_shared::dynamo::StoreError;

/// Event types sent to every subscription that asks for them by the platform itself.
pub const TEST_EVENT: &str = "webhook.test";
pub const DISABLED_EVENT: &str = "webhook.disabled";
pub const EVENT_SOURCE: &str = "aloft.webhooks";

pub fn unix_to_rfc3339(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    aloft_shared::clock::rfc3339(t)
}

/// Every way a webhook operation can fail, mapped to problem+json in `api`.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("invalid request fields")]
    Invalid(Vec<FieldError>),
    #[error("no webhook with id {0}")]
    NotFound(String),
    #[error("no delivery {0} for this webhook")]
    DeliveryNotFound(String),
    #[error("delivery {0} is still pending; wait for its attempt or for it to fail")]
    DeliveryInProgress(String),
    #[error("webhook {0} is disabled; enable it with PATCH first")]
    Disabled(String),
    #[error(transparent)]
    InvalidCursor(#[from] CursorError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<aloft_shared::outbox::TransactError> for WebhookError {
    fn from(e: aloft_shared::outbox::TransactError) -> Self {
        Self::Store(e.into())
    }
}
