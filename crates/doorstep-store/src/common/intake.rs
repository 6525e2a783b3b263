//! The intake queue in front of a backend's writes: tickets to register are gathered here and handed
//! to the backend as one batch ([`spawn`]'s `register`), so concurrent intake shares its statements and
//! its commit. While one batch is being written the next gathers: the busier the intake, the larger
//! the batches, and a lone request goes straight through.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::common::codec::NewRows;
use crate::{Created, Result, StoreError};

/// A ticket waiting to be registered, and where its answer goes.
pub(crate) type Pending = (NewRows, oneshot::Sender<Result<Created>>);

/// Starts a queue that hands at most `batch` tickets at a time to `register`, which answers each in
/// order (or fails the batch whole); its sender.
pub(crate) fn spawn<F, Fut>(batch: usize, register: F) -> mpsc::Sender<Pending>
where
    F: Fn(Vec<NewRows>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<Result<Created>>>> + Send + 'static,
{
    let (queue, waiting) = mpsc::channel(batch * 4);
    tokio::spawn(run(waiting, batch, register));
    queue
}

/// Registers a ticket through `queue`; answers after the commit.
pub(crate) async fn register(queue: &mpsc::Sender<Pending>, new: NewRows) -> Result<Created> {
    let (reply, answer) = oneshot::channel();
    queue.send((new, reply)).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

fn stopped() -> StoreError {
    StoreError::Database("the intake queue stopped".into())
}

async fn run<F, Fut>(mut waiting: mpsc::Receiver<Pending>, batch: usize, register: F)
where
    F: Fn(Vec<NewRows>) -> Fut,
    Fut: Future<Output = Result<Vec<Result<Created>>>>,
{
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
        let answers = register(std::mem::replace(&mut rows, Vec::with_capacity(batch))).await;
        match answers {
            Ok(answers) => {
                for (reply, answer) in replies.drain(..).zip(answers) {
                    // The caller may have gone away; its ticket stands.
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                // A batch that failed whole (its transaction did not commit) fails every ticket
                // in it the same way.
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
