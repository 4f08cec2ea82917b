//! The common crate every aloft function builds on: one way to read configuration,
//! build AWS clients, answer errors, page results, publish events, emit metrics,
//! authorize callers and log.

pub mod auth;
pub mod aws;
pub mod clock;
pub mod config;
pub mod cursor;
pub mod dynamo;
pub mod email;
pub mod extract;
pub mod http;
pub mod idempotency;
pub mod keys;
pub mod master_key;
pub mod metrics;
pub mod names;
pub mod outbound;
pub mod outbox;
pub mod problem;
pub mod ssrf;
pub mod strict;
pub mod telemetry;
pub mod trust_roots;

pub use problem::{FieldError, Problem};
