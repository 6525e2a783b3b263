//! Every failure a caller of the engine can see: [`Error`], and its [`ErrorKind`], the small set of
//! answers a service maps to its own protocol (the gRPC mapping is the server's).

use doorstep_domain::{ActionError, InvalidField};
use doorstep_store::StoreError;

/// What went wrong, in the engine's terms.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A field is malformed: `field: reason`.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    /// The action does not apply in the current state (the message names the status), or what it
    /// would create already exists.
    #[error("{0}")]
    NotApplicable(String),
    /// The ticket moved on since the caller read it.
    #[error("{0}")]
    Conflict(String),
    /// Intake's source and external reference are registered already, for a request that asked for
    /// something else: the message names that ticket and the fields that differ.
    #[error("{0}")]
    AlreadyExists(String),
    /// The caller's role or jurisdiction does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// The caller could not be identified (no token, or one that is unknown, revoked or expired).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is over its rate limit.
    #[error("{0}")]
    RateLimited(String),
    /// A fault of the engine or its store, not of the request: to be logged with detail and answered
    /// with an opaque message.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The kind of an [`Error`]: what a service answers, whatever the detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Invalid,
    NotFound,
    NotApplicable,
    Conflict,
    AlreadyExists,
    Forbidden,
    Unauthenticated,
    RateLimited,
    Internal,
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::NotApplicable(_) => ErrorKind::NotApplicable,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Error::RateLimited(_) => ErrorKind::RateLimited,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl From<InvalidField> for Error {
    fn from(e: InvalidField) -> Self {
        Error::invalid(e.field, e.reason)
    }
}

impl From<ActionError> for Error {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::Invalid(field) => field.into(),
            other => Error::NotApplicable(other.to_string()),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Error::NotFound(what),
            StoreError::Conflict {
                id,
                expected,
                actual,
            } => Error::Conflict(format!(
                "ticket {id} is at version {actual}, not {expected}: reload it and try again"
            )),
            StoreError::AlreadyExists(what) => {
                Error::NotApplicable(format!("{what} already exists"))
            }
            other => Error::Internal(other.to_string()),
        }
    }
}
