//! The names an objective is known by: its service, as the metrics name it, and its own
//! name within that service.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A service as its metrics name it: the `Function` dimension of aloft's request metrics,
/// the `Service` dimension of registry heartbeat metrics. Lambda function names and
/// registry service names both fit: 1–128 of letters, digits, `.`, `_`, `-`, starting with
/// a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl ServiceName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        match raw.chars().next() {
            None => Err("must not be empty".into()),
            _ if raw.len() > 128 => Err("must be at most 128 characters".into()),
            Some(c) if !c.is_ascii_alphanumeric() => {
                Err("must start with a letter or digit".into())
            }
            _ if !raw.chars().all(ok_char) => {
                Err("may contain only letters, digits, `.`, `_` and `-`".into())
            }
            _ => Ok(Self(raw.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServiceName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<ServiceName> for String {
    fn from(s: ServiceName) -> Self {
        s.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An objective's name within its service: 1–64 of `a-z`, `0-9`, `_`, `-`, starting with
/// a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectiveName(String);

impl ObjectiveName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        match raw.chars().next() {
            None => Err("must not be empty".into()),
            _ if raw.len() > 64 => Err("must be at most 64 characters".into()),
            Some(c) if !c.is_ascii_lowercase() => Err("must start with a lowercase letter".into()),
            _ if !raw.chars().all(ok_char) => Err("may contain only a-z, 0-9, `_` and `-`".into()),
            _ => Ok(Self(raw.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ObjectiveName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<ObjectiveName> for String {
    fn from(s: ObjectiveName) -> Self {
        s.0
    }
}

impl fmt::Display for ObjectiveName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn service_names_round_trip_or_are_refused(s in "\\PC{0,140}") {
            match ServiceName::parse(&s) {
                Ok(n) => {
                    prop_assert_eq!(n.as_str(), s.as_str());
                    prop_assert!(s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)));
                }
                Err(_) => prop_assert!(s.is_empty() || s.len() > 128 || !s.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)) || !s.starts_with(|c: char| c.is_ascii_alphanumeric())),
            }
        }

        #[test]
        fn objective_names_never_panic_and_accept_only_the_alphabet(s in "[a-zA-Z0-9_ -]{0,70}") {
            let ok = ObjectiveName::parse(&s).is_ok();
            let expected = !s.is_empty() && s.len() <= 64 && s.starts_with(|c: char| c.is_ascii_lowercase())
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            prop_assert_eq!(ok, expected);
        }
    }
}
