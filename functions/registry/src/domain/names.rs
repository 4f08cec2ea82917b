//! Names and tokens: service names are DNS labels; instance ids, tags, versions and meta
//! keys are short tokens, well inside DynamoDB's key limits (1,024 bytes for a sort key).

use serde::{Deserialize, Serialize};

use super::RegistryError;

pub(crate) const TOKEN_RULE: &str = "letters, digits and . _ - : =";

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

    /// A service name from a path, as a 422 naming `service` when it is not one.
    pub fn from_path(raw: &str) -> Result<Self, RegistryError> {
        Self::parse(raw).map_err(|m| RegistryError::field("service", m))
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

/// 1–`max` of letters, digits and `. _ - : =`.
pub(crate) fn is_token(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'='))
}

pub(crate) fn token_message(max: usize) -> String {
    format!("must be 1 to {max} of {TOKEN_RULE}")
}

/// An instance id from a path (`{id}`): the registration's rule, so an id that could
/// never have been registered (or would not fit a key) is a 422, not a store error.
pub fn parse_instance_id(raw: &str) -> Result<String, RegistryError> {
    if is_token(raw, 128) {
        Ok(raw.to_owned())
    } else {
        Err(RegistryError::field("instance_id", token_message(128)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_dns_labels() {
        for ok in ["a", "payments", "user-api-2", &"a".repeat(63)] {
            assert!(ServiceName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "2fa", "-a", "a-", "Api", "a_b", "a.b", &"a".repeat(64)] {
            assert!(ServiceName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_ids_are_tokens_that_fit_a_key() {
        for ok in ["a", "web-1", "i:0=x", &"a".repeat(128)] {
            assert!(parse_instance_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "ü", &"a".repeat(129), &"a".repeat(5000)] {
            assert!(
                matches!(parse_instance_id(bad), Err(RegistryError::Invalid(e)) if e[0].field == "instance_id"),
                "{bad}"
            );
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

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
                s in "[a-zA-Z0-9_. -]{0,66}|[a-z0-9-]{60,66}|[a-zé]{1,5}|\\PC{0,20}",
            ) {
                match ServiceName::parse(&s) {
                    Ok(n) => {
                        prop_assert!(is_dns_label(&s), "{:?}", s);
                        prop_assert_eq!(n.as_str(), s.as_str());
                    }
                    Err(_) => prop_assert!(!is_dns_label(&s), "{:?}", s),
                }
                // From a path the same rule holds, as a 422 naming `service`.
                match ServiceName::from_path(&s) {
                    Ok(_) => prop_assert!(is_dns_label(&s)),
                    Err(RegistryError::Invalid(e)) => prop_assert_eq!(&e[0].field, "service"),
                    Err(e) => prop_assert!(false, "{}", e),
                }
            }

            /// Instance ids from a path: tokens that fit a key, or a 422 naming `instance_id`.
            #[test]
            fn path_instance_ids_are_short_tokens(s in "[A-Za-z0-9._:=-]{1,130}|[a-z]{0,3}[ /#?%ü\\x00][a-z]{0,3}|\\PC{0,140}") {
                let token = (1..=128).contains(&s.len())
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:=".contains(&b));
                match parse_instance_id(&s) {
                    Ok(id) => {
                        prop_assert!(token);
                        prop_assert_eq!(id, s);
                    }
                    Err(RegistryError::Invalid(e)) => {
                        prop_assert!(!token);
                        prop_assert_eq!(&e[0].field, "instance_id");
                    }
                    Err(e) => prop_assert!(false, "{}", e),
                }
            }
        }
    }
}
