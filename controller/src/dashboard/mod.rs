//! The web dashboard: server-rendered pages over the same database the REST
//! API uses. Templates (askama) and assets are compiled into the binary;
//! every page but the live log works without JavaScript (forms post and
//! redirect). Handlers live by page; routes are declared in `router.rs`.
//!
//! Signing in with the admin token, the installation's password, a
//! user's own password or GitHub (`github_login`) opens a session (`auth::SESSION_COOKIE`, stored
//! hashed). Every form carries the session's CSRF token
//! (`auth::csrf_token_for`), checked in constant time; a form without it is
//! refused with 403.
//!
//! A user's session sees and does what the user's roles allow: every page
//! names the permission it needs in [`page_permission`] (what the API
//! operation it stands for declares), and the [`Session`] extractor checks
//! it with `auth::check_permission`, the one check the API uses too.

pub mod account;
pub mod builds;
pub mod deploys;
pub mod github_login;
pub mod invitations;
pub mod login;
pub mod oidc_login;
pub mod queue;
pub mod settings;
pub mod site_settings;
pub mod sites;
pub mod teams;

use crate::audit::AuditLog;
use crate::auth::{
    Auth, Permission, Principal, Resource, check_permission, csrf_token_for, hash_token, secrets_match,
    session_cookie,
};
use crate::db::{NewAuditEntry, now_millis};
use crate::error::AppError;
use crate::urls::Urls;
use askama::Template;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::net::SocketAddr;

/// A signed-in dashboard user, allowed the page asked for.
#[derive(Debug, Clone)]
pub struct Session {
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// Who signed in: the installation's admin, or a user.
    pub principal: Principal,
}

impl Session {
    /// Refuses a form whose CSRF token is missing or wrong.
    pub fn verify(&self, given: &str) -> Result<(), PageError> {
        if secrets_match(given, &self.csrf) {
            Ok(())
        } else {
            Err(PageError(AppError::new(
                StatusCode::FORBIDDEN,
                "this form was not sent by a page of this dashboard (its CSRF token is missing or wrong); \
                 reload the page and try again",
            )))
        }
    }

    /// Whether this is the installation's admin (every page and every site).
    pub fn is_installation(&self) -> bool {
        self.principal == Principal::Installation
    }
}

/// What a dashboard page (by method and route) needs: the permission of
/// the API operation it stands for. A page not named here is the
/// installation admin's alone, so a page added without thought is closed
/// to users rather than open.
pub fn page_permission(method: &Method, route: &str) -> Permission {
    let reading = method == Method::GET || method == Method::HEAD;
    match route {
        // Every signed-in person: their own account and signing out.
        "/logout" | "/account" => Permission::Public,
        "/account/sessions/{session}/revoke" => Permission::Public,
        // Accepting an invitation: the link is the credential; the
        // handlers check who may use it.
        "/invitations/{token}" | "/invitations/{token}/account" => Permission::Public,
        // The list shows only the teams of the person signed in.
        "/teams" if reading => Permission::Public,
        // A team's page: its members; its forms manage them.
        "/teams/{team}" if reading => Permission::TeamRead,
        _ if route.starts_with("/teams/{team}/") => Permission::TeamMembers,
        // The list shows only the sites of the user's teams.
        "/sites" if reading => Permission::SiteRead,
        "/sites/{site}" | "/sites/{site}/deploys/{deploy}" | "/builds/{id}" if reading => {
            Permission::SiteRead
        }
        "/sites/{site}/builds"
        | "/sites/{site}/clear-cache-and-rebuild"
        | "/builds/{id}/cancel"
        | "/builds/{id}/retry" => Permission::SiteBuild,
        "/sites/{site}/lock" | "/sites/{site}/unlock" | "/sites/{site}/deploys/{deploy}/publish" => {
            Permission::SiteDeploy
        }
        // The settings page and its forms: variables, hooks, domains.
        _ if route.starts_with("/sites/{site}/") => Permission::SiteAdmin,
        // New sites, the queue of every site, the installation's tokens.
        _ => Permission::InstallationAdmin,
    }
}

/// What a dashboard route names: a site, a build, or nothing one team owns.
fn page_resource<'a>(route: &str, params: &'a RawPathParams) -> Result<Resource<'a>, AppError> {
    if let Some((_, site)) = params.iter().find(|(name, _)| *name == "site") {
        return Ok(Resource::Site(site));
    }
    if let Some((_, team)) = params.iter().find(|(name, _)| *name == "team") {
        return Ok(Resource::Team(team));
    }
    if route.starts_with("/builds/{id}") {
        let id = params
            .iter()
            .find(|(name, _)| *name == "id")
            .and_then(|(_, id)| id.parse().ok())
            .ok_or_else(|| crate::error::not_found("a build id is a number"))?;
        return Ok(Resource::Build(id));
    }
    Ok(Resource::Unscoped)
}

impl<S: Send + Sync> FromRequestParts<S> for Session
where
    Auth: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_ref(state);
        let Some(token) = session_cookie(parts) else {
            return Err(Redirect::to("/login").into_response());
        };
        let principal = match auth.db.session_user(&hash_token(&token)).await {
            Ok(Some(None)) => Principal::Installation,
            Ok(Some(Some(user))) => Principal::Member { user },
            // Expired, signed out or revoked: refused at once.
            Ok(None) => return Err(Redirect::to("/login").into_response()),
            Err(error) => return Err(PageError::from(error).into_response()),
        };
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let permission = page_permission(&parts.method, &route);
        let allowed = async {
            let resource = page_resource(&route, &params)?;
            check_permission(&auth, Some(&principal), permission, resource).await
        };
        if let Err(refused) = allowed.await {
            return Err(PageError(refused).into_response());
        }
        Ok(Session {
            csrf: csrf_token_for(&token),
            principal,
        })
    }
}

/// The audit log's name for each form of the dashboard, the same as the
/// API operation doing the same (`publish_deploy`), so one filter finds
/// both.
fn action_of(pattern: &str) -> String {
    let action = match pattern {
        "/sites" => "create_site",
        "/sites/{site}/settings" => "update_build_settings",
        "/sites/{site}/settings/limits" => "update_build_settings",
        "/sites/{site}/settings/network" => "update_build_network",
        "/sites/{site}/settings/protection" => "update_site_protection",
        "/sites/{site}/settings/identity" => "update_site_identity",
        "/sites/{site}/settings/repository" => "update_site",
        "/sites/{site}/settings/https" => "update_site_https",
        "/sites/{site}/settings/paths" => "update_build_paths",
        "/sites/{site}/env" => "set_env_var",
        "/sites/{site}/env/{name}/delete" => "delete_env_var",
        "/sites/{site}/domains" => "add_site_domain",
        "/sites/{site}/domains/{hostname}/verify" => "verify_site_domain",
        "/sites/{site}/domains/{hostname}/remove" => "remove_site_domain",
        "/sites/{site}/build-hooks" => "create_build_hook",
        "/sites/{site}/build-hooks/{id}/revoke" => "revoke_build_hook",
        "/sites/{site}/schedules" => "create_build_schedule",
        "/sites/{site}/schedules/{id}/remove" => "delete_build_schedule",
        "/sites/{site}/notifications" => "create_notification_hook",
        "/sites/{site}/notifications/{id}/remove" => "delete_notification_hook",
        "/sites/{site}/builds" => "trigger_build",
        "/sites/{site}/clear-cache-and-rebuild" => "clear_build_cache",
        "/sites/{site}/lock" => "lock_site",
        "/sites/{site}/unlock" => "unlock_site",
        "/sites/{site}/deploys/{deploy}/publish" => "publish_deploy",
        "/builds/{id}/cancel" => "cancel_build",
        "/builds/{id}/retry" => "retry_build",
        "/settings/tokens" => "create_token",
        "/settings/tokens/{id}/revoke" => "revoke_token",
        "/teams/{team}/members/{login}/role" => "set_member_role",
        "/teams/{team}/members/{login}/remove" => "remove_member",
        "/teams/{team}/invitations" => "create_team_invitation",
        "/teams/{team}/invitations/{id}/revoke" => "revoke_team_invitation",
        other => return format!("POST {other}"),
    };
    action.to_owned()
}

/// A layer on the dashboard's routes: every form a signed-in session posts
/// that succeeds (a page or a redirect) is written to the audit log, as
/// the API's permission layer does for API calls; signing in and out are
/// not changes. The entry names the page's path, never a form's fields;
/// an invitation's pages (whose path is the invitation's secret) write
/// their own entries.
pub async fn audit_changes(
    State(audit): State<AuditLog>,
    matched: MatchedPath,
    params: RawPathParams,
    request: Request,
    next: Next,
) -> Response {
    let db = &audit.db;
    let pattern = matched.as_str();
    if request.method() != Method::POST
        || pattern == "/login"
        || pattern == "/logout"
        || pattern.starts_with("/invitations/")
    {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // Who acted: the session the form came with (the admin's, or a
    // user's); none, and the form is refused anyway.
    let actor = match session_cookie(&parts) {
        Some(token) => match db.session_user(&hash_token(&token)).await {
            Ok(Some(Some(user))) => Some(format!("user:{user}")),
            Ok(Some(None)) => Some("admin".to_owned()),
            _ => None,
        },
        None => None,
    };
    let target = parts.uri.path().to_owned();
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string());
    let site = params
        .iter()
        .find(|(name, _)| *name == "site")
        .map(|(_, value)| value.to_owned());
    let team = params
        .iter()
        .find(|(name, _)| *name == "team")
        .map(|(_, value)| value.to_owned());
    let build = pattern
        .starts_with("/builds/{id}")
        .then(|| params.iter().find(|(name, _)| *name == "id"))
        .flatten()
        .and_then(|(_, id)| id.parse::<i64>().ok());
    let answer = next.run(Request::from_parts(parts, body)).await;
    let Some(actor) = actor else {
        return answer;
    };
    if answer.status().is_client_error() || answer.status().is_server_error() {
        return answer;
    }
    let (site, team_id) = match (site, build) {
        (Some(site), _) => {
            let team = db.team_of_site(&site).await.ok().flatten();
            (Some(site), team)
        }
        (None, Some(build)) => (
            db.build(build).await.ok().flatten().map(|b| b.site),
            db.team_of_build(build).await.ok().flatten(),
        ),
        (None, None) => match team {
            Some(team) => (None, db.team_by_name(&team).await.ok().flatten().map(|t| t.id)),
            None => (None, None),
        },
    };
    let entry = NewAuditEntry {
        actor,
        action: action_of(pattern),
        site,
        team_id,
        target,
        ip,
        status: i64::from(answer.status().as_u16()),
    };
    audit.record(entry).await;
    answer
}

/// The body of a form that only carries its CSRF token (a button).
#[derive(Debug, Default, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

/// An error shown as a page: the same errors as the API's (`AppError`),
/// rendered for people.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(error: AppError) -> Self {
        PageError(error)
    }
}

impl From<anyhow::Error> for PageError {
    fn from(error: anyhow::Error) -> Self {
        PageError(error.into())
    }
}

#[derive(Template)]
#[template(path = "dashboard/error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    reason: String,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let page = ErrorPage {
            chrome: Chrome::anonymous(),
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error").to_owned(),
            message: self.0.message().to_owned(),
        };
        (status, render(&page)).into_response()
    }
}

pub type PageResult<T = Response> = Result<T, PageError>;

/// What every page's frame needs: whether to show the navigation, and the
/// CSRF token for the sign-out form.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub signed_in: bool,
    /// The installation's admin: the queue and settings are shown.
    pub installation: bool,
    pub csrf: String,
    /// The navigation entry to highlight.
    pub section: &'static str,
}

impl Chrome {
    pub fn new(session: &Session, section: &'static str) -> Self {
        Chrome {
            signed_in: true,
            installation: session.is_installation(),
            csrf: session.csrf.clone(),
            section,
        }
    }

    pub fn anonymous() -> Self {
        Chrome {
            signed_in: false,
            installation: false,
            csrf: String::new(),
            section: "",
        }
    }
}

pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering a dashboard page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error rendering the page",
            )
                .into_response()
        }
    }
}

/// After a form: back to a page, with `303 See Other` so reloading does
/// not post again.
pub fn see_other(location: impl AsRef<str>) -> Response {
    Redirect::to(location.as_ref()).into_response()
}

/// Whether the dashboard is reached over TLS (directly or behind a proxy
/// that says so), so cookies get `Secure`.
pub fn behind_tls(urls: &Urls, headers: &HeaderMap) -> bool {
    urls.base_url.starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// `/` shows the sites.
pub async fn home() -> Response {
    see_other("/sites")
}

const STYLESHEET: &str = include_str!("../../assets/dashboard.css");
const LOG_SCRIPT: &str = include_str!("../../assets/build-log.js");

pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

pub async fn log_script() -> Response {
    asset("text/javascript; charset=utf-8", LOG_SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// "12 s ago", "5 min ago", "3 h ago", "2 d ago".
pub fn ago(at_millis: i64) -> String {
    let seconds = (now_millis() - at_millis).max(0) / 1000;
    match seconds {
        0..=59 => format!("{seconds} s ago"),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=86_399 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

/// A duration for people, written as the runner writes it in build logs:
/// "850ms", "12.34s", "4m05s".
pub fn duration(millis: i64) -> String {
    jamstack_proto::format_duration(std::time::Duration::from_millis(millis.max(0) as u64))
}

pub fn short_sha(sha: &str) -> String {
    if sha.is_empty() {
        "—".to_owned()
    } else {
        sha.chars().take(7).collect()
    }
}

/// The first line of a commit message.
pub fn headline(message: Option<&str>) -> String {
    message.and_then(|m| m.lines().next()).unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(12_340), "12.34s");
        assert_eq!(duration(245_000), "4m05s");
        assert_eq!(duration(-5), "0ms");
        assert_eq!(short_sha("0123456789abcdef"), "0123456");
        assert_eq!(short_sha(""), "—");
        assert_eq!(headline(Some("Fix the nav\n\nLong body")), "Fix the nav");
    }
}
