//! The SQLite backend: the embedded default.
//!
//! One writer task owns the only write connection and commits whatever writes are queued together
//! (`writer`); reads go through a separate pool and see every answered write (WAL). The statements
//! for registering and committing tickets are in `tickets`; every other store method is written
//! once for both backends (`common::shared`).
//!
//! Closing the store closes the readers, then lets the writer checkpoint the write-ahead log into
//! the database file, so that after a clean stop `doorstep.db` copied alone holds every write.
//! [`backup`] copies a database in use into a new file (`VACUUM INTO`).

mod tickets;
mod writer;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use doorstep_domain::{Ticket, TicketId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions as _, Connection as _};
use tokio::sync::mpsc;

use crate::common::codec::{self, NewRows, TicketRow};
use crate::common::error::message;
use crate::common::intake;
use crate::common::shared::{Backend, store_impl};
use crate::migrations::{self, MigrationReport, TABLE};
use crate::options::{ConnectOptions, SqliteSync};
use crate::{Commit, Created, DueTimer, NewTicket, Result, StoreError, StoredEvent};
use tickets::CommitRows;

/// Ids per `IN (...)` list when reading many tickets (well under SQLite's bound-parameter limit).
const GET_MANY_CHUNK: usize = 500;

/// The SQLite store: a read pool and the writer task's queue.
pub(crate) struct SqliteStore {
    path: PathBuf,
    reads: SqlitePool,
    writer: mpsc::Sender<writer::Message>,
    /// Tickets to register, gathered into batches in front of the writer.
    intake: mpsc::Sender<intake::Pending>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn connect_options(url: &str, options: &ConnectOptions) -> Result<SqliteConnectOptions> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err(StoreError::Config(format!(
            "{url}: an in-memory SQLite database is not supported (the writer and the readers need \
             one file); use sqlite://PATH"
        )));
    }
    let parsed = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("invalid SQLite URL {url}: {e}")))?;
    Ok(parsed
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(options.busy_timeout)
        // Statement journals (a multi-row statement inside the writer's savepoints keeps one, so it
        // can fail alone) in memory, not in a temporary file created and deleted per statement.
        .pragma("temp_store", "memory")
        .synchronous(match options.sqlite_sync {
            SqliteSync::Off => SqliteSynchronous::Off,
            SqliteSync::Normal => SqliteSynchronous::Normal,
            SqliteSync::Full => SqliteSynchronous::Full,
            SqliteSync::Extra => SqliteSynchronous::Extra,
        }))
}

/// Creates a missing database file readable and writable by its owner only: it holds callers' names
/// and phone numbers. SQLite gives the write-ahead log and shared-memory files the database file's
/// permissions. An existing file keeps the permissions its owner gave it.
fn create_private(path: &std::path::Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(StoreError::Config(format!(
                "cannot create SQLite database {}: {e}",
                path.display()
            ))),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Opens the write connection, creating the file if missing.
async fn open_writer(
    url: &str,
    options: &ConnectOptions,
) -> Result<(SqliteConnection, SqliteConnectOptions)> {
    let connect = connect_options(url, options)?;
    let path = connect.get_filename().to_path_buf();
    create_private(&path)?;
    let conn = connect
        .clone()
        .create_if_missing(true)
        .connect()
        .await
        .map_err(|e| {
            StoreError::Config(format!(
                "cannot open SQLite database {}: {}",
                path.display(),
                message(&e)
            ))
        })?;
    Ok((conn, connect))
}

async fn applied_versions(conn: &mut SqliteConnection) -> Result<BTreeSet<i64>> {
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = $1")
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

/// Checks the database is not newer than this binary, then applies what it lacks.
async fn migrate_conn(conn: &mut SqliteConnection, path: &str) -> Result<MigrationReport> {
    let backend = migrations::Backend::Sqlite;
    let before = applied_versions(conn).await?;
    backend.check_not_newer(&before)?;
    backend
        .migrator()
        .run(&mut *conn)
        .await
        .map_err(|e| StoreError::Database(format!("migrating {path}: {e}")))?;
    let after = applied_versions(conn).await?;
    Ok(backend.report(format!("sqlite://{path}"), &before, &after))
}

pub(crate) async fn migrate(url: &str, options: &ConnectOptions) -> Result<MigrationReport> {
    let (mut conn, connect) = open_writer(url, options).await?;
    let report = migrate_conn(&mut conn, &connect.get_filename().display().to_string()).await;
    let _ = conn.close().await;
    report
}

/// Writes a consistent copy of the database `url` names to the new file `to` (`VACUUM INTO`: a read
/// transaction, so a service using the database keeps writing meanwhile) and syncs it to disk; the
/// copy's size in bytes. Nothing is created or migrated at `url`.
pub(crate) async fn backup(url: &str, to: &Path, options: &ConnectOptions) -> Result<u64> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err(StoreError::Config(format!(
            "{url}: an in-memory SQLite database has nothing to back up"
        )));
    }
    let connect = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("invalid SQLite URL {url}: {e}")))?
        .busy_timeout(options.busy_timeout);
    let from = connect.get_filename().to_path_buf();
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(StoreError::Config(format!(
            "{} already exists: a backup is only written to a new file (remove it or choose \
             another name)",
            to.display()
        )));
    }
    let target = to.to_str().ok_or_else(|| {
        StoreError::Config(format!("{}: the backup path is not UTF-8", to.display()))
    })?;
    let mut conn = connect.connect().await.map_err(|e| {
        StoreError::Config(format!(
            "cannot open SQLite database {}: {}",
            from.display(),
            message(&e)
        ))
    })?;
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    copied.map_err(|e| {
        StoreError::Config(format!(
            "cannot back up {} to {}: {}",
            from.display(),
            to.display(),
            message(&e)
        ))
    })?;
    // SQLite does not sync the file VACUUM INTO writes.
    let to = to.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&to)?;
        file.sync_all()?;
        file.metadata().map(|m| m.len())
    })
    .await
    .map_err(|e| StoreError::Database(format!("syncing the backup: {e}")))?
    .map_err(|e| StoreError::Database(format!("syncing the backup: {e}")))
}

impl SqliteStore {
    pub(crate) async fn open(url: &str, options: &ConnectOptions) -> Result<SqliteStore> {
        let (mut conn, connect) = open_writer(url, options).await?;
        let path = connect.get_filename().to_path_buf();
        migrate_conn(&mut conn, &path.display().to_string()).await?;
        crate::report::sqlite::backfill(&mut conn).await?;
        let reads = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| {
                StoreError::Config(format!(
                    "cannot open SQLite database {}: {}",
                    path.display(),
                    message(&e)
                ))
            })?;
        let writer = writer::spawn(conn, options.write_batch.max(1));
        let queue = writer.clone();
        let intake = intake::spawn(options.write_batch.max(1), move |batch| {
            let queue = queue.clone();
            async move {
                writer::request(
                    &queue,
                    move |conn| Box::pin(tickets::create_all(conn, batch)),
                    false,
                )
                .await
            }
        });
        Ok(SqliteStore {
            path,
            reads,
            writer,
            intake,
        })
    }
}

async fn claim(
    conn: &mut SqliteConnection,
    now: i64,
    limit: i64,
    owner: String,
    lease_until: i64,
) -> Result<Vec<DueTimer>> {
    let rows: Vec<(String, String, String, String, String, i64)> =
        sqlx::query_as(crate::common::sql::sqlite::CLAIM)
            .bind(now)
            .bind(limit)
            .bind(&owner)
            .bind(lease_until)
            .fetch_all(&mut *conn)
            .await?;
    codec::due_timers(rows)
}

impl Backend for SqliteStore {
    async fn close(&self) -> Result<()> {
        // An open read transaction would hold the checkpoint back; reads in progress finish first.
        self.reads.close().await;
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
        match writer::close(&self.writer).await? {
            None => {}
            Some(true) => tracing::info!(
                database = %self.path.display(),
                wal_bytes,
                "sqlite database closed: its write-ahead log is checkpointed into the database file"
            ),
            Some(false) => tracing::warn!(
                database = %self.path.display(),
                wal_bytes,
                "sqlite database closed while another process reads it: part of its write-ahead \
                 log is not in the database file yet"
            ),
        }
        Ok(())
    }

    async fn create_ticket(&self, new: NewTicket<'_>) -> Result<Created> {
        intake::register(&self.intake, NewRows::new(&new)?).await
    }

    async fn commit(&self, c: Commit<'_>) -> Result<Vec<StoredEvent>> {
        codec::check_commit(&c)?;
        let rows = CommitRows {
            id: c.ticket.id.clone(),
            expected_version: c.expected_version,
            row: TicketRow::new(c.ticket)?,
            events: c.events.to_vec(),
            event_rows: codec::event_rows(c.events)?,
        };
        self.write(move |conn| Box::pin(tickets::commit(conn, rows)))
            .await
    }

    async fn commit_all(&self, commits: &[Commit<'_>]) -> Result<Vec<Result<Vec<StoredEvent>>>> {
        let rows: Vec<(TicketId, Result<CommitRows>)> = commits
            .iter()
            .map(|c| {
                let rows = codec::check_commit(c).and_then(|()| {
                    Ok(CommitRows {
                        id: c.ticket.id.clone(),
                        expected_version: c.expected_version,
                        row: TicketRow::new(c.ticket)?,
                        events: c.events.to_vec(),
                        event_rows: codec::event_rows(c.events)?,
                    })
                });
                (c.ticket.id.clone(), rows)
            })
            .collect();
        self.write(move |conn| Box::pin(tickets::commit_all(conn, rows)))
            .await
    }

    async fn get_tickets(&self, ids: &[TicketId]) -> Result<Vec<Ticket>> {
        let mut tickets = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(GET_MANY_CHUNK) {
            let sql = format!(
                "SELECT ticket FROM tickets WHERE id IN ({})",
                codec::params(chunk.len())
            );
            let mut query = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for (json,) in query.fetch_all(&self.reads).await? {
                tickets.push(codec::ticket_from_json(&json)?);
            }
        }
        Ok(tickets)
    }

    async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<DueTimer>> {
        let now = codec::millis(now);
        let limit = codec::page_limit(limit, codec::DEFAULT_CLAIM, codec::MAX_CLAIM);
        let owner = owner.to_owned();
        let lease_until = codec::millis(lease_until);
        // The scheduler decides on the claim while it commits its previous batch: answered
        // before that commit runs.
        self.write_last(move |conn| Box::pin(claim(conn, now, limit, owner, lease_until)))
            .await
    }
}

store_impl!(
    SqliteStore,
    conn = SqliteConnection,
    reads = reads,
    dialect = sqlite
);
crate::deliveries::deliveries_impl!(
    SqliteStore,
    reads = reads,
    claim = crate::deliveries::CLAIM_SQLITE,
    write = write
);
