//! CloudWatch's alarm evaluation, reproduced: M of N datapoints over an evaluation range,
//! the four missing-data treatments and the "premature alarm" rule, exactly as
//! CloudWatch documents them (its two example tables are tests below). On top of that,
//! warning and critical levels, and hysteresis: a level that is firing only lets go once
//! the value is better than its threshold by `resolve_margin`.

use super::objective::{MissingData, Objective};
use super::{AlertState, Severity};

/// What one threshold's evaluation says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Alarm,
    Ok,
    InsufficientData,
    /// `ignore`: keep whatever state the alarm had.
    Retain,
}

/// One threshold evaluated over `points`, the evaluation range oldest first (`None` is a
/// period without data), needing `m` breaching of the `n` most recent datapoints.
///
/// - With `n` or more real datapoints in the range, the `n` most recent real ones are
///   evaluated and the missing-data treatment does not matter.
/// - With none, `missing` → insufficient data, `ignore` → retain, `breaching` → alarm,
///   `not_breaching` → ok.
/// - Otherwise every real datapoint counts, and only the shortfall is filled (breaching
///   for `breaching`, not breaching for the rest). For `missing` and `ignore`, when every
///   real datapoint breaches and the oldest of those within the last `n` periods is at
///   least `m` periods old, CloudWatch alarms anyway (`ignore` retains instead).
pub fn evaluate(
    points: &[Option<f64>],
    n: usize,
    m: usize,
    missing: MissingData,
    breaches: impl Fn(f64) -> bool,
) -> Verdict {
    // (age in periods, newest = 1; breaching?)
    let real: Vec<(usize, bool)> = points
        .iter()
        .rev()
        .enumerate()
        .filter_map(|(i, p)| p.map(|v| (i + 1, breaches(v))))
        .collect();
    if real.len() >= n {
        let breaching = real[..n].iter().filter(|(_, b)| *b).count();
        return if breaching >= m {
            Verdict::Alarm
        } else {
            Verdict::Ok
        };
    }
    if real.is_empty() {
        return match missing {
            MissingData::Missing => Verdict::InsufficientData,
            MissingData::Ignore => Verdict::Retain,
            MissingData::Breaching => Verdict::Alarm,
            MissingData::NotBreaching => Verdict::Ok,
        };
    }
    let filled_breaching = if missing == MissingData::Breaching {
        n - real.len()
    } else {
        0
    };
    let breaching = real.iter().filter(|(_, b)| *b).count() + filled_breaching;
    if breaching >= m {
        return Verdict::Alarm;
    }
    let oldest_recent = real
        .iter()
        .map(|(age, _)| *age)
        .filter(|age| *age <= n)
        .max();
    let premature = real.iter().all(|(_, b)| *b) && oldest_recent.is_some_and(|age| age >= m);
    match missing {
        MissingData::Missing if premature => Verdict::Alarm,
        MissingData::Ignore if premature => Verdict::Retain,
        _ => Verdict::Ok,
    }
}

/// The state an objective's thresholds put it in (burn rates are separate), the value it
/// was judged on (the newest datapoint) and the threshold that decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    pub state: AlertState,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
}

/// Evaluates `objective`'s warning and critical thresholds over `points` (its evaluation
/// range, oldest first), given the state it is in now.
pub fn judge(objective: &Objective, points: &[Option<f64>], current: AlertState) -> Judgement {
    let n = objective.evaluation_periods as usize;
    let m = objective.datapoints_to_alarm as usize;
    let value = points.iter().rev().find_map(|p| *p);
    let mut verdicts = Vec::new();
    for severity in [Severity::Critical, Severity::Warning] {
        let Some(threshold) = objective.threshold(severity) else {
            continue;
        };
        let firing = current.severity().is_some_and(|s| s >= severity);
        // Hysteresis: a firing level holds until the value clears the margin.
        let line = if firing {
            objective
                .comparison
                .toward_good(threshold, objective.resolve_margin)
        } else {
            threshold
        };
        let verdict = evaluate(points, n, m, objective.missing_data, |v| {
            objective.comparison.breaches(v, line)
        });
        let alarm = match verdict {
            Verdict::Alarm => true,
            Verdict::Retain => firing,
            Verdict::Ok | Verdict::InsufficientData => false,
        };
        verdicts.push((severity, threshold, verdict, alarm));
    }
    if let Some((severity, threshold, ..)) = verdicts.iter().find(|v| v.3) {
        return Judgement {
            state: severity.into(),
            value,
            threshold: Some(*threshold),
        };
    }
    let lowest = verdicts.last().map(|v| v.1);
    let all_missing = value.is_none();
    let state = match (all_missing, objective.missing_data) {
        (true, MissingData::Missing) => AlertState::InsufficientData,
        (true, MissingData::Ignore) if current == AlertState::InsufficientData => {
            AlertState::InsufficientData
        }
        _ => AlertState::Ok,
    };
    Judgement {
        state,
        value,
        threshold: lowest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::objective::{Comparison, ObjectiveRequest};

    /// `0` not breaching, `X` breaching, `-` missing; oldest first, as CloudWatch's
    /// documentation writes them.
    fn points(s: &str) -> Vec<Option<f64>> {
        s.split_whitespace()
            .map(|p| match p {
                "0" => Some(0.0),
                "X" => Some(1.0),
                _ => None,
            })
            .collect()
    }

    fn run(s: &str, n: usize, m: usize, missing: MissingData) -> Verdict {
        evaluate(&points(s), n, m, missing, |v| v > 0.5)
    }

    const MODES: [MissingData; 4] = [
        MissingData::Missing,
        MissingData::Ignore,
        MissingData::Breaching,
        MissingData::NotBreaching,
    ];
    use Verdict::{Alarm as A, InsufficientData as I, Ok as O, Retain as R};

    /// CloudWatch's first table: Datapoints to Alarm 3, Evaluation Periods 3, range 5.
    #[test]
    fn cloudwatch_documented_table_three_of_three() {
        let table: [(&str, [Verdict; 4]); 5] = [
            ("0 - X - X", [O, O, O, O]),
            ("0 - - - -", [O, O, O, O]),
            ("- - - - -", [I, R, A, O]),
            ("0 X X - X", [A, A, A, A]),
            ("- - X - -", [A, R, A, O]),
        ];
        for (data, expected) in table {
            for (mode, want) in MODES.iter().zip(expected) {
                assert_eq!(
                    run(data, 3, 3, *mode),
                    want,
                    "{data} with {}",
                    mode.as_str()
                );
            }
        }
    }

    /// CloudWatch's second table: 2 out of 3, range 5.
    #[test]
    fn cloudwatch_documented_table_two_of_three() {
        let table: [(&str, [Verdict; 4]); 5] = [
            ("0 - X - X", [A, A, A, A]),
            ("0 0 X 0 X", [A, A, A, A]),
            ("0 - X - -", [O, O, A, O]),
            ("- - - - 0", [O, O, A, O]),
            ("- - - X -", [A, R, A, O]),
        ];
        for (data, expected) in table {
            for (mode, want) in MODES.iter().zip(expected) {
                assert_eq!(
                    run(data, 3, 2, *mode),
                    want,
                    "{data} with {}",
                    mode.as_str()
                );
            }
        }
    }

    #[test]
    fn a_fresh_breach_is_not_a_premature_alarm() {
        // CloudWatch: "- - - - X" must not alarm yet with 3 of 3; the next point may be fine.
        for mode in [
            MissingData::Missing,
            MissingData::Ignore,
            MissingData::NotBreaching,
        ] {
            assert_eq!(run("- - - - X", 3, 3, mode), O, "{}", mode.as_str());
        }
        assert_eq!(run("- - - X -", 3, 3, MissingData::Missing), O);
    }

    #[test]
    fn only_the_shortfall_is_filled() {
        // Two real points, one fill: a breaching fill plus one real breach is 2 of 3.
        assert_eq!(run("0 - X - -", 3, 3, MissingData::Breaching), O);
        assert_eq!(run("X - X - -", 3, 3, MissingData::Breaching), A);
    }

    #[test]
    fn m_of_n_counts_the_n_most_recent_real_points() {
        assert_eq!(run("X X 0 0 0", 3, 1, MissingData::Missing), O);
        assert_eq!(run("X X X 0 0", 3, 1, MissingData::Missing), A);
        assert_eq!(run("X X X 0 0", 3, 2, MissingData::Missing), O);
        assert_eq!(run("- X - X 0", 3, 2, MissingData::Missing), A);
    }

    fn objective(json: serde_json::Value) -> Objective {
        let req: ObjectiveRequest = serde_json::from_value(json).unwrap();
        Objective::parse("svc", "obj", &req).unwrap()
    }

    fn latency() -> Objective {
        objective(serde_json::json!({
            "metric": "latency_p99", "warning": 300, "critical": 500, "resolve_margin": 50,
            "evaluation_periods": 1, "datapoints_to_alarm": 1
        }))
    }

    #[test]
    fn levels_pick_the_most_severe_breach() {
        let o = latency();
        let j = judge(&o, &[Some(100.0), Some(600.0)], AlertState::Ok);
        assert_eq!(
            (j.state, j.value, j.threshold),
            (AlertState::Critical, Some(600.0), Some(500.0))
        );
        assert_eq!(
            judge(&o, &[Some(400.0)], AlertState::Ok).state,
            AlertState::Warning
        );
        let ok = judge(&o, &[Some(250.0)], AlertState::Ok);
        assert_eq!((ok.state, ok.threshold), (AlertState::Ok, Some(300.0)));
        assert_eq!(
            judge(&o, &[None, None, None], AlertState::Ok).state,
            AlertState::InsufficientData
        );
    }

    #[test]
    fn hysteresis_stops_a_value_hovering_at_the_line_from_flapping() {
        let o = latency();
        // Oscillating around the critical line (500) within the margin (50).
        let series = [520.0, 490.0, 505.0, 460.0, 499.0, 455.0, 510.0];
        let mut state = AlertState::Ok;
        let mut transitions = Vec::new();
        for v in series {
            let next = judge(&o, &[Some(v)], state).state;
            if next != state {
                transitions.push((state, next));
            }
            state = next;
        }
        assert_eq!(transitions, [(AlertState::Ok, AlertState::Critical)]);
        // Better than the line by the margin: critical lets go (to warning, since 450 is
        // still above warning's 300); warning holds until 250.
        assert_eq!(judge(&o, &[Some(450.0)], state).state, AlertState::Warning);
        assert_eq!(
            judge(&o, &[Some(260.0)], AlertState::Warning).state,
            AlertState::Warning
        );
        assert_eq!(
            judge(&o, &[Some(250.0)], AlertState::Warning).state,
            AlertState::Ok
        );
    }

    #[test]
    fn without_a_margin_the_same_series_flaps() {
        let mut o = latency();
        o.resolve_margin = 0.0;
        let mut state = AlertState::Ok;
        let mut changes = 0;
        for v in [520.0, 490.0, 505.0, 460.0] {
            let next = judge(&o, &[Some(v)], state).state;
            changes += usize::from(next != state);
            state = next;
        }
        assert_eq!(changes, 4);
    }

    #[test]
    fn less_than_objectives_resolve_above_the_line_plus_margin() {
        let o = objective(
            serde_json::json!({"metric": "availability", "critical": 99.0, "resolve_margin": 0.5, "evaluation_periods": 1}),
        );
        assert_eq!(o.comparison, Comparison::LessThan);
        assert_eq!(
            judge(&o, &[Some(98.0)], AlertState::Ok).state,
            AlertState::Critical
        );
        assert_eq!(
            judge(&o, &[Some(99.2)], AlertState::Critical).state,
            AlertState::Critical
        );
        assert_eq!(
            judge(&o, &[Some(99.5)], AlertState::Critical).state,
            AlertState::Ok
        );
    }

    #[test]
    fn ignore_keeps_the_state_through_a_gap() {
        let o = objective(
            serde_json::json!({"metric": "latency_p99", "critical": 500, "missing_data": "ignore"}),
        );
        for state in [
            AlertState::Critical,
            AlertState::Ok,
            AlertState::InsufficientData,
        ] {
            assert_eq!(judge(&o, &[None; 5], state).state, state);
        }
        let b = objective(
            serde_json::json!({"metric": "latency_p99", "warning": 300, "critical": 500, "missing_data": "breaching"}),
        );
        assert_eq!(
            judge(&b, &[None; 5], AlertState::Ok).state,
            AlertState::Critical
        );
        let nb = objective(
            serde_json::json!({"metric": "latency_p99", "critical": 500, "missing_data": "not_breaching"}),
        );
        assert_eq!(
            judge(&nb, &[None; 5], AlertState::Critical).state,
            AlertState::Ok
        );
    }
}
