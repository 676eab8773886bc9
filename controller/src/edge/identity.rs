//! Who a visitor is, for `Role` rules: the roles of the JWT in the
//! visitor's `nf_jwt` cookie, where Netlify Identity puts them
//! (`app_metadata.roles`), once the token is verified with the key the
//! site set (an HS256 secret, an RS256/ES256 public key, or a JWKS URL)
//! and found unexpired. A visitor without a valid token has no roles, and
//! `Role` rules skip them, as on Netlify.
//!
//! A JWKS URL is the site's admin's choice and is fetched by the
//! controller, so it goes through the private-address guard of proxy
//! rewrites (`--allow-private-proxy-targets` lifts both), its answer is
//! bounded in size and time, and kept for a few minutes. A key set never
//! verifies an HMAC token: an `alg` of `HS256` signed with a public key
//! would otherwise pass.

use crate::db::{Database, IdentityKey};
use crate::notifications::targets;
use crate::secrets::SecretBox;
use axum::http::{HeaderMap, header};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::sync::Arc;
use std::time::Duration;

/// The cookie Netlify Identity keeps its token in.
pub const TOKEN_COOKIE: &str = "nf_jwt";
/// The longest token read; longer ones are not tokens we verify.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The largest key set fetched.
const MAX_JWKS_BYTES: usize = 64 * 1024;
/// How long a fetched key set is used before it is fetched again.
const JWKS_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// How long a key set may take to arrive.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);

/// The purpose a site's HS256 secret is sealed for (by site id, which a
/// rename does not change).
pub fn secret_purpose(site_id: i64) -> String {
    format!("site-id/{site_id}/identity-secret")
}

/// Verifies visitors' tokens; keeps fetched key sets for a while.
pub struct Identities {
    client: reqwest::Client,
    allow_private_targets: bool,
    key_sets: moka::future::Cache<String, Arc<JwkSet>>,
}

impl Identities {
    pub fn new(allow_private_targets: bool) -> anyhow::Result<Identities> {
        let mut client = reqwest::Client::builder()
            .timeout(JWKS_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("jamstack-edge/", env!("CARGO_PKG_VERSION")));
        if !allow_private_targets {
            client = client.dns_resolver(Arc::new(targets::PublicOnly));
        }
        Ok(Identities {
            client: client.build()?,
            allow_private_targets,
            key_sets: moka::future::Cache::builder()
                .max_capacity(1_000)
                .time_to_live(JWKS_LIFETIME)
                .build(),
        })
    }

    /// The roles of the visitor's valid token for site `site_id`; empty
    /// without a token, with an invalid or expired one, or when the site
    /// has no key.
    pub async fn roles(
        &self,
        db: &Database,
        secrets: &SecretBox,
        site_id: i64,
        headers: &HeaderMap,
    ) -> anyhow::Result<Vec<String>> {
        let Some(token) = token_of(headers) else {
            return Ok(Vec::new());
        };
        let Some(key) = db.site_identity(site_id).await? else {
            return Ok(Vec::new());
        };
        let claims = match key {
            IdentityKey::SealedSecret(sealed) => {
                let Ok(secret) = secrets.open(&secret_purpose(site_id), &sealed) else {
                    tracing::error!(site_id, "the site's token secret does not open; set it again");
                    return Ok(Vec::new());
                };
                verify(
                    token,
                    &DecodingKey::from_secret(secret.as_bytes()),
                    Algorithm::HS256,
                )
            }
            IdentityKey::PublicKey(pem) => match public_key(&pem) {
                Some((key, algorithm)) => verify(token, &key, algorithm),
                None => None,
            },
            IdentityKey::JwksUrl(url) => match self.key_set(&url).await {
                Ok(set) => verify_with_set(token, &set),
                Err(error) => {
                    tracing::warn!(site_id, %url, error = format!("{error:#}"), "the site's key set could not be fetched");
                    None
                }
            },
        };
        Ok(claims.map(|claims| roles_in(&claims)).unwrap_or_default())
    }

    /// The key set at `url`, fetched at most once per [`JWKS_LIFETIME`].
    async fn key_set(&self, url: &str) -> anyhow::Result<Arc<JwkSet>> {
        if let Some(set) = self.key_sets.get(url).await {
            return Ok(set);
        }
        let set = Arc::new(self.fetch_key_set(url).await?);
        self.key_sets.insert(url.to_owned(), set.clone()).await;
        Ok(set)
    }

    async fn fetch_key_set(&self, url: &str) -> anyhow::Result<JwkSet> {
        if let Some(refusal) = targets::refusal(url, self.allow_private_targets) {
            anyhow::bail!("{refusal}");
        }
        let mut response = self.client.get(url).send().await?.error_for_status()?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
            anyhow::ensure!(
                body.len() <= MAX_JWKS_BYTES,
                "the key set is larger than {MAX_JWKS_BYTES} bytes"
            );
        }
        Ok(serde_json::from_slice(&body)?)
    }
}

/// An RS256 or ES256 public key from PEM, or `None` if it is neither.
pub fn public_key(pem: &str) -> Option<(DecodingKey, Algorithm)> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
        return Some((key, Algorithm::RS256));
    }
    DecodingKey::from_ec_pem(pem.as_bytes())
        .ok()
        .map(|key| (key, Algorithm::ES256))
}

/// The claims of `token` if it is signed with `key` by `algorithm` and
/// has not expired (`exp` is required).
fn verify(token: &str, key: &DecodingKey, algorithm: Algorithm) -> Option<serde_json::Value> {
    let validation = Validation::new(algorithm);
    jsonwebtoken::decode::<serde_json::Value>(token, key, &validation)
        .map(|data| data.claims)
        .ok()
}

/// Like [`verify`], with the key of the set the token's `kid` names (or
/// the only one), and never an HMAC algorithm.
fn verify_with_set(token: &str, set: &JwkSet) -> Option<serde_json::Value> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return None;
    }
    let jwk = match &header.kid {
        Some(kid) => set.find(kid)?,
        None if set.keys.len() == 1 => &set.keys[0],
        None => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    verify(token, &key, header.alg)
}

/// The visitor's `nf_jwt` cookie.
fn token_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == TOKEN_COOKIE).then_some(value.trim())
        })
        .filter(|token| !token.is_empty() && token.len() <= MAX_TOKEN_BYTES)
}

/// `app_metadata.roles`, where Netlify Identity puts a user's roles.
fn roles_in(claims: &serde_json::Value) -> Vec<String> {
    claims["app_metadata"]["roles"]
        .as_array()
        .map(|roles| {
            roles
                .iter()
                .filter_map(|role| role.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn token(secret: &[u8], claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn the_roles_of_a_valid_unexpired_token_are_read_from_app_metadata() {
        let in_an_hour = jsonwebtoken::get_current_timestamp() + 3600;
        let claims =
            serde_json::json!({"exp": in_an_hour, "app_metadata": {"roles": ["admin", 7, "editor"]}});
        let valid = token(b"secret", claims.clone());
        let key = DecodingKey::from_secret(b"secret");
        let read = verify(&valid, &key, Algorithm::HS256).unwrap();
        assert_eq!(roles_in(&read), ["admin", "editor"]);
        assert!(verify(&token(b"other", claims), &key, Algorithm::HS256).is_none());
        let expired = token(
            b"secret",
            serde_json::json!({"exp": 1, "app_metadata": {"roles": ["admin"]}}),
        );
        assert!(verify(&expired, &key, Algorithm::HS256).is_none());
        let no_expiry = token(
            b"secret",
            serde_json::json!({"app_metadata": {"roles": ["admin"]}}),
        );
        assert!(verify(&no_expiry, &key, Algorithm::HS256).is_none());
    }

    #[test]
    fn the_token_is_read_from_the_nf_jwt_cookie_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; nf_jwt=abc.def.ghi; b=2"),
        );
        assert_eq!(token_of(&headers), Some("abc.def.ghi"));
        headers.insert(header::COOKIE, HeaderValue::from_static("not_nf_jwt=abc"));
        assert_eq!(token_of(&headers), None);
    }
}
