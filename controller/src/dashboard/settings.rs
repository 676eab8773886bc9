//! Dashboard settings: API tokens, made (shown once) and revoked.

use super::{Chrome, CsrfOnly, PageResult, Session, ago, render, see_other};
use crate::api::tokens::{make_token, validate_new_token};
use crate::auth::{Scope, parse_stored_scopes, store_scopes};
use crate::db::Database;
use crate::db::TokenKind;
use crate::error::{bad_request, not_found};
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use serde::Deserialize;

pub struct TokenRow {
    pub id: i64,
    pub name: String,
    /// Its scopes, e.g. `read deploys`.
    pub scopes: String,
    pub made: String,
    pub used: String,
}

#[derive(Template)]
#[template(path = "dashboard/settings.html")]
struct SettingsPage {
    chrome: Chrome,
    tokens: Vec<TokenRow>,
    /// A token just made: shown on this page only, never again.
    new_token: Option<(String, String)>,
}

async fn page(db: &Database, session: &Session, new_token: Option<(String, String)>) -> PageResult {
    let tokens = db
        .live_tokens(TokenKind::Api)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            scopes: store_scopes(&parse_stored_scopes(&t.scopes)),
            made: ago(t.created_at),
            used: t.last_used_at.map_or_else(|| "never".to_owned(), ago),
        })
        .collect();
    Ok(render(&SettingsPage {
        chrome: Chrome::new(session, "settings"),
        tokens,
        new_token,
    }))
}

pub async fn show(State(db): State<Database>, session: Session) -> PageResult {
    page(&db, &session, None).await
}

/// The form's checkboxes send `scope_<name>=on` for each scope ticked.
#[derive(Debug, Default, Deserialize)]
pub struct NewTokenForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    pub scope_read: Option<String>,
    pub scope_builds: Option<String>,
    pub scope_deploys: Option<String>,
    pub scope_sites: Option<String>,
    pub scope_admin: Option<String>,
}

impl NewTokenForm {
    fn scopes(&self) -> Vec<String> {
        [
            (&self.scope_read, Scope::Read),
            (&self.scope_builds, Scope::Builds),
            (&self.scope_deploys, Scope::Deploys),
            (&self.scope_sites, Scope::Sites),
            (&self.scope_admin, Scope::Admin),
        ]
        .into_iter()
        .filter(|(ticked, _)| ticked.is_some())
        .map(|(_, scope)| scope.as_str().to_owned())
        .collect()
    }
}

pub async fn create_token(
    State(db): State<Database>,
    session: Session,
    Form(form): Form<NewTokenForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let scopes = validate_new_token(&form.name, &form.scopes()).map_err(bad_request)?;
    let made = make_token(&db, form.name.trim(), &scopes).await?;
    tracing::info!(name = %made.name, scopes = %store_scopes(&scopes), "API token made from the dashboard");
    // Answered directly, not redirected: the token is shown this once.
    page(&db, &session, Some((made.name, made.token))).await
}

pub async fn revoke_token(
    State(db): State<Database>,
    session: Session,
    Path(id): Path<i64>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    if !db.revoke_token(TokenKind::Api, id).await? {
        return Err(not_found(format!("there is no live API token {id}")).into());
    }
    tracing::info!(id, "API token revoked from the dashboard");
    Ok(see_other("/settings"))
}
