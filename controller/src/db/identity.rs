//! The key a site's `Role` rules verify visitors' `nf_jwt` tokens with.
//! An absent row means "no key": a deploy with `Role` rules is refused.

use super::{Database, now_millis};

/// How a site verifies its visitors' tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityKey {
    /// HS256 with a shared secret, stored sealed.
    SealedSecret(String),
    /// RS256 or ES256 with this public key (PEM).
    PublicKey(String),
    /// The keys at this URL (a JSON Web Key Set).
    JwksUrl(String),
}

impl IdentityKey {
    fn kind(&self) -> &'static str {
        match self {
            IdentityKey::SealedSecret(_) => "hs256",
            IdentityKey::PublicKey(_) => "public_key",
            IdentityKey::JwksUrl(_) => "jwks_url",
        }
    }

    fn value(&self) -> &str {
        match self {
            IdentityKey::SealedSecret(value)
            | IdentityKey::PublicKey(value)
            | IdentityKey::JwksUrl(value) => value,
        }
    }
}

impl Database {
    /// The site's key; `None` when it has none, or one of a kind this
    /// controller does not know (written by a newer one).
    pub async fn site_identity(&self, site_id: i64) -> anyhow::Result<Option<IdentityKey>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT kind, value FROM site_identity WHERE site_id = $1")
                .bind(site_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(kind, value)| match kind.as_str() {
            "hs256" => Some(IdentityKey::SealedSecret(value)),
            "public_key" => Some(IdentityKey::PublicKey(value)),
            "jwks_url" => Some(IdentityKey::JwksUrl(value)),
            _ => None,
        }))
    }

    /// Sets (adds or replaces) the site's key.
    pub async fn set_site_identity(&self, site_id: i64, key: &IdentityKey) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO site_identity (site_id, kind, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (site_id) DO UPDATE SET kind = $2, value = $3, updated_at = $4",
        )
        .bind(site_id)
        .bind(key.kind())
        .bind(key.value())
        .bind(now_millis())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Removes the site's key; false when it had none.
    pub async fn delete_site_identity(&self, site_id: i64) -> anyhow::Result<bool> {
        let result = sqlx::query("DELETE FROM site_identity WHERE site_id = $1")
            .bind(site_id)
            .execute(self.writer())
            .await?;
        Ok(result.rows_affected() == 1)
    }
}
