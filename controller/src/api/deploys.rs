use super::find_site;
use super::pagination::PageParams;
use super::pagination::{Paged, Pagination};
use crate::auth::{Admin, CanDeploy, CanRead};
use crate::db::{Database, Deploy, FinalizeOutcome, Site};
use crate::deploys::Deploys;
use crate::deploys::events::DeployEvent;
use crate::deploys::intake::{self, Received};
use crate::deploys::retention::{self, GcReport};
use crate::deploys::{self, FileChange};
use crate::error::{AppResult, bad_request, conflict, not_found};
use crate::metrics::Metrics;
use crate::notifications::Notifications;
use crate::urls::Urls;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jamstack_proto::ErrorBody;
use jamstack_proto::{BundleResponse, DeployManifest, HeaderRule, ManifestBase, ManifestFile, RedirectRule};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeployView {
    #[serde(flatten)]
    pub deploy: Deploy,
    pub published: bool,
    /// Where this deploy is served whatever is published.
    pub permalink: String,
    /// The site's own address, when this is the deploy it serves.
    pub url: Option<String>,
}

fn deploy_view(urls: &Urls, site: &Site, deploy: Deploy) -> DeployView {
    let published = site.published_deploy_id.as_deref() == Some(deploy.id.as_str());
    DeployView {
        published,
        permalink: urls.site_url(&format!("{}--{}", deploy.id, site.name)),
        url: published.then(|| urls.site_url(&site.name)),
        deploy,
    }
}

/// The deploy of `site` named in a path, or a 404 that names both.
async fn find_deploy(db: &Database, site: &Site, deploy_id: &str) -> AppResult<Deploy> {
    db.deploy(deploy_id)
        .await?
        .filter(|d| d.site_id == site.id)
        .ok_or_else(|| {
            not_found(format!(
                "site `{}` has no deploy `{deploy_id}`; list them with GET /api/v1/sites/{}/deploys",
                site.name, site.name
            ))
        })
}

/// A site's deploys, newest first, a page at a time.
#[utoipa::path(
    get,
    operation_id = "list_deploys",
    path = jamstack_proto::routes::api::SITE_DEPLOYS,
    tag = "deploys",
    params(("site" = String, Path, description = "The site's name"), PageParams),
    responses(
        (status = 200, description = "One page of the site's deploys, newest first", body = Vec<DeployView>, headers(("link" = String, description = "`<…?page=N+1&per_page=M>; rel=\"next\"` when another page follows"))),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn list_for_site(
    State(db): State<Database>,
    State(urls): State<Urls>,
    _: CanRead,
    Path(name): Path<String>,
    page: Pagination,
) -> AppResult<Paged<DeployView>> {
    let site = find_site(&db, &name).await?;
    let deploys = db
        .deploys_of_site_page(site.id, page.fetch_limit(), page.offset())
        .await?;
    Ok(page
        .answer(deploys)
        .map(|deploy| deploy_view(&urls, &site, deploy)))
}

#[utoipa::path(
    get,
    operation_id = "show_deploy",
    path = "/api/v1/sites/{site}/deploys/{deploy}",
    tag = "deploys",
    params(("site" = String, Path, description = "The site's name"), ("deploy" = String, Path, description = "The deploy's id")),
    responses(
        (status = 200, description = "The deploy", body = DeployView),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn show(
    State(db): State<Database>,
    State(urls): State<Urls>,
    _: CanRead,
    Path((name, deploy_id)): Path<(String, String)>,
) -> AppResult<Json<DeployView>> {
    let site = find_site(&db, &name).await?;
    let deploy = find_deploy(&db, &site, &deploy_id).await?;
    Ok(Json(deploy_view(&urls, &site, deploy)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The deploy to compare with; the published one when left out.
    pub against: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FileEntry {
    pub path: String,
    pub size: i64,
}

#[derive(Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ChangedFile {
    pub path: String,
    pub size: i64,
    pub previous_size: i64,
}

/// How a deploy's files differ from another deploy's.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeployDiff {
    pub deploy: String,
    /// The deploy compared with; `null` when the site has published none
    /// (then every file is added).
    pub against: Option<String>,
    pub added: Vec<FileEntry>,
    pub changed: Vec<ChangedFile>,
    pub removed: Vec<FileEntry>,
}

/// The files a deploy adds, changes and removes against another deploy of
/// the site (by default the published one).
#[utoipa::path(
    get,
    operation_id = "diff_deploy",
    path = jamstack_proto::routes::api::DEPLOY_DIFF,
    tag = "deploys",
    params(("site" = String, Path, description = "The site's name"), ("deploy" = String, Path, description = "The deploy's id"), DiffQuery),
    responses(
        (status = 200, description = "Files added, changed and removed", body = DeployDiff),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn diff(
    State(db): State<Database>,
    _: CanRead,
    Path((name, deploy_id)): Path<(String, String)>,
    Query(query): Query<DiffQuery>,
) -> AppResult<Json<DeployDiff>> {
    let site = find_site(&db, &name).await?;
    let deploy = find_deploy(&db, &site, &deploy_id).await?;
    let against = match query.against {
        Some(id) => Some(find_deploy(&db, &site, &id).await?.id),
        None => site.published_deploy_id.clone(),
    };
    let changes = deploys::diff_deploys(&db, against.as_deref(), &deploy.id).await?;
    let mut diff = DeployDiff {
        deploy: deploy.id,
        against,
        added: Vec::new(),
        changed: Vec::new(),
        removed: Vec::new(),
    };
    for change in changes {
        match change {
            FileChange::Added { path, size } => diff.added.push(FileEntry { path, size }),
            FileChange::Changed { path, old_size, size } => diff.changed.push(ChangedFile {
                path,
                size,
                previous_size: old_size,
            }),
            FileChange::Removed { path, old_size } => diff.removed.push(FileEntry { path, size: old_size }),
        }
    }
    Ok(Json(diff))
}

/// Publishes any ready deploy of the site: a rollback when it is an older
/// one. One pointer write; nothing is rebuilt or copied.
#[tracing::instrument(name = "publish", skip_all, fields(site = %name, deploy = %deploy_id))]
#[utoipa::path(
    post,
    operation_id = "publish_deploy",
    path = jamstack_proto::routes::api::DEPLOY_PUBLISH,
    tag = "deploys",
    params(("site" = String, Path, description = "The site's name"), ("deploy" = String, Path, description = "The deploy's id")),
    responses(
        (status = 200, description = "The deploy, now published (a rollback when older)", body = DeployView),
        (status = 409, description = "The deploy is not ready", body = ErrorBody),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["deploys"])),
    extensions(("x-permission" = json!("site.deploy")))
)]
pub async fn publish(
    State(db): State<Database>,
    State(deploys): State<Deploys>,
    State(notifications): State<Notifications>,
    State(urls): State<Urls>,
    _: CanDeploy,
    Path((name, deploy_id)): Path<(String, String)>,
) -> AppResult<Json<DeployView>> {
    let site = find_site(&db, &name).await?;
    let deploy = find_deploy(&db, &site, &deploy_id).await?;
    if !db.publish_deploy(site.id, &deploy_id).await? {
        return Err(conflict(format!(
            "deploy `{deploy_id}` is {} and cannot be published; only ready deploys can",
            deploy.state
        )));
    }
    deploys
        .announce(DeployEvent::SiteChanged { site_id: site.id })
        .await;
    tracing::info!(site = %site.name, deploy = %deploy_id, "deploy published");
    let change =
        crate::notifications::change_of_publish(&notifications, site.published_deploy_id.as_deref(), &deploy)
            .await;
    crate::notifications::deploy_changed(&notifications, site.id, change, Some(&deploy.id)).await;
    let site = find_site(&db, &name).await?;
    Ok(Json(deploy_view(&urls, &site, deploy)))
}

/// A direct deploy's manifest: the runner's manifest, plus what says where
/// the files came from. The manifest's fields are written out rather than
/// flattened in: serde reads a flattened body into a tree of its own first,
/// which for 100,000 files cost as much as parsing them.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DirectDeploy {
    /// Every file of the deploy.
    pub files: Vec<ManifestFile>,
    /// `[[redirects]]` rules, applied after the `_redirects` file's.
    #[serde(default)]
    pub redirects: Vec<RedirectRule>,
    /// `[[headers]]` rules, applied after the `_headers` file's.
    #[serde(default)]
    pub headers: Vec<HeaderRule>,
    /// Set when `files` holds only the changes since this ready deploy of
    /// the site; answered 412 when that deploy cannot be used, and then
    /// every file is to be sent.
    #[serde(default)]
    pub base: Option<ManifestBase>,
    /// The branch the files were built from; the site's production branch
    /// when left out.
    pub branch: Option<String>,
    /// What this deploy is, in a few words.
    pub title: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DirectDeployCreated {
    pub deploy_id: String,
    /// The content hashes the controller holds no blob for, across all
    /// sites: upload these (`PUT /api/v1/blobs/{sha256}`), then finalize.
    pub required: Vec<String>,
}

/// The longest title a direct deploy may carry.
const MAX_TITLE: usize = 500;

/// Starts a direct deploy of a folder: records its manifest as a draft of
/// the site and answers which blobs to upload.
#[utoipa::path(
    post,
    operation_id = "create_direct_deploy",
    path = jamstack_proto::routes::api::SITE_DEPLOYS,
    tag = "deploys",
    params(("site" = String, Path, description = "The site's name")),
    request_body = DirectDeploy,
    responses(
        (status = 201, description = "The draft deploy and the blobs to upload", body = DirectDeployCreated),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
        (status = 412, description = "`base` cannot be used (removed, another site's, not finalized, or without a path `removed` names): send every file", body = ErrorBody),
        (status = 413, description = "Over a deploy limit", body = ErrorBody),
    ),
    security(("token" = ["deploys"])),
    extensions(("x-permission" = json!("site.deploy")))
)]
pub async fn create_direct(
    State(db): State<Database>,
    State(deploys): State<Deploys>,
    State(metrics): State<Arc<Metrics>>,
    _: CanDeploy,
    Path(name): Path<String>,
    Json(body): Json<DirectDeploy>,
) -> AppResult<(StatusCode, Json<DirectDeployCreated>)> {
    let site = find_site(&db, &name).await?;
    let DirectDeploy {
        files,
        redirects,
        headers,
        base,
        branch,
        title,
    } = body;
    let manifest = DeployManifest {
        files,
        redirects,
        headers,
        base,
    };
    if manifest.files.is_empty() && manifest.base.is_none() {
        return Err(bad_request(
            "the manifest lists no files; deploy a folder that has at least an index.html",
        ));
    }
    if title.as_ref().is_some_and(|t| t.len() > MAX_TITLE) {
        return Err(bad_request(format!(
            "title is longer than {MAX_TITLE} bytes; shorten it"
        )));
    }
    let branch = branch.unwrap_or_else(|| site.production_branch.clone());
    if branch.trim().is_empty() || branch.chars().any(char::is_control) {
        return Err(bad_request("branch is empty or has control characters"));
    }
    let config_rules = intake::check_manifest(&deploys, &manifest)?;
    let files = intake::resolve_files(&deploys, site.id, &manifest).await?;
    let deploy = db
        .insert_direct_deploy(
            &deploys::new_deploy_id(),
            site.id,
            &branch,
            title.as_deref(),
            files.as_list(),
        )
        .await
        .map_err(intake::recording_failed)?;
    intake::keep_config_rules(&deploys, &deploy, &config_rules).await?;
    let required = intake::required_blobs(&deploys, &deploy).await?;
    metrics.record_manifest(crate::metrics::ManifestFigures::of(&manifest.files, &required));
    tracing::info!(site = %site.name, deploy = %deploy.id, files = manifest.files.len(), required = required.len(), "direct deploy started");
    Ok((
        StatusCode::CREATED,
        Json(DirectDeployCreated {
            deploy_id: deploy.id,
            required,
        }),
    ))
}

/// Receives one blob of a direct deploy, verified against its hash on
/// receipt: 201 when stored, 200 when the controller had it already.
#[utoipa::path(
    put,
    operation_id = "upload_blob",
    path = jamstack_proto::routes::api::BLOB,
    tag = "deploys",
    params(("sha256" = String, Path, description = "The lowercase hex SHA-256 of the body")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes"),
    responses(
        (status = 201, description = "Stored"),
        (status = 200, description = "The controller had it already"),
        (status = 400, description = "The body does not hash to the name", body = ErrorBody),
        (status = 413, description = "Over the file size limit", body = ErrorBody),
    ),
    security(("token" = ["deploys"])),
    extensions(("x-permission" = json!("site.deploy")))
)]
pub async fn put_blob(
    State(deploys): State<Deploys>,
    _: CanDeploy,
    Path(sha256): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<StatusCode> {
    Ok(
        match intake::receive_blob(&deploys, &sha256, &headers, body).await? {
            Received::Stored => StatusCode::CREATED,
            Received::AlreadyHad => StatusCode::OK,
        },
    )
}

/// Receives many small blobs of a direct deploy in one body: each at most
/// 256 KiB, at most 1,024 of them and 8 MiB in all, framed as
/// `<sha256> <size>\n<bytes>` one after another. Every hash is verified
/// before any blob is stored; one wrong blob refuses the whole bundle.
#[utoipa::path(
    post,
    operation_id = "upload_blob_bundle",
    path = jamstack_proto::routes::api::BLOB_BUNDLES,
    tag = "deploys",
    request_body(
        content = Vec<u8>,
        content_type = "application/vnd.jamstack.blob-bundle",
        description = "Frames of `<sha256> <size>\\n` followed by the blob's bytes"
    ),
    responses(
        (status = 200, description = "How many blobs were stored and how many the controller had", body = BundleResponse),
        (status = 400, description = "A frame is malformed or a blob does not hash to its name", body = ErrorBody),
        (status = 413, description = "The bundle or a blob in it is over its limit", body = ErrorBody),
    ),
    security(("token" = ["deploys"])),
    extensions(("x-permission" = json!("site.deploy")))
)]
pub async fn post_blob_bundle(
    State(deploys): State<Deploys>,
    _: CanDeploy,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Json<BundleResponse>> {
    Ok(Json(intake::receive_bundle(&deploys, &headers, body).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinalizeDirect {
    /// Make it the site's production deploy (default: a draft, served only
    /// at its permalink).
    #[serde(default)]
    pub publish: bool,
}

/// A finalize refused because blobs are missing: the one error shape plus
/// the hashes to upload.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MissingBlobs {
    pub error: String,
    pub missing: Vec<String>,
}

fn missing_blobs(deploy_id: &str, missing: Vec<String>) -> Response {
    (
        StatusCode::CONFLICT,
        Json(MissingBlobs {
            error: format!(
                "{} blob(s) of deploy {deploy_id} have not been uploaded: {}; upload each with \
                 PUT /api/v1/blobs/{{sha256}}, then finalize again",
                missing.len(),
                missing.join(", ")
            ),
            missing,
        }),
    )
        .into_response()
}

/// Finishes a direct deploy once its blobs are uploaded: ready at its
/// permalink, and published when asked (unless the site's publishing is
/// locked: then 409, and the deploy stays ready at its permalink).
#[utoipa::path(
    post,
    operation_id = "finalize_direct_deploy",
    path = jamstack_proto::routes::api::DEPLOY_FINALIZE,
    tag = "deploys",
    params(("site" = String, Path, description = "The site's name"), ("deploy" = String, Path, description = "The deploy's id")),
    request_body = Option<FinalizeDirect>,
    responses(
        (status = 200, description = "The deploy, ready (and published when asked)", body = DeployView),
        (status = 409, description = "Blobs are missing (listed), publishing is locked, or a build owns the deploy", body = MissingBlobs),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["deploys"])),
    extensions(("x-permission" = json!("site.deploy")))
)]
pub async fn finalize_direct(
    State(db): State<Database>,
    State(deploys): State<Deploys>,
    State(notifications): State<Notifications>,
    State(urls): State<Urls>,
    _: CanDeploy,
    Path((name, deploy_id)): Path<(String, String)>,
    body: Option<Json<FinalizeDirect>>,
) -> AppResult<Response> {
    let publish = body.map(|Json(b)| b.publish).unwrap_or_default();
    let site = find_site(&db, &name).await?;
    let deploy = find_deploy(&db, &site, &deploy_id).await?;
    if let Some(build) = deploy.build_id {
        return Err(conflict(format!(
            "deploy `{deploy_id}` belongs to build {build}, which finalizes it; publish it with \
             POST /api/v1/sites/{name}/deploys/{deploy_id}/publish"
        )));
    }
    if deploy.state != "ready" {
        let missing = db.missing_blobs_of_deploy(&deploy.id).await?;
        if !missing.is_empty() {
            return Ok(missing_blobs(&deploy.id, missing));
        }
        intake::prepare_for_serving(&deploys, &deploy.id).await?;
    }
    let mut published = match db.finalize_direct_deploy(&deploy.id, publish).await? {
        FinalizeOutcome::Ready { published } => {
            intake::after_ready(&deploys, &deploy.id);
            published
        }
        FinalizeOutcome::MissingBlobs(_) => {
            let missing = db.missing_blobs_of_deploy(&deploy.id).await?;
            return Ok(missing_blobs(&deploy.id, missing));
        }
        FinalizeOutcome::StaleLease | FinalizeOutcome::NotFound => {
            return Err(not_found(format!("deploy `{deploy_id}` vanished")));
        }
    };
    if publish && !published && !site.publish_locked {
        // Finalized before without publishing: publishing now is the same
        // pointer write as a rollback.
        published = db.publish_deploy(site.id, &deploy.id).await?;
    }
    deploys
        .announce(DeployEvent::SiteChanged { site_id: site.id })
        .await;
    tracing::info!(site = %site.name, deploy = %deploy.id, published, "direct deploy ready");
    if published {
        crate::notifications::deploy_changed(
            &notifications,
            site.id,
            crate::notifications::DeployChange::Published,
            Some(&deploy.id),
        )
        .await;
    }
    if publish && !published {
        return Err(conflict(format!(
            "publishing is locked on site `{name}`, so deploy `{deploy_id}` is ready at {} but not \
             published; unlock the site (POST /api/v1/sites/{name}/unlock) or publish it by hand \
             (POST /api/v1/sites/{name}/deploys/{deploy_id}/publish)",
            urls.site_url(&format!("{deploy_id}--{name}"))
        )));
    }
    let site = find_site(&db, &name).await?;
    let deploy = find_deploy(&db, &site, &deploy_id).await?;
    Ok(Json(deploy_view(&urls, &site, deploy)).into_response())
}

/// Runs retention and garbage collection now (they also run on their own
/// every `gc_interval`).
#[utoipa::path(
    post,
    operation_id = "collect_garbage",
    path = "/api/v1/gc",
    tag = "admin",
    responses(
        (status = 200, description = "What was removed", body = GcReport),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn collect_garbage(State(deploys): State<Deploys>, _: Admin) -> AppResult<Json<GcReport>> {
    Ok(Json(retention::collect_garbage(&deploys).await?))
}

/// Takes a preview or branch hostname (`deploy-preview-12`, `staging`) down;
/// its deploys stay at their permalinks until retention removes them.
#[utoipa::path(
    delete,
    operation_id = "remove_alias",
    path = "/api/v1/sites/{site}/aliases/{alias}",
    tag = "deploys",
    params(("site" = String, Path, description = "The site's name"), ("alias" = String, Path, description = "`deploy-preview-<n>` or a branch label")),
    responses(
        (status = 204, description = "The hostname is down"),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["deploys"])),
    extensions(("x-permission" = json!("site.deploy")))
)]
pub async fn remove_alias(
    State(db): State<Database>,
    State(deploys): State<Deploys>,
    _: CanDeploy,
    Path((name, alias)): Path<(String, String)>,
) -> AppResult<axum::http::StatusCode> {
    let site = find_site(&db, &name).await?;
    if !crate::deploys::take_alias_down(&deploys, site.id, &alias).await? {
        return Err(not_found(format!(
            "site `{name}` has no hostname alias `{alias}`"
        )));
    }
    tracing::info!(site = %site.name, alias, "alias taken down");
    Ok(axum::http::StatusCode::NO_CONTENT)
}
