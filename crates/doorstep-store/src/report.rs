//! Reporting: per-ticket facts folded from the event log by a projector, and the windowed queries
//! over them that an SLA report needs.
//!
//! Why kept rows and not indexes over `events`: most figures are about a ticket's *first* something
//! (first dispatch, first resolution) and whether something else came before it (a RESOLVE breach, the
//! acknowledge deadline). Over the history that is a per-ticket scan of every event in a window; as a
//! row per ticket it is one index range. Three small tables, written from the events being appended:
//! - `report_facts`: one row per ticket (created, first dispatch and whether it was signed for in time,
//!   first resolution and whether it came before any RESOLVE breach, merged), indexed by each instant;
//! - `report_marks`: the events counted per window (ESCALATED, answered CALLBACK_RECORDED), by seq;
//! - `report_overdue`: the intervals during which a ticket's running resolve deadline had passed, so
//!   that "overdue at T" holds for any past T, not only now.
//!
//! The rows are a fold of the history ([`Facts::apply`]), written behind it: commits append events
//! only, and [`sqlite::project`] / [`postgres::project`] fold the events after a cursor
//! (`report_state.projected`) into the rows, in large transactions, while the SLA scheduler has
//! nothing due; a report catches the cursor up before it counts, so it still counts every event
//! committed before it. Why: a burst of escalations is the moment the figures matter least and the
//! writer matters most, and the rows were a fifth of an escalation's commit. A commit's last event
//! carries what the fold needs beyond the events (the ticket's running resolve deadline after it).
//!
//! A ticket whose rows are missing (a database migrated from before 0003, rows deleted by hand) is
//! rebuilt from its events: all at once when the store opens (`report_state.backfilled`), or when
//! the projector next meets it. Instants are compared at millisecond precision.

use chrono::{DateTime, Utc};
use doorstep_domain::{Change, ClockKind, Event, Satisfaction, Ticket};

use crate::Result;
use crate::codec::{MAX_PARAMS, millis, rows_per_statement};

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
    /// The instant "overdue now" is taken at (the engine passes min(to, now)).
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

/// The per-ticket facts row, as a fold over the ticket's events.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Facts {
    pub(crate) ticket_id: String,
    pub(crate) node_path: String,
    pub(crate) level: String,
    pub(crate) category: String,
    pub(crate) created_at: i64,
    pub(crate) first_dispatch_at: Option<i64>,
    pub(crate) ack_on_time: bool,
    pub(crate) ack_pending_due: Option<i64>,
    pub(crate) first_resolved_at: Option<i64>,
    pub(crate) resolved_on_time: bool,
    pub(crate) resolve_ms: Option<i64>,
    pub(crate) resolve_breached: bool,
    pub(crate) merged_at: Option<i64>,
    pub(crate) due_now: Option<i64>,
    pub(crate) open_since: Option<i64>,
}

/// An event counted per window.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mark {
    pub(crate) seq: i64,
    pub(crate) kind: i32,
    pub(crate) at: i64,
    pub(crate) satisfied: bool,
    pub(crate) solved: bool,
}

const MARK_ESCALATION: i32 = 1;
const MARK_CALLBACK: i32 = 2;

/// A change to the ticket's `report_overdue` rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum OverdueOp {
    /// The open row ends here (it was overdue for a while).
    Close { ends: i64 },
    /// The open row never became overdue: delete it.
    Drop,
    /// A new running deadline: overdue from `since` on.
    Open { since: i64 },
}

impl Facts {
    /// The facts of a ticket right after its CREATED event (`None` for any other event).
    pub(crate) fn created(node_path: &str, event: &Event) -> Option<Facts> {
        let Change::Created {
            id, intake, level, ..
        } = &event.change
        else {
            return None;
        };
        Some(Facts {
            ticket_id: id.as_str().to_owned(),
            node_path: node_path.to_owned(),
            level: level.as_str().to_owned(),
            category: intake.category.as_str().to_owned(),
            created_at: millis(event.at),
            first_dispatch_at: None,
            ack_on_time: false,
            ack_pending_due: None,
            first_resolved_at: None,
            resolved_on_time: false,
            resolve_ms: None,
            resolve_breached: false,
            merged_at: None,
            due_now: None,
            open_since: None,
        })
    }

    fn dispatched(&mut self, at: i64, due: DateTime<Utc>) {
        if self.first_dispatch_at.is_none() {
            self.first_dispatch_at = Some(at);
            self.ack_pending_due = Some(millis(due));
        } else {
            // Another dispatch before the first was signed for: the first one was not.
            self.ack_pending_due = None;
        }
    }

    /// Folds one event; counted events are pushed to `marks`.
    pub(crate) fn apply(&mut self, seq: i64, event: &Event, marks: &mut Vec<Mark>) {
        let at = millis(event.at);
        match &event.change {
            Change::DispatchedTo { acknowledge, .. } => self.dispatched(at, acknowledge.due_at),
            Change::Escalated { dispatch, .. } => {
                if let Some(d) = dispatch {
                    self.dispatched(at, d.acknowledge.due_at);
                }
                marks.push(Mark {
                    seq,
                    kind: MARK_ESCALATION,
                    at,
                    satisfied: false,
                    solved: false,
                });
            }
            Change::Acknowledged { .. } => {
                if let Some(due) = self.ack_pending_due.take() {
                    self.ack_on_time = at < due;
                }
            }
            Change::ReturnedByUnit { .. } => self.ack_pending_due = None,
            Change::Breached {
                clock: ClockKind::Resolve,
                ..
            } if self.first_resolved_at.is_none() => self.resolve_breached = true,
            Change::ResolvedByUnit { .. } if self.first_resolved_at.is_none() => {
                self.first_resolved_at = Some(at);
                self.resolved_on_time = !self.resolve_breached;
                self.resolve_ms = Some(at - self.created_at);
            }
            Change::CallbackRecorded {
                satisfaction,
                matter_solved,
                ..
            } if *satisfaction != Satisfaction::NoAnswer => marks.push(Mark {
                seq,
                kind: MARK_CALLBACK,
                at,
                satisfied: satisfaction.is_satisfied(),
                solved: *matter_solved,
            }),
            Change::MergedInto { .. } if self.merged_at.is_none() => self.merged_at = Some(at),
            _ => {}
        }
    }

    /// The ticket's running resolve deadline is `due` from instant `at` on.
    pub(crate) fn deadline(&mut self, at: i64, due: Option<i64>, ops: &mut Vec<OverdueOp>) {
        if self.due_now == due {
            return;
        }
        if let Some(since) = self.open_since.take() {
            ops.push(if since < at {
                OverdueOp::Close { ends: at }
            } else {
                OverdueOp::Drop
            });
        }
        if let Some(due) = due {
            let since = due.max(at);
            self.open_since = Some(since);
            ops.push(OverdueOp::Open { since });
        }
        self.due_now = due;
    }
}

/// Every row of one ticket from its whole history.
pub(crate) fn fold(
    node_path: &str,
    events: &[(i64, Event)],
) -> Option<(Facts, Vec<Mark>, Vec<OverdueOp>)> {
    let ((_, first), _) = events.split_first()?;
    let mut facts = Facts::created(node_path, first)?;
    let mut ticket = Ticket::from_created(first).ok()?;
    let mut marks = Vec::new();
    let mut ops = Vec::new();
    for (i, (seq, event)) in events.iter().enumerate() {
        if i > 0 {
            ticket.apply(event);
        }
        facts.apply(*seq, event, &mut marks);
        facts.deadline(
            millis(event.at),
            ticket.resolve_due_at().map(millis),
            &mut ops,
        );
    }
    Some((facts, marks, ops))
}

fn bool_int(b: bool) -> i32 {
    i32::from(b)
}

/// `ticket_id` then [`FACTS_COLUMNS`].
type FactsRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    i32,
    Option<i64>,
    Option<i64>,
    i32,
    Option<i64>,
    i32,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn facts_from_row(r: FactsRow) -> Facts {
    Facts {
        ticket_id: r.0,
        node_path: r.1,
        level: r.2,
        category: r.3,
        created_at: r.4,
        first_dispatch_at: r.5,
        ack_on_time: r.6 != 0,
        ack_pending_due: r.7,
        first_resolved_at: r.8,
        resolved_on_time: r.9 != 0,
        resolve_ms: r.10,
        resolve_breached: r.11 != 0,
        merged_at: r.12,
        due_now: r.13,
        open_since: r.14,
    }
}

const FACTS_COLUMNS: &str = "node_path, level, category, created_at, first_dispatch_at, \
    ack_on_time, ack_pending_due, first_resolved_at, resolved_on_time, resolve_ms, \
    resolve_breached, merged_at, due_now, open_since";

/// `INSERT INTO report_facts ... VALUES {rows} ON CONFLICT ...`, 15 columns a row.
const UPSERT_FACTS: (&str, &str) = (
    "INSERT INTO report_facts (ticket_id, node_path, level, category, \
    created_at, first_dispatch_at, ack_on_time, ack_pending_due, first_resolved_at, \
    resolved_on_time, resolve_ms, resolve_breached, merged_at, due_now, open_since) VALUES",
    "ON CONFLICT (ticket_id) DO UPDATE SET node_path = excluded.node_path, level = excluded.level, \
    category = excluded.category, created_at = excluded.created_at, \
    first_dispatch_at = excluded.first_dispatch_at, ack_on_time = excluded.ack_on_time, \
    ack_pending_due = excluded.ack_pending_due, first_resolved_at = excluded.first_resolved_at, \
    resolved_on_time = excluded.resolved_on_time, resolve_ms = excluded.resolve_ms, \
    resolve_breached = excluded.resolve_breached, merged_at = excluded.merged_at, \
    due_now = excluded.due_now, open_since = excluded.open_since",
);

/// The columns no index covers, 5 a row (see [`FactsChange::Unindexed`]).
const UPDATE_FACTS_UNINDEXED: (&str, &str) = (
    "WITH v (ticket_id, ack_pending_due, resolve_breached, due_now, open_since) AS (VALUES",
    ") UPDATE report_facts SET ack_pending_due = v.ack_pending_due, \
    resolve_breached = v.resolve_breached, due_now = v.due_now, open_since = v.open_since \
    FROM v WHERE report_facts.ticket_id = v.ticket_id",
);

/// 9 columns a row.
const INSERT_MARKS: (&str, &str) = (
    "INSERT INTO report_marks (seq, ticket_id, node_path, level, category, kind, at, satisfied, \
    solved) VALUES",
    "ON CONFLICT (seq) DO NOTHING",
);

/// Ends the open interval of each ticket in `v (ticket_id, ends)`, 2 columns a row.
const CLOSE_OVERDUE: (&str, &str) = (
    "WITH v (ticket_id, ends) AS (VALUES",
    ") UPDATE report_overdue SET ends = v.ends FROM v \
    WHERE report_overdue.ticket_id = v.ticket_id AND report_overdue.ends IS NULL",
);

/// 6 columns a row.
const INSERT_OVERDUE: (&str, &str) = (
    "INSERT INTO report_overdue (ticket_id, since, ends, node_path, level, category) VALUES",
    "ON CONFLICT (ticket_id, since) DO NOTHING",
);

/// One ticket's events read from the log by the projector, in seq order.
struct Projecting {
    ticket_id: String,
    /// The ticket's node path when its events were appended (a new facts row takes it).
    node_path: String,
    events: Vec<Logged>,
}

/// One event of the log as the projector reads it.
struct Logged {
    seq: i64,
    event: Event,
    /// On the last event a commit appended: the commit's instant and the ticket's running resolve
    /// deadline after it, in epoch milliseconds.
    commit: Option<(i64, Option<i64>)>,
}

/// `(seq, ticket_id, node_path, payload, commit_at, resolve_due)`.
type LoggedRow = (i64, String, String, String, Option<i64>, Option<i64>);

/// The log's rows grouped by ticket, in the order of each ticket's first event; the last seq read.
fn group(rows: Vec<LoggedRow>) -> Result<(Vec<Projecting>, i64)> {
    let mut tickets: Vec<Projecting> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut last = 0;
    for (seq, ticket_id, node_path, payload, commit_at, resolve_due) in rows {
        last = seq;
        let event = serde_json::from_str::<Event>(&payload)?;
        let logged = Logged {
            seq,
            event,
            commit: commit_at.map(|at| (at, resolve_due)),
        };
        match index.get(&ticket_id) {
            Some(&i) => tickets[i].events.push(logged),
            None => {
                index.insert(ticket_id.clone(), tickets.len());
                tickets.push(Projecting {
                    ticket_id,
                    node_path,
                    events: vec![logged],
                });
            }
        }
    }
    Ok((tickets, last))
}

/// One ticket's report rows to write.
struct TicketRows {
    facts: Facts,
    /// How its facts row changed.
    change: FactsChange,
    marks: Vec<Mark>,
    ops: Vec<OverdueOp>,
}

/// How a ticket's facts row changed, which decides the statement that writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FactsChange {
    None,
    /// Only columns no index covers (the running deadline and the pending sign-for): an `UPDATE`
    /// of those alone leaves the row's four index entries as they are.
    Unindexed,
    /// A new row, or an indexed column changed: the whole row is upserted.
    Whole,
}

impl Facts {
    /// How `self` differs from the row as stored (`None`: no row yet).
    fn change_from(&self, stored: Option<&Facts>) -> FactsChange {
        let Some(stored) = stored else {
            return FactsChange::Whole;
        };
        // `self` with the stored values of the columns no index covers.
        let indexed_alike = Facts {
            ack_pending_due: stored.ack_pending_due,
            resolve_breached: stored.resolve_breached,
            due_now: stored.due_now,
            open_since: stored.open_since,
            ..self.clone()
        };
        if self == stored {
            FactsChange::None
        } else if indexed_alike == *stored {
            FactsChange::Unindexed
        } else {
            FactsChange::Whole
        }
    }
}

/// What a ticket's overdue operations, applied in order, do to its rows: what becomes of the stored
/// open interval (a close or a drop), and the new intervals `(since, ends)`.
fn settle(ops: &[OverdueOp]) -> (Option<OverdueOp>, Vec<(i64, Option<i64>)>) {
    let mut stored = None;
    let mut new: Vec<(i64, Option<i64>)> = Vec::new();
    for op in ops {
        let open_new = new.last().is_some_and(|(_, ends)| ends.is_none());
        match *op {
            OverdueOp::Open { since } => new.push((since, None)),
            OverdueOp::Close { ends } if open_new => {
                if let Some(last) = new.last_mut() {
                    last.1 = Some(ends);
                }
            }
            OverdueOp::Drop if open_new => {
                new.pop();
            }
            OverdueOp::Close { .. } | OverdueOp::Drop => stored = Some(*op),
        }
    }
    (stored, new)
}

/// Takes the backfill over: 1 row when this connection is the one to backfill.
const CLAIM_BACKFILL: &str =
    "UPDATE report_state SET backfilled = 1 WHERE id = 1 AND backfilled = 0";
/// Tickets registered up to the projector's cursor (`$1`) without rows.
const MISSING_FACTS: &str = "SELECT t.id, t.node_path FROM tickets t WHERE t.reg <= $1 \
    AND NOT EXISTS (SELECT 1 FROM report_facts f WHERE f.ticket_id = t.id) ORDER BY t.reg";

/// The SQL key expression of a grouping. Child nodes are grouped by node path in SQL and rolled up
/// here ([`child_key`]): cheaper than a substring expression on every row.
fn key_sql(group: ReportGroup) -> &'static str {
    match group {
        ReportGroup::Whole => "''",
        ReportGroup::Level => "level",
        ReportGroup::Category => "category",
        ReportGroup::ChildNode => "node_path",
    }
}

/// The path of the child of `subtree` that `node_path` lies under (`subtree` itself for a ticket at
/// the root).
fn child_key(subtree: &str, node_path: &str) -> String {
    match node_path
        .strip_prefix(subtree)
        .and_then(|rest| rest.find('|'))
    {
        Some(end) => node_path[..subtree.len() + end + 1].to_owned(),
        None => subtree.to_owned(),
    }
}

/// The report's SQL texts for one grouping; `{key}`, `{group}` and `{partition}` filled in.
struct ReportSql {
    received: String,
    resolved: String,
    histogram: String,
    /// `{buckets}` still to fill in.
    durations: String,
    dispatched: String,
    merged: String,
    marks: String,
    overdue_closed: String,
    overdue_open: String,
}

const IN_SUBTREE: &str = "node_path >= $1 AND node_path < $2";
/// The histogram step of the percentile search: an hour.
const BUCKET_MS: i64 = 3_600_000;

impl ReportSql {
    fn new(group: ReportGroup) -> ReportSql {
        let key = key_sql(group);
        let group_by = match group {
            // PostgreSQL refuses a constant in GROUP BY; one aggregate row needs none.
            ReportGroup::Whole => String::new(),
            _ => format!(" GROUP BY {key}"),
        };
        let windowed = |what: &str, table: &str, column: &str| {
            format!(
                "SELECT {key}, {what} FROM {table} WHERE {column} >= $3 AND {column} < $4 \
                 AND {IN_SUBTREE}{group_by}"
            )
        };
        ReportSql {
            received: windowed("COUNT(*)", "report_facts", "created_at"),
            resolved: windowed(
                "COUNT(*), COALESCE(SUM(resolved_on_time), 0), \
                 CAST(COALESCE(SUM(resolve_ms), 0) AS BIGINT)",
                "report_facts",
                "first_resolved_at",
            ),
            // Percentiles in two steps: an hourly histogram says which hour holds each rank, then
            // only the durations of those hours are read and sorted here. Cheaper than a window
            // function over the month (SQLite) or reading every duration.
            histogram: format!(
                "SELECT {key}, resolve_ms / {BUCKET_MS}, COUNT(*) FROM report_facts \
                 WHERE first_resolved_at >= $3 AND first_resolved_at < $4 AND {IN_SUBTREE} \
                 GROUP BY {}resolve_ms / {BUCKET_MS}",
                match group {
                    ReportGroup::Whole => String::new(),
                    _ => format!("{key}, "),
                }
            ),
            durations: format!(
                "SELECT {key}, resolve_ms FROM report_facts \
                 WHERE first_resolved_at >= $3 AND first_resolved_at < $4 AND {IN_SUBTREE} \
                 AND resolve_ms / {BUCKET_MS} IN ({{buckets}})"
            ),
            dispatched: windowed(
                "COUNT(*), COALESCE(SUM(ack_on_time), 0)",
                "report_facts",
                "first_dispatch_at",
            ),
            merged: windowed("COUNT(*)", "report_facts", "merged_at"),
            marks: windowed(
                "COALESCE(SUM(CASE WHEN kind = 1 THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN kind = 2 THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(satisfied), 0), COALESCE(SUM(solved), 0)",
                "report_marks",
                "at",
            ),
            overdue_closed: format!(
                "SELECT {key}, COUNT(*) FROM report_overdue WHERE ends > $3 AND since <= $3 \
                 AND {IN_SUBTREE}{group_by}"
            ),
            overdue_open: format!(
                "SELECT {key}, COUNT(*) FROM report_overdue WHERE ends IS NULL AND since <= $3 \
                 AND {IN_SUBTREE}{group_by}"
            ),
        }
    }
}

/// Groups collected by key, in key order; child-node keys rolled up from node paths.
#[derive(Debug)]
struct Rows<'q> {
    query: &'q ReportQuery,
    rows: std::collections::BTreeMap<String, ReportCounts>,
    resolve_ms_sum: std::collections::BTreeMap<String, i64>,
    /// Per key: durations per hour bucket.
    histogram: std::collections::BTreeMap<String, std::collections::BTreeMap<i64, i64>>,
    /// Per key: the durations read from the buckets holding its percentiles.
    durations: std::collections::BTreeMap<String, Vec<i64>>,
}

impl<'q> Rows<'q> {
    fn new(query: &'q ReportQuery) -> Self {
        Rows {
            query,
            rows: Default::default(),
            resolve_ms_sum: Default::default(),
            histogram: Default::default(),
            durations: Default::default(),
        }
    }

    fn key(&self, key: String) -> String {
        match self.query.group {
            ReportGroup::ChildNode => child_key(&self.query.subtree, &key),
            _ => key,
        }
    }

    fn row(&mut self, key: String) -> &mut ReportCounts {
        let key = self.key(key);
        self.rows
            .entry(key.clone())
            .or_insert_with(|| ReportCounts {
                key,
                ..ReportCounts::default()
            })
    }

    fn finish(mut self) -> Vec<ReportCounts> {
        for (key, sum) in std::mem::take(&mut self.resolve_ms_sum) {
            let row = self.row(key);
            if row.resolved > 0 {
                row.resolve_ms_mean = Some(sum as f64 / row.resolved as f64);
            }
        }
        let histogram = std::mem::take(&mut self.histogram);
        for (key, buckets) in histogram {
            let mut values = self.durations.remove(&key).unwrap_or_default();
            values.sort_unstable();
            let pick = |p: i64| {
                let (bucket, rank) = rank_in_bucket(&buckets, p)?;
                let lo = bucket * BUCKET_MS;
                let first = values.partition_point(|v| *v < lo);
                values.get(first + rank as usize - 1).copied()
            };
            let (p50, p90) = (pick(50), pick(90));
            let row = self.row(key);
            row.resolve_ms_p50 = p50;
            row.resolve_ms_p90 = p90;
        }
        self.rows.into_values().collect()
    }

    /// The hour buckets any key's percentiles fall in.
    fn percentile_buckets(&self) -> std::collections::BTreeSet<i64> {
        self.histogram
            .values()
            .flat_map(|b| [50, 90].map(|p| rank_in_bucket(b, p).map(|(bucket, _)| bucket)))
            .flatten()
            .collect()
    }
}

/// The nearest-rank `p`th percentile's bucket, and its 1-based rank within the bucket.
fn rank_in_bucket(buckets: &std::collections::BTreeMap<i64, i64>, p: i64) -> Option<(i64, i64)> {
    let n: i64 = buckets.values().sum();
    let mut rank = (p * n + 99) / 100;
    for (bucket, count) in buckets {
        if rank <= *count {
            return Some((*bucket, rank));
        }
        rank -= count;
    }
    None
}

/// The same code for both backends: only the connection type and one SQL spelling differ.
macro_rules! backend {
    ($module:ident, $conn:ty, $payload:literal, $lock:literal, $values:path, $params:path) => {
        pub(crate) mod $module {
            use super::*;
            use sqlx::AssertSqlSafe;

            /// `{head} VALUES-rows {tail}` for `rows` rows of `columns` parameters.
            fn multi_row(sql: (&str, &str), rows: usize, columns: usize) -> String {
                format!("{} {} {}", sql.0, $values(rows, columns), sql.1)
            }

            /// Writes the rows of many tickets (each at most once) with one statement per table and
            /// kind of change.
            async fn write(conn: &mut $conn, rows: &[TicketRows]) -> Result<()> {
                let facts_changed = |change| {
                    rows.iter()
                        .filter(move |r| r.change == change)
                        .map(|r| &r.facts)
                        .collect::<Vec<_>>()
                };
                for chunk in facts_changed(FactsChange::Unindexed).chunks(rows_per_statement(5)) {
                    let sql = multi_row(UPDATE_FACTS_UNINDEXED, chunk.len(), 5);
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for facts in chunk {
                        q = q
                            .bind(&facts.ticket_id)
                            .bind(facts.ack_pending_due)
                            .bind(bool_int(facts.resolve_breached))
                            .bind(facts.due_now)
                            .bind(facts.open_since);
                    }
                    q.execute(&mut *conn).await?;
                }
                for chunk in facts_changed(FactsChange::Whole).chunks(rows_per_statement(15)) {
                    let sql = multi_row(UPSERT_FACTS, chunk.len(), 15);
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for facts in chunk {
                        q = q
                            .bind(&facts.ticket_id)
                            .bind(&facts.node_path)
                            .bind(&facts.level)
                            .bind(&facts.category)
                            .bind(facts.created_at)
                            .bind(facts.first_dispatch_at)
                            .bind(bool_int(facts.ack_on_time))
                            .bind(facts.ack_pending_due)
                            .bind(facts.first_resolved_at)
                            .bind(bool_int(facts.resolved_on_time))
                            .bind(facts.resolve_ms)
                            .bind(bool_int(facts.resolve_breached))
                            .bind(facts.merged_at)
                            .bind(facts.due_now)
                            .bind(facts.open_since);
                    }
                    q.execute(&mut *conn).await?;
                }

                let marks: Vec<(&Facts, &Mark)> = rows
                    .iter()
                    .flat_map(|r| r.marks.iter().map(move |m| (&r.facts, m)))
                    .collect();
                for chunk in marks.chunks(rows_per_statement(9)) {
                    let sql = multi_row(INSERT_MARKS, chunk.len(), 9);
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (facts, m) in chunk {
                        q = q
                            .bind(m.seq)
                            .bind(&facts.ticket_id)
                            .bind(&facts.node_path)
                            .bind(&facts.level)
                            .bind(&facts.category)
                            .bind(m.kind)
                            .bind(m.at)
                            .bind(bool_int(m.satisfied))
                            .bind(bool_int(m.solved));
                    }
                    q.execute(&mut *conn).await?;
                }

                let mut closes: Vec<(&str, i64)> = Vec::new();
                let mut drops: Vec<&str> = Vec::new();
                let mut opens: Vec<(&Facts, i64, Option<i64>)> = Vec::new();
                for r in rows {
                    let id = r.facts.ticket_id.as_str();
                    let (stored, new) = settle(&r.ops);
                    match stored {
                        Some(OverdueOp::Close { ends }) => closes.push((id, ends)),
                        Some(OverdueOp::Drop) => drops.push(id),
                        _ => {}
                    }
                    opens.extend(new.into_iter().map(|(since, ends)| (&r.facts, since, ends)));
                }
                for chunk in closes.chunks(rows_per_statement(2)) {
                    let sql = multi_row(CLOSE_OVERDUE, chunk.len(), 2);
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (id, ends) in chunk {
                        q = q.bind(*id).bind(*ends);
                    }
                    q.execute(&mut *conn).await?;
                }
                for chunk in drops.chunks(MAX_PARAMS) {
                    let sql = format!(
                        "DELETE FROM report_overdue WHERE ends IS NULL AND ticket_id IN ({})",
                        $params(chunk.len())
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    q.execute(&mut *conn).await?;
                }
                for chunk in opens.chunks(rows_per_statement(6)) {
                    let sql = multi_row(INSERT_OVERDUE, chunk.len(), 6);
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (facts, since, ends) in chunk {
                        q = q
                            .bind(&facts.ticket_id)
                            .bind(*since)
                            .bind(*ends)
                            .bind(&facts.node_path)
                            .bind(&facts.level)
                            .bind(&facts.category);
                    }
                    q.execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// Rebuilds one ticket's rows from its history up to seq `upto`.
            async fn rebuild(
                conn: &mut $conn,
                ticket_id: &str,
                node_path: &str,
                upto: i64,
            ) -> Result<()> {
                let rows: Vec<(i64, String)> = sqlx::query_as(concat!(
                    "SELECT seq, ",
                    $payload,
                    " FROM events WHERE ticket_id = $1 AND seq <= $2 ORDER BY seq"
                ))
                .bind(ticket_id)
                .bind(upto)
                .fetch_all(&mut *conn)
                .await?;
                let events = rows
                    .into_iter()
                    .map(|(seq, json)| Ok((seq, serde_json::from_str::<Event>(&json)?)))
                    .collect::<Result<Vec<_>>>()?;
                let Some((facts, marks, ops)) = fold(node_path, &events) else {
                    return Err(crate::StoreError::Database(format!(
                        "ticket {ticket_id}: its history does not start with CREATED"
                    )));
                };
                sqlx::query("DELETE FROM report_overdue WHERE ticket_id = $1")
                    .bind(ticket_id)
                    .execute(&mut *conn)
                    .await?;
                let change = FactsChange::Whole;
                write(
                    conn,
                    &[TicketRows {
                        facts,
                        change,
                        marks,
                        ops,
                    }],
                )
                .await
            }

            /// Brings the report rows up to date with at most `limit` more events of the log,
            /// inside the caller's transaction: one read of the stored facts and one write per
            /// table for the lot, then the cursor moves past them. The number of events taken.
            ///
            /// Projectors take turns on the cursor row (PostgreSQL locks it). Every event below
            /// a visible seq is visible too: seqs are taken under one lock held to commit.
            pub(crate) async fn project(conn: &mut $conn, limit: i64) -> Result<u64> {
                let (cursor,): (i64,) = sqlx::query_as(concat!(
                    "SELECT projected FROM report_state WHERE id = 1",
                    $lock
                ))
                .fetch_one(&mut *conn)
                .await?;
                let rows: Vec<LoggedRow> = sqlx::query_as(concat!(
                    "SELECT seq, ticket_id, node_path, ",
                    $payload,
                    ", commit_at, resolve_due FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
                ))
                .bind(cursor)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?;
                let taken = rows.len() as u64;
                if taken == 0 {
                    return Ok(0);
                }
                let (tickets, last) = group(rows)?;
                apply(conn, &tickets, last).await?;
                sqlx::query("UPDATE report_state SET projected = $1 WHERE id = 1")
                    .bind(last)
                    .execute(&mut *conn)
                    .await?;
                Ok(taken)
            }

            /// Folds each ticket's events (each ticket once) into its stored rows; a ticket with
            /// no rows whose events do not start with CREATED is rebuilt from its history up to
            /// `upto`.
            async fn apply(conn: &mut $conn, tickets: &[Projecting], upto: i64) -> Result<()> {
                let mut stored: std::collections::HashMap<String, FactsRow> =
                    std::collections::HashMap::with_capacity(tickets.len());
                for chunk in tickets.chunks(MAX_PARAMS) {
                    let sql = format!(
                        "SELECT ticket_id, {FACTS_COLUMNS} FROM report_facts \
                         WHERE ticket_id IN ({})",
                        $params(chunk.len())
                    );
                    let mut q = sqlx::query_as::<_, FactsRow>(AssertSqlSafe(sql));
                    for t in chunk {
                        q = q.bind(&t.ticket_id);
                    }
                    for row in q.fetch_all(&mut *conn).await? {
                        stored.insert(row.0.clone(), row);
                    }
                }
                let mut rows = Vec::with_capacity(tickets.len());
                let mut unreported = Vec::new();
                for t in tickets {
                    let before = stored.remove(&t.ticket_id).map(facts_from_row);
                    let mut facts = match &before {
                        Some(facts) => facts.clone(),
                        None => match t
                            .events
                            .first()
                            .and_then(|e| Facts::created(&t.node_path, &e.event))
                        {
                            Some(facts) => facts,
                            // Rows lost, or a ticket from before reporting: fold its history.
                            None => {
                                unreported.push(t);
                                continue;
                            }
                        },
                    };
                    let mut marks = Vec::new();
                    let mut ops = Vec::new();
                    for e in &t.events {
                        facts.apply(e.seq, &e.event, &mut marks);
                        if let Some((at, due)) = e.commit {
                            facts.deadline(at, due, &mut ops);
                        }
                    }
                    let change = facts.change_from(before.as_ref());
                    rows.push(TicketRows {
                        facts,
                        change,
                        marks,
                        ops,
                    });
                }
                write(conn, &rows).await?;
                for t in unreported {
                    rebuild(conn, &t.ticket_id, &t.node_path, upto).await?;
                }
                Ok(())
            }

            /// Builds the rows of every ticket that has none, once per database (the first store
            /// to open after migration 0003 does it). The number of tickets backfilled.
            pub(crate) async fn backfill(conn: &mut $conn) -> Result<u64> {
                use sqlx::Connection as _;
                let mut tx = conn.begin().await?;
                let claimed = sqlx::query(CLAIM_BACKFILL).execute(&mut *tx).await?;
                if claimed.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(0);
                }
                let (upto,): (i64,) =
                    sqlx::query_as("SELECT projected FROM report_state WHERE id = 1")
                        .fetch_one(&mut *tx)
                        .await?;
                let missing: Vec<(String, String)> = sqlx::query_as(MISSING_FACTS)
                    .bind(upto)
                    .fetch_all(&mut *tx)
                    .await?;
                for (id, node_path) in &missing {
                    rebuild(&mut tx, id, node_path, upto).await?;
                }
                tx.commit().await?;
                Ok(missing.len() as u64)
            }

            /// The counts of every group of one report query.
            pub(crate) async fn report(
                conn: &mut $conn,
                q: &ReportQuery,
            ) -> Result<Vec<ReportCounts>> {
                let (lo, hi) = crate::codec::subtree_range(&q.subtree)?;
                let sql = ReportSql::new(q.group);
                let (from, to) = (millis(q.from), millis(q.to));
                let mut rows = Rows::new(q);

                for (window_from, window_to, year_before) in [
                    (from, to, false),
                    (millis(q.year_before_from), millis(q.year_before_to), true),
                ] {
                    let got: Vec<(String, i64)> =
                        sqlx::query_as(AssertSqlSafe(sql.received.clone()))
                            .bind(&lo)
                            .bind(&hi)
                            .bind(window_from)
                            .bind(window_to)
                            .fetch_all(&mut *conn)
                            .await?;
                    for (key, n) in got {
                        let row = rows.row(key);
                        if year_before {
                            row.received_year_before += n;
                        } else {
                            row.received += n;
                        }
                    }
                }

                let got: Vec<(String, i64, i64, i64)> = sqlx::query_as(AssertSqlSafe(sql.resolved))
                    .bind(&lo)
                    .bind(&hi)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&mut *conn)
                    .await?;
                for (key, n, on_time, sum) in got {
                    let key = rows.key(key);
                    *rows.resolve_ms_sum.entry(key.clone()).or_default() += sum;
                    let row = rows.row(key);
                    row.resolved += n;
                    row.resolved_on_time += on_time;
                }

                let got: Vec<(String, i64, i64)> = sqlx::query_as(AssertSqlSafe(sql.histogram))
                    .bind(&lo)
                    .bind(&hi)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&mut *conn)
                    .await?;
                for (key, bucket, n) in got {
                    let key = rows.key(key);
                    *rows
                        .histogram
                        .entry(key)
                        .or_default()
                        .entry(bucket)
                        .or_default() += n;
                }
                let buckets = rows.percentile_buckets();
                if !buckets.is_empty() {
                    let list: Vec<String> = buckets.iter().map(i64::to_string).collect();
                    let durations = sql.durations.replace("{buckets}", &list.join(", "));
                    let got: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(durations))
                        .bind(&lo)
                        .bind(&hi)
                        .bind(from)
                        .bind(to)
                        .fetch_all(&mut *conn)
                        .await?;
                    for (key, ms) in got {
                        let key = rows.key(key);
                        rows.durations.entry(key).or_default().push(ms);
                    }
                }

                let got: Vec<(String, i64, i64)> = sqlx::query_as(AssertSqlSafe(sql.dispatched))
                    .bind(&lo)
                    .bind(&hi)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&mut *conn)
                    .await?;
                for (key, n, on_time) in got {
                    let row = rows.row(key);
                    row.dispatched += n;
                    row.acknowledged_on_time += on_time;
                }

                let got: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(sql.merged))
                    .bind(&lo)
                    .bind(&hi)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&mut *conn)
                    .await?;
                for (key, n) in got {
                    rows.row(key).repeat_requests += n;
                }

                let got: Vec<(String, i64, i64, i64, i64)> =
                    sqlx::query_as(AssertSqlSafe(sql.marks))
                        .bind(&lo)
                        .bind(&hi)
                        .bind(from)
                        .bind(to)
                        .fetch_all(&mut *conn)
                        .await?;
                for (key, escalations, callbacks, satisfied, solved) in got {
                    let row = rows.row(key);
                    row.escalations += escalations;
                    row.callbacks += callbacks;
                    row.callbacks_satisfied += satisfied;
                    row.callbacks_solved += solved;
                }

                let at = millis(q.overdue_at);
                for overdue in [sql.overdue_closed, sql.overdue_open] {
                    let got: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(overdue))
                        .bind(&lo)
                        .bind(&hi)
                        .bind(at)
                        .fetch_all(&mut *conn)
                        .await?;
                    for (key, n) in got {
                        rows.row(key).overdue += n;
                    }
                }
                Ok(rows.finish())
            }
        }
    };
}

backend!(
    sqlite,
    sqlx::SqliteConnection,
    "payload",
    "",
    crate::codec::anonymous_values,
    crate::codec::anonymous_params
);
backend!(
    postgres,
    sqlx::PgConnection,
    "payload::text",
    " FOR UPDATE",
    crate::codec::values,
    crate::codec::params
);
