//! The [`Store`](crate::Store) impl, written once for both backends.
//!
//! Most store methods read or write the same rows with the same SQL on both databases; only the
//! connection type, how a write reaches the database and a few spellings differ. So each backend
//! provides:
//! - [`Backend`]: the methods it writes its own way (registering a ticket, committing, claiming
//!   timers, reading many tickets at once, closing);
//! - an inherent `write(work)` that runs `work` on a connection inside a write transaction and
//!   answers after the commit (SQLite: the group-committing writer task; PostgreSQL: a pooled
//!   transaction);
//! - a read pool (the field named by `reads =`);
//! - a dialect module in `common::sql` (`sqlite` or `postgres`) with the spellings that differ (JSON
//!   read back as text, a read snapshot's `BEGIN`), named like the backend's `report` module;
//!
//! and [`store_impl!`] writes `impl Store` from those, with every shared body here.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use doorstep_domain::{Ticket, TicketId};

use crate::{Commit, Created, DueTimer, NewTicket, Result, StoredEvent};

/// A write's work, run by the backend on a connection inside its write transaction.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How many times a write that lost a race on a unique key (a policy version) is tried.
pub(crate) const RETRIES: usize = 10;

/// The store methods each backend writes its own way (see the module docs).
pub(crate) trait Backend {
    /// See [`Store::create_ticket`](crate::Store::create_ticket).
    async fn create_ticket(&self, new: NewTicket<'_>) -> Result<Created>;
    /// See [`Store::commit`](crate::Store::commit).
    async fn commit(&self, commit: Commit<'_>) -> Result<Vec<StoredEvent>>;
    /// See [`Store::commit_all`](crate::Store::commit_all).
    async fn commit_all(&self, commits: &[Commit<'_>]) -> Result<Vec<Result<Vec<StoredEvent>>>>;
    /// See [`Store::get_tickets`](crate::Store::get_tickets).
    async fn get_tickets(&self, ids: &[TicketId]) -> Result<Vec<Ticket>>;
    /// See [`Store::claim_due_timers`](crate::Store::claim_due_timers).
    async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<DueTimer>>;
    /// See [`Store::close`](crate::Store::close).
    async fn close(&self) -> Result<()>;
}

/// `impl Store for $store`: the [`Backend`] methods delegated, every other method's body written
/// here once. `conn` is the backend's connection type, `reads` the field holding its read pool,
/// `dialect` its module in `common::sql` and in `report`.
macro_rules! store_impl {
    ($store:ty, conn = $conn:ty, reads = $reads:ident, dialect = $dialect:ident) => {
        /// Work the shared write methods send through the backend's write transaction.
        impl $store {
            async fn import_rows(
                conn: &mut $conn,
                rows: $crate::common::district::DistrictRows,
            ) -> $crate::Result<$crate::ImportCounts> {
                use $crate::common::{district, sql};
                let stored: Vec<(String, String)> = sqlx::query_as(district::STORED_PATHS)
                    .fetch_all(&mut *conn)
                    .await?;
                let sqlite = stringify!($dialect) == "sqlite";
                let statements = if sqlite {
                    district::move_paths_sqlite()
                } else {
                    district::MOVE_PATHS
                };
                let moved = district::moved(&stored, &rows);
                if !moved.is_empty() && !sqlite {
                    sqlx::query(district::LOCK_PROJECTOR)
                        .execute(&mut *conn)
                        .await?;
                }
                for (old, new) in moved {
                    for statement in statements {
                        sqlx::query(statement)
                            .bind(&old)
                            .bind(&new)
                            .execute(&mut *conn)
                            .await?;
                    }
                    tracing::info!(from = %old, to = %new, "node moved: its tickets' paths follow it");
                }
                for n in &rows.nodes {
                    sqlx::query(sql::UPSERT_NODE)
                        .bind(&n.code)
                        .bind(&n.name)
                        .bind(n.kind)
                        .bind(&n.parent)
                        .bind(&n.node_path)
                        .execute(&mut *conn)
                        .await?;
                    for (position, p) in n.board.iter().enumerate() {
                        sqlx::query(sql::UPSERT_PERSON)
                            .bind(&n.code)
                            .bind(position as i32)
                            .bind(&p.name)
                            .bind(&p.role)
                            .bind(&p.phone)
                            .execute(&mut *conn)
                            .await?;
                    }
                    sqlx::query(sql::DELETE_PEOPLE_BEYOND)
                        .bind(&n.code)
                        .bind(n.board.len() as i32)
                        .execute(&mut *conn)
                        .await?;
                }
                for u in &rows.units {
                    sqlx::query(sql::UPSERT_UNIT)
                        .bind(&u.code)
                        .bind(&u.name)
                        .bind(&u.node)
                        .bind(u.department)
                        .bind(&u.supervisor)
                        .execute(&mut *conn)
                        .await?;
                }
                for c in &rows.catalogue {
                    sqlx::query(sql::UPSERT_CATALOGUE)
                        .bind(&c.category)
                        .bind(&c.node)
                        .bind(c.position)
                        .bind(&c.name)
                        .bind(c.default_level)
                        .bind(&c.lead_unit)
                        .execute(&mut *conn)
                        .await?;
                }
                sqlx::query(sql::BUMP_CONFIG_VERSION)
                    .execute(&mut *conn)
                    .await?;
                Ok(rows.counts)
            }

            /// Two changes of one year at once: the second waits for the first's transaction, and
            /// records nothing over it.
            async fn put_notice_rows(
                conn: &mut $conn,
                notice: doorstep_domain::calendar::Notice,
                days: Vec<doorstep_domain::calendar::SpecialDay>,
            ) -> $crate::Result<()> {
                use $crate::common::{codec, sql};
                let notices: Vec<(i32, String)> = sqlx::query_as(sql::NOTICE_OF_YEAR)
                    .bind(notice.year)
                    .fetch_all(&mut *conn)
                    .await?;
                let before: Vec<(String, bool, String, i32)> = sqlx::query_as(sql::DAYS_OF_NOTICE)
                    .bind(notice.year)
                    .fetch_all(&mut *conn)
                    .await?;
                sqlx::query(sql::RECORD_RETIMING)
                    .bind(notice.year)
                    .bind(codec::previous_notice(notices, before)?)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(sql::UPSERT_NOTICE)
                    .bind(notice.year)
                    .bind(&notice.source)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(sql::DELETE_DAYS_OF_NOTICE)
                    .bind(notice.year)
                    .execute(&mut *conn)
                    .await?;
                for day in &days {
                    let written = sqlx::query(sql::UPSERT_DAY)
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
                sqlx::query(sql::BUMP_CONFIG_VERSION)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            async fn revoke_token_row(
                conn: &mut $conn,
                id: String,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::TokenRecord> {
                use $crate::common::{codec::millis, security};
                sqlx::query(security::REVOKE_TOKEN)
                    .bind(&id)
                    .bind(millis(at))
                    .execute(&mut *conn)
                    .await?;
                let row: Option<security::TokenRow> = sqlx::query_as(security::TOKEN_BY_ID)
                    .bind(&id)
                    .fetch_optional(&mut *conn)
                    .await?;
                row.map(security::token)
                    .transpose()?
                    .ok_or_else(|| security::not_found(&id))
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            #[tracing::instrument(name = "store.create_ticket", level = "debug", skip_all)]
            async fn create_ticket(
                &self,
                new: $crate::NewTicket<'_>,
            ) -> $crate::Result<$crate::Created> {
                <Self as $crate::common::shared::Backend>::create_ticket(self, new).await
            }

            #[tracing::instrument(name = "store.commit", level = "debug", skip_all)]
            async fn commit(
                &self,
                c: $crate::Commit<'_>,
            ) -> $crate::Result<Vec<$crate::StoredEvent>> {
                <Self as $crate::common::shared::Backend>::commit(self, c).await
            }

            #[tracing::instrument(name = "store.commit_all", level = "debug", skip_all)]
            async fn commit_all(
                &self,
                commits: &[$crate::Commit<'_>],
            ) -> $crate::Result<Vec<$crate::Result<Vec<$crate::StoredEvent>>>> {
                <Self as $crate::common::shared::Backend>::commit_all(self, commits).await
            }

            #[tracing::instrument(name = "store.get_ticket", level = "debug", skip_all)]
            async fn get_ticket(
                &self,
                id: &doorstep_domain::TicketId,
            ) -> $crate::Result<Option<doorstep_domain::Ticket>> {
                let row: Option<(String,)> =
                    sqlx::query_as($crate::common::sql::$dialect::TICKET_BY_ID)
                        .bind(id.as_str())
                        .fetch_optional(&self.$reads)
                        .await?;
                row.map(|(json,)| $crate::common::codec::ticket_from_json(&json))
                    .transpose()
            }

            #[tracing::instrument(name = "store.get_tickets", level = "debug", skip_all)]
            async fn get_tickets(
                &self,
                ids: &[doorstep_domain::TicketId],
            ) -> $crate::Result<Vec<doorstep_domain::Ticket>> {
                <Self as $crate::common::shared::Backend>::get_tickets(self, ids).await
            }

            async fn ticket_by_ref(
                &self,
                source: doorstep_domain::Channel,
                external_ref: &str,
            ) -> $crate::Result<Option<doorstep_domain::Ticket>> {
                let row: Option<(String,)> =
                    sqlx::query_as($crate::common::sql::$dialect::TICKET_BY_REF)
                        .bind(source.as_str())
                        .bind(external_ref)
                        .fetch_optional(&self.$reads)
                        .await?;
                row.map(|(json,)| $crate::common::codec::ticket_from_json(&json))
                    .transpose()
            }

            async fn history(
                &self,
                id: &doorstep_domain::TicketId,
            ) -> $crate::Result<Vec<$crate::StoredEvent>> {
                let rows: Vec<(i64, String, String)> =
                    sqlx::query_as($crate::common::sql::$dialect::HISTORY)
                        .bind(id.as_str())
                        .fetch_all(&self.$reads)
                        .await?;
                rows.into_iter()
                    .map(|(seq, id, json)| $crate::common::codec::event_from_json(seq, id, &json))
                    .collect()
            }

            async fn node_path(
                &self,
                id: &doorstep_domain::TicketId,
            ) -> $crate::Result<Option<String>> {
                let row: Option<(String,)> = sqlx::query_as($crate::common::sql::NODE_PATH)
                    .bind(id.as_str())
                    .fetch_optional(&self.$reads)
                    .await?;
                Ok(row.map(|(p,)| p))
            }

            #[tracing::instrument(name = "store.list_tickets", level = "debug", skip_all)]
            async fn list_tickets(
                &self,
                query: &$crate::TicketQuery,
            ) -> $crate::Result<$crate::TicketPage> {
                use $crate::common::codec;
                let built = codec::list_sql(query, $crate::common::sql::$dialect::TICKET_JSON)?;
                let mut q = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(built.sql));
                for arg in built.args {
                    q = match arg {
                        codec::Arg::Text(s) => q.bind(s),
                        codec::Arg::Int(i) => q.bind(i),
                    };
                }
                codec::page(q.fetch_all(&self.$reads).await?, built.limit)
            }

            async fn events_after(
                &self,
                subtree: Option<&str>,
                after_seq: i64,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::StoredEvent>> {
                use $crate::common::codec;
                use $crate::common::sql::$dialect as sql;
                let limit = codec::page_limit(limit, codec::DEFAULT_EVENTS, codec::MAX_EVENTS);
                let rows: Vec<(i64, String, String)> = match subtree {
                    None => {
                        sqlx::query_as(sql::EVENTS_AFTER)
                            .bind(after_seq)
                            .bind(limit)
                            .fetch_all(&self.$reads)
                            .await?
                    }
                    Some(root) => {
                        let (lo, hi) = codec::subtree_range(root)?;
                        sqlx::query_as(sql::EVENTS_AFTER_IN_SUBTREE)
                            .bind(after_seq)
                            .bind(limit)
                            .bind(lo)
                            .bind(hi)
                            .fetch_all(&self.$reads)
                            .await?
                    }
                };
                rows.into_iter()
                    .map(|(seq, id, json)| codec::event_from_json(seq, id, &json))
                    .collect()
            }

            async fn events_with_paths_after(
                &self,
                after_seq: i64,
                limit: u32,
            ) -> $crate::Result<Vec<(String, $crate::StoredEvent)>> {
                use $crate::common::codec;
                let limit = codec::page_limit(limit, codec::DEFAULT_EVENTS, codec::MAX_EVENTS);
                let rows: Vec<(i64, String, String, String)> =
                    sqlx::query_as($crate::common::sql::$dialect::EVENTS_WITH_PATHS_AFTER)
                        .bind(after_seq)
                        .bind(limit)
                        .fetch_all(&self.$reads)
                        .await?;
                rows.into_iter()
                    .map(|(seq, id, json, path)| {
                        Ok((path, codec::event_from_json(seq, id, &json)?))
                    })
                    .collect()
            }

            async fn last_seq(&self) -> $crate::Result<i64> {
                let (last,): (i64,) = sqlx::query_as($crate::common::sql::LAST_SEQ)
                    .fetch_one(&self.$reads)
                    .await?;
                Ok(last)
            }

            async fn next_timer_due(
                &self,
            ) -> $crate::Result<Option<chrono::DateTime<chrono::Utc>>> {
                use $crate::common::codec;
                let rows: Vec<(i64, Option<i64>)> =
                    sqlx::query_as($crate::common::sql::NEXT_TIMERS)
                        .bind(codec::NEXT_TIMER_SCAN)
                        .fetch_all(&self.$reads)
                        .await?;
                codec::next_claimable(&rows)
            }

            #[tracing::instrument(name = "store.claim_due_timers", level = "debug", skip_all)]
            async fn claim_due_timers(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
                owner: &str,
                lease_until: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Vec<$crate::DueTimer>> {
                <Self as $crate::common::shared::Backend>::claim_due_timers(
                    self,
                    now,
                    limit,
                    owner,
                    lease_until,
                )
                .await
            }

            async fn drop_claimed_timer(
                &self,
                claimed: &$crate::DueTimer,
                owner: &str,
            ) -> $crate::Result<bool> {
                let row = $crate::common::codec::TimerRow::new(&claimed.timer);
                let id = claimed.ticket_id.as_str().to_owned();
                let owner = owner.to_owned();
                self.write(move |conn| {
                    Box::pin(async move {
                        let done = sqlx::query($crate::common::sql::DROP_CLAIMED_TIMER)
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
                from: chrono::DateTime<chrono::Utc>,
                after: Option<&doorstep_domain::TicketId>,
                limit: u32,
            ) -> $crate::Result<Vec<doorstep_domain::TicketId>> {
                use $crate::common::codec;
                let rows: Vec<(String,)> =
                    sqlx::query_as($crate::common::sql::TICKETS_WITH_TIMERS_FROM)
                        .bind(codec::millis(from))
                        .bind(after.map_or("", doorstep_domain::TicketId::as_str))
                        .bind(codec::page_limit(
                            limit,
                            codec::DEFAULT_PAGE,
                            codec::MAX_PAGE,
                        ))
                        .fetch_all(&self.$reads)
                        .await?;
                rows.into_iter().map(|(id,)| codec::ticket_id(id)).collect()
            }

            async fn import_district(
                &self,
                district: &doorstep_domain::District,
            ) -> $crate::Result<$crate::ImportCounts> {
                let rows = $crate::common::district::DistrictRows::new(district)?;
                self.write(move |conn| Box::pin(Self::import_rows(conn, rows)))
                    .await
            }

            async fn load_district(&self) -> $crate::Result<doorstep_domain::District> {
                use sqlx::Connection as _;
                use $crate::common::sql;
                let mut stored = $crate::common::district::StoredDistrict::default();
                let mut conn = self.$reads.acquire().await?;
                // One read transaction: one consistent snapshot of the four tables.
                let mut tx = conn.begin_with(sql::$dialect::SNAPSHOT).await?;
                stored.nodes = sqlx::query_as(sql::LOAD_NODES).fetch_all(&mut *tx).await?;
                stored.units = sqlx::query_as(sql::LOAD_UNITS).fetch_all(&mut *tx).await?;
                stored.people = sqlx::query_as(sql::LOAD_PEOPLE).fetch_all(&mut *tx).await?;
                stored.catalogue = sqlx::query_as(sql::LOAD_CATALOGUE)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                stored.into_district()
            }

            async fn put_calendar_notice(
                &self,
                notice: &doorstep_domain::calendar::Notice,
                days: &[doorstep_domain::calendar::SpecialDay],
            ) -> $crate::Result<()> {
                $crate::common::codec::check_notice(notice, days)?;
                let notice = notice.clone();
                let days = days.to_vec();
                self.write(move |conn| Box::pin(Self::put_notice_rows(conn, notice, days)))
                    .await
            }

            async fn pending_retimings(
                &self,
            ) -> $crate::Result<Vec<(i32, doorstep_domain::calendar::Calendar)>> {
                let rows: Vec<(i32, String)> =
                    sqlx::query_as($crate::common::sql::PENDING_RETIMINGS)
                        .fetch_all(&self.$reads)
                        .await?;
                $crate::common::codec::pending_retimings(rows)
            }

            async fn retiming_done(&self, year: i32) -> $crate::Result<()> {
                self.write(move |conn| {
                    Box::pin(async move {
                        sqlx::query($crate::common::sql::RETIMING_DONE)
                            .bind(year)
                            .execute(&mut *conn)
                            .await?;
                        Ok(())
                    })
                })
                .await
            }

            async fn config_version(&self) -> $crate::Result<i64> {
                let (version,): (i64,) = sqlx::query_as($crate::common::sql::CONFIG_VERSION)
                    .fetch_one(&self.$reads)
                    .await?;
                Ok(version)
            }

            async fn load_calendar(&self) -> $crate::Result<doorstep_domain::calendar::Calendar> {
                use sqlx::Connection as _;
                use $crate::common::sql;
                let mut conn = self.$reads.acquire().await?;
                let mut tx = conn.begin_with(sql::$dialect::SNAPSHOT).await?;
                let notices: Vec<(i32, String)> = sqlx::query_as(sql::LOAD_NOTICES)
                    .fetch_all(&mut *tx)
                    .await?;
                let days: Vec<(String, bool, String, i32)> =
                    sqlx::query_as(sql::LOAD_DAYS).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                $crate::common::codec::calendar_from_rows(notices, days)
            }

            async fn put_policy(
                &self,
                toml: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::PolicyVersion> {
                use $crate::common::codec;
                let created_at = codec::millis(at);
                for _ in 0..$crate::common::shared::RETRIES {
                    let text = toml.to_owned();
                    // Two replicas storing a policy at once compute the same next version; one
                    // tries again.
                    let stored = self
                        .write(move |conn| {
                            Box::pin(async move {
                                let (version,): (i64,) =
                                    sqlx::query_as($crate::common::sql::INSERT_POLICY)
                                        .bind(&text)
                                        .bind(created_at)
                                        .fetch_one(&mut *conn)
                                        .await?;
                                sqlx::query($crate::common::sql::BUMP_CONFIG_VERSION)
                                    .execute(&mut *conn)
                                    .await?;
                                Ok(version)
                            })
                        })
                        .await;
                    match stored {
                        Ok(version) => {
                            return Ok($crate::PolicyVersion {
                                version,
                                toml: toml.to_owned(),
                                created_at: codec::from_millis(created_at)?,
                            });
                        }
                        Err($crate::StoreError::AlreadyExists(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err($crate::StoreError::Database(
                    "a policy version kept being taken".into(),
                ))
            }

            async fn policy(&self, version: i64) -> $crate::Result<Option<$crate::PolicyVersion>> {
                use $crate::common::sql;
                let row: Option<(i64, String, i64)> = if version == 0 {
                    sqlx::query_as(sql::LATEST_POLICY)
                        .fetch_optional(&self.$reads)
                        .await?
                } else {
                    sqlx::query_as(sql::POLICY)
                        .bind(version)
                        .fetch_optional(&self.$reads)
                        .await?
                };
                row.map(|(version, toml, at)| {
                    Ok($crate::PolicyVersion {
                        version,
                        toml,
                        created_at: $crate::common::codec::from_millis(at)?,
                    })
                })
                .transpose()
            }

            async fn create_token(&self, t: &$crate::TokenRecord) -> $crate::Result<()> {
                let t = t.clone();
                self.write(move |conn| {
                    Box::pin(async move {
                        $crate::common::security::insert_token!(t)
                            .execute(&mut *conn)
                            .await?;
                        Ok(())
                    })
                })
                .await
            }

            async fn token_by_hash(
                &self,
                hash: &str,
            ) -> $crate::Result<Option<$crate::TokenRecord>> {
                use $crate::common::security;
                let row: Option<security::TokenRow> = sqlx::query_as(security::TOKEN_BY_HASH)
                    .bind(hash)
                    .fetch_optional(&self.$reads)
                    .await?;
                row.map(security::token).transpose()
            }

            async fn list_tokens(&self) -> $crate::Result<Vec<$crate::TokenRecord>> {
                use $crate::common::security;
                let rows: Vec<security::TokenRow> = sqlx::query_as(security::LIST_TOKENS)
                    .fetch_all(&self.$reads)
                    .await?;
                rows.into_iter().map(security::token).collect()
            }

            async fn revoke_token(
                &self,
                id: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::TokenRecord> {
                let id = id.to_owned();
                self.write(move |conn| Box::pin(Self::revoke_token_row(conn, id, at)))
                    .await
            }

            async fn append_audit(&self, entries: &[$crate::AuditEntry]) -> $crate::Result<()> {
                let entries = entries.to_vec();
                self.write(move |conn| {
                    Box::pin(async move {
                        for e in &entries {
                            $crate::common::security::insert_audit!(e)
                                .execute(&mut *conn)
                                .await?;
                        }
                        Ok(())
                    })
                })
                .await
            }

            async fn audit_log(
                &self,
                q: &$crate::AuditQuery,
            ) -> $crate::Result<Vec<$crate::AuditEntry>> {
                use $crate::common::security;
                let rows: Vec<security::AuditRow> =
                    sqlx::query_as($crate::common::sql::$dialect::AUDIT_LOG)
                        .bind(q.ticket_id.as_deref())
                        .bind(q.principal.as_deref())
                        .bind(q.after.as_deref())
                        .bind(security::limit(q))
                        .fetch_all(&self.$reads)
                        .await?;
                rows.into_iter().map(security::audit).collect()
            }

            async fn report_counts(
                &self,
                query: &$crate::ReportQuery,
            ) -> $crate::Result<Vec<$crate::ReportCounts>> {
                use sqlx::Connection as _;
                use $crate::api::CATCH_UP_EVENTS;
                while self.project_reports(CATCH_UP_EVENTS).await? == u64::from(CATCH_UP_EVENTS) {}
                let mut conn = self.$reads.acquire().await?;
                // One read transaction: every count from one snapshot.
                let mut tx = conn
                    .begin_with($crate::common::sql::$dialect::SNAPSHOT)
                    .await?;
                let counts = $crate::report::$dialect::report(&mut tx, query).await?;
                tx.commit().await?;
                Ok(counts)
            }

            async fn project_reports(&self, limit: u32) -> $crate::Result<u64> {
                let limit = i64::from(limit);
                self.write(move |conn| Box::pin($crate::report::$dialect::project(conn, limit)))
                    .await
            }

            async fn reports_behind(&self) -> $crate::Result<i64> {
                let (behind,): (i64,) = sqlx::query_as($crate::common::sql::REPORTS_BEHIND)
                    .fetch_one(&self.$reads)
                    .await?;
                Ok(behind)
            }

            async fn count_due_timers(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<i64> {
                let (due,): (i64,) = sqlx::query_as($crate::common::sql::COUNT_DUE_TIMERS)
                    .bind($crate::common::codec::millis(now))
                    .fetch_one(&self.$reads)
                    .await?;
                Ok(due)
            }

            async fn open_tickets_by_level(&self) -> $crate::Result<Vec<(String, i64)>> {
                Ok(sqlx::query_as($crate::common::sql::OPEN_TICKETS_BY_LEVEL)
                    .fetch_all(&self.$reads)
                    .await?)
            }

            fn pool_use(&self) -> $crate::PoolUse {
                $crate::PoolUse {
                    size: self.$reads.size(),
                    idle: u32::try_from(self.$reads.num_idle()).unwrap_or(u32::MAX),
                }
            }

            async fn ping(&self) -> $crate::Result<()> {
                sqlx::query("SELECT 1").execute(&self.$reads).await?;
                Ok(())
            }

            async fn close(&self) -> $crate::Result<()> {
                <Self as $crate::common::shared::Backend>::close(self).await
            }
        }
    };
}

pub(crate) use store_impl;
