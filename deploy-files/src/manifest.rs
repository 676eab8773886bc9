//! The manifest of a folder: the path, SHA-256, size and mode of every
//! file, the first message of Netlify's digest flow.
//!
//! The folder is walked without leaving it: a symlink is resolved inside
//! the folder only ([`resolve_inside`]), and one leading out is refused,
//! never read through.

use crate::hash_cache::{self, HashCache, LastDeploy, SavedAs, SentFile, Stamp};
use crate::human_size;
use jamstack_proto::{
    DeployManifest, HeaderRule, MAX_RULE_FILE_BYTES, ManifestBase, ManifestFile, RedirectRule,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The rule files at the root of a publish directory.
const RULE_FILES: [&str; 2] = ["_redirects", "_headers"];

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "`{path}` in the publish directory is a symlink to `{target}`, outside the publish directory; \
         a deploy holds only files inside it. Copy the file in instead"
    )]
    SymlinkEscapes { path: String, target: String },
    #[error(
        "`{path}` in the publish directory is {size}, over the limit of {limit} for a rule file; \
         split its rules or move some into jamstack.toml"
    )]
    RuleFileTooLarge {
        path: String,
        size: String,
        limit: String,
    },
    #[error(
        "`{0}` in the publish directory is a folder, and a rule file must be a file; \
         put the rules in one file named `{0}` (or rename the folder)"
    )]
    RuleFileIsFolder(String),
    #[error("`{0}` in the publish directory has a name that is not UTF-8; rename it")]
    NonUtf8Name(String),
    #[error("the publish directory is empty; check that the build wrote its output to `publish`")]
    Empty,
    #[error("reading the publish directory: {0}")]
    Io(#[from] std::io::Error),
}

/// A manifest of `root` and, for each hash, a file holding that content.
#[derive(Debug, Default)]
pub struct Manifest {
    pub files: Vec<ManifestFile>,
    pub sources: HashMap<String, PathBuf>,
    /// The `[[redirects]]` and `[[headers]]` rules of `jamstack.toml`; the
    /// controller applies them after the publish directory's `_redirects`
    /// and `_headers` files.
    pub redirects: Vec<RedirectRule>,
    pub headers: Vec<HeaderRule>,
    /// How many files were read and hashed; the others' hashes came from
    /// the hash cache.
    pub hashed_files: usize,
    /// The deploy the folder's last manifest became, and what it sent
    /// (from the hash cache): what [`Manifest::changes`] are against.
    last_deploy: Option<LastDeploy>,
    /// The hash cache being written while the caller goes on (it sends the
    /// manifest next).
    saving_cache: Option<SavingCache>,
    /// Where the deploy these files become is recorded.
    saved_as: Option<SavedAs>,
}

impl Manifest {
    /// The manifest to send when the folder's last deploy is known: only
    /// the files added or changed since it and the paths it had that are
    /// gone ([`ManifestBase`]). A folder of 100,000 files of which 1,000
    /// changed sends 1,000. `None` when there is no such deploy (no hash
    /// cache, or the last manifest was never finalized); the controller
    /// may still refuse the base (412), and then [`Manifest::take_wire`]
    /// is sent instead.
    pub fn changes(&self) -> Option<DeployManifest> {
        let last = self.last_deploy.as_ref()?;
        let changed = self
            .files
            .iter()
            .filter(|file| {
                last.files.get(&file.path).is_none_or(|sent| {
                    sent.sha256 != file.sha256 || sent.size != file.size || sent.mode != file.mode
                })
            })
            .cloned()
            .collect();
        let now: std::collections::HashSet<&str> = self.files.iter().map(|f| f.path.as_str()).collect();
        let mut removed: Vec<String> = last
            .files
            .keys()
            .filter(|path| !now.contains(path.as_str()))
            .cloned()
            .collect();
        removed.sort_unstable();
        Some(DeployManifest {
            files: changed,
            redirects: self.redirects.clone(),
            headers: self.headers.clone(),
            base: Some(ManifestBase {
                deploy_id: last.deploy_id.clone(),
                removed,
            }),
        })
    }

    /// The whole manifest to send, every file: taken out of `self`, which
    /// keeps what finding the blobs to upload needs.
    pub fn take_wire(&mut self) -> DeployManifest {
        DeployManifest {
            files: std::mem::take(&mut self.files),
            redirects: std::mem::take(&mut self.redirects),
            headers: std::mem::take(&mut self.headers),
            base: None,
        }
    }

    /// Records, beside the hash cache, that this manifest became
    /// `deploy_id` and was finalized, so the folder's next deploy sends
    /// only its changes against it. Does nothing without a hash cache.
    pub fn record_deploy(&self, deploy_id: &str) {
        if let Some(saved_as) = &self.saved_as {
            saved_as.record_deploy(deploy_id);
        }
    }
}

/// A hash cache being written; dropping it waits for the write, so a
/// process that ends after a deploy does not end mid-write.
#[derive(Debug)]
struct SavingCache(Option<std::thread::JoinHandle<()>>);

impl Drop for SavingCache {
    fn drop(&mut self) {
        if let Some(saving) = self.0.take() {
            // A panic while saving lost only the cache, which only saves work.
            let _ = saving.join();
        }
    }
}

/// Walks `root`, hashing every regular file (on all cores: hashing a large
/// site is the slow part of a deploy). Symlinks are resolved inside `root`
/// only ([`resolve_inside`]); one leading out is refused, never read
/// through. The runner and the `jamstack deploy` command both build their
/// manifests here, so both refuse the same folders.
pub fn build_manifest(root: &Path) -> Result<Manifest, ManifestError> {
    build(root, None, hash_cache::SETTLE)
}

/// [`build_manifest`] for a folder deployed again and again (`jamstack
/// deploy`): a file unchanged since the last deploy is not read again, its
/// hash comes from `cache_file` (see [`crate::hash_cache`] for when a hash is
/// trusted), which is then replaced by this deploy's hashes. A build's
/// publish directory is new every time, so the runner has no use for it.
pub fn build_manifest_with_cache(root: &Path, cache_file: &Path) -> Result<Manifest, ManifestError> {
    build(root, Some(cache_file), hash_cache::SETTLE)
}

fn build(root: &Path, cache_file: Option<&Path>, settle: Duration) -> Result<Manifest, ManifestError> {
    // Taken before any file is looked at: see `HashCache::keep`.
    let seen = SystemTime::now();
    // The cache is read while the folder is walked: each takes a core.
    let (found, cache) = std::thread::scope(|scope| {
        let loading = cache_file.map(|file| {
            // Only to name the folder a hash cache belongs to (`jamstack deploy`).
            let root = root.canonicalize();
            scope.spawn(move || root.map(|root| HashCache::load(file, &root)))
        });
        let found = publish_files(root);
        let cache = loading
            .map(|loading| loading.join().expect("loading the hash cache panicked"))
            .transpose();
        (found, cache)
    });
    let found = found?;
    let mut cache = cache?;
    if found.is_empty() {
        return Err(ManifestError::Empty);
    }
    let known: Vec<Option<String>> = found
        .iter()
        .map(|file| {
            let (cache, stamp) = (cache.as_ref()?, file.stamp.as_ref()?);
            cache.hash_of(&file.path, stamp).map(str::to_owned)
        })
        .collect();
    let unknown: Vec<&FoundFile> = found
        .iter()
        .zip(&known)
        .filter_map(|(file, known)| known.is_none().then_some(file))
        .collect();
    let mut hashed = hash_in_parallel(&unknown)?.into_iter();
    let mut manifest = Manifest {
        hashed_files: unknown.len(),
        last_deploy: cache.as_mut().and_then(HashCache::take_last_deploy),
        ..Manifest::default()
    };
    for (file, known) in found.into_iter().zip(known) {
        let sha256 = match known {
            Some(sha256) => sha256,
            None => hashed.next().expect("a hash for every file read"),
        };
        if let Some(cache) = cache.as_mut() {
            let sent = SentFile {
                sha256: sha256.clone(),
                size: file.size,
                mode: file.mode,
            };
            cache.keep(&file.path, &sent, file.stamp, seen, settle);
        }
        manifest.files.push(ManifestFile {
            path: file.path,
            sha256: sha256.clone(),
            size: file.size,
            mode: file.mode,
        });
        manifest.sources.entry(sha256).or_insert(file.source);
    }
    if let (Some(cache), Some(file)) = (cache, cache_file) {
        let (saved_as, saving) = cache.save_in_background(file.to_path_buf());
        manifest.saving_cache = Some(SavingCache(Some(saving)));
        manifest.saved_as = Some(saved_as);
    }
    Ok(manifest)
}

/// A file of the publish directory, before hashing.
struct FoundFile {
    path: String,
    source: PathBuf,
    size: u64,
    mode: u32,
    stamp: Option<Stamp>,
}

/// Where the symlink at `relative` under `root` leads, resolved a component
/// at a time without leaving `root` (nothing is resolved in the host, so a
/// link is never followed out, not even to look): `None` when it or a link
/// on its way points outside (an absolute target, too many `..`), or
/// nowhere, or through more than 40 links.
fn resolve_inside(root: &Path, relative: &Path) -> Option<(PathBuf, std::fs::Metadata)> {
    use std::path::Component;
    let mut inside: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: std::collections::VecDeque<std::ffi::OsString> =
        relative.components().map(|c| c.as_os_str().to_owned()).collect();
    let mut hops = 0;
    while let Some(name) = pending.pop_front() {
        match Path::new(&name).components().next() {
            Some(Component::Normal(_)) => {}
            Some(Component::ParentDir) => {
                inside.pop()?;
                continue;
            }
            Some(Component::CurDir) | None => continue,
            Some(_) => return None,
        }
        inside.push(name);
        let here: PathBuf = root.join(inside.iter().collect::<PathBuf>());
        let metadata = here.symlink_metadata().ok()?;
        if metadata.file_type().is_symlink() {
            hops += 1;
            let target = std::fs::read_link(&here).ok()?;
            if hops > 40 || target.has_root() {
                return None;
            }
            inside.pop();
            for component in target.components().rev() {
                pending.push_front(component.as_os_str().to_owned());
            }
        } else if !pending.is_empty() && !metadata.is_dir() {
            return None;
        }
    }
    let resolved = root.join(inside.iter().collect::<PathBuf>());
    let metadata = resolved.symlink_metadata().ok()?;
    Some((resolved, metadata))
}

fn publish_files(root: &Path) -> Result<Vec<FoundFile>, ManifestError> {
    let listed = list_files(root)?;
    // Looking up each file's metadata is most of a walk's time once the
    // folder's entries are listed; it is spread over the cores.
    let metadata = in_parallel(&listed, |(_, source)| std::fs::metadata(source))?;
    let mut found = Vec::with_capacity(listed.len());
    for ((path, source), metadata) in listed.into_iter().zip(metadata) {
        // The edge reads these as rules; the runner refuses one it would be
        // unreasonable to parse rather than hand it on.
        if RULE_FILES.contains(&path.as_str()) && metadata.len() > MAX_RULE_FILE_BYTES {
            return Err(ManifestError::RuleFileTooLarge {
                path,
                size: human_size(metadata.len()),
                limit: human_size(MAX_RULE_FILE_BYTES),
            });
        }
        #[cfg(unix)]
        let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o777;
        #[cfg(not(unix))]
        let mode = 0o644;
        found.push(FoundFile {
            path,
            source,
            size: metadata.len(),
            mode,
            stamp: Stamp::of(&metadata),
        });
    }
    Ok(found)
}

/// Every file of the folder in walk order: its path in the deploy and the
/// file that holds it (a symlink's target inside the folder).
fn list_files(root: &Path) -> Result<Vec<(String, PathBuf)>, ManifestError> {
    let mut listed = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(std::io::Error::other)?;
        let relative = entry.path().strip_prefix(root).map_err(std::io::Error::other)?;
        let path = relative
            .to_str()
            .ok_or_else(|| ManifestError::NonUtf8Name(relative.to_string_lossy().into_owned()))?
            .replace(std::path::MAIN_SEPARATOR, "/");
        // Netlify fails a deploy whose rule file is a folder rather than
        // skip its rules without a word.
        if entry.depth() == 1
            && RULE_FILES.contains(&path.as_str())
            && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir())
        {
            return Err(ManifestError::RuleFileIsFolder(path));
        }
        let source = if entry.path_is_symlink() {
            match resolve_inside(root, relative) {
                Some((resolved, metadata)) if metadata.is_file() => resolved,
                // A link to a directory inside is walked where it really is.
                Some((_, metadata)) if metadata.is_dir() => continue,
                _ => {
                    let target = std::fs::read_link(entry.path())?;
                    return Err(ManifestError::SymlinkEscapes {
                        path,
                        target: target.to_string_lossy().into_owned(),
                    });
                }
            }
        } else if entry.file_type().is_file() {
            entry.into_path()
        } else {
            continue;
        };
        listed.push((path, source));
    }
    Ok(listed)
}

/// `work` of each item, in order, by one thread per core; the first error
/// in order wins.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> std::io::Result<R> + Sync,
) -> std::io::Result<Vec<R>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(1);
    let work = &work;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(work).collect::<std::io::Result<Vec<_>>>()))
            .collect();
        let mut results = Vec::with_capacity(items.len());
        for worker in workers {
            results.extend(worker.join().expect("a worker thread panicked")?);
        }
        Ok(results)
    })
}

/// The SHA-256 of each file, in order, hashed by one thread per core.
fn hash_in_parallel(files: &[&FoundFile]) -> std::io::Result<Vec<String>> {
    in_parallel(files, |file| hash_file(&file.source))
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_file_that_is_a_folder_is_refused() {
        for name in RULE_FILES {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("index.html"), "home").unwrap();
            std::fs::create_dir(dir.path().join(name)).unwrap();
            let error = build_manifest(dir.path()).unwrap_err();
            assert!(
                matches!(error, ManifestError::RuleFileIsFolder(ref path) if path == name),
                "{error}"
            );
            assert!(error.to_string().contains("is a folder"), "{error}");
        }
    }

    #[test]
    fn the_manifest_names_every_file_by_its_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("index.html"), "hi").unwrap();
        std::fs::write(dir.path().join("a/b/same.txt"), "hi").unwrap();
        let manifest = build_manifest(dir.path()).unwrap();
        let paths: Vec<_> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a/b/same.txt", "index.html"]);
        assert_eq!(manifest.files[0].sha256, manifest.files[1].sha256);
        assert_eq!(
            manifest.files[0].sha256,
            "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"
        );
        assert_eq!(
            manifest.sources.len(),
            1,
            "one blob for two files with the same content"
        );
    }

    #[test]
    fn a_large_publish_directory_is_hashed_on_every_core_and_listed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..300 {
            std::fs::write(dir.path().join(format!("page{i:03}.html")), format!("page {i}")).unwrap();
        }
        let manifest = build_manifest(dir.path()).unwrap();
        assert_eq!(manifest.files.len(), 300);
        for (i, file) in manifest.files.iter().enumerate() {
            assert_eq!(file.path, format!("page{i:03}.html"));
            assert_eq!(file.sha256, hex::encode(Sha256::digest(format!("page {i}"))));
            assert_eq!(file.size, format!("page {i}").len() as u64);
        }
        assert_eq!(manifest.sources.len(), 300);
    }

    /// A site of three files, written a while ago, and where its hash cache goes.
    fn settled_site() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        std::fs::create_dir_all(site.join("a")).unwrap();
        for (path, text) in [("index.html", "home"), ("a/b.html", "bbbb"), ("c.css", "cc")] {
            std::fs::write(site.join(path), text).unwrap();
        }
        std::thread::sleep(SHORT_SETTLE * 3);
        let cache = dir.path().join("hashes.json");
        (dir, site, cache)
    }

    /// Long enough for any local filesystem's timestamps to tick.
    const SHORT_SETTLE: Duration = Duration::from_millis(50);

    fn hashes(manifest: &Manifest) -> Vec<(String, String)> {
        manifest
            .files
            .iter()
            .map(|f| (f.path.clone(), f.sha256.clone()))
            .collect()
    }

    #[cfg(unix)]
    #[test]
    fn a_folder_deployed_again_reads_only_the_files_that_changed() {
        let (_dir, site, cache) = settled_site();
        let first = build(&site, Some(&cache), SHORT_SETTLE).unwrap();
        assert_eq!(first.hashed_files, 3);
        let again = build(&site, Some(&cache), SHORT_SETTLE).unwrap();
        assert_eq!(again.hashed_files, 0, "nothing changed, nothing is read");
        assert_eq!(hashes(&again), hashes(&build_manifest(&site).unwrap()));
        assert_eq!(again.sources.len(), 3, "every file can still be uploaded");

        std::fs::write(site.join("c.css"), "a longer stylesheet").unwrap();
        std::fs::write(site.join("new.txt"), "new").unwrap();
        std::fs::remove_file(site.join("index.html")).unwrap();
        std::thread::sleep(SHORT_SETTLE * 3);
        let changed = build(&site, Some(&cache), SHORT_SETTLE).unwrap();
        assert_eq!(changed.hashed_files, 2, "c.css and new.txt");
        assert_eq!(hashes(&changed), hashes(&build_manifest(&site).unwrap()));
    }

    #[cfg(unix)]
    #[test]
    fn a_folder_deployed_again_sends_only_its_changes_since_its_last_finalized_deploy() {
        let (_dir, site, cache) = settled_site();
        let first = build(&site, Some(&cache), SHORT_SETTLE).unwrap();
        assert!(first.changes().is_none(), "no deploy to start from yet");
        // Not recorded: the deploy was never finalized.
        drop(first);
        let again = build(&site, Some(&cache), SHORT_SETTLE).unwrap();
        assert!(again.changes().is_none(), "an unfinished deploy is no base");
        again.record_deploy("d1");
        drop(again);

        std::fs::write(site.join("c.css"), "a longer stylesheet").unwrap();
        std::fs::write(site.join("new.txt"), "new").unwrap();
        std::fs::remove_file(site.join("index.html")).unwrap();
        let mut third = build(&site, Some(&cache), SHORT_SETTLE).unwrap();
        let changes = third.changes().expect("the changes since d1");
        let base = changes.base.as_ref().unwrap();
        assert_eq!(base.deploy_id, "d1");
        assert_eq!(base.removed, ["index.html"]);
        let changed: Vec<&str> = changes.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(changed, ["c.css", "new.txt"]);
        assert_eq!(
            changes.files[0].sha256,
            hex::encode(Sha256::digest("a longer stylesheet"))
        );
        let whole = third.take_wire();
        assert!(whole.base.is_none());
        assert_eq!(whole.files.len(), 3, "every file when the base is refused");
        // This deploy failed: the next one cannot start from it, nor from
        // d1, whose files the cache no longer holds.
        drop(third);
        let fourth = build(&site, Some(&cache), SHORT_SETTLE).unwrap();
        assert!(fourth.changes().is_none());
        fourth.record_deploy("d4");
        drop(fourth);
        let unchanged = build(&site, Some(&cache), SHORT_SETTLE).unwrap();
        let changes = unchanged.changes().expect("the changes since d4");
        assert_eq!(changes.base.as_ref().unwrap().deploy_id, "d4");
        assert!(changes.files.is_empty() && changes.base.unwrap().removed.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_file_rewritten_with_the_same_size_and_modification_time_is_hashed_again() {
        let (_dir, site, cache) = settled_site();
        build(&site, Some(&cache), SHORT_SETTLE).unwrap();
        // What fools a check of size and modification time alone.
        let path = site.join("a/b.html");
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, "BBBB").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), modified);
        let manifest = build(&site, Some(&cache), SHORT_SETTLE).unwrap();
        assert_eq!(manifest.hashed_files, 1);
        let b = manifest.files.iter().find(|f| f.path == "a/b.html").unwrap();
        assert_eq!(b.sha256, hex::encode(Sha256::digest("BBBB")));
    }

    #[cfg(unix)]
    #[test]
    fn a_file_written_just_before_a_deploy_is_hashed_again_at_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let (site, cache) = (dir.path().join("site"), dir.path().join("hashes.json"));
        std::fs::create_dir_all(&site).unwrap();
        std::fs::write(site.join("index.html"), "fresh").unwrap();
        // Written within the settling time: a second write in the same
        // timestamp tick could keep its stamp, so its hash is not kept.
        for _ in 0..2 {
            let manifest = build(&site, Some(&cache), hash_cache::SETTLE).unwrap();
            assert_eq!(manifest.hashed_files, 1);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_hash_cache_of_another_folder_or_a_damaged_one_is_not_used() {
        let (dir, site, cache) = settled_site();
        build(&site, Some(&cache), SHORT_SETTLE).unwrap();
        let copy = dir.path().join("copy");
        std::fs::create_dir_all(copy.join("a")).unwrap();
        for (path, text) in [("index.html", "HOME"), ("a/b.html", "BBBB"), ("c.css", "CC")] {
            std::fs::write(copy.join(path), text).unwrap();
        }
        std::thread::sleep(SHORT_SETTLE * 3);
        let other = build(&copy, Some(&cache), SHORT_SETTLE).unwrap();
        assert_eq!(other.hashed_files, 3, "the same paths in another folder");
        assert_eq!(hashes(&other), hashes(&build_manifest(&copy).unwrap()));
        // Its cache is written by then.
        drop(other);

        std::fs::write(&cache, "{ not json").unwrap();
        let manifest = build(&copy, Some(&cache), SHORT_SETTLE).unwrap();
        assert_eq!(manifest.hashed_files, 3);
        assert_eq!(
            build(&copy, Some(&cache), SHORT_SETTLE).unwrap().hashed_files,
            0,
            "the damaged file was replaced"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_out_of_the_publish_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let publish = dir.path().join("public");
        std::fs::create_dir_all(&publish).unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::fs::write(publish.join("index.html"), "hi").unwrap();
        std::os::unix::fs::symlink("../secret", publish.join("leak")).unwrap();
        let err = build_manifest(&publish).unwrap_err();
        assert!(
            matches!(err, ManifestError::SymlinkEscapes { ref path, .. } if path == "leak"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_inside_the_publish_directory_serves_its_target() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "hi").unwrap();
        std::os::unix::fs::symlink("index.html", dir.path().join("home.html")).unwrap();
        let manifest = build_manifest(dir.path()).unwrap();
        assert_eq!(manifest.files.len(), 2);
        assert_eq!(manifest.files[0].sha256, manifest.files[1].sha256);
    }

    #[test]
    fn a_redirects_file_over_a_mib_is_refused_naming_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "hi").unwrap();
        std::fs::write(dir.path().join("_redirects"), vec![b'#'; 2 * 1024 * 1024]).unwrap();
        let err = build_manifest(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`_redirects` in the publish directory is 2 MiB, over the limit of 1 MiB for a rule file; \
             split its rules or move some into jamstack.toml"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_that_leaves_the_publish_directory_through_another_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let publish = dir.path().join("public");
        std::fs::create_dir_all(publish.join("a")).unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::fs::write(publish.join("index.html"), "hi").unwrap();
        // `a/up` is the publish directory itself: inside.
        std::os::unix::fs::symlink("..", publish.join("a/up")).unwrap();
        // Inside by its text until `up` is followed; then one `..` too many.
        std::os::unix::fs::symlink("a/up/../secret", publish.join("leak")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", publish.join("passwd")).unwrap();
        let err = build_manifest(&publish).unwrap_err();
        assert!(
            matches!(err, ManifestError::SymlinkEscapes { ref path, .. } if path == "leak"),
            "{err}"
        );
        std::fs::remove_file(publish.join("leak")).unwrap();
        let err = build_manifest(&publish).unwrap_err();
        assert!(
            matches!(err, ManifestError::SymlinkEscapes { ref path, ref target } if path == "passwd" && target == "/etc/passwd"),
            "{err}"
        );
        std::fs::remove_file(publish.join("passwd")).unwrap();
        std::os::unix::fs::symlink("a/up/a/up/index.html", publish.join("home.html")).unwrap();
        let manifest = build_manifest(&publish).unwrap();
        let paths: Vec<_> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["home.html", "index.html"]);
    }
}
