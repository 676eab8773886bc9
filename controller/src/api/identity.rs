//! The key a site's `Role` rules verify visitors' `nf_jwt` tokens with:
//! an HS256 secret (taken, sealed and never shown again), an RS256 or
//! ES256 public key (PEM), or a JWKS URL. The edge verifies
//! (`edge::identity`).

use super::find_site;
use crate::auth::{CanManageSites, CanRead};
use crate::config::Config;
use crate::db::{Database, IdentityKey};
use crate::edge::identity::{public_key, secret_purpose};
use crate::error::{AppResult, bad_request, not_found};
use crate::notifications::targets;
use crate::secrets::SecretBox;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jamstack_proto::ErrorBody;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The longest secret, key or URL taken.
const MAX_KEY: usize = 16 * 1024;

/// A site's key as the API shows it: never the secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IdentityView {
    /// `hs256`, `public_key`, `jwks_url`, or null when the site has none.
    pub kind: Option<String>,
    /// The public key, when that is the kind.
    pub public_key_pem: Option<String>,
    /// The key set's URL, when that is the kind.
    pub jwks_url: Option<String>,
}

/// The site's new key: exactly one of the three.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityBody {
    /// An HS256 shared secret (Netlify Identity's JWT secret).
    pub hs256_secret: Option<String>,
    /// An RS256 (RSA) or ES256 (P-256) public key, PEM.
    pub public_key_pem: Option<String>,
    /// Where the identity provider publishes its keys (a JWKS document).
    pub jwks_url: Option<String>,
}

fn view(key: Option<IdentityKey>) -> IdentityView {
    let (kind, public_key_pem, jwks_url) = match key {
        None => (None, None, None),
        Some(IdentityKey::SealedSecret(_)) => (Some("hs256"), None, None),
        Some(IdentityKey::PublicKey(pem)) => (Some("public_key"), Some(pem), None),
        Some(IdentityKey::JwksUrl(url)) => (Some("jwks_url"), None, Some(url)),
    };
    IdentityView {
        kind: kind.map(str::to_owned),
        public_key_pem,
        jwks_url,
    }
}

/// The key `body` asks for (a secret still to be sealed), or why it cannot be.
pub fn validate_identity(body: &IdentityBody, allow_private_targets: bool) -> Result<IdentityKey, String> {
    let given = [&body.hs256_secret, &body.public_key_pem, &body.jwks_url]
        .iter()
        .filter(|field| field.is_some())
        .count();
    if given != 1 {
        return Err("send exactly one of `hs256_secret`, `public_key_pem` and `jwks_url`".to_owned());
    }
    if let Some(secret) = &body.hs256_secret {
        if secret.len() < 16 || secret.len() > MAX_KEY {
            return Err(format!(
                "`hs256_secret` must be between 16 and {MAX_KEY} bytes long"
            ));
        }
        return Ok(IdentityKey::SealedSecret(secret.clone()));
    }
    if let Some(pem) = &body.public_key_pem {
        if pem.len() > MAX_KEY || public_key(pem).is_none() {
            return Err(
                "`public_key_pem` is not an RSA or P-256 public key in PEM (`-----BEGIN PUBLIC KEY-----`)"
                    .to_owned(),
            );
        }
        return Ok(IdentityKey::PublicKey(pem.clone()));
    }
    let url = body.jwks_url.clone().unwrap_or_default();
    let parsed = url::Url::parse(&url).map_err(|e| format!("`jwks_url` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "https" | "http") || url.len() > MAX_KEY {
        return Err("`jwks_url` must be an https:// (or http://) URL".to_owned());
    }
    if let Some(refusal) = targets::refusal(&url, allow_private_targets) {
        return Err(format!(
            "`jwks_url`: {refusal} (the operator allows private ones with --allow-private-proxy-targets)"
        ));
    }
    Ok(IdentityKey::JwksUrl(url))
}

#[utoipa::path(
    get,
    operation_id = "show_site_identity",
    path = jamstack_proto::routes::api::SITE_IDENTITY,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "The key `Role` rules verify tokens with", body = IdentityView),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn show(
    State(db): State<Database>,
    _: CanRead,
    Path(name): Path<String>,
) -> AppResult<Json<IdentityView>> {
    let site = find_site(&db, &name).await?;
    Ok(Json(view(db.site_identity(site.id).await?)))
}

/// Sets the key the site's `Role` rules verify visitors' tokens with.
#[utoipa::path(
    put,
    operation_id = "update_site_identity",
    path = jamstack_proto::routes::api::SITE_IDENTITY,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    request_body = IdentityBody,
    responses(
        (status = 200, description = "The new key, its secret not shown", body = IdentityView),
        (status = 400, description = "Not exactly one key, or one that cannot verify tokens", body = ErrorBody),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn update(
    State(db): State<Database>,
    State(secrets): State<Arc<SecretBox>>,
    State(config): State<Arc<Config>>,
    _: CanManageSites,
    Path(name): Path<String>,
    Json(body): Json<IdentityBody>,
) -> AppResult<Json<IdentityView>> {
    let site = find_site(&db, &name).await?;
    let key = validate_identity(&body, config.proxy.allow_private_targets).map_err(bad_request)?;
    store_identity(&db, &secrets, site.id, key).await?;
    Ok(Json(view(db.site_identity(site.id).await?)))
}

/// Stores a key checked by [`validate_identity`], a secret sealed.
pub async fn store_identity(
    db: &Database,
    secrets: &SecretBox,
    site_id: i64,
    key: IdentityKey,
) -> AppResult<()> {
    let key = match key {
        IdentityKey::SealedSecret(secret) => {
            IdentityKey::SealedSecret(secrets.seal(&secret_purpose(site_id), &secret))
        }
        other => other,
    };
    db.set_site_identity(site_id, &key).await?;
    Ok(())
}

#[utoipa::path(
    delete,
    operation_id = "delete_site_identity",
    path = jamstack_proto::routes::api::SITE_IDENTITY,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 204, description = "Removed: `Role` rules match nobody, and new deploys with them are refused"),
        (status = 404, description = "No such site, or it has no key", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn delete(
    State(db): State<Database>,
    _: CanManageSites,
    Path(name): Path<String>,
) -> AppResult<StatusCode> {
    let site = find_site(&db, &name).await?;
    if db.delete_site_identity(site.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(format!("site `{name}` has no token key")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_usable_key_is_taken() {
        let none = IdentityBody::default();
        assert!(
            validate_identity(&none, false)
                .unwrap_err()
                .contains("exactly one")
        );
        let short = IdentityBody {
            hs256_secret: Some("short".into()),
            ..IdentityBody::default()
        };
        assert!(validate_identity(&short, false).unwrap_err().contains("16"));
        let pem = IdentityBody {
            public_key_pem: Some("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n".into()),
            ..IdentityBody::default()
        };
        assert!(validate_identity(&pem, false).unwrap_err().contains("PEM"));
        let private = IdentityBody {
            jwks_url: Some("http://127.0.0.1:9/jwks.json".into()),
            ..IdentityBody::default()
        };
        assert!(
            validate_identity(&private, false)
                .unwrap_err()
                .contains("private")
        );
        assert!(validate_identity(&private, true).is_ok());
    }
}
