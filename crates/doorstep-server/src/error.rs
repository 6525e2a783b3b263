//! The one mapping of engine errors to gRPC statuses: each [`ErrorKind`] to its code; an internal
//! error is logged with its detail and answered with an opaque message.

use doorstep_engine::{Error, ErrorKind};
use tonic::{Code, Status};

/// The status a call is answered with when the engine (or the service's own validation) refuses it.
pub fn to_status(e: Error) -> Status {
    match e {
        Error::Internal(detail) => {
            tracing::error!(error = %detail, "internal error");
            Status::internal("internal error; the server log has the details")
        }
        e => Status::new(code(e.kind()), e.to_string()),
    }
}

fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::Invalid => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::NotApplicable => Code::FailedPrecondition,
        ErrorKind::Conflict => Code::Aborted,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::Forbidden => Code::PermissionDenied,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::RateLimited => Code::ResourceExhausted,
        ErrorKind::Internal => Code::Internal,
    }
}
