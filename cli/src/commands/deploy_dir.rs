//! `jamstack deploy <dir>`: Netlify's digest flow for a person. The folder
//! is walked and hashed (on every core) by the runner's own manifest
//! builder ([`jamstack_deploy_files`]), so symlinks leaving the folder are
//! refused just as in a build; files unchanged since the folder's last
//! deploy are not read again (its hash cache, kept in the user's cache
//! directory);
//! the manifest goes to the controller, which answers with the hashes it
//! lacks across all sites; only those are uploaded, several at a time,
//! behind a progress bar; then the deploy is finalized.

use crate::args::DeployArgs;
use crate::client::Api;
use crate::error::{CliError, CliResult};
use crate::output::{bytes, print_json};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use jamstack_deploy_files::Manifest;
use jamstack_deploy_files::upload::Bundle;
use jamstack_proto::{DeployManifest, ErrorBody, blob_bundle, routes};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;

/// The body of a direct deploy: the manifest, and the branch and title
/// when given. Serialized as it is, not through a `serde_json::Value`: for
/// 100,000 files that tree cost as much as the request itself.
#[derive(serde::Serialize)]
struct DirectDeployRequest<'a> {
    #[serde(flatten)]
    manifest: &'a DeployManifest,
    #[serde(skip_serializing_if = "Option::is_none")]
    branch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
}

impl<'a> DirectDeployRequest<'a> {
    fn new(args: &'a DeployArgs, manifest: &'a DeployManifest) -> Self {
        DirectDeployRequest {
            manifest,
            branch: args.branch.as_deref(),
            title: args.title.as_deref(),
        }
    }
}

/// Blobs uploaded at once.
const PARALLEL_UPLOADS: usize = 4;

pub async fn run(api: &Api, json: bool, args: DeployArgs) -> CliResult {
    let dir = args.dir.clone();
    if !dir.is_dir() {
        return Err(CliError::usage(format!(
            "{} is not a folder; give the folder to deploy, e.g. `jamstack deploy public --site {}`",
            dir.display(),
            args.site
        )));
    }
    // Deploying the same folder again reads only the files that changed.
    let cache = crate::config::hash_cache_dir(|name| std::env::var(name).ok());
    let mut manifest = tokio::task::spawn_blocking(move || {
        use jamstack_deploy_files::{build_manifest, build_manifest_with_cache, hash_cache};
        match (cache, dir.canonicalize()) {
            (Some(cache), Ok(root)) => build_manifest_with_cache(&dir, &hash_cache::file_for(&cache, &root)),
            _ => build_manifest(&dir),
        }
    })
    .await
    .map_err(|e| CliError::error(format!("hashing the folder failed: {e}")))??;
    let file_count = manifest.files.len();
    let total: u64 = manifest.files.iter().map(|f| f.size).sum();
    if !json {
        let unchanged = file_count - manifest.hashed_files;
        let reused = if unchanged > 0 {
            format!("; {unchanged} unchanged since the last deploy were not read again")
        } else {
            String::new()
        };
        eprintln!(
            "Hashed {} of {file_count} files ({}) in {}{reused}",
            manifest.hashed_files,
            bytes(total),
            args.dir.display()
        );
    }
    let created = create_deploy(api, json, &args, &mut manifest).await?;
    let deploy_id = created
        .get("deploy_id")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::error(format!("the controller's answer names no deploy_id: {created}")))?
        .to_owned();
    let required: Vec<String> = created
        .get("required")
        .and_then(Value::as_array)
        .map(|hashes| {
            hashes
                .iter()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let wanted = manifest.blobs_for::<CliError>(&required)?;
    let upload_bytes: u64 = wanted.iter().map(|blob| blob.size).sum();
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(upload_bytes)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("Uploading {} files", wanted.len()));
    jamstack_deploy_files::upload::upload_blobs(
        wanted,
        PARALLEL_UPLOADS,
        |blob| put_blob(api, &bar, blob.sha256, blob.source),
        |bundle| put_bundle(api, &bar, bundle),
    )
    .await?;
    bar.finish_and_clear();
    if !json {
        if required.is_empty() {
            eprintln!("Nothing to upload: the controller already has all {file_count} files");
        } else {
            let had = if required.len() < file_count {
                "; the controller had the rest"
            } else {
                ""
            };
            eprintln!(
                "Uploaded {} of {file_count} files ({}){had}",
                required.len(),
                bytes(upload_bytes)
            );
        }
    }
    let finalized = api
        .post(
            &routes::api::deploy_finalize(&args.site, &deploy_id),
            &json!({"publish": args.prod}),
        )
        .await?;
    manifest.record_deploy(&deploy_id);
    if json {
        let mut report = finalized;
        if let Value::Object(fields) = &mut report {
            fields.insert("uploaded".to_owned(), json!(required.len()));
        }
        print_json(&report);
        return Ok(());
    }
    let permalink = finalized.get("permalink").and_then(Value::as_str).unwrap_or("-");
    println!("Deploy {deploy_id} is ready at {permalink}");
    if args.prod {
        match finalized.get("url").and_then(Value::as_str) {
            Some(url) => println!("Published: live at {url}"),
            None => println!("Published on {}'s production hostname", args.site),
        }
    } else {
        println!(
            "Draft: only its permalink serves it; publish it with `jamstack deploys publish {} {deploy_id}`",
            args.site
        );
    }
    Ok(())
}

/// Records the deploy: sends only the changes since the folder's last
/// deploy when that is known, and every file when it is not or the
/// controller cannot use that deploy (412).
async fn create_deploy(
    api: &Api,
    json: bool,
    args: &DeployArgs,
    manifest: &mut Manifest,
) -> CliResult<Value> {
    let path = routes::api::site_deploys(&args.site);
    if let Some(changes) = manifest.changes() {
        let base = changes.base.as_ref().map_or("", |base| base.deploy_id.as_str());
        let removed = changes.base.as_ref().map_or(0, |base| base.removed.len());
        if !json {
            eprintln!(
                "Sending only the changes since deploy {base}: {} files added or changed, {removed} removed",
                changes.files.len()
            );
        }
        let response = api
            .request(Method::POST, &path)
            .json(&DirectDeployRequest::new(args, &changes))
            .send()
            .await
            .map_err(|e| api.unreachable(e))?;
        if response.status() != reqwest::StatusCode::PRECONDITION_FAILED {
            return api.check(response).await?.json().await.map_err(|e| {
                CliError::error(format!("the controller's answer is not the JSON expected: {e}"))
            });
        }
        if !json {
            let why = response
                .json::<ErrorBody>()
                .await
                .map(|body| body.error)
                .unwrap_or_default();
            eprintln!("Sending every file instead; the controller said: {why}");
        }
    }
    let wire = manifest.take_wire();
    api.post(&path, &DirectDeployRequest::new(args, &wire)).await
}

/// Sends small blobs in one request; to a controller that takes no
/// bundles (older than this CLI), one by one instead.
async fn put_bundle(api: &Api, bar: &ProgressBar, bundle: Bundle) -> CliResult {
    let blobs = bundle.blobs.clone();
    let body = tokio::task::spawn_blocking(move || bundle.body())
        .await
        .map_err(|e| CliError::error(format!("reading the folder: {e}")))?
        .map_err(|e| CliError::error(format!("reading the folder: {e}")))?;
    let response = api
        .request(Method::POST, routes::api::BLOB_BUNDLES)
        .header(reqwest::header::CONTENT_TYPE, blob_bundle::CONTENT_TYPE)
        .body(body)
        .send()
        .await
        .map_err(|e| api.unreachable(e))?;
    if matches!(
        response.status(),
        reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::METHOD_NOT_ALLOWED
    ) {
        for blob in blobs {
            put_blob(api, bar, blob.sha256, blob.source).await?;
        }
        return Ok(());
    }
    api.check(response).await?;
    bar.inc(blobs.iter().map(|blob| blob.size).sum());
    Ok(())
}

async fn put_blob(api: &Api, bar: &ProgressBar, hash: String, source: PathBuf) -> CliResult {
    let file = tokio::fs::File::open(&source)
        .await
        .map_err(|e| CliError::error(format!("reading {}: {e}", source.display())))?;
    let size = file.metadata().await?.len();
    let progress = bar.clone();
    let body = tokio_util::io::ReaderStream::new(file).inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            progress.inc(chunk.len() as u64);
        }
    });
    api.send(
        api.request(Method::PUT, &routes::api::blob(&hash))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(body)),
    )
    .await?;
    Ok(())
}
