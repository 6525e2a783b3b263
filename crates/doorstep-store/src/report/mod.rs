//! Reporting: per-ticket facts folded from the event log by a projector, and the windowed queries
//! over them that an SLA report needs.
//!
//! Why kept rows and not indexes over `events`: most figures are about a ticket's *first* something
//! (first dispatch, first resolution) and whether something else came before it (a RESOLVE breach, the
//! acknowledge deadline). Over the history that is a per-ticket scan of every event in a window; as a
//! row per ticket it is one index range. Small tables, written from the events being appended:
//! - `report_facts`: one row per ticket (created, first dispatch and whether it was signed for in time,
//!   first resolution and whether it came before any RESOLVE breach, merged), indexed by each instant;
//! - `report_marks`: the events counted per window (ESCALATED, answered CALLBACK_RECORDED), by seq;
//! - `report_overdue`: the intervals during which a ticket's running resolve deadline had passed, so
//!   that "overdue at T" holds for any past T, not only now;
//! - `report_breached` (since 0008): likewise the intervals during which a ticket showed a red card
//!   (a deadline breached, not yet resolved or finished).
//!
//! The rows are a fold of the history (the domain's [`doorstep_domain::sla_facts`], where the reporting
//! definitions live), written behind it: commits append events only, and the projector
//! (`sqlite::project` / `postgres::project`) folds the events after a cursor
//! (`report_state.projected`) into the rows, in large transactions, while the SLA scheduler has
//! nothing due; a report catches the cursor up before it counts, so it still counts every event
//! committed before it. Why: a burst of escalations is the moment the figures matter least and the
//! writer matters most, and the rows were a fifth of an escalation's commit. A commit's last event
//! carries what the fold needs beyond the events (the ticket's running resolve deadline after it).
//!
//! A ticket whose rows are missing (a database migrated from before 0003, rows deleted by hand) is
//! rebuilt from its events: all at once when the store opens (`report_state.backfilled`), or when
//! the projector next meets it. Instants are compared at millisecond precision.

//!
//! Layout: `facts` (the rows of one ticket and how the projector folds events into them), `sql` (the
//! rows' statements and the report's queries), `counts` (the report's counts collected per group, and
//! its percentiles), `backend` (the projector and the report for each backend, written once).

mod backend;
mod counts;
mod facts;
mod sql;

use chrono::{DateTime, Utc};

pub(crate) use backend::{postgres, sqlite};

/// What one report query groups tickets by. Period steps are separate windows (the engine asks once
/// per step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportGroup {
    /// One row, key `""`.
    Whole,
    /// Key: the path of the subtree root's child the ticket is under, or the root's own path for a
    /// ticket located at the root itself.
    ChildNode,
    /// Key: the level the ticket was received at.
    Level,
    /// Key: the ticket's category.
    Category,
}

/// One report query over a subtree.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportQuery {
    /// The subtree root's node path.
    pub subtree: String,
    pub group: ReportGroup,
    /// The window `[from, to)`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The instant "overdue now" and "breached now" are taken at (the engine passes min(to, now)).
    pub overdue_at: DateTime<Utc>,
    /// The comparison window for `received_year_before`.
    pub year_before_from: DateTime<Utc>,
    pub year_before_to: DateTime<Utc>,
}

/// The counts of one group; rates are the engine's business.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportCounts {
    pub key: String,
    pub received: i64,
    pub resolved: i64,
    pub resolved_on_time: i64,
    pub overdue: i64,
    /// Showing a red card at `overdue_at` (a deadline breached, and not resolved or finished).
    pub breached: i64,
    pub escalations: i64,
    pub dispatched: i64,
    pub acknowledged_on_time: i64,
    pub callbacks: i64,
    pub callbacks_satisfied: i64,
    pub callbacks_solved: i64,
    pub repeat_requests: i64,
    /// Mean of created → first resolution over `resolved`, in milliseconds.
    pub resolve_ms_mean: Option<f64>,
    /// Nearest-rank percentiles: the smallest value with at least 50% (90%) of values at or below it.
    pub resolve_ms_p50: Option<i64>,
    pub resolve_ms_p90: Option<i64>,
    pub received_year_before: i64,
}
