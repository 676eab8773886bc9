//! Tokens: made here, stored only as SHA-256 hashes, checked by extractors.
//!
//! Tokens are 32 random bytes, so a plain SHA-256 is a sound hash for them
//! (no password stretching needed), and looking a hash up in the database
//! leaks no timing about the token itself.

use crate::db::{RunnerRecord, TokenKind};
use crate::error::{AppError, forbidden, unauthorized};
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

/// What an API token may do. The admin token may do everything; `admin`
/// implies every other scope.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every `GET` under `/api/v1`, the live log included.
    Read,
    /// Trigger, cancel and retry builds.
    Builds,
    /// Direct deploys, publish and rollback, lock and unlock, alias removal.
    Deploys,
    /// Create, connect and change sites: settings, environment, cache,
    /// webhooks.
    Sites,
    /// Tokens, runners, garbage collection, webhook deliveries, GitHub
    /// installations; implies every other scope.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Read,
        Scope::Builds,
        Scope::Deploys,
        Scope::Sites,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Builds => "builds",
            Scope::Deploys => "deploys",
            Scope::Sites => "sites",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes stored for a token (space-separated names), in order; names
/// this controller does not know are left out.
pub fn parse_stored_scopes(stored: &str) -> Vec<Scope> {
    let mut scopes: Vec<Scope> = stored.split_whitespace().filter_map(Scope::parse).collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

/// How scopes are stored: names, space-separated.
pub fn store_scopes(scopes: &[Scope]) -> String {
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

/// Whether a token holding `held` may do what needs `needed`.
pub fn grants(held: &[Scope], needed: Scope) -> bool {
    held.contains(&Scope::Admin) || held.contains(&needed)
}

/// How long a token's `last_used_at` may lag: refreshed at most this often,
/// so reading the API does not write to the database on every request.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// Checks that the request may do what needs `needed`: the admin token, an
/// API token holding the scope (or `admin`), or, for reading (`GET`), a
/// live dashboard session: the browser's `EventSource` cannot send headers,
/// so the live log follows by cookie. Writes always need a bearer token
/// here; the dashboard's own forms carry CSRF tokens instead.
async fn authorize(parts: &Parts, state: &AppState, needed: Scope) -> Result<(), AppError> {
    if let Some(token) = bearer(parts) {
        let grant = state.db.bearer_token(&hash_token(token)).await?.ok_or_else(|| {
            unauthorized(
                "the token is unknown or revoked; make a new API token on the dashboard's settings page \
                 or with POST /api/v1/tokens",
            )
        })?;
        if grant.kind == TokenKind::Admin {
            return Ok(());
        }
        let now = crate::db::now_millis();
        if grant
            .last_used_at
            .is_none_or(|at| now - at > LAST_USED_RESOLUTION_MS)
            && let Err(e) = state.db.touch_token(grant.id).await
        {
            tracing::warn!(
                token = grant.id,
                error = format!("{e:#}"),
                "noting a token's use failed"
            );
        }
        if grants(&parse_stored_scopes(&grant.scopes), needed) {
            return Ok(());
        }
        return Err(forbidden(format!(
            "this token lacks the `{needed}` scope, which {} {} needs; make a token that has it \
             (dashboard settings page, or POST /api/v1/tokens with the admin token)",
            parts.method,
            parts.uri.path()
        )));
    }
    let reading = parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
    if reading
        && needed == Scope::Read
        && let Some(session) = session_cookie(parts)
        && state.db.session_is_live(&hash_token(&session)).await?
    {
        return Ok(());
    }
    Err(unauthorized(
        "missing `Authorization: Bearer <token>` header; use the admin token the controller printed \
         on first start, or an API token made on the dashboard's settings page",
    ))
}

/// One extractor per scope, so each handler says in its signature what it
/// needs and cannot forget to check it.
macro_rules! scope_extractor {
    ($(#[$doc:meta])* $name:ident => $scope:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl $name {
            /// The scope this extractor checks for.
            pub const SCOPE: Scope = $scope;
        }

        impl FromRequestParts<AppState> for $name {
            type Rejection = AppError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                authorize(parts, state, $scope).await.map(|()| $name)
            }
        }
    };
}

scope_extractor!(
    /// A request that may read (`read` scope), or a dashboard session's `GET`.
    CanRead => Scope::Read
);
scope_extractor!(
    /// A request that may trigger, cancel and retry builds (`builds` scope).
    CanBuild => Scope::Builds
);
scope_extractor!(
    /// A request that may deploy, publish, lock and unlock (`deploys` scope).
    CanDeploy => Scope::Deploys
);
scope_extractor!(
    /// A request that may create and change sites (`sites` scope).
    CanManageSites => Scope::Sites
);
scope_extractor!(
    /// A request with the `admin` scope: tokens, runners, garbage
    /// collection, webhook deliveries, GitHub installations.
    Admin => Scope::Admin
);

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

    #[test]
    fn admin_implies_every_scope_and_others_only_their_own() {
        let admin = parse_stored_scopes("admin");
        assert!(Scope::ALL.iter().all(|s| grants(&admin, *s)));
        let read = parse_stored_scopes("read");
        assert!(grants(&read, Scope::Read));
        assert!(!grants(&read, Scope::Builds) && !grants(&read, Scope::Admin));
        assert_eq!(
            parse_stored_scopes("sites  read unknown read"),
            [Scope::Read, Scope::Sites]
        );
        assert_eq!(
            store_scopes(&[Scope::Sites, Scope::Read, Scope::Sites]),
            "read sites"
        );
        assert_eq!(parse_stored_scopes(""), []);
    }
}
