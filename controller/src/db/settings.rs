//! Key-value settings and API/runner tokens (stored as hashes only).

use super::{Database, now_millis};

/// Who a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Admin,
    /// A runner's own token (kept in the runners table).
    Runner,
    /// Exchanged by a new runner for its own token.
    Registration,
    /// Made and revoked from the dashboard's settings page or the REST API;
    /// allowed what its scopes say.
    Api,
}

/// A live API token, as the settings page and the API list it (never the
/// token).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    /// Space-separated scope names, as stored.
    pub scopes: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// The live admin or API token a bearer presented.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub id: i64,
    pub kind: TokenKind,
    /// Space-separated scope names (the admin token's are ignored: it may do
    /// everything).
    pub scopes: String,
    pub last_used_at: Option<i64>,
    /// The team an API token belongs to (`None` for the admin token).
    pub team_id: Option<i64>,
    /// The member an API token belongs to (`None` for a team's own token).
    pub user_id: Option<i64>,
}

/// A row of `tokens` as [`Database::bearer_token`] reads it.
#[derive(sqlx::FromRow)]
struct GrantRow {
    id: i64,
    kind: String,
    scopes: String,
    last_used_at: Option<i64>,
    team_id: Option<i64>,
    user_id: Option<i64>,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin",
            TokenKind::Runner => "runner",
            TokenKind::Registration => "registration",
            TokenKind::Api => "api",
        }
    }
}

impl Database {
    pub async fn setting(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Stores `value` under `key` unless the key is already set; returns the
    /// value in force, so two starts racing agree on one value.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> anyhow::Result<String> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(self.writer())
            .await?;
        Ok(self.setting(key).await?.unwrap_or_else(|| value.to_owned()))
    }

    /// Replaces the value of `key` with `new` if it is still `old`; false
    /// when another writer changed it first.
    pub async fn replace_setting(&self, key: &str, old: &str, new: &str) -> anyhow::Result<bool> {
        let done = sqlx::query("UPDATE settings SET value = $1 WHERE key = $2 AND value = $3")
            .bind(new)
            .bind(key)
            .bind(old)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn count_tokens(&self, kind: TokenKind) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE kind = $1 AND revoked_at IS NULL")
                .bind(kind.as_str())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn insert_token(&self, kind: TokenKind, name: &str, token_hash: &str) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO tokens (kind, name, token_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(kind.as_str())
            .bind(name)
            .bind(token_hash)
            .bind(now_millis())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Stores a new API token (its hash) with its scopes, as a token of the
    /// first team (the one made with the admin token); returns its id.
    pub async fn insert_api_token(&self, name: &str, scopes: &str, token_hash: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO tokens (kind, name, token_hash, scopes, created_at, team_id) \
             VALUES ($1, $2, $3, $4, $5, (SELECT MIN(id) FROM teams)) RETURNING id",
        )
        .bind(TokenKind::Api.as_str())
        .bind(name)
        .bind(token_hash)
        .bind(scopes)
        .bind(now_millis())
        .fetch_one(&self.pool)
        .await?)
    }

    /// The live admin or API token with this hash, if any.
    pub async fn bearer_token(&self, token_hash: &str) -> anyhow::Result<Option<TokenGrant>> {
        let row: Option<GrantRow> = sqlx::query_as(
            "SELECT id, kind, scopes, last_used_at, team_id, user_id FROM tokens \
             WHERE token_hash = $1 AND kind IN ('admin', 'api') AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| TokenGrant {
            id: r.id,
            kind: if r.kind == "admin" {
                TokenKind::Admin
            } else {
                TokenKind::Api
            },
            scopes: r.scopes,
            last_used_at: r.last_used_at,
            team_id: r.team_id,
            user_id: r.user_id,
        }))
    }

    /// Notes that a token was just used.
    pub async fn touch_token(&self, id: i64) -> anyhow::Result<()> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now_millis())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revokes every live token of `kind` named `name`.
    pub async fn revoke_tokens_named(&self, kind: TokenKind, name: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE kind = $2 AND name = $3 AND revoked_at IS NULL")
            .bind(now_millis())
            .bind(kind.as_str())
            .bind(name)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// The name of the live token of `kind` with this hash, if any.
    pub async fn token_name(&self, kind: TokenKind, token_hash: &str) -> anyhow::Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM tokens WHERE kind = $1 AND token_hash = $2 AND revoked_at IS NULL",
        )
        .bind(kind.as_str())
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The live tokens of `kind`, newest first.
    pub async fn live_tokens(&self, kind: TokenKind) -> anyhow::Result<Vec<ApiToken>> {
        self.live_tokens_page(kind, i64::MAX, 0).await
    }

    /// One page of the live tokens of `kind`, newest first.
    pub async fn live_tokens_page(
        &self,
        kind: TokenKind,
        limit: i64,
        offset: i64,
    ) -> anyhow::Result<Vec<ApiToken>> {
        Ok(sqlx::query_as(
            "SELECT id, name, scopes, created_at, last_used_at FROM tokens \
             WHERE kind = $1 AND revoked_at IS NULL ORDER BY id DESC LIMIT $2 OFFSET $3",
        )
        .bind(kind.as_str())
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes one token of `kind` by id; false when there is no such live token.
    pub async fn revoke_token(&self, kind: TokenKind, id: i64) -> anyhow::Result<bool> {
        let result = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE kind = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now_millis())
        .bind(kind.as_str())
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(result.rows_affected() == 1)
    }
}
