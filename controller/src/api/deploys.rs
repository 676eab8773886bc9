use super::find_site;
use crate::auth::Admin;
use crate::db::Deploy;
use crate::deploys::events::DeployEvent;
use crate::deploys::retention::{self, GcReport};
use crate::error::{AppResult, conflict, not_found};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct DeployView {
    #[serde(flatten)]
    pub deploy: Deploy,
    pub published: bool,
    pub permalink: String,
}

pub async fn list_for_site(
    State(state): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
) -> AppResult<Json<Vec<DeployView>>> {
    let site = find_site(&state, &name).await?;
    let deploys = state.db.deploys_of_site(site.id, 100).await?;
    Ok(Json(
        deploys
            .into_iter()
            .map(|deploy| DeployView {
                published: site.published_deploy_id.as_deref() == Some(deploy.id.as_str()),
                permalink: state.site_url(&format!("{}--{}", deploy.id, site.name)),
                deploy,
            })
            .collect(),
    ))
}

/// Publishes any ready deploy of the site: a rollback when it is an older
/// one. One pointer write; nothing is rebuilt or copied.
#[tracing::instrument(name = "publish", skip_all, fields(site = %name, deploy = %deploy_id))]
pub async fn publish(
    State(state): State<AppState>,
    _: Admin,
    Path((name, deploy_id)): Path<(String, String)>,
) -> AppResult<Json<DeployView>> {
    let site = find_site(&state, &name).await?;
    let deploy = state
        .db
        .deploy(&deploy_id)
        .await?
        .filter(|d| d.site_id == site.id)
        .ok_or_else(|| not_found(format!("site `{name}` has no deploy `{deploy_id}`")))?;
    if !state.db.publish_deploy(site.id, &deploy_id).await? {
        return Err(conflict(format!(
            "deploy `{deploy_id}` is {} and cannot be published; only ready deploys can",
            deploy.state
        )));
    }
    state
        .announce(DeployEvent::SiteChanged { site_id: site.id })
        .await;
    tracing::info!(site = %site.name, deploy = %deploy_id, "deploy published");
    let change =
        crate::notifications::change_of_publish(&state, site.published_deploy_id.as_deref(), &deploy).await;
    crate::notifications::deploy_changed(&state, site.id, change, Some(&deploy.id)).await;
    Ok(Json(DeployView {
        published: true,
        permalink: state.site_url(&format!("{}--{}", deploy.id, site.name)),
        deploy,
    }))
}

/// Runs retention and garbage collection now (they also run on their own
/// every `gc_interval`).
pub async fn collect_garbage(State(state): State<AppState>, _: Admin) -> AppResult<Json<GcReport>> {
    Ok(Json(retention::collect_garbage(&state).await?))
}

/// Takes a preview or branch hostname (`deploy-preview-12`, `staging`) down;
/// its deploys stay at their permalinks until retention removes them.
pub async fn remove_alias(
    State(state): State<AppState>,
    _: Admin,
    Path((name, alias)): Path<(String, String)>,
) -> AppResult<axum::http::StatusCode> {
    let site = find_site(&state, &name).await?;
    if !crate::deploys::take_alias_down(&state, site.id, &alias).await? {
        return Err(not_found(format!(
            "site `{name}` has no hostname alias `{alias}`"
        )));
    }
    tracing::info!(site = %site.name, alias, "alias taken down");
    Ok(axum::http::StatusCode::NO_CONTENT)
}
