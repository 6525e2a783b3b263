//! Registering a ticket on PostgreSQL, and the statements a commit shares with a batch: taking seqs
//! from the counter row, appending events, units and timers.

use sqlx::postgres::PgConnection;
use sqlx::{Postgres, Transaction};

use super::PgStore;
use crate::common::codec::{self, EventRow, TicketRow};
use crate::{Created, NewTicket, Result, StoreError};

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

impl PgStore {
    /// Registers the ticket, or `None` when its intake key is already taken (by a committed ticket:
    /// the insert waits for a concurrent one to finish).
    pub(super) async fn try_create(
        &self,
        new: &NewTicket<'_>,
        row: &TicketRow,
        events: &[EventRow],
    ) -> Result<Option<Created>> {
        let mut tx = self.pool.begin().await?;
        let mut appending = None;
        let outcome = self
            .create_in(&mut tx, &mut appending, new, row, events)
            .await;
        let created = settle(tx, outcome).await;
        drop(appending);
        Ok(created?.map(|seq| Created::New(codec::stored(&new.ticket.id, seq, new.events))))
    }

    async fn create_in<'s>(
        &'s self,
        tx: &mut PgConnection,
        appending: &mut AppendGuard<'s>,
        new: &NewTicket<'_>,
        row: &TicketRow,
        events: &[EventRow],
    ) -> Result<Option<i64>> {
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
        let seq = take_seqs(tx, events.len()).await?;
        sqlx::query(crate::common::sql::postgres::INSERT_TICKET)
            .bind(&row.id)
            .bind(seq)
            .bind(row.source)
            .bind(&row.external_ref)
            .bind(&row.node)
            .bind(new.node_path)
            .bind(row.level)
            .bind(row.status)
            .bind(&row.lead_unit)
            .bind(row.resolve_due_at)
            .bind(row.created_at)
            .bind(row.updated_at)
            .bind(row.version)
            .bind(row.policy_version)
            .bind(&row.json)
            .execute(&mut *tx)
            .await
            .map_err(|e| already(e, &row.id))?;
        insert_events(tx, row, seq, new.node_path, events).await?;
        insert_units(tx, &row.id, &row.units).await?;
        upsert_timers(tx, &row.id, &row.timers.iter().collect::<Vec<_>>()).await?;
        Ok(Some(seq))
    }
}
