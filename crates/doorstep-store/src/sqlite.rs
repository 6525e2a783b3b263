//! The SQLite backend: the embedded default.
//!
//! One writer task owns the only write connection. Write requests reach it over a channel; it drains
//! whatever is queued (up to [`ConnectOptions::write_batch`]) into one `BEGIN IMMEDIATE` transaction,
//! runs each request inside its own savepoint (a request that fails rolls back alone), commits once
//! and only then answers every caller with its own result. With `synchronous=FULL` a commit costs an
//! fsync, so committing concurrent requests together is what lets many writers through. A request
//! that asks to go out early (the SLA scheduler's claim, which it decides on while its previous batch
//! commits) ends its transaction: nothing queued after it holds up its answer. Reads go through a
//! separate pool and see every answered write (WAL).

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use doorstep_domain::calendar::{Calendar, Notice, SpecialDay};
use doorstep_domain::{Channel, District, Ticket, TicketId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions as _, Connection as _};
use tokio::sync::{mpsc, oneshot};

use crate::codec::{self, TicketRow, TimerRow};
use crate::connect::{ConnectOptions, SqliteSync};
use crate::district::{DistrictRows, StoredDistrict};
use crate::migrations::{Backend, MigrationReport, TABLE};
use crate::{
    Commit, Created, DueTimer, ImportCounts, NewTicket, PolicyVersion, Result, Store, StoreError,
    StoredEvent, TicketPage, TicketQuery,
};

/// Ids per `IN (...)` list when reading many tickets (well under SQLite's bound-parameter limit).
const GET_MANY_CHUNK: usize = 500;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The SQLite store: a read pool and the writer task's queue.
pub(crate) struct SqliteStore {
    path: PathBuf,
    reads: SqlitePool,
    writer: mpsc::Sender<Box<dyn Job>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn connect_options(url: &str, options: &ConnectOptions) -> Result<SqliteConnectOptions> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err(StoreError::Config(format!(
            "{url}: an in-memory SQLite database is not supported (the writer and the readers need \
             one file); use sqlite://PATH"
        )));
    }
    let parsed = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("invalid SQLite URL {url}: {e}")))?;
    Ok(parsed
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(options.busy_timeout)
        // Statement journals (a multi-row statement inside the writer's savepoints keeps one, so it
        // can fail alone) in memory, not in a temporary file created and deleted per statement.
        .pragma("temp_store", "memory")
        .synchronous(match options.sqlite_sync {
            SqliteSync::Off => SqliteSynchronous::Off,
            SqliteSync::Normal => SqliteSynchronous::Normal,
            SqliteSync::Full => SqliteSynchronous::Full,
            SqliteSync::Extra => SqliteSynchronous::Extra,
        }))
}

/// Opens the write connection, creating the file if missing.
async fn open_writer(
    url: &str,
    options: &ConnectOptions,
) -> Result<(SqliteConnection, SqliteConnectOptions)> {
    let connect = connect_options(url, options)?;
    let path = connect.get_filename().to_path_buf();
    let conn = connect
        .clone()
        .create_if_missing(true)
        .connect()
        .await
        .map_err(|e| {
            StoreError::Config(format!(
                "cannot open SQLite database {}: {}",
                path.display(),
                db_message(&e)
            ))
        })?;
    Ok((conn, connect))
}

fn db_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

async fn applied_versions(conn: &mut SqliteConnection) -> Result<BTreeSet<i64>> {
    let exists: Option<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = $1")
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

/// Checks the database is not newer than this binary, then applies what it lacks.
async fn migrate_conn(conn: &mut SqliteConnection, path: &str) -> Result<MigrationReport> {
    let before = applied_versions(conn).await?;
    Backend::Sqlite.check_not_newer(&before)?;
    Backend::Sqlite
        .migrator()
        .run(&mut *conn)
        .await
        .map_err(|e| StoreError::Database(format!("migrating {path}: {e}")))?;
    let after = applied_versions(conn).await?;
    let describe = |v: &i64| (*v, Backend::Sqlite.describe(*v).to_owned());
    Ok(MigrationReport {
        database: format!("sqlite://{path}"),
        applied_now: after.difference(&before).map(describe).collect(),
        already_applied: before.iter().map(describe).collect(),
    })
}

pub(crate) async fn migrate(url: &str, options: &ConnectOptions) -> Result<MigrationReport> {
    let (mut conn, connect) = open_writer(url, options).await?;
    let report = migrate_conn(&mut conn, &connect.get_filename().display().to_string()).await;
    let _ = conn.close().await;
    report
}

impl SqliteStore {
    pub(crate) async fn open(url: &str, options: &ConnectOptions) -> Result<SqliteStore> {
        let (mut conn, connect) = open_writer(url, options).await?;
        let path = connect.get_filename().to_path_buf();
        migrate_conn(&mut conn, &path.display().to_string()).await?;
        crate::report::sqlite::backfill(&mut conn).await?;
        let reads = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| {
                StoreError::Config(format!(
                    "cannot open SQLite database {}: {}",
                    path.display(),
                    db_message(&e)
                ))
            })?;
        let (writer, queue) = mpsc::channel(options.write_batch.max(1) * 4);
        tokio::spawn(run_writer(conn, queue, options.write_batch.max(1)));
        Ok(SqliteStore {
            path,
            reads,
            writer,
        })
    }

    /// Runs `work` in the writer's next transaction; answers after the commit.
    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        self.request(work, false).await
    }

    /// [`write`](Self::write), in a transaction that ends with it: nothing queued after it joins
    /// that transaction and delays the answer.
    async fn write_last<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        self.request(work, true).await
    }

    async fn request<T, F>(&self, work: F, last: bool) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            work: Some(work),
            outcome: None,
            reply,
            last,
        };
        self.writer
            .send(Box::new(request))
            .await
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> StoreError {
    StoreError::Database("the SQLite writer stopped".into())
}

/// A write request as the writer sees it.
trait Job: Send {
    /// Runs the request; `true` when it succeeded (its savepoint is kept).
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool>;
    /// Answers the caller once the batch's fate is known.
    fn answer(self: Box<Self>, commit: std::result::Result<(), String>);
    /// The transaction ends with this request.
    fn last(&self) -> bool;
}

struct Request<T, F> {
    work: Option<F>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
    last: bool,
}

impl<T, F> Job for Request<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
{
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let Some(work) = self.work.take() else {
                return false;
            };
            let outcome = work(conn).await;
            let ok = outcome.is_ok();
            self.outcome = Some(outcome);
            ok
        })
    }

    fn answer(self: Box<Self>, commit: std::result::Result<(), String>) {
        let outcome = match (self.outcome, commit) {
            // A request that failed wrote nothing; its own error says why.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(e)) => Err(StoreError::Database(e)),
            (None, Ok(())) => Err(StoreError::Database("the request was not run".into())),
        };
        // The caller may have gone away; its write stands.
        let _ = self.reply.send(outcome);
    }

    fn last(&self) -> bool {
        self.last
    }
}

async fn run_writer(
    mut conn: SqliteConnection,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    batch: usize,
) {
    let mut jobs: Vec<Box<dyn Job>> = Vec::with_capacity(batch);
    while let Some(first) = queue.recv().await {
        let mut ends = first.last();
        jobs.push(first);
        while !ends && jobs.len() < batch {
            match queue.try_recv() {
                Ok(job) => {
                    ends = job.last();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let committed = run_batch(&mut conn, &mut jobs).await;
        if let Err(e) = &committed {
            tracing::error!(error = %e, requests = jobs.len(), "sqlite write batch failed");
        }
        for job in jobs.drain(..) {
            job.answer(committed.clone());
        }
    }
    let _ = conn.close().await;
}

/// One transaction for the whole batch, one savepoint per request.
async fn run_batch(
    conn: &mut SqliteConnection,
    jobs: &mut [Box<dyn Job>],
) -> std::result::Result<(), String> {
    async fn exec(
        conn: &mut SqliteConnection,
        sql: &'static str,
    ) -> std::result::Result<(), String> {
        sqlx::query(sql)
            .execute(&mut *conn)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
    exec(conn, "BEGIN IMMEDIATE").await?;
    let mut outcome = Ok(());
    for job in jobs.iter_mut() {
        if let Err(e) = exec(conn, "SAVEPOINT request").await {
            outcome = Err(e);
            break;
        }
        let kept = if job.run(conn).await {
            exec(conn, "RELEASE request").await
        } else {
            match exec(conn, "ROLLBACK TO request").await {
                Ok(()) => exec(conn, "RELEASE request").await,
                Err(e) => Err(e),
            }
        };
        if let Err(e) = kept {
            outcome = Err(e);
            break;
        }
    }
    match outcome {
        Ok(()) => match exec(conn, "COMMIT").await {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = exec(conn, "ROLLBACK").await;
                Err(e)
            }
        },
        Err(e) => {
            let _ = exec(conn, "ROLLBACK").await;
            Err(e)
        }
    }
}

mod tickets;

use tickets::{CommitRows, NewRows};

async fn claim(
    conn: &mut SqliteConnection,
    now: i64,
    limit: i64,
    owner: String,
    lease_until: i64,
) -> Result<Vec<DueTimer>> {
    let rows: Vec<(String, String, String, String, String, i64)> =
        sqlx::query_as(crate::sql::CLAIM_SQLITE)
            .bind(now)
            .bind(limit)
            .bind(&owner)
            .bind(lease_until)
            .fetch_all(&mut *conn)
            .await?;
    codec::due_timers(rows)
}

async fn import(conn: &mut SqliteConnection, rows: DistrictRows) -> Result<ImportCounts> {
    for n in &rows.nodes {
        sqlx::query(crate::sql::UPSERT_NODE)
            .bind(&n.code)
            .bind(&n.name)
            .bind(n.kind)
            .bind(&n.parent)
            .bind(&n.node_path)
            .execute(&mut *conn)
            .await?;
        for (position, p) in n.board.iter().enumerate() {
            sqlx::query(crate::sql::UPSERT_PERSON)
                .bind(&n.code)
                .bind(position as i32)
                .bind(&p.name)
                .bind(&p.role)
                .bind(&p.phone)
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query("DELETE FROM people WHERE node = $1 AND position >= $2")
            .bind(&n.code)
            .bind(n.board.len() as i32)
            .execute(&mut *conn)
            .await?;
    }
    for u in &rows.units {
        sqlx::query(crate::sql::UPSERT_UNIT)
            .bind(&u.code)
            .bind(&u.name)
            .bind(&u.node)
            .bind(u.department)
            .bind(&u.supervisor)
            .execute(&mut *conn)
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
            .execute(&mut *conn)
            .await?;
    }
    Ok(rows.counts)
}

async fn put_notice(
    conn: &mut SqliteConnection,
    notice: Notice,
    days: Vec<SpecialDay>,
) -> Result<()> {
    let notices: Vec<(i32, String)> = sqlx::query_as(crate::sql::NOTICE_OF_YEAR)
        .bind(notice.year)
        .fetch_all(&mut *conn)
        .await?;
    let before: Vec<(String, bool, String, i32)> = sqlx::query_as(crate::sql::DAYS_OF_NOTICE)
        .bind(notice.year)
        .fetch_all(&mut *conn)
        .await?;
    sqlx::query(crate::sql::RECORD_RETIMING)
        .bind(notice.year)
        .bind(codec::previous_notice(notices, before)?)
        .execute(&mut *conn)
        .await?;
    sqlx::query(crate::sql::UPSERT_NOTICE)
        .bind(notice.year)
        .bind(&notice.source)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM calendar_days WHERE notice = $1")
        .bind(notice.year)
        .execute(&mut *conn)
        .await?;
    for day in &days {
        let written = sqlx::query(crate::sql::UPSERT_DAY)
            .bind(codec::day_text(day.date))
            .bind(day.off)
            .bind(&day.name)
            .bind(notice.year)
            .execute(&mut *conn)
            .await?;
        if written.rows_affected() == 0 {
            return Err(codec::declared_elsewhere(day, notice.year));
        }
    }
    Ok(())
}

async fn put_policy(
    conn: &mut SqliteConnection,
    toml: String,
    at: DateTime<Utc>,
) -> Result<PolicyVersion> {
    let (version,): (i64,) = sqlx::query_as(crate::sql::INSERT_POLICY)
        .bind(&toml)
        .bind(codec::millis(at))
        .fetch_one(&mut *conn)
        .await?;
    Ok(PolicyVersion {
        version,
        toml,
        created_at: codec::from_millis(codec::millis(at))?,
    })
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create_ticket(&self, new: NewTicket<'_>) -> Result<Created> {
        codec::check_new(&new)?;
        let rows = NewRows {
            id: new.ticket.id.clone(),
            row: TicketRow::new(new.ticket)?,
            events: new.events.to_vec(),
            event_rows: codec::event_rows(new.events)?,
            node_path: new.node_path.to_owned(),
        };
        self.write(move |conn| Box::pin(tickets::create(conn, rows)))
            .await
    }

    async fn commit(&self, c: Commit<'_>) -> Result<Vec<StoredEvent>> {
        codec::check_commit(&c)?;
        let rows = CommitRows {
            id: c.ticket.id.clone(),
            expected_version: c.expected_version,
            row: TicketRow::new(c.ticket)?,
            events: c.events.to_vec(),
            event_rows: codec::event_rows(c.events)?,
        };
        self.write(move |conn| Box::pin(tickets::commit(conn, rows)))
            .await
    }

    async fn commit_all(&self, commits: &[Commit<'_>]) -> Result<Vec<Result<Vec<StoredEvent>>>> {
        let rows: Vec<(TicketId, Result<CommitRows>)> = commits
            .iter()
            .map(|c| {
                let rows = codec::check_commit(c).and_then(|()| {
                    Ok(CommitRows {
                        id: c.ticket.id.clone(),
                        expected_version: c.expected_version,
                        row: TicketRow::new(c.ticket)?,
                        events: c.events.to_vec(),
                        event_rows: codec::event_rows(c.events)?,
                    })
                });
                (c.ticket.id.clone(), rows)
            })
            .collect();
        self.write(move |conn| Box::pin(tickets::commit_all(conn, rows)))
            .await
    }

    async fn get_tickets(&self, ids: &[TicketId]) -> Result<Vec<Ticket>> {
        let mut tickets = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(GET_MANY_CHUNK) {
            let sql = format!(
                "SELECT ticket FROM tickets WHERE id IN ({})",
                (1..=chunk.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut query = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for (json,) in query.fetch_all(&self.reads).await? {
                tickets.push(codec::ticket_from_json(&json)?);
            }
        }
        Ok(tickets)
    }

    async fn get_ticket(&self, id: &TicketId) -> Result<Option<Ticket>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT ticket FROM tickets WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.reads)
            .await?;
        row.map(|(json,)| codec::ticket_from_json(&json))
            .transpose()
    }

    async fn ticket_by_ref(&self, source: Channel, external_ref: &str) -> Result<Option<Ticket>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT t.ticket FROM intake_keys k JOIN tickets t ON t.id = k.ticket_id \
             WHERE k.source = $1 AND k.external_ref = $2",
        )
        .bind(source.as_str())
        .bind(external_ref)
        .fetch_optional(&self.reads)
        .await?;
        row.map(|(json,)| codec::ticket_from_json(&json))
            .transpose()
    }

    async fn history(&self, id: &TicketId) -> Result<Vec<StoredEvent>> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT seq, ticket_id, payload FROM events WHERE ticket_id = $1 ORDER BY seq",
        )
        .bind(id.as_str())
        .fetch_all(&self.reads)
        .await?;
        rows.into_iter()
            .map(|(seq, id, json)| codec::event_from_json(seq, id, &json))
            .collect()
    }

    async fn node_path(&self, id: &TicketId) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT node_path FROM tickets WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.map(|(p,)| p))
    }

    async fn list_tickets(&self, query: &TicketQuery) -> Result<TicketPage> {
        let built = codec::list_sql(query, "t.ticket")?;
        let mut q = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(built.sql));
        for arg in built.args {
            q = match arg {
                codec::Arg::Text(s) => q.bind(s),
                codec::Arg::Int(i) => q.bind(i),
            };
        }
        codec::page(q.fetch_all(&self.reads).await?, built.limit)
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
                sqlx::query_as(crate::sql::EVENTS_AFTER)
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_all(&self.reads)
                    .await?
            }
            Some(root) => {
                let (lo, hi) = codec::subtree_range(root)?;
                sqlx::query_as(crate::sql::EVENTS_AFTER_IN_SUBTREE)
                    .bind(after_seq)
                    .bind(limit)
                    .bind(lo)
                    .bind(hi)
                    .fetch_all(&self.reads)
                    .await?
            }
        };
        rows.into_iter()
            .map(|(seq, id, json)| codec::event_from_json(seq, id, &json))
            .collect()
    }

    async fn last_seq(&self) -> Result<i64> {
        let (last,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&self.reads)
            .await?;
        Ok(last)
    }

    async fn next_timer_due(&self) -> Result<Option<DateTime<Utc>>> {
        let rows: Vec<(i64, Option<i64>)> = sqlx::query_as(crate::sql::NEXT_TIMERS)
            .bind(codec::NEXT_TIMER_SCAN)
            .fetch_all(&self.reads)
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
        let now = codec::millis(now);
        let limit = codec::page_limit(limit, codec::DEFAULT_CLAIM, codec::MAX_CLAIM);
        let owner = owner.to_owned();
        let lease_until = codec::millis(lease_until);
        // The scheduler decides on the claim while it commits its previous batch: answered
        // before that commit runs.
        self.write_last(move |conn| Box::pin(claim(conn, now, limit, owner, lease_until)))
            .await
    }

    async fn drop_claimed_timer(&self, claimed: &DueTimer, owner: &str) -> Result<bool> {
        let row = TimerRow::new(&claimed.timer);
        let id = claimed.ticket_id.as_str().to_owned();
        let owner = owner.to_owned();
        self.write(move |conn| {
            Box::pin(async move {
                let done = sqlx::query(crate::sql::DROP_CLAIMED_TIMER)
                    .bind(&id)
                    .bind(row.clock)
                    .bind(&row.unit)
                    .bind(row.threshold)
                    .bind(&row.due_exact)
                    .bind(&owner)
                    .execute(&mut *conn)
                    .await?;
                Ok(done.rows_affected() > 0)
            })
        })
        .await
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
            .fetch_all(&self.reads)
            .await?;
        rows.into_iter().map(|(id,)| codec::ticket_id(id)).collect()
    }

    async fn import_district(&self, district: &District) -> Result<ImportCounts> {
        let rows = DistrictRows::new(district)?;
        self.write(move |conn| Box::pin(import(conn, rows))).await
    }

    async fn load_district(&self) -> Result<District> {
        let mut stored = StoredDistrict::default();
        let mut conn = self.reads.acquire().await?;
        // One read transaction: one consistent snapshot of the four tables.
        let mut tx = conn.begin().await?;
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
        let notice = notice.clone();
        let days = days.to_vec();
        self.write(move |conn| Box::pin(put_notice(conn, notice, days)))
            .await
    }

    async fn pending_retimings(&self) -> Result<Vec<(i32, Calendar)>> {
        let rows: Vec<(i32, String)> = sqlx::query_as(crate::sql::PENDING_RETIMINGS)
            .fetch_all(&self.reads)
            .await?;
        codec::pending_retimings(rows)
    }

    async fn retiming_done(&self, year: i32) -> Result<()> {
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query(crate::sql::RETIMING_DONE)
                    .bind(year)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn load_calendar(&self) -> Result<Calendar> {
        let mut conn = self.reads.acquire().await?;
        let mut tx = conn.begin().await?;
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
        let toml = toml.to_owned();
        self.write(move |conn| Box::pin(put_policy(conn, toml, at)))
            .await
    }

    async fn policy(&self, version: i64) -> Result<Option<PolicyVersion>> {
        let row: Option<(i64, String, i64)> = if version == 0 {
            sqlx::query_as(crate::sql::LATEST_POLICY)
                .fetch_optional(&self.reads)
                .await?
        } else {
            sqlx::query_as(crate::sql::POLICY)
                .bind(version)
                .fetch_optional(&self.reads)
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
        let t = t.clone();
        self.write(move |c| Box::pin(crate::security::sqlite::create_token(c, t)))
            .await
    }
    async fn token_by_hash(&self, hash: &str) -> Result<Option<crate::TokenRecord>> {
        crate::security::sqlite::token_by_hash(&self.reads, hash).await
    }
    async fn list_tokens(&self) -> Result<Vec<crate::TokenRecord>> {
        crate::security::sqlite::list_tokens(&self.reads).await
    }
    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<crate::TokenRecord> {
        let id = id.to_owned();
        self.write(move |c| Box::pin(crate::security::sqlite::revoke_token(c, id, at)))
            .await
    }
    async fn append_audit(&self, entries: &[crate::AuditEntry]) -> Result<()> {
        let entries = entries.to_vec();
        self.write(move |c| Box::pin(crate::security::sqlite::append_audit(c, entries)))
            .await
    }
    async fn audit_log(&self, q: &crate::AuditQuery) -> Result<Vec<crate::AuditEntry>> {
        crate::security::sqlite::audit_log(&self.reads, q).await
    }

    async fn report_counts(&self, query: &crate::ReportQuery) -> Result<Vec<crate::ReportCounts>> {
        while self.project_reports(crate::CATCH_UP_EVENTS).await?
            == u64::from(crate::CATCH_UP_EVENTS)
        {}
        let mut conn = self.reads.acquire().await?;
        // One read transaction: every count from one snapshot.
        let mut tx = conn.begin().await?;
        let counts = crate::report::sqlite::report(&mut tx, query).await?;
        tx.commit().await?;
        Ok(counts)
    }

    async fn reports_behind(&self) -> Result<i64> {
        let (behind,): (i64,) = sqlx::query_as(crate::sql::REPORTS_BEHIND)
            .fetch_one(&self.reads)
            .await?;
        Ok(behind)
    }

    async fn project_reports(&self, limit: u32) -> Result<u64> {
        let limit = i64::from(limit);
        self.write(move |c| Box::pin(crate::report::sqlite::project(c, limit)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    async fn select_one(conn: &mut SqliteConnection) -> Result<i64> {
        let (one,): (i64,) = sqlx::query_as("SELECT 1").fetch_one(conn).await?;
        Ok(one)
    }

    /// A request that asks to end its transaction (the scheduler's claim) is answered before a
    /// request queued behind it runs, even one queued at the same time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_that_ends_its_transaction_is_not_held_up_by_later_ones() {
        let dir = std::env::temp_dir().join(format!(
            "doorstep-writer-{}-{}",
            std::process::id(),
            line!()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("w.db").display());
        let store = Arc::new(
            SqliteStore::open(&url, &ConnectOptions::default())
                .await
                .unwrap(),
        );

        // The writer is busy with a first request while the next two queue up behind it.
        let (go_first, first_waits) = oneshot::channel::<()>();
        let (go_later, later_waits) = oneshot::channel::<()>();
        let first = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                store
                    .write(move |c| {
                        Box::pin(async move {
                            let _ = first_waits.await;
                            select_one(c).await
                        })
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let claim = tokio::spawn({
            let store = Arc::clone(&store);
            async move { store.write_last(|c| Box::pin(select_one(c))).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let later = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                store
                    .write(move |c| {
                        Box::pin(async move {
                            let _ = later_waits.await;
                            select_one(c).await
                        })
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;

        go_first.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        // Answered while the request behind it still waits.
        let answered = tokio::time::timeout(Duration::from_secs(10), claim).await;
        assert_eq!(answered.expect("held up").unwrap().unwrap(), 1);
        assert!(!later.is_finished());
        go_later.send(()).unwrap();
        assert_eq!(later.await.unwrap().unwrap(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
