//! `GET /api/v1/webhook-deliveries`: every webhook delivery with what was
//! done with it, newest first.

use crate::auth::Admin;
use crate::db::Delivery;
use crate::error::{AppResult, not_found};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// At most this many (default 50, at most 500).
    pub limit: Option<i64>,
    /// Only deliveries older than this one (its `id`), for the next page.
    pub before: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    _: Admin,
    Query(page): Query<Page>,
) -> AppResult<Json<Vec<Delivery>>> {
    let limit = page.limit.unwrap_or(50).clamp(1, 500);
    Ok(Json(state.db.deliveries(limit, page.before).await?))
}

pub async fn show(State(state): State<AppState>, _: Admin, Path(id): Path<i64>) -> AppResult<Json<Delivery>> {
    state
        .db
        .delivery(id)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(format!("no webhook delivery {id}")))
}
