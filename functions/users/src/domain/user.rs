//! A user as stored and shown, how a patch changes it, and what the audit trail records
//! of each change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Email, NewUser, Role, UserName, UserPatch};

/// A user as stored and shown. `version` starts at 1 and grows by one with every change;
/// it is the ETag clients send back in `If-Match`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: Email,
    pub name: UserName,
    pub role: Role,
    pub created_at: String,
    pub updated_at: String,
    pub version: u64,
}

/// One field's change in the audit trail; `None` is "no value" (before creation, after
/// deletion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub from: Option<String>,
    pub to: Option<String>,
}

pub type Changes = BTreeMap<String, Change>;

impl User {
    pub fn create(id: String, new: NewUser, now: &str) -> Self {
        Self {
            id,
            email: new.email,
            name: new.name,
            role: new.role,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            version: 1,
        }
    }

    fn fields(&self) -> [(&'static str, String); 3] {
        [
            ("email", self.email.as_str().to_owned()),
            ("name", self.name.as_str().to_owned()),
            ("role", self.role.as_str().to_owned()),
        ]
    }

    /// Every field from nothing to its value.
    pub fn creation_changes(&self) -> Changes {
        self.fields()
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    Change {
                        from: None,
                        to: Some(v),
                    },
                )
            })
            .collect()
    }

    /// Every field from its value to nothing.
    pub fn deletion_changes(&self) -> Changes {
        self.fields()
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    Change {
                        from: Some(v),
                        to: None,
                    },
                )
            })
            .collect()
    }

    /// The user after `patch`, and what changed. A patch that changes nothing yields no
    /// changes, and the caller should write nothing.
    pub fn apply(&self, patch: &UserPatch, now: &str) -> (User, Changes) {
        let mut next = self.clone();
        if let Some(e) = &patch.email {
            next.email = e.clone();
        }
        if let Some(n) = &patch.name {
            next.name = n.clone();
        }
        if let Some(r) = patch.role {
            next.role = r;
        }
        let changes: Changes = self
            .fields()
            .into_iter()
            .zip(next.fields())
            .filter(|((_, a), (_, b))| a != b)
            .map(|((k, a), (_, b))| {
                (
                    k.to_owned(),
                    Change {
                        from: Some(a),
                        to: Some(b),
                    },
                )
            })
            .collect();
        if !changes.is_empty() {
            next.version += 1;
            next.updated_at = now.to_owned();
        }
        (next, changes)
    }

    /// Whether the patch moves the user to another email identity (not just a change of
    /// letter case), so the new address must be claimed.
    pub fn email_key_changes(&self, next: &User) -> bool {
        self.email.key() != next.email.key()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditAction {
    Created,
    Updated,
    Deleted,
}

/// One entry of a user's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: String,
    pub action: AuditAction,
    /// The API key id that made the change.
    pub actor: String,
    pub changes: Changes,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        let new = NewUser {
            email: Email::parse("ada@example.com").unwrap(),
            name: UserName::parse("Ada").unwrap(),
            role: Role::Member,
        };
        User::create("u1".into(), new, "2026-01-01T00:00:00.000Z")
    }

    #[test]
    fn apply_records_only_real_changes_and_bumps_the_version() {
        let u = user();
        let patch = UserPatch {
            role: Some(Role::Admin),
            name: Some(UserName::parse("Ada").unwrap()),
            email: None,
        };
        let (next, changes) = u.apply(&patch, "later");
        assert_eq!(next.version, 2);
        assert_eq!(next.updated_at, "later");
        assert_eq!(next.created_at, u.created_at);
        assert_eq!(changes.keys().collect::<Vec<_>>(), ["role"]);
        assert_eq!(
            changes["role"],
            Change {
                from: Some("member".into()),
                to: Some("admin".into())
            }
        );

        let (same, none) = u.apply(
            &UserPatch {
                role: Some(Role::Member),
                ..Default::default()
            },
            "later",
        );
        assert!(none.is_empty());
        assert_eq!(same, u);
    }

    #[test]
    fn email_case_change_is_not_a_new_identity() {
        let u = user();
        let patch = UserPatch {
            email: Some(Email::parse("ADA@example.com").unwrap()),
            ..Default::default()
        };
        let (next, changes) = u.apply(&patch, "later");
        assert!(changes.contains_key("email"));
        assert!(!u.email_key_changes(&next));
        let patch = UserPatch {
            email: Some(Email::parse("lovelace@example.com").unwrap()),
            ..Default::default()
        };
        assert!(u.email_key_changes(&u.apply(&patch, "later").0));
    }
}
