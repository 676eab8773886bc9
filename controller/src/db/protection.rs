//! Who may see a site: per kind of hostname, public or behind the site's
//! password. An absent row means "everything public".

use super::{Database, now_millis};

/// What a kind of hostname asks of its visitors.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone may see it.
    #[default]
    Public,
    /// Only who knows the site's password (or holds a share link).
    Password,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Password => "password",
        }
    }

    /// An unknown word (written by a newer controller) protects rather than
    /// opens.
    fn parse(word: &str) -> Self {
        match word {
            "public" => Access::Public,
            _ => Access::Password,
        }
    }
}

/// The access of each kind of hostname a site has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextAccess {
    pub production: Access,
    pub previews: Access,
    pub branch_deploys: Access,
    pub permalinks: Access,
}

impl ContextAccess {
    pub fn any_protected(&self) -> bool {
        [
            self.production,
            self.previews,
            self.branch_deploys,
            self.permalinks,
        ]
        .contains(&Access::Password)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteProtection {
    pub access: ContextAccess,
    /// The argon2 hash (PHC string) of the site's password, if one is set.
    pub password_hash: Option<String>,
    /// Moved on by every new password: access signed for an older
    /// generation no longer opens the site.
    pub password_generation: i64,
}

#[derive(sqlx::FromRow)]
struct ProtectionRow {
    production: String,
    previews: String,
    branch_deploys: String,
    permalinks: String,
    password_hash: Option<String>,
    password_generation: i64,
}

impl Database {
    pub async fn site_protection(&self, site_id: i64) -> anyhow::Result<SiteProtection> {
        let row: Option<ProtectionRow> = sqlx::query_as(
            "SELECT production, previews, branch_deploys, permalinks, password_hash, password_generation \
             FROM site_protection WHERE site_id = $1",
        )
        .bind(site_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map_or_else(SiteProtection::default, |row| SiteProtection {
            access: ContextAccess {
                production: Access::parse(&row.production),
                previews: Access::parse(&row.previews),
                branch_deploys: Access::parse(&row.branch_deploys),
                permalinks: Access::parse(&row.permalinks),
            },
            password_hash: row.password_hash,
            password_generation: row.password_generation,
        }))
    }

    /// Replaces the access of each kind of hostname; with `new_password_hash`,
    /// also the password, moving its generation on (which signs everyone out).
    pub async fn set_site_protection(
        &self,
        site_id: i64,
        access: &ContextAccess,
        new_password_hash: Option<&str>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO site_protection \
             (site_id, production, previews, branch_deploys, permalinks, password_hash, password_generation, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 IS NULL THEN 0 ELSE 1 END, $7) \
             ON CONFLICT (site_id) DO UPDATE SET \
             production = $2, previews = $3, branch_deploys = $4, permalinks = $5, \
             password_hash = COALESCE($6, site_protection.password_hash), \
             password_generation = site_protection.password_generation + CASE WHEN $6 IS NULL THEN 0 ELSE 1 END, \
             updated_at = $7",
        )
        .bind(site_id)
        .bind(access.production.as_str())
        .bind(access.previews.as_str())
        .bind(access.branch_deploys.as_str())
        .bind(access.permalinks.as_str())
        .bind(new_password_hash)
        .bind(now_millis())
        .execute(self.writer())
        .await?;
        Ok(())
    }
}
