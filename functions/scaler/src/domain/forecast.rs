//! Forecasting a metric a few periods ahead from its recent history: Holt's linear trend
//! method (double exponential smoothing), which follows a ramp without lagging behind it
//! the way a moving average does, and smooths noise rather than chasing it.

use serde::Serialize;

/// Smoothing of the level: how much the newest value counts.
pub const ALPHA: f64 = 0.5;
/// Smoothing of the trend.
pub const BETA: f64 = 0.3;
/// Fewer points than this give no forecast: two fix a line, the third checks it.
pub const MIN_POINTS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HoltForecast {
    pub level: f64,
    pub trend: f64,
}

impl HoltForecast {
    /// Fits `series` (oldest first, one value per period); `None` when it is too short.
    pub fn fit(series: &[f64]) -> Option<Self> {
        Self::fit_with(series, ALPHA, BETA)
    }

    pub fn fit_with(series: &[f64], alpha: f64, beta: f64) -> Option<Self> {
        if series.len() < MIN_POINTS || series.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut level = series[0];
        let mut trend = series[1] - series[0];
        for &y in &series[1..] {
            let previous = level;
            level = alpha * y + (1.0 - alpha) * (level + trend);
            trend = beta * (level - previous) + (1.0 - beta) * trend;
        }
        Some(Self { level, trend })
    }

    /// The value `periods` periods after the last one, never below zero (no metric here
    /// goes negative).
    pub fn at(&self, periods: u32) -> f64 {
        (self.level + f64::from(periods) * self.trend).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic noise source (xorshift), so the test needs no rand and never flakes.
    fn noise(n: usize, amplitude: f64) -> Vec<f64> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x % 2001) as f64 / 1000.0 - 1.0) * amplitude
            })
            .collect()
    }

    #[test]
    fn a_linear_ramp_is_extrapolated() {
        // 10, 15, 20, ... 55: the next three periods are 60, 65, 70.
        let ramp: Vec<f64> = (0..10).map(|t| 10.0 + 5.0 * f64::from(t)).collect();
        let f = HoltForecast::fit(&ramp).unwrap();
        for (h, expected) in [(1, 60.0), (3, 70.0)] {
            assert!((f.at(h) - expected).abs() < 0.5, "h={h}: {}", f.at(h));
        }
    }

    #[test]
    fn a_ramp_with_noise_is_followed_not_chased() {
        let n = 15;
        let noisy: Vec<f64> = (0..n)
            .zip(noise(n, 3.0))
            .map(|(t, e)| 20.0 + 4.0 * t as f64 + e)
            .collect();
        let f = HoltForecast::fit(&noisy).unwrap();
        let truth = 20.0 + 4.0 * (n as f64 - 1.0 + 3.0);
        assert!((f.at(3) - truth).abs() < 8.0, "{} vs {truth}", f.at(3));
        assert!(f.trend > 2.0 && f.trend < 6.0, "trend {}", f.trend);
    }

    #[test]
    fn flat_noise_forecasts_about_its_mean() {
        let flat: Vec<f64> = noise(20, 5.0).into_iter().map(|e| 50.0 + e).collect();
        let f = HoltForecast::fit(&flat).unwrap();
        assert!((f.at(3) - 50.0).abs() < 10.0, "{}", f.at(3));
        assert!(f.trend.abs() < 2.0, "trend {}", f.trend);
    }

    #[test]
    fn a_falling_ramp_never_forecasts_below_zero() {
        let fall = [30.0, 20.0, 10.0, 5.0];
        assert_eq!(HoltForecast::fit(&fall).unwrap().at(10), 0.0);
    }

    #[test]
    fn too_little_or_broken_history_gives_no_forecast() {
        assert_eq!(HoltForecast::fit(&[]), None);
        assert_eq!(HoltForecast::fit(&[1.0, 2.0]), None);
        assert_eq!(HoltForecast::fit(&[1.0, f64::NAN, 2.0]), None);
        assert!(HoltForecast::fit(&[1.0, 2.0, 3.0]).is_some());
    }
}
