use super::find_site;
use super::pagination::PageParams;
use super::pagination::{Paged, Pagination};
use crate::auth::{CanBuild, CanManageSites, CanRead};
use crate::builds::Queue;
use crate::builds::{BuildRequest, queue_build};
use crate::config::Config;
use crate::db::{Build, Database};
use crate::error::{AppError, AppResult, bad_request, not_found};
use crate::waiting::{Thresholds, explain_builds};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use jamstack_proto::BuildContext;
use jamstack_proto::ErrorBody;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBuild {
    /// Defaults to the site's production branch.
    pub branch: Option<String>,
    /// Defaults to the branch's head at fetch time.
    pub commit_sha: Option<String>,
    /// Empty the site's build cache first ("clear cache and rebuild").
    #[serde(default)]
    pub clear_cache: bool,
}

#[utoipa::path(
    post,
    operation_id = "trigger_build",
    path = jamstack_proto::routes::api::SITE_BUILDS,
    tag = "builds",
    params(("site" = String, Path, description = "The site's name")),
    request_body = Option<TriggerBuild>,
    responses(
        (status = 201, description = "The queued build", body = Build),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
        (status = 409, description = "The site has no repository to build: connect one, or deploy directly", body = ErrorBody),
    ),
    security(("token" = ["builds"])),
    extensions(("x-permission" = json!("site.build")))
)]
pub async fn trigger(
    State(db): State<Database>,
    State(queue): State<Queue>,
    _: CanBuild,
    may_change_site: Result<CanManageSites, AppError>,
    Path(name): Path<String>,
    body: Option<Json<TriggerBuild>>,
) -> AppResult<(StatusCode, Json<Build>)> {
    let site = find_site(&db, &name).await?;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let commit_sha = body.commit_sha.unwrap_or_default();
    if !commit_sha.is_empty() && !jamstack_proto::is_full_commit_sha(&commit_sha) {
        return Err(bad_request(format!(
            "commit_sha `{commit_sha}` is not a full 40-hex commit id"
        )));
    }
    if body.clear_cache {
        super::site_settings::clear_build_cache(&db, &site).await?;
    }
    let branch = body.branch.unwrap_or_else(|| site.production_branch.clone());
    let context = if branch == site.production_branch {
        BuildContext::Production
    } else {
        BuildContext::BranchDeploy
    };
    let build_id = queue_build(
        &queue,
        &site,
        BuildRequest {
            pr_number: None,
            from_fork: false,
            // A `builds` token may ask for any commit the server will hand
            // out by id, a fork's included (GitHub serves those from the
            // base repository): unless the token may change the site
            // anyway, the runner checks the commit is on the branch before
            // the build gets secrets or production.
            commit_unverified: !commit_sha.is_empty() && may_change_site.is_err(),
            context,
            branch,
            commit_sha: commit_sha.to_ascii_lowercase(),
            commit_message: None,
            author: None,
            trigger: "api",
            trigger_title: None,
            trigger_payload: None,
        },
    )
    .await?;
    let build = db
        .build(build_id)
        .await?
        .ok_or_else(|| not_found("build vanished"))?;
    Ok((StatusCode::CREATED, Json(build)))
}

/// A site's builds, newest first, a page at a time.
#[utoipa::path(
    get,
    operation_id = "list_builds",
    path = jamstack_proto::routes::api::SITE_BUILDS,
    tag = "builds",
    params(("site" = String, Path, description = "The site's name"), PageParams),
    responses(
        (status = 200, description = "One page of the site's builds, newest first", body = Vec<Build>, headers(("link" = String, description = "`<…?page=N+1&per_page=M>; rel=\"next\"` when another page follows"))),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn list_for_site(
    State(db): State<Database>,
    State(config): State<Arc<Config>>,
    _: CanRead,
    Path(name): Path<String>,
    page: Pagination,
) -> AppResult<Paged<Build>> {
    let site = find_site(&db, &name).await?;
    let mut builds = db
        .builds_of_site_page(site.id, page.fetch_limit(), page.offset())
        .await?;
    explain_builds(&db, Thresholds::of(&config), &mut builds).await?;
    Ok(page.answer(builds))
}

/// Queues a new build of the same site, commit, branch and context.
#[utoipa::path(
    post,
    operation_id = "retry_build",
    path = jamstack_proto::routes::api::BUILD_RETRY,
    tag = "builds",
    params(("id" = i64, Path, description = "The build's id")),
    responses(
        (status = 201, description = "The new build of the same commit, branch and context", body = Build),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["builds"])),
    extensions(("x-permission" = json!("site.build")))
)]
pub async fn retry(
    State(db): State<Database>,
    State(queue): State<Queue>,
    _: CanBuild,
    Path(id): Path<i64>,
) -> AppResult<(StatusCode, Json<Build>)> {
    let build = find_build(&db, id).await?;
    let site = db
        .site_by_id(build.site_id)
        .await?
        .ok_or_else(|| not_found(format!("the site of build {id} is gone")))?;
    let new_id = crate::builds::retry_build(&queue, &site, build).await?;
    Ok((StatusCode::CREATED, Json(find_build(&db, new_id).await?)))
}

async fn find_build(db: &Database, id: i64) -> AppResult<Build> {
    db.build(id)
        .await?
        .ok_or_else(|| not_found(format!("no build {id}")))
}

#[utoipa::path(
    get,
    operation_id = "show_build",
    path = jamstack_proto::routes::api::BUILD,
    tag = "builds",
    params(("id" = i64, Path, description = "The build's id")),
    responses(
        (status = 200, description = "The build", body = Build),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn show(
    State(db): State<Database>,
    State(config): State<Arc<Config>>,
    _: CanRead,
    Path(id): Path<i64>,
) -> AppResult<Json<Build>> {
    let mut build = [find_build(&db, id).await?];
    explain_builds(&db, Thresholds::of(&config), &mut build).await?;
    let [build] = build;
    Ok(Json(build))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Which attempt's log; defaults to the latest.
    pub attempt: Option<i64>,
    /// Byte offset to read from, for followers.
    #[serde(default)]
    pub from: i64,
}

/// The build log as plain text (ANSI colours kept as the build printed them).
#[utoipa::path(
    get,
    operation_id = "build_log",
    path = jamstack_proto::routes::api::BUILD_LOG,
    tag = "builds",
    params(("id" = i64, Path, description = "The build's id"), LogQuery),
    responses(
        (status = 200, description = "The log as text; `X-Build-State` says where the build is", content_type = "text/plain", body = String),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn log(
    State(db): State<Database>,
    _: CanRead,
    Path(id): Path<i64>,
    Query(query): Query<LogQuery>,
) -> AppResult<impl IntoResponse> {
    let build = find_build(&db, id).await?;
    let attempt = query.attempt.unwrap_or(build.attempts.max(1));
    let log = db.read_log(id, attempt, query.from.max(0)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                header::HeaderName::from_static("x-build-state"),
                build.state.as_str().to_owned(),
            ),
        ],
        log,
    ))
}

/// Each lease of the build's job: who ran it and how it ended. Each has its
/// own log (`GET /api/v1/builds/{id}/log?attempt=N`).
#[utoipa::path(
    get,
    operation_id = "build_attempts",
    path = "/api/v1/builds/{id}/attempts",
    tag = "builds",
    params(("id" = i64, Path, description = "The build's id")),
    responses(
        (status = 200, description = "Each lease of the build's job", body = Vec<crate::db::Attempt>),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn attempts(
    State(db): State<Database>,
    _: CanRead,
    Path(id): Path<i64>,
) -> AppResult<Json<Vec<crate::db::Attempt>>> {
    find_build(&db, id).await?;
    Ok(Json(db.attempts(id).await?))
}

#[utoipa::path(
    post,
    operation_id = "cancel_build",
    path = jamstack_proto::routes::api::BUILD_CANCEL,
    tag = "builds",
    params(("id" = i64, Path, description = "The build's id")),
    responses(
        (status = 200, description = "The build, cancelled or being cancelled", body = Build),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["builds"])),
    extensions(("x-permission" = json!("site.build")))
)]
pub async fn cancel(
    State(db): State<Database>,
    State(queue): State<Queue>,
    _: CanBuild,
    Path(id): Path<i64>,
) -> AppResult<Json<Build>> {
    let build = find_build(&db, id).await?;
    crate::builds::cancel_builds(&queue, build.site_id, &[id]).await?;
    // A runner waiting in a heartbeat on this build hears of it now.
    queue.cancellations.notify_waiters();
    Ok(Json(find_build(&db, id).await?))
}
