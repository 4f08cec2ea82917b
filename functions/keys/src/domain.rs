//! The rules of API keys, free of I/O: what a valid key request is, what a stored key
//! shows, and whether a presented token is let in.

use aloft_shared::FieldError;
use aloft_shared::auth::{Scope, Scopes, hash_token, key_id_of};
use aloft_shared::strict::{some, some_object};
use serde::{Deserialize, Serialize};

use crate::limit::{RateLimit, RateLimitRequest};

pub const MAX_NAME_CHARS: usize = 100;

/// `POST /keys` body as sent; validated by [`NewKey::parse`] so every bad field is named.
/// A field sent as `null` (or any other wrong type) is a 422 naming it, not "absent".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    #[serde(default, deserialize_with = "some")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub scopes: Option<Vec<String>>,
    /// Optional: the key's own limit, enforced by the authorizer. An object only.
    #[serde(default, deserialize_with = "some_object")]
    pub rate_limit: Option<RateLimitRequest>,
}

/// A validated request for a new key.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    pub name: String,
    pub scopes: Scopes,
    pub rate_limit: Option<RateLimit>,
}

impl NewKey {
    pub fn parse(req: &CreateKeyRequest) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        // Counted as sent, surrounding spaces included, as the spec's maxLength counts.
        let sent_chars = req.name.as_deref().map_or(0, |n| n.chars().count());
        let name = match req.name.as_deref().map(str::trim) {
            None => {
                errors.push(FieldError::new("name", "is required"));
                None
            }
            Some("") => {
                errors.push(FieldError::new("name", "must not be empty"));
                None
            }
            Some(_) if sent_chars > MAX_NAME_CHARS => {
                errors.push(FieldError::new(
                    "name",
                    format!("must be at most {MAX_NAME_CHARS} characters"),
                ));
                None
            }
            Some(n) if n.chars().any(char::is_control) => {
                errors.push(FieldError::new(
                    "name",
                    "must not contain control characters",
                ));
                None
            }
            Some(n) => Some(n.to_owned()),
        };
        let scopes = match &req.scopes {
            None => {
                errors.push(FieldError::new("scopes", "is required"));
                None
            }
            Some(list) if list.is_empty() => {
                errors.push(FieldError::new(
                    "scopes",
                    "must name at least one scope; a key without scopes can do nothing",
                ));
                None
            }
            Some(list) => {
                let mut parsed = Vec::new();
                for (i, raw) in list.iter().enumerate() {
                    match raw.parse::<Scope>() {
                        Ok(s) => parsed.push(s),
                        Err(_) => errors.push(FieldError::new(
                            format!("scopes/{i}"),
                            format!("unknown scope `{raw}`; known scopes: {}", known_scopes()),
                        )),
                    }
                }
                Some(Scopes::new(parsed))
            }
        };
        let rate_limit = match &req.rate_limit {
            None => None,
            Some(r) => match RateLimit::parse(r) {
                Ok(limit) => Some(limit),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            },
        };
        match (name, scopes) {
            (Some(name), Some(scopes)) if errors.is_empty() => Ok(Self {
                name,
                scopes,
                rate_limit,
            }),
            _ => Err(errors),
        }
    }
}

fn known_scopes() -> String {
    Scope::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A key as `GET /keys` shows it: everything but the secret, which is never kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    /// The key id that issued this key, or `bootstrap` for one made by `create-admin-key`.
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

impl ApiKey {
    pub fn new(id: String, new: &NewKey, created_at: String, created_by: String) -> Self {
        Self {
            id,
            name: new.name.clone(),
            scopes: new.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            created_at,
            created_by,
            revoked_at: None,
            rate_limit: new.rate_limit,
        }
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// What the authorizer tells API Gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow { key_id: String, scopes: String },
    Deny(DenyReason),
}

/// Why a token was refused; logged, never returned (the gateway answers a bare 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    NoBearerToken,
    NotAnAloftKey,
    UnknownKey,
    WrongSecret,
    Revoked,
    /// Allowed by its key, but over the key's own rate limit.
    OverRateLimit,
}

/// The token's key id, if the token has aloft's shape (so the store can be asked).
pub fn lookup_id(token: &str) -> Option<&str> {
    key_id_of(token)
}

/// Decides on a presented token given the key stored under its id (and that key's
/// secret hash). Comparing hashes of a 256-bit secret leaks nothing useful by timing.
pub fn decide(token: &str, stored: Option<(&ApiKey, &str)>) -> Decision {
    let Some(_) = key_id_of(token) else {
        return Decision::Deny(DenyReason::NotAnAloftKey);
    };
    let Some((key, secret_hash)) = stored else {
        return Decision::Deny(DenyReason::UnknownKey);
    };
    if hash_token(token) != secret_hash {
        return Decision::Deny(DenyReason::WrongSecret);
    }
    if key.is_revoked() {
        return Decision::Deny(DenyReason::Revoked);
    }
    Decision::Allow {
        key_id: key.id.clone(),
        scopes: key.scopes.join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_shared::auth::NewApiKey;

    fn req(name: Option<&str>, scopes: Option<&[&str]>) -> CreateKeyRequest {
        CreateKeyRequest {
            name: name.map(str::to_owned),
            scopes: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
            rate_limit: None,
        }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_valid_request_is_trimmed_and_its_scopes_parsed() {
        let k = NewKey::parse(&req(Some("  ci deploys "), Some(&["users:read", "admin"]))).unwrap();
        assert_eq!(k.name, "ci deploys");
        assert_eq!(k.scopes.to_string(), "admin users:read");
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let e = NewKey::parse(&req(None, None)).unwrap_err();
        assert_eq!(fields(e), ["name", "scopes"]);
        let e = NewKey::parse(&req(Some(" "), Some(&[]))).unwrap_err();
        assert_eq!(fields(e), ["name", "scopes"]);
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        let e =
            NewKey::parse(&req(Some(&long), Some(&["users:read", "root", "users:*"]))).unwrap_err();
        assert_eq!(fields(e), ["name", "scopes/1", "scopes/2"]);
        let mut r = req(Some("x"), Some(&["admin"]));
        r.rate_limit = Some(RateLimitRequest {
            per_second: Some(5.0),
            burst: Some(0),
        });
        assert_eq!(fields(NewKey::parse(&r).unwrap_err()), ["rate_limit.burst"]);
    }

    fn stored(new: &NewApiKey, revoked: bool) -> ApiKey {
        let mut key = ApiKey::new(
            new.key_id.clone(),
            &NewKey {
                name: "k".into(),
                scopes: Scopes::parse("users:read users:write").unwrap(),
                rate_limit: None,
            },
            "2026-01-01T00:00:00.000000Z".into(),
            "bootstrap".into(),
        );
        if revoked {
            key.revoked_at = Some("2026-01-02T00:00:00.000000Z".into());
        }
        key
    }

    #[test]
    fn the_right_secret_of_a_live_key_is_let_in_with_its_scopes() {
        let new = NewApiKey::generate();
        let key = stored(&new, false);
        assert_eq!(
            decide(&new.token, Some((&key, &new.token_hash))),
            Decision::Allow {
                key_id: new.key_id.clone(),
                scopes: "users:read users:write".into()
            }
        );
    }

    #[test]
    fn wrong_secrets_unknown_and_revoked_keys_are_refused() {
        let new = NewApiKey::generate();
        let other = NewApiKey::generate();
        let key = stored(&new, false);
        assert_eq!(
            decide(&other.token, Some((&key, &new.token_hash))),
            Decision::Deny(DenyReason::WrongSecret)
        );
        assert_eq!(
            decide(&new.token, None),
            Decision::Deny(DenyReason::UnknownKey)
        );
        assert_eq!(
            decide("sk_live_nope", None),
            Decision::Deny(DenyReason::NotAnAloftKey)
        );
        let revoked = stored(&new, true);
        assert_eq!(
            decide(&new.token, Some((&revoked, &new.token_hash))),
            Decision::Deny(DenyReason::Revoked)
        );
    }

    mod properties {
        use super::super::*;
        use super::{fields, stored};
        use aloft_shared::auth::NewApiKey;
        use proptest::prelude::*;

        fn scope_name() -> impl Strategy<Value = String> {
            prop_oneof![
                proptest::sample::select(Scope::ALL).prop_map(|s| s.as_str().to_owned()),
                "[a-z]{1,9}:(read|write|\\*)|\\PC{0,12}| ?admin ?|ADMIN",
            ]
        }

        proptest! {
            #[test]
            fn key_names_are_trimmed_bounded_and_free_of_control_characters(
                name in "\\PC{0,120}|[ \t]?[a-zé ]{95,105}[ \t]?|[a-z]{0,4}[\\x00-\\x1f\\x7f\u{85}][a-z]{0,4}",
            ) {
                let req = CreateKeyRequest {
                    name: Some(name.clone()),
                    scopes: Some(vec!["admin".into()]),
                    rate_limit: None,
                };
                let trimmed = name.trim();
                let ok = !trimmed.is_empty()
                    && name.chars().count() <= MAX_NAME_CHARS
                    && !trimmed.chars().any(char::is_control);
                match NewKey::parse(&req) {
                    Ok(k) => {
                        prop_assert!(ok);
                        prop_assert_eq!(k.name.as_str(), trimmed);
                    }
                    Err(e) => {
                        prop_assert!(!ok, "{:?}", name);
                        prop_assert_eq!(fields(e), ["name"]);
                    }
                }
            }

            /// Every unknown scope is named by its index; known ones make up the key's set.
            #[test]
            fn every_unknown_scope_is_named_by_its_index(list in proptest::collection::vec(scope_name(), 0..6)) {
                let req = CreateKeyRequest {
                    name: Some("k".into()),
                    scopes: Some(list.clone()),
                    rate_limit: None,
                };
                let unknown: Vec<String> = list
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.parse::<Scope>().is_err())
                    .map(|(i, _)| format!("scopes/{i}"))
                    .collect();
                match NewKey::parse(&req) {
                    Ok(k) => {
                        prop_assert!(unknown.is_empty() && !list.is_empty());
                        let names: Vec<&str> = k.scopes.iter().map(Scope::as_str).collect();
                        for s in &list {
                            prop_assert!(names.contains(&s.as_str()));
                        }
                    }
                    Err(e) if list.is_empty() => prop_assert_eq!(fields(e), ["scopes"]),
                    Err(e) => prop_assert_eq!(fields(e), unknown),
                }
            }

            /// A presented token of any shape gets a decision, never a panic; only the
            /// exact token of a live key is let in.
            #[test]
            fn any_presented_token_gets_a_decision(
                t in "\\PC{0,100}|aloft_[0-9a-f]{32}_[A-Za-z0-9_-]{43}|aloft_[0-9a-f]{31,33}_[A-Za-z0-9_-]{42,44}",
            ) {
                let new = NewApiKey::generate();
                let key = stored(&new, false);
                let stored_key = lookup_id(&t).map(|_| (&key, new.token_hash.as_str()));
                match decide(&t, stored_key) {
                    Decision::Allow { .. } => prop_assert_eq!(&t, &new.token),
                    Decision::Deny(DenyReason::NotAnAloftKey) => prop_assert!(lookup_id(&t).is_none()),
                    Decision::Deny(r) => prop_assert_eq!(r, DenyReason::WrongSecret),
                }
            }
        }
    }
}

/// Bodies as `ApiJson` reads them (an object, each field of its documented type) and then
/// as [`NewKey::parse`] validates them: (body, status, first field named).
#[cfg(test)]
mod strict_bodies {
    use super::*;
    use aloft_shared::extract::parse_json;
    use aloft_shared::strict::Object;

    fn answer(body: &str) -> (u16, Option<String>) {
        match parse_json::<Object<CreateKeyRequest>>(body.as_bytes()) {
            Err(p) => (p.status, p.errors.first().map(|e| e.field.clone())),
            Ok(Object(req)) => match NewKey::parse(&req) {
                Ok(_) => (200, None),
                Err(errors) => (422, errors.first().map(|e| e.field.clone())),
            },
        }
    }

    #[test]
    fn create_bodies_are_the_documented_shape() {
        let cases: &[(&str, u16, Option<&str>)] = &[
            (r#"{"name": "ci", "scopes": ["admin"]}"#, 200, None),
            (
                r#"{"name": "ci", "scopes": ["admin"], "rate_limit": {"per_second": 5, "burst": 10}}"#,
                200,
                None,
            ),
            // A whole number written as a float is that integer.
            (
                r#"{"name": "ci", "scopes": ["admin"], "rate_limit": {"per_second": 0.5, "burst": 3.0}}"#,
                200,
                None,
            ),
            (r#"{}"#, 422, Some("name")),
            (r#"["ci", ["admin"], null]"#, 422, Some("body")),
            (r#"null"#, 422, Some("body")),
            (r#"{"name": null, "scopes": ["admin"]}"#, 422, Some("name")),
            (r#"{"name": "ci", "scopes": null}"#, 422, Some("scopes")),
            (r#"{"name": "ci", "scopes": "admin"}"#, 422, Some("scopes")),
            (
                r#"{"name": "ci", "scopes": ["admin"], "rate_limit": null}"#,
                422,
                Some("rate_limit"),
            ),
            (
                r#"{"name": "ci", "scopes": ["admin"], "rate_limit": [5, 10]}"#,
                422,
                Some("rate_limit"),
            ),
            (
                r#"{"name": "ci", "scopes": ["admin"], "rate_limit": {"per_second": null, "burst": 10}}"#,
                422,
                Some("rate_limit.per_second"),
            ),
            (
                r#"{"name": "ci", "scopes": ["admin"], "rate_limit": {"per_second": 5, "burst": 2.5}}"#,
                422,
                Some("rate_limit.burst"),
            ),
            (
                r#"{"name": "ci", "scopes": ["admin"], "rate_limit": {"per_second": 5}}"#,
                422,
                Some("rate_limit.burst"),
            ),
            (
                r#"{"name": "ci", "scopes": ["admin"], "rate_limit": {"rps": 5}}"#,
                400,
                Some("rate_limit.rps"),
            ),
        ];
        for (body, status, field) in cases {
            assert_eq!(answer(body), (*status, field.map(str::to_owned)), "{body}");
        }
    }
}
