//! Connecting to PostgreSQL (one direct connection first, so a failure says why), and migrating.

use std::collections::BTreeSet;
use std::str::FromStr;

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use crate::common::error::message;
use crate::migrations::{self, MigrationReport, TABLE};
use crate::options::{ConnectOptions, redact};
use crate::{Result, StoreError};

/// libpq accepts an empty host (`postgres://user@/db?host=/run/postgresql`, a Unix socket); the URL
/// parser under sqlx does not. Any host will do there, since `host=` names the socket.
fn with_host(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = scheme_end + 3;
    let authority_end = url[rest..].find(['/', '?']).map_or(url.len(), |i| rest + i);
    let host_start = url[rest..authority_end]
        .rfind('@')
        .map_or(rest, |i| rest + i + 1);
    if host_start == authority_end {
        format!("{}localhost{}", &url[..host_start], &url[host_start..])
    } else {
        url.to_owned()
    }
}

pub(super) async fn pool(url: &str, options: &ConnectOptions, size: u32) -> Result<PgPool> {
    let database = redact(url);
    let connect = PgConnectOptions::from_str(&with_host(url))
        .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL {database}: {e}")))?;
    let cannot = |why: String| StoreError::Config(format!("cannot connect to {database}: {why}"));
    // One direct connection first: a pool retries until its timeout and then only says that it
    // timed out, while this says why (refused, unknown host, authentication, no such database).
    let first = tokio::time::timeout(
        options.connect_timeout,
        PgConnection::connect_with(&connect),
    )
    .await
    .map_err(|_| cannot(format!("no answer within {:?}", options.connect_timeout)))?
    .map_err(|e| cannot(message(&e)))?;
    let _ = first.close().await;
    PgPoolOptions::new()
        .max_connections(size)
        // A database that restarted or failed over closed every pooled connection: each is pinged
        // before use, and a dead one replaced, so the pool recovers by itself once the server is
        // back. Until then a call waits at most `connect_timeout` and answers `Unavailable`.
        .test_before_acquire(true)
        .acquire_timeout(options.connect_timeout)
        .connect_with(connect)
        .await
        .map_err(|e| cannot(message(&e)))
}

async fn applied_versions(conn: &mut PgConnection) -> Result<BTreeSet<i64>> {
    let exists: Option<(i32,)> = sqlx::query_as(
        "SELECT 1 FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(TABLE)
    .fetch_optional(&mut *conn)
    .await?;
    if exists.is_none() {
        return Ok(BTreeSet::new());
    }
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations")
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(|(v,)| v).collect())
}

pub(super) async fn migrate_pool(pool: &PgPool, database: &str) -> Result<MigrationReport> {
    let backend = migrations::Backend::Postgres;
    let mut conn = pool.acquire().await?;
    let before = applied_versions(&mut conn).await?;
    backend.check_not_newer(&before)?;
    backend
        .migrator()
        .run(&mut *conn)
        .await
        .map_err(|e| StoreError::Database(format!("migrating {database}: {e}")))?;
    let after = applied_versions(&mut conn).await?;
    Ok(backend.report(database.to_owned(), &before, &after))
}

pub(crate) async fn migrate(url: &str, options: &ConnectOptions) -> Result<MigrationReport> {
    let pool = pool(url, options, 1).await?;
    let report = migrate_pool(&pool, &redact(url)).await;
    pool.close().await;
    report
}

#[cfg(test)]
mod tests {
    use super::with_host;

    #[test]
    fn an_empty_host_means_the_socket_named_by_host() {
        assert_eq!(
            with_host("postgres://u@/db?host=/run/pg"),
            "postgres://u@localhost/db?host=/run/pg"
        );
        assert_eq!(
            with_host("postgres:///db?host=/x"),
            "postgres://localhost/db?host=/x"
        );
        assert_eq!(
            with_host("postgres://u:p@db:5432/x"),
            "postgres://u:p@db:5432/x"
        );
    }
}
