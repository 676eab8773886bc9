//! Where blob bytes live. One interface; a local directory is the default
//! and an S3-compatible bucket (`s3.rs`) serves several controllers.
//!
//! The store knows keys, not hashes. The database maps a blob's SHA-256 to
//! the key its bytes were written under ([`new_key`]: the hash plus a random
//! suffix, unique per upload). Writing every upload under a fresh key is what
//! makes garbage collection safe while uploads run: a sweep deletes only the
//! key recorded in the row it removed, so it can never delete bytes that a
//! concurrent upload of the same content has just written under its own key.

use crate::secrets::random_hex;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sha2::{Digest, Sha256};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// A blob's bytes, as they come from the store.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Content-addressed storage, by key (see the module doc).
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Moves a received, already verified file into the store under `key`.
    /// The file may be gone afterwards.
    async fn put_file(&self, key: &str, file: &Path) -> std::io::Result<()>;

    /// Stores `bytes` under `key`.
    async fn put_bytes(&self, key: &str, bytes: Bytes) -> std::io::Result<()>;

    /// Stores a received blob's `bytes` under `key`, durable once
    /// [`BlobStore::make_durable`] returns rather than when this does: the
    /// way most of a deploy's files arrive (they are small).
    async fn put_received(&self, key: &str, bytes: Bytes) -> std::io::Result<()> {
        self.put_bytes(key, bytes).await
    }

    /// [`BlobStore::put_received`] for the blobs of a bundle, `(key,
    /// bytes)` each. On an error some may be stored and others not; those
    /// stored are never recorded, and the sweep of unrecorded keys removes
    /// them.
    async fn put_received_many(&self, blobs: Vec<(String, Bytes)>) -> std::io::Result<()> {
        use futures_util::{StreamExt, TryStreamExt};
        futures_util::stream::iter(blobs)
            .map(|(key, bytes)| async move { self.put_received(&key, bytes).await })
            .buffer_unordered(8)
            .try_collect()
            .await
    }

    /// The blob's bytes, or the bytes in `range` (which the caller has
    /// checked against the blob's size); `None` if nothing is stored there.
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> std::io::Result<Option<ByteStream>>;

    /// Deletes `key`; deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> std::io::Result<()>;

    /// Every key last written before `cutoff`: candidates for the sweep of
    /// objects no database row names (an upload that crashed between
    /// writing and recording).
    async fn keys_older_than(&self, cutoff: SystemTime) -> std::io::Result<Vec<String>>;

    /// Where and what the store is, for logs and startup messages.
    fn describe(&self) -> String;

    /// Whether the store takes writes now (local directory) or answers
    /// (bucket), for readiness checks; the error says what failed.
    async fn check_reachable(&self) -> std::io::Result<()>;

    /// Makes every blob stored so far survive a power loss, and notes when
    /// (see [`Durability`]). A deploy calls it once before it goes ready:
    /// the local directory does not sync each blob as it arrives, since one
    /// `fsync` per file took most of a many-file deploy's time. A bucket's
    /// writes are durable when they return, and it does nothing.
    async fn make_durable(&self) -> std::io::Result<()> {
        Ok(())
    }

    /// Which stored blobs a power loss may have torn.
    async fn durability(&self) -> std::io::Result<Durability> {
        Ok(Durability::Everything)
    }

    /// The whole blob in memory (rule files, compression, the edge's cache).
    async fn read(&self, key: &str) -> std::io::Result<Option<Bytes>> {
        let Some(mut stream) = self.get(key, None).await? else {
            return Ok(None);
        };
        let mut buffer = bytes::BytesMut::new();
        while let Some(chunk) = stream.next().await {
            buffer.extend_from_slice(&chunk?);
        }
        Ok(Some(buffer.freeze()))
    }
}

/// Which of a store's blobs are known to be whole on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every blob: each write was durable when it returned, or the store
    /// predates blobs written without a sync of their own.
    Everything,
    /// Blobs recorded before this time (unix milliseconds): a blob recorded
    /// at or after it may have lost bytes to a power loss, and is checked
    /// against its hash before it is trusted again.
    RecordedBefore(i64),
}

/// The file in a local store's root that holds the time the last completed
/// [`BlobStore::make_durable`] started, in unix milliseconds.
const DURABLE_BEFORE_FILE: &str = ".durable-before";

/// Writes `bytes` to `path` through a unique temporary name in the same
/// folder (made if missing), then renames: a reader sees no file or the
/// whole file. When `synced`, the bytes are on disk before the rename.
fn write_through_temp(path: &Path, bytes: &[u8], synced: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(".{}.tmp", random_hex(8)));
    let mut file = match std::fs::File::create_new(&temp) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            std::fs::File::create_new(&temp)?
        }
        other => other?,
    };
    let written = std::io::Write::write_all(&mut file, bytes)
        .and_then(|()| if synced { file.sync_all() } else { Ok(()) })
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A fresh key for new bytes of the blob `sha256`: `<sha256>.<8 hex>`.
pub fn new_key(sha256: &str) -> String {
    format!("{sha256}.{}", random_hex(4))
}

/// Whether `key` is one this program makes: a lowercase hex SHA-256,
/// optionally followed by `.` and lowercase hex. Nothing else is ever
/// turned into a path or an object name.
pub fn is_valid_key(key: &str) -> bool {
    let (hash, suffix) = key.split_once('.').unwrap_or((key, ""));
    super::is_sha256_hex(hash) && suffix.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn invalid_key(key: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("`{key}` is not a blob key"),
    )
}

/// Blobs as files under `<root>/<first two hex>/<key>`. A received blob is
/// renamed into place without a sync of its own; [`BlobStore::make_durable`]
/// syncs the whole filesystem once per deploy.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
    /// One sync at a time: two would flush the same pages, and the later
    /// one's time must not be overwritten by the earlier one's.
    syncing: std::sync::Arc<std::sync::Mutex<Syncs>>,
}

/// The syncs a local store has made.
#[derive(Debug, Default)]
struct Syncs {
    /// When the last completed sync started.
    last_started: Option<std::time::Instant>,
    /// How many there were.
    count: u64,
}

impl LocalBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBlobStore {
            root: root.into(),
            syncing: Default::default(),
        }
    }

    fn path_of(&self, key: &str) -> std::io::Result<PathBuf> {
        if !is_valid_key(key) {
            return Err(invalid_key(key));
        }
        Ok(self.root.join(&key[..2]).join(key))
    }

    /// [`write_through_temp`] in one trip to the blocking pool:
    /// a reader sees no blob or the whole blob.
    async fn write_atomically(path: PathBuf, bytes: Bytes, synced: bool) -> std::io::Result<()> {
        tokio::task::spawn_blocking(move || write_through_temp(&path, &bytes, synced))
            .await
            .map_err(std::io::Error::other)?
    }
}

#[async_trait::async_trait]
impl BlobStore for LocalBlobStore {
    async fn put_file(&self, key: &str, file: &Path) -> std::io::Result<()> {
        let path = self.path_of(key)?;
        tokio::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).await?;
        match tokio::fs::rename(file, &path).await {
            Ok(()) => Ok(()),
            // Staging on another filesystem: copy instead, still atomically.
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                let bytes = tokio::fs::read(file).await?;
                Self::write_atomically(path, Bytes::from(bytes), true).await
            }
            Err(e) => Err(e),
        }
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes) -> std::io::Result<()> {
        Self::write_atomically(self.path_of(key)?, bytes, true).await
    }

    async fn put_received(&self, key: &str, bytes: Bytes) -> std::io::Result<()> {
        // Unsynced, and the temporary file in the blob's own folder: a
        // deploy's many small files then neither queue for one staging
        // folder's lock nor wait for the disk one by one.
        Self::write_atomically(self.path_of(key)?, bytes, false).await
    }

    async fn put_received_many(&self, blobs: Vec<(String, Bytes)>) -> std::io::Result<()> {
        // One trip to the blocking pool for all of them.
        let paths = blobs
            .into_iter()
            .map(|(key, bytes)| Ok((self.path_of(&key)?, bytes)))
            .collect::<std::io::Result<Vec<_>>>()?;
        tokio::task::spawn_blocking(move || {
            paths
                .iter()
                .try_for_each(|(path, bytes)| write_through_temp(path, bytes, false))
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// One trip to the blocking pool and a buffer of the file's own size:
    /// the edge reads every small file it has not cached this way, and the
    /// stream below takes three trips and a 256 KiB buffer for a 3 KB page.
    async fn read(&self, key: &str) -> std::io::Result<Option<Bytes>> {
        let path = self.path_of(key)?;
        let read = tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(std::io::Error::other)?;
        match read {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> std::io::Result<Option<ByteStream>> {
        let mut file = match tokio::fs::File::open(self.path_of(key)?).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        const CHUNK: usize = 256 * 1024;
        let stream = match range {
            None => tokio_util::io::ReaderStream::with_capacity(file, CHUNK).boxed(),
            Some(range) => {
                file.seek(std::io::SeekFrom::Start(range.start)).await?;
                let limited = file.take(range.end.saturating_sub(range.start));
                tokio_util::io::ReaderStream::with_capacity(limited, CHUNK).boxed()
            }
        };
        Ok(Some(stream))
    }

    async fn delete(&self, key: &str) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.path_of(key)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    async fn keys_older_than(&self, cutoff: SystemTime) -> std::io::Result<Vec<String>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            let Ok(dirs) = std::fs::read_dir(&root) else {
                return Ok(keys);
            };
            for dir in dirs {
                let dir = dir?;
                if !dir.file_type()?.is_dir() {
                    continue;
                }
                for entry in std::fs::read_dir(dir.path())? {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let metadata = entry.metadata()?;
                    let old = metadata.modified().is_ok_and(|modified| modified < cutoff);
                    if metadata.is_file() && old && is_valid_key(&name) {
                        keys.push(name);
                    } else if metadata.is_file() && old && name.ends_with(".tmp") {
                        // A write that crashed before its rename.
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
            Ok(keys)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }

    async fn make_durable(&self) -> std::io::Result<()> {
        let (root, syncing) = (self.root.clone(), self.syncing.clone());
        let asked = std::time::Instant::now();
        tokio::task::spawn_blocking(move || {
            let mut syncs = syncing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // Deploys finishing together share one sync: a sync that
            // started after this call flushed everything written before it.
            if syncs.last_started.is_some_and(|started| started >= asked) {
                return Ok(());
            }
            std::fs::create_dir_all(&root)?;
            let (started, started_millis) = (std::time::Instant::now(), crate::db::now_millis());
            // Every blob written before `started` is on disk once this
            // returns: one call, whatever the number of files.
            rustix::fs::syncfs(std::fs::File::open(&root)?)?;
            write_through_temp(
                &root.join(DURABLE_BEFORE_FILE),
                started_millis.to_string().as_bytes(),
                true,
            )?;
            syncs.last_started = Some(started);
            syncs.count += 1;
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    async fn durability(&self) -> std::io::Result<Durability> {
        match tokio::fs::read_to_string(self.root.join(DURABLE_BEFORE_FILE)).await {
            // A store from before blobs were written without a sync each.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Durability::Everything),
            Err(e) => Err(e),
            // Unreadable: nothing is known to be durable.
            Ok(text) => Ok(Durability::RecordedBefore(text.trim().parse().unwrap_or(0))),
        }
    }

    async fn check_reachable(&self) -> std::io::Result<()> {
        tokio::fs::create_dir_all(&self.root).await?;
        // A write that crashes leaves a `.tmp` file, which the sweep removes.
        let probe = self.root.join(format!(".ready-{}.tmp", random_hex(8)));
        tokio::fs::write(&probe, b"").await?;
        tokio::fs::remove_file(&probe).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(store: &dyn BlobStore, key: &str, range: Option<Range<u64>>) -> Vec<u8> {
        let mut stream = store.get(key, range).await.unwrap().expect("stored");
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_stored_blob_reads_back_whole_and_by_range() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(dir.path().join("blobs"));
        let key = new_key(&sha256_hex(b"hello world"));
        store
            .put_bytes(&key, Bytes::from_static(b"hello world"))
            .await
            .unwrap();
        assert_eq!(read_all(&store, &key, None).await, b"hello world");
        assert_eq!(read_all(&store, &key, Some(6..11)).await, b"world");
        assert_eq!(&store.read(&key).await.unwrap().unwrap()[..], b"hello world");
        store.delete(&key).await.unwrap();
        store.delete(&key).await.unwrap();
        assert!(store.get(&key, None).await.unwrap().is_none());
        assert!(store.read(&key).await.unwrap().is_none());
        assert!(store.read("../../etc/passwd").await.is_err(), "not a key");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deploys_finishing_while_a_sync_runs_share_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(dir.path().join("blobs"));
        store.make_durable().await.unwrap();
        // Four deploys ask while a sync runs (the lock held here).
        let (waiting, count_before) = {
            let held = store.syncing.lock().unwrap();
            let waiting: Vec<_> = (0..4)
                .map(|_| {
                    let store = store.clone();
                    tokio::spawn(async move { store.make_durable().await })
                })
                .collect();
            // Not an `.await`: the lock is held, and the deploys run on the
            // runtime's other threads meanwhile.
            std::thread::sleep(std::time::Duration::from_millis(100));
            (waiting, held.count)
        };
        for deploy in waiting {
            deploy.await.unwrap().unwrap();
        }
        let syncs = store.syncing.lock().unwrap().count;
        assert_eq!(
            syncs,
            count_before + 1,
            "the first to get the lock syncs for all four"
        );
        // One that asks after that sync started gets a sync of its own.
        store.make_durable().await.unwrap();
        assert_eq!(store.syncing.lock().unwrap().count, syncs + 1);
    }

    #[tokio::test]
    async fn a_received_blob_is_stored_whole_in_a_folder_made_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(dir.path().join("blobs"));
        let key = new_key(&sha256_hex(b"small page"));
        store
            .put_received(&key, Bytes::from_static(b"small page"))
            .await
            .unwrap();
        assert_eq!(read_all(&store, &key, None).await, b"small page");
        let shard = dir.path().join("blobs").join(&key[..2]);
        let names: Vec<_> = std::fs::read_dir(&shard)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![key.clone()], "no temporary file is left");
    }

    #[tokio::test]
    async fn a_local_store_says_since_when_its_blobs_may_be_torn() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(dir.path().join("blobs"));
        // A store written by a controller that synced every blob.
        assert_eq!(store.durability().await.unwrap(), Durability::Everything);

        let before = crate::db::now_millis();
        store.make_durable().await.unwrap();
        let Durability::RecordedBefore(synced) = store.durability().await.unwrap() else {
            panic!("a synced store names the time of its sync");
        };
        assert!(
            synced >= before && synced <= crate::db::now_millis(),
            "{before} {synced}"
        );
        store.make_durable().await.unwrap();
        let Durability::RecordedBefore(again) = store.durability().await.unwrap() else {
            panic!("synced again");
        };
        assert!(again >= synced, "{synced} {again}");
        // The marker is no blob: the sweep never lists it.
        let all = store
            .keys_older_than(SystemTime::now() + std::time::Duration::from_secs(5))
            .await
            .unwrap();
        assert!(all.is_empty(), "{all:?}");

        // A marker cut short by a crash trusts nothing.
        std::fs::write(dir.path().join("blobs").join(DURABLE_BEFORE_FILE), b"").unwrap();
        assert_eq!(store.durability().await.unwrap(), Durability::RecordedBefore(0));
    }

    #[tokio::test]
    async fn a_received_file_moves_into_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(dir.path().join("blobs"));
        let staged = dir.path().join("upload");
        std::fs::write(&staged, b"content").unwrap();
        let key = new_key(&sha256_hex(b"content"));
        store.put_file(&key, &staged).await.unwrap();
        assert_eq!(read_all(&store, &key, None).await, b"content");
        let all = store
            .keys_older_than(SystemTime::now() + std::time::Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(all, vec![key]);
    }

    #[test]
    fn only_keys_this_program_makes_become_paths() {
        let hash = sha256_hex(b"x");
        assert!(is_valid_key(&hash));
        assert!(is_valid_key(&new_key(&hash)));
        for bad in [
            "../etc/passwd",
            "",
            &format!("{hash}/x"),
            &format!("{hash}.ZZ"),
            "ab",
        ] {
            assert!(!is_valid_key(bad), "{bad}");
            let store = LocalBlobStore::new("/nonexistent");
            assert!(store.path_of(bad).is_err());
        }
    }
}
