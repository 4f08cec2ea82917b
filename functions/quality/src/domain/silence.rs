//! Silences (Alertmanager's): for a while, transitions of matching objectives are still
//! evaluated and recorded, but not announced.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use aloft_shared::FieldError;
use aloft_shared::strict::some;

use super::field_errors::Errors;
use super::objective::{ObjectiveName, ServiceName};

/// The longest a silence may last: long enough for a planned migration, short enough
/// that a forgotten one ends.
pub const MAX_SILENCE_DAYS: i64 = 30;
const MAX_REASON_CHARS: usize = 500;

/// `POST /silences` as sent. A field sent as `null` is a wrong type (422 naming it), not
/// "absent" (for `service`, absent means every service; `null` is not documented).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub service: Option<String>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub objective: Option<String>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<String>,
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    /// `None`: every service.
    pub service: Option<ServiceName>,
    /// `None`: every objective of `service`.
    pub objective: Option<ObjectiveName>,
    pub until: String,
    pub reason: String,
    pub created_at: String,
    pub created_by: String,
}

impl Silence {
    /// Validates a request at `now`; `until` must lie ahead, within [`MAX_SILENCE_DAYS`].
    pub fn parse(
        req: &SilenceRequest,
        id: String,
        now: OffsetDateTime,
        created_by: &str,
    ) -> Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let service = req
            .service
            .as_deref()
            .and_then(|s| e.check("service", ServiceName::parse(s)));
        let objective = req
            .objective
            .as_deref()
            .and_then(|o| e.check("objective", ObjectiveName::parse(o)));
        if req.objective.is_some() && req.service.is_none() {
            e.add(
                "service",
                "is required when objective is given (objective names are per service)",
            );
        }
        let until = match req.until.as_deref().map(aloft_shared::clock::parse_rfc3339) {
            None => {
                e.add("until", "is required");
                None
            }
            Some(None) => {
                e.add(
                    "until",
                    "must be an RFC 3339 time, e.g. 2026-11-24T23:00:00Z",
                );
                None
            }
            Some(Some(t)) if t <= now => {
                e.add("until", "must be in the future");
                None
            }
            Some(Some(t)) if t > now + time::Duration::days(MAX_SILENCE_DAYS) => {
                e.add(
                    "until",
                    format!("must be at most {MAX_SILENCE_DAYS} days ahead"),
                );
                None
            }
            Some(Some(t)) => Some(t),
        };
        let raw_reason = req.reason.as_deref().unwrap_or_default();
        let reason = raw_reason.trim();
        // Counted as sent, surrounding spaces included, as the spec's maxLength counts.
        if reason.is_empty()
            || raw_reason.chars().count() > MAX_REASON_CHARS
            || reason.chars().any(char::is_control)
        {
            e.add(
                "reason",
                format!("is required: 1–{MAX_REASON_CHARS} characters, no control characters"),
            );
        }
        let (has_service, has_objective) = (req.service.is_some(), req.objective.is_some());
        e.finish(|| {
            if (has_service && service.is_none()) || (has_objective && objective.is_none()) {
                return None;
            }
            Some(Silence {
                id,
                service,
                objective,
                until: aloft_shared::clock::rfc3339(until?),
                reason: reason.to_owned(),
                created_at: aloft_shared::clock::rfc3339(now),
                created_by: created_by.to_owned(),
            })
        })
    }

    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        aloft_shared::clock::parse_rfc3339(&self.until).is_some_and(|until| now < until)
    }

    /// Whether this silence mutes `service`/`objective` at `now`.
    pub fn matches(
        &self,
        service: &ServiceName,
        objective: &ObjectiveName,
        now: OffsetDateTime,
    ) -> bool {
        self.is_active(now)
            && self.service.as_ref().is_none_or(|s| s == service)
            && self.objective.as_ref().is_none_or(|o| o == objective)
    }
}

/// The first active silence muting `service`/`objective`, if any.
pub fn muted_by<'a>(
    silences: &'a [Silence],
    service: &ServiceName,
    objective: &ObjectiveName,
    now: OffsetDateTime,
) -> Option<&'a Silence> {
    silences.iter().find(|s| s.matches(service, objective, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-05-01 12:00 UTC);

    fn silence(service: Option<&str>, objective: Option<&str>, until: &str) -> Silence {
        let req = SilenceRequest {
            service: service.map(Into::into),
            objective: objective.map(Into::into),
            until: Some(until.into()),
            reason: Some("deploying".into()),
        };
        Silence::parse(&req, "s1".into(), NOW, "key").unwrap()
    }

    fn names(s: &str, o: &str) -> (ServiceName, ObjectiveName) {
        (
            ServiceName::parse(s).unwrap(),
            ObjectiveName::parse(o).unwrap(),
        )
    }

    #[test]
    fn a_silence_mutes_only_what_it_matches_and_only_until_it_ends() {
        let (users, p99) = names("users", "p99");
        let (payments, errors) = names("payments", "errors");
        let one = silence(Some("users"), Some("p99"), "2026-05-01T13:00:00Z");
        assert!(one.matches(&users, &p99, NOW));
        assert!(!one.matches(&users, &errors, NOW));
        assert!(!one.matches(&payments, &p99, NOW));
        // The window is half-open: at `until` it has ended.
        assert!(one.matches(&users, &p99, datetime!(2026-05-01 12:59:59 UTC)));
        assert!(!one.matches(&users, &p99, datetime!(2026-05-01 13:00 UTC)));

        let service_wide = silence(Some("users"), None, "2026-05-01T13:00:00Z");
        assert!(service_wide.matches(&users, &errors, NOW));
        assert!(!service_wide.matches(&payments, &errors, NOW));

        let everything = silence(None, None, "2026-05-01T13:00:00Z");
        assert!(everything.matches(&payments, &errors, NOW));
        let all = [one, everything];
        assert_eq!(
            muted_by(&all, &payments, &errors, NOW).map(|s| s.until.as_str()),
            Some("2026-05-01T13:00:00.000Z")
        );
        assert_eq!(
            muted_by(&all, &payments, &errors, datetime!(2026-05-02 0:00 UTC)),
            None
        );
    }

    #[test]
    fn bad_silences_name_every_field() {
        let bad = SilenceRequest {
            service: None,
            objective: Some("p99".into()),
            until: Some("2026-04-30T00:00:00Z".into()),
            reason: Some("  ".into()),
        };
        let fields: Vec<_> = Silence::parse(&bad, "x".into(), NOW, "k")
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["service", "until", "reason"]);
        let far = SilenceRequest {
            until: Some("2026-07-01T00:00:00Z".into()),
            reason: Some("r".into()),
            ..Default::default()
        };
        assert_eq!(
            Silence::parse(&far, "x".into(), NOW, "k").unwrap_err()[0].field,
            "until"
        );
        let garbled = SilenceRequest {
            service: Some("bad name".into()),
            until: Some("tomorrow".into()),
            reason: Some("r".into()),
            ..Default::default()
        };
        let fields: Vec<_> = Silence::parse(&garbled, "x".into(), NOW, "k")
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["service", "until"]);
    }
}

/// Bodies as `ApiJson` reads them (an object, each field of its documented type) and then
/// as [`Silence::parse`] validates them: (body, status, first field named). A silence has
/// no number or nested object fields.
#[cfg(test)]
mod strict_bodies {
    use super::*;
    use aloft_shared::extract::parse_json;
    use aloft_shared::strict::Object;
    use time::macros::datetime;

    fn answer(body: &str) -> (u16, Option<String>) {
        let now = datetime!(2026-05-01 12:00 UTC);
        match parse_json::<Object<SilenceRequest>>(body.as_bytes()) {
            Err(p) => (p.status, p.errors.first().map(|e| e.field.clone())),
            Ok(Object(req)) => match Silence::parse(&req, "s1".into(), now, "key") {
                Ok(_) => (200, None),
                Err(errors) => (422, errors.first().map(|e| e.field.clone())),
            },
        }
    }

    #[test]
    fn silence_bodies_are_the_documented_shape() {
        let until = r#""until": "2026-05-02T00:00:00Z""#;
        let cases: &[(String, u16, Option<&str>)] = &[
            (format!(r#"{{{until}, "reason": "migration"}}"#), 200, None),
            (
                format!(r#"{{"service": "checkout", {until}, "reason": "migration"}}"#),
                200,
                None,
            ),
            (
                r#"["checkout", null, "2026-05-02T00:00:00Z", "x"]"#.into(),
                422,
                Some("body"),
            ),
            (
                format!(r#"{{"service": null, {until}, "reason": "migration"}}"#),
                422,
                Some("service"),
            ),
            (
                format!(r#"{{"service": "checkout", "objective": null, {until}, "reason": "m"}}"#),
                422,
                Some("objective"),
            ),
            (
                r#"{"until": null, "reason": "migration"}"#.into(),
                422,
                Some("until"),
            ),
            (
                format!(r#"{{{until}, "reason": null}}"#),
                422,
                Some("reason"),
            ),
            (
                format!(r#"{{{until}, "reason": ["migration"]}}"#),
                422,
                Some("reason"),
            ),
            (
                format!(r#"{{{until}, "reason": "m", "by": "x"}}"#),
                400,
                Some("by"),
            ),
        ];
        for (body, status, field) in cases {
            assert_eq!(answer(body), (*status, field.map(str::to_owned)), "{body}");
        }
    }
}
