//! A team's own settings: `GET`/`PUT /api/v1/teams/{team}/settings`. Its
//! owners set them; every member reads them.

use crate::db::Database;
use crate::error::{AppResult, bad_request, not_found};
use axum::Json;
use axum::extract::{Path, State};
use jamstack_proto::ErrorBody;
use serde::{Deserialize, Serialize};

/// The highest per-team limit of concurrent builds one may set.
pub const MAX_TEAM_BUILDS: i64 = 10_000;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamSettings {
    /// Builds the team's sites may run at once, all together; a job past
    /// it waits in the queue until one of them ends. 0: no limit.
    pub max_concurrent_builds: i64,
}

async fn team_id(db: &Database, name: &str) -> AppResult<i64> {
    Ok(db
        .team_by_name(name)
        .await?
        .ok_or_else(|| not_found(format!("no team named `{name}`")))?
        .id)
}

/// The team's settings.
#[utoipa::path(
    get,
    operation_id = "show_team_settings",
    path = jamstack_proto::routes::api::TEAM_SETTINGS,
    tag = "teams",
    params(("team" = String, Path, description = "The team's name")),
    responses((status = 200, description = "The team's settings", body = TeamSettings)),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("team.read")))
)]
pub async fn show(State(db): State<Database>, Path(team): Path<String>) -> AppResult<Json<TeamSettings>> {
    let team = team_id(&db, &team).await?;
    Ok(Json(TeamSettings {
        max_concurrent_builds: db.team_build_limit(team).await?,
    }))
}

/// Changes the team's settings; its owners only.
#[utoipa::path(
    put,
    operation_id = "update_team_settings",
    path = jamstack_proto::routes::api::TEAM_SETTINGS,
    tag = "teams",
    params(("team" = String, Path, description = "The team's name")),
    request_body = TeamSettings,
    responses(
        (status = 200, description = "The team's settings as stored", body = TeamSettings),
        (status = 400, description = "A limit out of range", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("team.members")))
)]
pub async fn update(
    State(db): State<Database>,
    State(queue): State<crate::builds::Queue>,
    Path(team): Path<String>,
    Json(body): Json<TeamSettings>,
) -> AppResult<Json<TeamSettings>> {
    if !(0..=MAX_TEAM_BUILDS).contains(&body.max_concurrent_builds) {
        return Err(bad_request(format!(
            "`max_concurrent_builds` is {}; it must be 0 (no limit) to {MAX_TEAM_BUILDS}",
            body.max_concurrent_builds
        )));
    }
    let team_id = team_id(&db, &team).await?;
    db.set_team_build_limit(team_id, body.max_concurrent_builds)
        .await?;
    tracing::info!(team = %team, limit = body.max_concurrent_builds, "team build limit set");
    // A higher limit may let waiting jobs start now.
    queue.jobs_available.notify_waiters();
    Ok(Json(body))
}
