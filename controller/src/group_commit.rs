//! Group commit: requests that arrive together are written together.
//!
//! Callers hand a request to one task and wait for its answer. The task
//! takes whatever has gathered while the previous batch was being written
//! and writes it as a whole; a lone request is written at once, and under a
//! burst batches grow and the cost per request falls. A batch that fails is
//! written again one request at a time, so one bad request cannot fail its
//! neighbours. Used where every write waits for one connection (SQLite's
//! writer), which is where a round trip per statement is the bottleneck.

use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Requests written in one batch at most.
const MAX_BATCH: usize = 64;
/// Requests waiting for the writer at most; more wait to be let in.
const QUEUE: usize = 1024;

/// What writes a batch.
pub trait BatchWrite: Send + Sync + 'static {
    type Request: Send + 'static;
    type Answer: Send + 'static;
    /// Writes `requests` as a whole: the answers in the same order, one
    /// for each, or an error for all.
    fn write(
        &self,
        requests: &[Self::Request],
    ) -> impl Future<Output = anyhow::Result<Vec<Self::Answer>>> + Send;

    /// Undoes what was written for a caller that went away before its
    /// answer came (a client that hung up): nothing by default.
    fn unclaimed(&self, answer: Self::Answer) -> impl Future<Output = ()> + Send {
        let _ = answer;
        async {}
    }
}

type Reply<A> = oneshot::Sender<anyhow::Result<A>>;

/// The handle callers hand requests to; the writing task stops when every
/// handle is dropped.
pub struct GroupCommit<W: BatchWrite> {
    sender: mpsc::Sender<(W::Request, Reply<W::Answer>)>,
}

impl<W: BatchWrite> Clone for GroupCommit<W> {
    fn clone(&self) -> Self {
        GroupCommit {
            sender: self.sender.clone(),
        }
    }
}

impl<W: BatchWrite> GroupCommit<W> {
    /// Starts the writing task.
    pub fn start(writer: W) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(Arc::new(writer), receiver));
        GroupCommit { sender }
    }

    /// Writes `request` with whatever arrives at the same time.
    pub async fn write(&self, request: W::Request) -> anyhow::Result<W::Answer> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((request, reply))
            .await
            .map_err(|_| anyhow::anyhow!("the database writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the database writer stopped before answering"))?
    }
}

async fn run<W: BatchWrite>(writer: Arc<W>, mut receiver: mpsc::Receiver<(W::Request, Reply<W::Answer>)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (requests, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        match writer.write(&requests).await {
            Ok(answers) if answers.len() == requests.len() => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    if let Err(Ok(answer)) = reply.send(Ok(answer)) {
                        writer.unclaimed(answer).await;
                    }
                }
            }
            Ok(answers) => {
                let message = format!(
                    "the database writer gave {} answers for {} requests",
                    answers.len(),
                    requests.len()
                );
                for reply in replies {
                    let _ = reply.send(Err(anyhow::anyhow!("{message}")));
                }
            }
            Err(error) if requests.len() == 1 => {
                let _ = replies.into_iter().next().map(|reply| reply.send(Err(error)));
            }
            Err(_) => {
                // Alone, each request fails or not on its own account.
                for (request, reply) in requests.into_iter().zip(replies) {
                    let answer =
                        writer
                            .write(std::slice::from_ref(&request))
                            .await
                            .and_then(|mut answers| {
                                answers
                                    .pop()
                                    .ok_or_else(|| anyhow::anyhow!("the database writer gave no answer"))
                            });
                    let _ = reply.send(answer);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Doubles numbers; refuses a batch holding 13, and records the size
    /// of every batch it writes and the answers nobody waited for.
    #[derive(Default)]
    struct Doubler {
        batches: Mutex<Vec<usize>>,
        unclaimed: Mutex<Vec<u32>>,
    }

    impl BatchWrite for Doubler {
        type Request = u32;
        type Answer = u32;
        async fn write(&self, requests: &[u32]) -> anyhow::Result<Vec<u32>> {
            self.batches.lock().unwrap().push(requests.len());
            // Long enough for the others to gather behind the first.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            anyhow::ensure!(!requests.contains(&13), "13 is refused");
            Ok(requests.iter().map(|n| n * 2).collect())
        }
    }

    #[tokio::test]
    async fn requests_arriving_together_are_written_together_and_a_bad_one_fails_alone() {
        let doubler = Arc::new(Doubler::default());
        let batches = GroupCommit::start(SharedDoubler(doubler.clone()));
        let answers: Vec<anyhow::Result<u32>> =
            futures_util::future::join_all((0..40).map(|n| batches.write(n))).await;
        for (n, answer) in answers.into_iter().enumerate() {
            let n = n as u32;
            match answer {
                Ok(doubled) => assert_eq!(doubled, n * 2),
                Err(error) => {
                    assert_eq!(n, 13, "only 13 fails, not {n}: {error}");
                    assert_eq!(error.to_string(), "13 is refused");
                }
            }
        }
        let sizes = doubler.batches.lock().unwrap().clone();
        assert!(
            sizes.iter().any(|&size| size > 1),
            "requests waiting together were written together: batches of {sizes:?}"
        );
    }

    #[tokio::test]
    async fn what_was_written_for_a_caller_that_hung_up_is_undone() {
        let doubler = Arc::new(Doubler::default());
        let batches = GroupCommit::start(SharedDoubler(doubler.clone()));
        let hung_up = tokio::spawn({
            let batches = batches.clone();
            async move { batches.write(21).await }
        });
        // The caller goes away while its batch is being written.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        hung_up.abort();
        assert_eq!(batches.write(1).await.unwrap(), 2, "the writer goes on");
        assert_eq!(*doubler.unclaimed.lock().unwrap(), [42]);
    }

    struct SharedDoubler(Arc<Doubler>);

    impl BatchWrite for SharedDoubler {
        type Request = u32;
        type Answer = u32;
        fn write(&self, requests: &[u32]) -> impl Future<Output = anyhow::Result<Vec<u32>>> + Send {
            self.0.write(requests)
        }
        async fn unclaimed(&self, answer: u32) {
            self.0.unclaimed.lock().unwrap().push(answer);
        }
    }
}
