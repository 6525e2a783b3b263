//! sqlx errors mapped to [`StoreError`] by kind, in one place.

use sqlx::error::DatabaseError;

use crate::StoreError;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::AlreadyExists(db.message().to_owned())
            }
            sqlx::Error::Configuration(_) => StoreError::Config(e.to_string()),
            e if is_unavailable(e) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Database(e.to_string()),
        }
    }
}

/// The database could not be reached or refused to serve for now: a retry of the same request may
/// succeed (a restart, a fail-over, a full connection table, a lock held by another process).
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => is_unavailable_answer(db.as_ref()),
        _ => false,
    }
}

fn is_unavailable_answer(db: &dyn DatabaseError) -> bool {
    let Some(code) = db.code() else { return false };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // An extended result code; its low byte is the primary one.
        return code
            .parse::<i32>()
            .is_ok_and(|c| sqlite_busy_or_locked(c & 0xff));
    }
    postgres_unavailable(&code)
}

/// `SQLITE_BUSY` or `SQLITE_LOCKED`: another connection held the database past the busy timeout.
fn sqlite_busy_or_locked(primary: i32) -> bool {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    matches!(primary, SQLITE_BUSY | SQLITE_LOCKED)
}

/// SQLSTATEs that mean "not now" rather than "not this": class 08 (connection exception), an
/// administrator's or a crash's shutdown of the server (57P01, 57P02), a server still starting up
/// or in recovery (57P03), a full connection table (53300), and a write reaching a standby
/// (25006: mid fail-over, the address still leads to the old primary, now read-only).
fn postgres_unavailable(sqlstate: &str) -> bool {
    sqlstate.starts_with("08")
        || matches!(sqlstate, "57P01" | "57P02" | "57P03" | "53300" | "25006")
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Database(format!("stored JSON does not match the domain: {e}"))
    }
}

/// The unique index a violation hit, when the database says so.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// What the database said, without sqlx's wrapping: for one-line configuration errors.
pub(crate) fn message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_sqlstates_are_unavailable_and_others_are_not() {
        for code in [
            "08000", "08001", "08003", "08006", "57P01", "57P02", "57P03", "53300",
        ] {
            assert!(postgres_unavailable(code), "{code}");
        }
        for code in ["23505", "40001", "42P01", "57014", "53100"] {
            assert!(!postgres_unavailable(code), "{code}");
        }
    }

    #[test]
    fn sqlite_busy_and_locked_are_unavailable_in_every_extended_form() {
        // SQLITE_BUSY, _RECOVERY, _SNAPSHOT, _TIMEOUT; SQLITE_LOCKED, _SHAREDCACHE.
        for code in [5, 261, 517, 773, 6, 262] {
            assert!(sqlite_busy_or_locked(code & 0xff), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE, SQLITE_READONLY, SQLITE_CORRUPT.
        for code in [2067, 8, 11] {
            assert!(!sqlite_busy_or_locked(code & 0xff), "{code}");
        }
    }

    #[test]
    fn a_lost_connection_or_an_exhausted_pool_is_unavailable() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            StoreError::from(sqlx::Error::Io(refused)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::Protocol("garbled".into())),
            StoreError::Database(_)
        ));
    }
}
