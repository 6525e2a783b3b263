//! The one mapping of engine errors to gRPC statuses: each [`ErrorKind`] to its code; an internal
//! error is logged with its detail and answered with an opaque message.
//!
//! Beside the English text, INVALID_ARGUMENT carries a `google.rpc.BadRequest` naming the field
//! and a stable reason code ([`InvalidCode`]), and UNAVAILABLE a `google.rpc.RetryInfo`: what a
//! client acts on without parsing prose.

use std::time::Duration;

use doorstep_engine::error::InvalidCode;
use doorstep_engine::{Error, ErrorKind};
use tonic::codegen::http::Response;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt as _};

/// How long a client is told to wait before retrying a call the database could not serve.
const RETRY_UNAVAILABLE_AFTER: Duration = Duration::from_secs(1);

/// The status a call is answered with when the engine (or the service's own validation) refuses it.
pub fn to_status(e: Error) -> Status {
    match e {
        Error::Internal(detail) => {
            tracing::error!(error = %detail, "internal error");
            Status::internal("internal error; the server log has the details")
        }
        Error::Unavailable(detail) => {
            tracing::warn!(error = %detail, "database unavailable");
            Status::with_error_details(
                Code::Unavailable,
                "the database is unreachable right now; nothing was done: retry shortly",
                ErrorDetails::with_retry_info(Some(RETRY_UNAVAILABLE_AFTER)),
            )
        }
        Error::Invalid { field, reason } => {
            let message = format!("{field}: {reason}");
            let violation = FieldViolation {
                reason: InvalidCode::of(&reason).as_str().to_owned(),
                field,
                description: reason,
                localized_message: None,
            };
            Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request(vec![violation]),
            )
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
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    }
}

/// tonic's own answer to a request over a service's `max_decoding_message_size`: OUT_OF_RANGE,
/// where gRPC's status-code table says RESOURCE_EXHAUSTED. [`request_too_large`] rewrites it.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

/// The status to answer instead of `status`, when `status` is tonic's refusal of a request over the
/// size cap: RESOURCE_EXHAUSTED naming the cap in bytes. `None` for every other status.
pub fn request_too_large(status: &Status) -> Option<Status> {
    if status.code() != Code::OutOfRange || !status.message().starts_with(TONIC_TOO_LARGE) {
        return None;
    }
    // tonic words it "... found {len} bytes, the limit is: {limit} bytes".
    let numbers: Vec<&str> = status
        .message()
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    let message = match numbers.as_slice() {
        [found, limit] => format!(
            "the request is {found} bytes, over this service's limit of {limit} bytes; \
             send a smaller one"
        ),
        _ => "the request is over this service's size limit; send a smaller one".to_owned(),
    };
    Some(Status::resource_exhausted(message))
}

/// [`request_too_large`] on a response: a call refused before its handler ran is answered
/// "trailers-only", its status in the headers (and in the extensions, as tonic left it).
pub(crate) fn rewrite_too_large<B>(mut response: Response<B>) -> Response<B> {
    let Some(status) = response.extensions().get::<Status>() else {
        return response;
    };
    let Some(answer) = request_too_large(status) else {
        return response;
    };
    let headers = response.headers_mut();
    headers.remove(Status::GRPC_STATUS);
    headers.remove(Status::GRPC_MESSAGE);
    headers.remove(Status::GRPC_STATUS_DETAILS);
    if answer.add_header(headers).is_ok() {
        response.extensions_mut().insert(answer);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonics_size_refusal_becomes_resource_exhausted_naming_the_cap() {
        let tonic = Status::out_of_range(
            "Error, decoded message length too large: found 5242901 bytes, the limit is: \
             524288 bytes",
        );
        let answer = request_too_large(&tonic).expect("rewritten");
        assert_eq!(answer.code(), Code::ResourceExhausted);
        assert!(
            answer.message().contains("limit of 524288 bytes"),
            "{answer:?}"
        );
        assert!(request_too_large(&Status::out_of_range("year 99999")).is_none());
        assert!(request_too_large(&Status::internal("x")).is_none());
    }

    #[test]
    fn a_field_error_carries_a_bad_request_with_path_and_code() {
        let status = to_status(Error::invalid(
            "caller.phone",
            "contains control characters",
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "caller.phone: contains control characters"
        );
        let bad = status.get_details_bad_request().expect("a BadRequest");
        assert_eq!(bad.field_violations.len(), 1);
        let v = &bad.field_violations[0];
        assert_eq!(
            (v.field.as_str(), v.reason.as_str(), v.description.as_str()),
            ("caller.phone", "MALFORMED", "contains control characters")
        );
    }

    #[test]
    fn an_unreachable_database_is_unavailable_with_a_retry_delay() {
        let status = to_status(Error::Unavailable("pool timed out".into()));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            !status.message().contains("pool"),
            "the detail stays in the log"
        );
        let retry = status.get_details_retry_info().expect("a RetryInfo");
        assert_eq!(retry.retry_delay, Some(RETRY_UNAVAILABLE_AFTER));
    }
}
