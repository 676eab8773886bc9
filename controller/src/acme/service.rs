//! What ties the ACME manager to the rest of a running controller: which
//! names it keeps certificates for ([`WantedNames`]), where issued
//! certificates go ([`IssuedToStore`], through `Certificates::put`, so
//! every controller serves them from the next handshake), who answers
//! HTTP-01 ([`HttpChallenges`], the plain listener reading the database)
//! and TLS-ALPN-01 ([`AlpnChallenges`], every controller's TLS resolver,
//! from the database and the relay), and who is told of a failed renewal
//! ([`NotifySite`]). `startup.rs` builds these once and starts the manager.

use super::manager::CertificateSink;
use super::{AcmeFailure, ChallengeAnswer, ChallengeKind, ChallengeResponder, IssuedCertificate};
use crate::db::{AcmeOrder, CertificateSource, Database, now_millis};
use std::collections::{BTreeMap, HashSet};

/// How long an answer stays in the database should its order never clean
/// up (the controller stopped): no order outlives it.
fn answer_expiry() -> i64 {
    now_millis() + super::ORDER_TIMEOUT.as_millis() as i64
}

/// The names a controller keeps certificates for: every verified custom
/// domain, proven by `custom_domains`, and the platform's wildcard by
/// DNS-01 when the operator gave a DNS hook. A name with an uploaded
/// certificate is left to its uploader.
#[derive(Debug, Clone)]
pub struct WantedNames {
    pub custom_domains: ChallengeKind,
    /// `*.<domain>`, when `--acme-dns-hook` is set.
    pub platform_wildcard: Option<String>,
}

impl WantedNames {
    /// Makes the manager's list of names match what is wanted now: new
    /// names are due at once, a changed challenge applies from the next
    /// order, and names no longer wanted (a domain removed) are forgotten.
    /// Answers the names that still have a certificate by ACME though
    /// none is kept for them any longer (a domain removed while its order
    /// ran, or its site deleted), for the caller to delete. A wildcard is
    /// never among them: the platform's is kept by the controllers given
    /// `--acme-dns-hook`, and one started without it leaves it be.
    pub async fn sync(&self, db: &Database) -> anyhow::Result<Vec<String>> {
        let stored = db.certificates().await?;
        let uploaded: HashSet<&str> = stored
            .iter()
            .filter(|stored| stored.source == CertificateSource::Uploaded)
            .map(|stored| stored.hostname.as_str())
            .collect();
        let mut wanted: BTreeMap<String, ChallengeKind> = db
            .verified_hostnames()
            .await?
            .into_iter()
            .map(|verified| (verified.hostname, self.custom_domains))
            .collect();
        if let Some(wildcard) = &self.platform_wildcard {
            wanted.insert(wildcard.clone(), ChallengeKind::Dns01);
        }
        wanted.retain(|hostname, _| !uploaded.contains(hostname.as_str()));
        let kept: HashSet<String> = wanted.keys().cloned().collect();
        for order in db.acme_orders().await? {
            match wanted.remove(&order.hostname) {
                None => {
                    db.forget_acme_certificate(&order.hostname).await?;
                    tracing::info!(hostname = %order.hostname, "no certificate is kept any longer");
                }
                Some(kind) if kind.as_str() != order.challenge => {
                    db.want_acme_certificate(&order.hostname, kind.as_str()).await?;
                }
                Some(_) => {}
            }
        }
        for (hostname, kind) in wanted {
            db.want_acme_certificate(&hostname, kind.as_str()).await?;
            tracing::info!(%hostname, challenge = kind.as_str(), "a certificate is wanted");
        }
        Ok(stored
            .into_iter()
            .filter(|stored| {
                stored.source == CertificateSource::Acme
                    && !stored.hostname.starts_with("*.")
                    && !kept.contains(&stored.hostname)
            })
            .map(|stored| stored.hostname)
            .collect())
    }
}

/// Stores issued certificates through [`crate::tls::Certificates::put`],
/// past the same checks as an upload.
pub struct IssuedToStore(pub crate::tls::Certificates);

#[async_trait::async_trait]
impl CertificateSink for IssuedToStore {
    async fn store(&self, hostname: &str, certificate: &IssuedCertificate) -> anyhow::Result<()> {
        let checked = crate::tls::certificate::check(
            hostname,
            &certificate.chain_pem,
            &certificate.private_key_pem,
            now_millis(),
        )?;
        self.0
            .put(
                &checked,
                &certificate.chain_pem,
                &certificate.private_key_pem,
                CertificateSource::Acme,
            )
            .await
    }

    async fn discard(&self, hostname: &str) -> anyhow::Result<bool> {
        self.0.remove_issued(hostname).await
    }
}

/// HTTP-01 answers in the database, which the plain HTTP listener of every
/// controller serves at `/.well-known/acme-challenge/<token>`.
pub struct HttpChallenges(pub Database);

#[async_trait::async_trait]
impl ChallengeResponder for HttpChallenges {
    async fn present(&self, answer: &ChallengeAnswer) -> Result<(), String> {
        let ChallengeAnswer::Http01 {
            token,
            key_authorization,
        } = answer
        else {
            return Err(format!("{answer:?} is not an http-01 answer"));
        };
        self.0
            .put_acme_http_challenge(token, key_authorization, answer_expiry())
            .await
            .map_err(|e| format!("storing the answer: {e:#}"))
    }

    async fn clean_up(&self, answer: &ChallengeAnswer) -> Result<(), String> {
        if let ChallengeAnswer::Http01 { token, .. } = answer {
            self.0
                .delete_acme_http_challenge(token)
                .await
                .map_err(|e| format!("removing the answer: {e:#}"))?;
        }
        Ok(())
    }
}

/// TLS-ALPN-01 answers in the database (the key sealed), offered by this
/// controller's TLS resolver at once and by the others once the relay
/// tells them.
pub struct AlpnChallenges(pub crate::tls::Certificates);

/// How long a TLS-ALPN-01 answer is given to reach the other controllers
/// sharing a PostgreSQL database before the CA is asked to check it: the
/// CA may reach any of them, and a TLS handshake cannot wait on the
/// database, so each must hold the answer in memory already. The relay
/// takes milliseconds; this covers a busy controller. SQLite has one
/// controller and waits not at all.
const ALPN_ANSWER_SPREADS: std::time::Duration = std::time::Duration::from_secs(1);

impl AlpnChallenges {
    async fn changed(&self) -> Result<(), String> {
        let certificates = &self.0;
        certificates
            .store
            .reload_alpn_challenges(&certificates.db, &certificates.secrets)
            .await
            .map_err(|e| format!("loading the challenge certificates: {e:#}"))?;
        certificates
            .events
            .announce(crate::deploys::events::DeployEvent::CertificatesChanged)
            .await;
        Ok(())
    }
}

#[async_trait::async_trait]
impl ChallengeResponder for AlpnChallenges {
    async fn present(&self, answer: &ChallengeAnswer) -> Result<(), String> {
        use base64::Engine as _;
        let ChallengeAnswer::TlsAlpn01 {
            hostname,
            certificate_der,
            private_key_der,
        } = answer
        else {
            return Err(format!("{answer:?} is not a tls-alpn-01 answer"));
        };
        let engine = base64::engine::general_purpose::STANDARD;
        let purpose = crate::secrets::acme_alpn_key_purpose(hostname);
        let certificates = &self.0;
        certificates
            .db
            .put_acme_alpn_challenge(
                hostname,
                &engine.encode(certificate_der),
                &certificates
                    .secrets
                    .seal(&purpose, &engine.encode(private_key_der)),
                answer_expiry(),
            )
            .await
            .map_err(|e| format!("storing the challenge certificate: {e:#}"))?;
        self.changed().await?;
        if certificates.db.backend() == crate::db::Backend::Postgres {
            tokio::time::sleep(ALPN_ANSWER_SPREADS).await;
        }
        Ok(())
    }

    async fn clean_up(&self, answer: &ChallengeAnswer) -> Result<(), String> {
        if let ChallengeAnswer::TlsAlpn01 { hostname, .. } = answer {
            self.0
                .db
                .delete_acme_alpn_challenge(hostname)
                .await
                .map_err(|e| format!("removing the challenge certificate: {e:#}"))?;
            self.changed().await?;
        }
        Ok(())
    }
}

/// Where a custom domain's certificate stands, as the API, CLI and
/// dashboard show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateStatus {
    /// `waiting_for_dns` (nothing is ordered before the domain is
    /// verified), `verified` (to be ordered within seconds), `issuing`,
    /// `active`, `renewal_due` or `failed`.
    pub state: &'static str,
    pub not_after: Option<i64>,
    pub renew_at: Option<i64>,
    /// When the next order is placed, once failed.
    pub next_attempt_at: Option<i64>,
    /// The ACME server's problem type of the last failure (`client` when
    /// the failure was ours), and what it said.
    pub error_type: Option<String>,
    pub error: Option<String>,
    /// What to do now, when something is to be done.
    pub next_step: Option<String>,
}

impl CertificateStatus {
    /// The status of a domain (`verified` or not) whose order, if the
    /// manager has one yet, is `order`, at `now`.
    pub fn of(verified: bool, order: Option<&AcmeOrder>, now: i64) -> Self {
        let Some(order) = order.filter(|_| verified) else {
            let (state, next_step) = if verified {
                ("verified", None)
            } else {
                (
                    "waiting_for_dns",
                    Some(
                        "prove control of the domain first (its TXT record); its certificate is ordered then"
                            .to_owned(),
                    ),
                )
            };
            return CertificateStatus {
                state,
                not_after: None,
                renew_at: None,
                next_attempt_at: None,
                error_type: None,
                error: None,
                next_step,
            };
        };
        let state = match order.shown_state(now) {
            "issuing" => "issuing",
            "active" => "active",
            "renewal_due" => "renewal_due",
            "failed" => "failed",
            _ => "verified",
        };
        let next_step = (state == "failed").then(|| {
            AcmeFailure {
                problem_type: order.last_error_type.clone().unwrap_or_default(),
                detail: String::new(),
            }
            .advice()
            .to_owned()
        });
        CertificateStatus {
            state,
            not_after: order.not_after,
            renew_at: order.renew_at,
            next_attempt_at: (state == "failed").then_some(order.next_attempt_at),
            error_type: order.last_error_type.clone().filter(|_| state == "failed"),
            error: order.last_error.clone().filter(|_| state == "failed"),
            next_step,
        }
    }
}
