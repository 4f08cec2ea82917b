//! A webhook subscription: the create request and its validation, and the subscription
//! as stored and shown, with the secret generations that sign during a rotation.

use aloft_shared::FieldError;
use aloft_shared::strict::some;
use serde::{Deserialize, Serialize};

use super::event_types::{EventTypeFilter, parse_event_types};
use crate::ssrf::{UrlPolicy, WebhookUrl};

pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_SECS: i64 = 24 * 3600;

/// Counted as sent, surrounding spaces included, as the spec's `maxLength` counts; kept
/// trimmed.
pub(super) fn parse_description(raw: &str) -> Result<String, FieldError> {
    let d = raw.trim();
    if raw.chars().count() > MAX_DESCRIPTION_CHARS || d.chars().any(char::is_control) {
        return Err(FieldError::new(
            "description",
            format!(
                "must be at most {MAX_DESCRIPTION_CHARS} characters, without control characters"
            ),
        ));
    }
    Ok(d.to_owned())
}

pub(super) fn parse_url(raw: &str, policy: UrlPolicy) -> Result<WebhookUrl, FieldError> {
    WebhookUrl::parse(raw, policy).map_err(|e| FieldError::new("url", e.to_string()))
}

/// `POST /webhooks` body as sent. A field sent as `null` (or any other wrong type) is a
/// 422 naming it, not "absent"; the spec allows `null` for `description` only in a PATCH.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    #[serde(default, deserialize_with = "some")]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "some")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    pub url: WebhookUrl,
    pub event_types: Vec<EventTypeFilter>,
    pub description: Option<String>,
}

impl NewSubscription {
    pub fn parse(req: &CreateWebhookRequest, policy: UrlPolicy) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let url = match &req.url {
            None => Err(FieldError::new("url", "is required")),
            Some(u) => parse_url(u, policy),
        };
        let event_types = match &req.event_types {
            None => Err(FieldError::new("event_types", "is required")),
            Some(t) => parse_event_types(t),
        };
        let description = req
            .description
            .as_deref()
            .map(parse_description)
            .transpose();
        let url = url.map_err(|e| errors.push(e)).ok();
        let event_types = event_types.map_err(|e| errors.push(e)).ok();
        let description = description.map_err(|e| errors.push(e)).ok();
        match (url, event_types, description) {
            (Some(url), Some(event_types), Some(description)) => Ok(Self {
                url,
                event_types,
                description: description.filter(|d| !d.is_empty()),
            }),
            _ => Err(errors),
        }
    }
}

/// A webhook subscription as stored and shown. The signing secret is not here: it is
/// derived from the id and `secret_generation` (see `signing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub url: WebhookUrl,
    pub event_types: Vec<EventTypeFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub enabled: bool,
    /// Why it is disabled, when the platform disabled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Start of the current run of failed attempts (none since the last success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
    pub secret_generation: u32,
    /// The generation replaced by the last rotation, signing until `previous_expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_generation: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_expires_at: Option<String>,
}

impl Subscription {
    pub fn create(id: String, new: NewSubscription, now: &str) -> Self {
        Self {
            id,
            url: new.url,
            event_types: new.event_types,
            description: new.description,
            enabled: true,
            disabled_reason: None,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            failing_since: None,
            secret_generation: 1,
            previous_generation: None,
            previous_expires_at: None,
        }
    }

    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|f| f.matches(event_type))
    }

    /// The secret generations that sign at `now_rfc3339`: the current one, and the
    /// previous one during a rotation's overlap.
    pub fn signing_generations(&self, now_rfc3339: &str) -> Vec<u32> {
        let mut out = vec![self.secret_generation];
        if let (Some(prev), Some(until)) = (self.previous_generation, &self.previous_expires_at) {
            // Fixed-width RFC 3339 strings compare as times.
            if now_rfc3339 < until.as_str() {
                out.push(prev);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_request_reports_every_bad_field() {
        let req = CreateWebhookRequest {
            url: Some("https://10.0.0.1/".into()),
            event_types: Some(vec![]),
            description: Some("x".repeat(501)),
        };
        let errors = NewSubscription::parse(&req, UrlPolicy::STRICT).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["url", "event_types", "description"]);
        let missing = CreateWebhookRequest {
            url: None,
            event_types: None,
            description: None,
        };
        assert_eq!(
            NewSubscription::parse(&missing, UrlPolicy::STRICT)
                .unwrap_err()
                .len(),
            2
        );
    }

    #[test]
    fn the_previous_secret_signs_only_during_the_overlap() {
        let mut s = Subscription::create(
            "s".into(),
            NewSubscription {
                url: WebhookUrl::parse("https://example.com", UrlPolicy::STRICT).unwrap(),
                event_types: vec![EventTypeFilter::All],
                description: None,
            },
            "2026-01-01T00:00:00.000Z",
        );
        assert_eq!(s.signing_generations("2026-01-01T00:00:00.000Z"), [1]);
        s.secret_generation = 2;
        s.previous_generation = Some(1);
        s.previous_expires_at = Some("2026-01-02T00:00:00.000Z".into());
        assert_eq!(s.signing_generations("2026-01-01T23:59:59.999Z"), [2, 1]);
        assert_eq!(s.signing_generations("2026-01-02T00:00:00.000Z"), [2]);
    }
}
