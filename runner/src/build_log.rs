//! A build's log on its way to the controller.
//!
//! Writers hand chunks to a [`BuildLog`]; one shipper task turns them into
//! stored lines ([`LogFormatter`]: time stamps, streams, masked secrets,
//! caps), batches them (up to [`BATCH_BYTES`] or [`FLUSH_EVERY`]) and appends
//! each batch at the byte offset the controller last confirmed. A batch
//! whose answer was lost is not written twice: the controller's stored
//! length says how much of it already landed.

use crate::client::{ClientError, ControllerClient};
use crate::log_format::{LogFormatter, LogLimits, Stream};
use crate::masking::Masker;
use bytes::{Bytes, BytesMut};
use jamstack_proto::JobLease;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub const BATCH_BYTES: usize = 256 * 1024;
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// A chunk of output, stamped when it came.
#[derive(Debug, Clone)]
pub struct LogItem {
    pub stream: Stream,
    pub at: SystemTime,
    pub bytes: Bytes,
}

impl LogItem {
    pub fn now(stream: Stream, bytes: Bytes) -> Self {
        LogItem {
            stream,
            at: SystemTime::now(),
            bytes,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BuildLog {
    tx: mpsc::Sender<LogItem>,
}

#[derive(Debug)]
pub struct Shipper {
    task: JoinHandle<u64>,
}

impl BuildLog {
    /// Starts the shipper. Every value `masker` knows is masked before the
    /// log leaves the runner.
    pub fn start(
        client: ControllerClient,
        lease: JobLease,
        masker: Arc<Masker>,
        limits: LogLimits,
    ) -> (BuildLog, Shipper) {
        // A bounded queue: a build that prints faster than the controller
        // takes its log waits, and the runner's memory stays bounded.
        let (tx, rx) = mpsc::channel(64);
        let formatter = LogFormatter::new(masker, limits);
        let task = tokio::spawn(ship(client, lease, rx, formatter));
        (BuildLog { tx }, Shipper { task })
    }

    pub async fn write(&self, stream: Stream, bytes: Bytes) {
        // The receiver only goes away once the lease is lost, when the log
        // has nowhere to go anyway.
        let _ = self.tx.send(LogItem::now(stream, bytes)).await;
    }

    /// A channel into the log, for the container's output.
    pub fn sender(&self) -> &mpsc::Sender<LogItem> {
        &self.tx
    }

    /// A line from the runner itself, set apart from the build's output.
    pub async fn say(&self, line: &str) {
        self.write(Stream::Sys, Bytes::from(format!("\x1b[1;36m==>\x1b[0m {line}\n")))
            .await;
    }
}

impl Shipper {
    /// Waits until everything written has been shipped; returns the log's
    /// length. Every `BuildLog` clone must be dropped first.
    pub async fn finish(self) -> u64 {
        self.task.await.unwrap_or(0)
    }
}

async fn ship(
    client: ControllerClient,
    lease: JobLease,
    mut rx: mpsc::Receiver<LogItem>,
    mut formatter: LogFormatter,
) -> u64 {
    let mut offset = 0u64;
    let mut batch = BytesMut::new();
    let mut open = true;
    while open {
        let deadline = tokio::time::sleep(FLUSH_EVERY);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some(item) => {
                        formatter.push(item.stream, &item.bytes, item.at, &mut batch);
                        if batch.len() >= BATCH_BYTES {
                            break;
                        }
                    }
                    None => {
                        formatter.finish(SystemTime::now(), &mut batch);
                        open = false;
                        break;
                    }
                },
                () = &mut deadline => {
                    formatter.flush_waiting(&mut batch);
                    break;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let data = batch.split().freeze();
        match send(&client, &lease, offset, data).await {
            Ok(stored) => offset = stored,
            Err(ClientError::StaleLease) => return offset,
            Err(e) => {
                tracing::error!(job = lease.job_id, error = %e, "shipping the build log failed; dropping a batch");
            }
        }
    }
    offset
}

/// Appends `data` at `offset`, resending only what the controller lacks.
async fn send(
    client: &ControllerClient,
    lease: &JobLease,
    offset: u64,
    mut data: Bytes,
) -> Result<u64, ClientError> {
    let mut offset = offset;
    loop {
        let end = offset + data.len() as u64;
        let stored = client.append_log(lease, offset, data.clone()).await?;
        if stored >= end {
            return Ok(stored);
        }
        if stored > offset {
            // Part of the batch landed before an answer was lost.
            data = data.slice((stored - offset) as usize..);
            offset = stored;
        } else if stored < offset {
            // The controller holds less than we thought: continue from its end.
            offset = stored;
        }
    }
}
