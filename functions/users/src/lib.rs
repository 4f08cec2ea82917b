//! Users: create, read, update and delete users, search them by email, role and name,
//! and keep an audit trail of every change. Every change announces itself through the
//! outbox as `user.created`, `user.updated` or `user.deleted`.

pub mod api;
pub mod domain;
pub mod store;
