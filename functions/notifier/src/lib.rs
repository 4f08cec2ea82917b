//! Notifications: events leave the outbox table's stream through the relay into the
//! notifications queue, and reach webhook subscribers from there: the fan-out makes one
//! delivery per matching subscription, the delivery worker signs and POSTs each with
//! retries, the sweep re-queues long waits and disables endpoints that keep failing.

pub mod api;
pub mod domain;
pub mod fanout;
pub mod on_demand;
pub mod queue;
pub mod relay;
pub mod sender;
pub mod settings;
pub mod signing;
pub mod ssrf;
pub mod store;
pub mod sweep;
pub mod worker;
