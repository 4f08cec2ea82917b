//! A delivery of one event to one subscription: its stable id, its status, how it moves
//! through the attempts of the retry schedule, and the requests that list and replay
//! deliveries.

use aloft_shared::FieldError;
use aloft_shared::strict::some;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::attempt::{Attempt, ErrorClass};
use super::retry::RetrySchedule;
use super::{WebhookError, unix_to_rfc3339};

/// Attempts kept per delivery (retries and replays add more); the oldest go first.
pub const MAX_ATTEMPTS_KEPT: usize = 50;

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
    use crate::domain::attempt::tests::attempt;

    #[test]
    fn delivery_ids_are_stable_per_event_and_subscription() {
        assert_eq!(delivery_id("e1", "s1"), delivery_id("e1", "s1"));
        assert_ne!(delivery_id("e1", "s1"), delivery_id("e1", "s2"));
        assert_ne!(delivery_id("e1", "s1"), delivery_id("e2", "s1"));
        assert!(delivery_id("e1", "s1").starts_with("msg_"));
        assert_eq!(delivery_id("e1", "s1").len(), 36);
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
}
