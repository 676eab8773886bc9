//! Key-value settings and API/runner tokens (stored as hashes only).

use super::{Database, now_millis};
use sqlx::Row;

/// Who a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Admin,
    /// A runner's own token (kept in the runners table).
    Runner,
    /// Exchanged by a new runner for its own token.
    Registration,
    /// Made and revoked from the dashboard's settings page; as good as the
    /// admin token on the REST API.
    Api,
}

/// A live API token, as the settings page lists it (never the token).
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
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
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
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

    pub async fn count_tokens(&self, kind: TokenKind) -> anyhow::Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM tokens WHERE kind = $1 AND revoked_at IS NULL")
            .bind(kind.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get::<i64, _>(0))
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
        let row =
            sqlx::query("SELECT name FROM tokens WHERE kind = $1 AND token_hash = $2 AND revoked_at IS NULL")
                .bind(kind.as_str())
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    /// The live tokens of `kind`, newest first.
    pub async fn live_tokens(&self, kind: TokenKind) -> anyhow::Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT id, name, created_at FROM tokens WHERE kind = $1 AND revoked_at IS NULL ORDER BY id DESC",
        )
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ApiToken {
                id: r.get(0),
                name: r.get(1),
                created_at: r.get(2),
            })
            .collect())
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
