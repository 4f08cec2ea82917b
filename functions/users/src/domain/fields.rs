//! The values of a user's fields: the display name and the role (the email address is
//! the shared [`Email`](aloft_shared::email::Email)).

use std::fmt;

use serde::{Deserialize, Serialize};

pub const MAX_NAME_CHARS: usize = 200;

/// A display name: 1–200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("must not be empty".into());
        }
        // Counted as sent, surrounding spaces included, as the spec's maxLength counts.
        if raw.chars().count() > MAX_NAME_CHARS {
            return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Case-folded, for case-insensitive prefix search.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl TryFrom<String> for UserName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<UserName> for String {
    fn from(n: UserName) -> Self {
        n.0
    }
}

/// What a user may do; the one place the list of roles lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Member, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Exactly one of the names, as the API documents the enum (no padding, no other case).
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .ok_or_else(|| format!("must be one of {}", Self::ALL.map(Role::as_str).join(", ")))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_shared::email::Email;

    #[test]
    fn emails() {
        let ok = [
            "a@b.co",
            "  Ada.Lovelace+x@Example.COM ",
            "x@sub.domain.org",
        ];
        for e in ok {
            assert!(Email::parse(e).is_ok(), "{e}");
        }
        let bad = [
            "", "   ", "plain", "@b.co", "a@", "a@b", "a@.co", "a@b..co", "a b@c.co", "a@@b.co",
            "a@b\n.co", "a@-b.co",
        ];
        for e in bad {
            assert!(Email::parse(e).is_err(), "{e:?}");
        }
        assert!(Email::parse(&format!("{}@b.co", "a".repeat(65))).is_err());
        assert!(Email::parse(&format!("a@{}.co", "b".repeat(250))).is_err());
        let e = Email::parse("  Ada@Example.com ").unwrap();
        assert_eq!(e.as_str(), "Ada@Example.com");
        assert_eq!(e.key(), "ada@example.com");
    }

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(UserName::parse("  Ada ").unwrap().as_str(), "Ada");
        assert!(UserName::parse("").is_err());
        assert!(UserName::parse(" \t ").is_err());
        assert!(UserName::parse("a\u{0}b").is_err());
        assert!(
            UserName::parse(&"é".repeat(200)).is_ok(),
            "200 characters, 400 bytes"
        );
        assert!(UserName::parse(&"é".repeat(201)).is_err());
    }

    #[test]
    fn roles_are_a_closed_list() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
        }
        let err = Role::parse("root").unwrap_err();
        assert_eq!(err, "must be one of admin, member, viewer");
        assert!(Role::parse("Admin").is_err(), "roles are lower case");
        assert!(Role::parse(" admin").is_err(), "roles are the enum exactly");
    }
}
