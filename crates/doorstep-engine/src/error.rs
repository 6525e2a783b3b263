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
    /// The database cannot be reached now (down, restarting, failing over, locked): nothing was
    /// done, and the same request may succeed if retried. The detail is for the log.
    #[error("database unavailable: {0}")]
    Unavailable(String),
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
    Unavailable,
    Internal,
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The stable code of an [`Error::Invalid`]; `None` for every other error.
    pub fn invalid_code(&self) -> Option<InvalidCode> {
        match self {
            Error::Invalid { reason, .. } => Some(InvalidCode::of(reason)),
            _ => None,
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
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// Why a field was refused, as a stable machine-readable code beside the English reason: a client
/// keys its own (translated) message on it. Read from the reason's wording, which every refusal of
/// the domain, the engine and the server follows; a reason of no known shape is [`Invalid`].
///
/// The codes are part of the API (proto/doorstep/v1/ERRORS.md): rename none, add at need.
///
/// [`Invalid`]: InvalidCode::Invalid
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidCode {
    /// Missing or empty.
    Required,
    /// Longer, larger or with more entries than allowed.
    TooLong,
    /// Not in the required form (characters, URL, date, timestamp, page token).
    Malformed,
    /// A number or instant outside its allowed range.
    OutOfRange,
    /// Not one of the enum's values.
    UnknownValue,
    /// No such jurisdiction node in the district.
    UnknownNode,
    /// No such unit in the district.
    UnknownUnit,
    /// The category is not in the dispatch catalogue for the node (or it names no lead unit).
    NotInCatalogue,
    /// The thing the field names does not exist (e.g. the ticket to merge into).
    NotFound,
    /// The same value named twice.
    Duplicate,
    /// Any other refusal: the English reason says why.
    Invalid,
}

impl InvalidCode {
    /// The code on the wire (`google.rpc.BadRequest.FieldViolation.reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidCode::Required => "REQUIRED",
            InvalidCode::TooLong => "TOO_LONG",
            InvalidCode::Malformed => "MALFORMED",
            InvalidCode::OutOfRange => "OUT_OF_RANGE",
            InvalidCode::UnknownValue => "UNKNOWN_VALUE",
            InvalidCode::UnknownNode => "UNKNOWN_NODE",
            InvalidCode::UnknownUnit => "UNKNOWN_UNIT",
            InvalidCode::NotInCatalogue => "NOT_IN_CATALOGUE",
            InvalidCode::NotFound => "NOT_FOUND",
            InvalidCode::Duplicate => "DUPLICATE",
            InvalidCode::Invalid => "INVALID",
        }
    }

    /// The code of a refusal's reason (the text after `field: `). The first rule that matches wins.
    pub fn of(reason: &str) -> InvalidCode {
        let has = |s: &str| reason.contains(s);
        if reason.starts_with("is required")
            || reason.starts_with("is missing")
            || reason.starts_with("must not be empty")
            || reason.starts_with("name ")
        {
            InvalidCode::Required
        } else if has(", at most ") || has(" more than ") {
            InvalidCode::TooLong
        } else if has("dispatch catalogue") {
            InvalidCode::NotInCatalogue
        } else if has("unknown jurisdiction node") || (has("node ") && has(" is not defined")) {
            InvalidCode::UnknownNode
        } else if reason.starts_with("unknown unit") || (has("unit ") && has(" is not defined")) {
            InvalidCode::UnknownUnit
        } else if reason.ends_with(" not found") {
            InvalidCode::NotFound
        } else if has("named twice") {
            InvalidCode::Duplicate
        } else if reason.starts_with("contains ")
            || has(" contains ")
            || reason.starts_with("nanos ")
            || has(" is not a date")
            || has(" is not an http")
            || has(" is not a usable instant")
            || has("is not a token this server issued")
        {
            InvalidCode::Malformed
        } else if reason.starts_with("unknown value") || has(" is not a ") {
            InvalidCode::UnknownValue
        } else if has("must be between")
            || has("out of range")
            || has("must not be negative")
            || has("must be above")
            || has(" is not after ")
            || has("is in the past")
        {
            InvalidCode::OutOfRange
        } else {
            InvalidCode::Invalid
        }
    }
}

impl std::fmt::Display for InvalidCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
            StoreError::Unavailable(detail) => Error::Unavailable(detail),
            other => Error::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::InvalidCode::{self, *};

    /// The reasons as the domain, the engine and the server word them, each with its code.
    #[test]
    fn every_reason_shape_has_its_code() {
        let cases: &[(&str, InvalidCode)] = &[
            ("is required", Required),
            (
                "is required: the version of the ticket as last seen",
                Required,
            ),
            ("is missing", Required),
            ("must not be empty", Required),
            ("name at least one unit to call in", Required),
            ("name the notice these days come from", Required),
            ("is 70000 characters long, at most 20000 allowed", TooLong),
            ("is 300 bytes long, at most 128 allowed", TooLong),
            ("has 21 entries, at most 20 allowed", TooLong),
            ("an entry is 3000 bytes long, at most 2048 allowed", TooLong),
            ("12 units, at most 10 at once", TooLong),
            ("400 entries, at most 366", TooLong),
            ("is 5000000 bytes, at most 4194304", TooLong),
            (
                "the window has more than 1000 steps of this period; choose a longer period",
                TooLong,
            ),
            (
                "no.such is not in the dispatch catalogue for lixia/a",
                NotInCatalogue,
            ),
            (
                "the dispatch catalogue names no lead unit for x at y; name one",
                NotInCatalogue,
            ),
            ("unknown jurisdiction node lixia/nowhere", UnknownNode),
            (
                "unknown jurisdiction node x (is the district loaded?)",
                UnknownNode,
            ),
            ("node: node lixia/x is not defined", UnknownNode),
            ("unknown unit dept/x", UnknownUnit),
            ("lead_unit: unit dept/x is not defined", UnknownUnit),
            ("ticket 0190 not found", NotFound),
            ("dept/a is named twice", Duplicate),
            ("contains control characters", Malformed),
            ("contains \"x\"; use digits, spaces and + - ( )", Malformed),
            (
                "\"a b\" contains ' '; use ASCII letters, digits and . _ / - :",
                Malformed,
            ),
            ("\"ftp://x\" is not an http(s) URL", Malformed),
            ("\"2027-02-30\" is not a date (YYYY-MM-DD)", Malformed),
            ("is not a token this server issued", Malformed),
            ("nanos -1 out of range", Malformed),
            ("99999999999999 seconds is not a usable instant", Malformed),
            ("unknown value 9", UnknownValue),
            ("42 is not a level", UnknownValue),
            ("9 is not a status", UnknownValue),
            ("7 is not a channel", UnknownValue),
            ("8 is not a satisfaction", UnknownValue),
            ("0 must be between 1 and 1000", OutOfRange),
            ("must not be negative", OutOfRange),
            ("must not be negative (0 = no limit)", OutOfRange),
            ("0 must be above 0", OutOfRange),
            ("99999 is out of range", OutOfRange),
            (
                "2026-01-01T00:00:00+00:00 is not after from (2026-02-01T00:00:00+00:00)",
                OutOfRange,
            ),
            ("is in the past", OutOfRange),
            ("a ticket cannot be merged into itself", Invalid),
        ];
        for (reason, code) in cases {
            assert_eq!(InvalidCode::of(reason), *code, "{reason}");
        }
    }
}
