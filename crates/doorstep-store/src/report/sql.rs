//! The reporting rows' statements and the SLA report's queries.

use super::ReportGroup;

pub(super) const FACTS_COLUMNS: &str = "node_path, level, category, created_at, first_dispatch_at, \
    ack_on_time, ack_pending_due, first_resolved_at, resolved_on_time, resolve_ms, \
    resolve_breached, merged_at, due_now, open_since, breached, red_since";

/// `INSERT INTO report_facts ... VALUES {rows} ON CONFLICT ...`, 17 columns a row.
pub(super) const UPSERT_FACTS: (&str, &str) = (
    "INSERT INTO report_facts (ticket_id, node_path, level, category, \
    created_at, first_dispatch_at, ack_on_time, ack_pending_due, first_resolved_at, \
    resolved_on_time, resolve_ms, resolve_breached, merged_at, due_now, open_since, breached, \
    red_since) VALUES",
    "ON CONFLICT (ticket_id) DO UPDATE SET node_path = excluded.node_path, level = excluded.level, \
    category = excluded.category, created_at = excluded.created_at, \
    first_dispatch_at = excluded.first_dispatch_at, ack_on_time = excluded.ack_on_time, \
    ack_pending_due = excluded.ack_pending_due, first_resolved_at = excluded.first_resolved_at, \
    resolved_on_time = excluded.resolved_on_time, resolve_ms = excluded.resolve_ms, \
    resolve_breached = excluded.resolve_breached, merged_at = excluded.merged_at, \
    due_now = excluded.due_now, open_since = excluded.open_since, breached = excluded.breached, \
    red_since = excluded.red_since",
);

/// The columns no index covers, 7 a row (see [`FactsChange::Unindexed`]).
pub(super) const UPDATE_FACTS_UNINDEXED: (&str, &str) = (
    "WITH v (ticket_id, ack_pending_due, resolve_breached, due_now, open_since, breached, \
    red_since) AS (VALUES",
    ") UPDATE report_facts SET ack_pending_due = v.ack_pending_due, \
    resolve_breached = v.resolve_breached, due_now = v.due_now, open_since = v.open_since, \
    breached = v.breached, red_since = v.red_since \
    FROM v WHERE report_facts.ticket_id = v.ticket_id",
);

/// 9 columns a row.
pub(super) const INSERT_MARKS: (&str, &str) = (
    "INSERT INTO report_marks (seq, ticket_id, node_path, level, category, kind, at, satisfied, \
    solved) VALUES",
    "ON CONFLICT (seq) DO NOTHING",
);

/// Ends the open interval of each ticket in `v (ticket_id, ends)`, 2 columns a row.
pub(super) const CLOSE_OVERDUE: (&str, &str) = (
    "WITH v (ticket_id, ends) AS (VALUES",
    ") UPDATE report_overdue SET ends = v.ends FROM v \
    WHERE report_overdue.ticket_id = v.ticket_id AND report_overdue.ends IS NULL",
);

/// 6 columns a row.
pub(super) const INSERT_OVERDUE: (&str, &str) = (
    "INSERT INTO report_overdue (ticket_id, since, ends, node_path, level, category) VALUES",
    "ON CONFLICT (ticket_id, since) DO NOTHING",
);

/// [`CLOSE_OVERDUE`] for the red-card intervals.
pub(super) const CLOSE_BREACHED: (&str, &str) = (
    "WITH v (ticket_id, ends) AS (VALUES",
    ") UPDATE report_breached SET ends = v.ends FROM v \
    WHERE report_breached.ticket_id = v.ticket_id AND report_breached.ends IS NULL",
);

/// [`INSERT_OVERDUE`] for the red-card intervals.
pub(super) const INSERT_BREACHED: (&str, &str) = (
    "INSERT INTO report_breached (ticket_id, since, ends, node_path, level, category) VALUES",
    "ON CONFLICT (ticket_id, since) DO NOTHING",
);

/// Takes the backfill over: 1 row when this connection is the one to backfill.
pub(super) const CLAIM_BACKFILL: &str =
    "UPDATE report_state SET backfilled = 1 WHERE id = 1 AND backfilled = 0";
/// Tickets registered up to the projector's cursor (`$1`) without rows.
pub(super) const MISSING_FACTS: &str = "SELECT t.id, t.node_path FROM tickets t WHERE t.reg <= $1 \
    AND NOT EXISTS (SELECT 1 FROM report_facts f WHERE f.ticket_id = t.id) ORDER BY t.reg";

/// The SQL key expression of a grouping. Child nodes are grouped by node path in SQL and rolled up
/// here ([`child_key`]): cheaper than a substring expression on every row.
pub(super) fn key_sql(group: ReportGroup) -> &'static str {
    match group {
        ReportGroup::Whole => "''",
        ReportGroup::Level => "level",
        ReportGroup::Category => "category",
        ReportGroup::ChildNode => "node_path",
    }
}

/// The report's SQL texts for one grouping; `{key}`, `{group}` and `{partition}` filled in.
pub(super) struct ReportSql {
    pub(super) received: String,
    pub(super) resolved: String,
    pub(super) histogram: String,
    /// `{buckets}` still to fill in.
    pub(super) durations: String,
    pub(super) dispatched: String,
    pub(super) merged: String,
    pub(super) marks: String,
    pub(super) overdue_closed: String,
    pub(super) overdue_open: String,
    pub(super) breached_closed: String,
    pub(super) breached_open: String,
}

pub(super) const IN_SUBTREE: &str = "node_path >= $1 AND node_path < $2";
/// The histogram step of the percentile search: an hour.
pub(super) const BUCKET_MS: i64 = 3_600_000;

impl ReportSql {
    pub(super) fn new(group: ReportGroup) -> ReportSql {
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
            breached_closed: format!(
                "SELECT {key}, COUNT(*) FROM report_breached WHERE ends > $3 AND since <= $3 \
                 AND {IN_SUBTREE}{group_by}"
            ),
            breached_open: format!(
                "SELECT {key}, COUNT(*) FROM report_breached WHERE ends IS NULL AND since <= $3 \
                 AND {IN_SUBTREE}{group_by}"
            ),
        }
    }
}
