//! The webhook functions' configuration, read once per cold start.

use aloft_shared::config::{self, ConfigError};

use crate::domain::{RetrySchedule, SQS_MAX_DELAY_SECS};
use crate::ssrf::UrlPolicy;

/// Default period of failed attempts after which a subscription is disabled (5 days,
/// as Svix does).
pub const DEFAULT_DISABLE_AFTER_SECS: i64 = 5 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `WEBHOOK_ALLOW_PRIVATE_URLS` (default false): local development and tests only.
    pub policy: UrlPolicy,
    /// `WEBHOOK_RETRY_SCHEDULE`: seconds before each attempt, comma-separated.
    pub schedule: RetrySchedule,
    /// `WEBHOOK_MAX_QUEUE_DELAY_SECONDS` (default and at most 900): retries due later
    /// than this wait in the due index for the sweep instead of a delayed message.
    pub max_queue_delay: u64,
    /// `WEBHOOK_DISABLE_AFTER_SECONDS` (default 5 days).
    pub disable_after_secs: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policy: UrlPolicy::STRICT,
            schedule: RetrySchedule::default(),
            max_queue_delay: SQS_MAX_DELAY_SECS,
            disable_after_secs: DEFAULT_DISABLE_AFTER_SECS,
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let allow_private: bool = config::parsed_or("WEBHOOK_ALLOW_PRIVATE_URLS", false)?;
        if allow_private {
            tracing::warn!(
                "WEBHOOK_ALLOW_PRIVATE_URLS is on: http and private addresses are allowed (local use only)"
            );
        }
        Ok(Self {
            policy: UrlPolicy { allow_private },
            schedule: config::parsed_or("WEBHOOK_RETRY_SCHEDULE", d.schedule)?,
            max_queue_delay: config::parsed_or::<u64>(
                "WEBHOOK_MAX_QUEUE_DELAY_SECONDS",
                d.max_queue_delay,
            )?
            .min(SQS_MAX_DELAY_SECS),
            disable_after_secs: config::parsed_or(
                "WEBHOOK_DISABLE_AFTER_SECONDS",
                d.disable_after_secs,
            )?,
        })
    }
}
