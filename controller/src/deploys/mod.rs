//! Deploys: content-addressed blobs and the manifests that name them.
//!
//! A deploy is a manifest (path → content hash). Blobs are stored once by
//! their SHA-256, shared across deploys and sites. Nothing of a deploy is
//! visible until it is finalized, and publishing is a pointer write in the
//! database (see `Database::finalize_deploy` and `Database::publish_deploy`).

pub mod blob_store;

pub use blob_store::{BlobStore, LocalBlobStore};

use jamstack_proto::ManifestFile;

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error(
        "file `{0}`: paths must be relative, `/`-separated, without `.`/`..` segments, backslashes or control characters"
    )]
    UnsafePath(String),
    #[error("file `{path}`: `{hash}` is not a lowercase hex SHA-256")]
    BadHash { path: String, hash: String },
    #[error("file `{0}` appears twice in the manifest")]
    Duplicate(String),
}

/// Checks every path and hash of a manifest before anything is recorded, so
/// no deploy can hold a path that escapes it.
pub fn validate_manifest(files: &[ManifestFile]) -> Result<(), ManifestError> {
    let mut seen = std::collections::HashSet::new();
    for file in files {
        if !is_safe_relative_path(&file.path) {
            return Err(ManifestError::UnsafePath(file.path.clone()));
        }
        if !is_sha256_hex(&file.sha256) {
            return Err(ManifestError::BadHash {
                path: file.path.clone(),
                hash: file.sha256.clone(),
            });
        }
        if !seen.insert(file.path.as_str()) {
            return Err(ManifestError::Duplicate(file.path.clone()));
        }
    }
    Ok(())
}

pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A path inside a deploy: non-empty segments joined by `/`, none of them
/// `.` or `..`, no backslash and no control character.
pub fn is_safe_relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.chars().any(|c| c == '\\' || c.is_control())
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// A new deploy id: 24 lowercase hex characters, fit for a hostname label.
pub fn new_deploy_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> ManifestFile {
        ManifestFile {
            path: path.into(),
            sha256: "a".repeat(64),
            size: 1,
            mode: 0o644,
        }
    }

    #[test]
    fn a_manifest_cannot_name_a_path_outside_the_deploy() {
        for path in [
            "../etc/passwd",
            "a/../../b",
            "/abs",
            "a\\..\\b",
            "a//b",
            "./a",
            "",
            "a/\0",
        ] {
            assert_eq!(
                validate_manifest(&[file(path)]),
                Err(ManifestError::UnsafePath(path.into())),
                "{path:?}"
            );
        }
        assert_eq!(
            validate_manifest(&[file("index.html"), file("a/b/c.css")]),
            Ok(())
        );
    }

    #[test]
    fn a_manifest_with_a_bad_hash_or_a_duplicate_is_refused() {
        let mut bad = file("x");
        bad.sha256 = "ABC".into();
        assert!(matches!(
            validate_manifest(&[bad]),
            Err(ManifestError::BadHash { .. })
        ));
        assert_eq!(
            validate_manifest(&[file("x"), file("x")]),
            Err(ManifestError::Duplicate("x".into()))
        );
    }

    #[test]
    fn deploy_ids_fit_a_hostname_label() {
        let id = new_deploy_id();
        assert_eq!(id.len(), 24);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(id, new_deploy_id());
    }
}
