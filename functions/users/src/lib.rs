//! Users capability.
