//! The rules of a key's own rate limit, free of I/O: what a valid limit is, and the
//! token bucket the authorizer keeps for it.
//!
//! The bucket is kept as GCRA (the generic cell rate algorithm), which is a token bucket
//! stored as one number: the *theoretical arrival time* (TAT) of the next request. A
//! bucket of `burst` tokens refilled at `per_second` lets a request in at `now` when
//! `TAT - now <= (burst - 1) * interval`, and moves TAT to `max(TAT, now) + interval`.
//! One number means one conditional write per request (`SET tat = :new IF tat = :seen`).

use aloft_shared::FieldError;
use aloft_shared::strict::some;
use serde::{Deserialize, Serialize};

pub const MAX_PER_SECOND: f64 = 10_000.0;
pub const MAX_BURST: u32 = 10_000;
/// Below one request a day a "limit" is a typo.
pub const MIN_PER_SECOND: f64 = 1.0 / 86_400.0;

/// `rate_limit` in `POST /keys`, as sent (read only from an object: see
/// `CreateKeyRequest`). Both fields are required by [`RateLimit::parse`]; `null` is a
/// wrong type (422 naming the field).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRequest {
    #[serde(default, deserialize_with = "some")]
    pub per_second: Option<f64>,
    #[serde(default, deserialize_with = "some")]
    pub burst: Option<u64>,
}

/// A valid limit: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimit {
    pub fn parse(req: &RateLimitRequest) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let per_second = match req.per_second {
            None => {
                errors.push(FieldError::new("rate_limit.per_second", "is required"));
                None
            }
            Some(r) if !r.is_finite() || !(MIN_PER_SECOND..=MAX_PER_SECOND).contains(&r) => {
                errors.push(FieldError::new(
                    "rate_limit.per_second",
                    format!(
                        "must be a number of requests per second from 1/86400 (one a day) to {MAX_PER_SECOND}"
                    ),
                ));
                None
            }
            Some(r) => Some(r),
        };
        let burst = match req.burst {
            None => {
                errors.push(FieldError::new("rate_limit.burst", "is required"));
                None
            }
            Some(b) => match u32::try_from(b) {
                Ok(b) if (1..=MAX_BURST).contains(&b) => Some(b),
                _ => {
                    errors.push(FieldError::new(
                        "rate_limit.burst",
                        format!("must be a whole number of requests from 1 to {MAX_BURST}"),
                    ));
                    None
                }
            },
        };
        match (per_second, burst) {
            (Some(per_second), Some(burst)) => Ok(Self { per_second, burst }),
            _ => Err(errors),
        }
    }

    /// Microseconds between two requests at the steady rate.
    fn interval_us(&self) -> i64 {
        (1_000_000.0 / self.per_second).ceil() as i64
    }

    /// The bucket's next TAT if a request at `now_us` is let in, `None` if it is over the
    /// limit. `tat_us` is the stored TAT (`None` for a bucket never used: full).
    pub fn admit(&self, tat_us: Option<i64>, now_us: i64) -> Option<i64> {
        let interval = self.interval_us();
        let tolerance = interval.saturating_mul(i64::from(self.burst) - 1);
        let tat = tat_us.unwrap_or(now_us).max(now_us);
        (tat - now_us <= tolerance).then(|| tat.saturating_add(interval))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(per_second: Option<f64>, burst: Option<u64>) -> Result<RateLimit, Vec<String>> {
        RateLimit::parse(&RateLimitRequest { per_second, burst })
            .map_err(|e| e.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn limits_are_validated_field_by_field() {
        assert_eq!(
            parse(Some(0.5), Some(3)),
            Ok(RateLimit {
                per_second: 0.5,
                burst: 3
            })
        );
        let both = ["rate_limit.per_second", "rate_limit.burst"];
        assert_eq!(parse(None, None), Err(both.map(String::from).to_vec()));
        assert_eq!(
            parse(Some(0.0), Some(0)),
            Err(both.map(String::from).to_vec())
        );
        for bad in [-1.0, f64::NAN, f64::INFINITY, MAX_PER_SECOND + 1.0] {
            assert_eq!(
                parse(Some(bad), Some(1)),
                Err(vec!["rate_limit.per_second".to_owned()])
            );
        }
        for bad in [u64::from(MAX_BURST) + 1, u64::MAX] {
            assert_eq!(
                parse(Some(1.0), Some(bad)),
                Err(vec!["rate_limit.burst".to_owned()])
            );
        }
    }

    /// Runs requests at the given times (µs) through one bucket; which were let in.
    fn run(limit: RateLimit, times: &[i64]) -> Vec<bool> {
        let mut tat = None;
        times
            .iter()
            .map(|&now| match limit.admit(tat, now) {
                Some(next) => {
                    tat = Some(next);
                    true
                }
                None => false,
            })
            .collect()
    }

    #[test]
    fn a_full_bucket_lets_the_burst_in_at_once_then_refills_at_the_rate() {
        let limit = RateLimit {
            per_second: 2.0,
            burst: 3,
        };
        // Five at t=0: three pass. Half a second later one token is back.
        assert_eq!(
            run(limit, &[0, 0, 0, 0, 0, 500_000, 500_000]),
            [true, true, true, false, false, true, false]
        );
    }

    #[test]
    fn the_steady_rate_always_passes_and_idle_time_refills_no_more_than_the_burst() {
        let limit = RateLimit {
            per_second: 10.0,
            burst: 2,
        };
        let steady: Vec<i64> = (0..50).map(|i| i * 100_000).collect();
        assert!(run(limit, &steady).into_iter().all(|ok| ok));
        // After an hour idle: still only two at once.
        let hour = 3_600_000_000;
        assert_eq!(
            run(limit, &[0, hour, hour, hour]),
            [true, true, true, false]
        );
    }

    #[test]
    fn a_burst_of_one_is_a_plain_rate() {
        let limit = RateLimit {
            per_second: 1.0,
            burst: 1,
        };
        assert_eq!(run(limit, &[0, 999_999, 1_000_000]), [true, false, true]);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Any number JSON can carry, with the boundaries and their neighbours.
        fn per_second() -> impl Strategy<Value = f64> {
            prop_oneof![
                any::<f64>(),
                -1.0f64..20_000.0,
                0.0f64..0.001,
                proptest::sample::select(vec![
                    MIN_PER_SECOND,
                    MIN_PER_SECOND.next_down(),
                    MAX_PER_SECOND,
                    MAX_PER_SECOND.next_up(),
                    0.0,
                    -0.0,
                ]),
            ]
        }

        fn burst() -> impl Strategy<Value = u64> {
            prop_oneof![any::<u64>(), 0u64..=u64::from(MAX_BURST) + 2]
        }

        proptest! {
            /// A limit is accepted exactly when both fields are in their documented range,
            /// and every field out of range is named.
            #[test]
            fn a_limit_is_accepted_exactly_within_its_ranges(
                r in proptest::option::of(per_second()),
                b in proptest::option::of(burst()),
            ) {
                let r_ok = r.is_some_and(|r| (MIN_PER_SECOND..=MAX_PER_SECOND).contains(&r));
                let b_ok = b.is_some_and(|b| (1..=u64::from(MAX_BURST)).contains(&b));
                match RateLimit::parse(&RateLimitRequest { per_second: r, burst: b }) {
                    Ok(limit) => {
                        prop_assert!(r_ok && b_ok);
                        prop_assert_eq!(Some(limit.per_second), r);
                        prop_assert_eq!(Some(u64::from(limit.burst)), b);
                        // A stored limit (a DynamoDB item) reads back as itself.
                        let item: serde_dynamo::Item = serde_dynamo::to_item(limit).unwrap();
                        prop_assert_eq!(serde_dynamo::from_item::<_, RateLimit>(item).unwrap(), limit);
                    }
                    Err(errors) => {
                        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                        let mut expected = Vec::new();
                        if !r_ok { expected.push("rate_limit.per_second"); }
                        if !b_ok { expected.push("rate_limit.burst"); }
                        prop_assert_eq!(fields, expected);
                    }
                }
            }

            /// Whatever a valid limit and a clock (epoch microseconds, stored TATs from
            /// this bucket) say, a decision never overflows, and a full bucket always lets
            /// the first request in.
            #[test]
            fn admitting_never_panics(
                r in MIN_PER_SECOND..=MAX_PER_SECOND,
                b in 1..=MAX_BURST,
                tat in proptest::option::of(0i64..i64::MAX / 2),
                now in 0i64..i64::MAX / 2,
            ) {
                let limit = RateLimit { per_second: r, burst: b };
                if let Some(next) = limit.admit(tat, now) {
                    prop_assert!(next > now);
                }
                prop_assert!(limit.admit(None, now).is_some());
            }
        }
    }
}
