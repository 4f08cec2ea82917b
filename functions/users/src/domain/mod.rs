//! The rules of users, free of I/O: what a valid email, name and role are, how a patch
//! changes a user and what the audit trail records of it.

mod etag;
mod fields;
mod requests;
mod search;
mod user;

#[cfg(test)]
mod parse_tests;

pub use aloft_shared::email::{Email, MAX_EMAIL_CHARS};
pub use etag::{etag, parse_if_match};
pub use fields::{MAX_NAME_CHARS, Role, UserName};
pub use requests::{CreateUserRequest, NewUser, PatchField, UpdateUserRequest, UserPatch};
pub use search::{SearchFilter, SearchParams, name_initial};
pub use user::{AuditAction, AuditEntry, Change, Changes, User};

use aloft_shared::FieldError;

/// Why a users operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("no user with id {0}")]
    NotFound(String),
    #[error("email {0} is already taken")]
    EmailTaken(String),
    #[error("If-Match names version {expected}, the user is at version {current}")]
    StaleVersion { expected: u64, current: u64 },
    #[error("send If-Match with the user's current ETag")]
    PreconditionRequired,
    #[error(transparent)]
    InvalidCursor(#[from] aloft_shared::cursor::CursorError),
    #[error(transparent)]
    Store(#[from] aloft_shared::dynamo::StoreError),
}
