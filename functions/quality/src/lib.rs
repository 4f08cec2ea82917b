//! Quality monitor: objectives on a service's CloudWatch metrics (latency percentiles,
//! error rate, availability, throughput, CPU, memory), evaluated every minute the way
//! CloudWatch alarms are into alert states with history, burn-rate SLO alerts, silences
//! and `alert.*` events through the outbox.

pub mod api;
pub mod defaults;
pub mod domain;
pub mod fanout;
pub mod metrics;
pub mod store;
pub mod tick;
pub mod view;
