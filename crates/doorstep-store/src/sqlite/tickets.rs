//! The writer's statements for tickets: registering one, and committing many with one statement per
//! table for the lot.
//!
//! A commit batch ([`commit_all`]) updates every ticket's projection in one version-checked
//! `UPDATE … FROM (VALUES …)`, then writes the units, timers and events of all the tickets that passed
//! the check, a statement per table and kind of change. Reporting rows follow the events behind a
//! cursor (`crate::report`). sqlx runs each SQLite
//! statement on its worker thread, so a statement costs a thread hand-off whatever its size: a
//! scheduler batch of 500 escalations is about a dozen statements, not five thousand.

use std::collections::{HashMap, HashSet};

use doorstep_domain::{Event, TicketId};
use sqlx::AssertSqlSafe;
use sqlx::sqlite::SqliteConnection;

use crate::common::chain::Runs;
use crate::common::codec::{self, EventRow, NewRows, TicketRow, TimerRow, rows_per_statement};
use crate::{Created, Result, StoreError, StoredEvent};

pub(super) struct CommitRows {
    pub(super) id: TicketId,
    pub(super) expected_version: i64,
    pub(super) row: TicketRow,
    pub(super) events: Vec<Event>,
    pub(super) event_rows: Vec<EventRow>,
}

/// An event row to append, with its ticket's key columns.
struct Appending<'a> {
    seq: i64,
    ticket_id: &'a str,
    node_path: &'a str,
    row: &'a EventRow,
    /// On a commit's last event: its instant and the ticket's running resolve deadline after it.
    commit: Option<(i64, Option<i64>)>,
}

impl<'a> Appending<'a> {
    /// The rows of one commit's events, from `first_seq` on.
    fn commit(
        first_seq: i64,
        ticket: &'a TicketRow,
        node_path: &'a str,
        rows: &'a [EventRow],
    ) -> impl Iterator<Item = Appending<'a>> {
        let last = rows.len().saturating_sub(1);
        rows.iter()
            .zip(first_seq..)
            .enumerate()
            .map(move |(i, (row, seq))| Appending {
                seq,
                ticket_id: &ticket.id,
                node_path,
                row,
                commit: (i == last).then_some((ticket.updated_at, ticket.resolve_due_at)),
            })
    }
}

async fn insert_events(conn: &mut SqliteConnection, rows: &[Appending<'_>]) -> Result<()> {
    for chunk in rows.chunks(rows_per_statement(9)) {
        let sql = format!(
            "INSERT INTO events (seq, ticket_id, at, actor, kind, node_path, payload, commit_at, \
             resolve_due) VALUES {}",
            codec::anonymous_values(chunk.len(), 9)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for e in chunk {
            q = q
                .bind(e.seq)
                .bind(e.ticket_id)
                .bind(e.row.at)
                .bind(&e.row.actor)
                .bind(e.row.kind)
                .bind(e.node_path)
                .bind(&e.row.payload)
                .bind(e.commit.map(|c| c.0))
                .bind(e.commit.and_then(|c| c.1));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `(ticket_id, unit)` rows.
async fn insert_units(conn: &mut SqliteConnection, rows: &[(&str, &str)]) -> Result<()> {
    for chunk in rows.chunks(rows_per_statement(2)) {
        let sql = format!(
            "INSERT INTO ticket_units (ticket_id, unit) VALUES {}",
            codec::anonymous_values(chunk.len(), 2)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, unit) in chunk {
            q = q.bind(*id).bind(*unit);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn delete_units(conn: &mut SqliteConnection, ids: &[&str]) -> Result<()> {
    for chunk in ids.chunks(codec::MAX_PARAMS) {
        let sql = format!(
            "DELETE FROM ticket_units WHERE ticket_id IN ({})",
            codec::anonymous_params(chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Arms timers anew, or re-arms them at another instant (which ends any lease on them).
async fn upsert_timers(conn: &mut SqliteConnection, rows: &[(&str, &TimerRow)]) -> Result<()> {
    for chunk in rows.chunks(rows_per_statement(6)) {
        let sql = format!(
            "INSERT INTO timers (ticket_id, clock, unit, threshold, due_at, due_exact) VALUES {} {}",
            codec::anonymous_values(chunk.len(), 6),
            crate::common::sql::ON_TIMER_CONFLICT
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, t) in chunk {
            q = q
                .bind(*id)
                .bind(t.clock)
                .bind(&t.unit)
                .bind(t.threshold)
                .bind(t.due_at)
                .bind(&t.due_exact);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn delete_timers(conn: &mut SqliteConnection, rows: &[(&str, &TimerRow)]) -> Result<()> {
    for chunk in rows.chunks(rows_per_statement(4)) {
        let sql = format!(
            // A plain `IN (VALUES ...)` scans the table; `IN (SELECT * FROM v)` searches the key.
            "WITH v (ticket_id, clock, unit, threshold) AS (VALUES {}) \
             DELETE FROM timers WHERE (ticket_id, clock, unit, threshold) IN (SELECT * FROM v)",
            codec::anonymous_values(chunk.len(), 4)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, t) in chunk {
            q = q.bind(*id).bind(t.clock).bind(&t.unit).bind(t.threshold);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The single writer numbers events: the next seq is one past the highest written.
pub(super) async fn create(conn: &mut SqliteConnection, new: NewRows) -> Result<Created> {
    let row = &new.row;
    let taken = sqlx::query(
        "INSERT INTO intake_keys (source, external_ref, ticket_id) VALUES ($1, $2, $3) \
         ON CONFLICT (source, external_ref) DO NOTHING",
    )
    .bind(row.source)
    .bind(&row.external_ref)
    .bind(&row.id)
    .execute(&mut *conn)
    .await
    .map_err(|e| already(e, &row.id))?;
    if taken.rows_affected() == 0 {
        let (json,): (String,) = sqlx::query_as(
            "SELECT t.ticket FROM intake_keys k JOIN tickets t ON t.id = k.ticket_id \
             WHERE k.source = $1 AND k.external_ref = $2",
        )
        .bind(row.source)
        .bind(&row.external_ref)
        .fetch_one(&mut *conn)
        .await?;
        return Ok(Created::Existing(Box::new(codec::ticket_from_json(&json)?)));
    }
    let (seq,): (i64,) = sqlx::query_as(crate::common::sql::sqlite::INSERT_TICKET)
        .bind(&row.id)
        .bind(row.source)
        .bind(&row.external_ref)
        .bind(&row.node)
        .bind(&new.node_path)
        .bind(row.level)
        .bind(row.status)
        .bind(&row.lead_unit)
        .bind(row.resolve_due_at)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.version)
        .bind(row.policy_version)
        .bind(&row.json)
        .bind(row.breached)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| already(e, &row.id))?;
    let events: Vec<Appending<'_>> =
        Appending::commit(seq, row, &new.node_path, &new.event_rows).collect();
    insert_events(conn, &events).await?;
    let units: Vec<(&str, &str)> = row.units.iter().map(|u| (&*row.id, &**u)).collect();
    insert_units(conn, &units).await?;
    let timers: Vec<(&str, &TimerRow)> = row.timers.iter().map(|t| (&*row.id, t)).collect();
    upsert_timers(conn, &timers).await?;
    Ok(Created::New(codec::stored(&new.id, seq, &new.events)))
}

/// Registers several tickets at once, each standing alone, one answer per ticket in order: the
/// intake's concurrent requests, gathered by the writer's intake queue. A statement per table for the
/// lot, so a ticket costs a share of a dozen statements (each a hand-off to sqlx-sqlite's worker
/// thread) rather than five. When that fails (a database error, which the single path would have
/// failed one ticket with), every ticket is registered again on its own, each in a savepoint, so the
/// answers are exactly those of one request at a time.
pub(super) async fn create_all(
    conn: &mut SqliteConnection,
    batch: Vec<NewRows>,
) -> Result<Vec<Result<Created>>> {
    if batch.len() == 1 {
        // The writer's savepoint around this request rolls a failure back.
        let new = batch.into_iter().next().expect("one");
        return Ok(vec![Ok(create(conn, new).await?)]);
    }
    exec(conn, "SAVEPOINT intake").await?;
    match create_many(conn, &batch).await {
        Ok(answers) => {
            exec(conn, "RELEASE intake").await?;
            Ok(answers.into_iter().map(Ok).collect())
        }
        Err(_) => {
            exec(conn, "ROLLBACK TO intake").await?;
            exec(conn, "RELEASE intake").await?;
            let mut answers = Vec::with_capacity(batch.len());
            for new in batch {
                exec(conn, "SAVEPOINT intake_one").await?;
                let answer = create(conn, new).await;
                if answer.is_err() {
                    exec(conn, "ROLLBACK TO intake_one").await?;
                }
                exec(conn, "RELEASE intake_one").await?;
                answers.push(answer);
            }
            Ok(answers)
        }
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<()> {
    sqlx::query(sql).execute(&mut *conn).await?;
    Ok(())
}

/// [`create_all`]'s statement per table. A request whose intake key an earlier request of the batch
/// takes answers with that ticket, as it would have found it one request later.
async fn create_many(conn: &mut SqliteConnection, batch: &[NewRows]) -> Result<Vec<Created>> {
    // The first request of each intake key: the one that may register a ticket.
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::with_capacity(batch.len());
    let mut firsts: Vec<usize> = Vec::with_capacity(batch.len());
    for (i, new) in batch.iter().enumerate() {
        first_of
            .entry((new.row.source, new.row.external_ref.as_str()))
            .or_insert_with(|| {
                firsts.push(i);
                i
            });
    }

    // Take the free keys; the ids returned are the tickets to register.
    let mut taken: HashSet<String> = HashSet::with_capacity(firsts.len());
    for chunk in firsts.chunks(rows_per_statement(3)) {
        let sql = format!(
            "INSERT INTO intake_keys (source, external_ref, ticket_id) VALUES {} \
             ON CONFLICT (source, external_ref) DO NOTHING RETURNING ticket_id",
            codec::anonymous_values(chunk.len(), 3)
        );
        let mut q = sqlx::query_as::<_, (String,)>(AssertSqlSafe(sql));
        for &i in chunk {
            let row = &batch[i].row;
            q = q.bind(row.source).bind(&row.external_ref).bind(&row.id);
        }
        taken.extend(q.fetch_all(&mut *conn).await?.into_iter().map(|(id,)| id));
    }

    // Keys registered before this batch: their tickets.
    let registered: Vec<usize> = firsts
        .iter()
        .copied()
        .filter(|&i| !taken.contains(&batch[i].row.id))
        .collect();
    let mut existing: HashMap<(String, String), String> = HashMap::new();
    for chunk in registered.chunks(rows_per_statement(2)) {
        let sql = format!(
            "WITH v (source, external_ref) AS (VALUES {}) \
             SELECT k.source, k.external_ref, t.ticket FROM v \
             JOIN intake_keys k ON k.source = v.source AND k.external_ref = v.external_ref \
             JOIN tickets t ON t.id = k.ticket_id",
            codec::anonymous_values(chunk.len(), 2)
        );
        let mut q = sqlx::query_as::<_, (String, String, String)>(AssertSqlSafe(sql));
        for &i in chunk {
            q = q.bind(batch[i].row.source).bind(&batch[i].row.external_ref);
        }
        for (source, external_ref, json) in q.fetch_all(&mut *conn).await? {
            existing.insert((source, external_ref), json);
        }
    }

    // The single writer numbers events: one past the highest written, in the batch's order.
    let (mut next,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) + 1 FROM events")
        .fetch_one(&mut *conn)
        .await?;
    let mut seqs: HashMap<usize, i64> = HashMap::with_capacity(taken.len());
    for &i in &firsts {
        if taken.contains(&batch[i].row.id) {
            seqs.insert(i, next);
            next += batch[i].event_rows.len() as i64;
        }
    }
    let new: Vec<usize> = firsts
        .iter()
        .copied()
        .filter(|i| seqs.contains_key(i))
        .collect();

    for chunk in new.chunks(rows_per_statement(16)) {
        let sql = format!(
            "{} {}",
            crate::common::sql::sqlite::INSERT_TICKETS,
            codec::anonymous_values(chunk.len(), 16)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for i in chunk {
            let (new, row) = (&batch[*i], &batch[*i].row);
            q = q
                .bind(&row.id)
                .bind(seqs[i])
                .bind(row.source)
                .bind(&row.external_ref)
                .bind(&row.node)
                .bind(&new.node_path)
                .bind(row.level)
                .bind(row.status)
                .bind(&row.lead_unit)
                .bind(row.resolve_due_at)
                .bind(row.created_at)
                .bind(row.updated_at)
                .bind(row.version)
                .bind(row.policy_version)
                .bind(&row.json)
                .bind(row.breached);
        }
        q.execute(&mut *conn).await?;
    }
    let events: Vec<Appending<'_>> = new
        .iter()
        .flat_map(|i| {
            let new = &batch[*i];
            Appending::commit(seqs[i], &new.row, &new.node_path, &new.event_rows)
        })
        .collect();
    insert_events(conn, &events).await?;
    let units: Vec<(&str, &str)> = new
        .iter()
        .flat_map(|i| {
            let row = &batch[*i].row;
            row.units.iter().map(move |u| (&*row.id, &**u))
        })
        .collect();
    insert_units(conn, &units).await?;
    let timers: Vec<(&str, &TimerRow)> = new
        .iter()
        .flat_map(|i| {
            let row = &batch[*i].row;
            row.timers.iter().map(move |t| (&*row.id, t))
        })
        .collect();
    upsert_timers(conn, &timers).await?;

    batch
        .iter()
        .enumerate()
        .map(|(i, request)| {
            let first = first_of[&(request.row.source, request.row.external_ref.as_str())];
            let found =
                |json: &str| Ok(Created::Existing(Box::new(codec::ticket_from_json(json)?)));
            match seqs.get(&first) {
                Some(&seq) if first == i => Ok(Created::New(codec::stored(
                    &request.id,
                    seq,
                    &request.events,
                ))),
                // A later request of a key this batch registered.
                Some(_) => found(&batch[first].row.json),
                None => match existing.get(&(
                    request.row.source.to_owned(),
                    request.row.external_ref.clone(),
                )) {
                    Some(json) => found(json),
                    None => Err(StoreError::Database(format!(
                        "intake key of ticket {} is taken, but by no ticket",
                        request.id
                    ))),
                },
            }
        })
        .collect()
}

fn already(e: sqlx::Error, id: &str) -> StoreError {
    if crate::common::error::is_unique_violation(&e) {
        StoreError::AlreadyExists(format!("ticket {id}"))
    } else {
        e.into()
    }
}

/// Why a version-checked update found no row: the ticket moved on, or it does not exist.
async fn conflict(conn: &mut SqliteConnection, id: &TicketId, expected: i64) -> Result<StoreError> {
    let actual: Option<(i64,)> = sqlx::query_as("SELECT version FROM tickets WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match actual {
        Some((actual,)) => StoreError::Conflict {
            id: id.clone(),
            expected,
            actual,
        },
        None => StoreError::NotFound(format!("ticket {id}")),
    })
}

/// One commit (see [`commit_all`]).
pub(super) async fn commit(conn: &mut SqliteConnection, c: CommitRows) -> Result<Vec<StoredEvent>> {
    let mut answers = commit_all(conn, vec![(c.id.clone(), Ok(c))]).await?;
    answers
        .pop()
        .unwrap_or_else(|| Err(StoreError::Database("a commit was not answered".to_owned())))
}

/// Each commit standing alone, inside the writer's transaction, one answer per commit in order. A
/// conflict (or a ticket not found) is found by the version-checked update, before anything of that
/// commit is written, so it fails alone without a savepoint of its own; any other error fails the
/// whole batch (the writer rolls the request back).
///
/// The commits are cut, in order, into runs that name each ticket at most once, and each run goes
/// through [`commit_distinct`], a statement per table: a ticket's second commit sees its first, and
/// events keep the commits' order (a scheduler catching up after downtime fires in due order). A
/// ticket's commit after one of it that was not written is not tried ([`crate::common::chain`]).
pub(super) async fn commit_all(
    conn: &mut SqliteConnection,
    commits: Vec<(TicketId, Result<CommitRows>)>,
) -> Result<Vec<Result<Vec<StoredEvent>>>> {
    let mut answers = Vec::with_capacity(commits.len());
    let mut runs = Runs::new();
    for (id, c) in commits {
        if let Some(run) = runs.cut_before(&id) {
            commit_run(conn, run, &mut answers, &mut runs).await?;
        }
        runs.push(id, c);
    }
    let last = runs.finish();
    commit_run(conn, last, &mut answers, &mut runs).await?;
    Ok(answers)
}

/// Commits a run of distinct tickets, appends its answers and notes the tickets it did not write.
async fn commit_run(
    conn: &mut SqliteConnection,
    run: Vec<(TicketId, Result<CommitRows>)>,
    answers: &mut Vec<Result<Vec<StoredEvent>>>,
    runs: &mut Runs<CommitRows>,
) -> Result<()> {
    let (ids, run): (Vec<TicketId>, Vec<_>) = run.into_iter().unzip();
    let done = commit_distinct(conn, run).await?;
    runs.noted(&ids, &done);
    answers.extend(done);
    Ok(())
}

/// What the version-checked update returned for a ticket.
struct Updated {
    node_path: String,
    /// JSON arrays, as stored before this commit.
    units: String,
    timers: String,
}

/// Commits of distinct tickets, a statement per table for the lot.
async fn commit_distinct(
    conn: &mut SqliteConnection,
    commits: Vec<Result<CommitRows>>,
) -> Result<Vec<Result<Vec<StoredEvent>>>> {
    let mut answers: Vec<Option<Result<Vec<StoredEvent>>>> = Vec::with_capacity(commits.len());
    let mut writing: Vec<(usize, CommitRows)> = Vec::new();
    for (index, c) in commits.into_iter().enumerate() {
        match c {
            Err(e) => answers.push(Some(Err(e))),
            // Nothing to write: the commit only confirms the version.
            Ok(c) if c.events.is_empty() => answers.push(Some(
                match conflict(conn, &c.id, c.expected_version).await? {
                    StoreError::Conflict { actual, .. } if actual == c.expected_version => {
                        Ok(Vec::new())
                    }
                    other => Err(other),
                },
            )),
            Ok(c) => {
                answers.push(None);
                writing.push((index, c));
            }
        }
    }
    if writing.is_empty() {
        return Ok(answers.into_iter().flatten().collect());
    }

    let (mut updated, next_seq) = update_projections(conn, &writing).await?;
    let mut committed: Vec<(usize, &CommitRows, Updated)> = Vec::with_capacity(writing.len());
    for (index, c) in &writing {
        match updated.remove(c.row.id.as_str()) {
            Some(u) => committed.push((*index, c, u)),
            None => answers[*index] = Some(Err(conflict(conn, &c.id, c.expected_version).await?)),
        }
    }

    // Seqs in commit order.
    let mut seq = next_seq;
    let mut first_seqs = Vec::with_capacity(committed.len());
    for (_, c, _) in &committed {
        first_seqs.push(seq);
        seq += c.event_rows.len() as i64;
    }

    let mut units_replaced: Vec<&str> = Vec::new();
    let mut units_new: Vec<(&str, &str)> = Vec::new();
    let mut timers_removed: Vec<(&str, &TimerRow)> = Vec::new();
    let mut timers_written: Vec<(&str, &TimerRow)> = Vec::new();
    let mut stored_timers: Vec<Vec<TimerRow>> = Vec::with_capacity(committed.len());
    for (_, c, u) in &committed {
        let id = c.row.id.as_str();
        let units: Vec<String> = serde_json::from_str(&u.units)
            .map_err(|e| StoreError::Database(format!("stored units of {id}: {e}")))?;
        if units != c.row.units {
            units_replaced.push(id);
            units_new.extend(c.row.units.iter().map(|unit| (id, unit.as_str())));
        }
        let existing: Vec<(String, String, String, i64, String)> = serde_json::from_str(&u.timers)
            .map_err(|e| StoreError::Database(format!("stored timers of {id}: {e}")))?;
        stored_timers.push(
            existing
                .into_iter()
                .map(|(clock, unit, threshold, due_at, exact)| {
                    codec::timer_row(&clock, unit, &threshold, due_at, exact)
                })
                .collect::<Result<Vec<_>>>()?,
        );
    }
    for ((_, c, _), existing) in committed.iter().zip(&stored_timers) {
        let id = c.row.id.as_str();
        let (removed, written) = codec::timer_changes(existing, &c.row.timers);
        timers_removed.extend(removed.into_iter().map(|t| (id, t)));
        timers_written.extend(written.into_iter().map(|t| (id, t)));
    }
    delete_units(conn, &units_replaced).await?;
    insert_units(conn, &units_new).await?;
    delete_timers(conn, &timers_removed).await?;
    upsert_timers(conn, &timers_written).await?;

    let mut events = Vec::new();
    for ((_, c, u), first_seq) in committed.iter().zip(&first_seqs) {
        events.extend(Appending::commit(
            *first_seq,
            &c.row,
            &u.node_path,
            &c.event_rows,
        ));
    }
    insert_events(conn, &events).await?;

    for ((index, c, _), first_seq) in committed.iter().zip(first_seqs) {
        answers[*index] = Some(Ok(codec::stored(&c.id, first_seq, &c.events)));
    }
    answers
        .into_iter()
        .map(|a| a.ok_or_else(|| StoreError::Database("a commit was not answered".to_owned())))
        .collect()
}

/// The version-checked update of every commit's projection row: the tickets it found at their
/// expected version (by id), and the seq the first event appended next gets.
async fn update_projections(
    conn: &mut SqliteConnection,
    writing: &[(usize, CommitRows)],
) -> Result<(HashMap<String, Updated>, i64)> {
    let mut updated = HashMap::with_capacity(writing.len());
    let mut next_seq = None;
    for chunk in writing.chunks(rows_per_statement(10)) {
        let sql = format!(
            "{} {} {}",
            crate::common::sql::sqlite::UPDATE_TICKETS.0,
            codec::anonymous_values(chunk.len(), 10),
            crate::common::sql::sqlite::UPDATE_TICKETS.1
        );
        let mut q = sqlx::query_as::<_, (String, String, i64, String, String)>(AssertSqlSafe(sql));
        for (_, c) in chunk {
            let row = &c.row;
            q = q
                .bind(&row.id)
                .bind(c.expected_version)
                .bind(row.level)
                .bind(row.status)
                .bind(&row.lead_unit)
                .bind(row.resolve_due_at)
                .bind(row.updated_at)
                .bind(row.version)
                .bind(&row.json)
                .bind(row.breached);
        }
        for (id, node_path, seq, units, timers) in q.fetch_all(&mut *conn).await? {
            // No event is appended between the chunks' updates: the first answer holds for all.
            next_seq.get_or_insert(seq);
            updated.insert(
                id,
                Updated {
                    node_path,
                    units,
                    timers,
                },
            );
        }
    }
    Ok((updated, next_seq.unwrap_or_default()))
}
