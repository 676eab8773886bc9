//! Signing in with the admin token or the dashboard password, and out.
//!
//! The sign-in form is protected against login CSRF with a double-submit
//! token: `GET /login` sets a random cookie and puts the same value in the
//! form; `POST /login` insists they match.
//!
//! The password is configured as an argon2 hash only
//! (`Config::dashboard_password_hash`). Wrong guesses are slowed by
//! [`SignInThrottle`].

use super::{Chrome, PageResult, Session, behind_tls, see_other};
use crate::auth::{SESSION_COOKIE, hash_token, random_hex, secrets_match};
use crate::db::{TokenKind, now_millis};
use crate::error::forbidden;
use crate::state::AppState;
use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use std::time::Duration;

const LOGIN_CSRF_COOKIE: &str = "jamstack_login";
/// How long a dashboard session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// How long a failed sign-in waits before it is answered.
pub const FAILURE_PAUSE: Duration = Duration::from_secs(1);

/// Failed sign-ins are answered one at a time, each after
/// [`FAILURE_PAUSE`]: guessing runs at most one try a second per
/// controller however many connections it uses, while the right token or
/// password is answered at once. Password hashes (argon2, deliberately
/// costly) are checked at most two at a time, so a flood of attempts
/// cannot take the CPU.
#[derive(Debug)]
pub struct SignInThrottle {
    failures: tokio::sync::Mutex<()>,
    hashing: tokio::sync::Semaphore,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle {
            failures: tokio::sync::Mutex::new(()),
            hashing: tokio::sync::Semaphore::new(2),
        }
    }
}

impl SignInThrottle {
    /// Whether `password` is the one `hash` was made from, checked off the
    /// async threads.
    async fn password_matches(&self, password: &str, hash: &str) -> anyhow::Result<bool> {
        let _permit = self.hashing.acquire().await?;
        let (password, hash) = (password.to_owned(), hash.to_owned());
        Ok(tokio::task::spawn_blocking(move || crate::auth::password_matches(&password, &hash)).await?)
    }

    /// Waits its turn, then [`FAILURE_PAUSE`].
    async fn after_failure(&self) {
        let _turn = self.failures.lock().await;
        tokio::time::sleep(FAILURE_PAUSE).await;
    }
}

#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
    /// A dashboard password is configured: the form takes it too.
    password: bool,
    error: Option<String>,
}

fn cookie(
    name: &'static str,
    value: String,
    max_age: Duration,
    secure: bool,
    same_site: SameSite,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(same_site)
        .max_age(time_duration(max_age))
        .build()
}

fn time_duration(d: Duration) -> time::Duration {
    time::Duration::seconds(d.as_secs() as i64)
}

fn login_page(state: &AppState, headers: &HeaderMap, jar: CookieJar, error: Option<String>) -> Response {
    let csrf = random_hex(32);
    let jar = jar.add(cookie(
        LOGIN_CSRF_COOKIE,
        csrf.clone(),
        Duration::from_secs(3600),
        behind_tls(state, headers),
        SameSite::Strict,
    ));
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let page = LoginPage {
        chrome: Chrome::anonymous(),
        csrf,
        password: state.config.dashboard_password_hash.is_some(),
        error,
    };
    (status, jar, super::render(&page)).into_response()
}

pub async fn show(State(state): State<AppState>, headers: HeaderMap, jar: CookieJar) -> Response {
    login_page(&state, &headers, jar, None)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub csrf: String,
    /// The admin token, or the dashboard password when one is configured.
    #[serde(default)]
    pub token: String,
}

pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> PageResult {
    let expected = jar
        .get(LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if expected.is_empty() || !secrets_match(&form.csrf, &expected) {
        return Err(forbidden(
            "this sign-in form was not sent by this dashboard's sign-in page; open /login and sign in there",
        )
        .into());
    }
    let token = form.token.trim();
    let by_token = !token.is_empty()
        && state
            .db
            .token_name(TokenKind::Admin, &hash_token(token))
            .await?
            .is_some();
    // A password is taken as typed: spaces may be part of it.
    let by_password = !by_token
        && !form.token.is_empty()
        && match &state.config.dashboard_password_hash {
            Some(hash) => state.sign_in.password_matches(&form.token, hash).await?,
            None => false,
        };
    if !by_token && !by_password {
        tracing::warn!("dashboard sign-in refused: neither the admin token nor the password");
        state.sign_in.after_failure().await;
        let error = if state.config.dashboard_password_hash.is_some() {
            "That is neither the admin token nor the dashboard password. Check the password, or use the \
             admin token the controller printed on its first start (jamstack-controller token admin \
             makes a new one)."
        } else {
            "that token is not the admin token. Use the one the controller printed on its first start, \
             or make a new one with `jamstack-controller token admin`."
        };
        return Ok(login_page(&state, &headers, jar, Some(error.to_owned())));
    }
    let session = random_hex(32);
    state
        .db
        .insert_session(
            &hash_token(&session),
            now_millis() + SESSION_LIFETIME.as_millis() as i64,
        )
        .await?;
    let with = if by_token { "admin token" } else { "password" };
    tracing::info!(with, "dashboard sign-in");
    let jar = jar.remove(Cookie::build(LOGIN_CSRF_COOKIE).path("/")).add(cookie(
        SESSION_COOKIE,
        session,
        SESSION_LIFETIME,
        behind_tls(&state, &headers),
        SameSite::Lax,
    ));
    Ok((jar, see_other("/sites")).into_response())
}

pub async fn sign_out(
    State(state): State<AppState>,
    session: Session,
    jar: CookieJar,
    Form(form): Form<super::CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    if let Some(token) = jar.get(SESSION_COOKIE) {
        state.db.delete_session(&hash_token(token.value())).await?;
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, see_other("/login")).into_response())
}
