//! Which event types a subscription takes: exact types, prefix wildcards and `*`, and
//! the `event_types` list as sent.

use std::fmt;

use aloft_shared::FieldError;
use serde::{Deserialize, Serialize};

pub const MAX_EVENT_TYPES: usize = 50;
pub const MAX_EVENT_TYPE_CHARS: usize = 100;

/// One entry of a subscription's `event_types`: an exact type (`user.created`), a
/// prefix wildcard (`payment.*`, every type starting `payment.`) or `*` (everything).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EventTypeFilter {
    All,
    Prefix(String),
    Exact(String),
}

impl EventTypeFilter {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw;
        if s == "*" {
            return Ok(Self::All);
        }
        if s.is_empty() || s.chars().count() > MAX_EVENT_TYPE_CHARS {
            return Err(format!("must be 1 to {MAX_EVENT_TYPE_CHARS} characters"));
        }
        let (name, wildcard) = match s.strip_suffix(".*") {
            Some(prefix) => (prefix, true),
            None => (s, false),
        };
        let segment_ok = |seg: &str| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !name.split('.').all(segment_ok) {
            return Err(
                "must be `*`, a type such as `user.created`, or a prefix such as `payment.*` \
                 (lowercase letters, digits, `_`, dot-separated)"
                    .into(),
            );
        }
        Ok(if wildcard {
            Self::Prefix(format!("{name}."))
        } else {
            Self::Exact(name.to_owned())
        })
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Prefix(p) => event_type.starts_with(p.as_str()),
            Self::Exact(t) => t == event_type,
        }
    }
}

impl fmt::Display for EventTypeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Prefix(p) => write!(f, "{p}*"),
            Self::Exact(t) => f.write_str(t),
        }
    }
}

impl TryFrom<String> for EventTypeFilter {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<EventTypeFilter> for String {
    fn from(f: EventTypeFilter) -> Self {
        f.to_string()
    }
}

/// `event_types` as sent: 1–50 filters, duplicates dropped, order kept.
pub fn parse_event_types(raw: &[String]) -> Result<Vec<EventTypeFilter>, FieldError> {
    if raw.is_empty() || raw.len() > MAX_EVENT_TYPES {
        return Err(FieldError::new(
            "event_types",
            format!("must list 1 to {MAX_EVENT_TYPES} event types"),
        ));
    }
    let mut out: Vec<EventTypeFilter> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let f = EventTypeFilter::parse(r)
            .map_err(|m| FieldError::new(format!("event_types[{i}]"), m))?;
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn filters_match_exactly_by_prefix_or_everything() {
        let f = |s: &str| EventTypeFilter::parse(s).unwrap();
        assert!(f("user.created").matches("user.created"));
        assert!(!f("user.created").matches("user.created_twice"));
        assert!(!f("user.created").matches("user.updated"));
        assert!(f("payment.*").matches("payment.succeeded"));
        assert!(f("payment.*").matches("payment.refund.created"));
        assert!(!f("payment.*").matches("payment"));
        assert!(!f("payment.*").matches("payments.succeeded"));
        assert!(f("*").matches("anything.at_all"));
        assert_eq!(f("payment.*").to_string(), "payment.*");
        for bad in [
            " payment.*",
            "",
            "User.Created",
            "user..created",
            "user.*.x",
            ".x",
            "x.",
            "pay*",
            "*.*",
            "a b",
        ] {
            assert!(EventTypeFilter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_types_are_bounded_deduplicated_and_named_by_index() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_event_types(&v(&["a.b", "a.b", "*"])).unwrap().len(),
            2
        );
        assert_eq!(parse_event_types(&v(&[])).unwrap_err().field, "event_types");
        assert_eq!(
            parse_event_types(&v(&["a.b", "B"])).unwrap_err().field,
            "event_types[1]"
        );
    }

    proptest! {
        #[test]
        fn filter_parsing_never_panics_and_round_trips(s in "\\PC{0,120}") {
            if let Ok(f) = EventTypeFilter::parse(&s) {
                prop_assert_eq!(EventTypeFilter::parse(&f.to_string()), Ok(f));
            }
        }
    }
}
