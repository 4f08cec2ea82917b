//! Payments: charges in integer minor units through pluggable processors, idempotent,
//! with a state machine and refunds.
//!
//! `domain` holds the rules, `processor` the gateways behind one trait, `store` the
//! DynamoDB items, `api` the routes.

pub mod api;
pub mod domain;
pub mod processor;
pub mod store;
