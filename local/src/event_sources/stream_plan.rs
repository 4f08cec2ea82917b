//! How a stream mapping works through one batch of a shard, as Lambda documents it:
//! records are done in order; a function error retries the batch (split in two first
//! when `BisectBatchOnFunctionError` is on; splitting does not count as a retry); a
//! reported item failure retries from the lowest reported record, the ones before it
//! being done; after `MaximumRetryAttempts` or past `MaximumRecordAgeInSeconds` the
//! records are given up on (their positions go to the `OnFailure` destination) and the
//! shard moves on. Pure: the poller in `stream.rs` does the I/O.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;

/// The longest pause between two retries of one batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub bisect: bool,
    pub max_retries: Option<u32>,
}

/// Why records were given up on; the `condition` of Lambda's invocation record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Condition::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// How an invocation with the front range went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Result {
    AllDone,
    /// The first `done` records of the range succeeded; the one after them was the
    /// lowest the function reported as failed.
    FailedFrom(usize),
    /// The function failed (or its report was malformed): nothing is known to be done.
    Error,
}

/// What the poller must do after a step of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every record before this index (of the batch) is done.
    Checkpoint(usize),
    /// These records are given up on, after `invocations` invocations that held them.
    Discard {
        range: Range<usize>,
        condition: Condition,
        invocations: u32,
        function_error: bool,
    },
}

#[derive(Debug)]
pub struct Plan {
    policy: Policy,
    /// What is left to do, in order; the front is invoked next.
    ranges: VecDeque<Range<usize>>,
    /// Failed invocations whose first record is the front range's first record.
    retries: u32,
    /// Invocations that held the front range's first record.
    invocations: u32,
}

impl Plan {
    pub fn new(len: usize, policy: Policy) -> Self {
        let mut ranges = VecDeque::new();
        if len > 0 {
            ranges.push_back(0..len);
        }
        Self {
            policy,
            ranges,
            retries: 0,
            invocations: 0,
        }
    }

    /// The records to invoke the function with next; `None` when the batch is done.
    pub fn next(&self) -> Option<Range<usize>> {
        self.ranges.front().cloned()
    }

    /// How long to wait before the next invocation: nothing for a fresh range, then
    /// exponential backoff per retry, as Lambda backs off a failing shard.
    pub fn delay(&self) -> Duration {
        match self.retries {
            0 => Duration::ZERO,
            n => (Duration::from_millis(100) * 2u32.saturating_pow(n.min(16) - 1)).min(MAX_BACKOFF),
        }
    }

    /// Gives up on the first `expired` records of the front range (they are older than
    /// the mapping's maximum record age).
    pub fn expire(&mut self, expired: usize) -> Vec<Step> {
        let Some(front) = self.ranges.front_mut() else {
            return Vec::new();
        };
        let expired = expired.min(front.len());
        if expired == 0 {
            return Vec::new();
        }
        let gone = front.start..front.start + expired;
        front.start += expired;
        let steps = vec![
            Step::Discard {
                range: gone.clone(),
                condition: Condition::RecordAgeExceeded,
                invocations: self.invocations,
                function_error: false,
            },
            Step::Checkpoint(gone.end),
        ];
        self.advance_front();
        steps
    }

    /// Takes in how the invocation with `next()` went.
    pub fn record(&mut self, result: Result) -> Vec<Step> {
        let Some(front) = self.ranges.front().cloned() else {
            return Vec::new();
        };
        self.invocations += 1;
        match result {
            Result::AllDone => {
                self.ranges.pop_front();
                self.reset();
                vec![Step::Checkpoint(front.end)]
            }
            Result::FailedFrom(done) => {
                let done = done.min(front.len().saturating_sub(1));
                let mut steps = Vec::new();
                if done > 0 {
                    let at = front.start + done;
                    steps.push(Step::Checkpoint(at));
                    if let Some(f) = self.ranges.front_mut() {
                        f.start = at;
                    }
                    self.retries = 0;
                    self.invocations = 1;
                }
                self.retries += 1;
                steps.extend(self.give_up_if_exhausted(false));
                steps
            }
            Result::Error if self.policy.bisect && front.len() > 1 => {
                let middle = front.start + front.len() / 2;
                self.ranges.pop_front();
                self.ranges.push_front(middle..front.end);
                self.ranges.push_front(front.start..middle);
                Vec::new()
            }
            Result::Error => {
                self.retries += 1;
                self.give_up_if_exhausted(true)
            }
        }
    }

    fn give_up_if_exhausted(&mut self, function_error: bool) -> Vec<Step> {
        let exhausted = self
            .policy
            .max_retries
            .is_some_and(|max| self.retries > max);
        if !exhausted {
            return Vec::new();
        }
        let Some(front) = self.ranges.pop_front() else {
            return Vec::new();
        };
        let steps = vec![
            Step::Discard {
                range: front.clone(),
                condition: Condition::RetryAttemptsExhausted,
                invocations: self.invocations,
                function_error,
            },
            Step::Checkpoint(front.end),
        ];
        self.reset();
        steps
    }

    fn advance_front(&mut self) {
        if self.ranges.front().is_some_and(|f| f.is_empty()) {
            self.ranges.pop_front();
            self.reset();
        }
    }

    fn reset(&mut self) {
        self.retries = 0;
        self.invocations = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(bisect: bool, max_retries: Option<u32>) -> Policy {
        Policy {
            bisect,
            max_retries,
        }
    }

    /// Runs a plan over `len` records with `f` deciding each invocation; returns the
    /// ranges invoked and every step.
    fn run(
        len: usize,
        p: Policy,
        mut f: impl FnMut(Range<usize>) -> Result,
    ) -> (Vec<Range<usize>>, Vec<Step>) {
        let mut plan = Plan::new(len, p);
        let (mut invoked, mut steps) = (Vec::new(), Vec::new());
        while let Some(r) = plan.next() {
            assert!(invoked.len() < 1000, "the plan does not end");
            invoked.push(r.clone());
            steps.extend(plan.record(f(r)));
        }
        (invoked, steps)
    }

    #[test]
    fn success_checkpoints_the_whole_batch() {
        let (invoked, steps) = run(3, policy(false, None), |_| Result::AllDone);
        assert_eq!(invoked, vec![0..3]);
        assert_eq!(steps, vec![Step::Checkpoint(3)]);
    }

    #[test]
    fn a_reported_failure_retries_from_it_and_keeps_what_came_before() {
        let mut first = true;
        let (invoked, steps) = run(4, policy(false, Some(3)), |_| {
            if std::mem::replace(&mut first, false) {
                Result::FailedFrom(2)
            } else {
                Result::AllDone
            }
        });
        assert_eq!(invoked, vec![0..4, 2..4]);
        assert_eq!(steps, vec![Step::Checkpoint(2), Step::Checkpoint(4)]);
    }

    #[test]
    fn retries_run_out_and_the_batch_is_discarded() {
        let (invoked, steps) = run(2, policy(false, Some(2)), |_| Result::Error);
        assert_eq!(
            invoked,
            vec![0..2, 0..2, 0..2],
            "the first try and two retries"
        );
        assert_eq!(
            steps,
            vec![
                Step::Discard {
                    range: 0..2,
                    condition: Condition::RetryAttemptsExhausted,
                    invocations: 3,
                    function_error: true
                },
                Step::Checkpoint(2)
            ]
        );
    }

    #[test]
    fn zero_retries_discards_after_the_first_failure() {
        let (invoked, steps) = run(1, policy(false, Some(0)), |_| Result::FailedFrom(0));
        assert_eq!(invoked, vec![0..1]);
        assert!(matches!(
            steps[0],
            Step::Discard {
                invocations: 1,
                function_error: false,
                ..
            }
        ));
    }

    #[test]
    fn bisection_isolates_the_poison_record() {
        // Record 2 of 0..5 always fails; everything else succeeds.
        let (invoked, steps) = run(5, policy(true, Some(1)), |r| {
            if r.contains(&2) {
                Result::Error
            } else {
                Result::AllDone
            }
        });
        assert_eq!(invoked, vec![0..5, 0..2, 2..5, 2..3, 2..3, 3..5]);
        assert_eq!(
            steps,
            vec![
                Step::Checkpoint(2),
                Step::Discard {
                    range: 2..3,
                    condition: Condition::RetryAttemptsExhausted,
                    // 2..5 once, then 2..3 twice (one retry): splitting is no retry.
                    invocations: 3,
                    function_error: true
                },
                Step::Checkpoint(3),
                Step::Checkpoint(5),
            ]
        );
    }

    #[test]
    fn partial_progress_resets_the_retry_count() {
        // Each invocation gets one more record through: never exhausted with 1 retry.
        let (invoked, steps) = run(3, policy(false, Some(1)), |r| {
            if r.len() == 1 {
                Result::AllDone
            } else {
                Result::FailedFrom(1)
            }
        });
        assert_eq!(invoked, vec![0..3, 1..3, 2..3]);
        assert_eq!(
            steps,
            vec![
                Step::Checkpoint(1),
                Step::Checkpoint(2),
                Step::Checkpoint(3)
            ]
        );
    }

    #[test]
    fn old_records_are_discarded_before_invoking() {
        let mut plan = Plan::new(3, policy(false, None));
        let steps = plan.expire(2);
        assert_eq!(
            steps,
            vec![
                Step::Discard {
                    range: 0..2,
                    condition: Condition::RecordAgeExceeded,
                    invocations: 0,
                    function_error: false
                },
                Step::Checkpoint(2)
            ]
        );
        assert_eq!(plan.next(), Some(2..3));
        assert_eq!(plan.expire(5).len(), 2);
        assert_eq!(plan.next(), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut plan = Plan::new(1, policy(false, None));
        assert_eq!(plan.delay(), Duration::ZERO);
        plan.record(Result::Error);
        assert_eq!(plan.delay(), Duration::from_millis(100));
        plan.record(Result::Error);
        assert_eq!(plan.delay(), Duration::from_millis(200));
        for _ in 0..40 {
            plan.record(Result::Error);
        }
        assert_eq!(plan.delay(), MAX_BACKOFF);
    }
}
