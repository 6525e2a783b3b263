//! The PostgreSQL backend: production, several stateless replicas and schedulers on one database.
//!
//! Each command is one transaction on a pooled connection. Event seqs (and a ticket's registration
//! order, the seq of its CREATED event) come from the single `event_seq` counter row, taken with
//! `UPDATE … RETURNING` as the last step before the commit: transactions that append events hold
//! that row's lock until they commit, so they commit in seq order and a reader of `events_after`
//! never sees seq n+1 before seq n. The price is that event appends commit one after another (one
//! WAL flush each); everything before the counter step runs concurrently. Within one process the
//! appends also queue on an async mutex, so that the database sees at most one waiter per replica
//! instead of dozens of backends contending for one row lock.
//!
//! Portability: no sequences, triggers or LISTEN/NOTIFY. Two things a PostgreSQL-compatible
//! distributed engine must offer: `FOR UPDATE SKIP LOCKED` (timer claims) and, for sqlx's migrator
//! only, advisory locks (`pg_advisory_lock`, held while migrations run at start-up).
//!
//! Layout: `pool` connects and migrates; `tickets` registers tickets and holds the statements that
//! append; `batch` commits (one commit is a batch of one). Every other store method is written once
//! for both backends (`common::shared`).

mod batch;
mod pool;
mod tickets;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use doorstep_domain::{Ticket, TicketId};
use sqlx::postgres::{PgConnection, PgPool};
use tokio::sync::mpsc;

use crate::common::codec::{self, NewRows};
use crate::common::intake;
use crate::common::shared::{Backend, BoxFuture, store_impl};
use crate::options::{ConnectOptions, redact};
use crate::{Commit, Created, DueTimer, NewTicket, Result, StoreError, StoredEvent};
pub(crate) use pool::migrate;
use tickets::Registrar;

/// The PostgreSQL store: a connection pool.
pub(crate) struct PgStore {
    database: String,
    pool: PgPool,
    /// Held from taking seqs to the commit: this process queues its own event appends here, so at
    /// most one of its transactions waits on the counter row's lock in the database.
    appends: Arc<tokio::sync::Mutex<()>>,
    /// Tickets to register, gathered into one transaction per batch.
    intake: mpsc::Sender<intake::Pending>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    pub(crate) async fn open(url: &str, options: &ConnectOptions) -> Result<PgStore> {
        let database = redact(url);
        let pool = pool::pool(url, options, options.max_connections.max(2)).await?;
        pool::migrate_pool(&pool, &database).await?;
        crate::report::postgres::backfill(&mut *pool.acquire().await?).await?;
        let appends = Arc::new(tokio::sync::Mutex::new(()));
        let registrar = Registrar {
            pool: pool.clone(),
            appends: Arc::clone(&appends),
        };
        let intake = intake::spawn(options.write_batch.max(1), move |batch| {
            let registrar = registrar.clone();
            async move { Ok(registrar.create_all(batch).await) }
        });
        Ok(PgStore {
            database,
            pool,
            appends,
            intake,
        })
    }

    /// Runs `work` in a transaction of its own; answers after the commit. A failed `work` rolls back
    /// at once.
    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let mut tx = self.pool.begin().await?;
        match work(&mut tx).await {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

impl Backend for PgStore {
    async fn create_ticket(&self, new: NewTicket<'_>) -> Result<Created> {
        intake::register(&self.intake, NewRows::new(&new)?).await
    }

    /// The batch path with one commit (see the `batch` module).
    async fn commit(&self, c: Commit<'_>) -> Result<Vec<StoredEvent>> {
        let mut answers = self.commit_run(vec![batch::Prepared::new(c)]).await?;
        answers
            .pop()
            .unwrap_or_else(|| Err(StoreError::Database("a commit was not answered".into())))
    }

    async fn commit_all(&self, commits: &[Commit<'_>]) -> Result<Vec<Result<Vec<StoredEvent>>>> {
        let prepared = commits
            .iter()
            .map(|c| (c.ticket.id.clone(), batch::Prepared::new(*c)))
            .collect();
        Ok(self.commit_runs(prepared).await)
    }

    async fn get_tickets(&self, ids: &[TicketId]) -> Result<Vec<Ticket>> {
        let ids: Vec<&str> = ids.iter().map(TicketId::as_str).collect();
        let rows: Vec<(String,)> = sqlx::query_as(crate::common::sql::postgres::TICKETS_BY_IDS)
            .bind(&ids)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|(json,)| codec::ticket_from_json(json))
            .collect()
    }

    async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<DueTimer>> {
        let rows: Vec<(String, String, String, String, String, i64)> =
            sqlx::query_as(crate::common::sql::postgres::CLAIM)
                .bind(codec::millis(now))
                .bind(codec::page_limit(
                    limit,
                    codec::DEFAULT_CLAIM,
                    codec::MAX_CLAIM,
                ))
                .bind(owner)
                .bind(codec::millis(lease_until))
                .fetch_all(&self.pool)
                .await?;
        codec::due_timers(rows)
    }

    /// Nothing to checkpoint: the pool's connections end cleanly instead of being cut.
    async fn close(&self) -> Result<()> {
        if self.pool.is_closed() {
            return Ok(());
        }
        self.pool.close().await;
        tracing::info!(database = %self.database, "postgresql connections closed");
        Ok(())
    }
}

store_impl!(
    PgStore,
    conn = PgConnection,
    reads = pool,
    dialect = postgres
);
crate::deliveries::deliveries_impl!(
    PgStore,
    reads = pool,
    claim = crate::deliveries::CLAIM_POSTGRES,
    write = write
);
