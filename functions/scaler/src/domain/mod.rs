//! The scaler's rules, free of I/O: what a valid policy is (`policy`), which instances
//! count and which go first (`instances`), how a decision is made (`recommend`), what it
//! records (`decision`), and how a metric is forecast (`forecast`).

pub mod decision;
pub mod forecast;
pub mod instances;
pub mod parse;
pub mod policy;
pub mod recommend;

#[cfg(test)]
mod parse_tests;

use aloft_shared::FieldError;
use aloft_shared::cursor::CursorError;
use aloft_shared::dynamo::StoreError;

pub use aloft_shared::names::ServiceName;
pub use decision::{Decision, Limit, State};
pub use policy::ScalingPolicy;

/// Everything a scaler operation can fail with; one `IntoResponse` maps it (api.rs).
#[derive(Debug, thiserror::Error)]
pub enum ScalerError {
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("service {0} has no scaling policy")]
    NoPolicy(String),
    #[error(transparent)]
    InvalidCursor(#[from] CursorError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// CloudWatch could not be read.
    #[error("metrics: {0}")]
    Metrics(String),
}

impl From<FieldError> for ScalerError {
    fn from(e: FieldError) -> Self {
        Self::Invalid(vec![e])
    }
}
