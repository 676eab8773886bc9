use super::find_site;
use crate::auth::Admin;
use crate::db::{NewSite, Site};
use crate::error::{AppResult, bad_request, conflict};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSite {
    pub name: String,
    /// Where runners clone from: an https URL, or a local path for
    /// repositories on the runner's machine.
    pub repo_url: String,
    /// `owner/name` on GitHub; push webhooks of that repository build it.
    pub github_repo: Option<String>,
    #[serde(default = "default_branch")]
    pub production_branch: String,
}

fn default_branch() -> String {
    "main".to_owned()
}

/// A site as the API shows it.
#[derive(Debug, Serialize)]
pub struct SiteView {
    #[serde(flatten)]
    pub site: Site,
    pub url: String,
}

pub fn view(state: &AppState, site: Site) -> SiteView {
    SiteView {
        url: state.site_url(&site.name),
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

pub async fn create(
    State(state): State<AppState>,
    _: Admin,
    Json(body): Json<CreateSite>,
) -> AppResult<(StatusCode, Json<SiteView>)> {
    validate_site_name(&body.name).map_err(bad_request)?;
    if body.repo_url.trim().is_empty() {
        return Err(bad_request("repo_url is empty; give the repository's clone URL"));
    }
    if body.production_branch.trim().is_empty() {
        return Err(bad_request("production_branch is empty"));
    }
    let site = state
        .db
        .insert_site(&NewSite {
            name: body.name.clone(),
            repo_url: body.repo_url,
            github_repo: body.github_repo,
            production_branch: body.production_branch,
        })
        .await?
        .ok_or_else(|| {
            conflict(format!(
                "a site named `{}` exists already; pick another name",
                body.name
            ))
        })?;
    Ok((StatusCode::CREATED, Json(view(&state, site))))
}

pub async fn list(State(state): State<AppState>, _: Admin) -> AppResult<Json<Vec<SiteView>>> {
    let sites = state.db.list_sites().await?;
    Ok(Json(sites.into_iter().map(|s| view(&state, s)).collect()))
}

pub async fn show(
    State(state): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
) -> AppResult<Json<SiteView>> {
    let site = find_site(&state, &name).await?;
    Ok(Json(view(&state, site)))
}

/// Locks publishing: builds go on and their deploys are ready at their
/// permalinks, but production stays on the deploy it serves until a deploy
/// is published by hand or the site is unlocked.
pub async fn lock(
    State(state): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
) -> AppResult<Json<SiteView>> {
    set_locked(&state, &name, true).await
}

/// Unlocks publishing: the next production build publishes again.
pub async fn unlock(
    State(state): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
) -> AppResult<Json<SiteView>> {
    set_locked(&state, &name, false).await
}

async fn set_locked(state: &AppState, name: &str, locked: bool) -> AppResult<Json<SiteView>> {
    let site = find_site(state, name).await?;
    state.db.set_publish_locked(site.id, locked).await?;
    tracing::info!(site = %site.name, locked, "publishing lock changed");
    let site = find_site(state, name).await?;
    Ok(Json(view(state, site)))
}

#[cfg(test)]
mod tests {
    use super::validate_site_name;

    #[test]
    fn site_names_must_fit_in_hostnames() {
        for good in ["blog", "my-site", "a1", &"a".repeat(37)] {
            assert!(validate_site_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "a--b", "Blog", "a.b", "a_b", &"a".repeat(38)] {
            assert!(validate_site_name(bad).is_err(), "{bad}");
        }
    }
}
