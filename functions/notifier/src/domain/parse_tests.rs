//! Properties of the webhook parsers: event type filters, subscriptions and patches,
//! delivery status filters, replay times, retry schedules and kept response bodies.

use proptest::prelude::*;

use crate::domain::{
    CreateWebhookRequest, DeliveryStatus, EventTypeFilter, MAX_DESCRIPTION_CHARS,
    MAX_EVENT_TYPE_CHARS, MAX_EVENT_TYPES, NewSubscription, RESPONSE_BODY_KEPT, ReplayRequest,
    RetrySchedule, SubscriptionPatch, UpdateWebhookRequest, keep_body, parse_event_types,
};
use crate::ssrf::UrlPolicy;

/// An event type as the platform names them: dot-separated segments of `a-z0-9_`.
const EVENT_TYPE: &str = "[a-z0-9_]{1,12}(\\.[a-z0-9_]{1,12}){0,3}";

fn is_segmented(s: &str) -> bool {
    s.split('.').all(|seg| {
        !seg.is_empty()
            && seg
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// The spec's `description`: at most 500 characters as sent (trimmed when stored), no
/// control characters.
fn is_spec_description(s: &str) -> bool {
    s.chars().count() <= MAX_DESCRIPTION_CHARS && !s.trim().chars().any(char::is_control)
}

proptest! {
    #[test]
    fn event_types_and_prefixes_parse_and_show_as_sent(t in EVENT_TYPE, wildcard in any::<bool>()) {
        let text = if wildcard { format!("{t}.*") } else { t.clone() };
        prop_assume!(text.chars().count() <= MAX_EVENT_TYPE_CHARS);
        let f = EventTypeFilter::parse(&text).unwrap();
        prop_assert_eq!(f.to_string(), text.clone());
        let json = serde_json::to_string(&f).unwrap();
        prop_assert_eq!(serde_json::from_str::<EventTypeFilter>(&json).unwrap(), f.clone());
        // A filter takes its own type, and a prefix every type under it (never the bare
        // prefix, nor a sibling that merely starts with the same letters).
        prop_assert_eq!(f.matches(&t), !wildcard);
        if wildcard {
            let below = format!("{t}.x");
            let sibling = format!("{t}x.y");
            prop_assert!(f.matches(&below));
            prop_assert!(!f.matches(&sibling));
        }
    }

    /// Near-misses (upper case, padding, empty segments, `*` inside, other wildcards)
    /// are refused; what passes is `*`, a segmented type or a segmented prefix.
    #[test]
    fn only_documented_filters_parse(
        s in "[a-zA-Z0-9_.* -]{0,20}|[ ]?user\\.created[ ]?|\\*\\.\\*|\\.\\*|[a-z]{95,105}(\\.\\*)?|\\PC{0,10}",
    ) {
        match EventTypeFilter::parse(&s) {
            Ok(EventTypeFilter::All) => prop_assert_eq!(s.as_str(), "*"),
            Ok(f) => {
                prop_assert!(s.chars().count() <= MAX_EVENT_TYPE_CHARS);
                prop_assert!(is_segmented(s.strip_suffix(".*").unwrap_or(&s)), "{:?}", s);
                prop_assert_eq!(f.to_string(), s);
            }
            Err(_) => {
                let name = s.strip_suffix(".*").unwrap_or(&s);
                prop_assert!(s != "*" && (s.is_empty() || s.chars().count() > MAX_EVENT_TYPE_CHARS || !is_segmented(name)));
            }
        }
    }

    #[test]
    fn event_type_lists_are_bounded_deduplicated_and_keep_their_order(
        list in proptest::collection::vec(prop_oneof![8 => "user\\.created|payment\\.\\*|\\*|[a-z]{1,3}", 1 => "Bad|a\\.\\.b|"], 0..55),
    ) {
        match parse_event_types(&list) {
            Ok(filters) => {
                prop_assert!((1..=MAX_EVENT_TYPES).contains(&list.len()));
                let mut expected: Vec<String> = Vec::new();
                for t in &list {
                    if !expected.contains(t) {
                        expected.push(t.clone());
                    }
                }
                let shown: Vec<String> = filters.iter().map(ToString::to_string).collect();
                prop_assert_eq!(shown, expected);
            }
            Err(e) if list.is_empty() || list.len() > MAX_EVENT_TYPES => prop_assert_eq!(e.field, "event_types"),
            Err(e) => {
                let first_bad = list.iter().position(|t| EventTypeFilter::parse(t).is_err()).unwrap();
                prop_assert_eq!(e.field, format!("event_types[{first_bad}]"));
            }
        }
    }

    /// Any create body: a subscription within the rules, or every bad field named.
    #[test]
    fn any_subscription_keeps_the_rules_or_names_its_fields(
        url in proptest::option::of("https://example\\.com/[a-z]{0,8}|https://93\\.184\\.216\\.34/h|http://example\\.com/|https://127\\.0\\.0\\.1/|[ ]https://example\\.com/|\\PC{0,10}"),
        types in proptest::option::of(proptest::collection::vec("user\\.created|payment\\.\\*|\\*|Bad", 0..4)),
        description in proptest::option::of("[ ]{0,2}[a-zé ]{0,20}[ ]{0,2}|[ ]{1,3}[a-z]{498,500}|[a-z]{1,3}[\\x00-\\x08\\x7f][a-z]{1,3}|"),
    ) {
        let req = CreateWebhookRequest { url: url.clone(), event_types: types.clone(), description: description.clone() };
        match NewSubscription::parse(&req, UrlPolicy::STRICT) {
            Ok(s) => {
                let sent = url.unwrap_or_default();
                prop_assert!(sent.starts_with("https://"), "{:?}", sent);
                prop_assert!(!s.event_types.is_empty());
                let d = description.unwrap_or_default();
                prop_assert!(is_spec_description(&d), "{:?}", d);
                prop_assert_eq!(s.description.unwrap_or_default(), d.trim());
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(["url", "event_types", "description"].contains(&e.field.as_str()) || e.field.starts_with("event_types["), "{:?}", e);
                }
            }
        }
    }

    /// Any patch body: at least one field, `null` only to clear `description`.
    #[test]
    fn any_patch_names_its_bad_fields(
        fields in proptest::collection::btree_map(
            "url|event_types|enabled|description",
            prop_oneof![
                Just(serde_json::Value::Null),
                Just(serde_json::json!("https://example.com/h")),
                Just(serde_json::json!(["user.created"])),
                Just(serde_json::json!([])),
                Just(serde_json::json!(true)),
                Just(serde_json::json!("notes")),
            ],
            0..4,
        ),
    ) {
        let body = serde_json::Value::Object(fields.clone().into_iter().collect());
        let Ok(req) = serde_json::from_value::<UpdateWebhookRequest>(body) else {
            // A value of the wrong type for its field: the body reader's 422.
            return Ok(());
        };
        match SubscriptionPatch::parse(&req, UrlPolicy::STRICT) {
            Ok(p) => {
                prop_assert!(!fields.is_empty());
                prop_assert_eq!(p.description.is_some(), fields.contains_key("description"));
                if let Some(serde_json::Value::Null) = fields.get("description") {
                    prop_assert_eq!(p.description, Some(None));
                }
            }
            Err(errors) => {
                for e in &errors {
                    prop_assert!(e.field == "body" || fields.contains_key(&e.field) || e.field.starts_with("event_types["), "{:?}", e);
                }
                for (f, v) in &fields {
                    if v.is_null() && f != "description" {
                        prop_assert!(errors.iter().any(|e| &e.field == f));
                    }
                }
            }
        }
    }

    /// `?status=`: exactly one of the names, as the spec's enum says.
    #[test]
    fn delivery_statuses_are_exactly_their_names(s in "[a-z]{0,10}|[ ]?(pending|failed)[ ]?|Delivered|\\PC{0,8}") {
        match DeliveryStatus::parse(&s) {
            Ok(st) => prop_assert_eq!(st.as_str(), s.as_str()),
            Err(e) => {
                prop_assert!(DeliveryStatus::ALL.iter().all(|st| st.as_str() != s));
                prop_assert_eq!(e.field, "status");
            }
        }
    }

    /// `since`: an RFC 3339 time as sent (the spec's date-time), shown fixed-width UTC.
    #[test]
    fn replay_since_is_a_time_or_named(
        s in "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])|[ ]2026-01-02T03:04:05Z[ ]?|9999-12-31T23:59:59-01:00|\\PC{0,30}",
    ) {
        match (ReplayRequest { since: Some(s.clone()) }).parse() {
            Ok(shown) => {
                let sent = aloft_shared::clock::parse_rfc3339(&s);
                prop_assert!(sent.is_some(), "{:?}", s);
                prop_assert_eq!(shown.len(), 24);
                let back = aloft_shared::clock::parse_rfc3339(&shown).unwrap();
                prop_assert_eq!(
                    back.unix_timestamp_nanos(),
                    sent.unwrap().unix_timestamp_nanos().div_euclid(1_000_000) * 1_000_000
                );
            }
            Err(e) => {
                prop_assert!(aloft_shared::clock::parse_rfc3339(&s).is_none(), "{:?}", s);
                prop_assert_eq!(&e[0].field, "since");
            }
        }
    }

    #[test]
    fn retry_schedules_are_1_to_20_delays_of_at_most_a_week(
        delays in proptest::collection::vec(prop_oneof![0u64..=604_800, Just(604_801), any::<u64>()], 0..23),
        pad in "[ ]{0,2}",
    ) {
        let text = delays.iter().map(|d| format!("{pad}{d}{pad}")).collect::<Vec<_>>().join(",");
        let ok = (1..=20).contains(&delays.len()) && delays.iter().all(|d| *d <= 604_800);
        match text.parse::<RetrySchedule>() {
            Ok(s) => {
                prop_assert!(ok);
                prop_assert_eq!(s.attempts() as usize, delays.len());
                for (i, d) in delays.iter().enumerate() {
                    prop_assert_eq!(s.delay_before(i as u32), Some(*d));
                }
                prop_assert_eq!(s.delay_before(delays.len() as u32), None);
            }
            Err(_) => prop_assert!(!ok),
        }
    }

    #[test]
    fn retry_schedule_text_never_panics(s in "[0-9, -]{0,40}|\\PC{0,20}") {
        if let Ok(schedule) = s.parse::<RetrySchedule>() {
            prop_assert!((1..=20).contains(&schedule.attempts()));
        }
    }

    /// A kept body is at most a KiB, the lossy text of a prefix of what came, never cut
    /// inside a character.
    #[test]
    fn kept_bodies_are_a_prefix_of_at_most_a_kib(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..1100),
            "[a-zé€😀]{300,1100}".prop_map(String::into_bytes),
        ],
    ) {
        let kept = keep_body(&bytes);
        let cut_char = kept.ends_with(char::REPLACEMENT_CHARACTER);
        prop_assert!(!cut_char);
        let whole = String::from_utf8_lossy(&bytes[..bytes.len().min(RESPONSE_BODY_KEPT)]).into_owned();
        prop_assert!(whole.starts_with(&kept));
        if let Ok(text) = std::str::from_utf8(&bytes) {
            prop_assert!(kept.len() <= RESPONSE_BODY_KEPT);
            prop_assert!(text.starts_with(&kept));
        }
    }
}
