//! Registering tickets on PostgreSQL: the intake queue's batches in one transaction each (one WAL
//! flush and one turn at the event counter for many tickets), a ticket alone when a batch fails; and
//! taking seqs from the counter row, which commits share.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use doorstep_domain::Ticket;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Postgres, Transaction};
use tokio::sync::Mutex;

use super::batch::{EventColumns, arm_timers};
use crate::common::codec::{self, EventRow, NewRows, TicketRow, TimerRow};
use crate::common::shared::RETRIES;
use crate::{Created, Result, StoreError};

/// Takes `n` seqs from the counter row; holds its lock until the transaction ends. The first of them.
pub(super) async fn take_seqs(tx: &mut PgConnection, n: usize) -> Result<i64> {
    let n = n as i64;
    let (last,): (i64,) =
        sqlx::query_as("UPDATE event_seq SET last = last + $1 WHERE id = 1 RETURNING last")
            .bind(n)
            .fetch_one(&mut *tx)
            .await?;
    Ok(last - n + 1)
}

/// One commit's events; its last carries the commit's instant and the ticket's running resolve
/// deadline after it, for the report projector.
async fn insert_events(
    tx: &mut PgConnection,
    ticket: &TicketRow,
    first_seq: i64,
    node_path: &str,
    rows: &[EventRow],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (seq, ticket_id, at, actor, kind, node_path, payload, commit_at, \
         resolve_due) \
         SELECT $1 + e.ord - 1, $2, e.at, e.actor, e.kind, $3, e.payload::jsonb, \
         CASE WHEN e.ord = cardinality($4::bigint[]) THEN $8::bigint END, \
         CASE WHEN e.ord = cardinality($4::bigint[]) THEN $9::bigint END \
         FROM UNNEST($4::bigint[], $5::text[], $6::text[], $7::text[]) \
         WITH ORDINALITY AS e(at, actor, kind, payload, ord)",
    )
    .bind(first_seq)
    .bind(&ticket.id)
    .bind(node_path)
    .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.actor.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.kind.to_owned()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.payload.clone()).collect::<Vec<_>>())
    .bind(ticket.updated_at)
    .bind(ticket.resolve_due_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn insert_units(tx: &mut PgConnection, ticket_id: &str, units: &[String]) -> Result<()> {
    if units.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO ticket_units (ticket_id, unit) SELECT $1, u FROM UNNEST($2::text[]) AS u",
    )
    .bind(ticket_id)
    .bind(units.to_vec())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn upsert_timers(
    tx: &mut PgConnection,
    ticket_id: &str,
    timers: &[&codec::TimerRow],
) -> Result<()> {
    for t in timers {
        sqlx::query(crate::common::sql::UPSERT_TIMER)
            .bind(ticket_id)
            .bind(t.clock)
            .bind(&t.unit)
            .bind(t.threshold)
            .bind(t.due_at)
            .bind(&t.due_exact)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

fn already(e: sqlx::Error, id: &str) -> StoreError {
    if crate::common::error::is_unique_violation(&e) {
        StoreError::AlreadyExists(format!("ticket {id}"))
    } else {
        e.into()
    }
}

/// Ends a transaction: commits when the work produced a value, otherwise (nothing to keep, or an
/// error) rolls back at once, so no lock outlives the call.
async fn settle<T>(
    tx: Transaction<'static, Postgres>,
    outcome: Result<Option<T>>,
) -> Result<Option<T>> {
    match outcome {
        Ok(Some(value)) => {
            tx.commit().await?;
            Ok(Some(value))
        }
        Ok(None) => {
            tx.rollback().await?;
            Ok(None)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

pub(super) type AppendGuard<'a> = Option<tokio::sync::MutexGuard<'a, ()>>;

/// What registering tickets needs, owned, so that the intake queue's task holds its own.
#[derive(Debug, Clone)]
pub(super) struct Registrar {
    pub(super) pool: PgPool,
    /// See `PgStore::appends`.
    pub(super) appends: Arc<Mutex<()>>,
}

impl Registrar {
    /// The intake queue's batch, one answer per ticket in order: one transaction for the lot (one
    /// WAL flush, one turn at the event counter). When that fails, each ticket is registered on its
    /// own, so the answers are exactly those of one request at a time.
    pub(super) async fn create_all(&self, batch: Vec<NewRows>) -> Vec<Result<Created>> {
        if batch.len() > 1
            && let Ok(answers) = self.create_many(&batch).await
        {
            return answers.into_iter().map(Ok).collect();
        }
        let mut answers = Vec::with_capacity(batch.len());
        for new in &batch {
            answers.push(self.create_one(new).await);
        }
        answers
    }

    /// Registers the ticket, or answers with the one its intake key already names.
    async fn create_one(&self, new: &NewRows) -> Result<Created> {
        for _ in 0..RETRIES {
            if let Some(created) = self.try_create(new).await? {
                return Ok(created);
            }
            if let Some(existing) = self
                .ticket_by_ref(new.row.source, &new.row.external_ref)
                .await?
            {
                return Ok(Created::Existing(Box::new(existing)));
            }
        }
        Err(StoreError::Database(format!(
            "ticket {}: its intake key kept changing",
            new.id
        )))
    }

    async fn ticket_by_ref(&self, source: &str, external_ref: &str) -> Result<Option<Ticket>> {
        let row: Option<(String,)> = sqlx::query_as(crate::common::sql::postgres::TICKET_BY_REF)
            .bind(source)
            .bind(external_ref)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(json,)| codec::ticket_from_json(&json))
            .transpose()
    }

    /// Registers the ticket, or `None` when its intake key is already taken (by a committed ticket:
    /// the insert waits for a concurrent one to finish).
    async fn try_create(&self, new: &NewRows) -> Result<Option<Created>> {
        let mut tx = self.pool.begin().await?;
        let mut appending = None;
        let outcome = self.create_in(&mut tx, &mut appending, new).await;
        let created = settle(tx, outcome).await;
        drop(appending);
        Ok(created?.map(|seq| Created::New(codec::stored(&new.id, seq, &new.events))))
    }

    async fn create_in<'s>(
        &'s self,
        tx: &mut PgConnection,
        appending: &mut AppendGuard<'s>,
        new: &NewRows,
    ) -> Result<Option<i64>> {
        let row = &new.row;
        let taken = sqlx::query(
            "INSERT INTO intake_keys (source, external_ref, ticket_id) VALUES ($1, $2, $3) \
             ON CONFLICT (source, external_ref) DO NOTHING",
        )
        .bind(row.source)
        .bind(&row.external_ref)
        .bind(&row.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| already(e, &row.id))?;
        if taken.rows_affected() == 0 {
            return Ok(None);
        }
        *appending = Some(self.appends.lock().await);
        let seq = take_seqs(tx, new.event_rows.len()).await?;
        sqlx::query(crate::common::sql::postgres::INSERT_TICKET)
            .bind(&row.id)
            .bind(seq)
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
            .execute(&mut *tx)
            .await
            .map_err(|e| already(e, &row.id))?;
        insert_events(tx, row, seq, &new.node_path, &new.event_rows).await?;
        insert_units(tx, &row.id, &row.units).await?;
        upsert_timers(tx, &row.id, &row.timers.iter().collect::<Vec<_>>()).await?;
        Ok(Some(seq))
    }

    /// [`create_all`](Self::create_all)'s one transaction.
    async fn create_many(&self, batch: &[NewRows]) -> Result<Vec<Created>> {
        let mut tx = self.pool.begin().await?;
        let mut appending = None;
        let outcome = self.create_many_in(&mut tx, &mut appending, batch).await;
        // Committed before the counter's turn is handed on: seqs become visible in order.
        let answers = match outcome {
            Ok(answers) => tx.commit().await.map(|()| answers).map_err(Into::into),
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        };
        drop(appending);
        answers
    }

    /// A statement per table for the lot. A request whose intake key an earlier request of the batch
    /// takes answers with that ticket, as it would have found it one request later.
    async fn create_many_in<'s>(
        &'s self,
        tx: &mut PgConnection,
        appending: &mut AppendGuard<'s>,
        batch: &[NewRows],
    ) -> Result<Vec<Created>> {
        let key = |i: usize| (batch[i].row.source, batch[i].row.external_ref.as_str());
        // The first request of each intake key: the one that may register a ticket.
        let mut first_of: HashMap<(&str, &str), usize> = HashMap::with_capacity(batch.len());
        let mut firsts: Vec<usize> = Vec::with_capacity(batch.len());
        for i in 0..batch.len() {
            first_of.entry(key(i)).or_insert_with(|| {
                firsts.push(i);
                i
            });
        }
        // Keys taken in one order by every batch, so two batches never wait on each other's keys
        // in a cycle.
        let mut by_key = firsts.clone();
        by_key.sort_by_key(|&i| key(i));
        let taken: Vec<(String,)> = sqlx::query_as(
            "INSERT INTO intake_keys (source, external_ref, ticket_id) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) \
             ON CONFLICT (source, external_ref) DO NOTHING RETURNING ticket_id",
        )
        .bind(by_key.iter().map(|&i| key(i).0).collect::<Vec<_>>())
        .bind(by_key.iter().map(|&i| key(i).1).collect::<Vec<_>>())
        .bind(
            by_key
                .iter()
                .map(|&i| batch[i].row.id.as_str())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await?;
        let taken: HashSet<String> = taken.into_iter().map(|(id,)| id).collect();

        // Keys registered before this batch: their tickets.
        let registered: Vec<usize> = firsts
            .iter()
            .copied()
            .filter(|&i| !taken.contains(&batch[i].row.id))
            .collect();
        let mut existing: HashMap<(String, String), String> = HashMap::new();
        if !registered.is_empty() {
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT k.source, k.external_ref, t.ticket::text \
                 FROM UNNEST($1::text[], $2::text[]) AS v(source, external_ref) \
                 JOIN intake_keys k ON k.source = v.source AND k.external_ref = v.external_ref \
                 JOIN tickets t ON t.id = k.ticket_id",
            )
            .bind(registered.iter().map(|&i| key(i).0).collect::<Vec<_>>())
            .bind(registered.iter().map(|&i| key(i).1).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
            existing.extend(rows.into_iter().map(|(s, r, json)| ((s, r), json)));
            if existing.len() < registered.len() {
                // A key held by a transaction that did not commit: one at a time sorts it out.
                return Err(StoreError::Database(
                    "an intake key was released while the batch waited for it".into(),
                ));
            }
        }

        let new: Vec<usize> = firsts
            .iter()
            .copied()
            .filter(|&i| taken.contains(&batch[i].row.id))
            .collect();
        let mut seqs: HashMap<usize, i64> = HashMap::with_capacity(new.len());
        if !new.is_empty() {
            *appending = Some(self.appends.lock().await);
            let total: usize = new.iter().map(|&i| batch[i].event_rows.len()).sum();
            let mut seq = take_seqs(tx, total).await?;
            for &i in &new {
                seqs.insert(i, seq);
                seq += batch[i].event_rows.len() as i64;
            }
            insert_tickets(tx, batch, &new, &seqs).await?;
            let mut events = EventColumns::with_capacity(total);
            for &i in &new {
                let (new, row) = (&batch[i], &batch[i].row);
                let last = new.event_rows.len().saturating_sub(1);
                for (n, (seq, e)) in (seqs[&i]..).zip(&new.event_rows).enumerate() {
                    events.push(seq, &row.id, &new.node_path, e, (n == last).then_some(row));
                }
            }
            events.insert(tx).await?;
            let units: Vec<(&str, &str)> = new
                .iter()
                .flat_map(|&i| {
                    let row = &batch[i].row;
                    row.units.iter().map(move |u| (row.id.as_str(), u.as_str()))
                })
                .collect();
            sqlx::query(
                "INSERT INTO ticket_units (ticket_id, unit) \
                 SELECT * FROM UNNEST($1::text[], $2::text[])",
            )
            .bind(units.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .bind(units.iter().map(|(_, unit)| *unit).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
            let timers: Vec<(&str, &TimerRow)> = new
                .iter()
                .flat_map(|&i| {
                    let row = &batch[i].row;
                    row.timers.iter().map(move |t| (row.id.as_str(), t))
                })
                .collect();
            arm_timers(tx, &timers).await?;
        }

        batch
            .iter()
            .enumerate()
            .map(|(i, request)| {
                let first = first_of[&key(i)];
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
                    None => {
                        let (source, external_ref) = key(i);
                        found(&existing[&(source.to_owned(), external_ref.to_owned())])
                    }
                }
            })
            .collect()
    }
}

async fn insert_tickets(
    tx: &mut PgConnection,
    batch: &[NewRows],
    new: &[usize],
    seqs: &HashMap<usize, i64>,
) -> Result<()> {
    let rows = || new.iter().map(|&i| &batch[i].row);
    sqlx::query(
        "INSERT INTO tickets (id, reg, source, external_ref, node, node_path, level, status, \
         lead_unit, resolve_due_at, created_at, updated_at, version, policy_version, ticket, \
         breached) \
         SELECT id, reg, source, external_ref, node, node_path, level, status, lead_unit, \
         resolve_due_at, created_at, updated_at, version, policy_version, ticket::jsonb, breached \
         FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[], \
             $13::bigint[], $14::bigint[], $15::text[], $16::int4[]) \
         AS v(id, reg, source, external_ref, node, node_path, level, status, lead_unit, \
             resolve_due_at, created_at, updated_at, version, policy_version, ticket, breached)",
    )
    .bind(rows().map(|r| r.id.as_str()).collect::<Vec<_>>())
    .bind(new.iter().map(|i| seqs[i]).collect::<Vec<_>>())
    .bind(rows().map(|r| r.source).collect::<Vec<_>>())
    .bind(rows().map(|r| r.external_ref.as_str()).collect::<Vec<_>>())
    .bind(rows().map(|r| r.node.as_str()).collect::<Vec<_>>())
    .bind(
        new.iter()
            .map(|&i| batch[i].node_path.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows().map(|r| r.level).collect::<Vec<_>>())
    .bind(rows().map(|r| r.status).collect::<Vec<_>>())
    .bind(rows().map(|r| r.lead_unit.as_deref()).collect::<Vec<_>>())
    .bind(rows().map(|r| r.resolve_due_at).collect::<Vec<_>>())
    .bind(rows().map(|r| r.created_at).collect::<Vec<_>>())
    .bind(rows().map(|r| r.updated_at).collect::<Vec<_>>())
    .bind(rows().map(|r| r.version).collect::<Vec<_>>())
    .bind(rows().map(|r| r.policy_version).collect::<Vec<_>>())
    .bind(rows().map(|r| r.json.as_str()).collect::<Vec<_>>())
    .bind(rows().map(|r| r.breached).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
