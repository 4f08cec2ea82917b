//! Tokens: instance ids, tags, versions and meta keys are short tokens, well inside
//! DynamoDB's key limits (1,024 bytes for a sort key). Service names are DNS labels, the
//! rule the scaler shares: `aloft_shared::names::ServiceName`.

use super::RegistryError;

pub(crate) const TOKEN_RULE: &str = "letters, digits and . _ - : =";

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

        proptest! {
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
