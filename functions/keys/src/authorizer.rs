//! The HTTP API Lambda authorizer (payload 2.0, simple responses).
//!
//! API Gateway calls it only when the request has an `Authorization` header (otherwise
//! it answers 401 itself) and caches its answer per header value for the template's
//! `AuthorizerCacheTtlSeconds`. A "no" becomes the gateway's own 403, so a bad key never
//! reaches a function. A store failure is returned as an error, which the gateway turns
//! into a 500: an outage must not look like a revoked key.

use aloft_shared::auth::{CONTEXT_KEY_ID, CONTEXT_SCOPES, bearer_token};
use aloft_shared::dynamo::StoreError;
use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use serde::Serialize;

use crate::domain::{Decision, DenyReason, decide, lookup_id};
use crate::store::KeyStore;

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

pub async fn authorize(
    store: &KeyStore,
    event: &ApiGatewayV2CustomAuthorizerV2Request,
) -> Result<AuthorizerResponse, StoreError> {
    let decision = match authorization(event).and_then(bearer_token) {
        None => Decision::Deny(DenyReason::NoBearerToken),
        Some(token) => match lookup_id(token) {
            None => decide(token, None),
            Some(id) => {
                let stored = store.get_with_hash(id).await?;
                decide(token, stored.as_ref().map(|(k, h)| (k, h.as_str())))
            }
        },
    };
    match &decision {
        Decision::Allow { key_id, .. } => tracing::debug!(%key_id, "allowed"),
        // The reason stays in our logs; the caller only ever sees the gateway's 403.
        Decision::Deny(reason) => tracing::info!(
            ?reason,
            route = event.route_key.as_deref().unwrap_or_default(),
            "denied"
        ),
    }
    Ok(decision.into())
}
