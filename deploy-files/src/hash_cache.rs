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

const VERSION: u32 = 2;

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

/// One file as saved: path, hash, size, mode, and its stamp when the hash
/// may be reused: mtime (s, ns), ctime (s, ns), device, inode. Every file
/// of the deploy is saved, so the cache also says what that deploy held.
/// Tuples keep the file small for large sites.
type Entry = (String, String, u64, u32, Option<(i64, i64, i64, i64, u64, u64)>);

fn entry(path: &str, sha256: &str, size: u64, mode: u32, stamp: Option<&Stamp>) -> Entry {
    (
        path.to_owned(),
        sha256.to_owned(),
        size,
        mode,
        stamp.map(|s| (s.mtime.0, s.mtime.1, s.ctime.0, s.ctime.1, s.dev, s.ino)),
    )
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    /// The folder, canonical: a cache names the files of one folder only.
    root: PathBuf,
    /// Which save this is: the deploy record names the save it belongs to.
    generation: u64,
    files: Vec<Entry>,
}

/// Which deploy the files of a saved cache became: written once that
/// deploy is finalized, beside the cache ([`deploy_record_for`]).
#[derive(Debug, Serialize, Deserialize)]
struct DeployRecord {
    generation: u64,
    deploy_id: String,
}

/// Where the deploy record of the cache `file` is kept.
fn deploy_record_for(file: &Path) -> PathBuf {
    file.with_extension("deploy.json")
}

/// One file of the last deploy, as the manifest sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentFile {
    pub sha256: String,
    pub size: u64,
    pub mode: u32,
}

/// The deploy the folder's last manifest became, and every file it sent:
/// what the next manifest can name only its changes against.
#[derive(Debug, Default)]
pub struct LastDeploy {
    pub deploy_id: String,
    pub files: HashMap<String, SentFile>,
}

/// The known hashes of one folder's files, by path in the folder.
#[derive(Debug, Default)]
pub struct HashCache {
    root: PathBuf,
    known: HashMap<String, (Stamp, String)>,
    last_deploy: Option<LastDeploy>,
    kept: Vec<Entry>,
    generation: u64,
}

/// A save's generation: random, so two saves of one folder never share one.
fn new_generation() -> u64 {
    use rand::Rng;
    rand::thread_rng().r#gen()
}

/// Where the deploy made of a saved cache's files is recorded once it is
/// finalized: the cache's file and the save's generation.
#[derive(Debug, Clone)]
pub struct SavedAs {
    file: PathBuf,
    generation: u64,
}

impl SavedAs {
    /// Records that the files of this save became `deploy_id`, a finalized
    /// deploy: the next manifest of the folder may then send only its
    /// changes against it. A failure only costs that saving.
    pub fn record_deploy(&self, deploy_id: &str) {
        let record = DeployRecord {
            generation: self.generation,
            deploy_id: deploy_id.to_owned(),
        };
        let file = deploy_record_for(&self.file);
        let written = (|| -> std::io::Result<()> {
            let dir = file.parent().unwrap_or(Path::new("."));
            let mut temporary = tempfile::NamedTempFile::new_in(dir)?;
            serde_json::to_writer(temporary.as_file_mut(), &record)?;
            temporary.persist(&file).map_err(|e| e.error)?;
            Ok(())
        })();
        if let Err(error) = written {
            tracing::debug!(file = %file.display(), %error, "the deploy record could not be saved");
        }
    }
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
            generation: new_generation(),
            ..HashCache::default()
        };
        let Ok(text) = std::fs::read(file) else {
            return cache;
        };
        let saved = match serde_json::from_slice::<CacheFile>(&text) {
            Ok(saved) if saved.version == VERSION && saved.root == root => saved,
            Ok(_) => return cache,
            Err(error) => {
                tracing::debug!(file = %file.display(), %error, "ignoring an unreadable hash cache");
                return cache;
            }
        };
        // The save's files are those of a deploy only if that deploy was
        // recorded for this very save.
        let deploy_id = std::fs::read(deploy_record_for(file))
            .ok()
            .and_then(|text| serde_json::from_slice::<DeployRecord>(&text).ok())
            .filter(|record| record.generation == saved.generation)
            .map(|record| record.deploy_id);
        let mut sent = HashMap::with_capacity(if deploy_id.is_some() { saved.files.len() } else { 0 });
        cache.known.reserve(saved.files.len());
        for (path, sha256, size, mode, stamp) in saved.files {
            if deploy_id.is_some() {
                let file = SentFile {
                    sha256: sha256.clone(),
                    size,
                    mode,
                };
                sent.insert(path.clone(), file);
            }
            if let Some((ms, mns, cs, cns, dev, ino)) = stamp {
                let stamp = Stamp {
                    size,
                    mtime: (ms, mns),
                    ctime: (cs, cns),
                    dev,
                    ino,
                };
                cache.known.insert(path, (stamp, sha256));
            }
        }
        cache.last_deploy = deploy_id.map(|deploy_id| LastDeploy {
            deploy_id,
            files: sent,
        });
        cache
    }

    /// The deploy the folder's last manifest became, with what it sent,
    /// when that deploy was recorded ([`SavedAs::record_deploy`]).
    pub fn take_last_deploy(&mut self) -> Option<LastDeploy> {
        self.last_deploy.take()
    }

    /// The hash of the file at `path` if it has the stamp it had when hashed.
    pub fn hash_of(&self, path: &str, stamp: &Stamp) -> Option<&str> {
        match self.known.get(path) {
            Some((known, sha256)) if known == stamp => Some(sha256),
            _ => None,
        }
    }

    /// Keeps the file at `path` as this deploy sent it, and its hash for
    /// the next deploy if its stamp is settled (see the module's
    /// documentation); `seen` is a time taken before `stamp` was read.
    pub fn keep(
        &mut self,
        path: &str,
        sent: &SentFile,
        stamp: Option<Stamp>,
        seen: SystemTime,
        settle: Duration,
    ) {
        let stamp = stamp.filter(|stamp| stamp.settled(seen, settle));
        self.kept
            .push(entry(path, &sent.sha256, sent.size, sent.mode, stamp.as_ref()));
    }

    /// [`HashCache::save`] on a thread of its own, so the caller goes on
    /// (sending the manifest) while the file is written. A load in this
    /// process waits for every such save to end first, so it never reads
    /// the cache from before.
    pub fn save_in_background(self, file: PathBuf) -> (SavedAs, std::thread::JoinHandle<()>) {
        let saved_as = SavedAs {
            file: file.clone(),
            generation: self.generation,
        };
        let (count, _) = &SAVES_IN_FLIGHT;
        *count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let saving = std::thread::spawn(move || {
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
        });
        (saved_as, saving)
    }

    /// Replaces `file` with what was kept since loading (the files of this
    /// deploy only), atomically; a failure leaves the old file or none.
    pub fn save(self, file: &Path) {
        let saved = CacheFile {
            version: VERSION,
            root: self.root,
            generation: self.generation,
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
