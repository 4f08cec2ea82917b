//! The HTTP API Lambda authorizer (payload 2.0, simple responses).
//!
//! API Gateway calls it only when the request has an `Authorization` header (otherwise
//! it answers 401 itself). A "no" becomes the gateway's own 403, so a bad key never
//! reaches a function. A store failure is returned as an error, which the gateway turns
//! into a 500: an outage must not look like a revoked key.
//!
//! The gateway's own authorizer cache is off (a cached "yes" would let a rate-limited key
//! through for the whole TTL), so this process caches the keys it has read, for
//! `KEY_CACHE_TTL_SECONDS` (the template's `AuthorizerCacheTtlSeconds`): a key without a
//! rate limit costs no DynamoDB request while cached, a key with one costs one
//! conditional UpdateItem of its bucket per request let in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aloft_shared::auth::{CONTEXT_KEY_ID, CONTEXT_SCOPES, bearer_token};
use aloft_shared::config::{self, ConfigError};
use aloft_shared::dynamo::StoreError;
use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use serde::Serialize;

use crate::domain::{ApiKey, Decision, DenyReason, decide, lookup_id};
use crate::store::KeyStore;

/// Keys cached per process at most; past it the cache starts over (keys are few, so only
/// a flood of distinct valid keys gets there).
const MAX_CACHED: usize = 10_000;

/// The simple response format: `{"isAuthorized": …, "context": {…}}`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerResponse {
    pub is_authorized: bool,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub context: serde_json::Map<String, serde_json::Value>,
}

impl From<Decision> for AuthorizerResponse {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Allow { key_id, scopes } => {
                let mut context = serde_json::Map::new();
                context.insert(CONTEXT_KEY_ID.into(), key_id.into());
                context.insert(CONTEXT_SCOPES.into(), scopes.into());
                Self {
                    is_authorized: true,
                    context,
                }
            }
            Decision::Deny(_) => Self {
                is_authorized: false,
                context: serde_json::Map::new(),
            },
        }
    }
}

/// The `Authorization` header as the gateway passed it: in `identitySource`, or failing
/// that in the headers.
fn authorization(event: &ApiGatewayV2CustomAuthorizerV2Request) -> Option<&str> {
    event
        .identity_source
        .as_ref()
        .and_then(|sources| sources.first())
        .map(String::as_str)
        .or_else(|| {
            event
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
        })
}

struct Cached {
    key: ApiKey,
    secret_hash: String,
    read_at: Instant,
}

/// The authorizer: the key store, the keys it has read, and the last TAT it saw of each
/// rate-limited key's bucket.
pub struct Authorizer {
    store: KeyStore,
    ttl: Duration,
    keys: Mutex<HashMap<String, Cached>>,
    tats: Mutex<HashMap<String, i64>>,
}

impl Authorizer {
    pub fn new(store: KeyStore, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            keys: Mutex::new(HashMap::new()),
            tats: Mutex::new(HashMap::new()),
        }
    }

    /// Reads `KEY_CACHE_TTL_SECONDS` (default 300).
    pub fn from_env(store: KeyStore) -> Result<Self, ConfigError> {
        let secs: u64 = config::parsed_or("KEY_CACHE_TTL_SECONDS", 300)?;
        Ok(Self::new(store, Duration::from_secs(secs)))
    }

    /// The key under `id` and its secret hash: from the cache while fresh, else read
    /// (strongly consistent) and cached. Unknown ids are not cached, so a key issued a
    /// moment ago works at once.
    async fn key(&self, id: &str) -> Result<Option<(ApiKey, String)>, StoreError> {
        if !self.ttl.is_zero() {
            let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = keys.get(id).filter(|c| c.read_at.elapsed() < self.ttl) {
                return Ok(Some((c.key.clone(), c.secret_hash.clone())));
            }
        }
        let stored = self.store.get_with_hash(id).await?;
        if let (Some((key, hash)), false) = (&stored, self.ttl.is_zero()) {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            if keys.len() >= MAX_CACHED {
                keys.clear();
            }
            keys.insert(
                id.to_owned(),
                Cached {
                    key: key.clone(),
                    secret_hash: hash.clone(),
                    read_at: Instant::now(),
                },
            );
        }
        Ok(stored)
    }

    /// Takes a token from a rate-limited key's bucket; `true` when let in.
    async fn within_limit(&self, key: &ApiKey) -> Result<bool, StoreError> {
        let Some(limit) = &key.rate_limit else {
            return Ok(true);
        };
        let seen = self
            .tats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key.id)
            .copied();
        let taken = self.store.take_token(&key.id, limit, seen, now_us).await?;
        if let Some(tat) = taken.tat {
            let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
            if tats.len() >= MAX_CACHED {
                tats.clear();
            }
            tats.insert(key.id.clone(), tat);
        }
        Ok(taken.allowed)
    }

    pub async fn authorize(
        &self,
        event: &ApiGatewayV2CustomAuthorizerV2Request,
    ) -> Result<AuthorizerResponse, StoreError> {
        let decision = match authorization(event).and_then(bearer_token) {
            None => Decision::Deny(DenyReason::NoBearerToken),
            Some(token) => match lookup_id(token) {
                None => decide(token, None),
                Some(id) => {
                    let stored = self.key(id).await?;
                    match (
                        decide(token, stored.as_ref().map(|(k, h)| (k, h.as_str()))),
                        stored,
                    ) {
                        (allow @ Decision::Allow { .. }, Some((key, _))) => {
                            if self.within_limit(&key).await? {
                                allow
                            } else {
                                Decision::Deny(DenyReason::OverRateLimit)
                            }
                        }
                        (other, _) => other,
                    }
                }
            },
        };
        log(&decision, event);
        Ok(decision.into())
    }
}

/// Microseconds since the epoch, the bucket's clock (from code: never DynamoDB's).
fn now_us() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as i64
}

fn log(decision: &Decision, event: &ApiGatewayV2CustomAuthorizerV2Request) {
    match decision {
        Decision::Allow { key_id, .. } => tracing::debug!(%key_id, "allowed"),
        // The reason stays in our logs; the caller only ever sees the gateway's 403.
        Decision::Deny(reason) => tracing::info!(
            ?reason,
            route = event.route_key.as_deref().unwrap_or_default(),
            "denied"
        ),
    }
}
