//! Searching users: the query as sent, the filter it validates into, and the name
//! index's partition.

use aloft_shared::FieldError;
use serde::Deserialize;

use super::{Email, MAX_NAME_CHARS, Role};

/// `GET /users` query as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    pub email: Option<String>,
    pub role: Option<String>,
    pub name_prefix: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// A search: at least one filter, and a user matches when every filter given matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    /// Exact email, case-insensitive (the folded key).
    pub email: Option<String>,
    pub role: Option<Role>,
    /// Case-folded name prefix.
    pub name_prefix: Option<String>,
}

impl SearchFilter {
    /// Every bad filter is named; none at all names `query`.
    pub fn parse(p: &SearchParams) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut filter = Self::default();
        if let Some(e) = &p.email {
            match Email::parse(e) {
                Ok(e) => filter.email = Some(e.key()),
                Err(m) => errors.push(FieldError::new("email", m)),
            }
        }
        if let Some(r) = &p.role {
            match Role::parse(r) {
                Ok(r) => filter.role = Some(r),
                Err(m) => errors.push(FieldError::new("role", m)),
            }
        }
        if let Some(prefix) = &p.name_prefix {
            // Counted as sent: folding may lengthen it (`İ` folds to two characters), and
            // any name's own text must be a valid prefix of it.
            let raw = prefix;
            let prefix = prefix.trim();
            if prefix.is_empty() || raw.chars().count() > MAX_NAME_CHARS {
                errors.push(FieldError::new(
                    "name_prefix",
                    format!("must be 1 to {MAX_NAME_CHARS} characters"),
                ));
            } else {
                filter.name_prefix = Some(prefix.to_lowercase());
            }
        }
        if errors.is_empty() && filter == Self::default() {
            errors.push(FieldError::new(
                "query",
                "give at least one of email, role, name_prefix",
            ));
        }
        if errors.is_empty() {
            Ok(filter)
        } else {
            Err(errors)
        }
    }

    /// Names the query a cursor belongs to, so it cannot continue another one.
    pub fn cursor_scope(&self) -> String {
        let mut scope = String::from("users");
        if let Some(e) = &self.email {
            scope.push_str(&format!(":email:{e}"));
        }
        if let Some(r) = &self.role {
            scope.push_str(&format!(":role:{r}"));
        }
        if let Some(p) = &self.name_prefix {
            scope.push_str(&format!(":name:{p}"));
        }
        scope
    }
}

/// The first character of a folded name: the partition of the name index.
pub fn name_initial(folded: &str) -> String {
    folded.chars().next().map(String::from).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_takes_exactly_one_valid_filter() {
        let p = |email: Option<&str>, role: Option<&str>, name: Option<&str>| SearchParams {
            email: email.map(Into::into),
            role: role.map(Into::into),
            name_prefix: name.map(Into::into),
            ..Default::default()
        };
        let only = |f: SearchFilter| Ok(f);
        assert_eq!(
            SearchFilter::parse(&p(Some(" Ada@X.io "), None, None)),
            only(SearchFilter {
                email: Some("ada@x.io".into()),
                ..Default::default()
            })
        );
        assert_eq!(
            SearchFilter::parse(&p(None, Some("viewer"), None)),
            only(SearchFilter {
                role: Some(Role::Viewer),
                ..Default::default()
            })
        );
        assert_eq!(
            SearchFilter::parse(&p(None, None, Some("AdA"))),
            only(SearchFilter {
                name_prefix: Some("ada".into()),
                ..Default::default()
            })
        );
        // Filters combine: every one given must match.
        assert_eq!(
            SearchFilter::parse(&p(Some("a@b.co"), Some("admin"), Some("A"))),
            only(SearchFilter {
                email: Some("a@b.co".into()),
                role: Some(Role::Admin),
                name_prefix: Some("a".into()),
            })
        );
        let fields = |q| -> Vec<String> {
            SearchFilter::parse(&q)
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(p(None, None, None)), ["query"]);
        assert_eq!(fields(p(None, Some("boss"), None)), ["role"]);
        assert_eq!(fields(p(None, None, Some("  "))), ["name_prefix"]);
        assert_eq!(
            fields(p(Some("nope"), Some("boss"), None)),
            ["email", "role"]
        );
        let role = |r| SearchFilter {
            role: Some(r),
            ..Default::default()
        };
        assert_ne!(
            role(Role::Admin).cursor_scope(),
            role(Role::Viewer).cursor_scope()
        );
        assert_ne!(
            role(Role::Admin).cursor_scope(),
            SearchFilter {
                name_prefix: Some("a".into()),
                ..role(Role::Admin)
            }
            .cursor_scope()
        );
    }

    #[test]
    fn name_initial_is_the_first_character() {
        assert_eq!(name_initial("élodie"), "é");
        assert_eq!(name_initial(""), "");
    }
}
