//! Payments: charges in integer minor units through pluggable processors, idempotent,
//! with a state machine, refunds and a reconciler.
//!
//! `domain` holds the rules, `processor` the gateways behind one trait, `store` the
//! DynamoDB items; `service` with `charge`, `confirm` and `refund` the flows, `reconcile`
//! what settles stuck ones; `api` the routes.

pub mod api;
pub mod charge;
pub mod confirm;
pub mod domain;
pub mod outcome;
pub mod processor;
pub mod reconcile;
pub mod refund;
pub mod service;
pub mod store;
