//! "Sign in with GitHub" on the dashboard: `GET /login/github` sends the
//! browser to GitHub; `GET /login/github/callback` is where GitHub sends it
//! back with a one-time code, which becomes a session.
//!
//! Between the two, the browser holds a sealed cookie (see
//! `crate::secrets`) with the `state` GitHub must send back and the PKCE
//! verifier: a callback not started by this browser on this dashboard in
//! the last ten minutes is refused (login CSRF), and a code caught on its
//! way is useless without the verifier. GitHub's answer is turned into a
//! user by `auth::external`, the end every external sign-in shares.

use super::login::{login_page, open_session, record_sign_in};
use super::{PageResult, behind_tls, see_other};
use crate::auth::Auth;
use crate::auth::external::{ProvenPerson, user_for};
use crate::auth::secrets_match;
use crate::auth::sign_in::ClientAddr;
use crate::config::Config;
use crate::db::{ExternalIdentity, now_millis};
use crate::error::not_found;
use crate::github::GitHubService;
use crate::github::client::CallError;
use crate::github::sign_in::{ExchangeError, GitHubPerson, person_of};
use crate::secrets::random_hex;
use crate::urls::Urls;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// Where the flow starts; the callback is below it, so the state cookie
/// (scoped to this path) goes to both and nowhere else.
pub const START_PATH: &str = "/login/github";
pub const CALLBACK_PATH: &str = "/login/github/callback";
const STATE_COOKIE: &str = "jamstack_github_sign_in";
const STATE_PURPOSE: &str = "dashboard/github-sign-in";
/// How long a person may take at GitHub's approval page.
const SIGN_IN_WINDOW: Duration = Duration::from_secs(10 * 60);
/// The longest `code` taken from a callback (GitHub's are 20 characters).
const MAX_CODE: usize = 512;
/// The automatic-membership sources GitHub sign-in shows.
const SOURCE_PREFIXES: &[&str] = &["github-"];

/// What the sealed cookie holds while the person is at GitHub.
#[derive(Serialize, Deserialize)]
struct PendingSignIn {
    state: String,
    verifier: String,
    /// Milliseconds since the epoch.
    expires_at: i64,
}

fn redirect_uri(urls: &Urls) -> String {
    format!("{}{CALLBACK_PATH}", urls.public_url.trim_end_matches('/'))
}

fn not_configured() -> crate::error::AppError {
    not_found(
        "sign-in with GitHub is not configured on this controller; its operator starts it with \
         --github-oauth-client-id and the app's client secret",
    )
}

/// `GET /login/github`: remembers a fresh state and PKCE verifier in a
/// sealed cookie and sends the browser to GitHub's approval page.
pub async fn start(
    State(github): State<GitHubService>,
    State(urls): State<Urls>,
    headers: HeaderMap,
    jar: CookieJar,
) -> PageResult {
    let oauth = github.sign_in.as_ref().ok_or_else(not_configured)?;
    let pending = PendingSignIn {
        state: random_hex(32),
        verifier: random_hex(48),
        expires_at: now_millis() + SIGN_IN_WINDOW.as_millis() as i64,
    };
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(pending.verifier.as_bytes()));
    let sealed = github.secrets.seal(
        STATE_PURPOSE,
        &serde_json::to_string(&pending).map_err(anyhow::Error::from)?,
    );
    // Lax: GitHub's redirect back is a top-level navigation from another
    // site, which a Strict cookie would not follow.
    let cookie = Cookie::build((STATE_COOKIE, sealed))
        .path(START_PATH)
        .http_only(true)
        .secure(behind_tls(&urls, &headers))
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(SIGN_IN_WINDOW.as_secs() as i64))
        .build();
    let to = oauth.authorize_url(&redirect_uri(&urls), &pending.state, &challenge);
    Ok((jar.add(cookie), see_other(to)).into_response())
}

/// What GitHub sends back: a code and the state, or an error.
#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Why a sign-in through GitHub did not happen.
#[derive(Debug)]
enum Refusal {
    /// The person (or an organization's policy) declined at GitHub.
    Declined,
    /// GitHub sent another error back.
    GitHubError(String),
    /// No state cookie, an expired one, or a state that does not match.
    StateMismatch,
    NoCode,
    /// GitHub refused the code or the client.
    CodeRefused(String),
    /// GitHub could not be reached or did not answer sensibly.
    GitHubTrouble(String),
}

impl Refusal {
    /// What the person is told.
    fn message(&self) -> String {
        let again = "Choose \u{201c}Sign in with GitHub\u{201d} to try again";
        match self {
            Refusal::Declined => format!(
                "You did not let this dashboard see your GitHub account, so you are not signed in. \
                 {again} and approve, or sign in another way."
            ),
            Refusal::GitHubError(said) => format!("GitHub did not sign you in: {said}. {again}."),
            Refusal::StateMismatch => format!(
                "This GitHub sign-in was not started from this dashboard in this browser, or took more \
                 than {} minutes, so it is refused. {again}.",
                SIGN_IN_WINDOW.as_secs() / 60
            ),
            Refusal::NoCode => format!("GitHub sent you back without a sign-in code. {again}."),
            Refusal::CodeRefused(said) => format!(
                "GitHub refused this sign-in ({said}). {again}; if it keeps failing, ask the \
                 controller's operator to check its GitHub OAuth client ID and secret."
            ),
            Refusal::GitHubTrouble(said) => format!(
                "GitHub could not be asked who you are ({said}). Wait a minute, then choose \
                 \u{201c}Sign in with GitHub\u{201d} again."
            ),
        }
    }
}

impl From<CallError> for Refusal {
    fn from(error: CallError) -> Self {
        Refusal::GitHubTrouble(error.to_string())
    }
}

/// The sealed cookie's sign-in, if it opens and has not run out.
fn pending_of(github: &GitHubService, jar: &CookieJar) -> Option<PendingSignIn> {
    let sealed = jar.get(STATE_COOKIE)?.value().to_owned();
    let opened = github.secrets.open(STATE_PURPOSE, &sealed).ok()?;
    let pending: PendingSignIn = serde_json::from_str(&opened).ok()?;
    (pending.expires_at > now_millis()).then_some(pending)
}

/// Who GitHub says completed the flow, once the callback is checked.
async fn person_from_callback(
    github: &GitHubService,
    urls: &Urls,
    jar: &CookieJar,
    callback: &Callback,
) -> Result<GitHubPerson, Refusal> {
    if let Some(error) = &callback.error {
        return Err(if error == "access_denied" {
            Refusal::Declined
        } else {
            let said = callback.error_description.as_deref().unwrap_or(error);
            Refusal::GitHubError(crate::github::client::truncate(said.trim(), 200))
        });
    }
    let pending = pending_of(github, jar).ok_or(Refusal::StateMismatch)?;
    let state = callback.state.as_deref().unwrap_or_default();
    if !secrets_match(state, &pending.state) {
        return Err(Refusal::StateMismatch);
    }
    let code = callback
        .code
        .as_deref()
        .filter(|code| !code.is_empty() && code.len() <= MAX_CODE)
        .ok_or(Refusal::NoCode)?;
    let oauth = github
        .sign_in
        .as_ref()
        .ok_or_else(|| Refusal::GitHubTrouble("sign-in with GitHub is no longer configured".to_owned()))?;
    let token = oauth
        .exchange_code(code, &redirect_uri(urls), &pending.verifier)
        .await
        .map_err(|e| match e {
            ExchangeError::Refused { error, description } if description.is_empty() => {
                Refusal::CodeRefused(error)
            }
            ExchangeError::Refused { error, description } => {
                Refusal::CodeRefused(format!("{error}: {description}"))
            }
            ExchangeError::Call(e @ CallError::Refused { .. }) => Refusal::CodeRefused(e.to_string()),
            ExchangeError::Call(e) => Refusal::GitHubTrouble(e.to_string()),
        })?;
    Ok(person_of(&github.client, &token).await?)
}

/// The person as the shared end of external sign-ins takes them: GitHub's
/// id as the subject, their organizations and teams as sources, spelled as
/// teams' rules are (`github-org:<org>`, `github-team:<org>/<slug>`).
fn proven(person: GitHubPerson) -> ProvenPerson {
    let sources = person
        .organizations
        .iter()
        .map(|org| format!("github-org:{org}"))
        .chain(
            person
                .teams
                .iter()
                .map(|(org, slug)| format!("github-team:{org}/{slug}")),
        )
        .collect();
    ProvenPerson {
        identity: ExternalIdentity {
            provider: "github".to_owned(),
            subject: person.id.to_string(),
            login: Some(person.login),
            email: person.email,
        },
        sources,
        source_prefixes: SOURCE_PREFIXES,
    }
}

/// `GET /login/github/callback`: checks the state, trades the code for a
/// token, asks GitHub who it belongs to, and opens a session for the user
/// linked to that GitHub account (made on first sign-in). Any failure
/// shows the sign-in page saying why, and is audited.
#[allow(clippy::too_many_arguments)]
pub async fn callback(
    State(auth): State<Auth>,
    State(config): State<Arc<Config>>,
    State(urls): State<Urls>,
    State(github): State<GitHubService>,
    client: ClientAddr,
    headers: HeaderMap,
    jar: CookieJar,
    Query(callback): Query<Callback>,
) -> PageResult {
    if github.sign_in.is_none() {
        return Err(not_configured().into());
    }
    // Busy: too many sign-ins of this address (or of everyone) in flight.
    let Ok(_admitted) = auth.sign_in.admit(client.0) else {
        tracing::warn!(client = %client.0, "GitHub sign-in refused: too many sign-ins in flight");
        return Ok(login_page(
            &config,
            &urls,
            &headers,
            jar,
            Some("Too many sign-ins are under way; wait a few seconds, then try again.".to_owned()),
            None,
        ));
    };
    let answer = person_from_callback(&github, &urls, &jar, &callback).await;
    // The state is good once, whatever came of it.
    let jar = jar.remove(Cookie::build(STATE_COOKIE).path(START_PATH));
    let person = match answer {
        Ok(person) => person,
        Err(refusal) => {
            tracing::warn!(client = %client.0, ?refusal, "GitHub sign-in refused");
            record_sign_in(&auth.db, "github".to_owned(), START_PATH, false, client.0).await;
            return Ok(login_page(
                &config,
                &urls,
                &headers,
                jar,
                Some(refusal.message()),
                None,
            ));
        }
    };
    let github_login = person.login.clone();
    let user = user_for(&auth.db, &proven(person)).await?;
    let jar = open_session(&auth, &urls, &headers, jar, Some(user)).await?;
    tracing::info!(with = "github", user, github_login = %github_login, "dashboard sign-in");
    record_sign_in(&auth.db, format!("user:{user}"), START_PATH, true, client.0).await;
    Ok((jar, see_other("/sites")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizations_and_teams_become_sources_spelled_as_rules_are() {
        let person = proven(GitHubPerson {
            id: 583231,
            login: "octocat".into(),
            email: None,
            organizations: vec!["acme".into()],
            teams: vec![("acme".into(), "web".into())],
        });
        assert_eq!(person.identity.provider, "github");
        assert_eq!(person.identity.subject, "583231");
        assert_eq!(person.sources, ["github-org:acme", "github-team:acme/web"]);
        assert!(
            person
                .sources
                .iter()
                .all(|s| crate::api::team_settings::source_problem(s).is_none())
        );
        assert_eq!(person.source_prefixes, ["github-"]);
    }
}
