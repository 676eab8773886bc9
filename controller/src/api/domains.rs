//! A site's custom domains under `/api/v1/sites/{site}/domains`: listed
//! with where each stands and the TXT record that proves it, added (at
//! once verified when an admin adds it), removed, and verified on demand.
//! The rules live in `crate::domains`; this file only speaks HTTP.

use super::find_site;
use crate::acme::service::CertificateStatus;
use crate::auth::{CanRead, ManagesSites};
use crate::config::Config;
use crate::db::{Database, Domain, VerifiedBy};
use crate::domains::{AddedBy, DomainError, DomainState, Domains, challenge_name, next_step};
use crate::error::{AppError, AppResult, bad_request, conflict, not_found};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jamstack_proto::ErrorBody;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

impl From<DomainError> for AppError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Invalid(message) => bad_request(message),
            DomainError::Conflict(message) => conflict(message),
            DomainError::NotFound(message) => not_found(message),
            DomainError::Internal(error) => error.into(),
        }
    }
}

/// The TXT record that proves control of a domain.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TxtRecord {
    /// `_jamstack-challenge.<hostname>`.
    pub name: String,
    pub value: String,
}

/// A custom domain as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DomainView {
    /// Lowercase ASCII (an internationalised name in its `xn--` form).
    pub hostname: String,
    /// The site's primary domain; the others redirect to it once it is
    /// verified.
    pub primary: bool,
    pub state: DomainState,
    /// What to do next, when something is to be done.
    pub next_step: Option<String>,
    /// The record to add at the domain's DNS host to prove control.
    pub txt_record: TxtRecord,
    /// When control was proved, in Unix milliseconds.
    pub verified_at: Option<i64>,
    pub verified_by: Option<VerifiedBy>,
    /// When the TXT record was last looked up, in Unix milliseconds.
    pub last_checked_at: Option<i64>,
    /// What the last lookup found wrong.
    pub last_error: Option<String>,
    /// When the background check looks again; `null` once verified, or
    /// once it stopped trying.
    pub next_check_at: Option<i64>,
    /// The domain's certificate by ACME; `null` when the controller gets
    /// no certificates (no `--acme-directory`).
    pub certificate: Option<CertificateView>,
    pub created_at: i64,
}

/// Where a domain's certificate by ACME stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CertificateView {
    /// `waiting_for_dns` (ordered once the domain is verified),
    /// `verified` (to be ordered within seconds), `issuing`, `active`,
    /// `renewal_due` or `failed`.
    pub state: String,
    /// When the certificate served expires, Unix milliseconds.
    pub not_after: Option<i64>,
    /// When it is renewed, Unix milliseconds.
    pub renew_at: Option<i64>,
    /// After a failure: when the next order is placed.
    pub next_attempt_at: Option<i64>,
    /// After a failure: the ACME server's problem type
    /// (`urn:ietf:params:acme:error:…`), or `client` when it was ours.
    pub error_type: Option<String>,
    /// After a failure: what the ACME server (or the controller) said.
    pub error: Option<String>,
    /// What to do now, when something is to be done.
    pub next_step: Option<String>,
}

impl From<CertificateStatus> for CertificateView {
    fn from(status: CertificateStatus) -> Self {
        CertificateView {
            state: status.state.to_owned(),
            not_after: status.not_after,
            renew_at: status.renew_at,
            next_attempt_at: status.next_attempt_at,
            error_type: status.error_type,
            error: status.error,
            next_step: status.next_step,
        }
    }
}

/// `domain` as the API shows it, with its certificate's status when the
/// controller gets certificates by ACME.
pub async fn view_with_certificate(
    db: &Database,
    config: &Config,
    domain: &Domain,
) -> anyhow::Result<DomainView> {
    let mut shown = view(domain);
    if config.acme.is_some() {
        let order = db.acme_order(&domain.hostname).await?;
        shown.certificate =
            Some(CertificateStatus::of(domain.is_verified(), order.as_ref(), crate::db::now_millis()).into());
    }
    Ok(shown)
}

pub fn view(domain: &Domain) -> DomainView {
    DomainView {
        hostname: domain.hostname.clone(),
        primary: domain.is_primary,
        state: DomainState::of(domain),
        next_step: next_step(domain),
        txt_record: TxtRecord {
            name: challenge_name(&domain.hostname),
            value: domain.verification_token.clone(),
        },
        verified_at: domain.verified_at,
        verified_by: domain.verified_by,
        last_checked_at: domain.last_checked_at,
        last_error: domain.last_error.clone(),
        next_check_at: domain.next_check_at,
        certificate: None,
        created_at: domain.created_at,
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomainBody {
    /// The hostname, e.g. `www.example.com` (an internationalised name is
    /// taken and stored in its `xn--` form).
    pub hostname: String,
    /// Make it the site's primary domain (the first one always is); sent
    /// for a domain the site has already, it switches the primary.
    #[serde(default)]
    pub primary: bool,
}

/// The site's custom domains, primary first.
#[utoipa::path(
    get,
    operation_id = "list_site_domains",
    path = jamstack_proto::routes::api::SITE_DOMAINS,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "The domains, each with its state and TXT record", body = Vec<DomainView>),
        (status = 404, description = "No such site", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn list(
    State(db): State<Database>,
    State(config): State<Arc<Config>>,
    _: CanRead,
    Path(site): Path<String>,
) -> AppResult<Json<Vec<DomainView>>> {
    let site = find_site(&db, &site).await?;
    let mut shown = Vec::new();
    for domain in db.domains_of_site(site.id).await? {
        shown.push(view_with_certificate(&db, &config, &domain).await?);
    }
    Ok(Json(shown))
}

/// Adds a custom domain. Added with an admin token it is verified at
/// once; otherwise it serves nothing until the TXT record
/// `_jamstack-challenge.<hostname>` holds its token.
#[utoipa::path(
    post,
    operation_id = "add_site_domain",
    path = jamstack_proto::routes::api::SITE_DOMAINS,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    request_body = NewDomainBody,
    responses(
        (status = 201, description = "Added", body = DomainView),
        (status = 200, description = "The site had it already: made primary", body = DomainView),
        (status = 400, description = "Not a hostname a site may have", body = ErrorBody),
        (status = 404, description = "No such site", body = ErrorBody),
        (status = 409, description = "Another site holds it, or this site has it already", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn add(
    State(db): State<Database>,
    State(config): State<Arc<Config>>,
    State(domains): State<Domains>,
    caller: ManagesSites,
    Path(site): Path<String>,
    Json(body): Json<NewDomainBody>,
) -> AppResult<(StatusCode, Json<DomainView>)> {
    let site = find_site(&db, &site).await?;
    let added_by = if caller.is_admin {
        AddedBy::Admin
    } else {
        AddedBy::SiteManager
    };
    let (domain, added) = domains.add(&site, &body.hostname, body.primary, added_by).await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view_with_certificate(&db, &config, &domain).await?)))
}

/// Removes a custom domain: it stops serving at once, on every controller.
#[utoipa::path(
    delete,
    operation_id = "remove_site_domain",
    path = jamstack_proto::routes::api::SITE_DOMAIN,
    tag = "sites",
    params(
        ("site" = String, Path, description = "The site's name"),
        ("hostname" = String, Path, description = "The domain"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such site or domain", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn remove(
    State(db): State<Database>,
    State(domains): State<Domains>,
    _: ManagesSites,
    Path((site, hostname)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let site = find_site(&db, &site).await?;
    domains.remove(&site, &hostname).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Looks up the domain's TXT record now. The answer is the domain as it
/// stands after the lookup: `verified`, or still waiting with what was
/// found in `last_error`.
#[utoipa::path(
    post,
    operation_id = "verify_site_domain",
    path = jamstack_proto::routes::api::SITE_DOMAIN_VERIFY,
    tag = "sites",
    params(
        ("site" = String, Path, description = "The site's name"),
        ("hostname" = String, Path, description = "The domain"),
    ),
    responses(
        (status = 200, description = "The domain after the lookup", body = DomainView),
        (status = 404, description = "No such site or domain", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn verify(
    State(db): State<Database>,
    State(config): State<Arc<Config>>,
    State(domains): State<Domains>,
    _: ManagesSites,
    Path((site, hostname)): Path<(String, String)>,
) -> AppResult<Json<DomainView>> {
    let site = find_site(&db, &site).await?;
    let domain = domains.verify(&site, &hostname).await?;
    Ok(Json(view_with_certificate(&db, &config, &domain).await?))
}
