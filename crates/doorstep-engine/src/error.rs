//! Every failure a caller can see, and its one mapping to a gRPC status.

use doorstep_domain::{ActionError, InvalidField};
use doorstep_store::StoreError;

/// What went wrong, in the API's terms.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// A field is malformed: `field: reason`.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    /// The action does not apply in the current state; the message names the status.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The ticket moved on since the caller read it.
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// The principal is over its rate limit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// Logged with detail; the caller sees an opaque message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<InvalidField> for ApiError {
    fn from(e: InvalidField) -> Self {
        ApiError::invalid(e.field, e.reason)
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::Invalid(field) => field.into(),
            other => ApiError::FailedPrecondition(other.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict {
                id,
                expected,
                actual,
            } => ApiError::Aborted(format!(
                "ticket {id} is at version {actual}, not {expected}: reload it and try again"
            )),
            StoreError::AlreadyExists(what) => {
                ApiError::FailedPrecondition(format!("{what} already exists"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Invalid { .. } => tonic::Status::invalid_argument(e.to_string()),
            ApiError::NotFound(_) => tonic::Status::not_found(e.to_string()),
            ApiError::FailedPrecondition(m) => tonic::Status::failed_precondition(m),
            ApiError::Aborted(m) => tonic::Status::aborted(m),
            ApiError::PermissionDenied(m) => tonic::Status::permission_denied(m),
            ApiError::Unauthenticated(m) => tonic::Status::unauthenticated(m),
            ApiError::ResourceExhausted(m) => tonic::Status::resource_exhausted(m),
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                tonic::Status::internal("internal error; the server log has the details")
            }
        }
    }
}
