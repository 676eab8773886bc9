//! Git: the only module that knows git2.
//!
//! A build needs one exact commit and none of its history, so the runner
//! asks for that commit alone (shallow where the transport allows) and falls
//! back to fetching the branch, then every branch, when a server will not
//! hand out a commit by id. Submodules are fetched the same way, each at the
//! commit the superproject records.
//!
//! A private repository is fetched with the job's token, handed to git
//! through the credential callback (as `x-access-token`, GitHub's
//! convention) and only to the repository's own host; it is never part of a
//! URL, so it can appear in no message. A submodule on a server never
//! resolves to a path on the runner's machine.

use git2::{
    Cred, CredentialType, FetchOptions, Oid, RemoteCallbacks, RemoteRedirect, Repository, Signature,
    SubmoduleUpdate, build::CheckoutBuilder,
};
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// The commit a checkout holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOut {
    pub sha: String,
    pub message: String,
    pub author: String,
    /// Submodules checked out, nested ones included.
    pub submodules: usize,
}

/// What to fetch, and how.
#[derive(Debug, Clone, Copy)]
pub struct FetchRequest<'a> {
    pub url: &'a str,
    pub branch: &'a str,
    /// A full commit id, or empty for the head of `branch`.
    pub sha: &'a str,
    /// Sent to the repository's host (and only there) when it asks for
    /// credentials.
    pub token: Option<&'a str>,
    /// Ends a fetch in progress.
    pub stop: &'a CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error(
        "could not fetch `{what}` from {url}: {detail}. Check that the repository URL is right and the runner can reach it{hint}"
    )]
    Fetch {
        url: String,
        what: String,
        detail: String,
        hint: &'static str,
    },
    #[error("`{0}` is not a full commit id")]
    BadSha(String),
    #[error(
        "submodule `{path}` points at `{url}`, a path on the runner's machine; a repository on a server may only use submodules on servers"
    )]
    LocalSubmodule { path: String, url: String },
    #[error("submodule `{path}`: {detail}")]
    Submodule { path: String, detail: String },
    #[error("fetching stopped")]
    Stopped,
    #[error("git: {0}")]
    Other(#[from] git2::Error),
}

/// The id of git's empty tree, which every git knows without storing it:
/// comparing a commit with it lists every file of the commit.
pub const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// Submodules nested deeper than this are not fetched.
const MAX_SUBMODULE_DEPTH: usize = 8;

/// Fetches the request's commit (or branch head) into a new repository at
/// `dest`, checks it out with its submodules.
pub fn checkout(request: &FetchRequest<'_>, dest: &Path) -> Result<CheckedOut, GitError> {
    let repo = Repository::init(dest)?;
    let oid = if request.sha.is_empty() {
        fetch_branch_head(&repo, request)?
    } else {
        let oid = Oid::from_str(request.sha).map_err(|_| GitError::BadSha(request.sha.to_owned()))?;
        if request.sha.len() != 40 {
            return Err(GitError::BadSha(request.sha.to_owned()));
        }
        fetch_commit(&repo, request.url, Some(request.branch), oid, request)?;
        oid
    };
    let commit = repo.find_commit(oid)?;
    repo.checkout_tree(commit.as_object(), Some(CheckoutBuilder::new().force()))?;
    repo.set_head_detached(oid)?;
    let submodules = update_submodules(&repo, request.url, request, 0)?;
    Ok(CheckedOut {
        sha: oid.to_string(),
        message: commit.message().unwrap_or("").trim_end().to_owned(),
        author: commit.author().name().unwrap_or("").to_owned(),
        submodules,
    })
}

/// Fetches commit `sha` into the checkout at `dir` beside the commit
/// checked out there, to compare the two: only its objects arrive, the
/// work tree stays as it is. Fails when the server no longer has it (a
/// force-push dropped it, or it was never on this repository).
pub fn fetch_for_comparison(request: &FetchRequest<'_>, dir: &Path, sha: &str) -> Result<(), GitError> {
    let oid = Oid::from_str(sha).map_err(|_| GitError::BadSha(sha.to_owned()))?;
    if sha.len() != 40 {
        return Err(GitError::BadSha(sha.to_owned()));
    }
    let repo = Repository::open(dir)?;
    if repo.find_commit(oid).is_ok() {
        return Ok(());
    }
    fetch_commit(&repo, request.url, Some(request.branch), oid, request)
}

/// The first path, in the order git walks them, that differs between the
/// trees of commits `from` and `to` in the repository at `dir` and that
/// `wanted` takes; both sides of a rename are offered (a rename is a
/// removal and an addition). The walk stops there, so a huge change costs
/// no more than git's own list of it.
pub fn first_changed_path(
    dir: &Path,
    from: &str,
    to: &str,
    mut wanted: impl FnMut(&str) -> bool,
) -> Result<Option<String>, GitError> {
    let repo = Repository::open(dir)?;
    let tree_of = |sha: &str| -> Result<git2::Tree<'_>, GitError> {
        let oid = Oid::from_str(sha).map_err(|_| GitError::BadSha(sha.to_owned()))?;
        Ok(repo.find_commit(oid)?.tree()?)
    };
    let (old, new) = (tree_of(from)?, tree_of(to)?);
    let mut options = git2::DiffOptions::new();
    options.include_typechange(true).ignore_submodules(false);
    let diff = repo.diff_tree_to_tree(Some(&old), Some(&new), Some(&mut options))?;
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(path) = file.path().map(|path| path.to_string_lossy())
                && wanted(&path)
            {
                return Ok(Some(path.into_owned()));
            }
        }
    }
    Ok(None)
}

/// Whether commit `sha` is the head of `request.branch` or one of its
/// ancestors on the server at `request.url`. The branch's whole history is
/// fetched into a new bare repository at `dest`: a server sends only
/// objects reachable from the ref asked for, so a commit that arrives and
/// is an ancestor of the head is on the branch, whatever else the server
/// would hand out by id (GitHub serves a fork's commits from the base
/// repository).
pub fn is_reachable_from_branch(
    request: &FetchRequest<'_>,
    sha: &str,
    dest: &Path,
) -> Result<bool, GitError> {
    let oid = Oid::from_str(sha).map_err(|_| GitError::BadSha(sha.to_owned()))?;
    let repo = Repository::init_bare(dest)?;
    let branch = request.branch;
    let mut remote = repo.remote_anonymous(request.url)?;
    let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
    remote
        .fetch(
            &[refspec.as_str()],
            Some(&mut fetch_options(0, request.url, request)),
            None,
        )
        .map_err(|e| fetch_error(request, request.url, &format!("branch {branch}"), Some(e)))?;
    let head = repo.refname_to_id(&format!("refs/remotes/origin/{branch}"))?;
    Ok(head == oid || repo.graph_descendant_of(head, oid).unwrap_or(false))
}

fn fetch_branch_head(repo: &Repository, request: &FetchRequest<'_>) -> Result<Oid, GitError> {
    let branch = request.branch;
    let mut remote = repo.remote_anonymous(request.url)?;
    let branch_ref = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
    let mut last_error = None;
    for depth in [1, 0] {
        if request.stop.is_cancelled() {
            return Err(GitError::Stopped);
        }
        match remote.fetch(
            &[branch_ref.as_str()],
            Some(&mut fetch_options(depth, request.url, request)),
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
        return Err(fetch_error(
            request,
            request.url,
            &format!("branch {branch}"),
            Some(e),
        ));
    }
    Ok(repo.refname_to_id(&format!("refs/remotes/origin/{branch}"))?)
}

/// Fetches commit `oid` from `url`: cheapest first, the one commit shallow;
/// then the commit with history; then the branch it was pushed to; then
/// every branch.
fn fetch_commit(
    repo: &Repository,
    url: &str,
    branch: Option<&str>,
    oid: Oid,
    request: &FetchRequest<'_>,
) -> Result<(), GitError> {
    let mut remote = repo.remote_anonymous(url)?;
    let sha = oid.to_string();
    let branch_ref = branch.map(|b| format!("+refs/heads/{b}:refs/remotes/origin/{b}"));
    let mut attempts: Vec<(&str, i32)> = vec![(sha.as_str(), 1), (sha.as_str(), 0)];
    if let Some(branch_ref) = &branch_ref {
        attempts.push((branch_ref.as_str(), 0));
    }
    attempts.push(("+refs/heads/*:refs/remotes/origin/*", 0));
    let mut last_error = None;
    for (refspec, depth) in attempts {
        if request.stop.is_cancelled() {
            return Err(GitError::Stopped);
        }
        match remote.fetch(&[refspec], Some(&mut fetch_options(depth, url, request)), None) {
            Ok(()) if repo.find_commit(oid).is_ok() => return Ok(()),
            Ok(()) => {}
            Err(_) if request.stop.is_cancelled() => return Err(GitError::Stopped),
            Err(e) => last_error = Some(e),
        }
    }
    Err(fetch_error(request, url, &format!("commit {sha}"), last_error))
}

fn fetch_error(request: &FetchRequest<'_>, url: &str, what: &str, error: Option<git2::Error>) -> GitError {
    if request.stop.is_cancelled() {
        return GitError::Stopped;
    }
    let detail = error.map_or_else(
        || "the commit is not on the server".to_owned(),
        |e| e.message().to_owned(),
    );
    let lower = detail.to_ascii_lowercase();
    let hint = if lower.contains("401") || lower.contains("auth") || lower.contains("credentials") {
        if request.token.is_some() {
            "; the server refused the job's token: check that it grants read access to this repository"
        } else {
            "; the repository wants credentials: private repositories are fetched with a token the controller hands out with the job"
        }
    } else {
        ""
    };
    GitError::Fetch {
        url: url.to_owned(),
        what: what.to_owned(),
        detail,
        hint,
    }
}

fn fetch_options<'a>(depth: i32, url: &str, request: &FetchRequest<'a>) -> FetchOptions<'a> {
    let mut callbacks = RemoteCallbacks::new();
    // The token goes only to the host of the repository it was made for.
    let token = request
        .token
        .filter(|_| host_of(url).is_some() && host_of(url) == host_of(request.url));
    let issued_for = request.url.to_owned();
    let mut offered = false;
    // `asked_by` is the URL of the server asking, after any redirect:
    // checked again here, so no path git takes hands the token elsewhere.
    callbacks.credentials(move |asked_by, _username, allowed| match token {
        Some(_) if !may_send_token(&issued_for, asked_by) => Err(git2::Error::from_str(&format!(
            "{asked_by} asked for credentials, but the job's token is only for {}",
            origin_of(&issued_for).unwrap_or_else(|| "the repository's own https host".to_owned())
        ))),
        Some(token) if !offered && allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
            offered = true;
            Cred::userpass_plaintext("x-access-token", token)
        }
        Some(_) => Err(git2::Error::from_str(
            "authentication failed: the token was refused",
        )),
        None => Err(git2::Error::from_str(
            "authentication required, and the job came with no credentials",
        )),
    });
    let stop = request.stop.clone();
    callbacks.transfer_progress(move |_| !stop.is_cancelled());
    let stop = request.stop.clone();
    callbacks.sideband_progress(move |_| !stop.is_cancelled());
    let mut options = FetchOptions::new();
    options.depth(depth);
    options.download_tags(git2::AutotagOption::None);
    options.remote_callbacks(callbacks);
    if token.is_some() {
        // A server that sends git to another host must not take the token
        // along: with a token, no redirect off the repository's host is
        // followed (git2's default follows one on the first request).
        options.follow_redirects(RemoteRedirect::None);
    }
    options
}

/// `scheme://host[:port]` of a URL, lowercased, without user or path;
/// `None` for local paths and scp-like addresses.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "https" | "http") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
    // git may name the default port or leave it out.
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let host = host.strip_suffix(default_port).unwrap_or(&host);
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

/// Whether the token issued for the repository at `issued_for` may answer
/// the server at `asked_by`: same scheme, host and port. The controller
/// issues tokens for https URLs only; an http one (a test server) keeps
/// its token on that same http server.
fn may_send_token(issued_for: &str, asked_by: &str) -> bool {
    match (origin_of(issued_for), origin_of(asked_by)) {
        (Some(issued), Some(asked)) => issued == asked,
        _ => false,
    }
}

/// The host of a URL with a scheme (`https://host/...`), or of an scp-like
/// address (`git@host:path`); `None` for local paths.
fn host_of(url: &str) -> Option<String> {
    if let Some((scheme, rest)) = url.split_once("://") {
        if scheme.eq_ignore_ascii_case("file") {
            return None;
        }
        let authority = rest.split('/').next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        return Some(host.to_ascii_lowercase());
    }
    let (before, _) = url.split_once(':')?;
    (!before.contains('/') && before.len() > 1)
        .then(|| before.rsplit('@').next().unwrap_or("").to_ascii_lowercase())
}

/// Resolves a submodule URL as git does: `./x` and `../x` are relative to
/// the superproject's URL. A superproject on a server may not point at a
/// path on the runner's machine.
pub fn resolve_submodule_url(parent: &str, path: &str, url: &str) -> Result<String, GitError> {
    let resolved = if url.starts_with("./") || url.starts_with("../") {
        let mut base = parent.trim_end_matches('/').to_owned();
        let mut rest = url;
        loop {
            if let Some(r) = rest.strip_prefix("./") {
                rest = r;
            } else if let Some(r) = rest.strip_prefix("../") {
                rest = r;
                let cut = base.rfind(['/', ':']).ok_or_else(|| GitError::Submodule {
                    path: path.to_owned(),
                    detail: format!("`{url}` climbs above `{parent}`"),
                })?;
                base.truncate(cut);
            } else {
                break;
            }
        }
        let separator = if base.ends_with(':') { "" } else { "/" };
        format!("{base}{separator}{rest}")
    } else {
        url.to_owned()
    };
    if host_of(parent).is_some() && host_of(&resolved).is_none() {
        return Err(GitError::LocalSubmodule {
            path: path.to_owned(),
            url: resolved,
        });
    }
    Ok(resolved)
}

fn update_submodules(
    repo: &Repository,
    repo_url: &str,
    request: &FetchRequest<'_>,
    depth: usize,
) -> Result<usize, GitError> {
    let workdir = repo
        .workdir()
        .ok_or_else(|| git2::Error::from_str("a bare repository"))?;
    let mut count = 0;
    for sub in repo.submodules()? {
        let path = sub.path().to_string_lossy().into_owned();
        if matches!(sub.update_strategy(), SubmoduleUpdate::None) {
            continue;
        }
        let Some(oid) = sub.head_id() else {
            continue;
        };
        if depth >= MAX_SUBMODULE_DEPTH {
            return Err(GitError::Submodule {
                path,
                detail: format!("submodules are nested more than {MAX_SUBMODULE_DEPTH} deep"),
            });
        }
        let url = sub.url().ok_or_else(|| GitError::Submodule {
            path: path.clone(),
            detail: "no URL in .gitmodules".to_owned(),
        })?;
        let url = resolve_submodule_url(repo_url, &path, url)?;
        let dest = workdir.join(sub.path());
        std::fs::create_dir_all(&dest).map_err(|e| GitError::Submodule {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let sub_repo = Repository::init(&dest)?;
        fetch_commit(&sub_repo, &url, None, oid, request).map_err(|e| match e {
            GitError::Stopped => GitError::Stopped,
            e => GitError::Submodule {
                path: path.clone(),
                detail: e.to_string(),
            },
        })?;
        let commit = sub_repo.find_commit(oid)?;
        sub_repo.checkout_tree(commit.as_object(), Some(CheckoutBuilder::new().force()))?;
        sub_repo.set_head_detached(oid)?;
        count += 1 + update_submodules(&sub_repo, &url, request, depth + 1)?;
    }
    Ok(count)
}

/// Writes `files` into the work tree of the repository at `dir` (made if
/// missing, on `branch`), commits them all and returns the commit id. Used
/// by tests that need a real repository (the demo site has its own, as the
/// controller does not link the runner).
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

    fn request<'a>(url: &'a str, sha: &'a str, stop: &'a CancellationToken) -> FetchRequest<'a> {
        FetchRequest {
            url,
            branch: "main",
            sha,
            token: None,
            stop,
        }
    }

    #[test]
    fn the_exact_commit_is_checked_out_even_after_the_branch_moved_on() {
        let origin = tempfile::tempdir().unwrap();
        let first = commit_files(origin.path(), "main", &[("index.html", b"one")], "first").unwrap();
        let second = commit_files(origin.path(), "main", &[("index.html", b"two")], "second").unwrap();
        assert_ne!(first, second);
        let stop = CancellationToken::new();
        let url = origin.path().to_str().unwrap();

        let work = tempfile::tempdir().unwrap();
        let out = checkout(&request(url, &first, &stop), work.path()).unwrap();
        assert_eq!(out.sha, first);
        assert_eq!(out.message, "first");
        assert_eq!(std::fs::read(work.path().join("index.html")).unwrap(), b"one");

        let head = tempfile::tempdir().unwrap();
        let out = checkout(&request(url, "", &stop), head.path()).unwrap();
        assert_eq!(out.sha, second);
    }

    #[test]
    fn an_earlier_commit_is_fetched_beside_the_checkout_and_compared_with_it() {
        let origin = tempfile::tempdir().unwrap();
        let first = commit_files(
            origin.path(),
            "main",
            &[("sites/a/index.html", b"a"), ("sites/b/index.html", b"b")],
            "first",
        )
        .unwrap();
        commit_files(origin.path(), "main", &[("sites/a/index.html", b"a2")], "second").unwrap();
        git(origin.path(), &["mv", "sites/b/index.html", "sites/b/home.html"]);
        git(origin.path(), &["commit", "-qm", "third"]);
        let third = Repository::open(origin.path())
            .unwrap()
            .refname_to_id("refs/heads/main")
            .unwrap()
            .to_string();
        let stop = CancellationToken::new();
        let url = origin.path().to_str().unwrap();
        let work = tempfile::tempdir().unwrap();
        checkout(&request(url, &third, &stop), work.path()).unwrap();

        fetch_for_comparison(&request(url, &third, &stop), work.path(), &first).unwrap();
        let mut changed = Vec::new();
        let found = first_changed_path(work.path(), &first, &third, |path| {
            changed.push(path.to_owned());
            false
        })
        .unwrap();
        assert_eq!(found, None);
        changed.sort();
        changed.dedup();
        assert_eq!(
            changed,
            ["sites/a/index.html", "sites/b/home.html", "sites/b/index.html"],
            "both sides of the rename"
        );
        let found = first_changed_path(work.path(), &first, &third, |path| path.starts_with("sites/b/"));
        assert!(found.unwrap().unwrap().starts_with("sites/b/"));
        let found = first_changed_path(work.path(), &third, &third, |_| true).unwrap();
        assert_eq!(found, None, "a commit has no change from itself");
        assert_eq!(
            std::fs::read(work.path().join("sites/a/index.html")).unwrap(),
            b"a2",
            "the work tree keeps the commit being built"
        );
    }

    #[test]
    fn a_commit_the_server_no_longer_has_cannot_be_compared_with() {
        let origin = tempfile::tempdir().unwrap();
        let head = commit_files(origin.path(), "main", &[("a", b"a")], "a").unwrap();
        let stop = CancellationToken::new();
        let url = origin.path().to_str().unwrap();
        let work = tempfile::tempdir().unwrap();
        checkout(&request(url, &head, &stop), work.path()).unwrap();
        let gone = "0123456789abcdef0123456789abcdef01234567";
        let error = fetch_for_comparison(&request(url, &head, &stop), work.path(), gone).unwrap_err();
        assert!(error.to_string().contains(gone), "{error}");
    }

    #[test]
    fn a_commit_that_does_not_exist_names_the_commit_and_the_url() {
        let origin = tempfile::tempdir().unwrap();
        commit_files(origin.path(), "main", &[("a", b"a")], "a").unwrap();
        let work = tempfile::tempdir().unwrap();
        let missing = "0123456789abcdef0123456789abcdef01234567";
        let stop = CancellationToken::new();
        let url = origin.path().to_str().unwrap();
        let err = checkout(&request(url, missing, &stop), work.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(missing) && text.contains(url), "{text}");
    }

    fn git(dir: &Path, args: &[&str]) {
        let status = std::process::Command::new("git")
            .args([
                "-c",
                "protocol.file.allow=always",
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
            ])
            .args(args)
            .current_dir(dir)
            .status()
            .expect("the git command line is installed");
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn submodules_are_checked_out_at_the_commit_the_superproject_records() {
        let theme = tempfile::tempdir().unwrap();
        let pinned = commit_files(theme.path(), "main", &[("theme.css", b"pinned")], "v1").unwrap();
        let site = tempfile::tempdir().unwrap();
        let sha_before = commit_files(site.path(), "main", &[("index.html", b"home")], "site").unwrap();
        assert!(!sha_before.is_empty());
        git(
            site.path(),
            &[
                "submodule",
                "add",
                "-q",
                theme.path().to_str().unwrap(),
                "themes/plain",
            ],
        );
        git(site.path(), &["commit", "-q", "-m", "add theme"]);
        // The theme moves on; the site still records the pinned commit.
        commit_files(theme.path(), "main", &[("theme.css", b"newer")], "v2").unwrap();
        let head = Repository::open(site.path())
            .unwrap()
            .head()
            .unwrap()
            .target()
            .unwrap();

        let work = tempfile::tempdir().unwrap();
        let stop = CancellationToken::new();
        let sha = head.to_string();
        let out = checkout(&request(site.path().to_str().unwrap(), &sha, &stop), work.path()).unwrap();
        assert_eq!(out.submodules, 1);
        assert_eq!(
            std::fs::read(work.path().join("themes/plain/theme.css")).unwrap(),
            b"pinned"
        );
        let sub = Repository::open(work.path().join("themes/plain")).unwrap();
        assert_eq!(sub.head().unwrap().target().unwrap().to_string(), pinned);
    }

    #[test]
    fn relative_submodule_urls_resolve_against_the_superproject_and_never_to_local_paths() {
        let resolve = |parent: &str, url: &str| resolve_submodule_url(parent, "sub", url);
        assert_eq!(
            resolve("https://github.com/octo/site.git", "../theme.git").unwrap(),
            "https://github.com/octo/theme.git"
        );
        assert_eq!(
            resolve("https://github.com/octo/site", "./vendor/lib").unwrap(),
            "https://github.com/octo/site/vendor/lib"
        );
        assert_eq!(
            resolve("git@github.com:octo/site.git", "../theme.git").unwrap(),
            "git@github.com:octo/theme.git"
        );
        assert_eq!(resolve("/srv/git/site", "../theme").unwrap(), "/srv/git/theme");
        for local in ["/etc/secrets", "file:///home/me/private.git"] {
            assert!(
                matches!(
                    resolve("https://github.com/octo/site.git", local),
                    Err(GitError::LocalSubmodule { .. })
                ),
                "{local}"
            );
        }
    }

    #[test]
    fn the_token_goes_only_to_the_repository_host() {
        assert_eq!(
            host_of("https://x:y@GitHub.com/o/r.git").as_deref(),
            Some("github.com")
        );
        assert_eq!(host_of("git@github.com:o/r.git").as_deref(), Some("github.com"));
        assert_eq!(host_of("/srv/git/r"), None);
        assert_eq!(host_of("file:///srv/git/r"), None);
        assert_eq!(host_of("C:/repos/r"), None);
    }

    #[test]
    fn the_credential_callback_answers_only_the_scheme_host_and_port_the_token_was_issued_for() {
        let issued = "https://github.com/octo/blog.git";
        assert!(may_send_token(
            issued,
            "https://github.com/octo/blog.git/info/refs"
        ));
        assert!(may_send_token(issued, "https://GitHub.com/other/path"));
        assert!(may_send_token(
            issued,
            "https://x-access-token@github.com:443/octo/blog.git"
        ));
        for asked in [
            "https://evil.example/octo/blog.git",
            "https://github.com.evil.example/octo/blog.git",
            "https://github.com:8443/octo/blog.git",
            "http://github.com/octo/blog.git",
            "ssh://github.com/octo/blog.git",
            "git@github.com:octo/blog.git",
            "file:///srv/git/blog",
            "/srv/git/blog",
            "",
        ] {
            assert!(!may_send_token(issued, asked), "{asked}");
        }
        assert!(!may_send_token("/srv/git/blog", "/srv/git/blog"));
    }

    /// A tiny HTTP server on `ip`: records each request's Authorization
    /// header (`-` for none) and answers every request with `answer`.
    fn http_server(ip: &str, answer: String) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{BufRead as _, BufReader, Write as _};
        let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
        let address = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut auth = "-".to_owned();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("authorization")
                    {
                        auth = value.trim().to_owned();
                    }
                }
                record.lock().unwrap().push(auth);
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        (format!("http://{address}"), seen)
    }

    #[test]
    fn a_redirect_from_the_repository_host_to_another_host_never_carries_the_token() {
        let token = "tok-redirect-7d3e";
        let (elsewhere, seen_elsewhere) = http_server(
            "127.0.0.2",
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_owned(),
        );
        let (repository, seen_repository) = http_server(
            "127.0.0.1",
            format!(
                "HTTP/1.1 301 Moved Permanently\r\nLocation: {elsewhere}/site.git/info/refs?service=git-upload-pack\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        );
        let url = format!("{repository}/site.git");
        let stop = CancellationToken::new();
        let work = tempfile::tempdir().unwrap();
        let mut fetch = request(&url, "", &stop);
        fetch.token = Some(token);
        let result = checkout(&fetch, work.path());
        assert!(result.is_err(), "nothing to fetch there: {result:?}");
        assert!(
            !seen_repository.lock().unwrap().is_empty(),
            "the repository's host was asked"
        );
        let sent = seen_elsewhere.lock().unwrap().clone();
        assert!(
            sent.iter().all(|auth| auth == "-"),
            "credentials went to the host redirected to: {sent:?}"
        );
    }

    #[test]
    fn a_commit_is_reachable_from_its_branch_and_a_side_branchs_is_not() {
        let origin = tempfile::tempdir().unwrap();
        let old = commit_files(origin.path(), "main", &[("a", b"1")], "old").unwrap();
        let head = commit_files(origin.path(), "main", &[("a", b"2")], "head").unwrap();
        let side = commit_files(origin.path(), "side", &[("a", b"3")], "side").unwrap();
        let stop = CancellationToken::new();
        let url = origin.path().to_str().unwrap();
        for (sha, reachable) in [(&old, true), (&head, true), (&side, false)] {
            let work = tempfile::tempdir().unwrap();
            let answer = is_reachable_from_branch(&request(url, "", &stop), sha, work.path()).unwrap();
            assert_eq!(answer, reachable, "{sha}");
        }
    }

    #[test]
    fn a_stopped_fetch_ends_as_stopped() {
        let origin = tempfile::tempdir().unwrap();
        let sha = commit_files(origin.path(), "main", &[("a", b"a")], "a").unwrap();
        let stop = CancellationToken::new();
        stop.cancel();
        let work = tempfile::tempdir().unwrap();
        let result = checkout(
            &request(origin.path().to_str().unwrap(), &sha, &stop),
            work.path(),
        );
        assert!(matches!(result, Err(GitError::Stopped)), "{result:?}");
    }
}
