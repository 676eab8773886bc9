//! Build hooks: URLs a headless CMS (or anything that can POST) calls to
//! rebuild a site, as Netlify's build hooks. Made, listed and revoked under
//! `/api/v1/sites/{site}/build-hooks`; called at `POST /hooks/build/{id}`,
//! where the unguessable id is the only credential, so it is stored as its
//! SHA-256 and shown once, when the hook is made.

use super::find_site;
use crate::auth::{CanManageSites, CanRead, hash_token};
use crate::build_hooks::BuildHookLimiter;
use crate::builds::{BuildRequest, Queue, queue_build};
use crate::db::{BuildHook, Database, NewBuildHook};
use crate::error::{AppResult, bad_request, not_found};
use crate::secrets::random_hex;
use crate::urls::Urls;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jamstack_proto::{BuildContext, ErrorBody};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The largest body a hook's caller may POST; it is kept with the build.
pub const MAX_HOOK_BODY: usize = 8 * 1024;

/// The path a hook is called at, with its id.
pub const HOOK_PATH: &str = "/hooks/build/{id}";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHook {
    /// What calls it, e.g. `cms`.
    pub name: String,
    /// The branch its builds build; the site's production branch when left out.
    #[serde(default)]
    pub trigger_branch: Option<String>,
    /// The reason its builds show, e.g. `content changed`.
    #[serde(default)]
    pub trigger_title: Option<String>,
}

/// A hook just made, with its URL: the only time the URL is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedHook {
    #[serde(flatten)]
    pub hook: BuildHook,
    /// `POST` here to start a build; keep it secret, as a token.
    pub url: String,
}

/// What a hook's caller is answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HookCalled {
    /// The build queued.
    pub build_id: i64,
}

/// The site's build hooks (never their URLs).
#[utoipa::path(
    get,
    operation_id = "list_build_hooks",
    path = jamstack_proto::routes::api::SITE_BUILD_HOOKS,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "The site's build hooks, oldest first", body = Vec<BuildHook>),
        (status = 404, description = "No such site or hook", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn list(
    State(db): State<Database>,
    _: CanRead,
    Path(site): Path<String>,
) -> AppResult<Json<Vec<BuildHook>>> {
    let site = find_site(&db, &site).await?;
    Ok(Json(db.build_hooks(site.id).await?))
}

/// Makes a build hook and answers its URL, once.
#[utoipa::path(
    post,
    operation_id = "create_build_hook",
    path = jamstack_proto::routes::api::SITE_BUILD_HOOKS,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    request_body = NewHook,
    responses(
        (status = 201, description = "The hook and its URL, shown this once", body = CreatedHook),
        (status = 400, description = "A bad name, branch or title", body = ErrorBody),
        (status = 404, description = "No such site or hook", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn create(
    State(db): State<Database>,
    State(urls): State<Urls>,
    _: CanManageSites,
    Path(site): Path<String>,
    Json(body): Json<NewHook>,
) -> AppResult<(StatusCode, Json<CreatedHook>)> {
    let site = find_site(&db, &site).await?;
    let created = make_hook(&db, &urls, site.id, &body).await.map_err(|e| match e {
        MakeError::Invalid(message) => bad_request(message),
        MakeError::Failed(e) => e.into(),
    })?;
    tracing::info!(site = %site.name, hook = created.hook.id, name = %created.hook.name, "build hook made");
    Ok((StatusCode::CREATED, Json(created)))
}

/// Why a hook was not made.
#[derive(Debug)]
pub enum MakeError {
    /// What was asked for is wrong; the message says how.
    Invalid(String),
    Failed(anyhow::Error),
}

/// Checks and stores (hashed) a new build hook of site `site_id`; the
/// dashboard's settings page makes them here too.
pub async fn make_hook(
    db: &Database,
    urls: &Urls,
    site_id: i64,
    asked: &NewHook,
) -> Result<CreatedHook, MakeError> {
    let name = asked.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(MakeError::Invalid(
            "give the hook a name of 1 to 100 characters that says what calls it (e.g. `cms`)".into(),
        ));
    }
    let branch = optional(&asked.trigger_branch);
    // The runner hands the branch to git: refuse what git would read as
    // an option or could never name.
    if let Some(branch) = branch
        && (branch.starts_with('-')
            || branch.len() > 255
            || branch.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(MakeError::Invalid(format!(
            "`trigger_branch`: `{branch}` is not a branch name (no spaces, not starting with `-`)"
        )));
    }
    let title = optional(&asked.trigger_title);
    if title.is_some_and(|t| t.len() > 200) {
        return Err(MakeError::Invalid(
            "`trigger_title` is longer than 200 characters".into(),
        ));
    }
    let url_id = random_hex(32);
    let hook = db
        .insert_build_hook(&NewBuildHook {
            site_id,
            name,
            url_id_hash: &hash_token(&url_id),
            trigger_branch: branch,
            trigger_title: title,
        })
        .await
        .map_err(MakeError::Failed)?;
    Ok(CreatedHook {
        hook,
        url: format!("{}{}", urls.public_url, HOOK_PATH.replace("{id}", &url_id)),
    })
}

/// A field left empty is a field left out.
fn optional(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Revokes a build hook: its URL answers 404 from now on.
#[utoipa::path(
    delete,
    operation_id = "revoke_build_hook",
    path = jamstack_proto::routes::api::SITE_BUILD_HOOK,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name"), ("id" = i64, Path, description = "The hook's id, as listed")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such site or hook", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn revoke(
    State(db): State<Database>,
    _: CanManageSites,
    Path((site, id)): Path<(String, i64)>,
) -> AppResult<StatusCode> {
    let site = find_site(&db, &site).await?;
    if !db.delete_build_hook(site.id, id).await? {
        return Err(not_found(format!(
            "site `{}` has no build hook {id}; list them with GET /api/v1/sites/{}/build-hooks",
            site.name, site.name
        )));
    }
    tracing::info!(site = %site.name, hook = id, "build hook revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /hooks/build/{id}`: queues a build of the hook's branch head, with
/// the hook's title as its reason and the body (up to [`MAX_HOOK_BODY`],
/// any content type) kept with it. An unknown or revoked id is a plain
/// 404 that says nothing of any site; a hook called too often is answered
/// 429 with `Retry-After`.
#[tracing::instrument(name = "build_hook", skip_all)]
pub async fn call(
    State(db): State<Database>,
    State(audit): State<crate::audit::AuditLog>,
    State(queue): State<Queue>,
    State(limiter): State<Arc<BuildHookLimiter>>,
    Path(url_id): Path<String>,
    body: Bytes,
) -> AppResult<Response> {
    let unknown = || not_found("no such build hook");
    let Some(hook) = db.build_hook_by_url_id_hash(&hash_token(&url_id)).await? else {
        return Err(unknown());
    };
    let Some(site) = db.site_by_id(hook.site_id).await? else {
        return Err(unknown());
    };
    if let Err(wait) = limiter.take(hook.id) {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        tracing::warn!(site = %site.name, hook = hook.id, seconds, "build hook called too often");
        return Ok((
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, seconds.to_string())],
            Json(ErrorBody {
                error: format!(
                    "this build hook started {} builds lately; call it again in {seconds} s",
                    crate::build_hooks::BURST
                ),
            }),
        )
            .into_response());
    }
    let branch = hook
        .trigger_branch
        .clone()
        .unwrap_or_else(|| site.production_branch.clone());
    let context = if branch == site.production_branch {
        BuildContext::Production
    } else {
        BuildContext::BranchDeploy
    };
    let title = hook
        .trigger_title
        .clone()
        .unwrap_or_else(|| format!("build hook `{}`", hook.name));
    let build_id = queue_build(
        &queue,
        &site,
        BuildRequest {
            context,
            branch,
            // The branch's head when the runner fetches, as a build asked
            // for by hand without a commit.
            commit_sha: String::new(),
            commit_message: None,
            author: None,
            pr_number: None,
            from_fork: false,
            commit_unverified: false,
            trigger: crate::build_hooks::TRIGGER,
            trigger_title: Some(title),
            trigger_payload: (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned()),
        },
    )
    .await?;
    db.note_build_hook_used(hook.id).await?;
    audit
        .builds_queued(&format!("webhook:hook-{}", hook.id), &[build_id], 201)
        .await;
    tracing::info!(site = %site.name, hook = hook.id, build_id, "build hook called");
    Ok((StatusCode::CREATED, Json(HookCalled { build_id })).into_response())
}
