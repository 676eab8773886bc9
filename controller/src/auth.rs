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

async fn token_owner(state: &AppState, parts: &Parts, kind: TokenKind) -> Result<String, AppError> {
    let token = bearer(parts).ok_or_else(|| {
        unauthorized("missing `Authorization: Bearer <token>` header; use the token the controller printed on first start")
    })?;
    state
        .db
        .token_name(kind, &hash_token(token))
        .await?
        .ok_or_else(|| unauthorized("the token is unknown or revoked"))
}

/// A request made with the admin token.
#[derive(Debug)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        token_owner(state, parts, TokenKind::Admin).await?;
        Ok(Admin)
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
    fn tokens_are_long_random_and_say_what_they_are() {
        let token = new_token(TokenKind::Runner);
        assert!(token.starts_with("jsr_"));
        assert_eq!(token.len(), 4 + 64);
        assert_ne!(token, new_token(TokenKind::Runner));
        assert_ne!(hash_token(&token), token);
        assert_eq!(hash_token(&token), hash_token(&token));
    }
}
