//! The quality monitor's rules, free of I/O: objectives and their validation, CloudWatch's
//! alarm evaluation, burn rates, alert transitions and their events, silences, MTTR and
//! the quality attributes that become objectives.

pub mod alert;
pub mod attributes;
pub mod burn;
pub mod evaluate;
pub mod field_errors;
pub mod objective;
pub mod series;
pub mod silence;

#[cfg(test)]
mod parse_tests;

use aloft_shared::FieldError;
use aloft_shared::cursor::CursorError;
use aloft_shared::dynamo::StoreError;
use serde::{Deserialize, Serialize};

pub use alert::{AlertState, HistoryEntry, Notice, Severity};
pub use objective::{Objective, ObjectiveName, ServiceName};
pub use silence::Silence;

use burn::BurnReport;

#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error("invalid request fields")]
    Invalid(Vec<FieldError>),
    #[error("no objective {name} for service {service}")]
    ObjectiveNotFound { service: String, name: String },
    #[error("no silence {0}")]
    SilenceNotFound(String),
    #[error("service {0} has no quality attributes")]
    AttributesNotFound(String),
    #[error(transparent)]
    InvalidCursor(#[from] CursorError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An objective's alert state as stored beside its definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertStatus {
    pub state: AlertState,
    /// When it entered `state`.
    pub since: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub last_evaluated_at: Option<String>,
    pub burn: Option<BurnReport>,
}

impl AlertStatus {
    /// A new objective has no data yet, as a new CloudWatch alarm.
    pub fn initial(now: &str) -> Self {
        Self {
            state: AlertState::InsufficientData,
            since: now.to_owned(),
            value: None,
            threshold: None,
            last_evaluated_at: None,
            burn: None,
        }
    }
}

/// What one evaluation concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub state: AlertState,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// `threshold` or `burn_rate`.
    pub reason: &'static str,
    pub burn: Option<BurnReport>,
}

/// Judges `points` (the evaluation range, oldest first) against the thresholds, and
/// lets a firing burn-rate rule raise the state further.
pub fn assess(
    objective: &Objective,
    points: &[Option<f64>],
    burn: Option<BurnReport>,
    current: AlertState,
) -> Assessment {
    let j = evaluate::judge(objective, points, current);
    let burning = burn.as_ref().and_then(|b| b.severity);
    match burning {
        Some(s) if j.state.severity().is_none_or(|t| s > t) => Assessment {
            state: (&s).into(),
            value: j.value,
            threshold: None,
            reason: "burn_rate",
            burn,
        },
        _ => Assessment {
            state: j.state,
            value: j.value,
            threshold: j.threshold,
            reason: "threshold",
            burn,
        },
    }
}

/// A state change to record, and the event to announce unless silenced.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub entry: HistoryEntry,
    pub notice: Option<Notice>,
}

/// The transition from `current` that `assessment` makes at `now`, if any. A silenced
/// objective still changes state and history; only the event is held back.
pub fn transition(
    current: AlertState,
    assessment: &Assessment,
    silence: Option<&Silence>,
    now: &str,
) -> Option<Transition> {
    if assessment.state == current {
        return None;
    }
    let notice = alert::notice(current, assessment.state);
    let silenced_by = notice.and(silence).map(|s| s.id.clone());
    let announced = if silenced_by.is_some() { None } else { notice };
    Some(Transition {
        entry: HistoryEntry {
            at: now.to_owned(),
            from: current,
            to: assessment.state,
            value: assessment.value,
            threshold: assessment.threshold,
            reason: assessment.reason.to_owned(),
            event: announced.map(|n| n.event_type().to_owned()),
            silenced_by,
        },
        notice: announced,
    })
}

/// The data of `alert.firing`, `alert.resolved` and `alert.info` events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    pub fingerprint: String,
    pub service: String,
    pub objective: String,
    pub metric: &'static str,
    /// `critical`, `warning` or `info`.
    pub severity: &'static str,
    pub state: AlertState,
    pub previous_state: AlertState,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<alert::InfoReason>,
    pub since: String,
}

impl AlertEvent {
    pub fn new(objective: &Objective, t: &Transition, notice: Notice) -> Self {
        Self {
            fingerprint: alert::fingerprint(&objective.service, &objective.name),
            service: objective.service.to_string(),
            objective: objective.name.to_string(),
            metric: objective.metric.as_str(),
            severity: notice.severity(),
            state: t.entry.to,
            previous_state: t.entry.from,
            value: t.entry.value,
            threshold: t.entry.threshold,
            reason: t.entry.reason.clone(),
            info: match notice {
                Notice::Info(r) => Some(r),
                _ => None,
            },
            since: t.entry.at.clone(),
        }
    }
}

/// An active alert as `GET /alerts` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub service: String,
    pub objective: String,
    pub severity: Option<Severity>,
    /// `firing` or `insufficient_data`.
    pub state: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub since: String,
    pub fingerprint: String,
}

/// `GET /alerts` query as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    pub state: Option<String>,
    pub severity: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// Which alerts to list: firing ones (optionally of one severity), or those without data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertFilter {
    Firing(Option<Severity>),
    InsufficientData,
    /// A severity asked of alerts without data, which have none: nothing matches.
    Nothing,
}

impl AlertFilter {
    pub fn parse(q: &AlertsQuery) -> Result<Self, Vec<FieldError>> {
        let severity = q
            .severity
            .as_deref()
            .map(|s| Severity::parse(s).map_err(|m| vec![FieldError::new("severity", m)]))
            .transpose()?;
        match q.state.as_deref().unwrap_or("firing") {
            "firing" => Ok(Self::Firing(severity)),
            "insufficient_data" if severity.is_none() => Ok(Self::InsufficientData),
            "insufficient_data" => Ok(Self::Nothing),
            _ => Err(vec![FieldError::new(
                "state",
                "must be firing or insufficient_data",
            )]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use objective::ObjectiveRequest;

    fn objective() -> Objective {
        let req = ObjectiveRequest {
            metric: Some("error_rate".into()),
            warning: Some(1.0),
            critical: Some(5.0),
            evaluation_periods: Some(1),
            ..Default::default()
        };
        Objective::parse("svc", "errors", &req).unwrap()
    }

    fn burning(severity: Option<Severity>) -> Option<BurnReport> {
        Some(BurnReport {
            severity,
            windows: vec![],
            budget_remaining_percent: None,
        })
    }

    #[test]
    fn a_burning_budget_raises_the_state_but_never_lowers_it() {
        let o = objective();
        let a = assess(
            &o,
            &[Some(0.5)],
            burning(Some(Severity::Critical)),
            AlertState::Ok,
        );
        assert_eq!((a.state, a.reason), (AlertState::Critical, "burn_rate"));
        let b = assess(
            &o,
            &[Some(9.0)],
            burning(Some(Severity::Warning)),
            AlertState::Ok,
        );
        assert_eq!((b.state, b.reason), (AlertState::Critical, "threshold"));
        let c = assess(&o, &[Some(0.5)], burning(None), AlertState::Ok);
        assert_eq!(c.state, AlertState::Ok);
    }

    #[test]
    fn a_silence_holds_back_the_event_but_not_the_transition() {
        let o = objective();
        let a = assess(&o, &[Some(9.0)], None, AlertState::Ok);
        let loud = transition(AlertState::Ok, &a, None, "t").unwrap();
        assert_eq!(loud.notice, Some(Notice::Firing(Severity::Critical)));
        assert_eq!(loud.entry.event.as_deref(), Some("alert.firing"));
        let silence = Silence {
            id: "s-1".into(),
            service: None,
            objective: None,
            until: "2099-01-01T00:00:00.000Z".into(),
            reason: "r".into(),
            created_at: "t".into(),
            created_by: "k".into(),
        };
        let quiet = transition(AlertState::Ok, &a, Some(&silence), "t").unwrap();
        assert_eq!(quiet.notice, None);
        assert_eq!(quiet.entry.to, AlertState::Critical);
        assert_eq!(quiet.entry.silenced_by.as_deref(), Some("s-1"));
        // Same state again: nothing to record, nothing to announce.
        assert_eq!(transition(AlertState::Critical, &a, None, "t"), None);
    }

    #[test]
    fn events_carry_the_fingerprint_and_severity() {
        let o = objective();
        let a = assess(&o, &[Some(9.0)], None, AlertState::Ok);
        let t = transition(AlertState::Ok, &a, None, "2026-01-01T00:00:00.000Z").unwrap();
        let e = AlertEvent::new(&o, &t, t.notice.unwrap());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["state"], "critical");
        assert_eq!(v["previous_state"], "ok");
        assert_eq!(v["fingerprint"], alert::fingerprint(&o.service, &o.name));
        assert!(v.get("info").is_none());
    }

    #[test]
    fn alert_filters() {
        let q = |state: Option<&str>, severity: Option<&str>| AlertsQuery {
            state: state.map(Into::into),
            severity: severity.map(Into::into),
            ..Default::default()
        };
        assert_eq!(
            AlertFilter::parse(&q(None, None)).unwrap(),
            AlertFilter::Firing(None)
        );
        assert_eq!(
            AlertFilter::parse(&q(Some("firing"), Some("critical"))).unwrap(),
            AlertFilter::Firing(Some(Severity::Critical))
        );
        assert_eq!(
            AlertFilter::parse(&q(Some("insufficient_data"), None)).unwrap(),
            AlertFilter::InsufficientData
        );
        assert_eq!(
            AlertFilter::parse(&q(Some("insufficient_data"), Some("warning"))).unwrap(),
            AlertFilter::Nothing
        );
        assert_eq!(
            AlertFilter::parse(&q(Some("ok"), None)).unwrap_err()[0].field,
            "state"
        );
        assert_eq!(
            AlertFilter::parse(&q(None, Some("info"))).unwrap_err()[0].field,
            "severity"
        );
    }
}
