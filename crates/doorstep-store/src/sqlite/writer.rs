//! The SQLite writer: one task owns the only write connection. Write requests reach it over a
//! channel; it drains whatever is queued (up to [`ConnectOptions::write_batch`]) into one
//! `BEGIN IMMEDIATE` transaction, runs each request inside its own savepoint (a request that fails
//! rolls back alone), commits once and only then answers every caller with its own result. With
//! `synchronous=FULL` a commit costs an fsync, so committing concurrent requests together is what
//! lets many writers through. A request that asks to go out early (the SLA scheduler's claim, which
//! it decides on while its previous batch commits) ends its transaction: nothing queued after it
//! holds up its answer.
//!
//! [`ConnectOptions::write_batch`]: crate::ConnectOptions::write_batch

use sqlx::Connection as _;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::SqliteStore;
use crate::common::shared::BoxFuture;
use crate::{Result, StoreError};

/// Starts the writer task on `conn`; its queue.
pub(super) fn spawn(conn: SqliteConnection, batch: usize) -> mpsc::Sender<Box<dyn Job>> {
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
pub(super) async fn request<T, F>(
    writer: &mpsc::Sender<Box<dyn Job>>,
    work: F,
    last: bool,
) -> Result<T>
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
        .send(Box::new(request))
        .await
        .map_err(|_| writer_gone())?;
    answer.await.map_err(|_| writer_gone())?
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
