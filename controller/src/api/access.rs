//! The permission layer of `/api/v1`: every request is checked against the
//! permission its operation declares (`x-permission` in its
//! `#[utoipa::path]`, so the OpenAPI document shows it) before its handler
//! runs. The declarations are read from the same document the router is
//! built from, so what the document says is what is enforced; an operation
//! that declares nothing is refused with 500 and fails
//! `every_operation_declares_a_known_permission`. Every change it lets
//! through and that succeeds is written to the audit log.

use crate::audit::AuditLog;
use crate::auth::permissions::PERMISSION_EXTENSION;
use crate::auth::{Auth, Permission, Principal, Resource, check_permission, find_principal};
use crate::db::NewAuditEntry;
use crate::error::AppError;
use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

/// Every operation's declared permission, by method and path pattern;
/// `Err` names an operation whose declaration is missing or unknown.
pub fn declarations() -> &'static HashMap<(Method, String), Result<Permission, String>> {
    static DECLARED: OnceLock<HashMap<(Method, String), Result<Permission, String>>> = OnceLock::new();
    DECLARED.get_or_init(|| {
        let mut declared = HashMap::new();
        for (path, item) in &super::openapi::document().paths.paths {
            let operations = [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
                (Method::HEAD, &item.head),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let name = operation
                    .extensions
                    .as_ref()
                    .and_then(|e| e.get(PERMISSION_EXTENSION));
                let permission = match name.and_then(|v| v.as_str()) {
                    Some(name) => Permission::parse(name)
                        .ok_or_else(|| format!("{method} {path} declares the unknown permission `{name}`")),
                    None => Err(format!(
                        "{method} {path} declares no permission: add \
                         `extensions((\"x-permission\" = json!(\"site.read\")))` (or the one it needs) \
                         to its #[utoipa::path]"
                    )),
                };
                declared.insert((method, path.clone()), permission);
            }
        }
        declared
    })
}

/// The declared permission of a request's operation.
fn declared(method: &Method, path: &str) -> Result<Permission, String> {
    // axum answers HEAD with the GET route.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    match declarations().get(&(method.clone(), path.to_owned())) {
        Some(declared) => declared.clone(),
        None => Err(format!(
            "{method} {path} is served but not in the OpenAPI document; register it with routes!"
        )),
    }
}

/// What the path names: a site (`{site}`), a team (`{team}`), a build
/// (`/builds/{id}`), or nothing one team owns.
fn resource<'a>(pattern: &str, params: &'a HashMap<String, String>) -> Result<Resource<'a>, AppError> {
    if let Some(site) = params.get("site") {
        return Ok(Resource::Site(site));
    }
    if let Some(team) = params.get("team") {
        return Ok(Resource::Team(team));
    }
    if pattern.starts_with("/api/v1/builds/{id}") {
        let id = params.get("id").and_then(|id| id.parse().ok()).ok_or_else(|| {
            crate::error::bad_request("a build id is a number, as GET /api/v1/sites/<site>/builds lists them")
        })?;
        return Ok(Resource::Build(id));
    }
    Ok(Resource::Unscoped)
}

/// The layer: finds who asks, checks the operation's permission on the
/// resource its path names, and hands the handler the principal.
pub async fn require_declared_permission(
    State(auth): State<Auth>,
    State(audit): State<AuditLog>,
    matched: MatchedPath,
    params: RawPathParams,
    mut request: Request,
    next: Next,
) -> Response {
    let permission = match declared(request.method(), matched.as_str()) {
        Ok(permission) => permission,
        Err(missing) => {
            tracing::error!(%missing, "an operation without a permission was refused");
            return AppError::new(StatusCode::INTERNAL_SERVER_ERROR, missing).into_response();
        }
    };
    let params: HashMap<String, String> = params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    // The body is not `Sync`: what the check reads is taken out first, so
    // no reference to the request lives across an await.
    let method = request.method().clone();
    let headers = request.headers().clone();
    let checked = async {
        let resource = resource(matched.as_str(), &params)?;
        let principal = find_principal(&auth, &method, &headers).await?;
        check_permission(&auth, principal.as_ref(), permission, resource).await?;
        Ok::<_, AppError>(principal)
    };
    let principal = match checked.await {
        Ok(principal) => principal,
        Err(refused) => return refused.into_response(),
    };
    let changes = !(method == Method::GET || method == Method::HEAD);
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string());
    let target = request.uri().path().to_owned();
    if let Some(principal) = principal.clone() {
        request.extensions_mut().insert(principal);
    }
    let answer = next.run(request).await;
    if changes && answer.status().is_success() {
        // Every change made through the API, whoever made it: written once
        // the change is, never with a body (a variable's value, a secret).
        let site = params.get("site").cloned();
        let team = match (&site, params.get("team")) {
            (Some(site), _) => auth.db.team_of_site(site).await.ok().flatten(),
            (None, Some(team)) => auth.db.team_by_name(team).await.ok().flatten().map(|t| t.id),
            (None, None) => None,
        };
        let entry = NewAuditEntry {
            actor: actor(principal.as_ref()),
            action: operation_id(&method, matched.as_str()),
            site,
            team_id: team,
            target,
            ip,
            status: i64::from(answer.status().as_u16()),
        };
        audit.record(entry).await;
    }
    answer
}

/// How the audit log names who acted.
pub fn actor(principal: Option<&Principal>) -> String {
    match principal {
        None => "anonymous".to_owned(),
        Some(Principal::Installation) => "admin".to_owned(),
        Some(Principal::Member { user }) => format!("user:{user}"),
        Some(Principal::Token { id, .. }) => format!("token:{id}"),
    }
}

/// The operation's id in the document (`lock_site`), or its method and path.
fn operation_id(method: &Method, pattern: &str) -> String {
    let operation = super::openapi::document()
        .paths
        .paths
        .get(pattern)
        .and_then(|item| match *method {
            Method::PUT => item.put.as_ref(),
            Method::POST => item.post.as_ref(),
            Method::DELETE => item.delete.as_ref(),
            Method::PATCH => item.patch.as_ref(),
            _ => item.get.as_ref(),
        });
    operation
        .and_then(|o| o.operation_id.clone())
        .unwrap_or_else(|| format!("{method} {pattern}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_declares_a_known_permission() {
        let missing: Vec<&String> = declarations().values().filter_map(|d| d.as_ref().err()).collect();
        assert!(missing.is_empty(), "{missing:#?}");
        assert!(declarations().len() > 40, "the document lists every operation");
    }

    #[test]
    fn what_an_operation_declares_agrees_with_the_token_scope_it_documents() {
        // The `security` scope each operation documents is what a token
        // needs; the permission's scope must be the same one.
        for (path, item) in &super::super::openapi::document().paths.paths {
            for (method, operation) in [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
            ] {
                let Some(operation) = operation else { continue };
                let permission = declared(&method, path).unwrap();
                let documented: Vec<String> = operation
                    .security
                    .iter()
                    .flatten()
                    .filter_map(|requirement| {
                        serde_json::to_value(requirement)
                            .ok()?
                            .get("token")?
                            .as_array()?
                            .first()?
                            .as_str()
                            .map(str::to_owned)
                    })
                    .collect();
                let expected: Vec<String> = permission
                    .scope()
                    .map(|s| s.as_str().to_owned())
                    .into_iter()
                    .collect();
                assert_eq!(documented, expected, "{method} {path} declares {permission}");
            }
        }
    }
}
