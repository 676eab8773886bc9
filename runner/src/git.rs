//! Git: the only module that knows git2.
//!
//! A build needs one exact commit and none of its history, so the runner
//! asks for that commit alone (shallow where the transport allows) and falls
//! back to fetching the branch when a server will not hand out a commit by
//! id.

use git2::{FetchOptions, Oid, Repository, Signature, build::CheckoutBuilder};
use std::path::Path;

/// The commit a checkout holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOut {
    pub sha: String,
    pub message: String,
    pub author: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error(
        "could not fetch `{what}` from {url}: {detail}. Check that the repository URL is right and the runner can reach it"
    )]
    Fetch {
        url: String,
        what: String,
        detail: String,
    },
    #[error("`{0}` is not a full commit id")]
    BadSha(String),
    #[error("git: {0}")]
    Other(#[from] git2::Error),
}

/// Fetches `sha` (or, when `sha` is empty, the head of `branch`) from `url`
/// into a new repository at `dest` and checks it out. `token`, when given,
/// is offered to an https server that asks for credentials (GitHub's
/// `x-access-token` convention); it is never written anywhere.
pub fn checkout(
    url: &str,
    branch: &str,
    sha: &str,
    dest: &Path,
    token: Option<&str>,
) -> Result<CheckedOut, GitError> {
    let repo = Repository::init(dest)?;
    let mut remote = repo.remote_anonymous(url)?;
    let branch_ref = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
    let fetch_error = |what: &str, error: Option<git2::Error>| GitError::Fetch {
        url: url.to_owned(),
        what: what.to_owned(),
        detail: error.map_or_else(
            || "the commit is not on the server".to_owned(),
            |e| e.message().to_owned(),
        ),
    };
    let oid = if sha.is_empty() {
        let mut last_error = None;
        for depth in [1, 0] {
            match remote.fetch(
                &[branch_ref.as_str()],
                Some(&mut fetch_options(depth, token)),
                None,
            ) {
                Ok(()) => {
                    last_error = None;
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        if let Some(e) = last_error {
            return Err(fetch_error(&format!("branch {branch}"), Some(e)));
        }
        repo.refname_to_id(&format!("refs/remotes/origin/{branch}"))?
    } else {
        let oid = Oid::from_str(sha).map_err(|_| GitError::BadSha(sha.to_owned()))?;
        if sha.len() != 40 {
            return Err(GitError::BadSha(sha.to_owned()));
        }
        // Cheapest first: the one commit, shallow; then the commit with
        // history; then the branch it was pushed to; then every branch.
        let attempts: [(&str, i32); 4] = [
            (sha, 1),
            (sha, 0),
            (branch_ref.as_str(), 0),
            ("+refs/heads/*:refs/remotes/origin/*", 0),
        ];
        let mut last_error = None;
        for (refspec, depth) in attempts {
            match remote.fetch(&[refspec], Some(&mut fetch_options(depth, token)), None) {
                Ok(()) if repo.find_commit(oid).is_ok() => {
                    last_error = None;
                    break;
                }
                Ok(()) => {}
                Err(e) => last_error = Some(e),
            }
        }
        if repo.find_commit(oid).is_err() {
            return Err(fetch_error(&format!("commit {sha}"), last_error));
        }
        oid
    };
    let commit = repo.find_commit(oid)?;
    repo.checkout_tree(commit.as_object(), Some(CheckoutBuilder::new().force()))?;
    repo.set_head_detached(oid)?;
    Ok(CheckedOut {
        sha: oid.to_string(),
        message: commit.message().unwrap_or("").trim_end().to_owned(),
        author: commit.author().name().unwrap_or("").to_owned(),
    })
}

fn fetch_options(depth: i32, token: Option<&str>) -> FetchOptions<'_> {
    let mut options = FetchOptions::new();
    options.depth(depth);
    options.download_tags(git2::AutotagOption::None);
    if let Some(token) = token {
        let mut callbacks = git2::RemoteCallbacks::new();
        let mut offered = false;
        callbacks.credentials(move |_url, _username, allowed| {
            // Offered once: a refused token must end the fetch, not loop.
            if offered || !allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
                return Err(git2::Error::from_str(
                    "the server refused the repository token; check the site's GitHub connection",
                ));
            }
            offered = true;
            git2::Cred::userpass_plaintext("x-access-token", token)
        });
        options.remote_callbacks(callbacks);
    }
    options
}

/// Writes `files` into the work tree of the repository at `dir` (made if
/// missing, on `branch`), commits them all and returns the commit id. Used
/// by the demo site and by tests that need a real repository.
pub fn commit_files(
    dir: &Path,
    branch: &str,
    files: &[(&str, &[u8])],
    message: &str,
) -> Result<String, GitError> {
    let repo = match Repository::open(dir) {
        Ok(repo) => repo,
        Err(_) => {
            let mut options = git2::RepositoryInitOptions::new();
            options.initial_head(branch);
            Repository::init_opts(dir, &options)?
        }
    };
    for (path, content) in files {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| git2::Error::from_str(&e.to_string()))?;
        }
        std::fs::write(&full, content).map_err(|e| git2::Error::from_str(&e.to_string()))?;
    }
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let signature = Signature::now("Jamstack Demo", "demo@jamstack.localhost")?;
    let parent = repo.refname_to_id(&format!("refs/heads/{branch}")).ok();
    let parents: Vec<git2::Commit<'_>> = parent
        .map(|p| repo.find_commit(p))
        .transpose()?
        .into_iter()
        .collect();
    let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    let oid = repo.commit(
        Some(&format!("refs/heads/{branch}")),
        &signature,
        &signature,
        message,
        &tree,
        &parent_refs,
    )?;
    Ok(oid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exact_commit_is_checked_out_even_after_the_branch_moved_on() {
        let origin = tempfile::tempdir().unwrap();
        let first = commit_files(origin.path(), "main", &[("index.html", b"one")], "first").unwrap();
        let second = commit_files(origin.path(), "main", &[("index.html", b"two")], "second").unwrap();
        assert_ne!(first, second);

        let work = tempfile::tempdir().unwrap();
        let out = checkout(origin.path().to_str().unwrap(), "main", &first, work.path(), None).unwrap();
        assert_eq!(out.sha, first);
        assert_eq!(out.message, "first");
        assert_eq!(std::fs::read(work.path().join("index.html")).unwrap(), b"one");

        let head = tempfile::tempdir().unwrap();
        let out = checkout(origin.path().to_str().unwrap(), "main", "", head.path(), None).unwrap();
        assert_eq!(out.sha, second);
    }

    #[test]
    fn a_commit_that_does_not_exist_names_the_commit_and_the_url() {
        let origin = tempfile::tempdir().unwrap();
        commit_files(origin.path(), "main", &[("a", b"a")], "a").unwrap();
        let work = tempfile::tempdir().unwrap();
        let missing = "0123456789abcdef0123456789abcdef01234567";
        let err = checkout(
            origin.path().to_str().unwrap(),
            "main",
            missing,
            work.path(),
            None,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(missing) && text.contains(origin.path().to_str().unwrap()),
            "{text}"
        );
    }
}
