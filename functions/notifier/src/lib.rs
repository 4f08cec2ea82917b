//! Notifications: events leave the outbox table's stream through the relay into the
//! notifications queue, and reach webhook subscribers from there.

pub mod relay;
