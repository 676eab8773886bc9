//! Signing in through an OpenID Connect provider (`--oidc-*`); the one
//! module that knows the `openidconnect` crate.
//!
//! The provider decides who a person is and which groups they are in; the
//! controller trusts it for exactly that. A sign-in is the authorization
//! code flow with PKCE (S256), a `state` and a `nonce`: [`OidcProvider::start`]
//! makes them and the provider's URL; the dashboard keeps them sealed in a
//! short-lived cookie; [`OidcProvider::finish`] exchanges the code and
//! checks the ID token (signature by the provider's keys, issuer, audience,
//! nonce, expiry) before anything in it is believed. What the teams make of
//! the groups is their rules' (`auth::external`).
//!
//! The provider's discovery document and keys are read at start; when the
//! provider does not answer, the controller starts anyway and a worker
//! ([`OidcProvider::keep_discovered`]) asks again until it does, and then
//! hourly, so rotated keys are found.

use crate::auth::external::ProvenPerson;
use crate::config::OidcSettings;
use crate::db::ExternalIdentity;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The sources an OIDC sign-in can show; memberships other providers made
/// are not ended by one.
pub const SOURCE_PREFIXES: &[&str] = &["oidc-group:"];
/// The most groups a person may be shown in; an ID token naming more is
/// refused rather than cut, since a cut list would end memberships.
pub const MAX_GROUPS: usize = 200;
/// The longest group name believed.
pub const MAX_GROUP_CHARS: usize = 200;
/// How long a person may take at the provider between leaving the sign-in
/// page and coming back.
pub const SIGN_IN_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Where the provider sends the person back, under the public URL.
pub const CALLBACK_PATH: &str = "/login/oidc/callback";
/// How often the discovery document and keys are read again once read.
const REDISCOVER_EVERY: Duration = Duration::from_secs(60 * 60);
/// The longest pause between attempts to reach a provider that is down.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(60);

type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The configured provider, if any: the dashboard's sign-in button and its
/// callback take this.
#[derive(Clone, Default)]
pub struct OidcSignIn(pub Option<Arc<OidcProvider>>);

/// One OpenID Connect provider and what discovery found about it.
pub struct OidcProvider {
    settings: OidcSettings,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    /// Talks to the provider: no redirects followed (the endpoints are the
    /// ones discovery names), bounded in time.
    http: reqwest::Client,
    /// The client made from the discovery document, or why there is none yet.
    discovered: RwLock<Result<Arc<DiscoveredClient>, String>>,
}

/// What a started sign-in must find again when the person comes back;
/// kept by the dashboard, sealed.
#[derive(Debug, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub state: String,
    nonce: String,
    pkce_verifier: String,
    /// Milliseconds since the epoch after which the sign-in is stale.
    pub expires_at: i64,
}

/// The provider has not answered discovery yet.
#[derive(Debug)]
pub struct NotDiscovered {
    pub issuer: String,
    pub why: String,
}

impl OidcProvider {
    /// Checks `settings` (each refusal names its flag) and prepares the
    /// provider; nothing is asked of it yet.
    pub fn new(settings: &OidcSettings, public_url: &str) -> anyhow::Result<Self> {
        check_issuer(&settings.issuer)?;
        check_text(
            "--oidc-client-id",
            &settings.client_id,
            255,
            "the client id the provider gave",
        )?;
        check_text(
            "--oidc-client-secret",
            &settings.client_secret,
            1024,
            "the client secret the provider gave",
        )?;
        check_text("--oidc-name", &settings.name, 60, "a short label such as `Okta`")?;
        check_text(
            "--oidc-groups-claim",
            &settings.groups_claim,
            100,
            "a claim name such as `groups`",
        )?;
        if settings.groups_claim.chars().any(char::is_whitespace) {
            anyhow::bail!(
                "--oidc-groups-claim `{}` has spaces; give the claim's name as the ID token spells it, e.g. groups",
                settings.groups_claim
            );
        }
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|e| anyhow::anyhow!("--oidc-issuer `{}` is not a URL: {e}", settings.issuer))?;
        let callback = format!("{}{CALLBACK_PATH}", public_url.trim_end_matches('/'));
        let redirect = RedirectUrl::new(callback.clone()).map_err(|e| {
            anyhow::anyhow!("the sign-in callback `{callback}` is not a URL ({e}); check --public-url")
        })?;
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(20));
        if let Some(root) = &settings.ca_root {
            for certificate in read_roots(root)? {
                http = http.add_root_certificate(certificate);
            }
        }
        let http = http
            .build()
            .map_err(|e| anyhow::anyhow!("making the OIDC HTTP client: {e}"))?;
        Ok(OidcProvider {
            settings: settings.clone(),
            issuer,
            redirect,
            http,
            discovered: RwLock::new(Err("not asked yet".to_owned())),
        })
    }

    /// The sign-in button's label.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// Reads the provider's discovery document and keys.
    pub async fn discover(&self) -> anyhow::Result<()> {
        let answer = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http).await;
        let metadata = match answer {
            Ok(metadata) => metadata,
            Err(e) => {
                let why = error_chain(&e);
                if self.client().is_err() {
                    *self
                        .discovered
                        .write()
                        .expect("the discovery lock is never poisoned") = Err(why.clone());
                }
                anyhow::bail!(
                    "the OpenID Connect provider {} does not answer discovery: {why}",
                    self.issuer()
                );
            }
        };
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.settings.client_secret.clone())),
        )
        .set_redirect_uri(self.redirect.clone());
        *self
            .discovered
            .write()
            .expect("the discovery lock is never poisoned") = Ok(Arc::new(client));
        Ok(())
    }

    /// Asks the provider again until it answers, pausing longer each time
    /// (up to a minute), then hourly for its current keys. Never returns.
    pub async fn keep_discovered(self: Arc<Self>) {
        let mut pause = Duration::from_secs(2);
        loop {
            let ready = self.client().is_ok();
            tokio::time::sleep(if ready { REDISCOVER_EVERY } else { pause }).await;
            match self.discover().await {
                Ok(()) => {
                    if !ready {
                        tracing::info!(issuer = %self.issuer(), "the OpenID Connect provider answered; sign-in through it works");
                    }
                    pause = Duration::from_secs(2);
                }
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "OpenID Connect discovery failed; trying again"
                    );
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
            }
        }
    }

    fn client(&self) -> Result<Arc<DiscoveredClient>, NotDiscovered> {
        self.discovered
            .read()
            .expect("the discovery lock is never poisoned")
            .clone()
            .map_err(|why| NotDiscovered {
                issuer: self.issuer().to_owned(),
                why,
            })
    }

    /// Starts a sign-in: the provider's URL to send the person to, and what
    /// to keep until they come back.
    pub fn start(&self, now_millis: i64) -> Result<(String, PendingSignIn), NotDiscovered> {
        let client = self.client()?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".to_owned()))
            .add_scope(Scope::new("email".to_owned()))
            .set_pkce_challenge(challenge)
            .url();
        let pending = PendingSignIn {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            expires_at: now_millis + SIGN_IN_LIFETIME.as_millis() as i64,
        };
        Ok((url.to_string(), pending))
    }

    /// Finishes a sign-in the provider answered with `code`: exchanges it
    /// and checks the ID token. The error is a sentence for the person.
    pub async fn finish(&self, pending: PendingSignIn, code: &str) -> Result<ProvenPerson, String> {
        let name = self.name();
        let client = self.client().map_err(|e| {
            format!(
                "{name} ({}) does not answer yet ({}); try again in a minute",
                e.issuer, e.why
            )
        })?;
        let request = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| format!("{name}'s discovery document names no token endpoint ({e})"))?;
        let answer = request
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(refusal) => format!(
                    "{name} refused to finish the sign-in: {}{}",
                    refusal.error(),
                    refusal
                        .error_description()
                        .map(|d| format!(" ({})", d.chars().take(300).collect::<String>()))
                        .unwrap_or_default()
                ),
                other => format!(
                    "{name} could not be asked to finish the sign-in: {}",
                    error_chain(&other)
                ),
            })?;
        let id_token = answer
            .id_token()
            .ok_or_else(|| format!("{name} answered without an ID token; is the `openid` scope allowed?"))?;
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &Nonce::new(pending.nonce))
            .map_err(|e| format!("{name}'s ID token does not check out: {e}"))?;
        let subject = claims.subject().as_str();
        if subject.is_empty() || subject.len() > 255 {
            return Err(format!("{name}'s ID token has no usable subject (`sub`)"));
        }
        let login = claims
            .preferred_username()
            .map(|u| u.as_str().to_owned())
            .filter(|u| !u.is_empty() && u.len() <= 255);
        // An address the provider has not verified could be anyone's.
        let email = claims
            .email()
            .filter(|_| claims.email_verified() == Some(true))
            .map(|e| e.as_str().to_lowercase())
            .filter(|e| e.len() <= 254);
        // The token's signature was checked above: its payload is the
        // provider's word, the groups claim (named by the operator) too.
        let groups = groups_in(&id_token.to_string(), &self.settings.groups_claim)
            .map_err(|why| format!("{name}'s ID token: {why}"))?;
        Ok(ProvenPerson {
            identity: ExternalIdentity {
                provider: format!("oidc:{}", self.issuer()),
                subject: subject.to_owned(),
                login,
                email,
            },
            sources: groups.into_iter().map(|g| format!("oidc-group:{g}")).collect(),
            source_prefixes: SOURCE_PREFIXES,
        })
    }
}

/// The issuer must be an https:// URL (http:// only on this machine, for
/// tests), without query or fragment.
fn check_issuer(issuer: &str) -> anyhow::Result<()> {
    let refuse = |why: &str| {
        anyhow::anyhow!(
            "--oidc-issuer `{}` {why}; give the provider's issuer URL, e.g. https://id.example.com/realms/staff",
            issuer.chars().take(200).collect::<String>()
        )
    };
    let url = url::Url::parse(issuer).map_err(|e| refuse(&format!("is not a URL ({e})")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(refuse("has no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(refuse(
                "is plain http; the provider's answers decide who signs in, so it must be https",
            ));
        }
        _ => return Err(refuse("is not an https:// URL")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("has a query or fragment, which issuers never have"));
    }
    Ok(())
}

fn check_text(flag: &str, value: &str, max: usize, what: &str) -> anyhow::Result<()> {
    if value.is_empty() {
        anyhow::bail!("{flag} is empty; give {what}");
    }
    if value.chars().count() > max || value.chars().any(char::is_control) {
        anyhow::bail!("{flag} is longer than {max} characters or has control characters; give {what}");
    }
    Ok(())
}

/// The certificates of a PEM file given with `--oidc-ca-root`.
fn read_roots(path: &std::path::Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let pem =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("reading --oidc-ca-root {}: {e}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--oidc-ca-root {} is not PEM: {e}", path.display()))?;
    if certificates.is_empty() {
        anyhow::bail!(
            "--oidc-ca-root {} holds no `-----BEGIN CERTIFICATE-----` block; give the PEM file of the provider's root",
            path.display()
        );
    }
    certificates
        .iter()
        .map(|der| {
            reqwest::Certificate::from_der(der)
                .map_err(|e| anyhow::anyhow!("--oidc-ca-root {}: {e}", path.display()))
        })
        .collect()
}

/// The groups a (checked) ID token's `claim` lists: none when absent, one
/// when it is a string, bounded in number and length.
fn groups_in(id_token: &str, claim: &str) -> Result<Vec<String>, String> {
    use base64::Engine as _;
    let payload = id_token
        .split('.')
        .nth(1)
        .and_then(|part| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes).ok())
        .ok_or("its payload is not a JSON object")?;
    let names: Vec<&serde_json::Value> = match payload.get(claim) {
        None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => items.iter().collect(),
        Some(single @ serde_json::Value::String(_)) => vec![single],
        Some(_) => {
            return Err(format!(
                "the `{claim}` claim is neither a list of group names nor one"
            ));
        }
    };
    if names.len() > MAX_GROUPS {
        return Err(format!(
            "the `{claim}` claim lists {} groups, more than the {MAX_GROUPS} believed; ask the provider's \
             admin to send only the groups that matter here",
            names.len()
        ));
    }
    let mut groups = Vec::with_capacity(names.len());
    for name in names {
        let Some(name) = name.as_str() else {
            return Err(format!(
                "the `{claim}` claim holds something other than group names"
            ));
        };
        if name.is_empty() || name.chars().count() > MAX_GROUP_CHARS || name.chars().any(char::is_control) {
            return Err(format!(
                "the `{claim}` claim names a group that is empty, longer than {MAX_GROUP_CHARS} characters or \
                 has control characters"
            ));
        }
        if !groups.iter().any(|g| g == name) {
            groups.push(name.to_owned());
        }
    }
    Ok(groups)
}

/// An error and its causes, one after another.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn token_with(payload: serde_json::Value) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("e30.{}.c2ln", engine.encode(payload.to_string()))
    }

    #[test]
    fn groups_are_read_from_the_configured_claim_and_bounded() {
        let token = token_with(serde_json::json!({"groups": ["web", "ops", "web"], "roles": "admin"}));
        assert_eq!(groups_in(&token, "groups").unwrap(), ["web", "ops"]);
        assert_eq!(groups_in(&token, "roles").unwrap(), ["admin"]);
        assert!(groups_in(&token, "missing").unwrap().is_empty());
        let many: Vec<String> = (0..=MAX_GROUPS).map(|n| format!("g{n}")).collect();
        assert!(groups_in(&token_with(serde_json::json!({"groups": many})), "groups").is_err());
        let long = "x".repeat(MAX_GROUP_CHARS + 1);
        assert!(groups_in(&token_with(serde_json::json!({"groups": [long]})), "groups").is_err());
        assert!(groups_in(&token_with(serde_json::json!({"groups": [1]})), "groups").is_err());
    }

    #[test]
    fn an_issuer_must_be_https_unless_it_is_on_this_machine() {
        assert!(check_issuer("https://id.example.com/realms/staff").is_ok());
        assert!(check_issuer("http://127.0.0.1:9400").is_ok());
        let refused = check_issuer("http://id.example.com").unwrap_err().to_string();
        assert!(refused.contains("--oidc-issuer"), "{refused}");
        assert!(check_issuer("id.example.com").is_err());
        assert!(check_issuer("https://id.example.com/?x=1").is_err());
    }
}
