//! Taking a deploy in: one implementation behind two doors, the runner
//! protocol (`/runner/v1`, a build's output) and the REST API's direct
//! deploys (`/api/v1`, a folder on someone's machine). Both send a manifest,
//! upload the blobs the controller lacks, and finalize; the checks, the
//! blob verification and the preparation for serving are these.

use super::Deploys;
use super::events::DeployEvent;
use super::{
    blob_store,
    staging::{self, StageError},
};
use crate::db::{BaseRefused, Deploy, FinalizeOutcome, NewFileList, ResolvedChanges, StoredBlob};
use crate::notifications::Notifications;
use axum::body::Body;
use axum::http::HeaderMap;
use jamstack_proto::{BuildContext, BundleResponse, DeployManifest, ManifestFile, blob_bundle};
use jamstack_rules::{self as rules, RuleSet};

/// The largest `_redirects` or `_headers` file read at finalize: the size
/// the runner refuses to upload too.
const MAX_RULE_FILE: usize = jamstack_proto::MAX_RULE_FILE_BYTES as usize;

/// Why a deploy or one of its files was not taken in. The messages say
/// what to fix; `crate::error` turns them into HTTP answers.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// What was sent is wrong (a path, a hash, a rule, a missing blob).
    #[error("{0}")]
    Refused(String),
    /// A file or the whole deploy is over a limit.
    #[error("{0}")]
    TooLarge(String),
    /// The manifest's base deploy cannot be used: send every file.
    #[error("{0}")]
    BaseRefused(String),
    /// The store failed; nothing the sender can fix.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

type IntakeResult<T> = Result<T, IntakeError>;

fn refused(message: impl Into<String>) -> IntakeError {
    IntakeError::Refused(message.into())
}

/// Checks a manifest before anything is recorded: safe paths, well-formed
/// hashes, the deploy limits, and jamstack.toml's rules (checked now,
/// before any file travels). Returns those rules.
pub fn check_manifest(state: &Deploys, manifest: &DeployManifest) -> IntakeResult<RuleSet> {
    super::validate_manifest(&manifest.files).map_err(|e| refused(e.to_string()))?;
    let limits = &state.config.limits;
    match &manifest.base {
        None => super::check_limits(&manifest.files, limits),
        // The totals are checked once the changes are resolved.
        Some(base) => {
            super::validate_removals(&manifest.files, &base.removed).map_err(|e| refused(e.to_string()))?;
            super::check_file_sizes(&manifest.files, limits)
        }
    }
    .map_err(|e| IntakeError::TooLarge(e.to_string()))?;
    rules::from_config(&manifest.redirects, &manifest.headers)
        .and_then(|set| set.compile().map(|_| set))
        .and_then(|set| answerable(state, &set).map(|()| set))
        .map_err(|e| refused(format!("{e}; fix the rule and send the manifest again")))
}

/// Refuses rules with conditions this controller is not set up to answer:
/// whether it can is known here, not on the runner or the CLI, so the rule
/// is named at its file and line when the deploy comes in.
fn answerable(state: &Deploys, set: &RuleSet) -> Result<(), rules::RuleError> {
    if !state.config.visitors.knows_countries()
        && let Some(rule) = set.first_rule_needing(rules::Needs::Country)
    {
        return Err(rules::RuleError {
            origin: rule.origin.clone(),
            message: "`Country` conditions need to know where visitors are, and this server's operator has not \
                      set that up (--geoip-database, or --country-header with --trusted-proxies); ask them to, \
                      or remove the condition (a `Language` condition may do)"
                .to_owned(),
        });
    }
    Ok(())
}

/// A checked manifest's files, ready to record.
#[derive(Debug)]
pub enum ManifestFiles<'a> {
    /// Every file.
    Full(&'a [ManifestFile]),
    /// The changes since its base, resolved against it.
    Changes(ResolvedChanges),
}

impl ManifestFiles<'_> {
    pub fn as_list(&self) -> NewFileList<'_> {
        match self {
            ManifestFiles::Full(files) => NewFileList::Full(files),
            ManifestFiles::Changes(changes) => NewFileList::Changes(changes),
        }
    }
}

/// The files a checked manifest of `site_id` records: every file, or its
/// changes resolved against its base deploy, with the deploy limits checked
/// on what the deploy will hold. A base that cannot be used is refused
/// (412) with nothing recorded, and the sender sends every file.
pub async fn resolve_files<'a>(
    state: &Deploys,
    site_id: i64,
    manifest: &'a DeployManifest,
) -> IntakeResult<ManifestFiles<'a>> {
    let Some(base) = &manifest.base else {
        return Ok(ManifestFiles::Full(&manifest.files));
    };
    let changes = state
        .db
        .resolve_changes(site_id, &base.deploy_id, &manifest.files, &base.removed)
        .await?
        .map_err(base_refused)?;
    if changes.file_count == 0 {
        return Err(refused(
            "the manifest's changes leave the deploy without files; deploy a folder that has at least an index.html",
        ));
    }
    super::check_totals(changes.file_count, changes.total_size, &state.config.limits)
        .map_err(|e| IntakeError::TooLarge(e.to_string()))?;
    Ok(ManifestFiles::Changes(changes))
}

fn base_refused(refusal: BaseRefused) -> IntakeError {
    IntakeError::BaseRefused(format!("{refusal}; send every file instead"))
}

/// What recording a manifest's files failed with: a base removed since its
/// changes were resolved is refused like one missing from the start.
pub fn recording_failed(error: anyhow::Error) -> IntakeError {
    match error.downcast::<BaseRefused>() {
        Ok(refusal) => base_refused(refusal),
        Err(error) => IntakeError::Internal(error),
    }
}

/// Keeps a manifest's jamstack.toml rules with its deploy until finalize.
pub async fn keep_config_rules(state: &Deploys, deploy: &Deploy, config_rules: &RuleSet) -> IntakeResult<()> {
    if deploy.state != "ready" {
        let json = serde_json::to_string(config_rules).map_err(anyhow::Error::from)?;
        state.db.save_config_rules(&deploy.id, &json).await?;
    }
    Ok(())
}

/// The distinct hashes of a recorded deploy's files the controller holds no
/// blob for, across all sites: what must be uploaded. One query over the
/// files just recorded, whatever their number.
pub async fn required_blobs(state: &Deploys, deploy: &Deploy) -> IntakeResult<Vec<String>> {
    Ok(state.db.missing_blobs_of_deploy(&deploy.id).await?)
}

/// What receiving a blob did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Stored,
    AlreadyHad,
}

/// Receives one blob: read into memory when small ([`SMALL_BLOB`]),
/// otherwise streamed to a staging file while hashed and counted; verified
/// against its name, then moved into the blob store under a key of its own
/// and recorded.
pub async fn receive_blob(
    state: &Deploys,
    sha256: &str,
    headers: &HeaderMap,
    body: Body,
) -> IntakeResult<Received> {
    if !super::is_sha256_hex(sha256) {
        return Err(refused(format!("`{sha256}` is not a lowercase hex SHA-256")));
    }
    if state.db.blob_key(sha256).await?.is_some() {
        return Ok(Received::AlreadyHad);
    }
    let limit = state.config.limits.max_file_size;
    let too_large = || {
        IntakeError::TooLarge(format!(
            "blob {sha256} is over the limit of {} for one file (controller setting --max-file-size-mb)",
            super::human_bytes(limit)
        ))
    };
    let announced = announced_length(headers);
    if announced.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    if let Some(length) = announced
        && length <= SMALL_BLOB
    {
        return receive_small_blob(state, sha256, body, length).await;
    }
    let staged = match staging::stage(&state.config.staging_dir(), body.into_data_stream(), limit).await {
        Ok(staged) => staged,
        Err(StageError::TooLarge { .. }) => return Err(too_large()),
        Err(StageError::Body(e)) => {
            return Err(refused(format!("the upload of blob {sha256} broke off: {e}")));
        }
        Err(StageError::Io(e)) => return Err(anyhow::Error::from(e).context("staging a blob").into()),
    };
    if staged.sha256 != sha256 {
        return Err(refused(format!(
            "the content hashes to {}, not to {sha256}: the upload was corrupted or named the wrong blob",
            staged.sha256
        )));
    }
    let key = blob_store::new_key(sha256);
    state
        .blobs
        .put_file(&key, &staged.file)
        .await
        .map_err(|e| anyhow::Error::from(e).context(format!("storing blob {sha256}")))?;
    record_received(state, sha256, staged.size as i64, &key).await
}

/// The `Content-Length` a request announces, if any.
fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Blobs up to this size (by their `Content-Length`) are received in
/// memory and written in one step; larger ones stream through a staging
/// file. Hashing this much takes well under a millisecond.
const SMALL_BLOB: u64 = 256 * 1024;

/// [`receive_blob`] for a blob of `length` bytes, at most [`SMALL_BLOB`].
async fn receive_small_blob(
    state: &Deploys,
    sha256: &str,
    body: Body,
    length: u64,
) -> IntakeResult<Received> {
    // The connection enforces the announced length; the bound is the
    // announced length all the same.
    let bytes = axum::body::to_bytes(body, length as usize)
        .await
        .map_err(|e| refused(format!("the upload of blob {sha256} broke off: {e}")))?;
    let hashed = blob_store::sha256_hex(&bytes);
    if hashed != sha256 {
        return Err(refused(format!(
            "the content hashes to {hashed}, not to {sha256}: the upload was corrupted or named the wrong blob"
        )));
    }
    let size = bytes.len() as i64;
    let key = blob_store::new_key(sha256);
    state
        .blobs
        .put_received(&key, bytes)
        .await
        .map_err(|e| anyhow::Error::from(e).context(format!("storing blob {sha256}")))?;
    record_received(state, sha256, size, &key).await
}

/// Receives a bundle of small blobs ([`jamstack_proto::blob_bundle`]):
/// read whole (it is bounded), every hash verified before anything is
/// stored, the blobs not held yet written together and recorded in one
/// transaction. A bundle with one wrong blob stores none of them.
pub async fn receive_bundle(
    state: &Deploys,
    headers: &HeaderMap,
    body: Body,
) -> IntakeResult<BundleResponse> {
    let too_large = || {
        IntakeError::TooLarge(format!(
            "a blob bundle may have at most {}; send the blobs in smaller bundles",
            super::human_bytes(blob_bundle::MAX_BUNDLE_BYTES as u64)
        ))
    };
    let announced = announced_length(headers);
    if announced.is_some_and(|length| length > blob_bundle::MAX_BUNDLE_BYTES as u64) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, blob_bundle::MAX_BUNDLE_BYTES)
        .await
        .map_err(|e| {
            refused(format!(
                "the blob bundle broke off or is over {}: {e}",
                super::human_bytes(blob_bundle::MAX_BUNDLE_BYTES as u64)
            ))
        })?;
    let frames = blob_bundle::parse(&body).map_err(|e| refused(e.to_string()))?;
    let limit = state.config.limits.max_file_size;
    if let Some(frame) = frames.iter().find(|f| f.bytes.len() as u64 > limit) {
        return Err(IntakeError::TooLarge(format!(
            "blob {} is over the limit of {} for one file (controller setting --max-file-size-mb)",
            frame.sha256,
            super::human_bytes(limit)
        )));
    }
    // Every hash checked first, off the async threads.
    let checked = {
        let (body, frames) = (body.clone(), frames.clone());
        tokio::task::spawn_blocking(move || {
            frames.iter().find_map(|frame| {
                let hashed = blob_store::sha256_hex(&body[frame.bytes.clone()]);
                (hashed != frame.sha256).then(|| (frame.sha256.clone(), hashed))
            })
        })
        .await
        .map_err(anyhow::Error::from)?
    };
    if let Some((named, hashed)) = checked {
        return Err(refused(format!(
            "blob {named} of the bundle hashes to {hashed}: the upload was corrupted or named the wrong \
             blob; nothing of the bundle was stored"
        )));
    }
    let hashes: Vec<&str> = frames.iter().map(|f| f.sha256.as_str()).collect();
    let held = state.db.recorded_blobs_among(&hashes).await?;
    let mut seen = std::collections::HashSet::new();
    let new: Vec<(&blob_bundle::Frame, String)> = frames
        .iter()
        .filter(|frame| !held.contains(&frame.sha256) && seen.insert(frame.sha256.as_str()))
        .map(|frame| (frame, blob_store::new_key(&frame.sha256)))
        .collect();
    state
        .blobs
        .put_received_many(
            new.iter()
                .map(|(frame, key)| (key.clone(), body.slice(frame.bytes.clone())))
                .collect(),
        )
        .await
        .map_err(|e| anyhow::Error::from(e).context("storing a bundle of blobs"))?;
    let rows: Vec<StoredBlob<'_>> = new
        .iter()
        .map(|(frame, key)| StoredBlob {
            sha256: &frame.sha256,
            size: frame.bytes.len() as i64,
            key,
        })
        .collect();
    let recorded = state.db.record_stored_blobs(&rows).await?;
    // Another upload of the same content was recorded first: its copy
    // stays, ours goes.
    for (frame, key) in &new {
        if !recorded.contains(&frame.sha256) {
            state
                .blobs
                .delete(key)
                .await
                .map_err(|e| anyhow::Error::from(e).context("deleting a duplicate blob"))?;
        }
    }
    Ok(BundleResponse {
        stored: recorded.len(),
        already_had: frames.len() - recorded.len(),
    })
}

/// Records a blob just stored under `key`; when another upload of the same
/// content was recorded first, deletes this copy.
async fn record_received(state: &Deploys, sha256: &str, size: i64, key: &str) -> IntakeResult<Received> {
    if !state.db.record_stored_blob(sha256, size, key).await? {
        state
            .blobs
            .delete(key)
            .await
            .map_err(|e| anyhow::Error::from(e).context("deleting a duplicate blob"))?;
    }
    Ok(Received::Stored)
}

/// Finalizing before every blob arrived (the runner protocol's answer).
pub fn missing_blobs(count: i64) -> IntakeError {
    refused(format!(
        "{count} file(s) of the manifest have no uploaded content yet; upload every missing blob, then finalize"
    ))
}

/// What finalizing a runner's deploy came to.
pub enum BuildDeployFinalized {
    /// Ready, and live when `published` (a production build).
    Ready {
        deploy_id: String,
        site_name: String,
        /// The preview or branch hostname it answers on, if any.
        alias: Option<String>,
        published: bool,
    },
    /// The job's lease expired or moved while the runner uploaded.
    StaleLease,
    /// What was deleted meanwhile: the deploy or its site.
    Gone(&'static str),
}

/// Makes the deploy of build `build_id` ready and, for a production build,
/// live: its blobs, sizes and rules are checked, then one transaction
/// checks the lease, marks it ready and moves the pointers
/// (`Database::finalize_deploy`).
pub async fn finalize_build_deploy(
    state: &Deploys,
    notifications: &Notifications,
    build_id: i64,
    job_id: i64,
    lease_id: &str,
) -> IntakeResult<BuildDeployFinalized> {
    let db = &state.db;
    let deploy = db
        .deploy_of_build(build_id)
        .await?
        .ok_or_else(|| refused("no manifest was sent for this job; send it before finalizing"))?;
    if deploy.state != "ready" {
        prepare_for_serving(state, &deploy.id).await?;
    }
    let context = BuildContext::parse(&deploy.context).unwrap_or(BuildContext::Production);
    let mut alias = super::alias_for(context, &deploy.branch, deploy.pr_number);
    if let Some(name) = &alias
        && db.is_alias_retired(deploy.site_id, name).await?
    {
        // Its pull request closed or its branch was deleted while it built:
        // the deploy is kept (permalink) but the hostname stays down.
        alias = None;
    }
    let published = match db
        .finalize_deploy(&deploy.id, job_id, lease_id, alias.as_deref())
        .await?
    {
        FinalizeOutcome::Ready { published } => published,
        FinalizeOutcome::MissingBlobs(count) => return Err(missing_blobs(count)),
        FinalizeOutcome::StaleLease => return Ok(BuildDeployFinalized::StaleLease),
        FinalizeOutcome::NotFound => return Ok(BuildDeployFinalized::Gone("deploy")),
    };
    after_ready(state, &deploy.id);
    state
        .announce(DeployEvent::SiteChanged {
            site_id: deploy.site_id,
        })
        .await;
    let Some(site) = db.site_by_id(deploy.site_id).await? else {
        return Ok(BuildDeployFinalized::Gone("site"));
    };
    tracing::info!(build = build_id, deploy = %deploy.id, published, "deploy ready");
    if published {
        crate::notifications::deploy_changed(
            notifications,
            deploy.site_id,
            crate::notifications::DeployChange::Published,
            Some(&deploy.id),
        )
        .await;
    }
    Ok(BuildDeployFinalized::Ready {
        deploy_id: deploy.id,
        site_name: site.name,
        alias,
        published,
    })
}

/// What must hold before a deploy goes ready, beyond its blobs: its rules
/// read and checked (`_redirects` and `_headers` from the publish directory,
/// then jamstack.toml's). Compressed variants come after it is ready
/// ([`after_ready`]).
pub async fn prepare_for_serving(state: &Deploys, deploy_id: &str) -> IntakeResult<()> {
    let missing = state.db.count_missing_blobs(deploy_id).await?;
    if missing > 0 {
        return Err(missing_blobs(missing));
    }
    refuse_false_sizes(state, deploy_id).await?;
    // Every blob of the deploy on disk before it can go ready: one sync for
    // all of them (see `BlobStore::make_durable`).
    state
        .blobs
        .make_durable()
        .await
        .map_err(|e| anyhow::Error::from(e).context("syncing the blob store before the deploy goes ready"))?;
    let config_json = state.db.config_rules(deploy_id).await?;
    let config_rules: RuleSet = match &config_json {
        Some(json) => serde_json::from_str(json).map_err(anyhow::Error::from)?,
        None => RuleSet::default(),
    };
    let file_rules = RuleSet {
        redirects: match read_rule_file(state, deploy_id, "_redirects").await? {
            Some(text) => rules::parse_redirects_file(&text).map_err(rule_mistake)?,
            None => Vec::new(),
        },
        headers: match read_rule_file(state, deploy_id, "_headers").await? {
            Some(text) => rules::parse_headers_file(&text).map_err(rule_mistake)?,
            None => Vec::new(),
        },
    };
    let all = file_rules.then(config_rules);
    all.compile().map_err(rule_mistake)?;
    answerable(state, &all).map_err(rule_mistake)?;
    if let Some(rule) = all.first_rule_needing(rules::Needs::Role)
        && let Some(deploy) = state.db.deploy(deploy_id).await?
        && state.db.site_identity(deploy.site_id).await?.is_none()
    {
        return Err(rule_mistake(rules::RuleError {
            origin: rule.origin.clone(),
            message:
                "`Role` conditions check the visitor's `nf_jwt` token, and this site has no key to verify \
                      it with; set one (`jamstack sites identity`, the site's settings page, or PUT \
                      /api/v1/sites/{site}/identity), or remove the condition"
                    .to_owned(),
        }));
    }
    let json = serde_json::to_string(&all).map_err(anyhow::Error::from)?;
    state
        .db
        .save_deploy_rules(deploy_id, config_json.as_deref().unwrap_or("{}"), &json)
        .await?;
    Ok(())
}

/// A manifest declares each file's size, and the content uploaded (or
/// stored before, by any deploy) has its own: a deploy whose sizes differ
/// is refused, so no size a manifest made up is ever believed (served as a
/// `Content-Length`, counted against the limits).
async fn refuse_false_sizes(state: &Deploys, deploy_id: &str) -> IntakeResult<()> {
    let false_sizes = state.db.files_with_false_sizes(deploy_id).await?;
    if false_sizes.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = false_sizes
        .iter()
        .map(|(path, declared, stored)| {
            format!("`{path}` is declared as {declared} bytes but its content is {stored} bytes")
        })
        .collect();
    Err(refused(format!(
        "the manifest does not match the uploaded files: {}; send a manifest made from the files themselves \
         (their sizes and SHA-256 hashes), then upload and finalize again",
        named.join("; ")
    )))
}

/// What follows a deploy going ready: the compressed variants of its new
/// files are made in the background (see [`super::compress`]); it is served
/// meanwhile, its files as they are.
pub fn after_ready(state: &Deploys, deploy_id: &str) {
    super::compress::queue(state, deploy_id);
}

fn rule_mistake(error: rules::RuleError) -> IntakeError {
    refused(format!("{error}; fix the rule and push again"))
}

/// The text of a rule file at the root of the deploy, if it has one.
async fn read_rule_file(state: &Deploys, deploy_id: &str, name: &str) -> IntakeResult<Option<String>> {
    let Some(key) = state.db.deploy_file_key(deploy_id, name).await? else {
        return Ok(None);
    };
    let bytes = state
        .blobs
        .read(&key)
        .await
        .map_err(|e| anyhow::Error::from(e).context(format!("reading {name}")))?
        .ok_or_else(|| anyhow::anyhow!("{name} of deploy {deploy_id} is missing from the blob store"))?;
    if bytes.len() > MAX_RULE_FILE {
        return Err(refused(format!(
            "{name} is larger than {}; use splats and placeholders to say the same in fewer rules",
            super::human_bytes(MAX_RULE_FILE as u64)
        )));
    }
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| refused(format!("{name} is not UTF-8 text; save it as UTF-8")))
}
