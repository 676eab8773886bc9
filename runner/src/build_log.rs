//! A build's log on its way to the controller.
//!
//! Writers hand chunks to a [`BuildLog`]. A spooler task turns them into
//! stored lines ([`LogFormatter`]: time stamps, streams, masked secrets,
//! caps) and appends them to a spool file in the runner's work directory,
//! one per job attempt, every [`FLUSH_EVERY`] or [`BATCH_BYTES`]. A sender
//! task reads the spool from the byte offset the controller last confirmed
//! and appends up to [`BATCH_BYTES`] at a time. A batch whose answer was
//! lost is not written twice: the controller's stored length says how much
//! of it already landed, and the rest is read from the spool again.
//!
//! So the build never waits for the controller: while the controller is
//! unreachable the log piles up on disk (already masked and capped), and
//! the sender catches up from its offset when the controller returns. No
//! batch is dropped; the spool file is removed once all of it is stored (or
//! the lease is lost, when it has nowhere to go).

use crate::client::{ClientError, ControllerClient};
use crate::log_format::{LogFormatter, LogLimits, Stream};
use crate::masking::Masker;
use bytes::{Bytes, BytesMut};
use jamstack_proto::JobLease;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub const BATCH_BYTES: usize = 256 * 1024;
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Spool files in the work directory start with this.
pub const SPOOL_FILE_PREFIX: &str = "jamstack-log-";

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
    spooler: JoinHandle<()>,
    sender: JoinHandle<u64>,
    spool: PathBuf,
}

/// How far the spool file is written, and whether it is complete.
#[derive(Debug, Clone, Copy, Default)]
struct Spooled {
    length: u64,
    complete: bool,
}

impl BuildLog {
    /// Starts the shipper, spooling into a file of `spool_dir`. Every value
    /// `masker` knows is masked before the log is written or sent.
    pub fn start(
        client: ControllerClient,
        lease: JobLease,
        masker: Arc<Masker>,
        limits: LogLimits,
        spool_dir: &Path,
    ) -> (BuildLog, Shipper) {
        // A bounded queue: the runner's memory stays bounded; a build that
        // prints faster than the disk takes its log waits.
        let (tx, rx) = mpsc::channel(64);
        let formatter = LogFormatter::new(masker, limits);
        let spool = spool_dir.join(spool_file_name(&lease));
        let (spooled_tx, spooled_rx) = watch::channel(Spooled::default());
        let spooler = tokio::spawn(write_spool(spool.clone(), rx, formatter, spooled_tx));
        let sender = tokio::spawn(send_spool(client, lease, spool.clone(), spooled_rx));
        (
            BuildLog { tx },
            Shipper {
                spooler,
                sender,
                spool,
            },
        )
    }

    pub async fn write(&self, stream: Stream, bytes: Bytes) {
        // The receiver only goes away if the spooler died, when the log
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
    /// Waits until everything written is stored by the controller (or the
    /// lease is lost, or the runner shuts down while the controller is
    /// away), then removes the spool file; returns the stored length.
    /// Every `BuildLog` clone must be dropped first.
    pub async fn finish(self) -> u64 {
        let _ = self.spooler.await;
        let stored = self.sender.await.unwrap_or(0);
        if let Err(e) = tokio::fs::remove_file(&self.spool).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(spool = %self.spool.display(), error = %e, "removing the log spool failed");
        }
        stored
    }
}

/// One file per job attempt; the lease id tells apart jobs of different
/// controllers with the same id.
fn spool_file_name(lease: &JobLease) -> String {
    let lease_part: String = lease
        .lease_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    format!(
        "{SPOOL_FILE_PREFIX}{}-{}-{lease_part}.spool",
        lease.job_id, lease.attempt
    )
}

/// Formats (and so masks) what the build prints and appends it to the
/// spool. It never waits for the controller.
async fn write_spool(
    path: PathBuf,
    mut rx: mpsc::Receiver<LogItem>,
    mut formatter: LogFormatter,
    spooled: watch::Sender<Spooled>,
) {
    let mut file = match tokio::fs::File::create(&path).await {
        Ok(file) => Some(file),
        Err(e) => {
            tracing::error!(spool = %path.display(), error = %e, "creating the log spool failed; the log is lost");
            None
        }
    };
    let mut length = 0u64;
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
        let data = batch.split();
        let Some(writing) = file.as_mut() else {
            continue;
        };
        let written = async {
            writing.write_all(&data).await?;
            writing.flush().await
        };
        match written.await {
            Ok(()) => {
                length += data.len() as u64;
                spooled.send_replace(Spooled {
                    length,
                    complete: false,
                });
            }
            Err(e) => {
                // A full disk, say: what is spooled still goes out; the
                // rest cannot be kept.
                tracing::error!(spool = %path.display(), error = %e, "writing the log spool failed; the rest of the log is lost");
                file = None;
            }
        }
    }
    spooled.send_replace(Spooled {
        length,
        complete: true,
    });
}

/// Sends the spool from the controller's stored length on, until the spool
/// is complete and all of it is stored.
async fn send_spool(
    client: ControllerClient,
    lease: JobLease,
    path: PathBuf,
    mut spooled: watch::Receiver<Spooled>,
) -> u64 {
    let mut offset = 0u64;
    let mut file: Option<tokio::fs::File> = None;
    let mut buffer = vec![0u8; BATCH_BYTES];
    loop {
        let now = *spooled.borrow_and_update();
        if offset >= now.length {
            if now.complete {
                return offset;
            }
            if spooled.changed().await.is_err() && offset >= spooled.borrow().length {
                // The spooler ended without saying so (it panicked).
                return offset;
            }
            continue;
        }
        let take = (now.length - offset).min(BATCH_BYTES as u64) as usize;
        if let Err(e) = read_at(&mut file, &path, offset, &mut buffer[..take]).await {
            tracing::error!(spool = %path.display(), error = %e, "reading the log spool failed; the rest of the log is lost");
            return offset;
        }
        let data = Bytes::copy_from_slice(&buffer[..take]);
        match client.append_log(&lease, offset, data).await {
            // All of it landed; or part of it before an answer was lost, or
            // the controller holds less than we thought: either way the
            // next batch starts at the controller's end, read from the spool.
            Ok(stored) if stored != offset => offset = stored,
            Ok(_) => {
                // Nothing landed and no reason given: do not spin.
                tokio::time::sleep(FLUSH_EVERY).await;
            }
            Err(ClientError::StaleLease) => return offset,
            Err(e) => {
                // The job's client retries until the controller answers, so
                // only a runner shutting down (or a refusal no retry mends)
                // gets here; the job goes back to the queue.
                tracing::error!(job = lease.job_id, error = %e, "shipping the build log failed; the rest stays unsent");
                return offset;
            }
        }
    }
}

/// Reads `into.len()` bytes of the spool at `offset`.
async fn read_at(
    file: &mut Option<tokio::fs::File>,
    path: &Path,
    offset: u64,
    into: &mut [u8],
) -> std::io::Result<()> {
    let reading = match file {
        Some(file) => file,
        None => file.insert(tokio::fs::File::open(path).await?),
    };
    reading.seek(SeekFrom::Start(offset)).await?;
    reading.read_exact(into).await.map(|_| ())
}
