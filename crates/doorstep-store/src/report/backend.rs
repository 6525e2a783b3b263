//! The projector and the report's queries for each backend, written once: only the connection type
//! and a few SQL spellings differ.

use doorstep_domain::Event;

use super::counts::Rows;
use super::facts::{
    Facts, FactsChange, LoggedRow, Projecting, TicketRows, bool_int, fold, group, settle,
};
use super::facts::{Mark, OverdueOp};
use super::sql::{
    CLAIM_BACKFILL, CLOSE_BREACHED, CLOSE_OVERDUE, FACTS_COLUMNS, INSERT_BREACHED, INSERT_MARKS,
    INSERT_OVERDUE, MISSING_FACTS, ReportSql, UPDATE_FACTS_UNINDEXED, UPSERT_FACTS,
};
use super::{ReportCounts, ReportQuery};
use crate::Result;
use crate::common::codec::{MAX_PARAMS, from_millis, millis, rows_per_statement};

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
                for chunk in facts_changed(FactsChange::Unindexed).chunks(rows_per_statement(7)) {
                    let sql = multi_row(UPDATE_FACTS_UNINDEXED, chunk.len(), 7);
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for facts in chunk {
                        q = q
                            .bind(&facts.ticket_id)
                            .bind(facts.ack_pending_due)
                            .bind(bool_int(facts.resolve_breached))
                            .bind(facts.due_now)
                            .bind(facts.open_since)
                            .bind(bool_int(facts.breached))
                            .bind(facts.red_since);
                    }
                    q.execute(&mut *conn).await?;
                }
                for chunk in facts_changed(FactsChange::Whole).chunks(rows_per_statement(17)) {
                    let sql = multi_row(UPSERT_FACTS, chunk.len(), 17);
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
                            .bind(facts.open_since)
                            .bind(bool_int(facts.breached))
                            .bind(facts.red_since);
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

                // The overdue intervals, then the red-card intervals: the same operations on a
                // table each.
                for (table, close, insert) in [
                    ("report_overdue", CLOSE_OVERDUE, INSERT_OVERDUE),
                    ("report_breached", CLOSE_BREACHED, INSERT_BREACHED),
                ] {
                    let red = table == "report_breached";
                    intervals(conn, rows, red, table, close, insert).await?;
                }
                Ok(())
            }

            /// Writes the interval operations of `rows` (their red-card ones if `red`) to
            /// `table`.
            async fn intervals(
                conn: &mut $conn,
                rows: &[TicketRows],
                red: bool,
                table: &str,
                close: (&str, &str),
                insert: (&str, &str),
            ) -> Result<()> {
                let mut closes: Vec<(&str, i64)> = Vec::new();
                let mut drops: Vec<&str> = Vec::new();
                let mut opens: Vec<(&Facts, i64, Option<i64>)> = Vec::new();
                for r in rows {
                    let id = r.facts.ticket_id.as_str();
                    let (stored, new) = settle(if red { &r.red } else { &r.ops });
                    match stored {
                        Some(OverdueOp::Close { ends }) => closes.push((id, ends)),
                        Some(OverdueOp::Drop) => drops.push(id),
                        _ => {}
                    }
                    opens.extend(new.into_iter().map(|(since, ends)| (&r.facts, since, ends)));
                }
                for chunk in closes.chunks(rows_per_statement(2)) {
                    let sql = multi_row(close, chunk.len(), 2);
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (id, ends) in chunk {
                        q = q.bind(*id).bind(*ends);
                    }
                    q.execute(&mut *conn).await?;
                }
                for chunk in drops.chunks(MAX_PARAMS) {
                    let sql = format!(
                        "DELETE FROM {table} WHERE ends IS NULL AND ticket_id IN ({})",
                        $params(chunk.len())
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    q.execute(&mut *conn).await?;
                }
                for chunk in opens.chunks(rows_per_statement(6)) {
                    let sql = multi_row(insert, chunk.len(), 6);
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
                let Some(rows) = fold(node_path, &events) else {
                    return Err(crate::StoreError::Database(format!(
                        "ticket {ticket_id}: its history does not start with CREATED"
                    )));
                };
                for table in ["report_overdue", "report_breached"] {
                    sqlx::query(AssertSqlSafe(format!(
                        "DELETE FROM {table} WHERE ticket_id = $1"
                    )))
                    .bind(ticket_id)
                    .execute(&mut *conn)
                    .await?;
                }
                write(conn, &[rows]).await
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

            /// A `report_facts` row: `ticket_id` then [`FACTS_COLUMNS`].
            fn facts_from_row(
                r: &<<$conn as sqlx::Connection>::Database as sqlx::Database>::Row,
            ) -> Result<Facts> {
                use sqlx::Row as _;
                Ok(Facts {
                    ticket_id: r.try_get(0)?,
                    node_path: r.try_get(1)?,
                    level: r.try_get(2)?,
                    category: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                    first_dispatch_at: r.try_get(5)?,
                    ack_on_time: r.try_get::<i32, _>(6)? != 0,
                    ack_pending_due: r.try_get(7)?,
                    first_resolved_at: r.try_get(8)?,
                    resolved_on_time: r.try_get::<i32, _>(9)? != 0,
                    resolve_ms: r.try_get(10)?,
                    resolve_breached: r.try_get::<i32, _>(11)? != 0,
                    merged_at: r.try_get(12)?,
                    due_now: r.try_get(13)?,
                    open_since: r.try_get(14)?,
                    breached: r.try_get::<i32, _>(15)? != 0,
                    red_since: r.try_get(16)?,
                })
            }

            /// Folds each ticket's events (each ticket once) into its stored rows; a ticket with
            /// no rows whose events do not start with CREATED is rebuilt from its history up to
            /// `upto`.
            async fn apply(conn: &mut $conn, tickets: &[Projecting], upto: i64) -> Result<()> {
                let mut stored: std::collections::HashMap<String, Facts> =
                    std::collections::HashMap::with_capacity(tickets.len());
                for chunk in tickets.chunks(MAX_PARAMS) {
                    let sql = format!(
                        "SELECT ticket_id, {FACTS_COLUMNS} FROM report_facts \
                         WHERE ticket_id IN ({})",
                        $params(chunk.len())
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for t in chunk {
                        q = q.bind(&t.ticket_id);
                    }
                    for row in q.fetch_all(&mut *conn).await? {
                        let facts = facts_from_row(&row)?;
                        stored.insert(facts.ticket_id.clone(), facts);
                    }
                }
                let mut rows = Vec::with_capacity(tickets.len());
                let mut unreported = Vec::new();
                for t in tickets {
                    let before = stored.remove(&t.ticket_id);
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
                    let mut sla = facts.sla()?;
                    let mut marks = Vec::new();
                    let mut ops = Vec::new();
                    let mut red = Vec::new();
                    for e in &t.events {
                        sla.apply(e.seq, &e.event, &mut marks);
                        sla.red_card(&e.event, &mut red);
                        if let Some((at, due)) = e.commit {
                            let due = due.map(from_millis).transpose()?;
                            sla.deadline(from_millis(at)?, due, &mut ops);
                        }
                    }
                    facts = facts.with(&sla);
                    let change = facts.change_from(before.as_ref());
                    rows.push(TicketRows {
                        facts,
                        change,
                        marks: marks.iter().map(Mark::row).collect(),
                        ops: ops.iter().map(OverdueOp::row).collect(),
                        red: red.iter().map(OverdueOp::row).collect(),
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
                let (lo, hi) = crate::common::codec::subtree_range(&q.subtree)?;
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
                for breached in [sql.breached_closed, sql.breached_open] {
                    let got: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(breached))
                        .bind(&lo)
                        .bind(&hi)
                        .bind(at)
                        .fetch_all(&mut *conn)
                        .await?;
                    for (key, n) in got {
                        rows.row(key).breached += n;
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
    crate::common::codec::anonymous_values,
    crate::common::codec::anonymous_params
);
backend!(
    postgres,
    sqlx::PgConnection,
    "payload::text",
    " FOR UPDATE",
    crate::common::codec::values,
    crate::common::codec::params
);
