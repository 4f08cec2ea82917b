//! API keys: issue, list and revoke them, and the HTTP API Lambda authorizer that checks
//! them on every request. Only a SHA-256 hash of each secret is ever stored.

pub mod api;
pub mod authorizer;
pub mod domain;
pub mod limit;
pub mod store;
