//! API Gateway's throttling: token buckets that hold up to `ThrottlingBurstLimit`
//! requests and refill at `ThrottlingRateLimit` per second. A route named in
//! `RouteSettings` has a bucket of its own; every other route draws from the stage's
//! `DefaultRouteSettings` bucket. A request that finds its bucket empty is answered 429
//! `{"message":"Too Many Requests"}` before the authorizer or the function runs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// One bucket. Starts full, as a freshly deployed stage does.
#[derive(Debug)]
pub struct TokenBucket {
    burst: f64,
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub fn new(burst: u32, rate: f64) -> Self {
        Self::starting_at(burst, rate, Instant::now())
    }

    fn starting_at(burst: u32, rate: f64, at: Instant) -> Self {
        let burst = f64::from(burst);
        Self {
            burst,
            rate: rate.max(0.0),
            tokens: burst,
            at,
        }
    }

    /// Takes one token at `now` if there is one.
    fn take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The stage's buckets.
#[derive(Debug, Default)]
pub struct Throttles {
    default: Option<Mutex<TokenBucket>>,
    routes: HashMap<String, Mutex<TokenBucket>>,
}

impl Throttles {
    pub fn new(default: Option<TokenBucket>, routes: HashMap<String, TokenBucket>) -> Self {
        Self {
            default: default.map(Mutex::new),
            routes: routes
                .into_iter()
                .map(|(k, b)| (k, Mutex::new(b)))
                .collect(),
        }
    }

    /// The route keys with a bucket of their own (so start-up can check they exist).
    pub fn route_keys(&self) -> impl Iterator<Item = &str> {
        self.routes.keys().map(String::as_str)
    }

    /// Whether a request to `route_key` may go on now.
    pub fn admit(&self, route_key: &str) -> bool {
        let bucket = self.routes.get(route_key).or(self.default.as_ref());
        match bucket {
            None => true,
            Some(b) => b
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take_at(Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_lets_its_burst_through_then_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::starting_at(3, 2.0, t0);
        assert!((0..3).all(|_| b.take_at(t0)));
        assert!(!b.take_at(t0), "burst spent");
        // Half a second at 2/s is one token; never more than the burst.
        assert!(b.take_at(t0 + Duration::from_millis(500)));
        assert!(!b.take_at(t0 + Duration::from_millis(500)));
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| b.take_at(later)).count(), 3);
    }

    #[test]
    fn a_zero_burst_refuses_everything() {
        let t0 = Instant::now();
        let mut b = TokenBucket::starting_at(0, 100.0, t0);
        assert!(!b.take_at(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn a_route_with_its_own_settings_does_not_draw_from_the_stage_bucket() {
        let throttles = Throttles::new(
            Some(TokenBucket::new(1, 0.0)),
            HashMap::from([("GET /health".to_owned(), TokenBucket::new(2, 0.0))]),
        );
        assert!(throttles.admit("GET /users"));
        assert!(
            !throttles.admit("POST /users"),
            "the stage bucket is shared"
        );
        assert!(throttles.admit("GET /health"));
        assert!(throttles.admit("GET /health"));
        assert!(!throttles.admit("GET /health"));
        assert!(
            Throttles::default().admit("GET /anything"),
            "no settings: no limit"
        );
    }
}
