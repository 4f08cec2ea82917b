//! Service registry and discovery: instances register with a lease they renew by
//! heartbeat, clients discover healthy instances with filters and revisions, and resolve
//! picks one.
//!
//! Only the pure rules exist so far (`domain`); the store, the sweep and the API follow.

pub mod api;
pub mod domain;
pub mod store;
pub mod sweep;
