//! Dashboard settings: API tokens, made (shown once) and revoked.

use super::{Chrome, CsrfOnly, PageResult, Session, ago, render, see_other};
use crate::auth::{hash_token, new_token};
use crate::db::TokenKind;
use crate::error::{bad_request, not_found};
use crate::state::AppState;
use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use serde::Deserialize;

pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub made: String,
}

#[derive(Template)]
#[template(path = "dashboard/settings.html")]
struct SettingsPage {
    chrome: Chrome,
    tokens: Vec<TokenRow>,
    /// A token just made: shown on this page only, never again.
    new_token: Option<(String, String)>,
}

async fn page(state: &AppState, session: &Session, new_token: Option<(String, String)>) -> PageResult {
    let tokens = state
        .db
        .live_tokens(TokenKind::Api)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            made: ago(t.created_at),
        })
        .collect();
    Ok(render(&SettingsPage {
        chrome: Chrome::new(session, "settings"),
        tokens,
        new_token,
    }))
}

pub async fn show(State(state): State<AppState>, session: Session) -> PageResult {
    page(&state, &session, None).await
}

#[derive(Debug, Default, Deserialize)]
pub struct NewTokenForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
}

pub async fn create_token(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<NewTokenForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let name = form.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(bad_request(
            "give the token a name of 1 to 100 characters that says where it is used (e.g. `ci`)",
        )
        .into());
    }
    let token = new_token(TokenKind::Api);
    state
        .db
        .insert_token(TokenKind::Api, name, &hash_token(&token))
        .await?;
    tracing::info!(name, "API token made from the dashboard");
    // Answered directly, not redirected: the token is shown this once.
    page(&state, &session, Some((name.to_owned(), token))).await
}

pub async fn revoke_token(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    if !state.db.revoke_token(TokenKind::Api, id).await? {
        return Err(not_found(format!("there is no live API token {id}")).into());
    }
    tracing::info!(id, "API token revoked from the dashboard");
    Ok(see_other("/settings"))
}
