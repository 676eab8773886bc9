//! Certificates the TLS listener serves, ACME HTTP-01 answers, and each
//! site's HTTPS settings (redirect, HSTS). Keys arrive here sealed: this
//! module never sees one in clear.

use super::{Database, now_millis};

/// Where a certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertificateSource {
    /// Brought by an administrator (`PUT /api/v1/certificates/{hostname}`).
    Uploaded,
    /// Issued by the ACME client.
    Acme,
}

impl CertificateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateSource::Uploaded => "uploaded",
            CertificateSource::Acme => "acme",
        }
    }

    fn parse(word: &str) -> Self {
        match word {
            "acme" => CertificateSource::Acme,
            _ => CertificateSource::Uploaded,
        }
    }
}

/// A certificate as stored: its chain in PEM, its key sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCertificate {
    /// An exact name or `*.<domain>`.
    pub hostname: String,
    pub chain_pem: String,
    /// The private key in PEM, sealed by `SecretBox` for
    /// `secrets::certificate_key_purpose(hostname)`.
    pub key_sealed: String,
    /// Validity, in Unix milliseconds.
    pub not_before: i64,
    pub not_after: i64,
    pub source: CertificateSource,
    pub updated_at: i64,
}

impl std::fmt::Debug for StoredCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Even sealed, the key stays out of logs.
        f.debug_struct("StoredCertificate")
            .field("hostname", &self.hostname)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
struct CertificateRow {
    hostname: String,
    chain_pem: String,
    key_sealed: String,
    not_before: i64,
    not_after: i64,
    source: String,
    updated_at: i64,
}

impl From<CertificateRow> for StoredCertificate {
    fn from(row: CertificateRow) -> Self {
        StoredCertificate {
            hostname: row.hostname,
            chain_pem: row.chain_pem,
            key_sealed: row.key_sealed,
            not_before: row.not_before,
            not_after: row.not_after,
            source: CertificateSource::parse(&row.source),
            updated_at: row.updated_at,
        }
    }
}

/// How a site's hostnames answer over HTTP and HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SiteTransport {
    /// Plain HTTP answers 308 to the same URL over HTTPS (only when the
    /// controller has an HTTPS listener; ACME challenges are never
    /// redirected).
    pub https_redirect: bool,
    /// `Strict-Transport-Security: max-age=…`, sent over TLS only; 0 sends
    /// no header.
    pub hsts_max_age_seconds: i64,
    pub hsts_include_subdomains: bool,
    pub hsts_preload: bool,
}

impl Default for SiteTransport {
    fn default() -> Self {
        SiteTransport {
            https_redirect: true,
            hsts_max_age_seconds: 0,
            hsts_include_subdomains: false,
            hsts_preload: false,
        }
    }
}

#[derive(sqlx::FromRow)]
struct TransportRow {
    https_redirect: i64,
    hsts_max_age_seconds: i64,
    hsts_include_subdomains: i64,
    hsts_preload: i64,
}

const CERTIFICATE_COLUMNS: &str =
    "hostname, chain_pem, key_sealed, not_before, not_after, source, updated_at";

impl Database {
    /// Stores the certificate of `hostname`, replacing any earlier one.
    /// The chain and key must have been checked (`tls::pem::check`) and the
    /// key sealed; the caller then tells the controllers to reload.
    pub async fn put_certificate(
        &self,
        hostname: &str,
        chain_pem: &str,
        key_sealed: &str,
        not_before: i64,
        not_after: i64,
        source: CertificateSource,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO certificates (hostname, chain_pem, key_sealed, not_before, not_after, source, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hostname) DO UPDATE SET \
             chain_pem = $2, key_sealed = $3, not_before = $4, not_after = $5, source = $6, updated_at = $7",
        )
        .bind(hostname)
        .bind(chain_pem)
        .bind(key_sealed)
        .bind(not_before)
        .bind(not_after)
        .bind(source.as_str())
        .bind(now_millis())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Every stored certificate, by hostname.
    pub async fn certificates(&self) -> anyhow::Result<Vec<StoredCertificate>> {
        let rows: Vec<CertificateRow> = sqlx::query_as(&format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates ORDER BY hostname"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(StoredCertificate::from).collect())
    }

    pub async fn certificate(&self, hostname: &str) -> anyhow::Result<Option<StoredCertificate>> {
        let row: Option<CertificateRow> = sqlx::query_as(&format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE hostname = $1"
        ))
        .bind(hostname)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(StoredCertificate::from))
    }

    /// The latest change to any certificate (0 when there is none): the
    /// periodic check reloads only when it moved.
    pub async fn certificates_changed_at(&self) -> anyhow::Result<(i64, i64)> {
        let (count, latest): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MAX(updated_at) FROM certificates")
                .fetch_one(&self.pool)
                .await?;
        Ok((count, latest.unwrap_or(0)))
    }

    /// Removes the certificate of `hostname`; `false` when there was none.
    pub async fn delete_certificate(&self, hostname: &str) -> anyhow::Result<bool> {
        let done = sqlx::query("DELETE FROM certificates WHERE hostname = $1")
            .bind(hostname)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes the certificate ACME issued for `hostname`; an uploaded one
    /// stays. `false` when there was none.
    pub async fn delete_acme_certificate(&self, hostname: &str) -> anyhow::Result<bool> {
        let done = sqlx::query("DELETE FROM certificates WHERE hostname = $1 AND source = 'acme'")
            .bind(hostname)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Takes away what the removed custom domain `hostname` was served
    /// with, in one transaction: its ACME order (so it is never renewed),
    /// the certificate ACME issued for it, and an uploaded certificate for
    /// it (its exact name, or the wildcard one label up) unless a custom
    /// domain still here is served by it. Answers the hostnames whose
    /// certificates were removed; the caller tells the controllers to
    /// reload. Call it after the domain's row is gone.
    pub async fn delete_domain_certificates(&self, hostname: &str) -> anyhow::Result<Vec<String>> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM acme_orders WHERE hostname = $1")
            .bind(hostname)
            .execute(&mut *tx)
            .await?;
        let mut removed = Vec::new();
        let exact_still_used: Option<i64> = sqlx::query_scalar("SELECT id FROM domains WHERE hostname = $1")
            .bind(hostname)
            .fetch_optional(&mut *tx)
            .await?;
        let exact = if exact_still_used.is_some() {
            // Added again meanwhile: only ACME's may go, and it is ordered again.
            sqlx::query("DELETE FROM certificates WHERE hostname = $1 AND source = 'acme'")
        } else {
            sqlx::query("DELETE FROM certificates WHERE hostname = $1")
        };
        if exact.bind(hostname).execute(&mut *tx).await?.rows_affected() > 0 {
            removed.push(hostname.to_owned());
        }
        if let Some((_, parent)) = hostname.split_once('.')
            && parent.contains('.')
        {
            let wildcard = format!("*.{parent}");
            let under: Vec<String> =
                sqlx::query_scalar("SELECT hostname FROM domains WHERE hostname LIKE $1")
                    .bind(format!("%.{parent}"))
                    .fetch_all(&mut *tx)
                    .await?;
            let still_served = under.iter().any(|other| {
                other
                    .strip_suffix(parent)
                    .and_then(|label| label.strip_suffix('.'))
                    .is_some_and(|label| !label.contains('.'))
            });
            if !still_served {
                let done =
                    sqlx::query("DELETE FROM certificates WHERE hostname = $1 AND source = 'uploaded'")
                        .bind(&wildcard)
                        .execute(&mut *tx)
                        .await?;
                if done.rows_affected() > 0 {
                    removed.push(wildcard);
                }
            }
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// Stores the answer to an ACME HTTP-01 challenge until `expires_at`
    /// (Unix milliseconds).
    pub async fn put_acme_http_challenge(
        &self,
        token: &str,
        key_authorization: &str,
        expires_at: i64,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO acme_http_challenges (token, key_authorization, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (token) DO UPDATE SET key_authorization = $2, expires_at = $3",
        )
        .bind(token)
        .bind(key_authorization)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The answer to the challenge `token`, unless it expired.
    pub async fn acme_http_challenge(&self, token: &str) -> anyhow::Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT key_authorization FROM acme_http_challenges WHERE token = $1 AND expires_at > $2",
        )
        .bind(token)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Removes the challenge `token` and every expired one.
    pub async fn delete_acme_http_challenge(&self, token: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM acme_http_challenges WHERE token = $1 OR expires_at <= $2")
            .bind(token)
            .bind(now_millis())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Stores the TLS-ALPN-01 challenge certificate for `hostname` (DER,
    /// base64; its key sealed) until `expires_at` (Unix milliseconds).
    pub async fn put_acme_alpn_challenge(
        &self,
        hostname: &str,
        certificate_der: &str,
        key_sealed: &str,
        expires_at: i64,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO acme_alpn_challenges (hostname, certificate_der, key_sealed, expires_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (hostname) DO UPDATE SET certificate_der = $2, \
             key_sealed = $3, expires_at = $4",
        )
        .bind(hostname)
        .bind(certificate_der)
        .bind(key_sealed)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Every TLS-ALPN-01 challenge not expired: (hostname, certificate DER
    /// base64, sealed key).
    pub async fn acme_alpn_challenges(&self) -> anyhow::Result<Vec<(String, String, String)>> {
        Ok(sqlx::query_as(
            "SELECT hostname, certificate_der, key_sealed FROM acme_alpn_challenges WHERE expires_at > $1 \
             ORDER BY hostname",
        )
        .bind(now_millis())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes the TLS-ALPN-01 challenge of `hostname` and every expired one.
    pub async fn delete_acme_alpn_challenge(&self, hostname: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM acme_alpn_challenges WHERE hostname = $1 OR expires_at <= $2")
            .bind(hostname)
            .bind(now_millis())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// How the site's hostnames answer over HTTP and HTTPS.
    pub async fn site_transport(&self, site_id: i64) -> anyhow::Result<SiteTransport> {
        let row: Option<TransportRow> = sqlx::query_as(
            "SELECT https_redirect, hsts_max_age_seconds, hsts_include_subdomains, hsts_preload \
             FROM site_transport WHERE site_id = $1",
        )
        .bind(site_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map_or_else(SiteTransport::default, |row| SiteTransport {
            https_redirect: row.https_redirect != 0,
            hsts_max_age_seconds: row.hsts_max_age_seconds,
            hsts_include_subdomains: row.hsts_include_subdomains != 0,
            hsts_preload: row.hsts_preload != 0,
        }))
    }

    pub async fn set_site_transport(&self, site_id: i64, transport: &SiteTransport) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO site_transport \
             (site_id, https_redirect, hsts_max_age_seconds, hsts_include_subdomains, hsts_preload, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (site_id) DO UPDATE SET \
             https_redirect = $2, hsts_max_age_seconds = $3, hsts_include_subdomains = $4, \
             hsts_preload = $5, updated_at = $6",
        )
        .bind(site_id)
        .bind(i64::from(transport.https_redirect))
        .bind(transport.hsts_max_age_seconds)
        .bind(i64::from(transport.hsts_include_subdomains))
        .bind(i64::from(transport.hsts_preload))
        .bind(now_millis())
        .execute(self.writer())
        .await?;
        Ok(())
    }
}
