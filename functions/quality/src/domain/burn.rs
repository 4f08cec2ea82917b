//! Multi-window, multi-burn-rate SLO alerts (the SRE workbook's recommendation): an
//! error budget burning 14.4× too fast over both the last hour and the last five minutes
//! pages, as does 6× over six hours and thirty minutes; 1× over three days and six hours
//! is a warning. The short window makes the alert stop soon after the burning stops.

use serde::{Deserialize, Serialize};

use super::Severity;
use super::objective::Slo;

/// One rule: both windows must burn faster than `factor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnRule {
    pub long_seconds: u32,
    pub short_seconds: u32,
    pub factor: f64,
    pub severity: Severity,
}

pub const BURN_RULES: [BurnRule; 3] = [
    BurnRule {
        long_seconds: 3600,
        short_seconds: 300,
        factor: 14.4,
        severity: Severity::Critical,
    },
    BurnRule {
        long_seconds: 6 * 3600,
        short_seconds: 1800,
        factor: 6.0,
        severity: Severity::Critical,
    },
    BurnRule {
        long_seconds: 3 * 86400,
        short_seconds: 6 * 3600,
        factor: 1.0,
        severity: Severity::Warning,
    },
];

/// Every window the rules read, shortest first.
pub fn windows() -> Vec<u32> {
    let mut w: Vec<u32> = BURN_RULES
        .iter()
        .flat_map(|r| [r.long_seconds, r.short_seconds])
        .collect();
    w.sort_unstable();
    w.dedup();
    w
}

/// Requests and failed requests over a window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Counts {
    pub total: f64,
    pub errors: f64,
}

impl Counts {
    pub fn error_ratio(self) -> Option<f64> {
        (self.total > 0.0).then(|| (self.errors / self.total).clamp(0.0, 1.0))
    }
}

/// How fast the budget burns: 1.0 spends exactly the budget over the SLO window. `None`
/// without traffic.
pub fn burn_rate(slo: &Slo, counts: Counts) -> Option<f64> {
    counts.error_ratio().map(|r| r / slo.error_budget())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowBurn {
    pub window_seconds: u32,
    pub burn_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurnReport {
    /// The most severe rule that fires, if any.
    pub severity: Option<Severity>,
    pub windows: Vec<WindowBurn>,
    /// Share of the error budget left over the SLO window, in percent (negative when
    /// overspent); `None` without traffic.
    pub budget_remaining_percent: Option<f64>,
}

/// Evaluates the rules given `counts(window_seconds)` for each of [`windows`] and the SLO
/// window itself.
pub fn evaluate(slo: &Slo, counts: impl Fn(u32) -> Option<Counts>) -> BurnReport {
    let rate = |w: u32| counts(w).and_then(|c| burn_rate(slo, c));
    let severity = BURN_RULES
        .iter()
        .filter(|r| {
            let over = |w| rate(w).is_some_and(|b| b > r.factor);
            over(r.long_seconds) && over(r.short_seconds)
        })
        .map(|r| r.severity)
        .max();
    let slo_window = slo.window_days * 86400;
    BurnReport {
        severity,
        windows: windows()
            .into_iter()
            .map(|w| WindowBurn {
                window_seconds: w,
                burn_rate: rate(w),
            })
            .collect(),
        budget_remaining_percent: counts(slo_window)
            .and_then(|c| c.error_ratio())
            .map(|r| 100.0 * (1.0 - r / slo.error_budget())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const SLO: Slo = Slo {
        target: 99.9,
        window_days: 30,
    };

    /// A synthetic error series: per-minute (requests, errors), newest last, summed per
    /// window as CloudWatch's Sum over the window would.
    fn from_series(series: &[(f64, f64)]) -> impl Fn(u32) -> Option<Counts> + '_ {
        move |w| {
            let minutes = (w / 60) as usize;
            let tail = &series[series.len().saturating_sub(minutes)..];
            let c = tail.iter().fold(Counts::default(), |a, (t, e)| Counts {
                total: a.total + t,
                errors: a.errors + e,
            });
            (c.total > 0.0).then_some(c)
        }
    }

    fn steady(minutes: usize, error_ratio: f64) -> Vec<(f64, f64)> {
        vec![(1000.0, 1000.0 * error_ratio); minutes]
    }

    #[test]
    fn burn_rate_is_the_error_ratio_over_the_budget() {
        let b = burn_rate(
            &SLO,
            Counts {
                total: 1000.0,
                errors: 1.0,
            },
        )
        .unwrap();
        assert!((b - 1.0).abs() < 1e-9);
        assert_eq!(burn_rate(&SLO, Counts::default()), None);
    }

    #[test]
    fn a_sharp_outage_pages_through_the_fast_rule() {
        // Healthy for 3 days, then 2 % errors (20× the budget) for the last hour.
        let mut s = steady(3 * 1440 - 60, 0.0);
        s.extend(steady(60, 0.02));
        let r = evaluate(&SLO, from_series(&s));
        assert_eq!(r.severity, Some(Severity::Critical));
        let one_hour = r.windows.iter().find(|w| w.window_seconds == 3600).unwrap();
        assert!((one_hour.burn_rate.unwrap() - 20.0).abs() < 1e-9);
    }

    #[test]
    fn the_fast_rule_needs_the_short_window_too() {
        // 20× for 50 minutes, then clean for the last 10: the 5-minute window is clean,
        // so the page stops although the hour still burns.
        let mut s = steady(3 * 1440 - 60, 0.0);
        s.extend(steady(50, 0.02));
        s.extend(steady(10, 0.0));
        let r = evaluate(&SLO, from_series(&s));
        // 6 h at 50×20/360 ≈ 2.8×: below 6, so no page either.
        assert_eq!(r.severity, None);
    }

    #[test]
    fn a_slow_leak_warns_through_the_three_day_rule() {
        // 1.5× the budget, steadily, for three days.
        let s = steady(3 * 1440, 0.0015);
        let r = evaluate(&SLO, from_series(&s));
        assert_eq!(r.severity, Some(Severity::Warning));
    }

    #[test]
    fn a_moderate_burn_pages_through_the_six_hour_rule() {
        let mut s = steady(3 * 1440 - 360, 0.0);
        s.extend(steady(360, 0.008)); // 8×
        let r = evaluate(&SLO, from_series(&s));
        assert_eq!(r.severity, Some(Severity::Critical));
    }

    #[test]
    fn budget_remaining_is_measured_over_the_slo_window() {
        let mut by_window = BTreeMap::new();
        by_window.insert(
            30 * 86400,
            Counts {
                total: 1_000_000.0,
                errors: 250.0,
            },
        );
        let r = evaluate(&SLO, |w| by_window.get(&w).copied());
        assert!((r.budget_remaining_percent.unwrap() - 75.0).abs() < 1e-9);
        assert_eq!(r.severity, None);
        let over = evaluate(&SLO, |_| {
            Some(Counts {
                total: 100.0,
                errors: 1.0,
            })
        });
        assert!((over.budget_remaining_percent.unwrap() + 900.0).abs() < 1e-6);
        assert_eq!(over.severity, Some(Severity::Critical));
    }

    #[test]
    fn no_traffic_is_no_burn() {
        let r = evaluate(&SLO, |_| None);
        assert_eq!((r.severity, r.budget_remaining_percent), (None, None));
        assert_eq!(windows(), [300, 1800, 3600, 21600, 259200]);
    }
}
