//! Who is calling and what they may do: API key tokens, scopes, and the [`Authorized`]
//! extractor that makes a handler impossible to write without naming its scope.
//!
//! The authorizer function validates the `Authorization: Bearer` token and passes the
//! key's id and scopes in its context; API Gateway hands that context to the function in
//! `requestContext.authorizer.lambda`, where [`Authorized`] reads it.

use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::request::Parts;
use lambda_http::request::RequestContext;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::problem::Problem;

/// Authorizer context keys, shared by the authorizer that writes them and the extractor
/// that reads them.
pub const CONTEXT_KEY_ID: &str = "key_id";
pub const CONTEXT_SCOPES: &str = "scopes";

macro_rules! scopes {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// A permission an API key can hold. `admin` implies every other scope.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Scope { $($variant),+ }

        impl Scope {
            pub const ALL: &'static [Scope] = &[$(Scope::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $(Scope::$variant => $name),+ }
            }
        }

        impl FromStr for Scope {
            type Err = UnknownScope;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $($name => Ok(Scope::$variant),)+ other => Err(UnknownScope(other.to_owned())) }
            }
        }

        /// Marker types for [`Authorized`], one per scope.
        pub mod scope {
            $(
                #[derive(Debug)]
                pub struct $variant;
                impl super::RequiredScope for $variant { const SCOPE: super::Scope = super::Scope::$variant; }
            )+
        }
    };
}

scopes! {
    Admin => "admin",
    UsersRead => "users:read",
    UsersWrite => "users:write",
    PaymentsRead => "payments:read",
    PaymentsWrite => "payments:write",
    RegistryRead => "registry:read",
    RegistryWrite => "registry:write",
    ScalerRead => "scaler:read",
    ScalerWrite => "scaler:write",
    QualityRead => "quality:read",
    QualityWrite => "quality:write",
    WebhooksRead => "webhooks:read",
    WebhooksWrite => "webhooks:write",
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown scope `{0}`")]
pub struct UnknownScope(pub String);

/// The scopes a key holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Self(scopes.into_iter().collect())
    }

    /// Space-separated, as OAuth writes scopes and as the authorizer context carries them.
    pub fn parse(s: &str) -> Result<Self, UnknownScope> {
        s.split_whitespace()
            .map(Scope::from_str)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.0.contains(&Scope::Admin) || self.0.contains(&scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.0.iter().map(|s| s.as_str()).collect();
        f.write_str(&names.join(" "))
    }
}

/// The API key a request was made with, as the authorizer vouched for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub scopes: Scopes,
}

impl Caller {
    /// Reads the authorizer context API Gateway attached to the request.
    pub fn from_parts(parts: &Parts) -> Result<Self, Problem> {
        let missing =
            || Problem::unauthorized("no authorizer context on the request; call through the API");
        let Some(RequestContext::ApiGatewayV2(ctx)) = parts.extensions.get::<RequestContext>()
        else {
            return Err(missing());
        };
        let fields = &ctx.authorizer.as_ref().ok_or_else(missing)?.fields;
        let key_id = fields
            .get(CONTEXT_KEY_ID)
            .and_then(|v| v.as_str())
            .ok_or_else(missing)?;
        let scopes = fields
            .get(CONTEXT_SCOPES)
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        // Unknown scopes in the context can only come from a newer authorizer; ignore them
        // rather than lock the caller out.
        let scopes = Scopes::new(scopes.split_whitespace().filter_map(|s| s.parse().ok()));
        Ok(Self {
            key_id: key_id.to_owned(),
            scopes,
        })
    }
}

pub trait RequiredScope {
    const SCOPE: Scope;
}

/// A caller holding scope `S`. As a handler argument it rejects the request with a 403
/// problem before the handler runs when the key lacks the scope.
#[derive(Debug)]
pub struct Authorized<S> {
    pub caller: Caller,
    _scope: PhantomData<S>,
}

impl<S> Authorized<S> {
    pub fn key_id(&self) -> &str {
        &self.caller.key_id
    }
}

impl<S: RequiredScope + Send + Sync, St: Send + Sync> FromRequestParts<St> for Authorized<S> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_parts(parts)?;
        if !caller.scopes.allows(S::SCOPE) {
            return Err(Problem::insufficient_scope(S::SCOPE.as_str()));
        }
        Ok(Self {
            caller,
            _scope: PhantomData,
        })
    }
}

/// Prefix that makes an aloft key recognisable to people and secret scanners.
pub const TOKEN_PREFIX: &str = "aloft_";

/// A freshly minted API key: its public id and the token shown to the user once.
pub struct NewApiKey {
    pub key_id: String,
    pub token: String,
    pub token_hash: String,
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("key_id", &self.key_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl NewApiKey {
    /// `aloft_<key id: 32 hex>_<secret: 32 random bytes, base64url>`. The id inside the
    /// token lets the authorizer fetch the key with one GetItem; only the hash is stored.
    pub fn generate() -> Self {
        let key_id = uuid::Uuid::new_v4().simple().to_string();
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = format!("{TOKEN_PREFIX}{key_id}_{}", URL_SAFE_NO_PAD.encode(secret));
        let token_hash = hash_token(&token);
        Self {
            key_id,
            token,
            token_hash,
        }
    }
}

/// SHA-256 of the whole token, hex. A fast hash suffices: the secret has 256 bits of
/// entropy, so there is nothing to brute-force that a slow hash would protect.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key id inside a presented token, if it has aloft's shape at all.
pub fn key_id_of(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some(id)
}

/// The token from an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_every_scope() {
        let admin = Scopes::parse("admin").unwrap();
        assert!(Scope::ALL.iter().all(|s| admin.allows(*s)));
        let reader = Scopes::parse("users:read").unwrap();
        assert!(reader.allows(Scope::UsersRead));
        assert!(!reader.allows(Scope::UsersWrite));
        assert!(!reader.allows(Scope::Admin));
    }

    #[test]
    fn scopes_round_trip_and_reject_unknown_names() {
        let s = Scopes::parse("users:write  users:read").unwrap();
        assert_eq!(s.to_string(), "users:read users:write");
        assert_eq!(
            Scopes::parse("users:read root"),
            Err(UnknownScope("root".into()))
        );
    }

    #[test]
    fn generated_tokens_parse_back_to_their_id_and_hash_stably() {
        let k = NewApiKey::generate();
        assert!(k.token.starts_with("aloft_"));
        assert_eq!(key_id_of(&k.token), Some(k.key_id.as_str()));
        assert_eq!(hash_token(&k.token), k.token_hash);
        assert_eq!(k.token_hash.len(), 64);
        assert!(!format!("{k:?}").contains(&k.token));
    }

    #[test]
    fn foreign_tokens_have_no_key_id() {
        for t in [
            "",
            "aloft_",
            "aloft_abc_def",
            "Bearer x",
            "sk_live_123",
            "aloft_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz_0123456789012345678901234567890123456789012",
        ] {
            assert_eq!(key_id_of(t), None, "{t}");
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn scope() -> impl Strategy<Value = Scope> {
            proptest::sample::select(Scope::ALL)
        }

        proptest! {
            #[test]
            fn scopes_round_trip_through_their_text(set in proptest::collection::btree_set(scope(), 0..6)) {
                let scopes = Scopes::new(set);
                prop_assert_eq!(Scopes::parse(&scopes.to_string()), Ok(scopes));
            }

            /// Any order, repeats and runs of whitespace normalise to the same set, once.
            #[test]
            fn scope_normalisation_is_idempotent(
                names in proptest::collection::vec(scope(), 0..8),
                gaps in proptest::collection::vec("[ \t\n]{1,3}", 8),
            ) {
                let text: String = names
                    .iter()
                    .zip(&gaps)
                    .map(|(s, gap)| format!("{gap}{s}"))
                    .collect();
                let once = Scopes::parse(&text).unwrap();
                prop_assert_eq!(Scopes::parse(&once.to_string()), Ok(once.clone()));
                prop_assert_eq!(once, Scopes::new(names));
            }

            /// Near-misses of a scope name (case, a stray character) are unknown, never
            /// mistaken for a scope.
            #[test]
            fn scope_parsing_refuses_everything_but_the_names(s in "[a-zA-Z:*_]{0,16}|\\PC{0,16}") {
                match s.parse::<Scope>() {
                    Ok(scope) => prop_assert_eq!(scope.as_str(), s.as_str()),
                    Err(e) => prop_assert_eq!(e, UnknownScope(s.clone())),
                }
            }

            #[test]
            fn well_formed_tokens_yield_their_key_id(
                id in "[0-9a-fA-F]{32}",
                secret in "[A-Za-z0-9_-]{43}",
            ) {
                let token = format!("{TOKEN_PREFIX}{id}_{secret}");
                prop_assert_eq!(key_id_of(&token), Some(id.as_str()));
            }

            #[test]
            fn tokens_of_the_wrong_shape_have_no_key_id(
                id in "[0-9a-f]{0,40}",
                secret in "[A-Za-z0-9_-]{0,50}",
            ) {
                prop_assume!(id.len() != 32 || secret.len() != 43);
                let token = format!("{TOKEN_PREFIX}{id}_{secret}");
                prop_assert_eq!(key_id_of(&token), None);
            }

            #[test]
            fn token_parsing_never_panics(s in "\\PC{0,100}|aloft_\\PC{0,90}") {
                if let Some(id) = key_id_of(&s) {
                    prop_assert_eq!(s.len(), TOKEN_PREFIX.len() + 32 + 1 + 43);
                    let head = format!("{TOKEN_PREFIX}{id}_");
                    prop_assert!(s.starts_with(&head));
                }
                let _ = bearer_token(&s);
            }

            #[test]
            fn bearer_tokens_come_back_whatever_the_scheme_case(
                scheme in "[bB][eE][aA][rR][eE][rR]",
                pad in "[ ]{0,3}",
                token in "[!-~]{1,100}",
            ) {
                let header = format!("{pad}{scheme} {pad}{token}{pad}");
                prop_assert_eq!(bearer_token(&header), Some(token.as_str()));
                let basic = format!("Basic {token}");
                prop_assert_eq!(bearer_token(&basic), None);
            }
        }
    }
}
