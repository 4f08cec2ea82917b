//! The rules of webhooks, free of I/O: which event types a subscription takes, what a
//! valid subscription and patch are, and how a delivery moves through its attempts on
//! the retry schedule.

use std::fmt;

use aloft_shared::FieldError;
use aloft_shared::cursor::CursorError;
use aloft_shared::dynamo::StoreError;
use aloft_shared::strict::some;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ssrf::{UrlPolicy, WebhookUrl};

pub const MAX_EVENT_TYPES: usize = 50;
pub const MAX_EVENT_TYPE_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// First bytes of a response body kept with an attempt.
pub const RESPONSE_BODY_KEPT: usize = 1024;
/// Attempts kept per delivery (retries and replays add more); the oldest go first.
pub const MAX_ATTEMPTS_KEPT: usize = 50;
/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_SECS: i64 = 24 * 3600;
/// A queued attempt that has not been made by this long after it was due is re-queued
/// by the sweep: the safety net for a message SQS lost or a worker crash.
pub const REQUEUE_GRACE_SECS: i64 = 300;
/// SQS's largest `DelaySeconds`; longer waits go through the due-time index.
pub const SQS_MAX_DELAY_SECS: u64 = 900;

/// Event types sent to every subscription that asks for them by the platform itself.
pub const TEST_EVENT: &str = "webhook.test";
pub const DISABLED_EVENT: &str = "webhook.disabled";
pub const EVENT_SOURCE: &str = "aloft.webhooks";

/// One entry of a subscription's `event_types`: an exact type (`user.created`), a
/// prefix wildcard (`payment.*`, every type starting `payment.`) or `*` (everything).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EventTypeFilter {
    All,
    Prefix(String),
    Exact(String),
}

impl EventTypeFilter {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw;
        if s == "*" {
            return Ok(Self::All);
        }
        if s.is_empty() || s.chars().count() > MAX_EVENT_TYPE_CHARS {
            return Err(format!("must be 1 to {MAX_EVENT_TYPE_CHARS} characters"));
        }
        let (name, wildcard) = match s.strip_suffix(".*") {
            Some(prefix) => (prefix, true),
            None => (s, false),
        };
        let segment_ok = |seg: &str| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !name.split('.').all(segment_ok) {
            return Err(
                "must be `*`, a type such as `user.created`, or a prefix such as `payment.*` \
                 (lowercase letters, digits, `_`, dot-separated)"
                    .into(),
            );
        }
        Ok(if wildcard {
            Self::Prefix(format!("{name}."))
        } else {
            Self::Exact(name.to_owned())
        })
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Prefix(p) => event_type.starts_with(p.as_str()),
            Self::Exact(t) => t == event_type,
        }
    }
}

impl fmt::Display for EventTypeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Prefix(p) => write!(f, "{p}*"),
            Self::Exact(t) => f.write_str(t),
        }
    }
}

impl TryFrom<String> for EventTypeFilter {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<EventTypeFilter> for String {
    fn from(f: EventTypeFilter) -> Self {
        f.to_string()
    }
}

/// `event_types` as sent: 1–50 filters, duplicates dropped, order kept.
pub fn parse_event_types(raw: &[String]) -> Result<Vec<EventTypeFilter>, FieldError> {
    if raw.is_empty() || raw.len() > MAX_EVENT_TYPES {
        return Err(FieldError::new(
            "event_types",
            format!("must list 1 to {MAX_EVENT_TYPES} event types"),
        ));
    }
    let mut out: Vec<EventTypeFilter> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let f = EventTypeFilter::parse(r)
            .map_err(|m| FieldError::new(format!("event_types[{i}]"), m))?;
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(out)
}

/// Counted as sent, surrounding spaces included, as the spec's `maxLength` counts; kept
/// trimmed.
fn parse_description(raw: &str) -> Result<String, FieldError> {
    let d = raw.trim();
    if raw.chars().count() > MAX_DESCRIPTION_CHARS || d.chars().any(char::is_control) {
        return Err(FieldError::new(
            "description",
            format!(
                "must be at most {MAX_DESCRIPTION_CHARS} characters, without control characters"
            ),
        ));
    }
    Ok(d.to_owned())
}

fn parse_url(raw: &str, policy: UrlPolicy) -> Result<WebhookUrl, FieldError> {
    WebhookUrl::parse(raw, policy).map_err(|e| FieldError::new("url", e.to_string()))
}

/// `POST /webhooks` body as sent. A field sent as `null` (or any other wrong type) is a
/// 422 naming it, not "absent"; the spec allows `null` for `description` only in a PATCH.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    #[serde(default, deserialize_with = "some")]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "some")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    pub url: WebhookUrl,
    pub event_types: Vec<EventTypeFilter>,
    pub description: Option<String>,
}

impl NewSubscription {
    pub fn parse(req: &CreateWebhookRequest, policy: UrlPolicy) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let url = match &req.url {
            None => Err(FieldError::new("url", "is required")),
            Some(u) => parse_url(u, policy),
        };
        let event_types = match &req.event_types {
            None => Err(FieldError::new("event_types", "is required")),
            Some(t) => parse_event_types(t),
        };
        let description = req
            .description
            .as_deref()
            .map(parse_description)
            .transpose();
        let url = url.map_err(|e| errors.push(e)).ok();
        let event_types = event_types.map_err(|e| errors.push(e)).ok();
        let description = description.map_err(|e| errors.push(e)).ok();
        match (url, event_types, description) {
            (Some(url), Some(event_types), Some(description)) => Ok(Self {
                url,
                event_types,
                description: description.filter(|d| !d.is_empty()),
            }),
            _ => Err(errors),
        }
    }
}

/// A field of a partial update: absent (leave it), explicitly `null`, or a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PatchField<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for PatchField<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => PatchField::Null,
            Some(v) => PatchField::Value(v),
        })
    }
}

/// `PATCH /webhooks/{id}` body as sent. [`PatchField`] keeps `null` apart from absent:
/// `description: null` clears the description, as the spec documents (`[string, "null"]`);
/// `null` for `url`, `event_types` or `enabled` is refused by [`SubscriptionPatch::parse`]
/// (422 naming the field). Any other wrong type fails here, also a 422 naming the field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    #[serde(default)]
    pub url: PatchField<String>,
    #[serde(default)]
    pub event_types: PatchField<Vec<String>>,
    #[serde(default)]
    pub enabled: PatchField<bool>,
    #[serde(default)]
    pub description: PatchField<String>,
}

/// A validated partial update with at least one field. `description: Some(None)`
/// clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionPatch {
    pub url: Option<WebhookUrl>,
    pub event_types: Option<Vec<EventTypeFilter>>,
    pub enabled: Option<bool>,
    pub description: Option<Option<String>>,
}

impl SubscriptionPatch {
    pub fn parse(req: &UpdateWebhookRequest, policy: UrlPolicy) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let null =
            |name: &str| FieldError::new(name, "cannot be null; omit it to leave it unchanged");
        let mut patch = Self::default();
        match &req.url {
            PatchField::Absent => {}
            PatchField::Null => errors.push(null("url")),
            PatchField::Value(u) => match parse_url(u, policy) {
                Ok(u) => patch.url = Some(u),
                Err(e) => errors.push(e),
            },
        }
        match &req.event_types {
            PatchField::Absent => {}
            PatchField::Null => errors.push(null("event_types")),
            PatchField::Value(t) => match parse_event_types(t) {
                Ok(t) => patch.event_types = Some(t),
                Err(e) => errors.push(e),
            },
        }
        match &req.enabled {
            PatchField::Absent => {}
            PatchField::Null => errors.push(null("enabled")),
            PatchField::Value(b) => patch.enabled = Some(*b),
        }
        match &req.description {
            PatchField::Absent => {}
            PatchField::Null => patch.description = Some(None),
            PatchField::Value(d) => match parse_description(d) {
                Ok(d) => patch.description = Some(Some(d).filter(|d| !d.is_empty())),
                Err(e) => errors.push(e),
            },
        }
        if patch == Self::default() && errors.is_empty() {
            errors.push(FieldError::new(
                "body",
                "must set at least one of url, event_types, enabled, description",
            ));
        }
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(errors)
        }
    }
}

/// A webhook subscription as stored and shown. The signing secret is not here: it is
/// derived from the id and `secret_generation` (see `signing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub url: WebhookUrl,
    pub event_types: Vec<EventTypeFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub enabled: bool,
    /// Why it is disabled, when the platform disabled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Start of the current run of failed attempts (none since the last success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
    pub secret_generation: u32,
    /// The generation replaced by the last rotation, signing until `previous_expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_generation: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_expires_at: Option<String>,
}

impl Subscription {
    pub fn create(id: String, new: NewSubscription, now: &str) -> Self {
        Self {
            id,
            url: new.url,
            event_types: new.event_types,
            description: new.description,
            enabled: true,
            disabled_reason: None,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            failing_since: None,
            secret_generation: 1,
            previous_generation: None,
            previous_expires_at: None,
        }
    }

    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|f| f.matches(event_type))
    }

    /// The secret generations that sign at `now_rfc3339`: the current one, and the
    /// previous one during a rotation's overlap.
    pub fn signing_generations(&self, now_rfc3339: &str) -> Vec<u32> {
        let mut out = vec![self.secret_generation];
        if let (Some(prev), Some(until)) = (self.previous_generation, &self.previous_expires_at) {
            // Fixed-width RFC 3339 strings compare as times.
            if now_rfc3339 < until.as_str() {
                out.push(prev);
            }
        }
        out
    }
}

/// The id of the delivery of event `event_id` to `subscription_id`, and so its
/// `webhook-id`: the same however often the event arrives, so a redelivered event never
/// makes a second delivery and receivers can deduplicate.
pub fn delivery_id(event_id: &str, subscription_id: &str) -> String {
    let digest = Sha256::digest(format!("{event_id}\n{subscription_id}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Every attempt of the schedule failed; kept for retry and replay.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [Self; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| FieldError::new("status", "must be one of pending, delivered, failed"))
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// No response within the timeout.
    Timeout,
    /// DNS, TCP or TLS failed.
    Connect,
    /// A response other than 2xx (redirects included: they are not followed).
    Status,
    /// The URL or what its name resolves to is an address webhooks may not reach.
    SsrfRefused,
    /// The subscription was disabled or deleted before the attempt.
    Disabled,
    /// Anything else the HTTP client reported.
    Request,
}

/// One delivery attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    /// The first KiB of the response body, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorClass>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.http_status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The first KiB of a response body, cut on a character boundary.
pub fn keep_body(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(RESPONSE_BODY_KEPT)];
    let text = String::from_utf8_lossy(cut);
    // A cut multi-byte character becomes U+FFFD; drop it rather than show garbage.
    text.trim_end_matches('\u{FFFD}').to_owned()
}

/// Delays before each attempt, in seconds: the first is usually 0 (immediately).
/// Standard Webhooks / Svix: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<u64>);

impl Default for RetrySchedule {
    fn default() -> Self {
        Self(vec![0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000])
    }
}

impl std::str::FromStr for RetrySchedule {
    type Err = String;
    /// Comma-separated seconds, `0,5,300,…`: 1 to 20 entries, each at most 7 days.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let delays = s
            .split(',')
            .map(|d| {
                d.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("`{d}` is not a whole number of seconds"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() || delays.len() > 20 {
            return Err("must list 1 to 20 delays".into());
        }
        if delays.iter().any(|d| *d > 7 * 86_400) {
            return Err("each delay must be at most 7 days".into());
        }
        Ok(Self(delays))
    }
}

impl RetrySchedule {
    pub fn attempts(&self) -> u32 {
        self.0.len() as u32
    }

    /// The delay before attempt `index` (0-based), `None` past the last attempt.
    pub fn delay_before(&self, index: u32) -> Option<u64> {
        self.0.get(index as usize).copied()
    }
}

/// A delivery of one event to one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Also the `webhook-id` header: see [`delivery_id`].
    pub id: String,
    pub subscription_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub created_at: String,
    pub updated_at: String,
    /// Attempts made in the current run of the schedule (a retry or replay starts a new
    /// run); also the index of the next attempt.
    pub attempt: u32,
    /// When the next attempt is due, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// Every attempt, oldest first (the last [`MAX_ATTEMPTS_KEPT`]).
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// Bumped by every recorded change, so two workers can't both record one attempt.
    pub version: u64,
}

/// What happens after an attempt is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Attempt `attempt` (0-based) is due in `delay_secs`.
    Retry {
        attempt: u32,
        delay_secs: u64,
    },
    /// The schedule is exhausted: the delivery failed and goes to the dead-letter queue.
    Exhausted,
}

/// How a retry reaches the worker: a delayed SQS message (up to 15 min), or the
/// due-time index the sweep reads (longer waits; never a sleeping function).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryVia {
    Queue { delay_secs: u64 },
    DueIndex,
}

impl RetryVia {
    /// `max_queue_delay` is at most [`SQS_MAX_DELAY_SECS`]; a smaller one (tests) sends
    /// more retries through the index, on the same code path.
    pub fn of(delay_secs: u64, max_queue_delay: u64) -> Self {
        if delay_secs <= max_queue_delay.min(SQS_MAX_DELAY_SECS) {
            Self::Queue { delay_secs }
        } else {
            Self::DueIndex
        }
    }
}

impl Delivery {
    /// A new delivery, pending its first attempt.
    pub fn new(event_id: &str, event_type: &str, subscription_id: &str, now: &str) -> Self {
        Self {
            id: delivery_id(event_id, subscription_id),
            subscription_id: subscription_id.to_owned(),
            event_id: event_id.to_owned(),
            event_type: event_type.to_owned(),
            status: DeliveryStatus::Pending,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            attempt: 0,
            next_attempt_at: Some(now.to_owned()),
            attempts: Vec::new(),
            version: 1,
        }
    }

    /// Records `attempt` and moves on along `schedule`.
    pub fn record(
        &mut self,
        attempt: Attempt,
        schedule: &RetrySchedule,
        now: &str,
        now_unix: i64,
    ) -> Next {
        let ok = attempt.succeeded();
        self.attempts.push(attempt);
        if self.attempts.len() > MAX_ATTEMPTS_KEPT {
            let excess = self.attempts.len() - MAX_ATTEMPTS_KEPT;
            self.attempts.drain(..excess);
        }
        self.attempt += 1;
        self.updated_at = now.to_owned();
        self.version += 1;
        if ok {
            self.status = DeliveryStatus::Delivered;
            self.next_attempt_at = None;
            return Next::Delivered;
        }
        match schedule.delay_before(self.attempt) {
            Some(delay_secs) => {
                self.status = DeliveryStatus::Pending;
                self.next_attempt_at = Some(unix_to_rfc3339(now_unix + delay_secs as i64));
                Next::Retry {
                    attempt: self.attempt,
                    delay_secs,
                }
            }
            None => {
                self.status = DeliveryStatus::Failed;
                self.next_attempt_at = None;
                Next::Exhausted
            }
        }
    }

    /// Marks the delivery failed without an HTTP attempt (its subscription is gone or
    /// disabled), recording why.
    pub fn abandon(&mut self, error: ErrorClass, now: &str) {
        self.attempts.push(Attempt {
            at: now.to_owned(),
            http_status: None,
            latency_ms: 0,
            response_body: None,
            error: Some(error),
        });
        if self.attempts.len() > MAX_ATTEMPTS_KEPT {
            self.attempts.remove(0);
        }
        self.status = DeliveryStatus::Failed;
        self.next_attempt_at = None;
        self.updated_at = now.to_owned();
        self.version += 1;
    }

    /// Starts a new run of the schedule (manual retry, replay); history is kept.
    pub fn restart(&mut self, now: &str) -> Result<(), WebhookError> {
        if self.status == DeliveryStatus::Pending {
            return Err(WebhookError::DeliveryInProgress(self.id.clone()));
        }
        self.status = DeliveryStatus::Pending;
        self.attempt = 0;
        self.next_attempt_at = Some(now.to_owned());
        self.updated_at = now.to_owned();
        self.version += 1;
        Ok(())
    }
}

/// When the sweep should (re)queue a pending delivery, in unix milliseconds: at its due
/// time when it waits in the index, or a grace period after it when a queued message
/// should have brought it to the worker already.
pub fn sweep_due_ms(next_attempt_unix: i64, via: RetryVia) -> i64 {
    let at = match via {
        RetryVia::DueIndex => next_attempt_unix,
        RetryVia::Queue { .. } => next_attempt_unix + REQUEUE_GRACE_SECS,
    };
    at * 1000
}

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

/// `GET /webhooks/{id}/deliveries` query as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    pub status: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// `POST /webhooks/{id}/replay` body as sent; `since` sent as `null` is a 422 naming it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default, deserialize_with = "some")]
    pub since: Option<String>,
}

impl ReplayRequest {
    /// `since` as a fixed-width RFC 3339 string (comparable with stored times).
    pub fn parse(&self) -> Result<String, Vec<FieldError>> {
        let Some(raw) = &self.since else {
            return Err(vec![FieldError::new("since", "is required")]);
        };
        aloft_shared::clock::parse_rfc3339(raw)
            .map(aloft_shared::clock::rfc3339)
            .ok_or_else(|| {
                vec![FieldError::new(
                    "since",
                    "must be an RFC 3339 time, e.g. 2026-01-02T03:04:05Z",
                )]
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn filters_match_exactly_by_prefix_or_everything() {
        let f = |s: &str| EventTypeFilter::parse(s).unwrap();
        assert!(f("user.created").matches("user.created"));
        assert!(!f("user.created").matches("user.created_twice"));
        assert!(!f("user.created").matches("user.updated"));
        assert!(f("payment.*").matches("payment.succeeded"));
        assert!(f("payment.*").matches("payment.refund.created"));
        assert!(!f("payment.*").matches("payment"));
        assert!(!f("payment.*").matches("payments.succeeded"));
        assert!(f("*").matches("anything.at_all"));
        assert_eq!(f("payment.*").to_string(), "payment.*");
        for bad in [
            " payment.*",
            "",
            "User.Created",
            "user..created",
            "user.*.x",
            ".x",
            "x.",
            "pay*",
            "*.*",
            "a b",
        ] {
            assert!(EventTypeFilter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_types_are_bounded_deduplicated_and_named_by_index() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_event_types(&v(&["a.b", "a.b", "*"])).unwrap().len(),
            2
        );
        assert_eq!(parse_event_types(&v(&[])).unwrap_err().field, "event_types");
        assert_eq!(
            parse_event_types(&v(&["a.b", "B"])).unwrap_err().field,
            "event_types[1]"
        );
    }

    #[test]
    fn a_create_request_reports_every_bad_field() {
        let req = CreateWebhookRequest {
            url: Some("https://10.0.0.1/".into()),
            event_types: Some(vec![]),
            description: Some("x".repeat(501)),
        };
        let errors = NewSubscription::parse(&req, UrlPolicy::STRICT).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["url", "event_types", "description"]);
        let missing = CreateWebhookRequest {
            url: None,
            event_types: None,
            description: None,
        };
        assert_eq!(
            NewSubscription::parse(&missing, UrlPolicy::STRICT)
                .unwrap_err()
                .len(),
            2
        );
    }

    #[test]
    fn a_patch_needs_a_field_and_refuses_nulls_except_description() {
        let p = |j: &str| {
            SubscriptionPatch::parse(&serde_json::from_str(j).unwrap(), UrlPolicy::STRICT)
        };
        assert_eq!(p("{}").unwrap_err()[0].field, "body");
        assert_eq!(p(r#"{"url": null}"#).unwrap_err()[0].field, "url");
        assert_eq!(
            p(r#"{"description": null}"#).unwrap().description,
            Some(None)
        );
        assert_eq!(p(r#"{"enabled": false}"#).unwrap().enabled, Some(false));
        assert_eq!(
            p(r#"{"url": "http://example.com"}"#).unwrap_err()[0].field,
            "url"
        );
    }

    #[test]
    fn delivery_ids_are_stable_per_event_and_subscription() {
        assert_eq!(delivery_id("e1", "s1"), delivery_id("e1", "s1"));
        assert_ne!(delivery_id("e1", "s1"), delivery_id("e1", "s2"));
        assert_ne!(delivery_id("e1", "s1"), delivery_id("e2", "s1"));
        assert!(delivery_id("e1", "s1").starts_with("msg_"));
        assert_eq!(delivery_id("e1", "s1").len(), 36);
    }

    fn attempt(status: Option<u16>, error: Option<ErrorClass>) -> Attempt {
        Attempt {
            at: "t".into(),
            http_status: status,
            latency_ms: 1,
            response_body: None,
            error,
        }
    }

    #[test]
    fn a_delivery_follows_the_schedule_to_success_or_exhaustion() {
        let schedule: RetrySchedule = "0,5,300".parse().unwrap();
        let mut d = Delivery::new("e", "user.created", "s", "t0");
        assert_eq!(d.status, DeliveryStatus::Pending);
        let next = d.record(
            attempt(Some(500), Some(ErrorClass::Status)),
            &schedule,
            "t1",
            100,
        );
        assert_eq!(
            next,
            Next::Retry {
                attempt: 1,
                delay_secs: 5
            }
        );
        assert_eq!(
            d.next_attempt_at.as_deref(),
            Some(unix_to_rfc3339(105).as_str())
        );
        let next = d.record(
            attempt(None, Some(ErrorClass::Timeout)),
            &schedule,
            "t2",
            200,
        );
        assert_eq!(
            next,
            Next::Retry {
                attempt: 2,
                delay_secs: 300
            }
        );
        assert_eq!(
            d.record(
                attempt(Some(503), Some(ErrorClass::Status)),
                &schedule,
                "t3",
                600
            ),
            Next::Exhausted
        );
        assert_eq!(d.status, DeliveryStatus::Failed);
        assert_eq!(d.attempts.len(), 3);
        assert_eq!(d.version, 4);

        d.restart("t4").unwrap();
        assert!(matches!(
            d.restart("t4"),
            Err(WebhookError::DeliveryInProgress(_))
        ));
        assert_eq!((d.status, d.attempt), (DeliveryStatus::Pending, 0));
        assert_eq!(
            d.record(attempt(Some(204), None), &schedule, "t5", 700),
            Next::Delivered
        );
        assert_eq!(d.status, DeliveryStatus::Delivered);
        assert_eq!(d.attempts.len(), 4);
        assert!(d.next_attempt_at.is_none());
    }

    #[test]
    fn only_2xx_without_error_succeeds() {
        assert!(attempt(Some(200), None).succeeded());
        assert!(attempt(Some(299), None).succeeded());
        assert!(!attempt(Some(301), Some(ErrorClass::Status)).succeeded());
        assert!(!attempt(Some(302), None).succeeded());
        assert!(!attempt(None, Some(ErrorClass::Connect)).succeeded());
    }

    #[test]
    fn attempt_history_is_bounded() {
        let schedule: RetrySchedule = "0".parse().unwrap();
        let mut d = Delivery::new("e", "t", "s", "t0");
        for _ in 0..(MAX_ATTEMPTS_KEPT + 5) {
            d.record(
                attempt(Some(500), Some(ErrorClass::Status)),
                &schedule,
                "t",
                0,
            );
            d.restart("t").unwrap();
        }
        assert_eq!(d.attempts.len(), MAX_ATTEMPTS_KEPT);
    }

    #[test]
    fn schedules_parse_and_long_waits_go_through_the_index() {
        assert_eq!(RetrySchedule::default().attempts(), 8);
        assert_eq!(RetrySchedule::default().delay_before(7), Some(36_000));
        assert_eq!(RetrySchedule::default().delay_before(8), None);
        assert_eq!("0, 1,2".parse::<RetrySchedule>().unwrap().attempts(), 3);
        for bad in ["", "a", "1,,2", "-1", "999999999"] {
            assert!(bad.parse::<RetrySchedule>().is_err(), "{bad}");
        }
        assert_eq!(RetryVia::of(300, 900), RetryVia::Queue { delay_secs: 300 });
        assert_eq!(RetryVia::of(1800, 900), RetryVia::DueIndex);
        assert_eq!(RetryVia::of(901, 5000), RetryVia::DueIndex);
        assert_eq!(RetryVia::of(2, 0), RetryVia::DueIndex);
        assert_eq!(sweep_due_ms(10, RetryVia::DueIndex), 10_000);
        assert_eq!(sweep_due_ms(10, RetryVia::Queue { delay_secs: 0 }), 310_000);
    }

    #[test]
    fn the_previous_secret_signs_only_during_the_overlap() {
        let mut s = Subscription::create(
            "s".into(),
            NewSubscription {
                url: WebhookUrl::parse("https://example.com", UrlPolicy::STRICT).unwrap(),
                event_types: vec![EventTypeFilter::All],
                description: None,
            },
            "2026-01-01T00:00:00.000Z",
        );
        assert_eq!(s.signing_generations("2026-01-01T00:00:00.000Z"), [1]);
        s.secret_generation = 2;
        s.previous_generation = Some(1);
        s.previous_expires_at = Some("2026-01-02T00:00:00.000Z".into());
        assert_eq!(s.signing_generations("2026-01-01T23:59:59.999Z"), [2, 1]);
        assert_eq!(s.signing_generations("2026-01-02T00:00:00.000Z"), [2]);
    }

    #[test]
    fn replay_since_must_be_a_time() {
        let r = |s: Option<&str>| {
            ReplayRequest {
                since: s.map(str::to_owned),
            }
            .parse()
        };
        assert_eq!(
            r(Some("2026-01-02T03:04:05Z")).unwrap(),
            "2026-01-02T03:04:05.000Z"
        );
        assert_eq!(r(Some("yesterday")).unwrap_err()[0].field, "since");
        assert_eq!(r(None).unwrap_err()[0].field, "since");
    }

    #[test]
    fn kept_bodies_are_cut_to_a_kib_on_a_character_boundary() {
        assert_eq!(keep_body(b"ok"), "ok");
        let long = "é".repeat(1000);
        let kept = keep_body(long.as_bytes());
        assert!(kept.len() <= RESPONSE_BODY_KEPT);
        assert!(kept.chars().all(|c| c == 'é'));
    }

    proptest! {
        #[test]
        fn filter_parsing_never_panics_and_round_trips(s in "\\PC{0,120}") {
            if let Ok(f) = EventTypeFilter::parse(&s) {
                prop_assert_eq!(EventTypeFilter::parse(&f.to_string()), Ok(f));
            }
        }

        #[test]
        fn schedule_parsing_never_panics(s in "[0-9, a-z-]{0,60}") {
            let _ = s.parse::<RetrySchedule>();
        }
    }
}

/// Bodies as `ApiJson` reads them (an object, each field of its documented type) and then
/// as the domain validates them: (body, status, first field named). Webhook bodies have no
/// number or nested object fields.
#[cfg(test)]
mod strict_bodies {
    use super::*;
    use aloft_shared::extract::parse_json;
    use aloft_shared::strict::Object;

    fn answer<T: serde::de::DeserializeOwned>(
        body: &str,
        validate: fn(&T) -> Result<(), Vec<FieldError>>,
    ) -> (u16, Option<String>) {
        match parse_json::<Object<T>>(body.as_bytes()) {
            Err(p) => (p.status, p.errors.first().map(|e| e.field.clone())),
            Ok(Object(req)) => match validate(&req) {
                Ok(()) => (200, None),
                Err(errors) => (422, errors.first().map(|e| e.field.clone())),
            },
        }
    }

    fn check<T: serde::de::DeserializeOwned>(
        cases: &[(&str, u16, Option<&str>)],
        validate: fn(&T) -> Result<(), Vec<FieldError>>,
    ) {
        for (body, status, field) in cases {
            let got = answer(body, validate);
            assert_eq!(got, (*status, field.map(str::to_owned)), "{body}");
        }
    }

    #[test]
    fn create_bodies_are_the_documented_shape() {
        check::<CreateWebhookRequest>(
            &[
                (
                    r#"{"url": "https://example.com/h", "event_types": ["user.*"]}"#,
                    200,
                    None,
                ),
                (
                    r#"["https://example.com/h", ["user.*"]]"#,
                    422,
                    Some("body"),
                ),
                (
                    r#"{"url": null, "event_types": ["user.*"]}"#,
                    422,
                    Some("url"),
                ),
                (
                    r#"{"url": "https://example.com/h", "event_types": null}"#,
                    422,
                    Some("event_types"),
                ),
                (
                    r#"{"url": "https://example.com/h", "event_types": "user.*"}"#,
                    422,
                    Some("event_types"),
                ),
                (
                    r#"{"url": "https://example.com/h", "event_types": ["user.*"], "description": null}"#,
                    422,
                    Some("description"),
                ),
                (
                    r#"{"url": "https://example.com/h"}"#,
                    422,
                    Some("event_types"),
                ),
            ],
            |r| NewSubscription::parse(r, UrlPolicy::STRICT).map(drop),
        );
    }

    #[test]
    fn patch_bodies_are_the_documented_shape() {
        check::<UpdateWebhookRequest>(
            &[
                (r#"{"enabled": true}"#, 200, None),
                // Documented: `null` clears the description.
                (r#"{"description": null}"#, 200, None),
                (r#"{}"#, 422, Some("body")),
                (r#"[true]"#, 422, Some("body")),
                (r#"{"enabled": null}"#, 422, Some("enabled")),
                (r#"{"url": null}"#, 422, Some("url")),
                (r#"{"event_types": null}"#, 422, Some("event_types")),
                (r#"{"enabled": "yes"}"#, 422, Some("enabled")),
                (r#"{"enabled": 1.0}"#, 422, Some("enabled")),
            ],
            |r| SubscriptionPatch::parse(r, UrlPolicy::STRICT).map(drop),
        );
    }

    #[test]
    fn replay_bodies_are_the_documented_shape() {
        check::<ReplayRequest>(
            &[
                (r#"{"since": "2026-01-02T03:04:05Z"}"#, 200, None),
                (r#"{}"#, 422, Some("since")),
                (r#"["2026-01-02T03:04:05Z"]"#, 422, Some("body")),
                (r#"{"since": null}"#, 422, Some("since")),
                (r#"{"since": 1767323045}"#, 422, Some("since")),
            ],
            |r| r.parse().map(drop),
        );
    }
}
