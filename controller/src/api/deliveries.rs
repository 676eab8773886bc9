//! `GET /api/v1/webhook-deliveries`: every webhook delivery with what was
//! done with it, newest first.

use super::pagination::{Paged, Pagination};
use crate::auth::Admin;
use crate::db::Delivery;
use crate::error::{AppResult, not_found};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct DeliveryFilter {
    /// Only deliveries older than this one (its `id`).
    pub before: Option<i64>,
}

/// Deliveries, newest first, a page at a time.
pub async fn list(
    State(state): State<AppState>,
    _: Admin,
    page: Pagination,
    Query(filter): Query<DeliveryFilter>,
) -> AppResult<Paged<Delivery>> {
    let deliveries = state
        .db
        .deliveries_page(page.fetch_limit(), page.offset(), filter.before)
        .await?;
    Ok(page.answer(deliveries))
}

pub async fn show(State(state): State<AppState>, _: Admin, Path(id): Path<i64>) -> AppResult<Json<Delivery>> {
    state
        .db
        .delivery(id)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(format!("no webhook delivery {id}")))
}
