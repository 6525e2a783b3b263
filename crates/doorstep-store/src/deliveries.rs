//! Notification deliveries: the rows a notifier records behind the event log (a projector with its
//! own cursor, like the reporting rows), then claims under a lease, attempts, and settles.
//!
//! The [`Deliveries`] methods are part of every [`Store`](crate::Store) (a supertrait), written once
//! for both backends by [`deliveries_impl!`]; only the claim differs (PostgreSQL skips rows another
//! notifier is claiming, SQLite claims through its one writer).
//!
//! - Recording moves the cursor and inserts the deliveries in one transaction, only if the cursor is
//!   still where the caller read it: two notifiers that considered the same events record them once.
//! - A delivery's id is stable (the caller derives it from the event's seq and the rule), and its
//!   body is stored as it will be sent, so every attempt sends the same bytes.
//! - Per rule and ticket, deliveries go in event order: a claim skips a delivery while an earlier
//!   one of the same rule and ticket is still pending.

use chrono::{DateTime, Utc};

use crate::Result;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not delivered yet: due at `next_at`.
    Pending,
    /// A 2xx answer came.
    Done,
    /// Set aside after its retries ran out; `doorstep notify retry` tries it again.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Done => "done",
            DeliveryStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<DeliveryStatus> {
        match text {
            "pending" => Ok(DeliveryStatus::Pending),
            "done" => Ok(DeliveryStatus::Done),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(crate::StoreError::Database(format!(
                "unknown delivery status {other:?}"
            ))),
        }
    }
}

/// A delivery to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Stable across attempts and processes.
    pub id: String,
    /// The rule's name.
    pub rule: String,
    /// `webhook` or `sms`.
    pub channel: String,
    pub ticket_id: String,
    /// The seq of the event that caused it.
    pub seq: i64,
    /// The event's kind (`BREACHED`, ...).
    pub kind: String,
    /// The request body exactly as it will be sent.
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// A failing delivery is set aside as failed past this instant.
    pub expires_at: DateTime<Utc>,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub rule: String,
    pub channel: String,
    pub ticket_id: String,
    pub seq: i64,
    pub kind: String,
    pub body: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub next_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The last attempt's answer (an HTTP status or what went wrong).
    pub last_error: Option<String>,
    /// When it was delivered or set aside.
    pub done_at: Option<DateTime<Utc>>,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Done {
        at: DateTime<Utc>,
    },
    /// Try again at `next_at`.
    Retry {
        next_at: DateTime<Utc>,
        error: String,
    },
    /// Set aside: its retries ran out.
    Failed {
        at: DateTime<Utc>,
        error: String,
    },
}

/// An operator's listing: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Only deliveries set aside as failed.
    pub failed_only: bool,
    /// Only this rule's.
    pub rule: Option<String>,
    pub limit: u32,
}

/// The gauges' figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub pending: i64,
    pub failed: i64,
    /// When the oldest pending delivery was recorded.
    pub oldest_pending: Option<DateTime<Utc>>,
    /// Events committed that the notifier has not considered yet.
    pub events_behind: i64,
}

/// The deliveries' storage, part of every store.
#[async_trait::async_trait]
pub trait Deliveries: Send + Sync {
    /// The last seq the notifier considered.
    async fn delivery_cursor(&self) -> Result<i64>;
    /// Moves the cursor from `after` to `upto` and records `new` (an id already recorded is left
    /// alone), in one transaction; `false`, and nothing written, when the cursor is no longer at
    /// `after` (another notifier recorded those events).
    async fn record_deliveries(&self, after: i64, upto: i64, new: &[NewDelivery]) -> Result<bool>;
    /// Claims up to `limit` pending deliveries due at `now`, earliest first, skipping those under
    /// another live lease and those behind an earlier pending delivery of the same rule and ticket;
    /// each is leased to `owner` until `lease_until`.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Delivery>>;
    /// Records an attempt's outcome, if the delivery is still pending and leased to `owner`; `true`
    /// when recorded.
    async fn settle_delivery(&self, id: &str, owner: &str, outcome: &Settlement) -> Result<bool>;
    /// [`settle_delivery`](Deliveries::settle_delivery) for many, in one transaction; how many
    /// were recorded.
    async fn settle_deliveries(
        &self,
        owner: &str,
        outcomes: &[(String, Settlement)],
    ) -> Result<u64>;
    /// The earliest instant a pending delivery can be claimed (its due instant, or its lease's end),
    /// leaving out those held back by an earlier pending delivery of their rule and ticket.
    async fn next_delivery_due(&self) -> Result<Option<DateTime<Utc>>>;
    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>>;
    /// Makes a failed (or pending) delivery due at `now` again, set aside past `expires_at`;
    /// `NotFound` for an unknown id, `Config` for one already delivered.
    async fn retry_delivery(
        &self,
        id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Delivery>;
    async fn delivery_counts(&self) -> Result<DeliveryCounts>;
}

pub(crate) type DeliveryRow = (
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    Option<i64>,
);

pub(crate) fn delivery(row: DeliveryRow) -> Result<Delivery> {
    use crate::common::codec::from_millis;
    let (
        id,
        rule,
        channel,
        ticket_id,
        seq,
        kind,
        body,
        status,
        attempts,
        created_at,
        next_at,
        expires_at,
        last_error,
        done_at,
    ) = row;
    Ok(Delivery {
        id,
        rule,
        channel,
        ticket_id,
        seq,
        kind,
        body,
        status: DeliveryStatus::parse(&status)?,
        attempts,
        created_at: from_millis(created_at)?,
        next_at: from_millis(next_at)?,
        expires_at: from_millis(expires_at)?,
        last_error,
        done_at: done_at.map(from_millis).transpose()?,
    })
}

/// An outcome as `SETTLE`'s status, next attempt, last error and end.
pub(crate) fn settle_row(outcome: &Settlement) -> (&'static str, i64, Option<String>, Option<i64>) {
    use crate::common::codec::millis;
    match outcome {
        Settlement::Done { at } => ("done", millis(*at), None, Some(millis(*at))),
        Settlement::Retry { next_at, error } => {
            ("pending", millis(*next_at), Some(error.clone()), None)
        }
        Settlement::Failed { at, error } => (
            "failed",
            millis(*at),
            Some(error.clone()),
            Some(millis(*at)),
        ),
    }
}

pub(crate) const CURSOR: &str = "SELECT recorded FROM delivery_state WHERE id = 1";
pub(crate) const MOVE_CURSOR: &str =
    "UPDATE delivery_state SET recorded = $2 WHERE id = 1 AND recorded = $1";
pub(crate) const INSERT: &str = "INSERT INTO deliveries (id, rule, channel, ticket_id, seq, kind, \
    body, status, attempts, created_at, next_at, expires_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8, $9) ON CONFLICT (id) DO NOTHING";
/// The deliveries a claim may take: due, not under a live lease, first in their rule and ticket.
macro_rules! claimable {
    () => {
        "SELECT d.id FROM deliveries d WHERE d.status = 'pending' AND d.next_at <= $1 \
         AND (d.lease_until IS NULL OR d.lease_until <= $1) \
         AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.rule = d.rule \
             AND e.ticket_id = d.ticket_id AND e.seq < d.seq AND e.status = 'pending') \
         ORDER BY d.next_at, d.seq LIMIT $2"
    };
}
pub(crate) const CLAIM_SQLITE: &str = concat!(
    "UPDATE deliveries SET lease_owner = $3, lease_until = $4 WHERE id IN (",
    claimable!(),
    ") RETURNING id, rule, channel, ticket_id, seq, kind, body, status, attempts, created_at, \
     next_at, expires_at, last_error, done_at"
);
/// Skips rows another notifier is claiming (see the timers' claim for why MATERIALIZED).
pub(crate) const CLAIM_POSTGRES: &str = concat!(
    "WITH due AS MATERIALIZED (",
    claimable!(),
    " FOR UPDATE OF d SKIP LOCKED) UPDATE deliveries t SET lease_owner = $3, lease_until = $4 \
     FROM due WHERE t.id = due.id RETURNING t.id, t.rule, t.channel, t.ticket_id, t.seq, t.kind, \
     t.body, t.status, t.attempts, t.created_at, t.next_at, t.expires_at, t.last_error, t.done_at"
);
pub(crate) const SETTLE: &str = "UPDATE deliveries SET status = $3, attempts = attempts + 1, \
    next_at = $4, last_error = $5, done_at = $6, lease_owner = NULL, lease_until = NULL \
    WHERE id = $1 AND lease_owner = $2 AND status = 'pending'";
/// Skips deliveries held back by an earlier pending one of their rule and ticket.
pub(crate) const NEXT_DUE: &str = "SELECT MIN(CASE WHEN d.lease_until IS NOT NULL \
    AND d.lease_until > d.next_at THEN d.lease_until ELSE d.next_at END) FROM deliveries d \
    WHERE d.status = 'pending' AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.rule = d.rule \
    AND e.ticket_id = d.ticket_id AND e.seq < d.seq AND e.status = 'pending')";
pub(crate) const LIST: &str = "SELECT id, rule, channel, ticket_id, seq, kind, body, status, \
    attempts, created_at, next_at, expires_at, last_error, done_at FROM deliveries \
    WHERE ($1 = 0 OR status = 'failed') AND (CAST($2 AS TEXT) IS NULL OR rule = $2) \
    ORDER BY seq DESC, id LIMIT $3";
pub(crate) const BY_ID: &str = "SELECT id, rule, channel, ticket_id, seq, kind, body, status, \
    attempts, created_at, next_at, expires_at, last_error, done_at FROM deliveries WHERE id = $1";
pub(crate) const RETRY: &str = "UPDATE deliveries SET status = 'pending', next_at = $2, \
    expires_at = $3, lease_owner = NULL, lease_until = NULL, done_at = NULL \
    WHERE id = $1 AND status <> 'done'";
pub(crate) const PENDING: &str =
    "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE status = 'pending'";
pub(crate) const FAILED: &str = "SELECT COUNT(*) FROM deliveries WHERE status = 'failed'";
pub(crate) const BEHIND: &str = "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events) - recorded \
    FROM delivery_state WHERE id = 1";

/// `impl Deliveries for $store`, inside the backend's module (it uses the backend's `write` and
/// read pool); `claim` is the backend's claim statement.
macro_rules! deliveries_impl {
    ($store:ty, reads = $reads:ident, claim = $claim:path, write = $write:ident) => {
        #[async_trait::async_trait]
        impl $crate::Deliveries for $store {
            async fn delivery_cursor(&self) -> $crate::Result<i64> {
                let (cursor,): (i64,) = sqlx::query_as($crate::deliveries::CURSOR)
                    .fetch_one(&self.$reads)
                    .await?;
                Ok(cursor)
            }

            async fn record_deliveries(
                &self,
                after: i64,
                upto: i64,
                new: &[$crate::NewDelivery],
            ) -> $crate::Result<bool> {
                use $crate::common::codec::millis;
                let new = new.to_vec();
                self.write(move |conn| {
                    Box::pin(async move {
                        let moved = sqlx::query($crate::deliveries::MOVE_CURSOR)
                            .bind(after)
                            .bind(upto)
                            .execute(&mut *conn)
                            .await?;
                        if moved.rows_affected() == 0 {
                            return Ok(false);
                        }
                        for d in &new {
                            sqlx::query($crate::deliveries::INSERT)
                                .bind(&d.id)
                                .bind(&d.rule)
                                .bind(&d.channel)
                                .bind(&d.ticket_id)
                                .bind(d.seq)
                                .bind(&d.kind)
                                .bind(&d.body)
                                .bind(millis(d.created_at))
                                .bind(millis(d.expires_at))
                                .execute(&mut *conn)
                                .await?;
                        }
                        Ok(true)
                    })
                })
                .await
            }

            async fn claim_deliveries(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
                owner: &str,
                lease_until: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Vec<$crate::Delivery>> {
                use $crate::common::codec::millis;
                let owner = owner.to_owned();
                let rows: Vec<$crate::deliveries::DeliveryRow> = self
                    .$write(move |conn| {
                        Box::pin(async move {
                            Ok(sqlx::query_as($claim)
                                .bind(millis(now))
                                .bind(i64::from(limit.clamp(1, 1000)))
                                .bind(&owner)
                                .bind(millis(lease_until))
                                .fetch_all(&mut *conn)
                                .await?)
                        })
                    })
                    .await?;
                let mut claimed = rows
                    .into_iter()
                    .map($crate::deliveries::delivery)
                    .collect::<$crate::Result<Vec<_>>>()?;
                claimed.sort_by(|a, b| (a.next_at, a.seq, &a.id).cmp(&(b.next_at, b.seq, &b.id)));
                Ok(claimed)
            }

            async fn settle_delivery(
                &self,
                id: &str,
                owner: &str,
                outcome: &$crate::Settlement,
            ) -> $crate::Result<bool> {
                let (status, next_at, error, done_at) = $crate::deliveries::settle_row(outcome);
                let (id, owner) = (id.to_owned(), owner.to_owned());
                self.write(move |conn| {
                    Box::pin(async move {
                        let done = sqlx::query($crate::deliveries::SETTLE)
                            .bind(&id)
                            .bind(&owner)
                            .bind(status)
                            .bind(next_at)
                            .bind(error)
                            .bind(done_at)
                            .execute(&mut *conn)
                            .await?;
                        Ok(done.rows_affected() > 0)
                    })
                })
                .await
            }

            async fn settle_deliveries(
                &self,
                owner: &str,
                outcomes: &[(String, $crate::Settlement)],
            ) -> $crate::Result<u64> {
                let owner = owner.to_owned();
                let rows: Vec<_> = outcomes
                    .iter()
                    .map(|(id, outcome)| (id.clone(), $crate::deliveries::settle_row(outcome)))
                    .collect();
                self.write(move |conn| {
                    Box::pin(async move {
                        let mut settled = 0;
                        for (id, (status, next_at, error, done_at)) in &rows {
                            settled += sqlx::query($crate::deliveries::SETTLE)
                                .bind(id)
                                .bind(&owner)
                                .bind(*status)
                                .bind(*next_at)
                                .bind(error.as_deref())
                                .bind(*done_at)
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                        }
                        Ok(settled)
                    })
                })
                .await
            }

            async fn next_delivery_due(
                &self,
            ) -> $crate::Result<Option<chrono::DateTime<chrono::Utc>>> {
                let (due,): (Option<i64>,) = sqlx::query_as($crate::deliveries::NEXT_DUE)
                    .fetch_one(&self.$reads)
                    .await?;
                due.map($crate::common::codec::from_millis).transpose()
            }

            async fn list_deliveries(
                &self,
                q: &$crate::DeliveryQuery,
            ) -> $crate::Result<Vec<$crate::Delivery>> {
                let limit = if q.limit == 0 {
                    100
                } else {
                    q.limit.min(10_000)
                };
                let rows: Vec<$crate::deliveries::DeliveryRow> =
                    sqlx::query_as($crate::deliveries::LIST)
                        .bind(i32::from(q.failed_only))
                        .bind(q.rule.as_deref())
                        .bind(i64::from(limit))
                        .fetch_all(&self.$reads)
                        .await?;
                rows.into_iter().map($crate::deliveries::delivery).collect()
            }

            async fn retry_delivery(
                &self,
                id: &str,
                now: chrono::DateTime<chrono::Utc>,
                expires_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::Delivery> {
                use $crate::common::codec::millis;
                let id = id.to_owned();
                let row: Option<$crate::deliveries::DeliveryRow> = self
                    .write(move |conn| {
                        Box::pin(async move {
                            sqlx::query($crate::deliveries::RETRY)
                                .bind(&id)
                                .bind(millis(now))
                                .bind(millis(expires_at))
                                .execute(&mut *conn)
                                .await?;
                            Ok(sqlx::query_as($crate::deliveries::BY_ID)
                                .bind(&id)
                                .fetch_optional(&mut *conn)
                                .await?)
                        })
                    })
                    .await?;
                let Some(row) = row else {
                    return Err($crate::StoreError::NotFound("delivery".into()));
                };
                let delivery = $crate::deliveries::delivery(row)?;
                if delivery.status == $crate::DeliveryStatus::Done {
                    return Err($crate::StoreError::Config(format!(
                        "delivery {} was delivered already",
                        delivery.id
                    )));
                }
                Ok(delivery)
            }

            async fn delivery_counts(&self) -> $crate::Result<$crate::DeliveryCounts> {
                use $crate::deliveries::{BEHIND, FAILED, PENDING};
                let (pending, oldest): (i64, Option<i64>) =
                    sqlx::query_as(PENDING).fetch_one(&self.$reads).await?;
                let (failed,): (i64,) = sqlx::query_as(FAILED).fetch_one(&self.$reads).await?;
                let (behind,): (i64,) = sqlx::query_as(BEHIND).fetch_one(&self.$reads).await?;
                Ok($crate::DeliveryCounts {
                    pending,
                    failed,
                    oldest_pending: oldest.map($crate::common::codec::from_millis).transpose()?,
                    events_behind: behind,
                })
            }
        }
    };
}

pub(crate) use deliveries_impl;
