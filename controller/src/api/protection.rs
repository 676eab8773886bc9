//! Who may see a site: each kind of hostname public or behind the site's
//! password, and share links that let one visitor in for a while. The
//! password is taken, hashed and never shown again; the edge checks it
//! (`edge::protection`).

use super::find_site;
use crate::auth::{CanManageSites, CanRead};
use crate::db::{Access, ContextAccess, Database, Site, SiteProtection};
use crate::deploys::Deploys;
use crate::deploys::events::DeployEvent;
use crate::edge::Target;
use crate::edge::protection::{Guard, MAX_SHARE_LIFETIME, SHARE_PARAMETER, SiteAccess};
use crate::error::{AppResult, bad_request, not_found};
use crate::urls::Urls;
use axum::Json;
use axum::extract::{Path, State};
use jamstack_proto::ErrorBody;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The longest password taken: argon2 reads all of it.
const MAX_PASSWORD: usize = 1024;

/// A site's protection as the API shows it: never the password, only
/// whether one is set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProtectionView {
    /// The site's production hostname.
    pub production: Access,
    /// `deploy-preview-<n>--<site>` hostnames.
    pub previews: Access,
    /// `<branch>--<site>` hostnames.
    pub branch_deploys: Access,
    /// `<deploy-id>--<site>` hostnames.
    pub permalinks: Access,
    /// Whether the site has a password.
    pub password_set: bool,
}

/// Changes to a site's protection; a field left out stays as it is.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ProtectionBody {
    pub production: Option<Access>,
    pub previews: Option<Access>,
    pub branch_deploys: Option<Access>,
    pub permalinks: Option<Access>,
    /// A new password for the site (every visitor signed in with the old
    /// one is signed out). Taken as typed, spaces included.
    pub password: Option<String>,
}

fn view(protection: &SiteProtection) -> ProtectionView {
    ProtectionView {
        production: protection.access.production,
        previews: protection.access.previews,
        branch_deploys: protection.access.branch_deploys,
        permalinks: protection.access.permalinks,
        password_set: protection.password_hash.is_some(),
    }
}

/// The access `body` asks for, over `current`, or why it cannot be.
pub fn validate_protection(body: &ProtectionBody, current: &SiteProtection) -> Result<ContextAccess, String> {
    if let Some(password) = &body.password
        && (password.is_empty() || password.len() > MAX_PASSWORD)
    {
        return Err(format!(
            "the password must be between 1 and {MAX_PASSWORD} bytes long"
        ));
    }
    let now = current.access;
    let access = ContextAccess {
        production: body.production.unwrap_or(now.production),
        previews: body.previews.unwrap_or(now.previews),
        branch_deploys: body.branch_deploys.unwrap_or(now.branch_deploys),
        permalinks: body.permalinks.unwrap_or(now.permalinks),
    };
    if access.any_protected() && current.password_hash.is_none() && body.password.is_none() {
        return Err(
            "this site has no password yet: send `password` with the hostnames to protect".to_owned(),
        );
    }
    Ok(access)
}

#[utoipa::path(
    get,
    operation_id = "show_site_protection",
    path = jamstack_proto::routes::api::SITE_PROTECTION,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "Which hostnames ask for the site's password", body = ProtectionView),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn show(
    State(db): State<Database>,
    _: CanRead,
    Path(name): Path<String>,
) -> AppResult<Json<ProtectionView>> {
    let site = find_site(&db, &name).await?;
    Ok(Json(view(&db.site_protection(site.id).await?)))
}

/// Sets which hostnames ask for the site's password, and the password.
#[utoipa::path(
    put,
    operation_id = "update_site_protection",
    path = jamstack_proto::routes::api::SITE_PROTECTION,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    request_body = ProtectionBody,
    responses(
        (status = 200, description = "The new protection", body = ProtectionView),
        (status = 400, description = "A hostname protected with no password, or a password too long", body = ErrorBody),
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
    Json(body): Json<ProtectionBody>,
) -> AppResult<Json<ProtectionView>> {
    let site = find_site(&db, &name).await?;
    let current = db.site_protection(site.id).await?;
    let access = validate_protection(&body, &current).map_err(bad_request)?;
    store_protection(&db, &deploys, &site, &access, body.password).await?;
    Ok(Json(view(&db.site_protection(site.id).await?)))
}

/// Stores `access` (checked by [`validate_protection`]) and a new
/// password, hashed off the async threads, and tells the edge.
pub async fn store_protection(
    db: &Database,
    deploys: &Deploys,
    site: &Site,
    access: &ContextAccess,
    password: Option<String>,
) -> anyhow::Result<()> {
    let hash = match password {
        Some(password) => {
            Some(tokio::task::spawn_blocking(move || crate::auth::hash_password(&password)).await??)
        }
        None => None,
    };
    db.set_site_protection(site.id, access, hash.as_deref()).await?;
    // The edge keeps each hostname's guard beside its deploy: forgotten
    // now, here and on every controller told of the change.
    deploys
        .announce(DeployEvent::SiteChanged { site_id: site.id })
        .await;
    tracing::info!(site = %site.name, password_changed = hash.is_some(), "site protection changed");
    Ok(())
}

/// A share link to make: which hostname, and for how long.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ShareLinkBody {
    /// A preview or branch hostname (`deploy-preview-12`, `staging`);
    /// without it and `deploy_id`, the production hostname.
    pub alias: Option<String>,
    /// A deploy, for its permalink.
    pub deploy_id: Option<String>,
    /// How long the link lets in, at most 30 days.
    pub expires_in_seconds: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShareLinkView {
    /// The link: whoever opens it before it expires sees the hostname.
    pub url: String,
    /// When it stops letting in, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Makes a link that lets whoever opens it see one protected hostname
/// until it expires, or until the site's password changes.
#[utoipa::path(
    post,
    operation_id = "create_share_link",
    path = jamstack_proto::routes::api::SITE_SHARE_LINKS,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    request_body = ShareLinkBody,
    responses(
        (status = 200, description = "The link", body = ShareLinkView),
        (status = 400, description = "A public hostname, or a lifetime out of range", body = ErrorBody),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn create_share_link(
    State(db): State<Database>,
    State(urls): State<Urls>,
    State(access): State<Arc<SiteAccess>>,
    _: CanManageSites,
    Path(name): Path<String>,
    Json(body): Json<ShareLinkBody>,
) -> AppResult<Json<ShareLinkView>> {
    let site = find_site(&db, &name).await?;
    if body.expires_in_seconds == 0 || body.expires_in_seconds > MAX_SHARE_LIFETIME.as_secs() {
        return Err(bad_request(format!(
            "expires_in_seconds must be between 1 and {} (30 days)",
            MAX_SHARE_LIFETIME.as_secs()
        )));
    }
    let (target, label) = match (body.alias, body.deploy_id) {
        (Some(_), Some(_)) => {
            return Err(bad_request("send `alias` or `deploy_id`, not both"));
        }
        (Some(alias), None) => {
            if db.alias_deploy(site.id, &alias).await?.is_none() {
                return Err(not_found(format!(
                    "site `{name}` has no hostname alias `{alias}`"
                )));
            }
            let label = format!("{alias}--{}", site.name);
            (
                Target::Alias {
                    site: site.name.clone(),
                    alias,
                },
                label,
            )
        }
        (None, Some(deploy_id)) => {
            if db.deploy(&deploy_id).await?.is_none_or(|d| d.site_id != site.id) {
                return Err(not_found(format!("site `{name}` has no deploy `{deploy_id}`")));
            }
            let label = format!("{deploy_id}--{}", site.name);
            (
                Target::Permalink {
                    site: site.name.clone(),
                    deploy_id,
                },
                label,
            )
        }
        (None, None) => (
            Target::Published {
                site: site.name.clone(),
            },
            site.name.clone(),
        ),
    };
    let protection = db.site_protection(site.id).await?;
    let Some(guard) = Guard::of(site.id, &target, &protection) else {
        return Err(bad_request(format!(
            "that hostname of `{name}` is public: anyone may open {} without a link; protect it first \
             (PUT /api/v1/sites/{name}/protection)",
            urls.site_url(&label)
        )));
    };
    let (token, expires_at) = access.sign_for(&guard, Duration::from_secs(body.expires_in_seconds));
    tracing::info!(site = %site.name, hostname = %label, expires_at, "share link made");
    Ok(Json(ShareLinkView {
        url: format!("{}?{SHARE_PARAMETER}={token}", urls.site_url(&label)),
        expires_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protecting_a_hostname_needs_a_password_set_or_sent() {
        let none = SiteProtection::default();
        let protect = ProtectionBody {
            previews: Some(Access::Password),
            ..ProtectionBody::default()
        };
        assert!(
            validate_protection(&protect, &none)
                .unwrap_err()
                .contains("no password")
        );
        let with_password = ProtectionBody {
            password: Some("s3cret".into()),
            ..protect
        };
        let access = validate_protection(&with_password, &none).unwrap();
        assert_eq!(access.previews, Access::Password);
        assert_eq!(access.production, Access::Public, "left as it was");
        let empty = ProtectionBody {
            password: Some(String::new()),
            ..ProtectionBody::default()
        };
        assert!(validate_protection(&empty, &none).is_err());
    }
}
