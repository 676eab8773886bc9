//! Signing in through the OpenID Connect provider (`--oidc-*`): the
//! sign-in page's "Sign in with <name>" button and the provider's way back.
//!
//! `GET /login/oidc` sends the person to the provider with a fresh state,
//! nonce and PKCE verifier, kept in a cookie sealed with the controller's
//! key (`SecretBox`), scoped to `/login/oidc`, HttpOnly and SameSite=Lax
//! (the way back is a top-level navigation from the provider's site), for
//! ten minutes. `GET /login/oidc/callback` opens that cookie, insists the
//! answer's state is its own, lets `auth::oidc` check the provider's word,
//! and `auth::external` find or make the user; then a session opens as
//! for a password. Every refusal shows the sign-in page saying why and is
//! audited as a failed sign-in.

use super::login::{login_page, open_session, record_sign_in};
use super::{PageResult, behind_tls, see_other};
use crate::auth::oidc::{OidcSignIn, PendingSignIn, SIGN_IN_LIFETIME};
use crate::auth::sign_in::ClientAddr;
use crate::auth::{Auth, secrets_match};
use crate::config::Config;
use crate::db::now_millis;
use crate::error::not_found;
use crate::secrets::SecretBox;
use crate::urls::Urls;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use std::sync::Arc;

const PENDING_COOKIE: &str = "jamstack_oidc";
const PENDING_COOKIE_PATH: &str = "/login/oidc";
/// What the pending sign-in is sealed for, so no other sealed value opens
/// as one.
const SEALED_FOR: &str = "dashboard/oidc-sign-in";

fn no_provider() -> crate::error::AppError {
    not_found(
        "this controller signs in through no OpenID Connect provider (it was started without --oidc-issuer); \
         sign in at /login",
    )
}

/// `GET /login/oidc`: off to the provider.
pub async fn start(
    State(oidc): State<OidcSignIn>,
    State(secrets): State<Arc<SecretBox>>,
    State(config): State<Arc<Config>>,
    State(urls): State<Urls>,
    headers: HeaderMap,
    jar: CookieJar,
) -> PageResult {
    let provider = oidc.0.ok_or_else(no_provider)?;
    let (url, pending) = match provider.start(now_millis()) {
        Ok(started) => started,
        Err(waiting) => {
            let message = format!(
                "{} ({}) does not answer yet ({}), so signing in through it cannot start. Try again in a \
                 minute, or sign in with a password.",
                provider.name(),
                waiting.issuer,
                waiting.why.chars().take(300).collect::<String>()
            );
            let mut page = login_page(&config, &urls, &headers, jar, Some(message), None);
            *page.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return Ok(page);
        }
    };
    let sealed = secrets.seal(
        SEALED_FOR,
        &serde_json::to_string(&pending).map_err(anyhow::Error::from)?,
    );
    let cookie = Cookie::build((PENDING_COOKIE, sealed))
        .path(PENDING_COOKIE_PATH)
        .http_only(true)
        .secure(behind_tls(&urls, &headers))
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(SIGN_IN_LIFETIME.as_secs() as i64))
        .build();
    Ok((jar.add(cookie), see_other(url)).into_response())
}

/// What the provider sends back: a code and our state, or an error.
#[derive(Debug, Deserialize)]
pub struct ProviderAnswer {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The longest authorization code taken.
const MAX_CODE_LEN: usize = 4096;

/// `GET /login/oidc/callback`: the provider's answer.
#[allow(clippy::too_many_arguments)]
pub async fn callback(
    State(oidc): State<OidcSignIn>,
    State(secrets): State<Arc<SecretBox>>,
    State(auth): State<Auth>,
    State(config): State<Arc<Config>>,
    State(urls): State<Urls>,
    client: ClientAddr,
    headers: HeaderMap,
    jar: CookieJar,
    Query(answer): Query<ProviderAnswer>,
) -> PageResult {
    let provider = oidc.0.ok_or_else(no_provider)?;
    let pending = jar
        .get(PENDING_COOKIE)
        .and_then(|cookie| secrets.open(SEALED_FOR, cookie.value()).ok())
        .and_then(|json| serde_json::from_str::<PendingSignIn>(&json).ok());
    // A sign-in's state is used once, whatever comes of it.
    let jar = jar.remove(Cookie::build(PENDING_COOKIE).path(PENDING_COOKIE_PATH));
    let name = provider.name();
    let proven = async {
        let pending = pending.filter(|p| p.expires_at > now_millis()).ok_or_else(|| {
            format!(
                "This sign-in through {name} was not started in this browser, or was started more than {} \
                 minutes ago. Start again with the button below.",
                SIGN_IN_LIFETIME.as_secs() / 60
            )
        })?;
        // An error signs no one in, so it is reported even without our
        // state (some providers leave it out of error answers).
        if let Some(error) = &answer.error {
            let error: String = error.chars().take(100).collect();
            let description = answer
                .error_description
                .as_deref()
                .map(|d| format!(" ({})", d.chars().take(300).collect::<String>()))
                .unwrap_or_default();
            return Err(if error == "access_denied" {
                format!("Signing in through {name} was declined there{description}; you are not signed in.")
            } else {
                format!("{name} refused the sign-in: {error}{description}.")
            });
        }
        if !secrets_match(answer.state.as_deref().unwrap_or_default(), &pending.state) {
            return Err(format!(
                "The answer from {name} does not belong to the sign-in started in this browser (its state \
                 does not match), so it was refused. Start again with the button below."
            ));
        }
        let code = answer
            .code
            .as_deref()
            .filter(|code| !code.is_empty() && code.len() <= MAX_CODE_LEN)
            .ok_or_else(|| format!("{name} sent you back without a usable code; start again."))?;
        provider.finish(pending, code).await
    }
    .await;
    let person = match proven {
        Ok(person) => person,
        Err(message) => {
            tracing::warn!(client = %client.0, issuer = %provider.issuer(), reason = %message, "OpenID Connect sign-in refused");
            let actor = format!("oidc:{}", provider.issuer().chars().take(200).collect::<String>());
            record_sign_in(&auth.db, actor, "/login/oidc", false, client.0).await;
            return Ok(login_page(&config, &urls, &headers, jar, Some(message), None));
        }
    };
    let user = crate::auth::external::user_for(&auth.db, &person).await?;
    let jar = open_session(&auth, &urls, &headers, jar, Some(user)).await?;
    tracing::info!(with = "openid connect", user, "dashboard sign-in");
    record_sign_in(&auth.db, format!("user:{user}"), "/login/oidc", true, client.0).await;
    Ok((jar, see_other("/sites")).into_response())
}
