//! The hashes of a folder's files as they were at its last deploy, so
//! deploying the same folder again reads only the files that changed: the
//! quick check of rsync and git's index, made stricter.
//!
//! A file's hash is reused only when its size, modification time, change
//! time, device and inode are all what they were when it was hashed. Any
//! write changes the change time (which no program can set back), and a file
//! replaced by another has another inode or change time, so a file whose
//! content changed is always read again, even when its size and modification
//! time were kept. One race remains, the one git calls "racily clean": a
//! file written again within the timestamp granularity of the write we saw
//! keeps its stamp. So a hash is kept only for a file that had not changed
//! for [`SETTLE`] before its stamp was read; a file written just before a
//! deploy is hashed again at the next one. (A file server whose clock lags
//! ours by more than that can defeat this, as it defeats rsync and git.)
//!
//! The cache is a JSON file the caller names (`jamstack deploy` keeps one per
//! folder in the user's cache directory); a missing, unreadable or foreign
//! one is an empty cache, and one that cannot be written is skipped: the
//! cache only ever saves work.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long a file must have been unchanged before its hash is kept: more
/// than any filesystem's timestamp granularity (FAT's is 2 s).
pub const SETTLE: Duration = Duration::from_secs(3);

const VERSION: u32 = 1;

/// Saves started by [`HashCache::save_in_background`] and not yet ended,
/// and the signal that one ended.
static SAVES_IN_FLIGHT: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// The cache file of the folder `root` (canonical) in `dir`: named by the
/// SHA-256 of the folder's path, one per folder.
pub fn file_for(dir: &Path, root: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let name = hex::encode(Sha256::digest(root.as_os_str().as_encoded_bytes()));
    dir.join(format!("{name}.json"))
}

/// What identifies one state of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    size: u64,
    /// Seconds and nanoseconds since the epoch.
    mtime: (i64, i64),
    ctime: (i64, i64),
    dev: u64,
    ino: u64,
}

impl Stamp {
    /// The stamp of a file's metadata; `None` where the platform has no
    /// change time or inode (nothing is cached there).
    #[cfg(unix)]
    pub fn of(metadata: &Metadata) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        Some(Stamp {
            size: metadata.len(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            ctime: (metadata.ctime(), metadata.ctime_nsec()),
            dev: metadata.dev(),
            ino: metadata.ino(),
        })
    }

    #[cfg(not(unix))]
    pub fn of(_metadata: &Metadata) -> Option<Stamp> {
        None
    }

    /// Whether the file had been left alone for `settle` at `seen`, a time
    /// taken before the stamp was read: only then does any later write
    /// give it another stamp.
    fn settled(&self, seen: SystemTime, settle: Duration) -> bool {
        let Some(limit) = seen
            .checked_sub(settle)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        else {
            return false;
        };
        let limit = (limit.as_secs() as i64, i64::from(limit.subsec_nanos()));
        self.mtime < limit && self.ctime < limit
    }
}

/// One file as saved: path, hash, size, mtime (s, ns), ctime (s, ns),
/// device, inode. A tuple keeps the file small for large sites.
type Entry = (String, String, u64, i64, i64, i64, i64, u64, u64);

fn entry(path: &str, stamp: &Stamp, sha256: &str) -> Entry {
    (
        path.to_owned(),
        sha256.to_owned(),
        stamp.size,
        stamp.mtime.0,
        stamp.mtime.1,
        stamp.ctime.0,
        stamp.ctime.1,
        stamp.dev,
        stamp.ino,
    )
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    /// The folder, canonical: a cache names the files of one folder only.
    root: PathBuf,
    files: Vec<Entry>,
}

/// The known hashes of one folder's files, by path in the folder.
#[derive(Debug, Default)]
pub struct HashCache {
    root: PathBuf,
    known: HashMap<String, (Stamp, String)>,
    kept: Vec<Entry>,
}

impl HashCache {
    /// The cache of `root` (canonical) kept in `file`; empty when there is
    /// none, it cannot be read, or it is another folder's.
    pub fn load(file: &Path, root: &Path) -> HashCache {
        {
            let (count, ended) = &SAVES_IN_FLIGHT;
            let count = count.lock().unwrap_or_else(|p| p.into_inner());
            drop(
                ended
                    .wait_while(count, |count| *count > 0)
                    .unwrap_or_else(|p| p.into_inner()),
            );
        }
        let mut cache = HashCache {
            root: root.to_path_buf(),
            ..HashCache::default()
        };
        let Ok(text) = std::fs::read(file) else {
            return cache;
        };
        match serde_json::from_slice::<CacheFile>(&text) {
            Ok(saved) if saved.version == VERSION && saved.root == root => {
                cache.known = saved
                    .files
                    .into_iter()
                    .map(|(path, sha256, size, ms, mns, cs, cns, dev, ino)| {
                        let stamp = Stamp {
                            size,
                            mtime: (ms, mns),
                            ctime: (cs, cns),
                            dev,
                            ino,
                        };
                        (path, (stamp, sha256))
                    })
                    .collect();
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(file = %file.display(), %error, "ignoring an unreadable hash cache")
            }
        }
        cache
    }

    /// The hash of the file at `path` if it has the stamp it had when hashed.
    pub fn hash_of(&self, path: &str, stamp: &Stamp) -> Option<&str> {
        match self.known.get(path) {
            Some((known, sha256)) if known == stamp => Some(sha256),
            _ => None,
        }
    }

    /// Keeps the hash of the file at `path` for the next deploy, if its
    /// stamp is settled (see the module's documentation); `seen` is a time
    /// taken before `stamp` was read.
    pub fn keep(&mut self, path: &str, stamp: Stamp, sha256: &str, seen: SystemTime, settle: Duration) {
        if stamp.settled(seen, settle) {
            self.kept.push(entry(path, &stamp, sha256));
        }
    }

    /// [`HashCache::save`] on a thread of its own, so the caller goes on
    /// (sending the manifest) while the file is written. A load in this
    /// process waits for every such save to end first, so it never reads
    /// the cache from before.
    pub fn save_in_background(self, file: PathBuf) -> std::thread::JoinHandle<()> {
        let (count, _) = &SAVES_IN_FLIGHT;
        *count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        std::thread::spawn(move || {
            // Counted down even if saving panics.
            struct Done;
            impl Drop for Done {
                fn drop(&mut self) {
                    let (count, ended) = &SAVES_IN_FLIGHT;
                    *count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
                    ended.notify_all();
                }
            }
            let _done = Done;
            self.save(&file);
        })
    }

    /// Replaces `file` with what was kept since loading (the files of this
    /// deploy only), atomically; a failure leaves the old file or none.
    pub fn save(self, file: &Path) {
        let saved = CacheFile {
            version: VERSION,
            root: self.root,
            files: self.kept,
        };
        let written = (|| -> std::io::Result<()> {
            let dir = file.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let mut temporary = tempfile::NamedTempFile::new_in(dir)?;
            serde_json::to_writer(std::io::BufWriter::new(temporary.as_file_mut()), &saved)?;
            temporary.persist(file).map_err(|e| e.error)?;
            Ok(())
        })();
        if let Err(error) = written {
            tracing::debug!(file = %file.display(), %error, "the hash cache could not be saved");
        }
    }
}
