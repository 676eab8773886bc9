//! Sites: the list, connecting a repository, a site's deploys and builds,
//! publishing (rollback), locking, triggering and rebuilding from an empty
//! cache. Site settings are in `site_settings.rs`.

use super::{Chrome, CsrfOnly, PageResult, Session, ago, duration, headline, render, see_other, short_sha};
use crate::api::find_site;
use crate::api::site_settings::clear_build_cache;
use crate::api::sites::{validate_repo_url, validate_site_name};
use crate::builds::{BuildRequest, Queue, queue_build};
use crate::config::Config;
use crate::db::Database;
use crate::db::{Build, NewSite, Site};
use crate::deploys::{Deploys, alias_for};
use crate::error::{conflict, not_found};
use crate::notifications::Notifications;
use crate::urls::Urls;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use jamstack_proto::BuildContext;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// One row of the sites list.
pub struct SiteRow {
    pub name: String,
    pub url: String,
    pub repo: String,
    pub production_branch: String,
    pub published: Option<String>,
    pub published_at: String,
    pub last_build: Option<BuildRow>,
    pub locked: bool,
}

/// A build as lists show it.
pub struct BuildRow {
    pub id: i64,
    pub state: String,
    pub context: String,
    pub branch: String,
    pub sha: String,
    pub message: String,
    pub author: String,
    pub when: String,
    pub took: String,
}

impl BuildRow {
    pub fn of(build: &Build) -> Self {
        BuildRow {
            id: build.id,
            state: build.state.as_str().to_owned(),
            context: build.context.as_str().to_owned(),
            branch: build.branch.clone(),
            sha: short_sha(&build.commit_sha),
            message: headline(build.commit_message.as_deref()),
            author: build.author.clone().unwrap_or_default(),
            when: ago(build.created_at),
            took: took(build),
        }
    }
}

/// How long a build ran (so far).
pub fn took(build: &Build) -> String {
    match (build.started_at, build.finished_at) {
        (Some(start), Some(end)) => duration(end - start),
        (Some(start), None) => format!("{} so far", duration(crate::db::now_millis() - start)),
        _ => String::new(),
    }
}

#[derive(Template)]
#[template(path = "dashboard/sites.html")]
struct SitesPage {
    chrome: Chrome,
    sites: Vec<SiteRow>,
}

pub async fn list(State(db): State<Database>, State(urls): State<Urls>, session: Session) -> PageResult {
    let mut rows = Vec::new();
    // A user sees the sites of their teams only.
    let visible = match session.principal.team_filter() {
        crate::db::TeamFilter::All => None,
        filter => Some(db.site_names_of(filter).await?),
    };
    let sites = db.list_sites().await?.into_iter();
    for site in sites.filter(|s| visible.as_ref().is_none_or(|names| names.contains(&s.name))) {
        let last_build = db.builds_of_site(site.id, 1).await?;
        let published_at = match &site.published_deploy_id {
            Some(id) => db
                .deploy(id)
                .await?
                .and_then(|d| d.ready_at)
                .map(ago)
                .unwrap_or_default(),
            None => String::new(),
        };
        rows.push(SiteRow {
            url: urls.site_url(&site.name),
            repo: site
                .github_repo
                .clone()
                .or_else(|| site.repo_url.clone())
                .unwrap_or_default(),
            production_branch: site.production_branch.clone(),
            published: site
                .published_deploy_id
                .as_ref()
                .map(|id| id.chars().take(10).collect()),
            published_at,
            last_build: last_build.first().map(BuildRow::of),
            locked: site.publish_locked,
            name: site.name,
        });
    }
    Ok(render(&SitesPage {
        chrome: Chrome::new(&session, "sites"),
        sites: rows,
    }))
}

#[derive(Template)]
#[template(path = "dashboard/new_site.html")]
struct NewSitePage {
    chrome: Chrome,
    form: NewSiteForm,
    error: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct NewSiteForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub repo_url: String,
    #[serde(default)]
    pub github_repo: String,
    #[serde(default)]
    pub production_branch: String,
}

pub async fn new_form(session: Session) -> PageResult {
    Ok(render(&NewSitePage {
        chrome: Chrome::new(&session, "sites"),
        form: NewSiteForm::default(),
        error: None,
    }))
}

pub async fn create(
    State(config): State<Arc<Config>>,
    State(db): State<Database>,
    session: Session,
    Form(form): Form<NewSiteForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let again = |error: String| {
        let page = NewSitePage {
            chrome: Chrome::new(&session, "sites"),
            form: form.clone(),
            error: Some(error),
        };
        Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
    };
    let name = form.name.trim().to_owned();
    if let Err(error) = validate_site_name(&name) {
        return again(error);
    }
    let github_repo = form.github_repo.trim();
    if !github_repo.is_empty() && github_repo.split('/').filter(|p| !p.is_empty()).count() != 2 {
        return again(format!(
            "GitHub repository `{github_repo}` is not `owner/name`; leave it empty for a repository outside GitHub"
        ));
    }
    // Both left empty: a site for direct deploys, a repository connected later.
    let repo_url = match (form.repo_url.trim(), github_repo) {
        ("", "") => None,
        ("", repo) => Some(format!("https://github.com/{repo}.git")),
        (url, _) => Some(url.to_owned()),
    };
    if let Some(url) = &repo_url
        && let Err(error) = validate_repo_url(url, config.allow_local_repositories)
    {
        return again(error);
    }
    let branch = form.production_branch.trim();
    let inserted = db
        .insert_site(&NewSite {
            name: name.clone(),
            repo_url,
            github_repo: (!github_repo.is_empty()).then(|| github_repo.to_owned()),
            production_branch_follows_default: branch.is_empty() && !github_repo.is_empty(),
            production_branch: if branch.is_empty() {
                crate::db::DEFAULT_BRANCH_UNTIL_KNOWN
            } else {
                branch
            }
            .to_owned(),
            settings: Default::default(),
        })
        .await?;
    if inserted.is_none() {
        return again(format!("a site named `{name}` exists already; pick another name"));
    }
    tracing::info!(site = %name, "site connected from the dashboard");
    Ok(see_other(format!("/sites/{name}")))
}

/// A deploy as the site page lists it.
pub struct DeployRow {
    pub id: String,
    pub short_id: String,
    pub state: String,
    pub published: bool,
    pub context: String,
    pub branch: String,
    pub sha: String,
    pub message: String,
    pub author: String,
    pub build_id: Option<i64>,
    pub took: String,
    pub when: String,
    pub files: i64,
    pub size: String,
    pub permalink: String,
    /// The preview or branch hostname that serves this deploy's context.
    pub alias_url: Option<String>,
    pub alias_label: String,
}

#[derive(Template)]
#[template(path = "dashboard/site.html")]
struct SitePage {
    chrome: Chrome,
    site: Site,
    url: String,
    deploys: Vec<DeployRow>,
    builds: Vec<BuildRow>,
    notice: Option<&'static str>,
}

#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

fn notice_text(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "published" => "Published. The site serves that deploy now.",
        "locked" => "Publishing is locked: new production builds deploy but do not go live.",
        "unlocked" => "Publishing is unlocked: the next production build goes live.",
        "queued" => "Build queued.",
        _ => return None,
    })
}

pub fn size(bytes: i64) -> String {
    match bytes {
        ..=1023 => format!("{bytes} B"),
        1024..=1_048_575 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

pub async fn show(
    State(db): State<Database>,
    State(urls): State<Urls>,
    session: Session,
    Path(name): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> PageResult {
    let site = find_site(&db, &name).await?;
    let builds = db.builds_of_site(site.id, 100).await?;
    let by_id: HashMap<i64, &Build> = builds.iter().map(|b| (b.id, b)).collect();
    let deploys = db
        .deploys_of_site(site.id, 100)
        .await?
        .into_iter()
        .map(|deploy| {
            let build = deploy.build_id.and_then(|id| by_id.get(&id).copied());
            let context = BuildContext::parse(&deploy.context);
            let alias = context.and_then(|c| alias_for(c, &deploy.branch, deploy.pr_number));
            DeployRow {
                published: site.published_deploy_id.as_deref() == Some(deploy.id.as_str()),
                permalink: urls.site_url(&format!("{}--{}", deploy.id, site.name)),
                alias_url: alias
                    .as_ref()
                    .map(|a| urls.site_url(&format!("{a}--{}", site.name))),
                alias_label: alias.unwrap_or_default(),
                state: deploy.state.clone(),
                context: deploy.context.clone(),
                branch: deploy.branch.clone(),
                sha: short_sha(&deploy.commit_sha),
                message: headline(build.and_then(|b| b.commit_message.as_deref())),
                author: build.and_then(|b| b.author.clone()).unwrap_or_default(),
                build_id: deploy.build_id,
                took: build.map(took).unwrap_or_default(),
                when: ago(deploy.created_at),
                files: deploy.file_count,
                size: size(deploy.total_size),
                short_id: deploy.id.chars().take(10).collect(),
                id: deploy.id,
            }
        })
        .collect();
    Ok(render(&SitePage {
        chrome: Chrome::new(&session, "sites"),
        url: urls.site_url(&site.name),
        deploys,
        builds: builds.iter().take(20).map(BuildRow::of).collect(),
        notice: notice_text(query.notice.as_deref()),
        site,
    }))
}

/// Publishes a ready deploy of the site: a rollback when it is an older one.
pub async fn publish(
    State(db): State<Database>,
    State(deploys): State<Deploys>,
    State(notifications): State<Notifications>,
    session: Session,
    Path((name, deploy_id)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    let deploy = db
        .deploy(&deploy_id)
        .await?
        .filter(|d| d.site_id == site.id)
        .ok_or_else(|| not_found(format!("site `{name}` has no deploy `{deploy_id}`")))?;
    if !db.publish_deploy(site.id, &deploy_id).await? {
        return Err(conflict(format!(
            "deploy `{deploy_id}` is {} and cannot be published; only ready deploys can",
            deploy.state
        ))
        .into());
    }
    // The edge forgets what it served before the redirect is answered.
    deploys
        .announce(crate::deploys::events::DeployEvent::SiteChanged { site_id: site.id })
        .await;
    tracing::info!(site = %site.name, deploy = %deploy_id, "deploy published from the dashboard");
    let change =
        crate::notifications::change_of_publish(&notifications, site.published_deploy_id.as_deref(), &deploy)
            .await;
    crate::notifications::deploy_changed(&notifications, site.id, change, Some(&deploy.id)).await;
    Ok(see_other(format!("/sites/{name}?notice=published")))
}

pub async fn lock(
    State(db): State<Database>,
    State(deploys): State<Deploys>,
    State(notifications): State<Notifications>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    set_locked(&db, &deploys, &notifications, session, name, form, true).await
}

pub async fn unlock(
    State(db): State<Database>,
    State(deploys): State<Deploys>,
    State(notifications): State<Notifications>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    set_locked(&db, &deploys, &notifications, session, name, form, false).await
}

async fn set_locked(
    db: &Database,
    deploys: &Deploys,
    notifications: &Notifications,
    session: Session,
    name: String,
    form: CsrfOnly,
    locked: bool,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(db, &name).await?;
    db.set_publish_locked(site.id, locked).await?;
    deploys
        .announce(crate::deploys::events::DeployEvent::SiteChanged { site_id: site.id })
        .await;
    crate::notifications::deploy_changed(
        notifications,
        site.id,
        crate::notifications::lock_change(locked),
        None,
    )
    .await;
    let notice = if locked { "locked" } else { "unlocked" };
    Ok(see_other(format!("/sites/{name}?notice={notice}")))
}

/// Builds the production branch's head now.
pub async fn trigger(
    State(db): State<Database>,
    State(queue): State<Queue>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    build_production(&queue, &site).await
}

/// Empties the site's build cache, then builds the production branch's
/// head: the build starts from nothing, as on a new runner.
pub async fn clear_cache_and_rebuild(
    State(db): State<Database>,
    State(queue): State<Queue>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    clear_build_cache(&db, &site).await?;
    build_production(&queue, &site).await
}

async fn build_production(queue: &Queue, site: &Site) -> PageResult {
    let build_id = queue_build(
        queue,
        site,
        BuildRequest {
            from_fork: false,
            commit_unverified: false,
            context: BuildContext::Production,
            branch: site.production_branch.clone(),
            commit_sha: String::new(),
            commit_message: None,
            author: None,
            pr_number: None,
            trigger: "dashboard",
            trigger_title: None,
            trigger_payload: None,
        },
    )
    .await?;
    Ok(see_other(format!("/builds/{build_id}")))
}
