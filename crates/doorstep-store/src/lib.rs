//! Persistence for doorstep: one [`Store`] trait, two backends (SQLite, the embedded default; PostgreSQL,
//! for production), chosen from the database URL by [`connect`].
//!
//! Every command is one transaction: its events are appended to the history, the ticket's projection is
//! updated (checked against the version the caller last saw) and the ticket's timers are replaced by
//! [`Ticket::timers`], together. A call returns only after the commit.
//!
//! Layout:
//! - `api`: the [`Store`] trait, its methods grouped (tickets, timers, administration, security,
//!   reports), and the types it speaks;
//! - `options`: [`connect`], [`migrate`] and [`backup`], choosing the backend from the URL scheme,
//!   [`ConnectOptions`] and [`redact`];
//! - `migrations`: the schemas of both backends, embedded from the top-level `migrations/sqlite` and
//!   `migrations/postgres` folders and applied by sqlx's migrator;
//! - `common`: what both backends share: the row encodings (`codec`), the SQL text (`sql`), the
//!   district as rows, the cutting of a batch into runs (`chain`), the sqlx error mapping, and the
//!   store methods whose bodies are the same on both, written once (`shared`, with the dialect
//!   differences as parameters);
//! - `deliveries`: notification deliveries, recorded behind the event log by the notifier and
//!   claimed under a lease (the [`Deliveries`] supertrait of [`Store`]);
//! - `report`: the per-ticket reporting rows, folded behind the event log by a projector, and the
//!   SLA report's queries;
//! - `sqlite`: the embedded backend (one group-committing writer task, a read pool; closing it
//!   checkpoints the write-ahead log into the database file);
//! - `postgres`: the production backend (a pool; the `event_seq` counter row orders commits);
//! - `testing` (feature `testing`): databases for tests (a temporary SQLite file, a throwaway
//!   PostgreSQL cluster) and `both_backends!`, which writes a test once for both backends.
//!
//! Both backends store instants as epoch milliseconds, a ticket and each event whole as JSON beside
//! the columns that queries filter on, and node paths so that a subtree is one index range.
//!
//! [`Ticket::timers`]: doorstep_domain::Ticket::timers

mod api;
mod common;
mod deliveries;
mod migrations;
mod options;
mod postgres;
mod report;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use doorstep_domain::TicketId;

pub use api::{
    AuditEntry, AuditQuery, Commit, Created, DueTimer, ImportCounts, NewTicket, PolicyVersion,
    PoolUse, Store, StoredEvent, TicketPage, TicketQuery, TokenRecord,
};
pub use deliveries::{
    Deliveries, Delivery, DeliveryCounts, DeliveryQuery, DeliveryStatus, NewDelivery, Settlement,
};
pub use migrations::MigrationReport;
pub use options::{ConnectOptions, SqliteSync, backup, connect, migrate, redact};
pub use report::{ReportCounts, ReportGroup, ReportQuery};

/// What can go wrong in a store, by kind.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    /// The ticket moved on since the caller read it.
    #[error("ticket {id} is at version {actual}, not {expected}")]
    Conflict {
        id: TicketId,
        expected: i64,
        actual: i64,
    },
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The configuration or the request cannot work (bad URL, unwritable path, ...).
    #[error("{0}")]
    Config(String),
    /// The database was migrated by a newer doorstep than this binary.
    #[error(
        "the database was migrated by a newer doorstep (migration {0} is unknown to this binary)"
    )]
    TooNew(i64),
    /// The database cannot be reached now (down, restarting, failing over, out of connections, or
    /// locked by another process past the busy timeout): the same request may succeed if retried.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else the database said; logged in full, answered opaquely.
    #[error("database error: {0}")]
    Database(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;
