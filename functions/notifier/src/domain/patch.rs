//! A partial update of a subscription: absent, `null` and a value kept apart, and the
//! patch validated to at least one field.

use aloft_shared::FieldError;
pub use aloft_shared::strict::PatchField;
use serde::Deserialize;

use super::event_types::{EventTypeFilter, parse_event_types};
use super::subscription::{parse_description, parse_url};
use crate::ssrf::{UrlPolicy, WebhookUrl};

/// `PATCH /webhooks/{id}` body as sent. [`PatchField`] keeps `null` apart from absent:
/// `description: null` clears the description, as the spec documents (`[string, "null"]`);
/// `null` for `url`, `event_types` or `enabled` is refused by [`SubscriptionPatch::parse`]
/// (422 naming the field). Any other wrong type fails here, also a 422 naming the field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    #[serde(default)]
    pub url: PatchField<String>,
    #[serde(default)]
    pub event_types: PatchField<Vec<String>>,
    #[serde(default)]
    pub enabled: PatchField<bool>,
    #[serde(default)]
    pub description: PatchField<String>,
}

/// A validated partial update with at least one field. `description: Some(None)`
/// clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionPatch {
    pub url: Option<WebhookUrl>,
    pub event_types: Option<Vec<EventTypeFilter>>,
    pub enabled: Option<bool>,
    pub description: Option<Option<String>>,
}

impl SubscriptionPatch {
    pub fn parse(req: &UpdateWebhookRequest, policy: UrlPolicy) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let null =
            |name: &str| FieldError::new(name, "cannot be null; omit it to leave it unchanged");
        let mut patch = Self::default();
        match &req.url {
            PatchField::Absent => {}
            PatchField::Null => errors.push(null("url")),
            PatchField::Value(u) => match parse_url(u, policy) {
                Ok(u) => patch.url = Some(u),
                Err(e) => errors.push(e),
            },
        }
        match &req.event_types {
            PatchField::Absent => {}
            PatchField::Null => errors.push(null("event_types")),
            PatchField::Value(t) => match parse_event_types(t) {
                Ok(t) => patch.event_types = Some(t),
                Err(e) => errors.push(e),
            },
        }
        match &req.enabled {
            PatchField::Absent => {}
            PatchField::Null => errors.push(null("enabled")),
            PatchField::Value(b) => patch.enabled = Some(*b),
        }
        match &req.description {
            PatchField::Absent => {}
            PatchField::Null => patch.description = Some(None),
            PatchField::Value(d) => match parse_description(d) {
                Ok(d) => patch.description = Some(Some(d).filter(|d| !d.is_empty())),
                Err(e) => errors.push(e),
            },
        }
        if patch == Self::default() && errors.is_empty() {
            errors.push(FieldError::new(
                "body",
                "must set at least one of url, event_types, enabled, description",
            ));
        }
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_needs_a_field_and_refuses_nulls_except_description() {
        let p = |j: &str| {
            SubscriptionPatch::parse(&serde_json::from_str(j).unwrap(), UrlPolicy::STRICT)
        };
        assert_eq!(p("{}").unwrap_err()[0].field, "body");
        assert_eq!(p(r#"{"url": null}"#).unwrap_err()[0].field, "url");
        assert_eq!(
            p(r#"{"description": null}"#).unwrap().description,
            Some(None)
        );
        assert_eq!(p(r#"{"enabled": false}"#).unwrap().enabled, Some(false));
        assert_eq!(
            p(r#"{"url": "http://example.com"}"#).unwrap_err()[0].field,
            "url"
        );
    }
}
