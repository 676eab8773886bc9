//! Deploys: content-addressed blobs and the manifests that name them.
//!
//! A deploy is a manifest (path → content hash). Blobs are stored once by
//! their SHA-256, shared across deploys and sites. Nothing of a deploy is
//! visible until it is finalized, and publishing is a pointer write in the
//! database (see `Database::finalize_deploy` and `Database::publish_deploy`).

pub mod blob_store;
pub mod compress;
pub mod durability;
pub mod events;
pub mod intake;
pub mod retention;
pub mod s3;
pub mod staging;

pub use blob_store::{BlobStore, LocalBlobStore};

use crate::config::{Config, DeployLimits};
use crate::db::Database;
use crate::metrics::Metrics;
use compress::VariantQueue;
use events::{DeployEvent, DeployEvents};
use jamstack_proto::{BuildContext, ManifestFile};
use std::sync::Arc;

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
    #[error(
        "file `{0}`: `{1}` is a folder in this deploy, and a rule file must be a file; \
         put the rules in one file named `{1}` at the root of the publish directory"
    )]
    RuleFileIsFolder(String, &'static str),
    #[error("file `{0}` is both sent and removed; a path of a manifest's changes is one or the other")]
    SentAndRemoved(String),
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
        if let Some(rule_file) = ["_redirects", "_headers"].into_iter().find(|name| {
            file.path
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('/'))
        }) {
            return Err(ManifestError::RuleFileIsFolder(file.path.clone(), rule_file));
        }
    }
    Ok(())
}

/// Checks the paths a manifest of changes removes from its base: safe,
/// each named once, and none of them among the files it sends.
pub fn validate_removals(files: &[ManifestFile], removed: &[String]) -> Result<(), ManifestError> {
    let sent: std::collections::HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut seen = std::collections::HashSet::new();
    for path in removed {
        if !is_safe_relative_path(path) {
            return Err(ManifestError::UnsafePath(path.clone()));
        }
        if !seen.insert(path.as_str()) {
            return Err(ManifestError::Duplicate(path.clone()));
        }
        if sent.contains(path.as_str()) {
            return Err(ManifestError::SentAndRemoved(path.clone()));
        }
    }
    Ok(())
}

/// A deploy over one of the limits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error(
        "`{path}` is {}, over the limit of {} for one file (controller setting --max-file-size-mb); \
         make it smaller or serve it from elsewhere",
        human_bytes(*size),
        human_bytes(*limit)
    )]
    FileTooLarge { path: String, size: u64, limit: u64 },
    #[error(
        "the deploy has {count} files, over the limit of {limit} (controller setting --max-files); \
         publish fewer files"
    )]
    TooManyFiles { count: u64, limit: u64 },
    #[error(
        "the deploy's files add up to {}, over the limit of {} (controller setting --max-deploy-size-mb); \
         publish less",
        human_bytes(*size),
        human_bytes(*limit)
    )]
    DeployTooLarge { size: u64, limit: u64 },
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Checks a manifest against the deploy limits, before anything is stored.
pub fn check_limits(files: &[ManifestFile], limits: &DeployLimits) -> Result<(), LimitError> {
    check_file_sizes(files, limits)?;
    check_totals(files.len() as u64, files.iter().map(|f| f.size).sum(), limits)
}

/// Checks each file against the limit for one file.
pub fn check_file_sizes(files: &[ManifestFile], limits: &DeployLimits) -> Result<(), LimitError> {
    match files.iter().find(|f| f.size > limits.max_file_size) {
        Some(file) => Err(LimitError::FileTooLarge {
            path: file.path.clone(),
            size: file.size,
            limit: limits.max_file_size,
        }),
        None => Ok(()),
    }
}

/// Checks a deploy's file count and total size against the limits.
pub fn check_totals(count: u64, size: u64, limits: &DeployLimits) -> Result<(), LimitError> {
    if count > limits.max_files {
        return Err(LimitError::TooManyFiles {
            count,
            limit: limits.max_files,
        });
    }
    if size > limits.max_deploy_size {
        return Err(LimitError::DeployTooLarge {
            size,
            limit: limits.max_deploy_size,
        });
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

/// The hostname alias a non-production deploy is served under, before
/// `--<site>`: `deploy-preview-<pr>` for previews, the branch's label for
/// branch deploys. Production deploys have none: the site's own hostname
/// serves them.
pub fn alias_for(context: BuildContext, branch: &str, pr_number: Option<i64>) -> Option<String> {
    match context {
        BuildContext::Production => None,
        BuildContext::DeployPreview => pr_number.map(|pr| format!("deploy-preview-{pr}")),
        BuildContext::BranchDeploy => branch_label(branch),
    }
}

/// A branch name as one hostname label: lowercase letters, digits and
/// single hyphens, at most 40 characters (`feature/Login_v2` → `feature-login-v2`).
/// `None` when nothing of the name is left.
pub fn branch_label(branch: &str) -> Option<String> {
    let mut label = String::new();
    for c in branch.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            label.push(c);
        } else if !label.ends_with('-') && !label.is_empty() {
            label.push('-');
        }
    }
    let label: String = label.chars().take(40).collect();
    let label = label.trim_end_matches('-').to_owned();
    (!label.is_empty()).then_some(label)
}

/// The deploy store as a service: the database of deploys and the blob
/// store of their files, the queue of deploys awaiting compressed variants,
/// and the events that tell the edge a hostname changed. Intake,
/// compression and retention take it.
#[derive(Clone)]
pub struct Deploys {
    pub db: Database,
    pub config: Arc<Config>,
    pub blobs: Arc<dyn BlobStore>,
    /// Ready deploys whose compressed variants are still to be made.
    pub variants: Arc<VariantQueue>,
    pub metrics: Arc<Metrics>,
    /// Publishes, alias moves and removals, for whoever listens (the edge's
    /// memory; on PostgreSQL, other controllers).
    pub events: DeployEvents,
}

impl Deploys {
    /// Tells everyone that what a hostname serves has changed (see
    /// [`DeployEvents::announce`]).
    pub async fn announce(&self, event: DeployEvent) {
        self.events.announce(event).await;
    }
}

/// Takes a preview or branch hostname down (a closed pull request, a deleted
/// branch, or by hand): the alias goes at once, the edge forgets it before
/// this returns, and retention removes the deploys it served at its next
/// run. Returns false when there was no such alias.
pub async fn take_alias_down(deploys: &Deploys, site_id: i64, alias: &str) -> anyhow::Result<bool> {
    let removed = deploys.db.remove_alias(site_id, alias).await?;
    if removed {
        deploys.announce(DeployEvent::SiteChanged { site_id }).await;
    }
    Ok(removed)
}

/// How one file differs between two deploys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    Added { path: String, size: i64 },
    Changed { path: String, old_size: i64, size: i64 },
    Removed { path: String, old_size: i64 },
}

/// The files added, changed (other content) and removed going from `old`
/// to `new`, by path; both lists sorted by path, as the database returns them.
pub fn diff_files(
    old: &[(String, crate::db::DeployFile)],
    new: &[(String, crate::db::DeployFile)],
) -> Vec<FileChange> {
    use std::collections::BTreeMap;
    let old: BTreeMap<&str, &crate::db::DeployFile> = old.iter().map(|(p, f)| (p.as_str(), f)).collect();
    let new: BTreeMap<&str, &crate::db::DeployFile> = new.iter().map(|(p, f)| (p.as_str(), f)).collect();
    let mut paths: Vec<&str> = old.keys().chain(new.keys()).copied().collect();
    paths.sort_unstable();
    paths.dedup();
    paths
        .into_iter()
        .filter_map(|path| match (old.get(path), new.get(path)) {
            (None, Some(f)) => Some(FileChange::Added {
                path: path.to_owned(),
                size: f.size,
            }),
            (Some(o), None) => Some(FileChange::Removed {
                path: path.to_owned(),
                old_size: o.size,
            }),
            (Some(o), Some(f)) if o.sha256 != f.sha256 => Some(FileChange::Changed {
                path: path.to_owned(),
                old_size: o.size,
                size: f.size,
            }),
            _ => None,
        })
        .collect()
}

/// The changes from deploy `against` to deploy `deploy_id`; against no
/// deploy (`None`), every file is added. The one diff the dashboard's deploy
/// page and the API's share.
pub async fn diff_deploys(
    db: &crate::db::Database,
    against: Option<&str>,
    deploy_id: &str,
) -> anyhow::Result<Vec<FileChange>> {
    let new = db.deploy_files(deploy_id).await?;
    let old = match against {
        Some(id) => db.deploy_files(id).await?,
        None => Vec::new(),
    };
    Ok(diff_files(&old, &new))
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

    #[test]
    fn a_diff_names_files_added_changed_and_removed() {
        let f = |path: &str, hash: &str, size: i64| {
            (
                path.to_owned(),
                crate::db::DeployFile {
                    sha256: hash.repeat(64),
                    size,
                },
            )
        };
        let old = [f("a.html", "a", 1), f("b.css", "b", 2), f("gone.js", "c", 3)];
        let new = [f("a.html", "a", 1), f("b.css", "d", 5), f("new.png", "e", 9)];
        assert_eq!(
            diff_files(&old, &new),
            [
                FileChange::Changed {
                    path: "b.css".into(),
                    old_size: 2,
                    size: 5
                },
                FileChange::Removed {
                    path: "gone.js".into(),
                    old_size: 3
                },
                FileChange::Added {
                    path: "new.png".into(),
                    size: 9
                },
            ]
        );
    }

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
    fn a_deploy_over_a_limit_is_refused_with_the_setting_to_change() {
        let limits = DeployLimits {
            max_file_size: 10,
            max_files: 2,
            max_deploy_size: 15,
        };
        let sized = |path: &str, size| ManifestFile { size, ..file(path) };
        assert_eq!(check_limits(&[sized("a", 10), sized("b", 5)], &limits), Ok(()));
        let big = check_limits(&[sized("big.mp4", 11)], &limits).unwrap_err();
        assert!(
            big.to_string().contains("`big.mp4` is 11 bytes")
                && big.to_string().contains("--max-file-size-mb")
        );
        let many = check_limits(&[file("a"), file("b"), file("c")], &limits).unwrap_err();
        assert!(many.to_string().contains("3 files") && many.to_string().contains("--max-files"));
        let total = check_limits(&[sized("a", 10), sized("b", 6)], &limits).unwrap_err();
        assert!(total.to_string().contains("16 bytes") && total.to_string().contains("--max-deploy-size-mb"));
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(256 * 1024 * 1024), "256.0 MiB");
    }

    #[test]
    fn branches_and_pull_requests_get_hostname_labels() {
        assert_eq!(
            branch_label("feature/Login_v2").as_deref(),
            Some("feature-login-v2")
        );
        assert_eq!(branch_label("--x--").as_deref(), Some("x"));
        assert_eq!(branch_label("///"), None);
        assert_eq!(branch_label(&"a".repeat(80)).unwrap().len(), 40);
        assert_eq!(
            alias_for(BuildContext::DeployPreview, "fix", Some(12)).as_deref(),
            Some("deploy-preview-12")
        );
        assert_eq!(
            alias_for(BuildContext::BranchDeploy, "staging", None).as_deref(),
            Some("staging")
        );
        assert_eq!(alias_for(BuildContext::Production, "main", None), None);
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
