//! Bodies as `ApiJson` reads them (an object, each field of its documented type) and then
//! as the domain validates them: (body, status, first field named). Webhook bodies have no
//! number or nested object fields.

use super::*;
use crate::ssrf::UrlPolicy;
use aloft_shared::extract::parse_json;
use aloft_shared::strict::Object;

fn answer<T: serde::de::DeserializeOwned>(
    body: &str,
    validate: fn(&T) -> Result<(), Vec<FieldError>>,
) -> (u16, Option<String>) {
    match parse_json::<Object<T>>(body.as_bytes()) {
        Err(p) => (p.status, p.errors.first().map(|e| e.field.clone())),
        Ok(Object(req)) => match validate(&req) {
            Ok(()) => (200, None),
            Err(errors) => (422, errors.first().map(|e| e.field.clone())),
        },
    }
}

fn check<T: serde::de::DeserializeOwned>(
    cases: &[(&str, u16, Option<&str>)],
    validate: fn(&T) -> Result<(), Vec<FieldError>>,
) {
    for (body, status, field) in cases {
        let got = answer(body, validate);
        assert_eq!(got, (*status, field.map(str::to_owned)), "{body}");
    }
}

#[test]
fn create_bodies_are_the_documented_shape() {
    check::<CreateWebhookRequest>(
        &[
            (
                r#"{"url": "https://example.com/h", "event_types": ["user.*"]}"#,
                200,
                None,
            ),
            (
                r#"["https://example.com/h", ["user.*"]]"#,
                422,
                Some("body"),
            ),
            (
                r#"{"url": null, "event_types": ["user.*"]}"#,
                422,
                Some("url"),
            ),
            (
                r#"{"url": "https://example.com/h", "event_types": null}"#,
                422,
                Some("event_types"),
            ),
            (
                r#"{"url": "https://example.com/h", "event_types": "user.*"}"#,
                422,
                Some("event_types"),
            ),
            (
                r#"{"url": "https://example.com/h", "event_types": ["user.*"], "description": null}"#,
                422,
                Some("description"),
            ),
            (
                r#"{"url": "https://example.com/h"}"#,
                422,
                Some("event_types"),
            ),
        ],
        |r| NewSubscription::parse(r, UrlPolicy::STRICT).map(drop),
    );
}

#[test]
fn patch_bodies_are_the_documented_shape() {
    check::<UpdateWebhookRequest>(
        &[
            (r#"{"enabled": true}"#, 200, None),
            // Documented: `null` clears the description.
            (r#"{"description": null}"#, 200, None),
            (r#"{}"#, 422, Some("body")),
            (r#"[true]"#, 422, Some("body")),
            (r#"{"enabled": null}"#, 422, Some("enabled")),
            (r#"{"url": null}"#, 422, Some("url")),
            (r#"{"event_types": null}"#, 422, Some("event_types")),
            (r#"{"enabled": "yes"}"#, 422, Some("enabled")),
            (r#"{"enabled": 1.0}"#, 422, Some("enabled")),
        ],
        |r| SubscriptionPatch::parse(r, UrlPolicy::STRICT).map(drop),
    );
}

#[test]
fn replay_bodies_are_the_documented_shape() {
    check::<ReplayRequest>(
        &[
            (r#"{"since": "2026-01-02T03:04:05Z"}"#, 200, None),
            (r#"{}"#, 422, Some("since")),
            (r#"["2026-01-02T03:04:05Z"]"#, 422, Some("body")),
            (r#"{"since": null}"#, 422, Some("since")),
            (r#"{"since": 1767323045}"#, 422, Some("since")),
        ],
        |r| r.parse().map(drop),
    );
}
