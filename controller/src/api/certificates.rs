//! Certificates the HTTPS listener serves: brought by an administrator
//! (`admin` scope only: a certificate decides who may speak for a
//! hostname), listed without their keys, removed. Storing one tells every
//! controller to reload, so it is served within seconds without a restart.

use crate::auth::Admin;
use crate::db::{CertificateSource, Database, StoredCertificate};
use crate::error::{AppResult, bad_request, not_found};
use crate::tls::Certificates;
use crate::tls::certificate;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jamstack_proto::ErrorBody;
use serde::{Deserialize, Serialize};

/// The largest upload body: a chain and a key of at most 64 KB each, in JSON.
pub const MAX_CERTIFICATE_BODY: usize = 2 * certificate::MAX_PEM_BYTES + 4096;

/// A certificate and its key, both PEM.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateUpload {
    /// The certificate followed by its intermediates.
    pub certificate_pem: String,
    /// The private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key_pem: String,
}

impl std::fmt::Debug for CertificateUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log.
        f.debug_struct("CertificateUpload").finish_non_exhaustive()
    }
}

/// A stored certificate as listed: never its key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CertificateView {
    pub hostname: String,
    pub source: CertificateSource,
    /// Validity, Unix milliseconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The DNS names the certificate covers.
    pub names: Vec<String>,
    pub updated_at: i64,
}

fn view(stored: &StoredCertificate) -> CertificateView {
    let names = certificate::names_in_chain(&stored.chain_pem);
    CertificateView {
        hostname: stored.hostname.clone(),
        source: stored.source,
        not_before: stored.not_before,
        not_after: stored.not_after,
        names,
        updated_at: stored.updated_at,
    }
}

/// Every stored certificate, by hostname.
#[utoipa::path(
    get,
    operation_id = "list_certificates",
    path = jamstack_proto::routes::api::CERTIFICATES,
    tag = "admin",
    responses(
        (status = 200, description = "The stored certificates, without their keys", body = Vec<CertificateView>),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn list(State(db): State<Database>, _: Admin) -> AppResult<Json<Vec<CertificateView>>> {
    Ok(Json(db.certificates().await?.iter().map(view).collect()))
}

/// Stores (or replaces) the certificate of a hostname: a name, or a
/// wildcard one label deep (`*.example.com`).
#[utoipa::path(
    put,
    operation_id = "upload_certificate",
    path = jamstack_proto::routes::api::CERTIFICATE,
    tag = "admin",
    params(("hostname" = String, Path, description = "`www.example.com` or `*.example.com`")),
    request_body = CertificateUpload,
    responses(
        (status = 200, description = "Stored, and served from the next handshake on", body = CertificateView),
        (status = 400, description = "The certificate does not cover the hostname, has expired, or the key is not its", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn upload(
    State(certificates): State<Certificates>,
    _: Admin,
    Path(hostname): Path<String>,
    Json(body): Json<CertificateUpload>,
) -> AppResult<Json<CertificateView>> {
    let checked = certificate::check(
        &hostname,
        &body.certificate_pem,
        &body.key_pem,
        crate::db::now_millis(),
    )
    .map_err(|e| bad_request(e.to_string()))?;
    certificates
        .put(
            &checked,
            &body.certificate_pem,
            &body.key_pem,
            CertificateSource::Uploaded,
        )
        .await?;
    let stored = certificates
        .db
        .certificate(&checked.hostname)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the certificate just stored is gone"))?;
    Ok(Json(view(&stored)))
}

/// Removes the certificate of a hostname: new handshakes for it fail (or
/// fall back to a wildcard that covers it).
#[utoipa::path(
    delete,
    operation_id = "remove_certificate",
    path = jamstack_proto::routes::api::CERTIFICATE,
    tag = "admin",
    params(("hostname" = String, Path, description = "The hostname the certificate is stored under")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No certificate for that hostname", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn remove(
    State(certificates): State<Certificates>,
    _: Admin,
    Path(hostname): Path<String>,
) -> AppResult<StatusCode> {
    let hostname = certificate::normalize_hostname(&hostname).map_err(|e| bad_request(e.to_string()))?;
    if !certificates.remove(&hostname).await? {
        return Err(not_found(format!(
            "there is no certificate for `{hostname}`; list them with GET /api/v1/certificates"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
