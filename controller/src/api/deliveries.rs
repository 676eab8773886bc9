//! `GET /api/v1/webhook-deliveries`: every webhook delivery with what was
//! done with it, newest first.

use super::pagination::PageParams;
use super::pagination::{Paged, Pagination};
use crate::auth::Admin;
use crate::db::Database;
use crate::db::Delivery;
use crate::error::{AppResult, not_found};
use axum::Json;
use axum::extract::{Path, Query, State};
use jamstack_proto::ErrorBody;
use serde::Deserialize;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    /// Only deliveries older than this one (its `id`).
    pub before: Option<i64>,
}

/// Deliveries, newest first, a page at a time.
#[utoipa::path(
    get,
    operation_id = "list_webhook_deliveries",
    path = "/api/v1/webhook-deliveries",
    tag = "admin",
    params(PageParams, DeliveryFilter),
    responses(
        (status = 200, description = "One page of the deliveries, newest first", body = Vec<Delivery>, headers(("link" = String, description = "`<…?page=N+1&per_page=M>; rel=\"next\"` when another page follows"))),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn list(
    State(db): State<Database>,
    _: Admin,
    page: Pagination,
    Query(filter): Query<DeliveryFilter>,
) -> AppResult<Paged<Delivery>> {
    let deliveries = db
        .deliveries_page(page.fetch_limit(), page.offset(), filter.before)
        .await?;
    Ok(page.answer(deliveries))
}

#[utoipa::path(
    get,
    operation_id = "show_webhook_delivery",
    path = "/api/v1/webhook-deliveries/{id}",
    tag = "admin",
    params(("id" = i64, Path, description = "The delivery's id")),
    responses(
        (status = 200, description = "The delivery", body = Delivery),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn show(State(db): State<Database>, _: Admin, Path(id): Path<i64>) -> AppResult<Json<Delivery>> {
    db.delivery(id)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(format!("no webhook delivery {id}")))
}
