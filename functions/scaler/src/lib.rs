//! Scaling evaluator: per-service policies (min/max, metric targets, tolerance,
//! stabilization, cooldowns, step limits, missing-metric handling, forecasting) evaluated
//! every minute against the registry's healthy instances and CloudWatch metrics into
//! recorded, explained decisions; a change announces `scaling.decided` through the
//! outbox and, when the policy names one, drives an ECS service or Auto Scaling group.

pub mod actuator;
pub mod api;
pub mod domain;
pub mod metrics;
pub mod registry;
pub mod store;
pub mod tick;
