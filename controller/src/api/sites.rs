use super::find_site;
use super::pagination::PageParams;
use super::pagination::{Paged, Pagination};
use crate::auth::{Admin, CanDeploy, CanManageSites, CanRead, Principal};
use crate::config::Config;
use crate::db::{DEFAULT_BRANCH_UNTIL_KNOWN, Database, NewSite, SchedulingSettings, Site, SiteSettings};
use crate::deploys::Deploys;
use crate::error::{AppResult, bad_request, conflict};
use crate::github::GitHubService;
use crate::github::client::{Credentials, INTERACTIVE_RETRY};
use crate::notifications::Notifications;
use crate::secrets::SecretBox;
use crate::secrets::random_hex;
use crate::secrets::{generic_webhook_purpose, github_token_purpose};
use crate::state::Installation;
use crate::urls::Urls;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use jamstack_proto::ErrorBody;
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSite {
    pub name: String,
    /// Where runners clone from: an https URL, or a local path for
    /// repositories on the runner's machine. Defaults to
    /// `https://github.com/<github_repo>.git`. Without it and without
    /// `github_repo`, the site takes direct deploys only (`jamstack
    /// deploy`) until a repository is connected with `PATCH`.
    pub repo_url: Option<String>,
    /// `owner/name` on GitHub; its pushes and pull requests build the site.
    pub github_repo: Option<String>,
    /// The branch whose builds go live. Without it, the repository's
    /// default branch, asked from GitHub when the controller has the
    /// site's token or an App installation (else `main` until a delivery
    /// from GitHub names it), and followed when renamed.
    pub production_branch: Option<String>,
    /// Pushes to other branches build branch deploys (default off).
    #[serde(default)]
    pub branch_deploys: bool,
    /// Pull requests build deploy previews (default on).
    #[serde(default = "yes")]
    pub deploy_previews: bool,
    /// The GitHub App installation that reaches the repository; found from
    /// installation events when not given.
    pub github_installation_id: Option<i64>,
    /// A personal access token, for connecting without a GitHub App: the
    /// controller registers the repository's webhook with it and reports
    /// statuses, deployments and the pull-request comment. Stored sealed.
    pub github_token: Option<String>,
}

fn yes() -> bool {
    true
}

/// A site as the API shows it. Secrets are never shown, only whether they
/// are set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SiteView {
    #[serde(flatten)]
    pub site: Site,
    pub url: String,
    pub github_token_set: bool,
    pub generic_webhook_set: bool,
    /// The outcome of registering the repository's webhook, when this call
    /// did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub github_webhook: Option<WebhookRegistration>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookRegistration {
    pub registered: bool,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn view(urls: &Urls, site: Site) -> SiteView {
    SiteView {
        url: urls.site_url(&site.name),
        github_token_set: site.github_token_sealed.is_some(),
        generic_webhook_set: site.generic_webhook_secret_sealed.is_some(),
        github_webhook: None,
        site,
    }
}

/// A site name is one hostname label of its own and the tail of preview,
/// branch and permalink labels (`<prefix>--<site>`), hence no `--` and a
/// length that leaves room for the prefix.
pub fn validate_site_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if name.is_empty()
        || name.len() > 37
        || !ok_chars
        || name.starts_with('-')
        || name.ends_with('-')
        || name.contains("--")
    {
        return Err(format!(
            "site name `{name}` is not valid: use 1 to 37 lowercase letters, digits and single hyphens, \
             not starting or ending with a hyphen (it becomes part of hostnames)"
        ));
    }
    Ok(())
}

/// `owner/name`, as GitHub spells repositories.
pub fn validate_github_repo(full_name: &str) -> Result<(), String> {
    let part_ok = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    match full_name.split_once('/') {
        Some((owner, name)) if part_ok(owner) && part_ok(name) => Ok(()),
        _ => Err(format!(
            "github_repo `{full_name}` is not `owner/name`, e.g. `octo/blog`"
        )),
    }
}

/// Runners clone `https://` (and `ssh://`) URLs only, unless the controller
/// was started with `--allow-local-repositories`: otherwise a `sites` token
/// could point a site at any repository on a runner's disk. Nothing is
/// looked up, so the answer says nothing about what exists there.
pub fn validate_repo_url(url: &str, allow_local: bool) -> Result<(), String> {
    if allow_local {
        return Ok(());
    }
    let is_server_url = url::Url::parse(url).is_ok_and(|parsed| {
        matches!(parsed.scheme(), "https" | "ssh") && parsed.host_str().is_some_and(|host| !host.is_empty())
    });
    // A URL the parser accepts may still carry spaces it would encode;
    // git would be handed the text as written.
    if is_server_url && !url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Ok(());
    }
    Err(format!(
        "repo_url `{url}` is not an https:// or ssh:// URL: runners clone repositories from servers only. \
         Local paths, file:// and other URLs need the controller to run with --allow-local-repositories"
    ))
}

fn validate_token(token: &str) -> Result<(), String> {
    if token.trim().is_empty() || token.trim() != token || token.chars().any(char::is_control) {
        return Err(
            "github_token is empty or has spaces around it; paste the token as GitHub showed it".to_owned(),
        );
    }
    Ok(())
}

#[utoipa::path(
    post,
    operation_id = "create_site",
    path = jamstack_proto::routes::api::SITES,
    tag = "sites",
    request_body = CreateSite,
    responses(
        (status = 201, description = "The site, connected", body = SiteView),
        (status = 409, description = "A site of that name exists", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
// Each argument is one service or one part of the request the handler uses.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    State(db): State<Database>,
    State(config): State<Arc<Config>>,
    State(secrets): State<Arc<SecretBox>>,
    State(urls): State<Urls>,
    State(github): State<GitHubService>,
    State(installation): State<Installation>,
    _: CanManageSites,
    Extension(principal): Extension<Principal>,
    Json(body): Json<CreateSite>,
) -> AppResult<(StatusCode, Json<SiteView>)> {
    validate_site_name(&body.name).map_err(bad_request)?;
    if let Some(repo) = &body.github_repo {
        validate_github_repo(repo).map_err(bad_request)?;
    }
    let repo_url = clone_url(body.repo_url.as_deref(), body.github_repo.as_deref());
    if let Some(url) = &repo_url {
        validate_repo_url(url, config.allow_local_repositories).map_err(bad_request)?;
    }
    if body
        .production_branch
        .as_deref()
        .is_some_and(|branch| branch.trim().is_empty())
    {
        return Err(bad_request(
            "production_branch is empty; name a branch, or leave it out for the repository's default branch",
        ));
    }
    if body.github_token.is_some() && body.github_repo.is_none() {
        return Err(bad_request(
            "github_token needs github_repo: name the repository the token is for",
        ));
    }
    if let Some(token) = &body.github_token {
        validate_token(token).map_err(bad_request)?;
    }
    let site = db
        .insert_site_of_team(
            &NewSite {
                name: body.name.clone(),
                repo_url,
                production_branch_follows_default: body.production_branch.is_none()
                    && body.github_repo.is_some(),
                github_repo: body.github_repo,
                production_branch: body
                    .production_branch
                    .unwrap_or_else(|| DEFAULT_BRANCH_UNTIL_KNOWN.to_owned()),
                settings: SiteSettings {
                    branch_deploys: body.branch_deploys,
                    deploy_previews: body.deploy_previews,
                    github_installation_id: body.github_installation_id,
                    github_token_sealed: body
                        .github_token
                        .as_deref()
                        .map(|token| secrets.seal(&github_token_purpose(&body.name), token)),
                },
            },
            principal.team_for_new_sites(),
        )
        .await?
        .ok_or_else(|| {
            conflict(format!(
                "a site named `{}` exists already; pick another name",
                body.name
            ))
        })?;
    ask_default_branch(&github, &site).await?;
    let registration = match site.github_token_sealed {
        Some(_) => Some(register_webhook(&github, &installation.webhook_secret, &site).await?),
        None => None,
    };
    let site = find_site(&db, &site.name).await?;
    let mut view = view(&urls, site);
    view.github_webhook = registration;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Where runners clone a site from: the URL given, else GitHub's URL of
/// the repository named, else nowhere (a site for direct deploys).
fn clone_url(repo_url: Option<&str>, github_repo: Option<&str>) -> Option<String> {
    match (repo_url.map(str::trim), github_repo) {
        (Some(url), _) if !url.is_empty() => Some(url.to_owned()),
        (_, Some(repo)) => Some(format!("https://github.com/{repo}.git")),
        _ => None,
    }
}

/// Makes the site's production branch its GitHub repository's default
/// branch, asked from GitHub, when the site follows the default branch and
/// the controller can ask (a token or an App installation). When GitHub
/// cannot be asked, the branch stays until a delivery names it.
async fn ask_default_branch(github: &GitHubService, site: &Site) -> AppResult<()> {
    if !site.production_branch_follows_default {
        return Ok(());
    }
    if let Some(branch) = crate::github::default_branch_of(github, site).await {
        github.db.set_followed_default_branch(site.id, &branch).await?;
        tracing::info!(site = %site.name, branch, "production branch is the repository's default branch");
    }
    Ok(())
}

/// Registers (or updates) the repository's webhook with the site's access
/// token. A failure is reported, not raised: the site stays connected and
/// `POST /api/v1/sites/{site}/github-webhook` tries again.
async fn register_webhook(
    github: &GitHubService,
    webhook_secret: &str,
    site: &Site,
) -> AppResult<WebhookRegistration> {
    let url = format!("{}/webhooks/github", github.urls.public_url);
    let (Some(repository), Some(credentials)) = (
        &site.github_repo,
        crate::github::credentials_for(github, site).await?,
    ) else {
        return Ok(WebhookRegistration {
            registered: false,
            url,
            hook_id: None,
            error: Some("the site has no github_repo and access token to register a webhook with".to_owned()),
        });
    };
    if !matches!(credentials, Credentials::Token(_)) {
        return Ok(WebhookRegistration {
            registered: false,
            url,
            hook_id: None,
            error: Some(
                "sites connected through the GitHub App get their deliveries from the App's own webhook"
                    .to_owned(),
            ),
        });
    }
    // Someone waits for this answer: a few quick retries, not minutes.
    let quick = INTERACTIVE_RETRY.min_of(github.config.github_retry);
    let result = match github.client.repo(&credentials, repository) {
        Ok(repo) => repo.with_retry(quick).ensure_webhook(&url, webhook_secret).await,
        Err(e) => Err(e),
    };
    Ok(match result {
        Ok(hook_id) => {
            github.db.set_github_hook_id(site.id, Some(hook_id)).await?;
            tracing::info!(site = %site.name, hook_id, "repository webhook registered");
            WebhookRegistration {
                registered: true,
                url,
                hook_id: Some(hook_id),
                error: None,
            }
        }
        Err(e) => {
            tracing::warn!(site = %site.name, error = %e, "registering the repository webhook failed");
            WebhookRegistration {
                registered: false,
                url,
                hook_id: None,
                error: Some(format!(
                    "{e}. Check that the token may manage the repository's webhooks, then retry with \
                     POST /api/v1/sites/{}/github-webhook",
                    site.name
                )),
            }
        }
    })
}

/// `POST /api/v1/sites/{site}/github-webhook`: registers the repository's
/// webhook again (after fixing the token, or moving the controller).
#[utoipa::path(
    post,
    operation_id = "register_github_webhook",
    path = "/api/v1/sites/{site}/github-webhook",
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "What registering the webhook did", body = WebhookRegistration),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn register_github_webhook(
    State(db): State<Database>,
    State(github): State<GitHubService>,
    State(installation): State<Installation>,
    _: CanManageSites,
    Path(name): Path<String>,
) -> AppResult<Json<WebhookRegistration>> {
    let site = find_site(&db, &name).await?;
    if site.github_token_sealed.is_none() {
        return Err(bad_request(format!(
            "site `{name}` has no access token; set one with PATCH /api/v1/sites/{name} {{\"github_token\": \"...\"}}"
        )));
    }
    Ok(Json(
        register_webhook(&github, &installation.webhook_secret, &site).await?,
    ))
}

/// Changes to a site's settings; absent fields stay as they are, `null`
/// clears the installation or the token.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSite {
    /// Connects a repository (or another one): where runners clone from.
    pub repo_url: Option<String>,
    /// Connects a GitHub repository, `owner/name`; `repo_url` defaults to
    /// its https URL.
    pub github_repo: Option<String>,
    pub production_branch: Option<String>,
    pub branch_deploys: Option<bool>,
    pub deploy_previews: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub github_installation_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub github_token: Option<Option<String>>,
    /// Labels a runner needs to build this site.
    pub required_labels: Option<Vec<String>>,
    /// Builds of this site running at once; 0 for no limit.
    pub max_concurrent_builds: Option<i64>,
    /// Whether a newer push stops the branch's running build.
    pub cancel_superseded: Option<bool>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[utoipa::path(
    patch,
    operation_id = "update_site",
    path = jamstack_proto::routes::api::SITE,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    request_body = UpdateSite,
    responses(
        (status = 200, description = "The site, changed", body = SiteView),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
// Each argument is one service or one part of the request the handler uses.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    State(db): State<Database>,
    State(config): State<Arc<Config>>,
    State(secrets): State<Arc<SecretBox>>,
    State(urls): State<Urls>,
    State(github): State<GitHubService>,
    State(installation): State<Installation>,
    _: CanManageSites,
    Path(name): Path<String>,
    Json(body): Json<UpdateSite>,
) -> AppResult<Json<SiteView>> {
    let site = find_site(&db, &name).await?;
    if let Some(repo) = &body.github_repo {
        validate_github_repo(repo).map_err(bad_request)?;
    }
    let connect = clone_url(body.repo_url.as_deref(), body.github_repo.as_deref());
    // A GitHub repository connected without naming a production branch
    // brings its default branch, as a new site's does.
    let follow_default = body.github_repo.is_some() && body.production_branch.is_none();
    if let Some(repo_url) = &connect {
        validate_repo_url(repo_url, config.allow_local_repositories).map_err(bad_request)?;
    }
    if body
        .max_concurrent_builds
        .is_some_and(|n| !(0..=1000).contains(&n))
    {
        return Err(bad_request(
            "max_concurrent_builds must be between 0 (no limit) and 1000",
        ));
    }
    let mut settings = site.settings();
    let production_branch = body
        .production_branch
        .unwrap_or_else(|| site.production_branch.clone());
    if production_branch.trim().is_empty() {
        return Err(bad_request("production_branch is empty"));
    }
    if let Some(on) = body.branch_deploys {
        settings.branch_deploys = on;
    }
    if let Some(on) = body.deploy_previews {
        settings.deploy_previews = on;
    }
    if let Some(installation) = body.github_installation_id {
        settings.github_installation_id = installation;
    }
    let token_changed = body.github_token.is_some();
    if let Some(token) = body.github_token {
        if token.is_some() && site.github_repo.is_none() && body.github_repo.is_none() {
            return Err(bad_request(format!(
                "site `{name}` has no github_repo for the token to be used with"
            )));
        }
        if let Some(token) = &token {
            validate_token(token).map_err(bad_request)?;
        }
        settings.github_token_sealed =
            token.map(|token| secrets.seal(&github_token_purpose(&site.name), &token));
    }
    if let Some(repo_url) = &connect {
        db.connect_repository(site.id, repo_url, body.github_repo.as_deref(), follow_default)
            .await?;
        tracing::info!(site = %site.name, repo_url, "repository connected");
    }
    let site = db
        .update_site_settings(site.id, &production_branch, &settings)
        .await?
        .ok_or_else(|| crate::error::not_found(format!("site `{name}` vanished")))?;
    let scheduling = SchedulingSettings {
        production_branch: None,
        required_labels: body.required_labels,
        max_concurrent_builds: body.max_concurrent_builds,
        cancel_superseded: body.cancel_superseded,
    };
    db.update_scheduling(site.id, &scheduling).await?;
    if body.github_repo.is_some() {
        ask_default_branch(&github, &site).await?;
    }
    let registration = if token_changed && site.github_token_sealed.is_some() {
        Some(register_webhook(&github, &installation.webhook_secret, &site).await?)
    } else {
        None
    };
    let site = find_site(&db, &name).await?;
    let mut view = view(&urls, site);
    view.github_webhook = registration;
    Ok(Json(view))
}

/// The generic webhook of a site, with its secret (shown only here).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GenericWebhook {
    pub url: String,
    pub secret: String,
    #[schema(value_type = String)]
    pub signature_header: &'static str,
    #[schema(value_type = String)]
    pub delivery_header: &'static str,
}

/// `POST /api/v1/sites/{site}/generic-webhook`: makes a new secret for the
/// site's generic webhook (the previous one stops working) and shows it
/// once.
#[utoipa::path(
    post,
    operation_id = "create_generic_webhook",
    path = "/api/v1/sites/{site}/generic-webhook",
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 201, description = "The generic webhook and its new secret, shown once", body = GenericWebhook),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
// Needs `admin`: whoever holds the secret can start trusted production
// builds of any commit with the site's secrets, more than `sites` grants.
pub async fn create_generic_webhook(
    State(db): State<Database>,
    State(secrets): State<Arc<SecretBox>>,
    State(urls): State<Urls>,
    _: Admin,
    Path(name): Path<String>,
) -> AppResult<(StatusCode, Json<GenericWebhook>)> {
    let site = find_site(&db, &name).await?;
    let secret = random_hex(32);
    let sealed = secrets.seal(&generic_webhook_purpose(&site.name), &secret);
    db.set_generic_webhook_secret(site.id, &sealed).await?;
    Ok((
        StatusCode::CREATED,
        Json(GenericWebhook {
            url: format!("{}/webhooks/generic/{}", urls.public_url, site.name),
            secret,
            signature_header: "X-Jamstack-Signature-256",
            delivery_header: "X-Jamstack-Delivery",
        }),
    ))
}

/// The sites, by name, a page at a time.
#[utoipa::path(
    get,
    operation_id = "list_sites",
    path = jamstack_proto::routes::api::SITES,
    tag = "sites",
    params(PageParams),
    responses(
        (status = 200, description = "One page of the sites, by name", body = Vec<SiteView>, headers(("link" = String, description = "`<…?page=N+1&per_page=M>; rel=\"next\"` when another page follows"))),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn list(
    State(db): State<Database>,
    State(urls): State<Urls>,
    _: CanRead,
    Extension(principal): Extension<Principal>,
    page: Pagination,
) -> AppResult<Paged<SiteView>> {
    let sites = db
        .sites_page_of(principal.team_filter(), page.fetch_limit(), page.offset())
        .await?;
    Ok(page.answer(sites).map(|s| view(&urls, s)))
}

#[utoipa::path(
    get,
    operation_id = "show_site",
    path = jamstack_proto::routes::api::SITE,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "The site", body = SiteView),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn show(
    State(db): State<Database>,
    State(urls): State<Urls>,
    _: CanRead,
    Path(name): Path<String>,
) -> AppResult<Json<SiteView>> {
    let site = find_site(&db, &name).await?;
    Ok(Json(view(&urls, site)))
}

/// Locks publishing: builds go on and their deploys are ready at their
/// permalinks, but production stays on the deploy it serves until a deploy
/// is published by hand or the site is unlocked.
#[utoipa::path(
    post,
    operation_id = "lock_site",
    path = jamstack_proto::routes::api::SITE_LOCK,
    tag = "deploys",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "The site, its publishing locked", body = SiteView),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["deploys"])),
    extensions(("x-permission" = json!("site.deploy")))
)]
pub async fn lock(
    State(db): State<Database>,
    State(deploys): State<Deploys>,
    State(notifications): State<Notifications>,
    State(urls): State<Urls>,
    _: CanDeploy,
    Path(name): Path<String>,
) -> AppResult<Json<SiteView>> {
    let site = set_locked(&db, &deploys, &notifications, &name, true).await?;
    Ok(Json(view(&urls, site)))
}

/// Unlocks publishing: the next production build publishes again.
#[utoipa::path(
    post,
    operation_id = "unlock_site",
    path = jamstack_proto::routes::api::SITE_UNLOCK,
    tag = "deploys",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "The site, its publishing unlocked", body = SiteView),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["deploys"])),
    extensions(("x-permission" = json!("site.deploy")))
)]
pub async fn unlock(
    State(db): State<Database>,
    State(deploys): State<Deploys>,
    State(notifications): State<Notifications>,
    State(urls): State<Urls>,
    _: CanDeploy,
    Path(name): Path<String>,
) -> AppResult<Json<SiteView>> {
    let site = set_locked(&db, &deploys, &notifications, &name, false).await?;
    Ok(Json(view(&urls, site)))
}

/// Locks or unlocks publishing, and tells the edge and the site's
/// notification hooks; returns the site as it is now.
async fn set_locked(
    db: &Database,
    deploys: &Deploys,
    notifications: &Notifications,
    name: &str,
    locked: bool,
) -> AppResult<Site> {
    let site = find_site(db, name).await?;
    db.set_publish_locked(site.id, locked).await?;
    deploys
        .announce(crate::deploys::events::DeployEvent::SiteChanged { site_id: site.id })
        .await;
    tracing::info!(site = %site.name, locked, "publishing lock changed");
    crate::notifications::deploy_changed(
        notifications,
        site.id,
        crate::notifications::lock_change(locked),
        None,
    )
    .await;
    find_site(db, name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_names_must_fit_in_hostnames() {
        for good in ["blog", "my-site", "a1", &"a".repeat(37)] {
            assert!(validate_site_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "a--b", "Blog", "a.b", "a_b", &"a".repeat(38)] {
            assert!(validate_site_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn github_repositories_are_owner_slash_name() {
        for good in ["octo/blog", "Octo-Org/my.site_v2"] {
            assert!(validate_github_repo(good).is_ok(), "{good}");
        }
        for bad in [
            "octo",
            "octo/",
            "/blog",
            "octo/blog/x",
            "octo/bl og",
            "https://github.com/octo/blog",
        ] {
            assert!(validate_github_repo(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_server_urls_are_clone_urls_unless_local_repositories_are_allowed() {
        for good in [
            "https://github.com/octo/blog.git",
            "https://git.example.com:8443/team/blog",
            "ssh://git@git.example.com/wiki.git",
        ] {
            assert!(validate_repo_url(good, false).is_ok(), "{good}");
        }
        for bad in [
            "/srv/git/blog",
            "file:///srv/git/blog",
            "../blog",
            "git@github.com:octo/blog.git",
            "http://git.example.com/blog",
            "https://",
            "https://git.example.com/a blog",
            "git://git.example.com/blog",
        ] {
            let refused = validate_repo_url(bad, false).expect_err(bad);
            assert!(refused.contains("--allow-local-repositories"), "{refused}");
        }
        assert!(validate_repo_url("/srv/git/blog", true).is_ok());
    }

    #[test]
    fn a_settings_change_tells_null_from_absent() {
        let body: UpdateSite = serde_json::from_str(r#"{"github_token": null}"#).unwrap();
        assert_eq!(body.github_token, Some(None));
        assert_eq!(body.github_installation_id, None);
        let body: UpdateSite = serde_json::from_str(r#"{"github_installation_id": 7}"#).unwrap();
        assert_eq!(body.github_installation_id, Some(Some(7)));
    }
}
