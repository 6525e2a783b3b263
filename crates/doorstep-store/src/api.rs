//! The [`Store`] trait, the one door to a database, and the types it speaks. Its methods come in
//! groups: tickets (intake, commits, reads, the event log), timers (the SLA scheduler's claims and
//! the calendar's re-timing), administration (district, calendar, policy), security (tokens and the
//! audit log) and reports.

use std::fmt;

use chrono::{DateTime, Utc};
use doorstep_domain::calendar::{Calendar, Notice, SpecialDay};
use doorstep_domain::{Channel, District, Event, Level, Status, Ticket, TicketId, Timer, UnitCode};

use crate::{ReportCounts, ReportQuery, Result};

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
    /// Only the tickets filed under this source system's own number (exactly).
    pub external_ref: Option<String>,
    /// Only the tickets that came in through this channel.
    pub source: Option<Channel>,
    /// Only tickets whose resolve deadline has passed at this instant (and still running).
    pub overdue_at: Option<DateTime<Utc>>,
    /// Only tickets showing a red card ([`Ticket::is_breached`]): a deadline was breached and the
    /// ticket is not resolved, closed, cancelled or merged.
    pub breached_only: bool,
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

/// The connections of a store's pool (the read pool for SQLite, whose writes go through one
/// writer), sampled for the operator's gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUse {
    /// Open connections, idle and busy.
    pub size: u32,
    pub idle: u32,
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
pub trait Store: crate::Deliveries + Send + Sync + fmt::Debug + 'static {
    // Tickets: intake, commits, reads and the event log.

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
    /// Events with `seq > after_seq` in seq order, each with the node path its ticket was filed under:
    /// the whole log, for a process's one watch feed to filter in memory.
    async fn events_with_paths_after(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(String, StoredEvent)>>;
    /// The highest seq written so far (0 for none).
    async fn last_seq(&self) -> Result<i64>;

    // Timers: the SLA scheduler's claims, and the tickets a calendar change re-times.

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

    // Administration: the district, the calendar (with the re-timings a change leaves pending) and
    // policy versions.

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

    /// The version of the district, calendar and policy together: every import, calendar change and
    /// new policy moves it, in its own transaction. A process whose copy was loaded at another
    /// version loads them again.
    async fn config_version(&self) -> Result<i64>;

    /// Stores a new policy version (the caller validated the TOML).
    async fn put_policy(&self, toml: &str, at: DateTime<Utc>) -> Result<PolicyVersion>;
    /// A policy version; 0 = the latest. `None` when there is none.
    async fn policy(&self, version: i64) -> Result<Option<PolicyVersion>>;

    // Security: API tokens (stored as hashes) and the append-only audit log of personal-data reads.

    async fn create_token(&self, token: &TokenRecord) -> Result<()>;
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>>;
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Marks a token revoked (idempotent: the first instant stands); `NotFound` for an unknown id.
    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<TokenRecord>;
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()>;
    async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;

    // Reports: the reporting rows folded behind the event log, and the SLA report's counts.

    /// The SLA report's counts of one window over a subtree, per group, from one snapshot. The
    /// reporting rows are first brought up to date with every event committed before the call.
    async fn report_counts(&self, query: &ReportQuery) -> Result<Vec<ReportCounts>>;
    /// Brings the reporting rows up to date with at most `limit` more events, in one transaction;
    /// the number of events taken (fewer than `limit`: caught up). Commits do not write reporting
    /// rows; the SLA scheduler calls this while nothing is due, and a report catches up first.
    async fn project_reports(&self, limit: u32) -> Result<u64>;
    /// How many appended events the reporting rows do not include yet.
    async fn reports_behind(&self) -> Result<i64>;

    // Gauges for the operator: cheap counts, sampled every few seconds.

    /// Armed timers due at `now` (claimed or not): the scheduler's backlog.
    async fn count_due_timers(&self, now: DateTime<Utc>) -> Result<i64>;
    /// Open tickets (not resolved, not terminal) per level, by the level's name; levels without
    /// any are left out.
    async fn open_tickets_by_level(&self) -> Result<Vec<(String, i64)>>;
    /// The pool's connections now.
    fn pool_use(&self) -> PoolUse;

    // Health.

    /// One cheap round trip to the database (`SELECT 1` on a read connection): `Ok` while it
    /// answers; for readiness probes, which should time it out themselves (a pool waits up to the
    /// connect timeout for a connection).
    async fn ping(&self) -> Result<()>;

    // Closing, once the server and the scheduler stopped.

    /// Closes the store after the writes already answered: SQLite checkpoints its write-ahead log
    /// into the database file and closes its connections, so the file copied alone holds every
    /// write; PostgreSQL closes its pool. Logs one line saying what it did. Idempotent; other calls
    /// fail once it has begun.
    async fn close(&self) -> Result<()>;
}

/// Events a report's catch-up takes per transaction.
pub(crate) const CATCH_UP_EVENTS: u32 = 5000;

/// An API token as stored: everything but the secret, which only its holder has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    /// The principal's name, recorded as the actor of what the token does.
    pub name: String,
    /// Lowercase hex SHA-256 of the token as issued.
    pub hash: String,
    pub role: String,
    /// The jurisdiction node whose subtree the token reaches.
    pub scope: String,
    /// For a handling unit's token: the unit it speaks for.
    pub unit: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One read of unmasked personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Time-ordered (a UUIDv7), so it is also the cursor.
    pub id: String,
    pub at: DateTime<Utc>,
    pub principal: String,
    pub token_id: Option<String>,
    pub ticket_id: String,
    /// What was read and through which call, e.g. `caller name and phone via TicketService.GetTicket`.
    pub what: String,
}

/// An audit-log query: entries after `after` (an entry id), oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub ticket_id: Option<String>,
    pub principal: Option<String>,
    pub after: Option<String>,
    pub limit: u32,
}
