//! Tokens: made here, stored only as SHA-256 hashes, checked by extractors.
//!
//! Tokens are 32 random bytes, so a plain SHA-256 is a sound hash for them
//! (no password stretching needed), and looking a hash up in the database
//! leaks no timing about the token itself.

use crate::db::Database;
use crate::db::{RunnerRecord, TokenKind};
use crate::error::{AppError, forbidden, unauthorized};
use crate::secrets::random_hex;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use jamstack_proto::{OLDEST_SERVED_PROTOCOL_VERSION, PROTOCOL_HEADER, PROTOCOL_VERSION, VersionMismatch};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod external;
pub mod oidc;
pub mod permissions;
pub mod sign_in;

pub use permissions::{Permission, role_grants, scope_fits_role};
pub use sign_in::SignInThrottle;

/// Who may do what: the database of tokens, sessions and runners, the
/// runners recently found by their token, and the throttle every dashboard
/// sign-in waits in. The extractors below take it from any router state
/// that holds one.
#[derive(Clone)]
pub struct Auth {
    pub db: Database,
    pub known_runners: Arc<KnownRunners>,
    pub sign_in: Arc<SignInThrottle>,
}

impl Auth {
    pub fn new(db: Database) -> Self {
        Auth {
            db,
            known_runners: Arc::default(),
            sign_in: Arc::default(),
        }
    }
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
    bearer_in(&parts.headers)
}

fn bearer_in(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
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
    session_cookie_in(&parts.headers)
}

/// The session token a cookie jar carries, if any (not yet checked).
pub fn session_cookie_value(jar: &axum_extra::extract::CookieJar) -> Option<String> {
    jar.get(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

fn session_cookie_in(headers: &axum::http::HeaderMap) -> Option<String> {
    axum_extra::extract::CookieJar::from_headers(headers)
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
/// here; the dashboard's own forms carry CSRF tokens instead. Answers
/// whether the bearer is an admin (the admin token, or a token with the
/// `admin` scope).
async fn authorize(parts: &Parts, state: &Auth, needed: Scope) -> Result<bool, AppError> {
    // Under `/api/v1` the permission layer has found who is asking (and
    // checked the role); only the token's scope is left to check.
    if let Some(principal) = parts.extensions.get::<Principal>() {
        return match principal {
            Principal::Installation => Ok(true),
            Principal::Member { .. } => Ok(false),
            Principal::Token { scopes, .. } if grants(scopes, needed) => Ok(scopes.contains(&Scope::Admin)),
            Principal::Token { .. } => Err(lacks_scope(parts, needed)),
        };
    }
    if let Some(token) = bearer(parts) {
        let grant = state.db.bearer_token(&hash_token(token)).await?.ok_or_else(|| {
            unauthorized(
                "the token is unknown or revoked; make a new API token on the dashboard's settings page \
                 or with POST /api/v1/tokens",
            )
        })?;
        if grant.kind == TokenKind::Admin {
            return Ok(true);
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
        let scopes = parse_stored_scopes(&grant.scopes);
        if grants(&scopes, needed) {
            return Ok(scopes.contains(&Scope::Admin));
        }
        return Err(lacks_scope(parts, needed));
    }
    let reading = parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
    if reading
        && needed == Scope::Read
        && let Some(session) = session_cookie(parts)
        && state.db.session_is_live(&hash_token(&session)).await?
    {
        return Ok(false);
    }
    Err(unauthorized(
        "missing `Authorization: Bearer <token>` header; use the admin token the controller printed \
         on first start, or an API token made on the dashboard's settings page",
    ))
}

fn lacks_scope(parts: &Parts, needed: Scope) -> AppError {
    forbidden(format!(
        "this token lacks the `{needed}` scope, which {} {} needs; make a token that has it \
         (dashboard settings page, or POST /api/v1/tokens with the admin token)",
        parts.method,
        parts.uri.path()
    ))
}

/// Who a request comes from, as the permission check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The admin token, or a dashboard session opened with it or with the
    /// installation's dashboard password: every permission.
    Installation,
    /// A user's dashboard session: what the user's role on each team allows.
    Member { user: i64 },
    /// An API token of a team (a member's when `user` is set): its scopes,
    /// on its team only, and never more than its member's role.
    Token {
        id: i64,
        team: i64,
        user: Option<i64>,
        scopes: Vec<Scope>,
        /// Made with the admin token for the installation (no member's,
        /// on the first team): with the `admin` scope it manages the
        /// installation, as API tokens did before teams.
        installation: bool,
    },
}

impl Principal {
    /// Whose sites this principal sees in a list.
    pub fn team_filter(&self) -> crate::db::TeamFilter {
        match self {
            Principal::Installation => crate::db::TeamFilter::All,
            Principal::Member { user } => crate::db::TeamFilter::MemberOf(*user),
            Principal::Token { team, .. } => crate::db::TeamFilter::Team(*team),
        }
    }

    /// The team a site this principal makes goes to: a token's own team;
    /// the first team for the admin token (and for a member's session,
    /// which never writes through the API).
    pub fn team_for_new_sites(&self) -> Option<i64> {
        match self {
            Principal::Token { team, .. } => Some(*team),
            Principal::Installation | Principal::Member { .. } => None,
        }
    }
}

/// What an operation acts on, as its path names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A site, by name.
    Site(&'a str),
    /// A build, by id: its site's team decides.
    Build(i64),
    /// A team, by name.
    Team(&'a str),
    /// Nothing one team owns: a list across the asker's teams, or the
    /// installation.
    Unscoped,
}

/// Finds who sent the request: a bearer token, or for reading (`GET`,
/// `HEAD`) a dashboard session cookie. Never a cookie for a write: a page
/// of another origin could send one (the dashboard's own forms carry CSRF
/// tokens instead). `Ok(None)` when the request carries neither; an
/// unknown or revoked token is an error.
pub async fn find_principal(
    state: &Auth,
    method: &axum::http::Method,
    headers: &axum::http::HeaderMap,
) -> Result<Option<Principal>, AppError> {
    if let Some(token) = bearer_in(headers) {
        let grant = state.db.bearer_token(&hash_token(token)).await?.ok_or_else(|| {
            unauthorized(
                "the token is unknown or revoked; make a new API token on the dashboard's settings page \
                 or with POST /api/v1/tokens",
            )
        })?;
        if grant.kind == TokenKind::Admin {
            return Ok(Some(Principal::Installation));
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
        let team = match grant.team_id {
            Some(team) => team,
            // Only the admin token has no team; a stray row is refused.
            None => {
                return Err(unauthorized(
                    "this token belongs to no team; make a new API token",
                ));
            }
        };
        let installation = grant.user_id.is_none() && team == state.db.first_team_id().await?;
        return Ok(Some(Principal::Token {
            id: grant.id,
            team,
            user: grant.user_id,
            scopes: parse_stored_scopes(&grant.scopes),
            installation,
        }));
    }
    let reading = method == axum::http::Method::GET || method == axum::http::Method::HEAD;
    if reading && let Some(session) = session_cookie_in(headers) {
        return Ok(match state.db.session_user(&hash_token(&session)).await? {
            Some(Some(user)) => Some(Principal::Member { user }),
            Some(None) => Some(Principal::Installation),
            None => None,
        });
    }
    Ok(None)
}

/// The one check of a declared permission: whether `principal` holds
/// `permission` on `resource`. A token's scopes are checked first (they
/// say nothing about any site); then a site (or build) of a team the asker
/// has no part in answers 404 exactly as a site that does not exist, so
/// names do not leak; a member whose role falls short gets 403 naming it.
pub async fn check_permission(
    state: &Auth,
    principal: Option<&Principal>,
    permission: Permission,
    resource: Resource<'_>,
) -> Result<(), AppError> {
    if permission == Permission::Public {
        return Ok(());
    }
    let Some(principal) = principal else {
        return Err(unauthorized(
            "missing `Authorization: Bearer <token>` header; use the admin token the controller printed \
             on first start, or an API token made on the dashboard's settings page",
        ));
    };
    if *principal == Principal::Installation {
        return Ok(());
    }
    if let Principal::Token { scopes, .. } = principal
        && let Some(scope) = permission.scope()
        && !grants(scopes, scope)
    {
        return Err(forbidden(format!(
            "this token lacks the `{scope}` scope, which `{permission}` needs; make a token that has it \
             (dashboard settings page, or POST /api/v1/tokens with the admin token)"
        )));
    }
    if permission == Permission::InstallationAdmin {
        return match principal {
            Principal::Token {
                installation: true, ..
            } => Ok(()),
            _ => Err(forbidden(format!(
                "this needs the `{permission}` permission, which only the installation's admin token \
                 and the tokens made with it holding the `admin` scope have"
            ))),
        };
    }
    let hidden = || match resource {
        Resource::Site(name) => crate::error::not_found(format!(
            "no site named `{name}`; list sites with GET /api/v1/sites"
        )),
        Resource::Build(id) => crate::error::not_found(format!("no build {id}")),
        Resource::Team(name) => crate::error::not_found(format!("no team named `{name}`")),
        Resource::Unscoped => crate::error::not_found("not found"),
    };
    let team = match resource {
        Resource::Site(name) => Some(state.db.team_of_site(name).await?.ok_or_else(hidden)?),
        Resource::Build(id) => Some(state.db.team_of_build(id).await?.ok_or_else(hidden)?),
        Resource::Team(name) => Some(state.db.team_by_name(name).await?.ok_or_else(hidden)?.id),
        Resource::Unscoped => None,
    };
    let short_role = |role: crate::db::Role| {
        forbidden(format!(
            "your role on this team is `{role}`, and this needs `{permission}`, which needs `{}` or above; \
             ask an owner of the team",
            permission.least_role().map_or("the admin token", |r| r.as_str())
        ))
    };
    let (user, own_team) = match principal {
        Principal::Installation => return Ok(()),
        Principal::Member { user } => (Some(*user), None),
        Principal::Token { team, user, .. } => (*user, Some(*team)),
    };
    // Nothing one team owns (lists, which show only the asker's teams'
    // part, and new sites, which go to a token's team): a member's token
    // is held to the member's role on its own team.
    let Some(team) = team.or(own_team) else {
        return Ok(());
    };
    if own_team.is_some_and(|own| own != team) {
        return Err(hidden());
    }
    match user {
        // A team's own token: its scopes decide.
        None => Ok(()),
        Some(user) => match state.db.role_on_team(user, team).await? {
            None => Err(hidden()),
            Some(role) if role_grants(role, permission) => Ok(()),
            Some(role) => Err(short_role(role)),
        },
    }
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

        impl<S: Send + Sync> FromRequestParts<S> for $name
        where
            Auth: FromRef<S>,
        {
            type Rejection = AppError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
                authorize(parts, &Auth::from_ref(state), $scope).await.map(|_| $name)
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

/// A request that may create and change sites (`sites` scope), and
/// whether it comes from an admin, whose word is proof enough where
/// others must prove something (a custom domain's control).
#[derive(Debug)]
pub struct ManagesSites {
    pub is_admin: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for ManagesSites
where
    Auth: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let is_admin = authorize(parts, &Auth::from_ref(state), Scope::Sites).await?;
        Ok(ManagesSites { is_admin })
    }
}

/// A request in a runner protocol version this controller serves: its own,
/// or the one before (a runner not upgraded yet).
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
        match version {
            Some(v) if (OLDEST_SERVED_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&v) => Ok(SpeaksProtocol),
            _ => Err(RunnerRejection::Version(version_mismatch(version))),
        }
    }
}

/// Why a runner's protocol version is refused, and what to upgrade: the
/// runner when it is too old, the controller when the runner is newer.
fn version_mismatch(runner_version: Option<u32>) -> VersionMismatch {
    let served = format!(
        "this controller speaks runner protocol {PROTOCOL_VERSION} and still serves \
         {OLDEST_SERVED_PROTOCOL_VERSION}"
    );
    let message = match runner_version {
        None => format!(
            "{served}; the request carries no protocol version ({PROTOCOL_HEADER} header). \
             Install the runner release that matches the controller"
        ),
        Some(v) if v > PROTOCOL_VERSION => format!(
            "{served}, the runner sent {v}, newer than the controller: upgrade the controller \
             first, then its runners (a controller serves runners up to one version behind it, \
             never ahead)"
        ),
        Some(v) => {
            format!("{served}, the runner sent {v}: install the runner release that matches the controller")
        }
    };
    VersionMismatch {
        controller_version: PROTOCOL_VERSION,
        runner_version: runner_version.unwrap_or(0),
        message,
    }
}

/// How long a runner found by its token is taken at its word. A runner
/// polls and reports many times a second when builds are short; without
/// this each call read its record. A runner revoked through this
/// controller is refused at once; through another controller sharing the
/// database, at most this much later.
const RUNNER_TOKEN_FRESH_FOR: Duration = Duration::from_secs(5);

/// Runners recently found by their token hash (see [`RUNNER_TOKEN_FRESH_FOR`]).
#[derive(Default)]
pub struct KnownRunners {
    by_token_hash: Mutex<HashMap<String, (RunnerRecord, Instant)>>,
}

impl KnownRunners {
    fn get(&self, token_hash: &str) -> Option<RunnerRecord> {
        let mut known = self.by_token_hash.lock().unwrap_or_else(|p| p.into_inner());
        match known.get(token_hash) {
            Some((runner, found)) if found.elapsed() < RUNNER_TOKEN_FRESH_FOR => Some(runner.clone()),
            Some(_) => {
                known.remove(token_hash);
                None
            }
            None => None,
        }
    }

    fn remember(&self, token_hash: String, runner: RunnerRecord) {
        let mut known = self.by_token_hash.lock().unwrap_or_else(|p| p.into_inner());
        // Runners are few; old entries go when the map grows.
        if known.len() >= 4096 {
            known.retain(|_, (_, found)| found.elapsed() < RUNNER_TOKEN_FRESH_FOR);
        }
        known.insert(token_hash, (runner, Instant::now()));
    }

    /// Notes that a runner's `last_seen_at` was stored as `at`, so its next
    /// calls do not store it again.
    pub fn seen(&self, runner_id: i64, at: i64) {
        let mut known = self.by_token_hash.lock().unwrap_or_else(|p| p.into_inner());
        for (runner, _) in known.values_mut().filter(|(r, _)| r.id == runner_id) {
            runner.last_seen_at = Some(at);
        }
    }

    /// Forgets the runners that match: their token was revoked or replaced.
    pub fn forget(&self, matches: impl Fn(&RunnerRecord) -> bool) {
        let mut known = self.by_token_hash.lock().unwrap_or_else(|p| p.into_inner());
        known.retain(|_, (runner, _)| !matches(runner));
    }
}

/// A request from a registered, not revoked runner that speaks our
/// protocol version.
#[derive(Debug)]
pub struct Runner(pub RunnerRecord);

impl<S: Send + Sync> FromRequestParts<S> for Runner
where
    Auth: FromRef<S>,
{
    type Rejection = RunnerRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        SpeaksProtocol::from_request_parts(parts, state).await?;
        let state = &Auth::from_ref(state);
        let token = bearer(parts).ok_or_else(|| {
            RunnerRejection::Auth(unauthorized(
                "missing `Authorization: Bearer <runner token>`; register the runner with a registration token",
            ))
        })?;
        let token_hash = hash_token(token);
        if let Some(runner) = state.known_runners.get(&token_hash) {
            return Ok(Runner(runner));
        }
        let runner = state
            .db
            .runner_by_token(&token_hash)
            .await
            .map_err(|e| RunnerRejection::Auth(e.into()))?
            .ok_or_else(|| {
                RunnerRejection::Auth(unauthorized(
                    "this runner's token is unknown or revoked; register it again with a registration token",
                ))
            })?;
        state.known_runners.remember(token_hash, runner.clone());
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
    fn a_runner_found_by_its_token_is_remembered_until_revoked_here() {
        let known = KnownRunners::default();
        let runner = |id: i64, name: &str| RunnerRecord {
            id,
            name: name.to_owned(),
            labels: Vec::new(),
            slots: 1,
            created_at: 0,
            last_seen_at: None,
            revoked_at: None,
        };
        assert!(known.get("hash-a").is_none());
        known.remember("hash-a".into(), runner(1, "a"));
        known.remember("hash-b".into(), runner(2, "b"));
        assert_eq!(known.get("hash-a").unwrap().id, 1);
        // A stored sighting spares the next calls another write.
        known.seen(1, 42);
        assert_eq!(known.get("hash-a").unwrap().last_seen_at, Some(42));
        assert_eq!(known.get("hash-b").unwrap().last_seen_at, None);
        known.forget(|r| r.id == 1);
        assert!(
            known.get("hash-a").is_none(),
            "a revoked runner is looked up again"
        );
        assert!(known.get("hash-b").is_some());
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
