//! The intake queue: tickets to register are gathered here and handed to the writer as one request
//! per batch ([`tickets::create_all`]), so concurrent intake shares its statements. While one batch
//! is in the writer, the next gathers: the busier the intake, the larger the batches, and a lone
//! request goes straight through.

use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::tickets::{self, NewRows};
use super::writer::{self, Job};
use crate::{Created, Result, StoreError};

/// A ticket waiting to be registered, and where its answer goes.
type Pending = (NewRows, oneshot::Sender<Result<Created>>);

/// Starts the queue in front of `writer`, handing it at most `batch` tickets at a time; its sender.
pub(super) fn spawn(writer: mpsc::Sender<Box<dyn Job>>, batch: usize) -> mpsc::Sender<Pending> {
    let (queue, waiting) = mpsc::channel(batch * 4);
    tokio::spawn(run(waiting, writer, batch));
    queue
}

/// Registers a ticket through the queue `queue`; answers after the commit.
pub(super) async fn register(queue: &mpsc::Sender<Pending>, new: NewRows) -> Result<Created> {
    let (reply, answer) = oneshot::channel();
    queue
        .send((new, reply))
        .await
        .map_err(|_| writer::writer_gone())?;
    answer.await.map_err(|_| writer::writer_gone())?
}

async fn run(
    mut waiting: mpsc::Receiver<Pending>,
    writer: mpsc::Sender<Box<dyn Job>>,
    batch: usize,
) {
    let mut rows = Vec::with_capacity(batch);
    let mut replies = Vec::with_capacity(batch);
    while let Some((new, reply)) = waiting.recv().await {
        rows.push(new);
        replies.push(reply);
        while rows.len() < batch {
            match waiting.try_recv() {
                Ok((new, reply)) => {
                    rows.push(new);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let work = std::mem::replace(&mut rows, Vec::with_capacity(batch));
        let answers = writer::request(
            &writer,
            move |conn: &mut SqliteConnection| Box::pin(tickets::create_all(conn, work)),
            false,
        )
        .await;
        match answers {
            Ok(answers) => {
                for (reply, answer) in replies.drain(..).zip(answers) {
                    // The caller may have gone away; its ticket stands.
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                let mut replies = replies.drain(..);
                // A lone request hears its own error; a batch that failed whole (the writer's
                // transaction did not commit) fails every ticket in it the same way.
                if let Some(first) = replies.next() {
                    for reply in replies {
                        let _ = reply.send(Err(copy(&e)));
                    }
                    let _ = first.send(Err(e));
                }
            }
        }
    }
}

/// The same error again, for every ticket of a batch that failed whole.
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound(what) => StoreError::NotFound(what.clone()),
        StoreError::Conflict {
            id,
            expected,
            actual,
        } => StoreError::Conflict {
            id: id.clone(),
            expected: *expected,
            actual: *actual,
        },
        StoreError::AlreadyExists(what) => StoreError::AlreadyExists(what.clone()),
        StoreError::Config(what) => StoreError::Config(what.clone()),
        StoreError::TooNew(version) => StoreError::TooNew(*version),
        StoreError::Database(what) => StoreError::Database(what.clone()),
    }
}
