//! Choosing the backend from the database URL, and the options both backends read.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::migrations::MigrationReport;
use crate::{Result, Store, StoreError, postgres, sqlite};

/// How durable an SQLite commit is (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteSync {
    /// No fsync at all: a crash of the machine may lose or corrupt recent commits. Tests only.
    Off,
    /// In WAL mode: an acknowledged commit may be lost on power failure, never corrupted.
    Normal,
    /// An acknowledged commit survives power loss (the default).
    #[default]
    Full,
    Extra,
}

/// Tuning both backends read; the defaults suit a server.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// SQLite's durability; `Full` by default.
    pub sqlite_sync: SqliteSync,
    /// How long an SQLite statement waits for a lock held by another process.
    pub busy_timeout: Duration,
    /// The most requests the SQLite writer commits together in one transaction.
    pub write_batch: usize,
    /// Read connections (SQLite) or all connections (PostgreSQL).
    pub max_connections: u32,
    /// How long to wait for a connection, including the first one at start-up.
    pub connect_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            sqlite_sync: SqliteSync::Full,
            busy_timeout: Duration::from_secs(5),
            write_batch: 256,
            max_connections: 16,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Sqlite,
    Postgres,
}

fn scheme(url: &str) -> Result<Scheme> {
    if url.starts_with("sqlite:") {
        Ok(Scheme::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Scheme::Postgres)
    } else {
        Err(StoreError::Config(format!(
            "unsupported database URL {}: expected sqlite://PATH or postgres://USER@HOST/DATABASE",
            redact(url)
        )))
    }
}

/// Opens the database `url` names (`sqlite://PATH`, created if missing; `postgres://…` or
/// `postgresql://…`) and applies the migrations it lacks.
///
/// Bad configuration is a one-line [`StoreError::Config`] naming the URL or path (never a password);
/// a database migrated by a newer doorstep is [`StoreError::TooNew`], and nothing is written to it.
pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Arc<dyn Store>> {
    Ok(match scheme(url)? {
        Scheme::Sqlite => Arc::new(sqlite::SqliteStore::open(url, options).await?),
        Scheme::Postgres => Arc::new(postgres::PgStore::open(url, options).await?),
    })
}

/// Applies the migrations the database `url` lacks and reports what was applied now and what was
/// there already (`doorstep migrate`).
pub async fn migrate(url: &str) -> Result<MigrationReport> {
    let options = ConnectOptions::default();
    match scheme(url)? {
        Scheme::Sqlite => sqlite::migrate(url, &options).await,
        Scheme::Postgres => postgres::migrate(url, &options).await,
    }
}

/// Writes a consistent copy of the SQLite database `url` names to the new file `to`, while a service
/// may be using it (`doorstep backup`); the copy's size in bytes. Nothing is migrated. A PostgreSQL
/// database is refused: pg_dump backs it up.
pub async fn backup(url: &str, to: &Path) -> Result<u64> {
    match scheme(url)? {
        Scheme::Sqlite => sqlite::backup(url, to, &ConnectOptions::default()).await,
        Scheme::Postgres => Err(StoreError::Config(format!(
            "{} is a PostgreSQL database: back it up with pg_dump (e.g. pg_dump --format=custom \
             --file=FILE URL); doorstep backup copies SQLite databases",
            redact(url)
        ))),
    }
}

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    // user:password@host
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let at = rest_start + at;
            if let Some(colon) = out[rest_start..at].find(':') {
                out.replace_range(rest_start + colon + 1..at, "***");
            }
        }
    }
    // ?password=... (libpq style)
    if let Some(query_start) = out.find('?') {
        let (head, query) = out.split_at(query_start + 1);
        let query = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        out = format!("{head}{query}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redact("postgres://doorstep:s3cr3t@db:5432/doorstep"),
            "postgres://doorstep:***@db:5432/doorstep"
        );
        assert_eq!(
            redact("postgresql://u:p@ss@db/x?sslmode=require&password=hunter2"),
            "postgresql://u:***@db/x?sslmode=require&password=***"
        );
        assert_eq!(
            redact("postgres://postgres@/db?host=/tmp/x"),
            "postgres://postgres@/db?host=/tmp/x"
        );
        assert_eq!(redact("sqlite://doorstep.db"), "sqlite://doorstep.db");
    }

    #[test]
    fn the_scheme_chooses_the_backend() {
        assert_eq!(scheme("sqlite://x.db").unwrap(), Scheme::Sqlite);
        assert_eq!(scheme("sqlite:x.db").unwrap(), Scheme::Sqlite);
        assert_eq!(scheme("postgresql://h/d").unwrap(), Scheme::Postgres);
        let err = scheme("mysql://root:pw@h/d").unwrap_err().to_string();
        assert!(err.contains("mysql://root:***@h/d"), "{err}");
    }
}
