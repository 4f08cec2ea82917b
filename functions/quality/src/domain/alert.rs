//! Alert states, what a transition announces, the fingerprint that deduplicates
//! notifications, and MTTR from an objective's history.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::objective::{ObjectiveName, ServiceName};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            _ => Err("must be warning or critical".into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Ok,
    Warning,
    Critical,
    InsufficientData,
}

impl From<&Severity> for AlertState {
    fn from(s: &Severity) -> Self {
        match s {
            Severity::Warning => AlertState::Warning,
            Severity::Critical => AlertState::Critical,
        }
    }
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Ok => "ok",
            AlertState::Warning => "warning",
            AlertState::Critical => "critical",
            AlertState::InsufficientData => "insufficient_data",
        }
    }

    /// The severity of a firing state.
    pub fn severity(self) -> Option<Severity> {
        match self {
            AlertState::Warning => Some(Severity::Warning),
            AlertState::Critical => Some(Severity::Critical),
            AlertState::Ok | AlertState::InsufficientData => None,
        }
    }

    pub fn is_firing(self) -> bool {
        self.severity().is_some()
    }

    /// The more severe of two states (firing beats insufficient data beats ok).
    pub fn worst(self, other: AlertState) -> AlertState {
        let rank = |s: AlertState| match s {
            AlertState::Ok => 0,
            AlertState::InsufficientData => 1,
            AlertState::Warning => 2,
            AlertState::Critical => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// What a transition announces (besides being recorded in the history).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// `alert.firing`: into warning or critical, or from warning up to critical.
    Firing(Severity),
    /// `alert.resolved`: from warning or critical back to ok.
    Resolved,
    /// `alert.info`: the data went missing, or the severity went down.
    Info(InfoReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InfoReason {
    InsufficientData,
    SeverityLowered,
}

impl Notice {
    pub fn event_type(self) -> &'static str {
        match self {
            Notice::Firing(_) => "alert.firing",
            Notice::Resolved => "alert.resolved",
            Notice::Info(_) => "alert.info",
        }
    }

    /// The severity the event carries: the alert's, or `info`.
    pub fn severity(self) -> &'static str {
        match self {
            Notice::Firing(s) => s.as_str(),
            Notice::Resolved | Notice::Info(_) => "info",
        }
    }
}

/// What moving from `from` to `to` announces. The same state twice announces nothing:
/// that, with the fingerprint, is the deduplication. Insufficient data becoming ok is
/// recorded but not announced (nothing was firing).
pub fn notice(from: AlertState, to: AlertState) -> Option<Notice> {
    use AlertState::*;
    match (from, to) {
        _ if from == to => None,
        (Critical, Warning) => Some(Notice::Info(InfoReason::SeverityLowered)),
        (_, Warning) => Some(Notice::Firing(Severity::Warning)),
        (_, Critical) => Some(Notice::Firing(Severity::Critical)),
        (Warning | Critical, Ok) => Some(Notice::Resolved),
        (_, InsufficientData) => Some(Notice::Info(InfoReason::InsufficientData)),
        (InsufficientData, Ok) | (Ok, Ok) => None,
    }
}

/// The alert's identity, stable across evaluations and states (Alertmanager's
/// fingerprint): a receiver groups and deduplicates on it.
pub fn fingerprint(service: &ServiceName, objective: &ObjectiveName) -> String {
    let digest = Sha256::digest(format!("{}\n{}", service.as_str(), objective.as_str()));
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// One recorded transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: String,
    pub from: AlertState,
    pub to: AlertState,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// `threshold` or `burn_rate`: what decided the new state.
    pub reason: String,
    /// The event announced, if any (`alert.firing`, …).
    pub event: Option<String>,
    /// The silence that kept the event from being announced.
    pub silenced_by: Option<String>,
}

/// Mean time to resolve over a service's incidents (an objective firing until it is ok
/// again) that were resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mttr {
    pub mttr_seconds: Option<f64>,
    pub resolved_incidents: usize,
    pub open_incidents: usize,
}

/// MTTR from transitions `(objective, at as epoch seconds, from, to)`, oldest first.
pub fn mttr(entries: &[(&str, i64, AlertState, AlertState)]) -> Mttr {
    let mut open: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    let mut durations = Vec::new();
    for (objective, at, from, to) in entries {
        if to.is_firing() && !from.is_firing() {
            open.insert(objective, *at);
        } else if *to == AlertState::Ok && from.is_firing() {
            if let Some(start) = open.remove(objective) {
                durations.push((at - start) as f64);
            }
        }
    }
    Mttr {
        mttr_seconds: (!durations.is_empty())
            .then(|| durations.iter().sum::<f64>() / durations.len() as f64),
        resolved_incidents: durations.len(),
        open_incidents: open.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertState::*;

    #[test]
    fn every_transition_announces_the_documented_event() {
        let cases = [
            (Ok, Warning, Some("alert.firing"), "warning"),
            (Ok, Critical, Some("alert.firing"), "critical"),
            (InsufficientData, Critical, Some("alert.firing"), "critical"),
            (Warning, Critical, Some("alert.firing"), "critical"),
            (Critical, Warning, Some("alert.info"), "info"),
            (Critical, Ok, Some("alert.resolved"), "info"),
            (Warning, Ok, Some("alert.resolved"), "info"),
            (Ok, InsufficientData, Some("alert.info"), "info"),
            (Critical, InsufficientData, Some("alert.info"), "info"),
            (InsufficientData, Ok, None, ""),
        ];
        for (from, to, event, severity) in cases {
            let n = notice(from, to);
            assert_eq!(n.map(Notice::event_type), event, "{from:?} → {to:?}");
            assert_eq!(
                n.map(Notice::severity).unwrap_or(""),
                severity,
                "{from:?} → {to:?}"
            );
        }
    }

    #[test]
    fn a_repeated_state_never_renotifies() {
        for s in [Ok, Warning, Critical, InsufficientData] {
            assert_eq!(notice(s, s), None);
        }
    }

    #[test]
    fn fingerprints_are_stable_and_distinct() {
        let s = ServiceName::parse("UsersFunction").unwrap();
        let a = ObjectiveName::parse("latency-p99").unwrap();
        let b = ObjectiveName::parse("errors").unwrap();
        assert_eq!(fingerprint(&s, &a), fingerprint(&s, &a));
        assert_eq!(fingerprint(&s, &a).len(), 16);
        assert_ne!(fingerprint(&s, &a), fingerprint(&s, &b));
        // The separator keeps "ab"/"c" and "a"/"bc" apart.
        let (x, y) = (
            ServiceName::parse("ab").unwrap(),
            ServiceName::parse("a").unwrap(),
        );
        assert_ne!(
            fingerprint(&x, &ObjectiveName::parse("c").unwrap()),
            fingerprint(&y, &ObjectiveName::parse("bc").unwrap())
        );
    }

    #[test]
    fn mttr_averages_resolved_incidents_only() {
        let h = [
            ("a", 0, InsufficientData, Ok),
            ("a", 100, Ok, Warning),
            ("b", 150, Ok, Critical),
            ("a", 160, Warning, Critical),
            ("a", 400, Critical, Ok), // 300 s
            ("b", 250, Critical, Ok), // 100 s, interleaved with a's incident
            ("a", 1000, Ok, Critical),
            ("a", 1200, Critical, Ok), // 200 s
            ("a", 2000, Ok, Warning),  // still open
        ];
        let m = mttr(&h);
        assert_eq!(m.mttr_seconds, Some(200.0));
        assert_eq!((m.resolved_incidents, m.open_incidents), (3, 1));
        assert_eq!(mttr(&[]).mttr_seconds, None);
    }

    #[test]
    fn worst_orders_states() {
        assert_eq!(Ok.worst(Critical), Critical);
        assert_eq!(Critical.worst(Warning), Critical);
        assert_eq!(InsufficientData.worst(Ok), InsufficientData);
        assert_eq!(InsufficientData.worst(Warning), Warning);
    }
}
