//! When a failed delivery is tried again: the retry schedule, whether a wait goes through
//! a delayed SQS message or the due-time index, and when the sweep picks it up.

/// A queued attempt that has not been made by this long after it was due is re-queued
/// by the sweep: the safety net for a message SQS lost or a worker crash.
pub const REQUEUE_GRACE_SECS: i64 = 300;
/// SQS's largest `DelaySeconds`; longer waits go through the due-time index.
pub const SQS_MAX_DELAY_SECS: u64 = 900;

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
        #[test]
        fn schedule_parsing_never_panics(s in "[0-9, a-z-]{0,60}") {
            let _ = s.parse::<RetrySchedule>();
        }
    }
}
