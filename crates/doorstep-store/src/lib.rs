//! Persistence for doorstep: one [`Store`] trait, two backends (SQLite, the embedded default; PostgreSQL,
//! for production), chosen from the database URL by [`connect`].
//!
//! Every command is one transaction: its events are appended to the history, the ticket's projection is
//! updated (checked against the version the caller last saw) and the ticket's timers are replaced by
//! [`Ticket::timers`], together. A call returns only after the commit.
//!
//! Layout:
//! - this file: the [`Store`] trait and the types it speaks;
//! - `connect`: [`connect`] and [`migrate`], choosing the backend from the URL scheme, and
//!   [`ConnectOptions`];
//! - `sqlite`: the embedded backend (one group-committing writer task, a read pool);
//! - `postgres`: the production backend (a pool; the `event_seq` counter row orders commits);
//! - `migrations`: the schemas, embedded from the top-level `migrations/sqlite` and
//!   `migrations/postgres` folders and applied by sqlx's migrator;
//! - `sql`, `codec`, `district`, `error`: the SQL text, the row encodings and the sqlx error
//!   mapping both backends share;
//! - `report`: the per-ticket reporting rows, written behind the event log by a projector, and the
//!   SLA report's queries;
//! - `testing` (feature `testing`): a throwaway PostgreSQL cluster for tests and benchmarks.
//!
//! Both backends store instants as epoch milliseconds, a ticket and each event whole as JSON beside
//! the columns that queries filter on, and node paths so that a subtree is one index range.

mod chain;
mod codec;
mod connect;
mod district;
mod error;
mod migrations;
mod postgres;
mod report;
mod security;
mod sql;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;

use chrono::{DateTime, Utc};
use doorstep_domain::calendar::{Calendar, Notice, SpecialDay};
use doorstep_domain::{Channel, District, Event, Level, Status, Ticket, TicketId, Timer, UnitCode};

/// What can go wrong in a store, by kind.
#[derive(Debug, thiserror::Error)]
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
    /// Anything else the database said; logged in full, answered opaquely.
    #[error("database error: {0}")]
    Database(String),
}

pub use connect::{ConnectOptions, SqliteSync, connect, migrate, redact};
pub use migrations::MigrationReport;
pub use report::{ReportCounts, ReportGroup, ReportQuery};
pub use security::{AuditEntry, AuditQuery, TokenRecord};

pub type Result<T> = std::result::Result<T, StoreError>;

/// An event as stored: its place in the engine-wide order, and its ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Strictly increasing across the whole engine (gaps allowed).
    pub seq: i64,
    pub ticket_id: TicketId,
    pub event: Event,
}

/// A ticket to register: its state after `events` (CREATED first, then e.g. an automatic dispatch).
#[derive(Debug, Clone, Copy)]
pub struct NewTicket<'a> {
    pub ticket: &'a Ticket,
    pub events: &'a [Event],
    /// [`doorstep_domain::Jurisdiction::node_path`] of the ticket's node.
    pub node_path: &'a str,
}

/// Intake's answer: idempotent on (source, external reference).
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New(Vec<StoredEvent>),
    /// The pair was already registered; nothing was written.
    Existing(Box<Ticket>),
}

/// An action's result to persist: `ticket` is the state after `events`, computed from the state at
/// `expected_version`.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    pub ticket: &'a Ticket,
    pub expected_version: i64,
    pub events: &'a [Event],
}

/// A console's query. Results come in the order tickets were registered, so a cursor stays stable while
/// new tickets arrive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketQuery {
    /// A node path prefix (the subtree root's own path); `None` = everywhere.
    pub subtree: Option<String>,
    /// Any of these; empty = all.
    pub statuses: Vec<Status>,
    /// Any of these; empty = all.
    pub levels: Vec<Level>,
    /// Lead unit or co-handler.
    pub unit: Option<UnitCode>,
    /// Only tickets whose resolve deadline has passed at this instant (and still running).
    pub overdue_at: Option<DateTime<Utc>>,
    /// Only tickets whose resolve deadline is before this instant.
    pub due_before: Option<DateTime<Utc>>,
    /// Continue after this cursor (from [`TicketPage::next`]).
    pub after: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TicketPage {
    pub tickets: Vec<Ticket>,
    /// Set when more may follow.
    pub next: Option<i64>,
}

/// A timer that fell due, claimed under a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct DueTimer {
    pub ticket_id: TicketId,
    pub timer: Timer,
}

/// What an import wrote (or found already there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub nodes: u32,
    pub units: u32,
    pub people: u32,
    pub catalogue_entries: u32,
}

/// One accepted policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyVersion {
    pub version: i64,
    pub toml: String,
    pub created_at: DateTime<Utc>,
}

/// The operations the engine needs from a database. Both backends pass one conformance suite.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Registers a ticket, or returns the one already registered for (source, external reference).
    async fn create_ticket(&self, new: NewTicket<'_>) -> Result<Created>;
    /// Appends events, updates the projection and replaces the timers, if the ticket is still at
    /// `expected_version`; otherwise [`StoreError::Conflict`] and nothing changes.
    async fn commit(&self, commit: Commit<'_>) -> Result<Vec<StoredEvent>>;
    /// Several commits, applied in order, written with a statement per table for the lot (the
    /// commits are cut into runs naming each ticket once; a ticket's second commit sees its first).
    /// A commit that conflicts (or whose ticket is gone) writes nothing and the rest still commit,
    /// except the later commits of the same ticket, which were decided on it and fail with it.
    /// One answer per commit, in order. The SLA scheduler fires a claimed batch this way.
    /// - SQLite: one transaction and one disk sync for the lot; a database error fails the whole
    ///   call and nothing is written.
    /// - PostgreSQL: one transaction per run, which locks its tickets in id order before the event
    ///   counter (see the backend's `batch` module); a database error fails the commits of its run.
    async fn commit_all(&self, commits: &[Commit<'_>]) -> Result<Vec<Result<Vec<StoredEvent>>>>;
    async fn get_ticket(&self, id: &TicketId) -> Result<Option<Ticket>>;
    /// The tickets among `ids` that exist, in no particular order.
    async fn get_tickets(&self, ids: &[TicketId]) -> Result<Vec<Ticket>>;
    async fn ticket_by_ref(&self, source: Channel, external_ref: &str) -> Result<Option<Ticket>>;
    /// A ticket's events in order.
    async fn history(&self, id: &TicketId) -> Result<Vec<StoredEvent>>;
    /// The node path the ticket was filed under.
    async fn node_path(&self, id: &TicketId) -> Result<Option<String>>;
    async fn list_tickets(&self, query: &TicketQuery) -> Result<TicketPage>;
    /// Events with `seq > after_seq` in seq order, optionally within a subtree (a node path prefix).
    async fn events_after(
        &self,
        subtree: Option<&str>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>>;
    /// The highest seq written so far (0 for none).
    async fn last_seq(&self) -> Result<i64>;

    /// The earliest instant at which an armed timer can be claimed: its due instant, or the end of
    /// its lease when it is leased past that.
    async fn next_timer_due(&self) -> Result<Option<DateTime<Utc>>>;
    /// Claims up to `limit` timers due at `now`, earliest first, skipping those under another live lease;
    /// each is leased to `owner` until `lease_until` (a lease has ended once `now >= lease_until`).
    /// A timer disappears when a commit no longer arms it; a commit that re-arms it at another instant
    /// ends its lease.
    async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<DueTimer>>;

    /// Removes a claimed timer the domain found nothing to do for, if it is still the very timer claimed
    /// (same due instant, still leased to `owner`); a timer re-armed since is left alone. `true` when
    /// removed.
    async fn drop_claimed_timer(&self, claimed: &DueTimer, owner: &str) -> Result<bool>;
    /// Tickets with an armed timer due at or after `from`, by id after `after`, at most `limit`: the
    /// only tickets a calendar change from `from` on can re-time (found through the due-time index).
    async fn tickets_with_timers_from(
        &self,
        from: DateTime<Utc>,
        after: Option<&TicketId>,
        limit: u32,
    ) -> Result<Vec<TicketId>>;

    /// Upserts a whole district; idempotent: importing the same district again changes nothing.
    async fn import_district(&self, district: &District) -> Result<ImportCounts>;
    async fn load_district(&self) -> Result<District>;

    /// Replaces what one notice year declared, and in the same transaction records that the open
    /// deadlines are still to be re-timed for the change, with what the year declared before (see
    /// [`Store::pending_retimings`]).
    async fn put_calendar_notice(&self, notice: &Notice, days: &[SpecialDay]) -> Result<()>;
    /// Calendar changes whose re-timing has not been marked done, by year: each with a calendar
    /// holding what that year's notice declared before the change (no notice: the year had none).
    async fn pending_retimings(&self) -> Result<Vec<(i32, Calendar)>>;
    /// The re-timing for `year` has finished.
    async fn retiming_done(&self, year: i32) -> Result<()>;
    /// Every stored notice and its days (empty for a new database).
    async fn load_calendar(&self) -> Result<Calendar>;

    /// Stores a new policy version (the caller validated the TOML).
    async fn put_policy(&self, toml: &str, at: DateTime<Utc>) -> Result<PolicyVersion>;
    /// A policy version; 0 = the latest. `None` when there is none.
    async fn policy(&self, version: i64) -> Result<Option<PolicyVersion>>;

    // Security (issue 6): API tokens and the append-only audit log; see the `security` module.
    async fn create_token(&self, token: &TokenRecord) -> Result<()>;
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>>;
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Marks a token revoked (idempotent: the first instant stands); `NotFound` for an unknown id.
    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<TokenRecord>;
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()>;
    async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
    /// The SLA report's counts of one window over a subtree, per group, from one snapshot. The
    /// reporting rows are first brought up to date with every event committed before the call.
    async fn report_counts(&self, query: &ReportQuery) -> Result<Vec<ReportCounts>>;
    /// Brings the reporting rows up to date with at most `limit` more events, in one transaction;
    /// the number of events taken (fewer than `limit`: caught up). Commits do not write reporting
    /// rows; the SLA scheduler calls this while nothing is due, and a report catches up first.
    async fn project_reports(&self, limit: u32) -> Result<u64>;
    /// How many appended events the reporting rows do not include yet.
    async fn reports_behind(&self) -> Result<i64>;
}

/// Events a report's catch-up takes per transaction.
const CATCH_UP_EVENTS: u32 = 5000;
