//! Custom domains: hostnames outside the platform's domain that serve a
//! site's production deploy. A hostname belongs to one site in the whole
//! installation (the column is unique); the site has exactly one primary
//! once it has any domain. What a hostname may be (normalised, not an
//! address, not the platform's own) is decided by the domains service before
//! anything is stored here.

use super::{Database, now_millis};

/// How a domain's control was shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerifiedBy {
    /// The TXT record `_jamstack-challenge.<hostname>` held the token.
    Dns,
    /// An admin added it, which is proof enough.
    Admin,
}

impl VerifiedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifiedBy::Dns => "dns",
            VerifiedBy::Admin => "admin",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        match word {
            "dns" => Some(VerifiedBy::Dns),
            "admin" => Some(VerifiedBy::Admin),
            _ => None,
        }
    }
}

/// A custom domain of a site, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub id: i64,
    pub site_id: i64,
    /// Normalised: lowercase ASCII (IDNA applied), no trailing dot.
    pub hostname: String,
    pub is_primary: bool,
    /// What the TXT record `_jamstack-challenge.<hostname>` must hold.
    pub verification_token: String,
    pub verified_at: Option<i64>,
    pub verified_by: Option<VerifiedBy>,
    pub last_checked_at: Option<i64>,
    /// Why the last check failed, in words for the user.
    pub last_error: Option<String>,
    /// Checks made so far without success.
    pub check_attempts: i64,
    /// When the background check looks again; `None` once verified, or
    /// once it gave up.
    pub next_check_at: Option<i64>,
    pub created_at: i64,
}

impl Domain {
    pub fn is_verified(&self) -> bool {
        self.verified_at.is_some()
    }
}

#[derive(sqlx::FromRow)]
struct DomainRow {
    id: i64,
    site_id: i64,
    hostname: String,
    is_primary: i64,
    verification_token: String,
    verified_at: Option<i64>,
    verified_by: Option<String>,
    last_checked_at: Option<i64>,
    last_error: Option<String>,
    check_attempts: i64,
    next_check_at: Option<i64>,
    created_at: i64,
}

impl From<DomainRow> for Domain {
    fn from(row: DomainRow) -> Self {
        Domain {
            id: row.id,
            site_id: row.site_id,
            hostname: row.hostname,
            is_primary: row.is_primary != 0,
            verification_token: row.verification_token,
            // A verification word this controller does not know (a newer
            // one wrote it) still counts as verified: it was checked there.
            verified_by: row
                .verified_by
                .as_deref()
                .map(|word| VerifiedBy::parse(word).unwrap_or(VerifiedBy::Dns)),
            verified_at: row.verified_at,
            last_checked_at: row.last_checked_at,
            last_error: row.last_error,
            check_attempts: row.check_attempts,
            next_check_at: row.next_check_at,
            created_at: row.created_at,
        }
    }
}

const DOMAIN_COLUMNS: &str = "id, site_id, hostname, is_primary, verification_token, verified_at, \
     verified_by, last_checked_at, last_error, check_attempts, next_check_at, created_at";

/// A domain to add.
#[derive(Debug, Clone)]
pub struct NewDomain<'a> {
    pub site_id: i64,
    /// Already normalised and validated.
    pub hostname: &'a str,
    pub verification_token: &'a str,
    /// Make it the site's primary (the first domain of a site always is).
    pub primary: bool,
    /// `Some` when the adder's word is proof enough (an admin).
    pub verified_by: Option<VerifiedBy>,
    /// When the background check first looks, for a domain not verified.
    pub first_check_at: i64,
}

/// Why a domain was not added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddRefused {
    /// This site has it already.
    AlreadyThisSites(Box<Domain>),
    /// Another site holds it (verified or not).
    HeldByAnotherSite,
}

/// A verified hostname and the site it serves: what the edge serves and
/// what certificates are issued for. Unverified hostnames are never here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedHostname {
    pub hostname: String,
    pub site_id: i64,
    pub site_name: String,
    /// The site's primary; the others redirect to it (when it is verified).
    pub primary: bool,
}

#[derive(sqlx::FromRow)]
struct VerifiedRow {
    hostname: String,
    site_id: i64,
    site_name: String,
    is_primary: i64,
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    hostname: String,
    site_id: i64,
    site_name: String,
    is_primary: i64,
    verified: i64,
}

impl Database {
    /// Adds a domain to a site. The first domain of a site is its primary;
    /// with `primary`, the new one takes over from the current primary.
    pub async fn insert_domain(&self, new: &NewDomain<'_>) -> anyhow::Result<Result<Domain, AddRefused>> {
        let mut tx = self.write_tx().await?;
        let holder: Option<DomainRow> = sqlx::query_as(&format!(
            "SELECT {DOMAIN_COLUMNS} FROM domains WHERE hostname = $1"
        ))
        .bind(new.hostname)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(holder) = holder {
            return Ok(Err(if holder.site_id == new.site_id {
                AddRefused::AlreadyThisSites(Box::new(holder.into()))
            } else {
                AddRefused::HeldByAnotherSite
            }));
        }
        let has_primary: Option<i64> =
            sqlx::query_scalar("SELECT id FROM domains WHERE site_id = $1 AND is_primary = 1")
                .bind(new.site_id)
                .fetch_optional(&mut *tx)
                .await?;
        let primary = new.primary || has_primary.is_none();
        if primary && has_primary.is_some() {
            sqlx::query("UPDATE domains SET is_primary = 0 WHERE site_id = $1")
                .bind(new.site_id)
                .execute(&mut *tx)
                .await?;
        }
        let now = now_millis();
        let verified = new.verified_by.is_some();
        // A racing insert of the same hostname (PostgreSQL, another
        // controller) loses on the unique column: nothing is inserted.
        let row: Option<DomainRow> = sqlx::query_as(&format!(
            "INSERT INTO domains (site_id, hostname, is_primary, verification_token, verified_at, \
             verified_by, next_check_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (hostname) DO NOTHING RETURNING {DOMAIN_COLUMNS}"
        ))
        .bind(new.site_id)
        .bind(new.hostname)
        .bind(i64::from(primary))
        .bind(new.verification_token)
        .bind(verified.then_some(now))
        .bind(new.verified_by.map(VerifiedBy::as_str))
        .bind((!verified).then_some(new.first_check_at))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Err(AddRefused::HeldByAnotherSite));
        };
        tx.commit().await?;
        Ok(Ok(row.into()))
    }

    /// The site's domains, primary first, then in the order added.
    pub async fn domains_of_site(&self, site_id: i64) -> anyhow::Result<Vec<Domain>> {
        let rows: Vec<DomainRow> = sqlx::query_as(&format!(
            "SELECT {DOMAIN_COLUMNS} FROM domains WHERE site_id = $1 ORDER BY is_primary DESC, id"
        ))
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Domain::from).collect())
    }

    /// One domain by its (normalised) hostname, whichever site holds it.
    pub async fn domain_by_hostname(&self, hostname: &str) -> anyhow::Result<Option<Domain>> {
        let row: Option<DomainRow> = sqlx::query_as(&format!(
            "SELECT {DOMAIN_COLUMNS} FROM domains WHERE hostname = $1"
        ))
        .bind(hostname)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Domain::from))
    }

    /// Every verified custom hostname with its site: what the edge serves
    /// and what certificates are wanted for. An unverified one never is.
    pub async fn verified_hostnames(&self) -> anyhow::Result<Vec<VerifiedHostname>> {
        let rows: Vec<VerifiedRow> = sqlx::query_as(
            "SELECT d.hostname, d.site_id, s.name AS site_name, d.is_primary \
             FROM domains d JOIN sites s ON s.id = d.site_id \
             WHERE d.verified_at IS NOT NULL ORDER BY d.hostname",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| VerifiedHostname {
                hostname: row.hostname,
                site_id: row.site_id,
                site_name: row.site_name,
                primary: row.is_primary != 0,
            })
            .collect())
    }

    /// Every claimed hostname with its site and whether it is verified:
    /// the edge's table, which answers an unverified claim "no site here"
    /// rather than sending it on to the API.
    pub async fn claimed_hostnames(&self) -> anyhow::Result<Vec<(VerifiedHostname, bool)>> {
        let rows: Vec<ClaimedRow> = sqlx::query_as(
            "SELECT d.hostname, d.site_id, s.name AS site_name, d.is_primary, \
             CASE WHEN d.verified_at IS NULL THEN 0 ELSE 1 END AS verified \
             FROM domains d JOIN sites s ON s.id = d.site_id ORDER BY d.hostname",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                (
                    VerifiedHostname {
                        hostname: row.hostname,
                        site_id: row.site_id,
                        site_name: row.site_name,
                        primary: row.is_primary != 0,
                    },
                    row.verified != 0,
                )
            })
            .collect())
    }

    /// Makes `hostname` the site's primary domain. False when the site has
    /// no such domain.
    pub async fn set_primary_domain(&self, site_id: i64, hostname: &str) -> anyhow::Result<bool> {
        let mut tx = self.write_tx().await?;
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM domains WHERE site_id = $1 AND hostname = $2")
                .bind(site_id)
                .bind(hostname)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(id) = found else {
            return Ok(false);
        };
        // The old primary steps down first: one primary per site, always.
        sqlx::query("UPDATE domains SET is_primary = 0 WHERE site_id = $1 AND id <> $2")
            .bind(site_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE domains SET is_primary = 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a domain of a site; when it was the primary, the oldest
    /// remaining domain becomes primary. `None` when the site has no such
    /// domain.
    pub async fn delete_domain(&self, site_id: i64, hostname: &str) -> anyhow::Result<Option<Domain>> {
        let mut tx = self.write_tx().await?;
        let removed: Option<DomainRow> = sqlx::query_as(&format!(
            "DELETE FROM domains WHERE site_id = $1 AND hostname = $2 RETURNING {DOMAIN_COLUMNS}"
        ))
        .bind(site_id)
        .bind(hostname)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(removed) = removed.map(Domain::from) else {
            return Ok(None);
        };
        if removed.is_primary {
            sqlx::query(
                "UPDATE domains SET is_primary = 1 WHERE id = \
                 (SELECT MIN(id) FROM domains WHERE site_id = $1)",
            )
            .bind(site_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(removed))
    }

    /// Records a successful proof of control.
    pub async fn mark_domain_verified(&self, id: i64, by: VerifiedBy) -> anyhow::Result<()> {
        let now = now_millis();
        sqlx::query(
            "UPDATE domains SET verified_at = COALESCE(verified_at, $1), verified_by = COALESCE(verified_by, $2), \
             last_checked_at = $1, last_error = NULL, next_check_at = NULL WHERE id = $3",
        )
        .bind(now)
        .bind(by.as_str())
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Records a failed check: why, and when to look again (`None`: the
    /// background check gives up; asking to verify still works).
    pub async fn record_failed_domain_check(
        &self,
        id: i64,
        error: &str,
        next_check_at: Option<i64>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE domains SET last_checked_at = $1, last_error = $2, check_attempts = check_attempts + 1, \
             next_check_at = $3 WHERE id = $4 AND verified_at IS NULL",
        )
        .bind(now_millis())
        .bind(error)
        .bind(next_check_at)
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Claims up to `limit` unverified domains whose background check is
    /// due: each claimed one's next check moves to `hold_until`, so another
    /// controller sharing the database does not check it at the same time
    /// (and a controller that dies mid-check leaves it for a later one).
    pub async fn claim_due_domain_checks(
        &self,
        now: i64,
        hold_until: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<Domain>> {
        let due: Vec<DomainRow> = sqlx::query_as(&format!(
            "SELECT {DOMAIN_COLUMNS} FROM domains WHERE verified_at IS NULL AND next_check_at <= $1 \
             ORDER BY next_check_at LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::with_capacity(due.len());
        for row in due {
            let done =
                sqlx::query("UPDATE domains SET next_check_at = $1 WHERE id = $2 AND next_check_at = $3")
                    .bind(hold_until)
                    .bind(row.id)
                    .bind(row.next_check_at)
                    .execute(self.writer())
                    .await?;
            if done.rows_affected() == 1 {
                claimed.push(Domain::from(row));
            }
        }
        Ok(claimed)
    }
}
