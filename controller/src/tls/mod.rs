//! TLS for the listener of `--https-listen`: the certificates it serves
//! and the rustls configuration.
//!
//! Certificates live in the database (keys sealed), so every controller
//! sharing it serves every domain. [`CertificateStore`] holds them in
//! memory behind an `ArcSwap`: a handshake reads the current map without a
//! lock, and [`CertificateStore::reload`] swaps in a new one, so new
//! handshakes get a renewed certificate while open connections go on with
//! theirs. It reloads at start, when a certificate is stored here, when
//! another controller says one changed (the deploy event relay), and on a
//! periodic check should a notification be lost.
//!
//! Picking by SNI: the exact name, then a wildcard one label deep, and for
//! a client that sends no name (an address), the platform wildcard
//! `*.<domain>`; any other name fails the handshake. A ClientHello offering
//! ALPN `acme-tls/1` is answered only from the TLS-ALPN-01 challenge
//! certificates the ACME client sets ([`CertificateStore::set_alpn_challenge`]).

pub mod certificate;

use crate::db::Database;
use crate::secrets::SecretBox;
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The ALPN protocol of ACME's TLS-ALPN-01 challenge (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// How often every controller compares its certificates with the
/// database's, should a change notification have been lost.
pub const RELOAD_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// What the TLS listener serves, as loaded from the database.
#[derive(Default)]
struct Served {
    by_hostname: HashMap<String, Arc<CertifiedKey>>,
    /// Each hostname's end of validity, Unix milliseconds, for `/metrics`.
    expiries: Vec<(String, i64)>,
    /// (count, latest `updated_at`) when loaded: the periodic check reloads
    /// only when the database's differs.
    version: (i64, i64),
}

/// The certificates in memory, and the rustls resolver over them.
pub struct CertificateStore {
    served: ArcSwap<Served>,
    /// `*.<domain>`: what a ClientHello without a name gets.
    platform_wildcard: String,
    /// TLS-ALPN-01 challenge certificates by SNI, set by the ACME client.
    alpn_challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for CertificateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateStore")
            .field("hostnames", &self.served.load().by_hostname.len())
            .finish_non_exhaustive()
    }
}

impl CertificateStore {
    /// An empty store for sites under `domain`; [`CertificateStore::reload`]
    /// fills it.
    pub fn new(domain: &str) -> Self {
        CertificateStore {
            served: ArcSwap::from_pointee(Served::default()),
            platform_wildcard: format!("*.{}", domain.trim_end_matches('.').to_ascii_lowercase()),
            alpn_challenges: RwLock::default(),
        }
    }

    /// Reads every certificate from the database and serves them from the
    /// next handshake on. A row whose key does not open (another key file)
    /// or does not parse is skipped with an error in the log: the others
    /// are still served.
    pub async fn reload(&self, db: &Database, secrets: &SecretBox) -> anyhow::Result<()> {
        let version = db.certificates_changed_at().await?;
        let mut served = Served {
            version,
            ..Served::default()
        };
        for stored in db.certificates().await? {
            let purpose = crate::secrets::certificate_key_purpose(&stored.hostname);
            let key_pem = match secrets.open(&purpose, &stored.key_sealed) {
                Ok(key) => key,
                Err(_) => {
                    tracing::error!(
                        hostname = %stored.hostname,
                        "the certificate's key does not open with this controller's secret key; give every \
                         controller the same --secret-key-file, or upload the certificate again"
                    );
                    continue;
                }
            };
            match certificate::load(&stored.chain_pem, &key_pem) {
                Ok((certified, _names)) => {
                    served.expiries.push((stored.hostname.clone(), stored.not_after));
                    served.by_hostname.insert(stored.hostname, certified);
                }
                Err(error) => {
                    tracing::error!(hostname = %stored.hostname, %error, "a stored certificate cannot be served");
                }
            }
        }
        tracing::debug!(certificates = served.by_hostname.len(), "certificates loaded");
        self.served.store(Arc::new(served));
        Ok(())
    }

    /// Reloads when the database's certificates differ from those loaded.
    pub async fn reload_if_changed(&self, db: &Database, secrets: &SecretBox) -> anyhow::Result<()> {
        if db.certificates_changed_at().await? != self.served.load().version {
            self.reload(db, secrets).await?;
        }
        Ok(())
    }

    /// Each certificate's hostname and end of validity (Unix milliseconds).
    pub fn expiries(&self) -> Vec<(String, i64)> {
        self.served.load().expiries.clone()
    }

    /// Answers TLS-ALPN-01 handshakes for `hostname` with `certificate`
    /// (made by the ACME client) until removed.
    pub fn set_alpn_challenge(&self, hostname: &str, certificate: Arc<CertifiedKey>) {
        self.alpn_challenges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hostname.to_ascii_lowercase(), certificate);
    }

    pub fn remove_alpn_challenge(&self, hostname: &str) {
        self.alpn_challenges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&hostname.to_ascii_lowercase());
    }

    /// Answers TLS-ALPN-01 handshakes with exactly the challenge
    /// certificates in the database, whichever controller placed them: the
    /// CA may reach any controller behind the name. One that does not open
    /// or parse is left out, with an error in the log.
    pub async fn reload_alpn_challenges(&self, db: &Database, secrets: &SecretBox) -> anyhow::Result<()> {
        use base64::Engine as _;
        let provider = rustls::crypto::ring::default_provider();
        let mut loaded = HashMap::new();
        for (hostname, certificate_der, key_sealed) in db.acme_alpn_challenges().await? {
            let purpose = crate::secrets::acme_alpn_key_purpose(&hostname);
            let certified = secrets
                .open(&purpose, &key_sealed)
                .map_err(|e| e.to_string())
                .and_then(|key_b64| {
                    let engine = base64::engine::general_purpose::STANDARD;
                    let key = engine.decode(key_b64).map_err(|e| e.to_string())?;
                    let certificate = engine.decode(&certificate_der).map_err(|e| e.to_string())?;
                    alpn_certified_key(&provider, certificate, key)
                });
            match certified {
                Ok(certified) => {
                    loaded.insert(hostname, certified);
                }
                Err(error) => {
                    tracing::error!(%hostname, %error, "a TLS-ALPN-01 challenge certificate cannot be offered");
                }
            }
        }
        *self.alpn_challenges.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        Ok(())
    }

    /// The certificate for `name`: exact, then a wildcard one label deep;
    /// without a name, the platform wildcard.
    pub fn certificate_for(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let served = self.served.load();
        let Some(name) = name else {
            return served.by_hostname.get(&self.platform_wildcard).cloned();
        };
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        if let Some(exact) = served.by_hostname.get(name) {
            return Some(exact.clone());
        }
        let (_, parent) = name.split_once('.')?;
        served.by_hostname.get(&format!("*.{parent}")).cloned()
    }
}

/// A TLS-ALPN-01 challenge certificate (DER) and its PKCS#8 key (DER),
/// ready to offer.
pub fn alpn_certified_key(
    provider: &rustls::crypto::CryptoProvider,
    certificate_der: Vec<u8>,
    private_key_der: Vec<u8>,
) -> Result<Arc<CertifiedKey>, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(private_key_der)))
        .map_err(|e| format!("the challenge key cannot be used: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(certificate_der)],
        key,
    )))
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|protocol| protocol == ACME_TLS_ALPN));
        if acme {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .alpn_challenges
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&name)
                .cloned();
        }
        self.certificate_for(hello.server_name())
    }
}

/// The certificate service: the store in memory and what keeps it and the
/// database in step. Its writes are the only ones: an upload and an ACME
/// issue both go through [`Certificates::put`]; an administrator's removal,
/// a removed domain's and an ACME name no longer kept through the removals
/// below, each telling every controller.
#[derive(Clone)]
pub struct Certificates {
    pub store: Arc<CertificateStore>,
    pub db: Database,
    pub secrets: Arc<SecretBox>,
    pub events: crate::deploys::events::DeployEvents,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// Stores a checked certificate (its key sealed) for its hostname,
    /// replacing any earlier one; this controller serves it from the next
    /// handshake on, the others once the relay tells them (or their
    /// periodic check finds it).
    pub async fn put(
        &self,
        checked: &certificate::CheckedCertificate,
        chain_pem: &str,
        key_pem: &str,
        source: crate::db::CertificateSource,
    ) -> anyhow::Result<()> {
        let purpose = crate::secrets::certificate_key_purpose(&checked.hostname);
        self.db
            .put_certificate(
                &checked.hostname,
                chain_pem,
                &self.secrets.seal(&purpose, key_pem),
                checked.not_before,
                checked.not_after,
                source,
            )
            .await?;
        self.changed().await?;
        tracing::info!(hostname = %checked.hostname, source = source.as_str(), "certificate stored");
        Ok(())
    }

    /// Removes the certificate of `hostname` (normalized); `false` when
    /// there was none.
    pub async fn remove(&self, hostname: &str) -> anyhow::Result<bool> {
        if !self.db.delete_certificate(hostname).await? {
            return Ok(false);
        }
        self.changed().await?;
        tracing::info!(%hostname, "certificate removed");
        Ok(true)
    }

    /// Removes the certificate ACME issued for `hostname` (normalized), one
    /// uploaded for it staying; `false` when there was none.
    pub async fn remove_issued(&self, hostname: &str) -> anyhow::Result<bool> {
        if !self.db.delete_acme_certificate(hostname).await? {
            return Ok(false);
        }
        self.changed().await?;
        tracing::info!(%hostname, "certificate issued by ACME removed");
        Ok(true)
    }

    /// Takes away the certificates of the custom domain `hostname`, just
    /// removed (see [`Database::delete_domain_certificates`]): new
    /// handshakes for it fail on this controller at once and on the others
    /// once the relay tells them. Answers the hostnames removed.
    pub async fn remove_for_removed_domain(&self, hostname: &str) -> anyhow::Result<Vec<String>> {
        let removed = self.db.delete_domain_certificates(hostname).await?;
        if !removed.is_empty() {
            self.changed().await?;
            tracing::info!(domain = %hostname, certificates = ?removed, "certificates of a removed domain removed");
        }
        Ok(removed)
    }

    async fn changed(&self) -> anyhow::Result<()> {
        self.store.reload(&self.db, &self.secrets).await?;
        self.events
            .announce(crate::deploys::events::DeployEvent::CertificatesChanged)
            .await;
        Ok(())
    }
}

/// The rustls configuration of the HTTPS listener: ring's provider, TLS 1.3
/// and 1.2 with rustls' default suites (all AEAD with forward secrecy),
/// h2 and HTTP/1.1 by ALPN, and session resumption (stateful cache and
/// tickets) so returning clients skip the full handshake.
pub fn server_config(store: Arc<CertificateStore>) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    // `acme-tls/1` last: only an ACME validation server offers it, and its
    // connection is closed after the handshake.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(16 * 1024);
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(config))
}

/// Keeps `store` in step with the database: reloads on every relayed
/// certificate change (or a relay that may have missed some), and checks
/// every [`RELOAD_CHECK_INTERVAL`].
pub async fn keep_current(
    store: Arc<CertificateStore>,
    db: Database,
    secrets: Arc<SecretBox>,
    events: crate::deploys::events::DeployEvents,
) {
    use crate::deploys::events::DeployEvent;
    use tokio::sync::broadcast::error::RecvError;
    let mut events = events.subscribe();
    let mut check = tokio::time::interval(RELOAD_CHECK_INTERVAL);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let outcome = tokio::select! {
            event = events.recv() => match event {
                Ok((DeployEvent::CertificatesChanged | DeployEvent::Everything, _)) | Err(RecvError::Lagged(_)) => {
                    match store.reload(&db, &secrets).await {
                        Ok(()) => store.reload_alpn_challenges(&db, &secrets).await,
                        Err(error) => Err(error),
                    }
                }
                Ok(_) => Ok(()),
                Err(RecvError::Closed) => return,
            },
            _ = check.tick() => store.reload_if_changed(&db, &secrets).await,
        };
        if let Err(error) = outcome {
            tracing::warn!(
                error = format!("{error:#}"),
                "reloading certificates failed; retrying later"
            );
        }
    }
}
