//! Tokens: made here, stored only as SHA-256 hashes, checked by extractors.
//!
//! Tokens are 32 random bytes, so a plain SHA-256 is a sound hash for them
//! (no password stretching needed), and looking a hash up in the database
//! leaks no timing about the token itself.

use crate::db::{RunnerRecord, TokenKind};
use crate::error::{AppError, unauthorized};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use jamstack_proto::{PROTOCOL_HEADER, PROTOCOL_VERSION, VersionMismatch};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A new token with a prefix that tells a reader what it is for.
pub fn new_token(kind: TokenKind) -> String {
    let prefix = match kind {
        TokenKind::Admin => "jsa",
        TokenKind::Runner => "jsr",
        TokenKind::Registration => "jsreg",
        TokenKind::Api => "jsapi",
    };
    format!("{prefix}_{}", random_hex(32))
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The cookie that carries a dashboard session. Its value is a random
/// token; the database keeps only its hash.
pub const SESSION_COOKIE: &str = "jamstack_session";

/// The session token a request's cookie carries, if any (not yet checked).
pub fn session_cookie(parts: &Parts) -> Option<String> {
    axum_extra::extract::CookieJar::from_headers(&parts.headers)
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// The form token that goes with a session (synchronizer pattern): derived
/// from the session's secret, so it needs no storage and a page of another
/// origin, which cannot read the cookie, cannot forge it.
pub fn csrf_token_for(session_token: &str) -> String {
    hex::encode(Sha256::digest(format!("csrf:{session_token}").as_bytes()))
}

/// Compares two secrets in constant time.
pub fn secrets_match(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// Makes the stored form of a dashboard password: an argon2id hash with a
/// random salt, as a PHC string (`$argon2id$v=19$...`). The password
/// itself is kept nowhere.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password failed: {e}"))
}

/// Checks that a configured password hash is one [`password_matches`] can
/// use, so a typo is caught at start rather than at the first sign-in.
pub fn check_password_hash(phc: &str) -> Result<(), String> {
    let parsed = argon2::PasswordHash::new(phc).map_err(|e| {
        format!(
            "the dashboard password hash is not a PHC string ({e}); make one with \
             `jamstack-controller hash-password` and pass it whole, `$argon2id$...` included"
        )
    })?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(
            "the dashboard password hash lacks its salt or its hash; copy the whole line \
             `jamstack-controller hash-password` printed"
                .to_owned(),
        );
    }
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!(
            "the dashboard password hash uses `{}`; only argon2 hashes are taken. Make one with \
             `jamstack-controller hash-password`",
            parsed.algorithm
        ));
    }
    Ok(())
}

/// Whether `password` is the one `phc` was made from. The derived keys are
/// compared in constant time. Slow by design (tens of milliseconds): call
/// it off the async threads.
pub fn password_matches(password: &str, phc: &str) -> bool {
    use argon2::PasswordVerifier;
    let Ok(parsed) = argon2::PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A request made with the admin token or an API token (REST API), or, for
/// reading (`GET`), with a live dashboard session: the browser's
/// `EventSource` cannot send headers, so the live log follows by cookie.
/// Writes always need a bearer token here; the dashboard's own forms carry
/// CSRF tokens instead.
#[derive(Debug)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(parts) {
            let hash = hash_token(token);
            for kind in [TokenKind::Admin, TokenKind::Api] {
                if state.db.token_name(kind, &hash).await?.is_some() {
                    return Ok(Admin);
                }
            }
            return Err(unauthorized("the token is unknown or revoked"));
        }
        let reading = parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
        if reading
            && let Some(session) = session_cookie(parts)
            && state.db.session_is_live(&hash_token(&session)).await?
        {
            return Ok(Admin);
        }
        Err(unauthorized(
            "missing `Authorization: Bearer <token>` header; use the admin token the controller printed \
             on first start, or an API token made on the dashboard's settings page",
        ))
    }
}

/// A request that speaks our runner protocol version.
#[derive(Debug)]
pub struct SpeaksProtocol;

/// Why a runner request was refused before its handler ran.
#[derive(Debug)]
pub enum RunnerRejection {
    Auth(AppError),
    Version(VersionMismatch),
}

impl IntoResponse for RunnerRejection {
    fn into_response(self) -> Response {
        match self {
            RunnerRejection::Auth(error) => error.into_response(),
            RunnerRejection::Version(body) => {
                (StatusCode::UPGRADE_REQUIRED, axum::Json(body)).into_response()
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SpeaksProtocol {
    type Rejection = RunnerRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let version = parts
            .headers
            .get(PROTOCOL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok());
        if version == Some(PROTOCOL_VERSION) {
            return Ok(SpeaksProtocol);
        }
        Err(RunnerRejection::Version(VersionMismatch {
            controller_version: PROTOCOL_VERSION,
            runner_version: version.unwrap_or(0),
            message: format!(
                "this controller speaks runner protocol {PROTOCOL_VERSION}, the runner sent {}; \
                 install the runner release that matches the controller",
                version.map_or_else(|| "none".to_owned(), |v| v.to_string())
            ),
        }))
    }
}

/// A request from a registered, not revoked runner that speaks our
/// protocol version.
#[derive(Debug)]
pub struct Runner(pub RunnerRecord);

impl FromRequestParts<AppState> for Runner {
    type Rejection = RunnerRejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        SpeaksProtocol::from_request_parts(parts, state).await?;
        let token = bearer(parts).ok_or_else(|| {
            RunnerRejection::Auth(unauthorized(
                "missing `Authorization: Bearer <runner token>`; register the runner with a registration token",
            ))
        })?;
        let runner = state
            .db
            .runner_by_token(&hash_token(token))
            .await
            .map_err(|e| RunnerRejection::Auth(e.into()))?
            .ok_or_else(|| {
                RunnerRejection::Auth(unauthorized(
                    "this runner's token is unknown or revoked; register it again with a registration token",
                ))
            })?;
        Ok(Runner(runner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_matches_only_its_own_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(check_password_hash(&hash).is_ok());
        assert!(password_matches("correct horse", &hash));
        assert!(!password_matches("correct horsf", &hash));
        assert!(!password_matches("", &hash));
        // The same password hashes differently each time (a random salt).
        assert_ne!(hash_password("correct horse").unwrap(), hash);
        for bad in ["", "correct horse", "$argon2id$nonsense"] {
            let error = check_password_hash(bad).unwrap_err();
            assert!(error.contains("hash-password"), "{error}");
            assert!(!password_matches("correct horse", bad));
        }
    }

    #[test]
    fn tokens_are_long_random_and_say_what_they_are() {
        let token = new_token(TokenKind::Runner);
        assert!(token.starts_with("jsr_"));
        assert_eq!(token.len(), 4 + 64);
        assert_ne!(token, new_token(TokenKind::Runner));
        assert_ne!(hash_token(&token), token);
        assert_eq!(hash_token(&token), hash_token(&token));
    }
}
