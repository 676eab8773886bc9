//! Wire types of the controller–runner protocol.
//!
//! Both sides depend on this crate and nothing else to talk to each other, so
//! the protocol is what is written here. Every request from a runner carries
//! [`PROTOCOL_VERSION`] in the [`PROTOCOL_HEADER`] header. The controller
//! serves its own version and the one before
//! ([`OLDEST_SERVED_PROTOCOL_VERSION`]), so runners may be upgraded after
//! it; any other version is refused with `426 Upgrade Required` and a body
//! naming both versions ([`VersionMismatch`]), so a mismatched runner fails
//! on connect, not halfway through a build.
//!
//! # Intended execution flow
//!
//! 0. Once: `POST /runner/v1/register` with [`RegisterRequest`] exchanges
//!    a registration token for the runner's own token ([`RegisterResponse`]);
//!    the controller stores only its hash. Every later call carries it as
//!    `Authorization: Bearer <token>`.
//! 1. `POST /runner/v1/connect` with [`ConnectRequest`]: checks the token and
//!    the protocol version, answers [`ConnectResponse`].
//! 2. `POST /runner/v1/jobs/lease` with [`LeaseRequest`]: long-polls up to
//!    `wait_seconds` and answers `200` with a [`JobLease`] or `204` when no job
//!    came in time.
//! 3. While building, the runner calls (each with the lease id in
//!    [`LEASE_HEADER`]; a stale lease gets `409` and the runner stops at once):
//!    - `POST /runner/v1/jobs/{job}/heartbeat?wait_seconds=N` →
//!      [`HeartbeatResponse`]. It extends the lease, then holds the answer up
//!      to `N` seconds (at most the heartbeat interval) and answers at once
//!      when the build is cancelled. The runner calls it again as soon as it
//!      answers, so the lease is extended every interval and a cancel reaches
//!      the runner within moments. Without `wait_seconds` it answers at once;
//!    - `POST /runner/v1/jobs/{job}/commit` with [`CommitInfo`] once the
//!      commit is checked out;
//!    - `POST /runner/v1/jobs/{job}/log?offset=N` with log bytes. The
//!      controller appends them only if `N` equals its stored length, and
//!      answers [`LogAppendResponse`] with the stored length either way, so a
//!      retried batch is neither lost nor written twice. The bytes are whole
//!      lines, `<RFC 3339 UTC time, ms> <stream> <text>\n`, where the stream
//!      is `out` or `err` (the build's stdout and stderr) or `sys` (the
//!      runner); the text keeps the build's ANSI colours, secrets masked.
//!
//!    Once the commit is checked out, a build can end early with
//!    [`JobOutcome::Skipped`] (step 5): when the lease says
//!    `honour_skip_ci` and the commit message carries a skip marker, or when
//!    the site's `ignore` command, run in the build container, exits 0.
//! 4. Upload, Netlify's digest flow:
//!    - `POST /runner/v1/jobs/{job}/deploy` with a [`DeployManifest`] →
//!      [`ManifestResponse`] naming the blobs the controller lacks. A
//!      client that knows what it sent for an earlier deploy of the site
//!      may send only what changed since ([`ManifestBase`]); answered 412
//!      when that deploy cannot be used, it sends every file instead;
//!    - the missing blobs: those of at most
//!      [`blob_bundle::MAX_BUNDLED_BLOB`] bytes many at a time,
//!      `POST /runner/v1/blob-bundles` with a [`blob_bundle`] body (answered
//!      with [`BundleResponse`]), the others one each,
//!      `PUT /runner/v1/blobs/{sha256}` with the blob's bytes, streamed. The
//!      controller verifies every hash before it stores anything, and
//!      refuses files over its size limit with 413;
//!    - `POST /runner/v1/jobs/{job}/deploy/finalize` → [`FinalizeResponse`].
//!      The controller reads the deploy's `_redirects` and `_headers`
//!      files, makes compressed variants of compressible files, and refuses
//!      (400, with the file, line and reason) a deploy whose rules are wrong.
//! 5. `POST /runner/v1/jobs/{job}/complete` with [`JobCompletion`]: the
//!    [`JobOutcome`] and the steps' timings. A build command that fails is
//!    an outcome, not a protocol error.
//!
//! A runner that shuts down mid-build sends
//! `POST /runner/v1/jobs/{job}/hand-back` (204) instead of step 5: the job
//! goes back to the queue at once, rather than when its lease runs out.
//!
//! The paths are written once, in [`routes`]: the controller registers
//! their patterns and the runner calls what their functions make.
//!
//! Bump [`PROTOCOL_VERSION`] on every change to these types or routes.

pub mod blob_bundle;
mod duration;
pub mod embedded_runner;
pub mod routes;
pub use duration::format_duration;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The protocol version this release speaks.
///
/// 10: `complete` carries the job's step timings ([`JobCompletion`]).
/// 11: a lease carries the commit to compare with (`cached_commit`), the
/// site's base folder and watch paths, and the build hook that started it
/// (`incoming_hook`); a runner of 10 ignores them and builds every push.
/// 12: a redirect rule carries `Role` conditions and `signed`; a runner of
/// 11 refuses them in `jamstack.toml`, as before.
/// 13: small blobs are uploaded many at a time (`POST
/// /runner/v1/blob-bundles`); a runner of 12 sends each on its own, as
/// before.
pub const PROTOCOL_VERSION: u32 = 13;

/// The oldest runner protocol a controller still serves, one version
/// behind its own, so runners can be upgraded after their controller one
/// at a time (a rolling upgrade). A controller reads each older request
/// as that version sent it: every change since is a field the older
/// runner leaves out, with a default that means "not told".
pub const OLDEST_SERVED_PROTOCOL_VERSION: u32 = PROTOCOL_VERSION - 1;

/// Header carrying [`PROTOCOL_VERSION`] on every runner request.
pub const PROTOCOL_HEADER: &str = "x-jamstack-protocol";

/// Header carrying the lease id (the fencing token) on calls about a job.
pub const LEASE_HEADER: &str = "x-jamstack-lease";

/// The largest `jamstack.toml`, `_redirects` or `_headers` file either side
/// reads: far more than any real rule file (10,000 redirect rules fit),
/// far less than what would hurt a runner or a controller. One limit, so a
/// file the runner uploads is never refused by the controller for its size.
pub const MAX_RULE_FILE_BYTES: u64 = 1024 * 1024;

/// The markers that, in a commit message, ask for no build of that commit:
/// the ones GitHub Actions and Netlify honour, and our own.
pub const SKIP_CI_MARKERS: &[&str] = &[
    "[skip ci]",
    "[ci skip]",
    "[no ci]",
    "[skip jamstack]",
    "[jamstack skip]",
];

/// The skip marker a commit message carries, if any (case-insensitive).
pub fn skip_ci_marker(message: &str) -> Option<&'static str> {
    let message = message.to_ascii_lowercase();
    SKIP_CI_MARKERS
        .iter()
        .copied()
        .find(|marker| message.contains(marker))
}

/// Whether `text` is a full 40-hex git commit id.
pub fn is_full_commit_sha(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The context a build runs in. It decides which `[context.*]` overrides of
/// `jamstack.toml` apply and which hostname serves the deploy.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildContext {
    Production,
    DeployPreview,
    BranchDeploy,
}

impl BuildContext {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildContext::Production => "production",
            BuildContext::DeployPreview => "deploy-preview",
            BuildContext::BranchDeploy => "branch-deploy",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "production" => Some(BuildContext::Production),
            "deploy-preview" => Some(BuildContext::DeployPreview),
            "branch-deploy" => Some(BuildContext::BranchDeploy),
            _ => None,
        }
    }
}

impl fmt::Display for BuildContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub registration_token: String,
    pub name: String,
    /// Jobs that require labels go only to runners that have them all.
    pub labels: Vec<String>,
    /// How many jobs the runner runs at once.
    pub slots: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub runner_id: i64,
    /// The runner's own token; shown this once.
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectRequest {
    pub protocol_version: u32,
    pub runner_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectResponse {
    pub protocol_version: u32,
    /// How often the runner should send a heartbeat while it holds a lease.
    pub heartbeat_seconds: u64,
}

/// Answer body when the versions differ (status 426).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionMismatch {
    pub controller_version: u32,
    pub runner_version: u32,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub runner_name: String,
    /// How long the controller may hold the request open waiting for a job.
    pub wait_seconds: u64,
}

/// A job handed to one runner. Every later call about it must present
/// `lease_id`; once the lease is gone those calls are refused with 409.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobLease {
    pub job_id: i64,
    pub lease_id: String,
    pub build_id: i64,
    pub attempt: u32,
    pub site: String,
    pub repo_url: String,
    /// The exact commit to build, a full 40-hex SHA, or empty to build the
    /// head of `branch` (the runner then reports the commit it resolved).
    pub commit_sha: String,
    pub branch: String,
    pub context: BuildContext,
    /// The pull request a deploy preview builds.
    pub pr_number: Option<u64>,
    /// Seconds the lease lasts without a heartbeat.
    pub lease_seconds: u64,
    /// The build was started by a push or pull request rather than by hand:
    /// a skip marker ([`SKIP_CI_MARKERS`]) in the checked-out commit's
    /// message skips it.
    #[serde(default)]
    pub honour_skip_ci: bool,
    /// Whether the code to build comes from the site's own repository
    /// (production, branch deploys, pull requests from branches of the same
    /// repository). An untrusted build (a pull request from a fork) gets no
    /// secret variables and a cache of its own, never production's.
    pub trusted: bool,
    /// Set when the commit was picked by hand by someone who may build but
    /// not change the site (a `builds` token): nothing says it is the
    /// site's code. The runner checks, before the build sees anything,
    /// that the commit is reachable from this branch; if it is not, the
    /// build runs as an untrusted one (no secret variables, a cache of its
    /// own) and the controller, told through [`CommitInfo::reachable`],
    /// publishes nothing of it.
    #[serde(default)]
    pub verify_reachable_from: Option<String>,
    /// The commit of the site's last successful build in the same context
    /// (production; the same branch for branch deploys; the same pull
    /// request for previews), `None` before the first. The runner compares
    /// the build's commit with it to skip a build that changes nothing
    /// under the site's watch paths, and hands it to the `ignore` command
    /// as `CACHED_COMMIT_REF`.
    #[serde(default)]
    pub cached_commit: Option<String>,
    /// The site's build settings kept on the controller.
    pub settings: SiteBuildSettings,
    /// A short-lived token for fetching a private repository over HTTPS. The
    /// runner hands it to git only, for the repository's own host; it never
    /// reaches the build log or the build container.
    pub git_token: Option<Secret>,
    /// The build hook that started the build, for the build's
    /// `INCOMING_HOOK_TITLE` and `INCOMING_HOOK_BODY`, as Netlify gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming_hook: Option<IncomingHook>,
}

/// What a build hook's call said: the hook's title (or the `trigger_title`
/// asked for) and the body it was called with, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingHook {
    pub title: String,
    pub body: String,
}

/// A site's build settings kept on the controller. Limits left `None` take
/// the runner's defaults; the runner caps every limit at its own maximum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteBuildSettings {
    /// How long the build may run before it is stopped and fails.
    pub timeout_seconds: Option<u64>,
    pub memory_mib: Option<u64>,
    pub cpus: Option<f64>,
    pub pids: Option<u64>,
    /// Environment variables set on the site, in name order.
    pub environment: Vec<EnvVar>,
    pub cache: CacheRef,
    /// What the build's container may reach over the network.
    #[serde(default)]
    pub network: BuildNetwork,
    /// Private hosts the build may reach although its network is kept off
    /// private ranges (a package mirror on the office network): IP
    /// addresses, CIDR blocks or host names, which the runner resolves.
    #[serde(default)]
    pub private_hosts: Vec<String>,
    /// The folder of the repository the site lives in (a monorepo's
    /// `sites/blog`), relative to its root; `None` for the root. The runner
    /// reads `jamstack.toml` there, and `base` defaults to it.
    #[serde(default)]
    pub base: Option<String>,
    /// Globs, relative to the repository root, of the files whose changes
    /// build the site; used when `jamstack.toml` sets no `watch`. Empty:
    /// `base/**` when a base is set, else every change builds.
    #[serde(default)]
    pub watch_paths: Vec<String>,
}

/// What a build's container may reach over the network. A build runs code
/// from its repository (a fork's pull request included), so by default it
/// reaches the public internet only: the runner's host, private networks
/// and link-local addresses such as cloud metadata are refused.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildNetwork {
    /// The public internet only (and the private hosts the site allows).
    #[default]
    Public,
    /// No network at all, not even DNS.
    Off,
}

impl BuildNetwork {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildNetwork::Public => "public",
            BuildNetwork::Off => "off",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "public" => Some(BuildNetwork::Public),
            "off" => Some(BuildNetwork::Off),
            _ => None,
        }
    }
}

/// One environment variable of a site.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
    /// A secret value is masked in the build log and withheld from
    /// untrusted builds.
    pub secret: bool,
}

impl fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value: &dyn fmt::Debug = if self.secret { &"***" } else { &self.value };
        f.debug_struct("EnvVar")
            .field("name", &self.name)
            .field("value", value)
            .field("secret", &self.secret)
            .finish()
    }
}

/// Which build cache a site uses. The runner keeps one cache per key, trust
/// level and generation; "clear cache" is a new generation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRef {
    /// Unique per site across every controller that may share a runner's
    /// Docker engine; made of lowercase letters, digits and `-`.
    pub key: String,
    pub generation: u64,
}

/// A value that must not be printed: `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The build was cancelled: stop the container and report `Cancelled`.
    pub cancel: bool,
}

/// The commit a runner checked out, reported before the build runs. It
/// fills in the commit of builds queued by branch name alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub sha: String,
    pub message: String,
    pub author: String,
    /// For a lease with [`JobLease::verify_reachable_from`]: whether the
    /// commit is reachable from that branch. Only `Some(true)` lets the
    /// controller publish the build's deploy to production.
    #[serde(default)]
    pub reachable: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogAppendResponse {
    /// The number of log bytes the controller holds for this attempt.
    pub stored_length: u64,
}

/// One file of a deploy.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path relative to the publish directory, `/`-separated, no leading `/`.
    pub path: String,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeployManifest {
    pub files: Vec<ManifestFile>,
    /// The `[[redirects]]` rules of `jamstack.toml`, in file order. The
    /// controller checks them when the manifest arrives and applies them
    /// after the rules of a `_redirects` file in the publish directory.
    #[serde(default)]
    pub redirects: Vec<RedirectRule>,
    /// The `[[headers]]` rules of `jamstack.toml`, in file order.
    #[serde(default)]
    pub headers: Vec<HeaderRule>,
    /// Set when `files` holds only what changed since an earlier deploy
    /// of the same site: a folder deployed again sends its 1,000 changed
    /// files, not all 100,000. Without it, `files` is every file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<ManifestBase>,
}

/// The deploy a manifest is a change of ([`DeployManifest::base`]).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestBase {
    /// A ready deploy of the same site. The new deploy has its files,
    /// less `removed`, with the manifest's `files` added or replacing
    /// theirs. A controller that cannot use it (it was removed, is of
    /// another site, or lacks a path `removed` names) answers `412
    /// Precondition Failed` having recorded nothing; send every file then.
    pub deploy_id: String,
    /// Paths of the base the new deploy no longer has.
    #[serde(default)]
    pub removed: Vec<String>,
}

/// A `[[redirects]]` rule of `jamstack.toml`, as the runner parsed it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedirectRule {
    /// The 1-based line of the rule in `jamstack.toml`, for error messages;
    /// 0 when unknown.
    pub line: u32,
    /// A path (starting with `/`) or `http(s)://` URL; `*` and
    /// `:placeholder` segments allowed.
    pub from: String,
    /// A path or URL; may use `:splat` and the placeholders of `from`.
    pub to: String,
    pub status: u16,
    /// Apply the rule even where a file exists.
    pub force: bool,
    /// Query parameters the request must carry, mapped to the placeholder
    /// bound to each value (`id = ":id"`) or to a literal value.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub conditions: RedirectConditions,
    /// Headers for a proxied request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The site variable a proxied request is signed with (`X-Nf-Sign`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<String>,
}

/// Conditions of a redirect rule; an empty list is no condition.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedirectConditions {
    #[serde(default)]
    pub language: Vec<String>,
    #[serde(default)]
    pub country: Vec<String>,
    #[serde(default)]
    pub cookie: Vec<String>,
    /// Roles of the visitor's verified token (`nf_jwt`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role: Vec<String>,
}

/// A `[[headers]]` rule of `jamstack.toml`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderRule {
    /// The 1-based line of the rule in `jamstack.toml`; 0 when unknown.
    pub line: u32,
    /// The path pattern the headers apply to.
    #[serde(rename = "for")]
    pub for_path: String,
    pub values: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestResponse {
    pub deploy_id: String,
    /// Hashes the controller does not hold yet; upload exactly these.
    pub missing: Vec<String>,
}

/// What the controller did with a bundle of blobs ([`blob_bundle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BundleResponse {
    /// Blobs stored now.
    pub stored: usize,
    /// Blobs it held already (another deploy or upload sent them).
    pub already_had: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalizeResponse {
    pub deploy_id: String,
    /// Whether the deploy went live on the site's production hostname.
    pub published: bool,
    /// The permanent link to this deploy.
    pub permalink: String,
    /// Where a preview or branch deploy is served (`deploy-preview-<pr>--` or
    /// `<branch>--` hostnames); `None` for production.
    pub alias_url: Option<String>,
}

/// How a job ended, as the runner saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum JobOutcome {
    /// The build command exited 0 and the deploy was finalized.
    Succeeded { deploy_id: String },
    /// The build could not produce a deploy: the command failed, the
    /// configuration was invalid, the image was missing. `message` is written
    /// for the site's owner and says what to do next.
    Failed { exit_code: Option<i64>, message: String },
    /// The build was cancelled on request.
    Cancelled,
    /// Nothing was built, on purpose: the commit asked for no build
    /// (`[skip ci]`), or the site's `ignore` command exited 0. `reason` says
    /// which.
    Skipped { reason: String },
}

/// How long one step of a build took, as the runner measured it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTiming {
    /// What the step did: `fetch`, `container setup`, `build`, ...
    pub name: String,
    pub millis: u64,
}

/// The body of `complete`: how the job ended, and how long each step the
/// runner ran took. The outcome's fields sit at the top level, so the body
/// of a protocol 9 runner (the outcome alone) reads as a completion
/// without timings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCompletion {
    #[serde(flatten)]
    pub outcome: JobOutcome,
    /// The steps in the order they ran; those a job did not reach are
    /// absent.
    #[serde(default)]
    pub step_timings: Vec<StepTiming>,
}

/// One JSON error shape for every error answer of the controller.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_is_tagged_for_readers_of_the_raw_json() {
        let json = serde_json::to_value(JobOutcome::Failed {
            exit_code: Some(2),
            message: "build command exited with 2".into(),
        })
        .unwrap();
        assert_eq!(json["result"], "failed");
        assert_eq!(json["exit_code"], 2);
    }

    #[test]
    fn skip_markers_are_found_in_any_case_and_anywhere_in_the_message() {
        assert_eq!(skip_ci_marker("Fix typo [skip ci]"), Some("[skip ci]"));
        assert_eq!(skip_ci_marker("[CI SKIP] docs\n\nbody"), Some("[ci skip]"));
        assert_eq!(
            skip_ci_marker("title\n\n[skip jamstack]"),
            Some("[skip jamstack]")
        );
        assert_eq!(skip_ci_marker("skip ci without brackets"), None);
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let token = Secret::new("ghs_supersecret");
        assert!(!format!("{token:?}").contains("supersecret"));
        let var = EnvVar {
            name: "API_KEY".into(),
            value: "supersecret".into(),
            secret: true,
        };
        assert!(!format!("{var:?}").contains("supersecret"));
        assert_eq!(serde_json::to_value(&token).unwrap(), "ghs_supersecret");
    }

    #[test]
    fn contexts_round_trip_through_their_names() {
        for context in [
            BuildContext::Production,
            BuildContext::DeployPreview,
            BuildContext::BranchDeploy,
        ] {
            assert_eq!(BuildContext::parse(context.as_str()), Some(context));
            let json = serde_json::to_string(&context).unwrap();
            assert_eq!(json, format!("\"{}\"", context.as_str()));
        }
    }
}

/// Every wire type survives a trip through JSON, and reads a fixed sample
/// of the JSON the other side sends: a renamed or retyped field fails here
/// before it fails between a runner and a controller.
#[cfg(test)]
mod json_round_trips {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    /// `value` serializes to exactly `sample`, and both `sample` and the
    /// serialized value read back as `value`.
    #[track_caller]
    fn check<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(value: T, sample: serde_json::Value) {
        let serialized = serde_json::to_value(&value).expect("serializes");
        assert_eq!(serialized, sample, "the JSON written differs from the sample");
        let read: T = serde_json::from_value(sample).expect("the sample reads");
        assert_eq!(read, value, "the sample reads as another value");
        let text = serde_json::to_string(&value).expect("serializes to text");
        assert_eq!(serde_json::from_str::<T>(&text).expect("reads back"), value);
    }

    fn settings() -> (SiteBuildSettings, serde_json::Value) {
        (
            SiteBuildSettings {
                timeout_seconds: Some(600),
                memory_mib: Some(1024),
                cpus: Some(1.5),
                pids: None,
                environment: vec![EnvVar {
                    name: "HUGO_ENV".into(),
                    value: "production".into(),
                    secret: false,
                }],
                cache: CacheRef {
                    key: "c-1-blog".into(),
                    generation: 2,
                },
                network: BuildNetwork::Off,
                private_hosts: vec!["10.0.0.0/8".into()],
                base: Some("sites/blog".into()),
                watch_paths: vec!["sites/blog/**".into(), "shared/**".into()],
            },
            json!({
                "timeout_seconds": 600, "memory_mib": 1024, "cpus": 1.5, "pids": null,
                "environment": [{"name": "HUGO_ENV", "value": "production", "secret": false}],
                "cache": {"key": "c-1-blog", "generation": 2},
                "network": "off", "private_hosts": ["10.0.0.0/8"],
                "base": "sites/blog", "watch_paths": ["sites/blog/**", "shared/**"]
            }),
        )
    }

    #[test]
    fn registration_and_connection() {
        check(
            RegisterRequest {
                registration_token: "jsreg_x".into(),
                name: "r1".into(),
                labels: vec!["hugo".into()],
                slots: 2,
            },
            json!({"registration_token": "jsreg_x", "name": "r1", "labels": ["hugo"], "slots": 2}),
        );
        check(
            RegisterResponse {
                runner_id: 3,
                token: "jsr_y".into(),
            },
            json!({"runner_id": 3, "token": "jsr_y"}),
        );
        check(
            ConnectRequest {
                protocol_version: 10,
                runner_name: "r1".into(),
            },
            json!({"protocol_version": 10, "runner_name": "r1"}),
        );
        check(
            ConnectResponse {
                protocol_version: 10,
                heartbeat_seconds: 20,
            },
            json!({"protocol_version": 10, "heartbeat_seconds": 20}),
        );
        check(
            VersionMismatch {
                controller_version: 10,
                runner_version: 8,
                message: "upgrade".into(),
            },
            json!({"controller_version": 10, "runner_version": 8, "message": "upgrade"}),
        );
        check(ErrorBody { error: "no".into() }, json!({"error": "no"}));
    }

    #[test]
    fn leasing() {
        check(
            LeaseRequest {
                runner_name: "r1".into(),
                wait_seconds: 30,
            },
            json!({"runner_name": "r1", "wait_seconds": 30}),
        );
        let (settings, settings_json) = settings();
        check(settings.clone(), settings_json.clone());
        check(
            JobLease {
                job_id: 7,
                lease_id: "l".into(),
                build_id: 5,
                attempt: 1,
                site: "blog".into(),
                repo_url: "https://example.com/blog.git".into(),
                commit_sha: String::new(),
                branch: "main".into(),
                context: BuildContext::DeployPreview,
                pr_number: Some(4),
                lease_seconds: 60,
                honour_skip_ci: true,
                trusted: false,
                verify_reachable_from: Some("main".into()),
                cached_commit: Some("b".repeat(40)),
                settings,
                git_token: Some(Secret::new("ghs_t")),
                incoming_hook: Some(IncomingHook {
                    title: "CMS publish".into(),
                    body: "{}".into(),
                }),
            },
            json!({
                "job_id": 7, "lease_id": "l", "build_id": 5, "attempt": 1, "site": "blog",
                "repo_url": "https://example.com/blog.git", "commit_sha": "", "branch": "main",
                "context": "deploy-preview", "pr_number": 4, "lease_seconds": 60,
                "honour_skip_ci": true, "trusted": false, "verify_reachable_from": "main",
                "cached_commit": "b".repeat(40), "settings": settings_json, "git_token": "ghs_t",
                "incoming_hook": {"title": "CMS publish", "body": "{}"}
            }),
        );
        check(BuildNetwork::Public, json!("public"));
        check(BuildContext::BranchDeploy, json!("branch-deploy"));
        check(
            CacheRef {
                key: "k".into(),
                generation: 0,
            },
            json!({"key": "k", "generation": 0}),
        );
        check(
            EnvVar {
                name: "TOKEN".into(),
                value: "v".into(),
                secret: true,
            },
            json!({"name": "TOKEN", "value": "v", "secret": true}),
        );
        check(Secret::new("s"), json!("s"));
    }

    #[test]
    fn a_lease_from_before_the_optional_fields_still_reads() {
        let (_, settings_json) = settings();
        let lease: JobLease = serde_json::from_value(json!({
            "job_id": 7, "lease_id": "l", "build_id": 5, "attempt": 1, "site": "blog",
            "repo_url": "r", "commit_sha": "", "branch": "main", "context": "production",
            "pr_number": null, "lease_seconds": 60, "trusted": true,
            "settings": settings_json, "git_token": null
        }))
        .unwrap();
        assert!(!lease.honour_skip_ci);
        assert_eq!(lease.verify_reachable_from, None);
        assert_eq!(lease.cached_commit, None);
    }

    #[test]
    fn settings_from_before_base_and_watch_paths_still_read() {
        let settings: SiteBuildSettings = serde_json::from_value(json!({
            "timeout_seconds": null, "memory_mib": null, "cpus": null, "pids": null,
            "environment": [], "cache": {"key": "k", "generation": 0}
        }))
        .unwrap();
        assert_eq!(settings.base, None);
        assert!(settings.watch_paths.is_empty());
    }

    #[test]
    fn building() {
        check(HeartbeatResponse { cancel: true }, json!({"cancel": true}));
        check(
            CommitInfo {
                sha: "a".repeat(40),
                message: "m".into(),
                author: "octo".into(),
                reachable: Some(true),
            },
            json!({"sha": "a".repeat(40), "message": "m", "author": "octo", "reachable": true}),
        );
        check(
            LogAppendResponse { stored_length: 42 },
            json!({"stored_length": 42}),
        );
    }

    #[test]
    fn uploading() {
        let file = ManifestFile {
            path: "index.html".into(),
            sha256: "ab".into(),
            size: 3,
            mode: 0o644,
        };
        let file_json = json!({"path": "index.html", "sha256": "ab", "size": 3, "mode": 420});
        check(file.clone(), file_json.clone());
        let redirect = RedirectRule {
            line: 3,
            from: "/old".into(),
            to: "/new".into(),
            status: 301,
            force: false,
            query: BTreeMap::from([("id".into(), ":id".into())]),
            conditions: RedirectConditions {
                language: vec!["en".into()],
                country: vec!["DE".into()],
                cookie: vec!["beta".into()],
                role: Vec::new(),
            },
            headers: BTreeMap::from([("X-From".into(), "edge".into())]),
            signed: None,
        };
        let redirect_json = json!({
            "line": 3, "from": "/old", "to": "/new", "status": 301, "force": false,
            "query": {"id": ":id"},
            "conditions": {"language": ["en"], "country": ["DE"], "cookie": ["beta"]},
            "headers": {"X-From": "edge"}
        });
        check(redirect.clone(), redirect_json.clone());
        check(
            redirect.conditions.clone(),
            json!({"language": ["en"], "country": ["DE"], "cookie": ["beta"]}),
        );
        let header = HeaderRule {
            line: 9,
            for_path: "/*".into(),
            values: BTreeMap::from([("Cache-Control".into(), "no-cache".into())]),
        };
        let header_json = json!({"line": 9, "for": "/*", "values": {"Cache-Control": "no-cache"}});
        check(header.clone(), header_json.clone());
        check(
            DeployManifest {
                files: vec![file],
                redirects: vec![redirect],
                headers: vec![header],
                base: None,
            },
            json!({"files": [file_json], "redirects": [redirect_json], "headers": [header_json]}),
        );
        check(
            DeployManifest {
                files: Vec::new(),
                base: Some(ManifestBase {
                    deploy_id: "d0".into(),
                    removed: vec!["old.html".into()],
                }),
                ..DeployManifest::default()
            },
            json!({"files": [], "redirects": [], "headers": [], "base": {"deploy_id": "d0", "removed": ["old.html"]}}),
        );
        check(
            ManifestResponse {
                deploy_id: "d1".into(),
                missing: vec!["ab".into()],
            },
            json!({"deploy_id": "d1", "missing": ["ab"]}),
        );
        check(
            FinalizeResponse {
                deploy_id: "d1".into(),
                published: false,
                permalink: "http://d1--blog.localhost".into(),
                alias_url: Some("http://main--blog.localhost".into()),
            },
            json!({
                "deploy_id": "d1", "published": false, "permalink": "http://d1--blog.localhost",
                "alias_url": "http://main--blog.localhost"
            }),
        );
    }

    #[test]
    fn outcomes() {
        check(
            JobOutcome::Succeeded {
                deploy_id: "d1".into(),
            },
            json!({"result": "succeeded", "deploy_id": "d1"}),
        );
        check(
            JobOutcome::Failed {
                exit_code: Some(2),
                message: "exited with 2".into(),
            },
            json!({"result": "failed", "exit_code": 2, "message": "exited with 2"}),
        );
        check(JobOutcome::Cancelled, json!({"result": "cancelled"}));
        check(
            JobOutcome::Skipped {
                reason: "[skip ci]".into(),
            },
            json!({"result": "skipped", "reason": "[skip ci]"}),
        );
    }

    #[test]
    fn completions_carry_the_outcome_and_the_step_timings() {
        let fetch = StepTiming {
            name: "fetch".into(),
            millis: 5,
        };
        check(fetch.clone(), json!({"name": "fetch", "millis": 5}));
        check(
            JobCompletion {
                outcome: JobOutcome::Succeeded {
                    deploy_id: "d1".into(),
                },
                step_timings: vec![
                    fetch,
                    StepTiming {
                        name: "build".into(),
                        millis: 1200,
                    },
                ],
            },
            json!({
                "result": "succeeded", "deploy_id": "d1",
                "step_timings": [{"name": "fetch", "millis": 5}, {"name": "build", "millis": 1200}]
            }),
        );
        check(
            JobCompletion {
                outcome: JobOutcome::Cancelled,
                step_timings: Vec::new(),
            },
            json!({"result": "cancelled", "step_timings": []}),
        );
    }

    /// A protocol 9 runner sent the outcome alone; it reads as a completion
    /// without timings.
    #[test]
    fn the_outcome_alone_of_a_runner_one_version_behind_reads_as_a_completion() {
        for (sent, outcome) in [
            (
                json!({"result": "failed", "exit_code": null, "message": "no image"}),
                JobOutcome::Failed {
                    exit_code: None,
                    message: "no image".into(),
                },
            ),
            (json!({"result": "cancelled"}), JobOutcome::Cancelled),
        ] {
            let completion: JobCompletion = serde_json::from_value(sent).unwrap();
            assert_eq!(
                completion,
                JobCompletion {
                    outcome,
                    step_timings: Vec::new()
                }
            );
        }
    }
}
