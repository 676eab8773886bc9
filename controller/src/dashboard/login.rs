//! Signing in with the admin token, the installation's dashboard
//! password, or a user's login and password; and out.
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
    Busy, ClientAddr, FAILURE_PAUSE, MAX_SIGN_INS_IN_FLIGHT, MAX_SIGN_INS_IN_FLIGHT_PER_CLIENT,
    SignInThrottle,
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
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

const LOGIN_CSRF_COOKIE: &str = "jamstack_login";
/// How long a dashboard session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
    /// A dashboard password is configured: the form takes it too.
    password: bool,
    /// The OpenID Connect provider's name, when one is configured: the
    /// page offers "Sign in with <name>".
    oidc: Option<String>,
    /// "Sign in with GitHub" is configured: its button is shown.
    github: bool,
    error: Option<String>,
    /// Where to go once signed in (an invitation's page), if anywhere.
    next: Option<String>,
}

/// The page a sign-in may lead back to: only an invitation's page of this
/// dashboard (a local path of letters, digits and `_` after
/// `/invitations/`), so a link cannot send someone elsewhere once signed in.
pub fn local_next(next: &str) -> Option<&str> {
    let token = next.strip_prefix("/invitations/")?;
    let fits = !token.is_empty()
        && token.len() <= 128
        && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    fits.then_some(next)
}

/// A form sent before anyone is signed in (the sign-in form, an
/// invitation's account form) carries a random value that must match a
/// cookie set with the page (double submit), so another site cannot post
/// it in a visitor's name. Returns the jar with the cookie and the value.
pub fn anonymous_form_csrf(urls: &Urls, headers: &HeaderMap, jar: CookieJar) -> (CookieJar, String) {
    let csrf = random_hex(32);
    let jar = jar.add(cookie(
        LOGIN_CSRF_COOKIE,
        csrf.clone(),
        Duration::from_secs(3600),
        behind_tls(urls, headers),
        SameSite::Strict,
    ));
    (jar, csrf)
}

/// Whether an anonymous form's value matches its cookie.
pub fn anonymous_form_csrf_matches(jar: &CookieJar, given: &str) -> bool {
    let expected = jar
        .get(LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    !expected.is_empty() && secrets_match(given, &expected)
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

/// The sign-in page, with `error` said above its forms (and a 401).
pub(super) fn login_page(
    config: &Config,
    urls: &Urls,
    headers: &HeaderMap,
    jar: CookieJar,
    error: Option<String>,
    next: Option<&str>,
) -> Response {
    let (jar, csrf) = anonymous_form_csrf(urls, headers, jar);
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let page = LoginPage {
        chrome: Chrome::anonymous(),
        csrf,
        password: config.dashboard_password_hash.is_some(),
        oidc: config.oidc.as_ref().map(|oidc| oidc.name.clone()),
        github: config.github_oauth.is_some(),
        error,
        next: next.and_then(local_next).map(str::to_owned),
    };
    (status, jar, super::render(&page)).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// Where to go once signed in (see [`local_next`]).
    pub next: Option<String>,
}

pub async fn show(
    State(config): State<Arc<Config>>,
    State(urls): State<Urls>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(query): Query<LoginQuery>,
) -> Response {
    login_page(&config, &urls, &headers, jar, None, query.next.as_deref())
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub csrf: String,
    /// The admin token, or the dashboard password when one is configured.
    #[serde(default)]
    pub token: String,
    /// A user's login: when given, `password` is that user's password.
    #[serde(default)]
    pub login: String,
    #[serde(default)]
    pub password: String,
    /// Where to go once signed in (see [`local_next`]).
    #[serde(default)]
    pub next: String,
}

/// The longest login an attempt is recorded under in the audit log (the
/// attempt is the sender's text, so it is cut).
const MAX_RECORDED_LOGIN: usize = 64;

/// A hash no password matches, checked when a login is unknown or has no
/// password, so such a failure takes as long as a wrong password does.
fn stand_in_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        crate::auth::hash_password(&random_hex(32)).expect("hashing a random password cannot fail")
    })
}

/// Who signed in.
enum SignedIn {
    AdminToken,
    InstallationPassword,
    User(i64),
}

/// Checks a user's login and password. Unknown logins and users without a
/// password check a stand-in hash, so every failure costs the same.
async fn user_password_matches(db: &Database, login: &str, password: &str) -> anyhow::Result<Option<i64>> {
    let user = db.user_by_login(login).await?;
    let hash = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| stand_in_hash().to_owned());
    let matches = SignInThrottle::password_matches(password, &hash).await?;
    Ok(match user {
        Some(user) if matches && user.password_hash.is_some() => Some(user.id),
        _ => None,
    })
}

/// Records a sign-in or a failed one in the audit log; `target` is the
/// way in (`/login`, `/login/github`).
pub(super) async fn record_sign_in(
    db: &Database,
    actor: String,
    target: &str,
    succeeded: bool,
    client: IpAddr,
) {
    let entry = crate::db::NewAuditEntry {
        actor,
        action: if succeeded { "sign_in" } else { "sign_in_failed" }.to_owned(),
        target: target.to_owned(),
        ip: Some(client.to_string()),
        status: if succeeded { 303 } else { 401 },
        ..Default::default()
    };
    if let Err(e) = db.append_audit(&entry).await {
        tracing::error!(
            error = format!("{e:#}"),
            "writing a sign-in to the audit log failed"
        );
    }
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
    if !anonymous_form_csrf_matches(&jar, &form.csrf) {
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
    let login = form.login.trim();
    let signed_in = if !login.is_empty() {
        // A password is taken as typed: spaces may be part of it.
        user_password_matches(&auth.db, login, &form.password)
            .await?
            .map(SignedIn::User)
    } else {
        let token = form.token.trim();
        let by_token = !token.is_empty()
            && auth
                .db
                .token_name(TokenKind::Admin, &hash_token(token))
                .await?
                .is_some();
        let by_password = !by_token
            && !form.token.is_empty()
            && match &config.dashboard_password_hash {
                Some(hash) => SignInThrottle::password_matches(&form.token, hash).await?,
                None => false,
            };
        if by_token {
            Some(SignedIn::AdminToken)
        } else if by_password {
            Some(SignedIn::InstallationPassword)
        } else {
            None
        }
    };
    let Some(signed_in) = signed_in else {
        tracing::warn!(client = %client.0, "dashboard sign-in refused");
        tokio::time::sleep(FAILURE_PAUSE).await;
        drop(turn);
        let attempted = if login.is_empty() {
            "anonymous".to_owned()
        } else {
            format!(
                "login:{}",
                login.chars().take(MAX_RECORDED_LOGIN).collect::<String>()
            )
        };
        record_sign_in(&auth.db, attempted, "/login", false, client.0).await;
        let error = if !login.is_empty() {
            "That login and password do not match. Check both, or ask an owner of your team to set a new \
             password."
        } else if config.dashboard_password_hash.is_some() {
            "That is neither the admin token nor the dashboard password. Check the password, or use the \
             admin token the controller printed on its first start (jamstack-controller token admin \
             makes a new one)."
        } else {
            "that token is not the admin token. Use the one the controller printed on its first start, \
             or make a new one with `jamstack-controller token admin`."
        };
        return Ok(login_page(
            &config,
            &urls,
            &headers,
            jar,
            Some(error.to_owned()),
            Some(form.next.as_str()),
        ));
    };
    drop(turn);
    let (with, actor) = match signed_in {
        SignedIn::AdminToken => ("admin token", "admin".to_owned()),
        SignedIn::InstallationPassword => ("password", "admin".to_owned()),
        SignedIn::User(user) => ("user password", format!("user:{user}")),
    };
    let user = match signed_in {
        SignedIn::User(user) => Some(user),
        _ => None,
    };
    let jar = open_session(&auth, &urls, &headers, jar, user).await?;
    tracing::info!(with, "dashboard sign-in");
    record_sign_in(&auth.db, actor, "/login", true, client.0).await;
    let next = local_next(&form.next).unwrap_or("/sites");
    Ok((jar, see_other(next)).into_response())
}

/// Opens a dashboard session (the installation's when `user` is `None`)
/// and sets its cookie, replacing the sign-in form's.
pub async fn open_session(
    auth: &Auth,
    urls: &Urls,
    headers: &HeaderMap,
    jar: CookieJar,
    user: Option<i64>,
) -> anyhow::Result<CookieJar> {
    let session = random_hex(32);
    let expires_at = now_millis() + SESSION_LIFETIME.as_millis() as i64;
    // Tokens and sessions are `Auth`'s to read and keep.
    match user {
        Some(user) => {
            auth.db
                .insert_user_session(user, &hash_token(&session), expires_at)
                .await?
        }
        None => auth.db.insert_session(&hash_token(&session), expires_at).await?,
    }
    Ok(jar.remove(Cookie::build(LOGIN_CSRF_COOKIE).path("/")).add(cookie(
        SESSION_COOKIE,
        session,
        SESSION_LIFETIME,
        behind_tls(urls, headers),
        SameSite::Lax,
    )))
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
