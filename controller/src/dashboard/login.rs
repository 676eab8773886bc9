//! Signing in with the admin token or the dashboard password, and out.
//!
//! The sign-in form is protected against login CSRF with a double-submit
//! token: `GET /login` sets a random cookie and puts the same value in the
//! form; `POST /login` insists they match.
//!
//! The password is configured as an argon2 hash only
//! (`Config::dashboard_password_hash`). Every attempt waits its turn in
//! [`SignInThrottle`] before it is checked; wrong guesses hold it a while.

use super::{Chrome, PageResult, Session, behind_tls, see_other};
use crate::auth::Auth;
pub use crate::auth::sign_in::{
    Busy, FAILURE_PAUSE, MAX_SIGN_INS_IN_FLIGHT, MAX_SIGN_INS_IN_FLIGHT_PER_CLIENT, SignInThrottle,
};
use crate::auth::{SESSION_COOKIE, hash_token, secrets_match};
use crate::config::Config;
use crate::db::Database;
use crate::db::{TokenKind, now_millis};
use crate::error::forbidden;
use crate::secrets::random_hex;
use crate::urls::Urls;
use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

const LOGIN_CSRF_COOKIE: &str = "jamstack_login";
/// How long a dashboard session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// The TCP peer's address, when the listener gave one (tests that call the
/// router directly have none; they are counted under the unspecified
/// address).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip())
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        ))
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

fn login_page(
    config: &Config,
    urls: &Urls,
    headers: &HeaderMap,
    jar: CookieJar,
    error: Option<String>,
) -> Response {
    let csrf = random_hex(32);
    let jar = jar.add(cookie(
        LOGIN_CSRF_COOKIE,
        csrf.clone(),
        Duration::from_secs(3600),
        behind_tls(urls, headers),
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
        password: config.dashboard_password_hash.is_some(),
        error,
    };
    (status, jar, super::render(&page)).into_response()
}

pub async fn show(
    State(config): State<Arc<Config>>,
    State(urls): State<Urls>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Response {
    login_page(&config, &urls, &headers, jar, None)
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
    State(auth): State<Auth>,
    State(config): State<Arc<Config>>,
    State(urls): State<Urls>,
    client: ClientAddr,
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
    let _admitted = match auth.sign_in.admit(client.0) {
        Ok(admitted) => admitted,
        Err(busy) => {
            tracing::warn!(client = %client.0, ?busy, "dashboard sign-in refused: too many attempts in flight");
            let message = match busy {
                Busy::Client => format!(
                    "{MAX_SIGN_INS_IN_FLIGHT_PER_CLIENT} sign-ins from your address are already waiting \
                     their turn; wait for their answers, then try again"
                ),
                Busy::Everyone => format!(
                    "{MAX_SIGN_INS_IN_FLIGHT} sign-ins are already waiting their turn on this controller; \
                     try again in a few seconds"
                ),
            };
            return Ok((
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "2")],
                message,
            )
                .into_response());
        }
    };
    // The turn is taken before anything is checked, so no answer (right
    // or wrong) comes back sooner than the failures ahead of it allow.
    let turn = auth.sign_in.turn.lock().await;
    let token = form.token.trim();
    let by_token = !token.is_empty()
        && auth
            .db
            .token_name(TokenKind::Admin, &hash_token(token))
            .await?
            .is_some();
    // A password is taken as typed: spaces may be part of it.
    let by_password = !by_token
        && !form.token.is_empty()
        && match &config.dashboard_password_hash {
            Some(hash) => SignInThrottle::password_matches(&form.token, hash).await?,
            None => false,
        };
    if !by_token && !by_password {
        tracing::warn!(client = %client.0, "dashboard sign-in refused: neither the admin token nor the password");
        tokio::time::sleep(FAILURE_PAUSE).await;
        drop(turn);
        let error = if config.dashboard_password_hash.is_some() {
            "That is neither the admin token nor the dashboard password. Check the password, or use the \
             admin token the controller printed on its first start (jamstack-controller token admin \
             makes a new one)."
        } else {
            "that token is not the admin token. Use the one the controller printed on its first start, \
             or make a new one with `jamstack-controller token admin`."
        };
        return Ok(login_page(&config, &urls, &headers, jar, Some(error.to_owned())));
    }
    drop(turn);
    let session = random_hex(32);
    // Tokens and sessions are `Auth`'s to read and keep.
    auth.db
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
        behind_tls(&urls, &headers),
        SameSite::Lax,
    ));
    Ok((jar, see_other("/sites")).into_response())
}

pub async fn sign_out(
    State(db): State<Database>,
    session: Session,
    jar: CookieJar,
    Form(form): Form<super::CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    if let Some(token) = jar.get(SESSION_COOKIE) {
        db.delete_session(&hash_token(token.value())).await?;
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, see_other("/login")).into_response())
}
