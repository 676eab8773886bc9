//! Certificates by ACME (RFC 8555): the account, one order from placing to
//! the issued chain, and the challenges answered on the way.
//!
//! The client is `instant-acme`, chosen over `rustls-acme` because
//! `rustls-acme` owns the whole life of a certificate (its own cache, its
//! own TLS resolver, TLS-ALPN-01 only, one process) while we need each part
//! to be ours: DNS-01 through the operator's hook for the platform's
//! wildcard, an account kept in the database and shared by every
//! controller, certificates stored sealed in the database, and our own SNI
//! resolver answering TLS-ALPN-01. `instant-acme` is only the protocol
//! (accounts, orders, authorizations, challenges, finalize), so each of
//! those stays here. Keys and CSRs are made with `rcgen` (ECDSA P-256),
//! issued certificates read with `x509-parser`.
//!
//! [`AcmeClient::issue`] places an order for some names, presents each
//! challenge through a [`ChallengeResponder`] (HTTP-01: the token where the
//! plain HTTP listener reads it; TLS-ALPN-01: a challenge certificate where
//! the TLS resolver finds it; DNS-01: a TXT record by the operator's hook,
//! [`DnsHook`]), polls with bounds, finalizes with a fresh key and answers
//! the chain, the key and the validity. What went wrong is an
//! [`AcmeFailure`]: the ACME server's problem type and detail, and what to
//! do about it. [`manager`] decides which names to issue and renew, and
//! when; only one controller works on a name at a time.

pub mod dns_hook;
pub mod manager;
pub mod service;

pub use crate::config::{AcmeSettings, ChallengeKind};
pub use dns_hook::DnsHook;

use crate::db::Database;
use crate::secrets::SecretBox;
use anyhow::Context as _;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder,
    OrderStatus, RetryPolicy,
};
use std::time::Duration;

/// How long authorizations may take to become valid once every challenge
/// is presented.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the CA may take to sign once the order is finalized.
const SIGNING_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest one whole order may take, presenting and cleaning up
/// included; a controller's hold on a name lasts longer than this.
pub const ORDER_TIMEOUT: Duration = Duration::from_secs(300);
/// How many names one order may hold.
const MAX_NAMES: usize = 100;

impl AcmeSettings {
    /// Refuses settings that cannot work, each error naming its flag and
    /// what to give instead: read at start, so a typo stops the controller
    /// rather than every order later. `https_listener` is whether the
    /// controller serves HTTPS (TLS-ALPN-01 is answered there).
    pub fn check(&self, https_listener: bool) -> anyhow::Result<()> {
        let url = url::Url::parse(&self.directory_url).ok();
        if !url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https" && u.host().is_some())
        {
            anyhow::bail!(
                "--acme-directory `{}` is not an https:// URL; give the CA's directory, e.g. \
                 https://acme-v02.api.letsencrypt.org/directory",
                self.directory_url.chars().take(200).collect::<String>()
            );
        }
        if let Some(email) = &self.contact_email {
            let well_formed = email.len() <= 254
                && email.split_once('@').is_some_and(|(user, host)| {
                    !user.is_empty() && host.contains('.') && !host.contains('@')
                })
                && !email
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == ':');
            if !well_formed {
                anyhow::bail!(
                    "--acme-email `{}` is not an e-mail address; give one such as ops@example.com",
                    email.chars().take(200).collect::<String>()
                );
            }
        }
        if let Some(root) = &self.ca_root {
            let pem =
                std::fs::read(root).with_context(|| format!("reading --acme-ca-root {}", root.display()))?;
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject as _;
            let certificates = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("--acme-ca-root {} is not PEM: {e}", root.display()))?;
            if certificates.is_empty() {
                anyhow::bail!(
                    "--acme-ca-root {} holds no `-----BEGIN CERTIFICATE-----` block; give the PEM file of \
                     the CA's root",
                    root.display()
                );
            }
        }
        if let Some(hook) = &self.dns_hook {
            use std::os::unix::fs::PermissionsExt as _;
            let metadata = std::fs::metadata(hook)
                .with_context(|| format!("reading --acme-dns-hook {}", hook.display()))?;
            if !metadata.is_file() || metadata.permissions().mode() & 0o111 == 0 {
                anyhow::bail!(
                    "--acme-dns-hook {} is not an executable file; give a program (chmod +x) that \
                     publishes TXT records",
                    hook.display()
                );
            }
        }
        match self.challenge {
            ChallengeKind::Http01 => {}
            ChallengeKind::TlsAlpn01 if !https_listener => anyhow::bail!(
                "--acme-challenge tls-alpn-01 is answered by the HTTPS listener; set --https-listen \
                 (the CA connects to port 443), or use --acme-challenge http-01"
            ),
            ChallengeKind::TlsAlpn01 => {}
            ChallengeKind::Dns01 => anyhow::bail!(
                "--acme-challenge dns-01 is for the platform's wildcard only (--acme-dns-hook); custom \
                 domains use http-01 or tls-alpn-01"
            ),
        }
        if self.renew_before.is_zero() {
            anyhow::bail!("--acme-renew-before-days must be at least 1");
        }
        Ok(())
    }
}

impl ChallengeKind {
    fn acme_type(self) -> ChallengeType {
        match self {
            ChallengeKind::Http01 => ChallengeType::Http01,
            ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
            ChallengeKind::Dns01 => ChallengeType::Dns01,
        }
    }
}

/// What must be published for one challenge to pass.
#[derive(Clone, PartialEq, Eq)]
pub enum ChallengeAnswer {
    /// Answer `GET /.well-known/acme-challenge/<token>` on port 80, for any
    /// host, with `key_authorization`.
    Http01 {
        token: String,
        key_authorization: String,
    },
    /// Offer this self-signed certificate (with the acmeIdentifier
    /// extension) to a ClientHello for `hostname` asking ALPN `acme-tls/1`.
    TlsAlpn01 {
        hostname: String,
        certificate_der: Vec<u8>,
        private_key_der: Vec<u8>,
    },
    /// Publish a TXT record `record_name` (a fully qualified name with its
    /// trailing dot) holding `value`.
    Dns01 { record_name: String, value: String },
}

impl std::fmt::Debug for ChallengeAnswer {
    // A key authorization is not a secret (the CA reads it over plain
    // HTTP), but the challenge key is: it is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChallengeAnswer::Http01 { token, .. } => write!(f, "http-01 token {token}"),
            ChallengeAnswer::TlsAlpn01 { hostname, .. } => write!(f, "tls-alpn-01 for {hostname}"),
            ChallengeAnswer::Dns01 { record_name, .. } => write!(f, "dns-01 TXT {record_name}"),
        }
    }
}

/// The ALPN protocol a CA's TLS-ALPN-01 validation asks for (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Publishes challenge answers where the CA will look, and removes them.
/// The HTTP listener, the TLS resolver and the DNS hook each implement it.
#[async_trait::async_trait]
pub trait ChallengeResponder: Send + Sync {
    /// Makes `answer` visible to the CA; the order waits until it returns.
    /// An error says what failed, for the user.
    async fn present(&self, answer: &ChallengeAnswer) -> Result<(), String>;
    /// Takes `answer` away again; called once the order has its result,
    /// failed or not. A failure here is logged, never the order's.
    async fn clean_up(&self, answer: &ChallengeAnswer) -> Result<(), String>;
}

/// A certificate as issued, with the key made for it.
pub struct IssuedCertificate {
    pub names: Vec<String>,
    /// The leaf first, then the intermediates, as the CA sent them.
    pub chain_pem: String,
    /// PKCS#8 PEM; seal it before storing it.
    pub private_key_pem: String,
    /// Unix milliseconds.
    pub not_before: i64,
    pub not_after: i64,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("names", &self.names)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl IssuedCertificate {
    /// When it should be renewed: `renew_before` ahead of expiry, but never
    /// before two thirds of its life, so a short-lived certificate is not
    /// renewed as soon as it is issued.
    pub fn renew_at(&self, renew_before: Duration) -> i64 {
        renewal_time(self.not_before, self.not_after, renew_before)
    }
}

/// See [`IssuedCertificate::renew_at`]; times in Unix milliseconds.
pub fn renewal_time(not_before: i64, not_after: i64, renew_before: Duration) -> i64 {
    let life = (not_after - not_before).max(0);
    let window = (renew_before.as_millis() as i64).min(life / 3);
    not_after - window
}

/// Why an order did not give a certificate, as a user is shown it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeFailure {
    /// The ACME problem type (`urn:ietf:params:acme:error:connection`, …),
    /// or `client` when the failure was on our side (a hook, a timeout).
    pub problem_type: String,
    /// What the CA (or we) said of it, for which name.
    pub detail: String,
}

impl AcmeFailure {
    fn client(detail: impl Into<String>) -> Self {
        AcmeFailure {
            problem_type: "client".into(),
            detail: detail.into(),
        }
    }

    fn of_problem(problem: &instant_acme::Problem, name: Option<&str>) -> Self {
        let mut detail = problem.detail.clone().unwrap_or_else(|| "no detail given".into());
        for sub in &problem.subproblems {
            if let Some(sub_detail) = &sub.detail {
                detail.push_str("; ");
                detail.push_str(sub_detail);
            }
        }
        if let Some(name) = name {
            detail = format!("{name}: {detail}");
        }
        AcmeFailure {
            problem_type: problem
                .r#type
                .clone()
                .unwrap_or_else(|| "urn:ietf:params:acme:error:serverInternal".into()),
            detail,
        }
    }

    fn of_error(error: instant_acme::Error, doing: &str) -> Self {
        match error {
            instant_acme::Error::Api(problem) => {
                let mut failure = Self::of_problem(&problem, None);
                failure.detail = format!("{doing}: {}", failure.detail);
                failure
            }
            instant_acme::Error::Timeout(_) => {
                Self::client(format!("{doing}: the ACME server did not finish in time"))
            }
            other => Self::client(format!("{doing}: {other}")),
        }
    }

    /// What the user should do, by problem type (RFC 8555 section 6.7).
    pub fn advice(&self) -> &'static str {
        let short = self
            .problem_type
            .strip_prefix("urn:ietf:params:acme:error:")
            .unwrap_or(&self.problem_type);
        match short {
            "connection" | "incorrectResponse" | "unauthorized" | "tls" => {
                "the CA could not check the answer at this name: point the name's A/AAAA (or CNAME) \
                 records at this platform's controllers and keep ports 80 and 443 open to the internet; \
                 it is tried again by itself"
            }
            "dns" => {
                "the CA could not resolve the name or its TXT record: check the name exists in public \
                 DNS (and, for a wildcard, that the DNS hook publishes in the zone the CA asks); \
                 it is tried again by itself"
            }
            "caa" => {
                "the domain's CAA records forbid this CA: add a CAA record allowing it, or remove the \
                 restrictive ones; it is tried again by itself"
            }
            "rejectedIdentifier" | "unsupportedIdentifier" => {
                "the CA refuses to issue for this name: use another name, or bring your own certificate"
            }
            "rateLimited" => "the CA's rate limit was reached: it is tried again later by itself",
            "client" => {
                "see the detail; for a DNS hook, run it by hand with the same arguments; it is tried \
                 again by itself"
            }
            _ => "the CA refused the order; it is tried again by itself, with growing waits",
        }
    }
}

impl std::fmt::Display for AcmeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.detail, self.problem_type)
    }
}

impl std::error::Error for AcmeFailure {}

/// The purpose an account's credentials are sealed for.
fn account_purpose(directory_url: &str) -> String {
    format!("acme/account/{directory_url}")
}

/// An ACME account at one CA, ready to place orders.
#[derive(Clone)]
pub struct AcmeClient {
    account: Account,
}

impl std::fmt::Debug for AcmeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeClient")
            .field("account", &self.account.id())
            .finish()
    }
}

impl AcmeClient {
    /// The account for `settings.directory_url`, from the database when a
    /// controller made one before, else registered now and stored sealed.
    /// Two controllers registering at once each make an account at the CA;
    /// the first stored is the one both keep.
    pub async fn load_or_register(
        db: &Database,
        secrets: &SecretBox,
        settings: &AcmeSettings,
    ) -> anyhow::Result<Self> {
        let purpose = account_purpose(&settings.directory_url);
        if let Some(sealed) = db.acme_account(&settings.directory_url).await? {
            let json = secrets
                .open(&purpose, &sealed)
                .context("opening the stored ACME account")?;
            let credentials: AccountCredentials =
                serde_json::from_str(&json).context("reading the stored ACME account")?;
            let account = builder(settings)?
                .from_credentials(credentials)
                .await
                .with_context(|| format!("reaching the ACME directory {}", settings.directory_url))?;
            return Ok(AcmeClient { account });
        }
        let contact = settings
            .contact_email
            .as_ref()
            .map(|email| format!("mailto:{email}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder(settings)?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                settings.directory_url.clone(),
                None,
            )
            .await
            .map_err(|e| AcmeFailure::of_error(e, "registering an ACME account"))
            .with_context(|| format!("at the ACME directory {}", settings.directory_url))?;
        let json = serde_json::to_string(&credentials)?;
        let stored = db
            .insert_acme_account(
                &settings.directory_url,
                &secrets.seal(&purpose, &json),
                settings.contact_email.as_deref(),
            )
            .await?;
        if stored {
            tracing::info!(directory = %settings.directory_url, account = account.id(), "ACME account registered");
            return Ok(AcmeClient { account });
        }
        // Another controller stored its account first: use that one.
        Box::pin(Self::load_or_register(db, secrets, settings)).await
    }

    /// The account's URL at the CA.
    pub fn account_id(&self) -> &str {
        self.account.id()
    }

    /// Orders a certificate for `names` (exact names, or `*.<domain>` with
    /// DNS-01), proving control by `kind` through `responder`. Every
    /// answer presented is cleaned up, whatever the outcome.
    pub async fn issue(
        &self,
        names: &[String],
        kind: ChallengeKind,
        responder: &dyn ChallengeResponder,
    ) -> Result<IssuedCertificate, AcmeFailure> {
        if names.is_empty() || names.len() > MAX_NAMES {
            return Err(AcmeFailure::client(format!(
                "an order names 1 to {MAX_NAMES} hostnames, not {}",
                names.len()
            )));
        }
        if kind != ChallengeKind::Dns01
            && let Some(wildcard) = names.iter().find(|name| name.starts_with("*."))
        {
            return Err(AcmeFailure::client(format!(
                "{wildcard}: a wildcard name can only be proven by dns-01; set --acme-dns-hook"
            )));
        }
        let mut presented = Vec::new();
        let outcome = tokio::time::timeout(ORDER_TIMEOUT, self.order(names, kind, responder, &mut presented))
            .await
            .unwrap_or_else(|_| {
                Err(AcmeFailure::client(format!(
                    "the order did not finish within {} s",
                    ORDER_TIMEOUT.as_secs()
                )))
            });
        for answer in &presented {
            if let Err(error) = responder.clean_up(answer).await {
                tracing::warn!(%error, ?answer, "cleaning up an ACME challenge answer failed");
            }
        }
        outcome
    }

    async fn order(
        &self,
        names: &[String],
        kind: ChallengeKind,
        responder: &dyn ChallengeResponder,
        presented: &mut Vec<ChallengeAnswer>,
    ) -> Result<IssuedCertificate, AcmeFailure> {
        let identifiers: Vec<Identifier> = names.iter().map(|name| Identifier::Dns(name.clone())).collect();
        let mut order = self
            .account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| AcmeFailure::of_error(e, "placing the order"))?;

        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization =
                authorization.map_err(|e| AcmeFailure::of_error(e, "reading an authorization"))?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                // Proven recently for this account: nothing to present.
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(AcmeFailure::client(format!(
                        "{}: the CA's authorization is {other:?}, not pending",
                        authorization.identifier()
                    )));
                }
            }
            let name = authorization.identifier().to_string();
            let mut challenge = authorization.challenge(kind.acme_type()).ok_or_else(|| {
                AcmeFailure::client(format!("{name}: the CA offers no {} challenge", kind.as_str()))
            })?;
            let key_authorization = challenge.key_authorization();
            let answer = match kind {
                ChallengeKind::Http01 => ChallengeAnswer::Http01 {
                    token: challenge.token.clone(),
                    key_authorization: key_authorization.as_str().to_owned(),
                },
                ChallengeKind::TlsAlpn01 => {
                    let (certificate_der, private_key_der) =
                        tls_alpn_certificate(&name, key_authorization.digest().as_ref())?;
                    ChallengeAnswer::TlsAlpn01 {
                        hostname: name.clone(),
                        certificate_der,
                        private_key_der,
                    }
                }
                ChallengeKind::Dns01 => ChallengeAnswer::Dns01 {
                    record_name: format!("_acme-challenge.{}.", name.trim_start_matches("*.")),
                    value: key_authorization.dns_value(),
                },
            };
            responder.present(&answer).await.map_err(|e| {
                AcmeFailure::client(format!("{name}: presenting the {} answer: {e}", kind.as_str()))
            })?;
            presented.push(answer);
            challenge
                .set_ready()
                .await
                .map_err(|e| AcmeFailure::of_error(e, &format!("{name}: asking the CA to check")))?;
        }

        let retries = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(VALIDATION_TIMEOUT);
        match order.poll_ready(&retries).await {
            Ok(OrderStatus::Ready) => {}
            // The order's own problem is general; its challenges say which
            // name failed and why.
            Ok(_) | Err(instant_acme::Error::Api(_)) => {
                return Err(why_invalid(&mut order).await);
            }
            Err(other) => return Err(AcmeFailure::of_error(other, "waiting for the CA to check")),
        }

        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| AcmeFailure::client(format!("making the certificate's key: {e}")))?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())
            .map_err(|e| AcmeFailure::client(format!("making the signing request: {e}")))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| AcmeFailure::client(format!("making the signing request: {e}")))?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(|e| AcmeFailure::of_error(e, "finalizing the order"))?;
        let chain_pem = order
            .poll_certificate(&RetryPolicy::new().timeout(SIGNING_TIMEOUT))
            .await
            .map_err(|e| AcmeFailure::of_error(e, "waiting for the certificate"))?;
        let (not_before, not_after) = validity(&chain_pem).map_err(AcmeFailure::client)?;
        Ok(IssuedCertificate {
            names: names.to_vec(),
            chain_pem,
            private_key_pem: key.serialize_pem(),
            not_before,
            not_after,
        })
    }
}

fn builder(settings: &AcmeSettings) -> anyhow::Result<instant_acme::AccountBuilder> {
    // instant-acme's client asks rustls for the process's provider.
    jamstack_program::install_tls_provider();
    match &settings.ca_root {
        Some(root) => Account::builder_with_root(root)
            .with_context(|| format!("reading the ACME CA root {}", root.display())),
        None => Account::builder().context("loading the system's trusted roots for the ACME CA"),
    }
}

/// Why an order became invalid: the first challenge error the CA gives,
/// with its name.
async fn why_invalid(order: &mut instant_acme::Order) -> AcmeFailure {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let Ok(state) = authorization.refresh().await else {
            continue;
        };
        let name = state.identifier().to_string();
        if let Some(problem) = state.challenges.iter().find_map(|c| c.error.as_ref()) {
            return AcmeFailure::of_problem(problem, Some(&name));
        }
    }
    AcmeFailure {
        problem_type: "urn:ietf:params:acme:error:unauthorized".into(),
        detail: "the CA marked the order invalid without saying why".into(),
    }
}

/// The self-signed certificate a TLS-ALPN-01 answer offers (RFC 8737):
/// the name, and the SHA-256 of the key authorization in the critical
/// acmeIdentifier extension. Answers (certificate DER, PKCS#8 key DER).
fn tls_alpn_certificate(name: &str, digest: &[u8]) -> Result<(Vec<u8>, Vec<u8>), AcmeFailure> {
    let failed =
        |e: rcgen::Error| AcmeFailure::client(format!("{name}: making the tls-alpn-01 certificate: {e}"));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(failed)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let certificate = params.self_signed(&key).map_err(failed)?;
    Ok((certificate.der().to_vec(), key.serialize_der()))
}

/// The leaf's validity, Unix milliseconds, from a PEM chain.
pub fn validity(chain_pem: &str) -> Result<(i64, i64), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .ok_or("the CA sent no certificate")?
        .map_err(|e| format!("the CA sent a certificate that is not PEM: {e}"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf)
        .map_err(|e| format!("the CA sent a certificate that does not parse: {e}"))?;
    let validity = parsed.validity();
    Ok((
        validity.not_before.timestamp() * 1000,
        validity.not_after.timestamp() * 1000,
    ))
}
