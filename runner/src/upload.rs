//! Uploading a publish directory: Netlify's digest flow.
//!
//! The manifest (path, SHA-256, size, mode of every file) goes first; the
//! controller answers with the hashes it lacks across all deploys and sites;
//! only those blobs are sent; then the deploy is finalized.

use crate::client::{ClientError, ControllerClient};
use futures_util::{StreamExt, TryStreamExt};
use jamstack_proto::{DeployManifest, FinalizeResponse, HeaderRule, JobLease, ManifestFile, RedirectRule};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Blobs uploaded at once.
const PARALLEL_UPLOADS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(
        "`{path}` in the publish directory is a symlink to `{target}`, outside the publish directory; \
         a deploy holds only files inside it. Copy the file in instead"
    )]
    SymlinkEscapes { path: String, target: String },
    #[error("`{0}` in the publish directory has a name that is not UTF-8; rename it")]
    NonUtf8Name(String),
    #[error("the publish directory is empty; check that the build wrote its output to `publish`")]
    Empty,
    #[error("reading the publish directory: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Controller(#[from] ClientError),
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
}

/// Walks `root`, hashing every regular file (on all cores: hashing a large
/// site is the slow part of a deploy). Symlinks are followed only while they
/// stay inside `root`. The runner and the `jamstack deploy` command both
/// build their manifests here, so both refuse the same folders.
pub fn build_manifest(root: &Path) -> Result<Manifest, UploadError> {
    let found = publish_files(root)?;
    if found.is_empty() {
        return Err(UploadError::Empty);
    }
    let hashes = hash_in_parallel(&found)?;
    let mut manifest = Manifest::default();
    for (file, sha256) in found.into_iter().zip(hashes) {
        manifest.files.push(ManifestFile {
            path: file.path,
            sha256: sha256.clone(),
            size: file.size,
            mode: file.mode,
        });
        manifest.sources.entry(sha256).or_insert(file.source);
    }
    Ok(manifest)
}

/// A file of the publish directory, before hashing.
struct FoundFile {
    path: String,
    source: PathBuf,
    size: u64,
    mode: u32,
}

fn publish_files(root: &Path) -> Result<Vec<FoundFile>, UploadError> {
    let canonical_root = root.canonicalize()?;
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(std::io::Error::other)?;
        let relative = entry.path().strip_prefix(root).map_err(std::io::Error::other)?;
        let path = relative
            .to_str()
            .ok_or_else(|| UploadError::NonUtf8Name(relative.to_string_lossy().into_owned()))?
            .replace(std::path::MAIN_SEPARATOR, "/");
        let mut source = entry.path().to_path_buf();
        if entry.path_is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            let resolved = entry
                .path()
                .canonicalize()
                .ok()
                .filter(|r| r.starts_with(&canonical_root));
            match resolved {
                Some(resolved) if resolved.is_file() => source = resolved,
                // A link to a directory inside is walked where it really is.
                Some(resolved) if resolved.is_dir() => continue,
                _ => {
                    return Err(UploadError::SymlinkEscapes {
                        path,
                        target: target.to_string_lossy().into_owned(),
                    });
                }
            }
        } else if !entry.file_type().is_file() {
            continue;
        }
        let metadata = std::fs::metadata(&source)?;
        #[cfg(unix)]
        let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o777;
        #[cfg(not(unix))]
        let mode = 0o644;
        found.push(FoundFile {
            path,
            source,
            size: metadata.len(),
            mode,
        });
    }
    Ok(found)
}

/// The SHA-256 of each file, in order, hashed by one thread per core.
fn hash_in_parallel(files: &[FoundFile]) -> std::io::Result<Vec<String>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|file| hash_file(&file.source))
                        .collect::<std::io::Result<Vec<_>>>()
                })
            })
            .collect();
        let mut hashes = Vec::with_capacity(files.len());
        for worker in workers {
            hashes.extend(worker.join().expect("a hashing thread panicked")?);
        }
        Ok(hashes)
    })
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

/// What an upload did, for the build log.
#[derive(Debug)]
pub struct Uploaded {
    pub files: usize,
    pub uploaded_blobs: usize,
    pub uploaded_bytes: u64,
    pub finalized: FinalizeResponse,
}

/// Sends the manifest, uploads the blobs the controller lacks, finalizes.
pub async fn upload(
    client: &ControllerClient,
    lease: &JobLease,
    manifest: Manifest,
) -> Result<Uploaded, UploadError> {
    let files = manifest.files.len();
    let wire = DeployManifest {
        files: manifest.files,
        redirects: manifest.redirects,
        headers: manifest.headers,
    };
    let answer = client.send_deploy_manifest(lease, &wire).await?;
    let mut uploaded_bytes = 0u64;
    let mut wanted = Vec::with_capacity(answer.missing.len());
    for hash in &answer.missing {
        let source = manifest.sources.get(hash).cloned().ok_or_else(|| {
            UploadError::Io(std::io::Error::other(format!(
                "the controller asked for unknown blob {hash}"
            )))
        })?;
        wanted.push((hash.clone(), source));
    }
    let mut stream = futures_util::stream::iter(wanted)
        .map(|(hash, source)| put_one(client, hash, source))
        .buffer_unordered(PARALLEL_UPLOADS);
    while let Some(size) = stream.try_next().await? {
        uploaded_bytes += size;
    }
    let finalized = client.finalize(lease).await?;
    Ok(Uploaded {
        files,
        uploaded_blobs: answer.missing.len(),
        uploaded_bytes,
        finalized,
    })
}

async fn put_one(client: &ControllerClient, hash: String, source: PathBuf) -> Result<u64, UploadError> {
    let size = tokio::fs::metadata(&source).await?.len();
    client.put_blob_file(&hash, &source).await?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            matches!(err, UploadError::SymlinkEscapes { ref path, .. } if path == "leak"),
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
}
