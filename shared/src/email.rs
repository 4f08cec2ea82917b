//! Email addresses as every capability reads them (a user's, a PayPal payer's): one
//! set of rules, matching the `Email` schema of openapi.yaml.

use serde::{Deserialize, Serialize};

pub const MAX_EMAIL_CHARS: usize = 254;

/// An email address as the user typed it (trimmed). Two emails are the same user when
/// their [`Email::key`]s match, so `Ada@Example.com` and `ada@example.com` collide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim();
        if email.is_empty() {
            return Err("must not be empty".into());
        }
        // Counted as sent, surrounding spaces included, as the spec's maxLength counts.
        if raw.chars().count() > MAX_EMAIL_CHARS {
            return Err(format!("must be at most {MAX_EMAIL_CHARS} characters"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".into());
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("must look like name@example.com".into());
        };
        let domain_ok = domain.contains('.')
            && domain
                .split('.')
                .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'))
            && !domain.contains('@');
        if local.is_empty() || local.chars().count() > 64 || local.contains('@') || !domain_ok {
            return Err("must look like name@example.com".into());
        }
        Ok(Self(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form uniqueness and lookup use.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl TryFrom<String> for Email {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> Self {
        e.0
    }
}
