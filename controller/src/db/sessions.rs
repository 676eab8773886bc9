//! Dashboard sessions, stored as hashes of their cookies.

use super::{Database, now_millis};

impl Database {
    /// Records a session (by the hash of its cookie) that ends at `expires_at`;
    /// expired sessions are removed on the way.
    pub async fn insert_session(&self, token_hash: &str, expires_at: i64) -> anyhow::Result<()> {
        let now = now_millis();
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(self.writer())
            .await?;
        sqlx::query("INSERT INTO sessions (token_hash, created_at, expires_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(now)
            .bind(expires_at)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Whether a session with this cookie hash, opened with the admin token
    /// or the installation's dashboard password, is live now. A user's
    /// session (see `teams.rs`) is not one: it opens only what the user's
    /// roles allow.
    pub async fn session_is_live(&self, token_hash: &str) -> anyhow::Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM sessions WHERE token_hash = $1 AND expires_at > $2 AND user_id IS NULL",
        )
        .bind(token_hash)
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    pub async fn delete_session(&self, token_hash: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
