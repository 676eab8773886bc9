//! Scheduled builds: cron expressions in a time zone, per site, made, listed
//! and removed under `/api/v1/sites/{site}/schedules`, each answered with
//! its next run. The worker that builds them is `crate::schedules`.

use super::find_site;
use crate::auth::{CanManageSites, CanRead};
use crate::db::Database;
use crate::error::{AppResult, bad_request, not_found};
use crate::schedules::{AddError, NewSchedule, ScheduleView, Schedules};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jamstack_proto::ErrorBody;

/// The site's build schedules, with their next run.
#[utoipa::path(
    get,
    operation_id = "list_build_schedules",
    path = jamstack_proto::routes::api::SITE_SCHEDULES,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "The site's schedules, oldest first", body = Vec<ScheduleView>),
        (status = 404, description = "No such site", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn list(
    State(db): State<Database>,
    _: CanRead,
    Path(site): Path<String>,
) -> AppResult<Json<Vec<ScheduleView>>> {
    let site = find_site(&db, &site).await?;
    let schedules = db.build_schedules(site.id).await?;
    Ok(Json(schedules.into_iter().map(ScheduleView::of).collect()))
}

/// Makes a build schedule and answers it with its first run.
#[utoipa::path(
    post,
    operation_id = "create_build_schedule",
    path = jamstack_proto::routes::api::SITE_SCHEDULES,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    request_body = NewSchedule,
    responses(
        (status = 201, description = "The schedule and its first run", body = ScheduleView),
        (status = 400, description = "A bad expression, time zone, branch or title, named", body = ErrorBody),
        (status = 404, description = "No such site", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn create(
    State(db): State<Database>,
    State(schedules): State<Schedules>,
    _: CanManageSites,
    Path(site): Path<String>,
    Json(body): Json<NewSchedule>,
) -> AppResult<(StatusCode, Json<ScheduleView>)> {
    let site = find_site(&db, &site).await?;
    let made = schedules.add(site.id, &body).await.map_err(|e| match e {
        AddError::Invalid(message) => bad_request(message),
        AddError::Failed(e) => e.into(),
    })?;
    tracing::info!(site = %site.name, schedule = made.id, cron = %made.cron, time_zone = %made.time_zone, "build schedule made");
    Ok((StatusCode::CREATED, Json(made)))
}

/// Removes a build schedule: it queues no build from now on.
#[utoipa::path(
    delete,
    operation_id = "delete_build_schedule",
    path = jamstack_proto::routes::api::SITE_SCHEDULE,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name"), ("id" = i64, Path, description = "The schedule's id, as listed")),
    responses(
        (status = 200, description = "The schedule removed, with the run it will no longer make", body = ScheduleView),
        (status = 404, description = "No such site or schedule", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn delete(
    State(db): State<Database>,
    State(schedules): State<Schedules>,
    _: CanManageSites,
    Path((site, id)): Path<(String, i64)>,
) -> AppResult<Json<ScheduleView>> {
    let site = find_site(&db, &site).await?;
    let Some(removed) = schedules.remove(site.id, id).await? else {
        return Err(not_found(format!(
            "site `{}` has no schedule {id}; list them with GET /api/v1/sites/{}/schedules",
            site.name, site.name
        )));
    };
    tracing::info!(site = %site.name, schedule = id, "build schedule removed");
    Ok(Json(removed))
}
