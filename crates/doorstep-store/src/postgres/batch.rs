//! Committing a batch on PostgreSQL ([`Store::commit_all`](crate::Store::commit_all)): one
//! transaction per run of distinct tickets, a statement per table for the lot (arrays through
//! `UNNEST`), and the one lock order every writer keeps: first the tickets (a run locks all of its
//! tickets up front, in id order), then the event counter. A command locks its one ticket before the
//! counter, and racing schedulers lock overlapping tickets in the same order, so no two writers can
//! wait on each other in a cycle. (A batch that took the counter at its first ticket and went on to
//! lock more deadlocked against commands; see BENCHMARKS.md.)

use std::collections::HashMap;

use doorstep_domain::TicketId;
use sqlx::postgres::PgConnection;

use super::PgStore;
use super::tickets::{AppendGuard, take_seqs};
use crate::common::chain::Runs;
use crate::common::codec::{self, EventRow, TicketRow, TimerRow};
use crate::{Commit, Result, StoreError, StoredEvent};

/// A commit with its rows built.
pub(super) struct Prepared<'a> {
    commit: Commit<'a>,
    row: TicketRow,
    events: Vec<EventRow>,
}

impl<'a> Prepared<'a> {
    pub(super) fn new(commit: Commit<'a>) -> Result<Prepared<'a>> {
        codec::check_commit(&commit)?;
        Ok(Prepared {
            commit,
            row: TicketRow::new(commit.ticket)?,
            events: codec::event_rows(commit.events)?,
        })
    }
}

type Answer = Result<Vec<StoredEvent>>;

impl PgStore {
    /// Each commit standing alone, one answer per commit in order. The commits are cut, in order,
    /// into runs that name each ticket at most once; a ticket's second commit sees its first. A
    /// database error fails the commits of its run. A ticket's commit after one of it that was not
    /// written is not tried ([`crate::common::chain`]).
    pub(super) async fn commit_runs(
        &self,
        commits: Vec<(TicketId, Result<Prepared<'_>>)>,
    ) -> Vec<Answer> {
        let mut answers = Vec::with_capacity(commits.len());
        let mut runs = Runs::new();
        for (id, c) in commits {
            if let Some(run) = runs.cut_before(&id) {
                self.commit_run_noting(run, &mut answers, &mut runs).await;
            }
            runs.push(id, c);
        }
        let last = runs.finish();
        self.commit_run_noting(last, &mut answers, &mut runs).await;
        answers
    }

    /// Commits a run, appends its answers, and notes the tickets it did not write.
    async fn commit_run_noting<'c>(
        &self,
        run: Vec<(TicketId, Result<Prepared<'c>>)>,
        answers: &mut Vec<Answer>,
        runs: &mut Runs<Prepared<'c>>,
    ) {
        let (ids, run): (Vec<TicketId>, Vec<_>) = run.into_iter().unzip();
        let done = self.commit_run_or_fail(run).await;
        runs.noted(&ids, &done);
        answers.extend(done);
    }

    async fn commit_run_or_fail(&self, run: Vec<Result<Prepared<'_>>>) -> Vec<Answer> {
        let size = run.len();
        match self.commit_run(run).await {
            Ok(answers) => answers,
            // Every commit of the run fails as the run did (an unreachable database stays
            // `Unavailable`, so its callers know to retry).
            Err(e) => (0..size).map(|_| Err(e.clone())).collect(),
        }
    }

    /// One run in one transaction: one answer per commit, in order. A conflict or a missing ticket
    /// fails its commit alone; a database error fails the run (nothing of it is written).
    pub(super) async fn commit_run(&self, run: Vec<Result<Prepared<'_>>>) -> Result<Vec<Answer>> {
        let mut answers: Vec<Option<Answer>> = Vec::with_capacity(run.len());
        let mut ok = Vec::new();
        for (index, c) in run.into_iter().enumerate() {
            match c {
                Ok(p) => {
                    answers.push(None);
                    ok.push((index, p));
                }
                Err(e) => answers.push(Some(Err(e))),
            }
        }
        if !ok.is_empty() {
            for (index, answer) in self.commit_run_tx(&ok).await? {
                answers[index] = Some(answer);
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| Err(StoreError::Database("a commit was not answered".into())))
            })
            .collect())
    }

    async fn commit_run_tx(&self, ok: &[(usize, Prepared<'_>)]) -> Result<Vec<(usize, Answer)>> {
        let mut tx = self.pool.begin().await?;
        let mut appending = None;
        let outcome = self.commit_run_in(&mut tx, &mut appending, ok).await;
        let finished = match &outcome {
            Ok((_, true)) => tx.commit().await,
            _ => tx.rollback().await,
        };
        drop(appending);
        let (answers, _) = outcome?;
        finished?;
        Ok(answers)
    }

    /// The answers, and whether anything was written.
    async fn commit_run_in<'s>(
        &'s self,
        tx: &mut PgConnection,
        appending: &mut AppendGuard<'s>,
        ok: &[(usize, Prepared<'_>)],
    ) -> Result<(Vec<(usize, Answer)>, bool)> {
        let ids: Vec<&str> = ok.iter().map(|(_, p)| p.row.id.as_str()).collect();
        let locked: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT id, version, node_path FROM tickets WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let locked: HashMap<String, (i64, String)> = locked
            .into_iter()
            .map(|(id, version, path)| (id, (version, path)))
            .collect();

        let mut answers = Vec::with_capacity(ok.len());
        let mut writing: Vec<(usize, &Prepared<'_>, &str)> = Vec::new();
        for (index, p) in ok {
            let expected = p.commit.expected_version;
            match locked.get(&p.row.id) {
                None => answers.push((
                    *index,
                    Err(StoreError::NotFound(format!("ticket {}", p.row.id))),
                )),
                Some((actual, _)) if *actual != expected => answers.push((
                    *index,
                    Err(StoreError::Conflict {
                        id: p.commit.ticket.id.clone(),
                        expected,
                        actual: *actual,
                    }),
                )),
                Some(_) if p.events.is_empty() => answers.push((*index, Ok(Vec::new()))),
                Some((_, path)) => writing.push((*index, p, path)),
            }
        }
        if writing.is_empty() {
            return Ok((answers, false));
        }
        let ids: Vec<&str> = writing.iter().map(|(_, p, _)| p.row.id.as_str()).collect();

        // The projections.
        sqlx::query(
            "UPDATE tickets t SET level = v.level, status = v.status, lead_unit = v.lead_unit, \
             resolve_due_at = v.resolve_due_at, updated_at = v.updated_at, version = v.version, \
             ticket = v.ticket::jsonb, breached = v.breached \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], \
                 $6::bigint[], $7::bigint[], $8::text[], $9::int4[]) \
             AS v(id, level, status, lead_unit, resolve_due_at, updated_at, version, ticket, \
                 breached) \
             WHERE t.id = v.id",
        )
        .bind(&ids)
        .bind(
            writing
                .iter()
                .map(|(_, p, _)| p.row.level)
                .collect::<Vec<_>>(),
        )
        .bind(
            writing
                .iter()
                .map(|(_, p, _)| p.row.status)
                .collect::<Vec<_>>(),
        )
        .bind(
            writing
                .iter()
                .map(|(_, p, _)| p.row.lead_unit.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            writing
                .iter()
                .map(|(_, p, _)| p.row.resolve_due_at)
                .collect::<Vec<_>>(),
        )
        .bind(
            writing
                .iter()
                .map(|(_, p, _)| p.row.updated_at)
                .collect::<Vec<_>>(),
        )
        .bind(
            writing
                .iter()
                .map(|(_, p, _)| p.row.version)
                .collect::<Vec<_>>(),
        )
        .bind(
            writing
                .iter()
                .map(|(_, p, _)| p.row.json.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            writing
                .iter()
                .map(|(_, p, _)| p.row.breached)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;

        // The unit rows, replaced where they changed.
        let stored: Vec<(String, String)> = sqlx::query_as(
            "SELECT ticket_id, unit FROM ticket_units WHERE ticket_id = ANY($1) \
             ORDER BY ticket_id, unit",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut units: HashMap<String, Vec<String>> = HashMap::new();
        for (id, unit) in stored {
            units.entry(id).or_default().push(unit);
        }
        let mut replaced: Vec<&str> = Vec::new();
        let (mut unit_ids, mut unit_codes): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
        for (_, p, _) in &writing {
            let before = units.get(&p.row.id).map_or(&[][..], Vec::as_slice);
            if before != p.row.units.as_slice() {
                replaced.push(&p.row.id);
                for unit in &p.row.units {
                    unit_ids.push(&p.row.id);
                    unit_codes.push(unit);
                }
            }
        }
        if !replaced.is_empty() {
            sqlx::query("DELETE FROM ticket_units WHERE ticket_id = ANY($1)")
                .bind(&replaced)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO ticket_units (ticket_id, unit) \
                 SELECT * FROM UNNEST($1::text[], $2::text[])",
            )
            .bind(&unit_ids)
            .bind(&unit_codes)
            .execute(&mut *tx)
            .await?;
        }

        // The timers: removed, and armed or re-armed.
        let stored: Vec<(String, String, String, String, i64, String)> = sqlx::query_as(
            "SELECT ticket_id, clock, unit, threshold, due_at, due_exact FROM timers \
             WHERE ticket_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut timers: HashMap<String, Vec<TimerRow>> = HashMap::new();
        for (id, clock, unit, threshold, due_at, exact) in stored {
            let row = codec::timer_row(&clock, unit, &threshold, due_at, exact)?;
            timers.entry(id).or_default().push(row);
        }
        let mut removed: Vec<(&str, &TimerRow)> = Vec::new();
        let mut written: Vec<(&str, &TimerRow)> = Vec::new();
        for (_, p, _) in &writing {
            let existing = timers.get(&p.row.id).map_or(&[][..], Vec::as_slice);
            let (gone, armed) = codec::timer_changes(existing, &p.row.timers);
            removed.extend(gone.into_iter().map(|t| (p.row.id.as_str(), t)));
            written.extend(armed.into_iter().map(|t| (p.row.id.as_str(), t)));
        }
        if !removed.is_empty() {
            sqlx::query(
                "DELETE FROM timers t \
                 USING UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) \
                 AS r(ticket_id, clock, unit, threshold) \
                 WHERE t.ticket_id = r.ticket_id AND t.clock = r.clock AND t.unit = r.unit \
                 AND t.threshold = r.threshold",
            )
            .bind(removed.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .bind(removed.iter().map(|(_, t)| t.clock).collect::<Vec<_>>())
            .bind(
                removed
                    .iter()
                    .map(|(_, t)| t.unit.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(removed.iter().map(|(_, t)| t.threshold).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        arm_timers(tx, &written).await?;

        // The events, numbered in commit order under the counter; each commit's last carries its
        // instant and the ticket's running resolve deadline for the report projector.
        *appending = Some(self.appends.lock().await);
        let total: usize = writing.iter().map(|(_, p, _)| p.events.len()).sum();
        let mut seq = take_seqs(tx, total).await?;
        let mut firsts = Vec::with_capacity(writing.len());
        let mut events = EventColumns::with_capacity(total);
        for (_, p, path) in &writing {
            firsts.push(seq);
            for (i, e) in p.events.iter().enumerate() {
                let last = i + 1 == p.events.len();
                events.push(seq, &p.row.id, path, e, last.then_some(&p.row));
                seq += 1;
            }
        }
        events.insert(tx).await?;

        for ((index, p, _), first) in writing.iter().zip(firsts) {
            answers.push((
                *index,
                Ok(codec::stored(&p.commit.ticket.id, first, p.commit.events)),
            ));
        }
        Ok((answers, true))
    }
}

/// Arms timers anew, or re-arms them at another instant (which ends any lease on them).
pub(super) async fn arm_timers(tx: &mut PgConnection, written: &[(&str, &TimerRow)]) -> Result<()> {
    if written.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO timers (ticket_id, clock, unit, threshold, due_at, due_exact) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
             $5::bigint[], $6::text[]) {}",
        crate::common::sql::ON_TIMER_CONFLICT
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(written.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(written.iter().map(|(_, t)| t.clock).collect::<Vec<_>>())
        .bind(
            written
                .iter()
                .map(|(_, t)| t.unit.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(written.iter().map(|(_, t)| t.threshold).collect::<Vec<_>>())
        .bind(written.iter().map(|(_, t)| t.due_at).collect::<Vec<_>>())
        .bind(
            written
                .iter()
                .map(|(_, t)| t.due_exact.as_str())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The appended events, a column each, for `UNNEST`.
pub(super) struct EventColumns<'a> {
    seq: Vec<i64>,
    ticket_id: Vec<&'a str>,
    at: Vec<i64>,
    actor: Vec<&'a str>,
    kind: Vec<&'a str>,
    node_path: Vec<&'a str>,
    payload: Vec<&'a str>,
    commit_at: Vec<Option<i64>>,
    resolve_due: Vec<Option<i64>>,
}

impl<'a> EventColumns<'a> {
    pub(super) fn with_capacity(n: usize) -> Self {
        EventColumns {
            seq: Vec::with_capacity(n),
            ticket_id: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            actor: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            node_path: Vec::with_capacity(n),
            payload: Vec::with_capacity(n),
            commit_at: Vec::with_capacity(n),
            resolve_due: Vec::with_capacity(n),
        }
    }

    /// One event; a commit's last carries its instant and the ticket's running resolve deadline
    /// after it (`last_of`: the ticket as the commit leaves it), for the report projector.
    pub(super) fn push(
        &mut self,
        seq: i64,
        ticket_id: &'a str,
        node_path: &'a str,
        event: &'a EventRow,
        last_of: Option<&TicketRow>,
    ) {
        self.seq.push(seq);
        self.ticket_id.push(ticket_id);
        self.at.push(event.at);
        self.actor.push(&event.actor);
        self.kind.push(event.kind);
        self.node_path.push(node_path);
        self.payload.push(&event.payload);
        self.commit_at.push(last_of.map(|t| t.updated_at));
        self.resolve_due
            .push(last_of.and_then(|t| t.resolve_due_at));
    }

    pub(super) async fn insert(&self, tx: &mut PgConnection) -> Result<()> {
        sqlx::query(
            "INSERT INTO events (seq, ticket_id, at, actor, kind, node_path, payload, commit_at, \
             resolve_due) \
             SELECT s, t, a, ac, k, n, p::jsonb, c, d FROM UNNEST($1::bigint[], $2::text[], \
                 $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], \
                 $9::bigint[]) \
             AS e(s, t, a, ac, k, n, p, c, d)",
        )
        .bind(&self.seq)
        .bind(&self.ticket_id)
        .bind(&self.at)
        .bind(&self.actor)
        .bind(&self.kind)
        .bind(&self.node_path)
        .bind(&self.payload)
        .bind(&self.commit_at)
        .bind(&self.resolve_due)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}
