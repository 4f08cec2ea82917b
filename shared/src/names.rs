//! Service names as the registry and the scaler read them: one rule, matching the
//! `ServiceName` schema of openapi.yaml (`^[a-z]([a-z0-9-]*[a-z0-9])?$`, 1 to 63).
//! Quality's service names are another rule (what its metrics name a service) and are not
//! these.

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// A service name: a DNS label (1–63 of `a-z`, `0-9`, `-`; starts with a letter; does not
/// end with `-`), so it can be used in hostnames and metric dimensions as is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl ServiceName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = (1..=63).contains(&raw.len())
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && !raw.ends_with('-')
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(
                "must be 1 to 63 of a-z, 0-9 and '-', start with a letter and not end with '-'"
                    .into(),
            )
        }
    }

    /// A service name from the `{service}` path parameter: when it is not one, the error
    /// names `service` (a 422).
    pub fn from_path(raw: &str) -> Result<Self, FieldError> {
        Self::parse(raw).map_err(|m| FieldError::new("service", m))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServiceName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ServiceName> for String {
    fn from(n: ServiceName) -> Self {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn service_names_are_dns_labels() {
        for ok in ["a", "payments", "user-api-2", "a-1", &"a".repeat(63)] {
            assert!(ServiceName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "2fa",
            "-a",
            "a-",
            "A",
            "Api",
            "a_b",
            "a.b",
            &"a".repeat(64),
        ] {
            assert!(ServiceName::parse(bad).is_err(), "{bad}");
        }
    }

    fn is_dns_label(s: &str) -> bool {
        let b = s.as_bytes();
        (1..=63).contains(&b.len())
            && b[0].is_ascii_lowercase()
            && b[b.len() - 1] != b'-'
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    }

    proptest! {
        #[test]
        fn valid_service_names_round_trip(s in "[a-z]([a-z0-9-]{0,61}[a-z0-9])?") {
            let name = ServiceName::parse(&s).unwrap();
            prop_assert_eq!(name.as_str(), s.as_str());
            let json = serde_json::to_string(&name).unwrap();
            prop_assert_eq!(serde_json::from_str::<ServiceName>(&json).unwrap(), name);
        }

        /// Near-misses (upper case, `_`, a leading digit or `-`, a trailing `-`, 64
        /// characters, padding, non-ASCII letters) are refused; what passes is a label.
        #[test]
        fn service_names_are_exactly_dns_labels(
            s in "[a-z]([a-z0-9-]{0,61}[a-z0-9])?|[a-zA-Z0-9_. -]{0,66}|[a-z0-9-]{60,66}|[a-zé]{1,5}|\\PC{0,20}",
        ) {
            match ServiceName::parse(&s) {
                Ok(n) => {
                    prop_assert!(is_dns_label(&s), "{:?}", s);
                    prop_assert_eq!(n.as_str(), s.as_str());
                }
                Err(_) => prop_assert!(!is_dns_label(&s), "{:?}", s),
            }
            // From a path the same rule holds, as an error naming `service`.
            match ServiceName::from_path(&s) {
                Ok(_) => prop_assert!(is_dns_label(&s)),
                Err(e) => prop_assert_eq!(e.field, "service"),
            }
        }
    }
}
