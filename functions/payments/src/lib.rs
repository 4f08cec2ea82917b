//! Payments: charges in integer minor units through pluggable processors, idempotent,
//! with a state machine and refunds.
//!
//! Only the pure rules exist so far (`domain`); the store, the processors and the API
//! follow.

pub mod domain;
