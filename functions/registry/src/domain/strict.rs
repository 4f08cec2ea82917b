//! The strict body shapes live in `aloft_shared::strict`, shared by every capability.

pub use aloft_shared::strict::Object;
pub(crate) use aloft_shared::strict::{some, some_enum, some_object};
