//! The SQLite writer: one task owns the only write connection. Write requests reach it over a
//! channel; it drains whatever is queued (up to [`ConnectOptions::write_batch`]) into one
//! `BEGIN IMMEDIATE` transaction, runs each request inside its own savepoint (a request that fails
//! rolls back alone), commits once and only then answers every caller with its own result. With
//! `synchronous=FULL` a commit costs an fsync, so committing concurrent requests together is what
//! lets many writers through. A request that asks to go out early (the SLA scheduler's claim, which
//! it decides on while its previous batch commits) ends its transaction: nothing queued after it
//! holds up its answer.
//!
//! Closing the store is the writer's last message: it commits what was queued before it, refuses
//! what comes after, checkpoints the write-ahead log into the database file and closes the
//! connection.
//!
//! [`ConnectOptions::write_batch`]: crate::ConnectOptions::write_batch

use sqlx::Connection as _;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::SqliteStore;
use crate::common::shared::BoxFuture;
use crate::{Result, StoreError};

/// What the writer is sent.
pub(super) enum Message {
    Write(Box<dyn Job>),
    /// Close the store; answered `Some(complete)` by the writer that checkpointed (`complete`: the
    /// whole log reached the database file), `None` when the store was already closing.
    Close(oneshot::Sender<Result<Option<bool>>>),
}

/// Starts the writer task on `conn`; its queue.
pub(super) fn spawn(conn: SqliteConnection, batch: usize) -> mpsc::Sender<Message> {
    let (writer, queue) = mpsc::channel(batch * 4);
    tokio::spawn(run_writer(conn, queue, batch));
    writer
}

impl SqliteStore {
    /// Runs `work` in the writer's next transaction; answers after the commit.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        self.request(work, false).await
    }

    /// [`write`](Self::write), in a transaction that ends with it: nothing queued after it joins
    /// that transaction and delays the answer.
    pub(super) async fn write_last<T, F>(&self, work: F) -> Result<T>
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
        request(&self.writer, work, last).await
    }
}

/// Sends `work` to the writer behind `writer`; answers after the commit. `last`: the transaction
/// ends with it.
pub(super) async fn request<T, F>(writer: &mpsc::Sender<Message>, work: F, last: bool) -> Result<T>
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
    writer
        .send(Message::Write(Box::new(request)))
        .await
        .map_err(|_| writer_gone())?;
    answer.await.map_err(|_| writer_gone())?
}

/// Closes the writer behind `writer` once the writes queued before it are committed: `Some(complete)`
/// from the call that checkpointed the log, `None` when the store was already closed or closing.
pub(super) async fn close(writer: &mpsc::Sender<Message>) -> Result<Option<bool>> {
    let (reply, answer) = oneshot::channel();
    if writer.send(Message::Close(reply)).await.is_err() {
        return Ok(None);
    }
    answer.await.unwrap_or(Ok(None))
}

pub(super) fn writer_gone() -> StoreError {
    StoreError::Database("the SQLite writer stopped".into())
}

/// A write request as the writer sees it.
pub(super) trait Job: Send {
    /// Runs the request; `true` when it succeeded (its savepoint is kept).
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool>;
    /// Answers the caller once the batch's fate is known.
    fn answer(self: Box<Self>, commit: Result<()>);
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

    fn answer(self: Box<Self>, commit: Result<()>) {
        let outcome = match (self.outcome, commit) {
            // A request that failed wrote nothing; its own error says why.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(e)) => Err(e),
            (None, Ok(())) => Err(StoreError::Database("the request was not run".into())),
        };
        // The caller may have gone away; its write stands.
        let _ = self.reply.send(outcome);
    }

    fn last(&self) -> bool {
        self.last
    }
}

async fn run_writer(mut conn: SqliteConnection, mut queue: mpsc::Receiver<Message>, batch: usize) {
    let mut jobs: Vec<Box<dyn Job>> = Vec::with_capacity(batch);
    let mut closing = None;
    while closing.is_none() {
        let first = match queue.recv().await {
            Some(Message::Write(job)) => job,
            Some(Message::Close(reply)) => {
                closing = Some(reply);
                break;
            }
            None => break,
        };
        let mut ends = first.last();
        jobs.push(first);
        while !ends && jobs.len() < batch {
            match queue.try_recv() {
                Ok(Message::Write(job)) => {
                    ends = job.last();
                    jobs.push(job);
                }
                Ok(Message::Close(reply)) => {
                    closing = Some(reply);
                    break;
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
    let Some(reply) = closing else {
        // Every handle on the store is gone.
        let _ = conn.close().await;
        return;
    };
    queue.close();
    let checkpointed = checkpoint(&mut conn).await;
    let closed = conn.close().await;
    let outcome = checkpointed.and_then(|complete| {
        closed?;
        Ok(Some(complete))
    });
    // Sent after the close: writes are refused, other closes answered once it is done.
    let mut others = Vec::new();
    while let Some(message) = queue.recv().await {
        match message {
            Message::Write(job) => job.answer(Err(StoreError::Unavailable(CLOSED.into()))),
            Message::Close(reply) => others.push(reply),
        }
    }
    let _ = reply.send(outcome);
    for other in others {
        let _ = other.send(Ok(None));
    }
}

const CLOSED: &str = "the SQLite store is closed";

/// Copies the whole write-ahead log into the database file and empties it, so the file alone holds
/// every commit. `false` when another process's reader held part of it back past the busy timeout.
async fn checkpoint(conn: &mut SqliteConnection) -> Result<bool> {
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut *conn)
        .await?;
    Ok(busy == 0)
}

/// One transaction for the whole batch, one savepoint per request.
async fn run_batch(conn: &mut SqliteConnection, jobs: &mut [Box<dyn Job>]) -> Result<()> {
    // Errors keep their kind: a lock held past the busy timeout answers `Unavailable`.
    async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<()> {
        sqlx::query(sql).execute(&mut *conn).await?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::ConnectOptions;

    async fn select_one(conn: &mut SqliteConnection) -> Result<i64> {
        let (one,): (i64,) = sqlx::query_as("SELECT 1").fetch_one(conn).await?;
        Ok(one)
    }

    /// Waits until `n` messages wait in the writer's queue: the order of the queue is the order the
    /// test sent them in, whatever the machine's load (a sleep between sends does not promise that).
    async fn queued(writer: &mpsc::Sender<Message>, n: usize) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while writer.max_capacity() - writer.capacity() < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{n} messages queued within 30 s"));
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
        let (first_runs, first_running) = oneshot::channel::<()>();
        let first = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                store
                    .write(move |c| {
                        Box::pin(async move {
                            let _ = first_runs.send(());
                            let _ = first_waits.await;
                            select_one(c).await
                        })
                    })
                    .await
            }
        });
        first_running
            .await
            .expect("the writer runs the first request");
        let claim = tokio::spawn({
            let store = Arc::clone(&store);
            async move { store.write_last(|c| Box::pin(select_one(c))).await }
        });
        queued(&store.writer, 1).await;
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
        queued(&store.writer, 2).await;

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

    /// A close commits the writes queued before it and refuses those queued after it; a second
    /// close sent meanwhile is answered once the first is done, and did nothing itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_close_keeps_the_writes_before_it_and_refuses_those_after_it() {
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

        let (go, busy) = oneshot::channel::<()>();
        let (first_runs, first_running) = oneshot::channel::<()>();
        let first = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                store
                    .write(move |c| {
                        Box::pin(async move {
                            let _ = first_runs.send(());
                            let _ = busy.await;
                            select_one(c).await
                        })
                    })
                    .await
            }
        });
        first_running
            .await
            .expect("the writer runs the first request");
        let before = tokio::spawn({
            let store = Arc::clone(&store);
            async move { store.write(|c| Box::pin(select_one(c))).await }
        });
        queued(&store.writer, 1).await;
        let closing = tokio::spawn({
            let store = Arc::clone(&store);
            async move { close(&store.writer).await }
        });
        queued(&store.writer, 2).await;
        let after = tokio::spawn({
            let store = Arc::clone(&store);
            async move { store.write(|c| Box::pin(select_one(c))).await }
        });
        let second_close = tokio::spawn({
            let store = Arc::clone(&store);
            async move { close(&store.writer).await }
        });
        queued(&store.writer, 4).await;

        go.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(before.await.unwrap().unwrap(), 1);
        assert_eq!(closing.await.unwrap().unwrap(), Some(true));
        assert!(after.await.unwrap().is_err());
        assert_eq!(second_close.await.unwrap().unwrap(), None);
        assert_eq!(close(&store.writer).await.unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
