//! API tokens: made (shown once), listed and revoked with the `admin`
//! scope. Only a token's SHA-256 is kept.

use super::pagination::PageParams;
use super::pagination::{Paged, Pagination};
use crate::auth::{Admin, Scope, hash_token, new_token, parse_stored_scopes, store_scopes};
use crate::db::Database;
use crate::db::{ApiToken, TokenKind};
use crate::error::{AppResult, bad_request, not_found};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jamstack_proto::ErrorBody;
use serde::{Deserialize, Serialize};

/// A token as listed: never the token itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: i64,
    /// When it was last used (to the minute); `null` if never.
    pub last_used_at: Option<i64>,
}

fn token_view(token: ApiToken) -> TokenView {
    TokenView {
        scopes: parse_stored_scopes(&token.scopes),
        id: token.id,
        name: token.name,
        created_at: token.created_at,
        last_used_at: token.last_used_at,
    }
}

/// The live API tokens, newest first, a page at a time.
#[utoipa::path(
    get,
    operation_id = "list_tokens",
    path = "/api/v1/tokens",
    tag = "admin",
    params(PageParams),
    responses(
        (status = 200, description = "One page of the live API tokens, newest first", body = Vec<TokenView>, headers(("link" = String, description = "`<…?page=N+1&per_page=M>; rel=\"next\"` when another page follows"))),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn list(State(db): State<Database>, _: Admin, page: Pagination) -> AppResult<Paged<TokenView>> {
    let tokens = db
        .live_tokens_page(TokenKind::Api, page.fetch_limit(), page.offset())
        .await?;
    Ok(page.answer(tokens).map(token_view))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Where the token is used, e.g. `ci`.
    pub name: String,
    /// What it may do: `read`, `builds`, `deploys`, `sites`, `admin`.
    pub scopes: Vec<String>,
}

/// A token just made: the only time it is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub token: String,
}

/// Checks a new token's name and scopes; the scopes, parsed.
pub fn validate_new_token(name: &str, scopes: &[String]) -> Result<Vec<Scope>, String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(
            "give the token a name of 1 to 100 characters that says where it is used (e.g. `ci`)".into(),
        );
    }
    if scopes.is_empty() {
        return Err("scopes is empty; give at least one of read, builds, deploys, sites, admin".into());
    }
    scopes
        .iter()
        .map(|s| {
            Scope::parse(s).ok_or_else(|| {
                format!("`{s}` is not a scope; the scopes are read, builds, deploys, sites and admin")
            })
        })
        .collect()
}

/// Makes an API token with the scopes asked for and shows it once.
#[utoipa::path(
    post,
    operation_id = "create_token",
    path = "/api/v1/tokens",
    tag = "admin",
    request_body = NewToken,
    responses(
        (status = 201, description = "The token, shown this once", body = CreatedToken),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn create(
    State(db): State<Database>,
    _: Admin,
    Json(body): Json<NewToken>,
) -> AppResult<(StatusCode, Json<CreatedToken>)> {
    let scopes = validate_new_token(&body.name, &body.scopes).map_err(bad_request)?;
    let created = make_token(&db, body.name.trim(), &scopes).await?;
    tracing::info!(name = %created.name, scopes = %store_scopes(&scopes), "API token made through the API");
    Ok((StatusCode::CREATED, Json(created)))
}

/// Makes and stores (hashed) an API token; the dashboard's settings page
/// makes them here too.
pub async fn make_token(db: &Database, name: &str, scopes: &[Scope]) -> anyhow::Result<CreatedToken> {
    let token = new_token(TokenKind::Api);
    let stored = store_scopes(scopes);
    let id = db.insert_api_token(name, &stored, &hash_token(&token)).await?;
    Ok(CreatedToken {
        id,
        name: name.to_owned(),
        scopes: parse_stored_scopes(&stored),
        token,
    })
}

/// Revokes an API token: its next request is answered 401.
#[utoipa::path(
    delete,
    operation_id = "revoke_token",
    path = "/api/v1/tokens/{id}",
    tag = "admin",
    params(("id" = i64, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["admin"])),
    extensions(("x-permission" = json!("installation.admin")))
)]
pub async fn revoke(State(db): State<Database>, _: Admin, Path(id): Path<i64>) -> AppResult<StatusCode> {
    if !db.revoke_token(TokenKind::Api, id).await? {
        return Err(not_found(format!(
            "there is no live API token {id}; list them with GET /api/v1/tokens"
        )));
    }
    tracing::info!(id, "API token revoked through the API");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_needs_a_name_and_known_scopes() {
        let scopes = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            validate_new_token("ci", &scopes(&["read", "deploys"])).unwrap(),
            [Scope::Read, Scope::Deploys]
        );
        assert!(
            validate_new_token(" ", &scopes(&["read"]))
                .unwrap_err()
                .contains("name")
        );
        assert!(
            validate_new_token("ci", &[])
                .unwrap_err()
                .contains("scopes is empty")
        );
        assert!(
            validate_new_token("ci", &scopes(&["write"]))
                .unwrap_err()
                .contains("`write` is not a scope")
        );
    }
}
