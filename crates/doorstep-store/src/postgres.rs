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

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use doorstep_domain::calendar::{Calendar, Notice, SpecialDay};
use doorstep_domain::{Channel, District, Ticket, TicketId};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection as _, Postgres, Transaction};

use crate::codec::{self, EventRow, TicketRow, TimerRow};
use crate::connect::{ConnectOptions, redact};
use crate::district::{DistrictRows, StoredDistrict};
use crate::migrations::{Backend, MigrationReport, TABLE};
use crate::{
    Commit, Created, DueTimer, ImportCounts, NewTicket, PolicyVersion, Result, Store, StoreError,
    StoredEvent, TicketPage, TicketQuery,
};

/// The PostgreSQL store: a connection pool.
pub(crate) struct PgStore {
    database: String,
    pool: PgPool,
    /// Held from taking seqs to the commit: this process queues its own event appends here, so at
    /// most one of its transactions waits on the counter row's lock in the database.
    appends: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

fn db_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// libpq accepts an empty host (`postgres://user@/db?host=/run/postgresql`, a Unix socket); the URL
/// parser under sqlx does not. Any host will do there, since `host=` names the socket.
fn with_host(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = scheme_end + 3;
    let authority_end = url[rest..].find(['/', '?']).map_or(url.len(), |i| rest + i);
    let host_start = url[rest..authority_end]
        .rfind('@')
        .map_or(rest, |i| rest + i + 1);
    if host_start == authority_end {
        format!("{}localhost{}", &url[..host_start], &url[host_start..])
    } else {
        url.to_owned()
    }
}

async fn pool(url: &str, options: &ConnectOptions, size: u32) -> Result<PgPool> {
    let database = redact(url);
    let connect = PgConnectOptions::from_str(&with_host(url))
        .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL {database}: {e}")))?;
    let cannot = |why: String| StoreError::Config(format!("cannot connect to {database}: {why}"));
    // One direct connection first: a pool retries until its timeout and then only says that it
    // timed out, while this says why (refused, unknown host, authentication, no such database).
    let first = tokio::time::timeout(
        options.connect_timeout,
        PgConnection::connect_with(&connect),
    )
    .await
    .map_err(|_| cannot(format!("no answer within {:?}", options.connect_timeout)))?
    .map_err(|e| cannot(db_message(&e)))?;
    let _ = first.close().await;
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(options.connect_timeout)
        .connect_with(connect)
        .await
        .map_err(|e| cannot(db_message(&e)))
}

async fn applied_versions(conn: &mut PgConnection) -> Result<BTreeSet<i64>> {
    let exists: Option<(i32,)> = sqlx::query_as(
        "SELECT 1 FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(TABLE)
    .fetch_optional(&mut *conn)
    .await?;
    if exists.is_none() {
        return Ok(BTreeSet::new());
    }
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations")
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(|(v,)| v).collect())
}

async fn migrate_pool(pool: &PgPool, database: &str) -> Result<MigrationReport> {
    let mut conn = pool.acquire().await?;
    let before = applied_versions(&mut conn).await?;
    Backend::Postgres.check_not_newer(&before)?;
    Backend::Postgres
        .migrator()
        .run(&mut *conn)
        .await
        .map_err(|e| StoreError::Database(format!("migrating {database}: {e}")))?;
    let after = applied_versions(&mut conn).await?;
    let describe = |v: &i64| (*v, Backend::Postgres.describe(*v).to_owned());
    Ok(MigrationReport {
        database: database.to_owned(),
        applied_now: after.difference(&before).map(describe).collect(),
        already_applied: before.iter().map(describe).collect(),
    })
}

pub(crate) async fn migrate(url: &str, options: &ConnectOptions) -> Result<MigrationReport> {
    let pool = pool(url, options, 1).await?;
    let report = migrate_pool(&pool, &redact(url)).await;
    pool.close().await;
    report
}

impl PgStore {
    pub(crate) async fn open(url: &str, options: &ConnectOptions) -> Result<PgStore> {
        let database = redact(url);
        let pool = pool(url, options, options.max_connections.max(2)).await?;
        migrate_pool(&pool, &database).await?;
        crate::report::postgres::backfill(&mut *pool.acquire().await?).await?;
        Ok(PgStore {
            database,
            pool,
            appends: tokio::sync::Mutex::new(()),
        })
    }
}

mod batch;

/// Takes `n` seqs from the counter row; holds its lock until the transaction ends. The first of them.
async fn take_seqs(tx: &mut PgConnection, n: usize) -> Result<i64> {
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
        sqlx::query(crate::sql::UPSERT_TIMER)
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
    if crate::error::is_unique_violation(&e) {
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

type AppendGuard<'a> = Option<tokio::sync::MutexGuard<'a, ()>>;

impl PgStore {
    /// Registers the ticket, or `None` when its intake key is already taken (by a committed ticket:
    /// the insert waits for a concurrent one to finish).
    async fn try_create(
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
        sqlx::query(crate::sql::INSERT_TICKET_PG)
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

/// How often a write that lost a race on a unique key (a policy version) is retried.
const RETRIES: usize = 10;

#[async_trait::async_trait]
impl Store for PgStore {
    async fn create_ticket(&self, new: NewTicket<'_>) -> Result<Created> {
        codec::check_new(&new)?;
        let row = TicketRow::new(new.ticket)?;
        let events = codec::event_rows(new.events)?;
        for _ in 0..RETRIES {
            if let Some(created) = self.try_create(&new, &row, &events).await? {
                return Ok(created);
            }
            if let Some(existing) = self
                .ticket_by_ref(new.ticket.intake.source, &new.ticket.intake.external_ref)
                .await?
            {
                return Ok(Created::Existing(Box::new(existing)));
            }
        }
        Err(StoreError::Database(format!(
            "ticket {}: its intake key kept changing",
            new.ticket.id
        )))
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
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT ticket::text FROM tickets WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|(json,)| codec::ticket_from_json(json))
            .collect()
    }

    async fn get_ticket(&self, id: &TicketId) -> Result<Option<Ticket>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT ticket::text FROM tickets WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(json,)| codec::ticket_from_json(&json))
            .transpose()
    }

    async fn ticket_by_ref(&self, source: Channel, external_ref: &str) -> Result<Option<Ticket>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT t.ticket::text FROM intake_keys k JOIN tickets t ON t.id = k.ticket_id \
             WHERE k.source = $1 AND k.external_ref = $2",
        )
        .bind(source.as_str())
        .bind(external_ref)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(json,)| codec::ticket_from_json(&json))
            .transpose()
    }

    async fn history(&self, id: &TicketId) -> Result<Vec<StoredEvent>> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT seq, ticket_id, payload::text FROM events WHERE ticket_id = $1 ORDER BY seq",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(seq, id, json)| codec::event_from_json(seq, id, &json))
            .collect()
    }

    async fn node_path(&self, id: &TicketId) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT node_path FROM tickets WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(p,)| p))
    }

    async fn list_tickets(&self, query: &TicketQuery) -> Result<TicketPage> {
        let built = codec::list_sql(query, "t.ticket::text")?;
        let mut q = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(built.sql));
        for arg in built.args {
            q = match arg {
                codec::Arg::Text(s) => q.bind(s),
                codec::Arg::Int(i) => q.bind(i),
            };
        }
        codec::page(q.fetch_all(&self.pool).await?, built.limit)
    }

    async fn events_after(
        &self,
        subtree: Option<&str>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let limit = codec::page_limit(limit, codec::DEFAULT_EVENTS, codec::MAX_EVENTS);
        let rows: Vec<(i64, String, String)> = match subtree {
            None => {
                sqlx::query_as(crate::sql::EVENTS_AFTER_PG)
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(root) => {
                let (lo, hi) = codec::subtree_range(root)?;
                sqlx::query_as(crate::sql::EVENTS_AFTER_IN_SUBTREE_PG)
                    .bind(after_seq)
                    .bind(limit)
                    .bind(lo)
                    .bind(hi)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.into_iter()
            .map(|(seq, id, json)| codec::event_from_json(seq, id, &json))
            .collect()
    }

    async fn last_seq(&self) -> Result<i64> {
        let (last,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0)::bigint FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(last)
    }

    async fn next_timer_due(&self) -> Result<Option<DateTime<Utc>>> {
        let rows: Vec<(i64, Option<i64>)> = sqlx::query_as(crate::sql::NEXT_TIMERS)
            .bind(codec::NEXT_TIMER_SCAN)
            .fetch_all(&self.pool)
            .await?;
        codec::next_claimable(&rows)
    }

    async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<DueTimer>> {
        let rows: Vec<(String, String, String, String, String, i64)> =
            sqlx::query_as(crate::sql::CLAIM_PG)
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

    async fn drop_claimed_timer(&self, claimed: &DueTimer, owner: &str) -> Result<bool> {
        let row = TimerRow::new(&claimed.timer);
        let done = sqlx::query(crate::sql::DROP_CLAIMED_TIMER)
            .bind(claimed.ticket_id.as_str())
            .bind(row.clock)
            .bind(&row.unit)
            .bind(row.threshold)
            .bind(&row.due_exact)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn tickets_with_timers_from(
        &self,
        from: DateTime<Utc>,
        after: Option<&TicketId>,
        limit: u32,
    ) -> Result<Vec<TicketId>> {
        let rows: Vec<(String,)> = sqlx::query_as(crate::sql::TICKETS_WITH_TIMERS_FROM)
            .bind(codec::millis(from))
            .bind(after.map_or("", TicketId::as_str))
            .bind(codec::page_limit(
                limit,
                codec::DEFAULT_PAGE,
                codec::MAX_PAGE,
            ))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(|(id,)| codec::ticket_id(id)).collect()
    }

    async fn import_district(&self, district: &District) -> Result<ImportCounts> {
        let rows = DistrictRows::new(district)?;
        let mut tx = self.pool.begin().await?;
        for n in &rows.nodes {
            sqlx::query(crate::sql::UPSERT_NODE)
                .bind(&n.code)
                .bind(&n.name)
                .bind(n.kind)
                .bind(&n.parent)
                .bind(&n.node_path)
                .execute(&mut *tx)
                .await?;
            for (position, p) in n.board.iter().enumerate() {
                sqlx::query(crate::sql::UPSERT_PERSON)
                    .bind(&n.code)
                    .bind(position as i32)
                    .bind(&p.name)
                    .bind(&p.role)
                    .bind(&p.phone)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM people WHERE node = $1 AND position >= $2")
                .bind(&n.code)
                .bind(n.board.len() as i32)
                .execute(&mut *tx)
                .await?;
        }
        for u in &rows.units {
            sqlx::query(crate::sql::UPSERT_UNIT)
                .bind(&u.code)
                .bind(&u.name)
                .bind(&u.node)
                .bind(u.department)
                .bind(&u.supervisor)
                .execute(&mut *tx)
                .await?;
        }
        for c in &rows.catalogue {
            sqlx::query(crate::sql::UPSERT_CATALOGUE)
                .bind(&c.category)
                .bind(&c.node)
                .bind(c.position)
                .bind(&c.name)
                .bind(c.default_level)
                .bind(&c.lead_unit)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(rows.counts)
    }

    async fn load_district(&self) -> Result<District> {
        let mut stored = StoredDistrict::default();
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        stored.nodes = sqlx::query_as(crate::sql::LOAD_NODES)
            .fetch_all(&mut *tx)
            .await?;
        stored.units = sqlx::query_as(crate::sql::LOAD_UNITS)
            .fetch_all(&mut *tx)
            .await?;
        stored.people = sqlx::query_as(crate::sql::LOAD_PEOPLE)
            .fetch_all(&mut *tx)
            .await?;
        stored.catalogue = sqlx::query_as(crate::sql::LOAD_CATALOGUE)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        stored.into_district()
    }

    async fn put_calendar_notice(&self, notice: &Notice, days: &[SpecialDay]) -> Result<()> {
        codec::check_notice(notice, days)?;
        let mut tx = self.pool.begin().await?;
        // Two changes of one year at once: the second waits, and records nothing over the first.
        let notices: Vec<(i32, String)> = sqlx::query_as(crate::sql::NOTICE_OF_YEAR)
            .bind(notice.year)
            .fetch_all(&mut *tx)
            .await?;
        let before: Vec<(String, bool, String, i32)> = sqlx::query_as(crate::sql::DAYS_OF_NOTICE)
            .bind(notice.year)
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query(crate::sql::RECORD_RETIMING)
            .bind(notice.year)
            .bind(codec::previous_notice(notices, before)?)
            .execute(&mut *tx)
            .await?;
        sqlx::query(crate::sql::UPSERT_NOTICE)
            .bind(notice.year)
            .bind(&notice.source)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM calendar_days WHERE notice = $1")
            .bind(notice.year)
            .execute(&mut *tx)
            .await?;
        for day in days {
            let written = sqlx::query(crate::sql::UPSERT_DAY)
                .bind(codec::day_text(day.date))
                .bind(day.off)
                .bind(&day.name)
                .bind(notice.year)
                .execute(&mut *tx)
                .await?;
            if written.rows_affected() == 0 {
                return Err(codec::declared_elsewhere(day, notice.year));
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn pending_retimings(&self) -> Result<Vec<(i32, Calendar)>> {
        let rows: Vec<(i32, String)> = sqlx::query_as(crate::sql::PENDING_RETIMINGS)
            .fetch_all(&self.pool)
            .await?;
        codec::pending_retimings(rows)
    }

    async fn retiming_done(&self, year: i32) -> Result<()> {
        sqlx::query(crate::sql::RETIMING_DONE)
            .bind(year)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn load_calendar(&self) -> Result<Calendar> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let notices: Vec<(i32, String)> = sqlx::query_as(crate::sql::LOAD_NOTICES)
            .fetch_all(&mut *tx)
            .await?;
        let days: Vec<(String, bool, String, i32)> = sqlx::query_as(crate::sql::LOAD_DAYS)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        codec::calendar_from_rows(notices, days)
    }

    async fn put_policy(&self, toml: &str, at: DateTime<Utc>) -> Result<PolicyVersion> {
        let created_at = codec::millis(at);
        for _ in 0..RETRIES {
            // Two replicas storing a policy at once compute the same next version; one retries.
            match sqlx::query_as::<_, (i64,)>(crate::sql::INSERT_POLICY)
                .bind(toml)
                .bind(created_at)
                .fetch_one(&self.pool)
                .await
            {
                Ok((version,)) => {
                    return Ok(PolicyVersion {
                        version,
                        toml: toml.to_owned(),
                        created_at: codec::from_millis(created_at)?,
                    });
                }
                Err(e) if crate::error::is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Database(
            "a policy version kept being taken".into(),
        ))
    }

    async fn policy(&self, version: i64) -> Result<Option<PolicyVersion>> {
        let row: Option<(i64, String, i64)> = if version == 0 {
            sqlx::query_as(crate::sql::LATEST_POLICY)
                .fetch_optional(&self.pool)
                .await?
        } else {
            sqlx::query_as(crate::sql::POLICY)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?
        };
        row.map(|(version, toml, at)| {
            Ok(PolicyVersion {
                version,
                toml,
                created_at: codec::from_millis(at)?,
            })
        })
        .transpose()
    }

    async fn create_token(&self, t: &crate::TokenRecord) -> Result<()> {
        crate::security::postgres::create_token(&self.pool, t).await
    }
    async fn token_by_hash(&self, hash: &str) -> Result<Option<crate::TokenRecord>> {
        crate::security::postgres::token_by_hash(&self.pool, hash).await
    }
    async fn list_tokens(&self) -> Result<Vec<crate::TokenRecord>> {
        crate::security::postgres::list_tokens(&self.pool).await
    }
    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<crate::TokenRecord> {
        crate::security::postgres::revoke_token(&self.pool, id, at).await
    }
    async fn append_audit(&self, entries: &[crate::AuditEntry]) -> Result<()> {
        crate::security::postgres::append_audit(&self.pool, entries).await
    }
    async fn audit_log(&self, q: &crate::AuditQuery) -> Result<Vec<crate::AuditEntry>> {
        crate::security::postgres::audit_log(&self.pool, q).await
    }

    async fn report_counts(&self, query: &crate::ReportQuery) -> Result<Vec<crate::ReportCounts>> {
        while self.project_reports(crate::CATCH_UP_EVENTS).await?
            == u64::from(crate::CATCH_UP_EVENTS)
        {}
        let mut tx = self.pool.begin().await?;
        // Every count from one snapshot.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let counts = crate::report::postgres::report(&mut tx, query).await?;
        tx.commit().await?;
        Ok(counts)
    }

    async fn reports_behind(&self) -> Result<i64> {
        let (behind,): (i64,) = sqlx::query_as(crate::sql::REPORTS_BEHIND)
            .fetch_one(&self.pool)
            .await?;
        Ok(behind)
    }

    async fn project_reports(&self, limit: u32) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let taken = crate::report::postgres::project(&mut tx, i64::from(limit)).await?;
        tx.commit().await?;
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::with_host;

    #[test]
    fn an_empty_host_means_the_socket_named_by_host() {
        assert_eq!(
            with_host("postgres://u@/db?host=/run/pg"),
            "postgres://u@localhost/db?host=/run/pg"
        );
        assert_eq!(
            with_host("postgres:///db?host=/x"),
            "postgres://localhost/db?host=/x"
        );
        assert_eq!(
            with_host("postgres://u:p@db:5432/x"),
            "postgres://u:p@db:5432/x"
        );
    }
}
