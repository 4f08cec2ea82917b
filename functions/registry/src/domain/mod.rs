//! The rules of the registry, free of I/O: what a valid registration is, when a lease is
//! alive, where a health check may connect, which instances a discovery query returns,
//! how resolve picks one, and when the sweep must hold back (self-preservation).

mod check;
mod discovery;
mod instance;
mod query;
mod registration;
mod strict;
mod sweep_plan;
mod tokens;

pub use aloft_shared::names::ServiceName;
pub use check::{
    CheckTarget, CheckUrlError, HealthCheck, HealthChecksAllow, after_check, check_target,
};
pub use discovery::{DiscoveryFilter, Strategy, discovery_etag, resolve};
pub use instance::{HealthStatus, HeartbeatRequest, Instance, Load, LoadRequest, lease_expiry};
pub use query::{QueryError, parse_discovery_query, parse_resolve_query};
pub use registration::{CheckRequest, RegisterRequest, Registration};
pub use strict::Object;
pub use sweep_plan::{SelfPreservation, SweepPlan, plan_sweep};
pub use tokens::parse_instance_id;

use aloft_shared::FieldError;

pub const MAX_TAGS: usize = 32;
pub const MAX_META: usize = 32;
/// A registration's `depends_on` list, as sent (repeats are then merged). 32 keeps it one
/// transaction even when every edge changes: 32 edges written + 32 removed + the
/// instance, the service and the event = 67 of DynamoDB's 100 items.
pub const MAX_DEPENDS_ON: usize = 32;
pub const WEIGHT_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;
pub const DEFAULT_WEIGHT: u32 = 100;
pub const TTL_RANGE: std::ops::RangeInclusive<u32> = 5..=3600;
pub const DEFAULT_TTL_SECONDS: u32 = 30;
pub const CHECK_INTERVAL_RANGE: std::ops::RangeInclusive<u32> = 5..=3600;
pub const DEFAULT_CHECK_INTERVAL_SECONDS: u32 = 30;
pub const CHECK_TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 100..=10_000;
pub const DEFAULT_CHECK_TIMEOUT_MS: u32 = 2_000;
/// Consecutive failed checks after which an instance is `critical` (one makes it
/// `warning`; one success makes it `passing` again).
pub const FAILURES_BEFORE_CRITICAL: u32 = 3;
/// Share of a service's instances that may lapse in one sweep before the sweep suspects
/// a partition rather than deaths, and evicts none (Eureka's self-preservation).
pub const DEFAULT_SELF_PRESERVATION_THRESHOLD: f64 = 0.85;

/// Why a registry operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("invalid query: {0}")]
    Query(QueryError),
    #[error("no instance {instance_id} of {service} holds a lease")]
    LeaseGone {
        service: String,
        instance_id: String,
    },
    #[error("no service named {0}")]
    ServiceNotFound(String),
    #[error("no healthy instance of {0}")]
    NoHealthyInstance(String),
    #[error(transparent)]
    Store(#[from] aloft_shared::dynamo::StoreError),
}

impl RegistryError {
    /// One bad field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}
