//! A site's HTTPS settings: whether plain HTTP redirects to HTTPS, and its
//! HSTS header. Both take effect only when the controller has an HTTPS
//! listener (`--https-listen`).

use super::find_site;
use crate::auth::{CanManageSites, CanRead};
use crate::db::{Database, Site, SiteTransport};
use crate::deploys::Deploys;
use crate::deploys::events::DeployEvent;
use crate::error::{AppResult, bad_request};
use axum::Json;
use axum::extract::{Path, State};
use jamstack_proto::ErrorBody;
use serde::Deserialize;

/// The longest HSTS max-age accepted: two years, what browsers' preload
/// lists ask for at most.
pub const MAX_HSTS_MAX_AGE: i64 = 2 * 365 * 24 * 60 * 60;
/// The shortest max-age browsers' preload lists accept: one year.
const PRELOAD_MIN_MAX_AGE: i64 = 365 * 24 * 60 * 60;

/// What to change; a field left out keeps its value.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteHttpsBody {
    pub https_redirect: Option<bool>,
    pub hsts_max_age_seconds: Option<i64>,
    pub hsts_include_subdomains: Option<bool>,
    pub hsts_preload: Option<bool>,
}

/// The settings `body` asks for over `current`, or why they cannot be.
pub fn validate_https(body: &SiteHttpsBody, current: &SiteTransport) -> Result<SiteTransport, String> {
    let wanted = SiteTransport {
        https_redirect: body.https_redirect.unwrap_or(current.https_redirect),
        hsts_max_age_seconds: body.hsts_max_age_seconds.unwrap_or(current.hsts_max_age_seconds),
        hsts_include_subdomains: body
            .hsts_include_subdomains
            .unwrap_or(current.hsts_include_subdomains),
        hsts_preload: body.hsts_preload.unwrap_or(current.hsts_preload),
    };
    if !(0..=MAX_HSTS_MAX_AGE).contains(&wanted.hsts_max_age_seconds) {
        return Err(format!(
            "hsts_max_age_seconds is {}; give 0 (no HSTS header) to {MAX_HSTS_MAX_AGE} (two years)",
            wanted.hsts_max_age_seconds
        ));
    }
    if wanted.hsts_preload
        && (!wanted.hsts_include_subdomains || wanted.hsts_max_age_seconds < PRELOAD_MIN_MAX_AGE)
    {
        return Err(format!(
            "hsts_preload needs hsts_include_subdomains and hsts_max_age_seconds of at least \
             {PRELOAD_MIN_MAX_AGE} (one year), as browsers' preload lists require"
        ));
    }
    Ok(wanted)
}

#[utoipa::path(
    get,
    operation_id = "show_site_https",
    path = jamstack_proto::routes::api::SITE_HTTPS,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "The site's HTTPS redirect and HSTS settings", body = SiteTransport),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn show(
    State(db): State<Database>,
    _: CanRead,
    Path(name): Path<String>,
) -> AppResult<Json<SiteTransport>> {
    let site = find_site(&db, &name).await?;
    Ok(Json(db.site_transport(site.id).await?))
}

/// Changes whether plain HTTP redirects to HTTPS and the HSTS header.
#[utoipa::path(
    put,
    operation_id = "update_site_https",
    path = jamstack_proto::routes::api::SITE_HTTPS,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    request_body = SiteHttpsBody,
    responses(
        (status = 200, description = "The new settings", body = SiteTransport),
        (status = 400, description = "A max-age out of range, or preload without what it needs", body = ErrorBody),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn update(
    State(db): State<Database>,
    State(deploys): State<Deploys>,
    _: CanManageSites,
    Path(name): Path<String>,
    Json(body): Json<SiteHttpsBody>,
) -> AppResult<Json<SiteTransport>> {
    let site = find_site(&db, &name).await?;
    let wanted = validate_https(&body, &db.site_transport(site.id).await?).map_err(bad_request)?;
    store_https(&db, &deploys, &site, &wanted).await?;
    Ok(Json(wanted))
}

/// Stores a site's HTTPS settings and tells every controller's edge, which
/// keeps them beside each hostname's deploy.
pub async fn store_https(
    db: &Database,
    deploys: &Deploys,
    site: &Site,
    wanted: &SiteTransport,
) -> anyhow::Result<()> {
    db.set_site_transport(site.id, wanted).await?;
    deploys
        .announce(DeployEvent::SiteChanged { site_id: site.id })
        .await;
    tracing::info!(site = %site.name, https_redirect = wanted.https_redirect, hsts_max_age = wanted.hsts_max_age_seconds, "site HTTPS settings changed");
    Ok(())
}
