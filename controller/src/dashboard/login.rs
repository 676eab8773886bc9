//! Signing in with the admin token, and out.
//!
//! The sign-in form is protected against login CSRF with a double-submit
//! token: `GET /login` sets a random cookie and puts the same value in the
//! form; `POST /login` insists they match.

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

#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
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
    if state
        .db
        .token_name(TokenKind::Admin, &hash_token(token))
        .await?
        .is_none()
    {
        return Ok(login_page(
            &state,
            &headers,
            jar,
            Some(
                "that token is not the admin token. Use the one the controller printed on its first start, \
                 or make a new one with `jamstack-controller token admin`."
                    .to_owned(),
            ),
        ));
    }
    let session = random_hex(32);
    state
        .db
        .insert_session(
            &hash_token(&session),
            now_millis() + SESSION_LIFETIME.as_millis() as i64,
        )
        .await?;
    tracing::info!("dashboard sign-in");
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
