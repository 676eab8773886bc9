//! ACME: the account at each CA (sealed credentials) and, per hostname,
//! the order's state. A controller claims a hostname by one conditional
//! `UPDATE` (its hold has run out, and it is due), as schedules claim
//! ticks, so controllers sharing the database never order the same name
//! at once; every later write is fenced by the holder's id.

use super::{Database, now_millis};

/// A hostname the ACME manager keeps a certificate for, and how it went.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AcmeOrder {
    pub hostname: String,
    /// `http-01`, `tls-alpn-01` or `dns-01`.
    pub challenge: String,
    /// `waiting` (never issued), `issuing`, `active` or `failed`; see
    /// [`AcmeOrder::shown_state`] for what users see.
    pub state: String,
    /// The ACME problem type of the last failure, or `client`.
    pub last_error_type: Option<String>,
    pub last_error: Option<String>,
    /// Failures since the last certificate.
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub held_by: Option<String>,
    pub held_until: i64,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub renew_at: Option<i64>,
    pub issued_at: Option<i64>,
    pub updated_at: i64,
}

impl AcmeOrder {
    /// The state as users are shown it at `now`: an active certificate
    /// past its renewal time is `renewal_due`.
    pub fn shown_state(&self, now: i64) -> &str {
        match (self.state.as_str(), self.renew_at) {
            ("active", Some(renew_at)) if renew_at <= now => "renewal_due",
            (state, _) => state,
        }
    }
}

const ORDER_COLUMNS: &str = "hostname, challenge, state, last_error_type, last_error, attempts, \
     next_attempt_at, held_by, held_until, not_before, not_after, renew_at, issued_at, updated_at";

/// What a successful order stored.
#[derive(Debug, Clone, Copy)]
pub struct AcmeIssued {
    pub not_before: i64,
    pub not_after: i64,
    pub renew_at: i64,
}

impl Database {
    /// The sealed credentials of the account at `directory_url`, if any
    /// controller registered one.
    pub async fn acme_account(&self, directory_url: &str) -> anyhow::Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT credentials_sealed FROM acme_accounts WHERE directory_url = $1")
                .bind(directory_url)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Stores an account unless one for `directory_url` is there already;
    /// true when this one was stored.
    pub async fn insert_acme_account(
        &self,
        directory_url: &str,
        credentials_sealed: &str,
        contact_email: Option<&str>,
    ) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "INSERT INTO acme_accounts (directory_url, credentials_sealed, contact_email, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (directory_url) DO NOTHING",
        )
        .bind(directory_url)
        .bind(credentials_sealed)
        .bind(contact_email)
        .bind(now_millis())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Asks for a certificate for `hostname`, proven by `challenge`: due at
    /// once when new. A name already wanted keeps its state; a changed
    /// challenge applies from its next order.
    pub async fn want_acme_certificate(&self, hostname: &str, challenge: &str) -> anyhow::Result<()> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO acme_orders (hostname, challenge, state, next_attempt_at, updated_at) \
             VALUES ($1, $2, 'waiting', $3, $3) \
             ON CONFLICT (hostname) DO UPDATE SET challenge = excluded.challenge \
             WHERE acme_orders.challenge <> excluded.challenge",
        )
        .bind(hostname)
        .bind(challenge)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Stops keeping a certificate for `hostname`; true if it was kept.
    pub async fn forget_acme_certificate(&self, hostname: &str) -> anyhow::Result<bool> {
        let done = sqlx::query("DELETE FROM acme_orders WHERE hostname = $1")
            .bind(hostname)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn acme_order(&self, hostname: &str) -> anyhow::Result<Option<AcmeOrder>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ORDER_COLUMNS} FROM acme_orders WHERE hostname = $1"
        ))
        .bind(hostname)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every hostname kept, by name.
    pub async fn acme_orders(&self) -> anyhow::Result<Vec<AcmeOrder>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ORDER_COLUMNS} FROM acme_orders ORDER BY hostname"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Hostnames due by `now` (first order, renewal or retry) that no
    /// controller holds, longest waiting first, at most `limit`.
    pub async fn due_acme_orders(&self, now: i64, limit: i64) -> anyhow::Result<Vec<AcmeOrder>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ORDER_COLUMNS} FROM acme_orders WHERE next_attempt_at <= $1 AND held_until < $1 \
             ORDER BY next_attempt_at, hostname LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Claims `hostname` for `holder` until `held_until`, if it is due and
    /// nobody holds it; true only for the one caller whose statement found
    /// it so (on PostgreSQL a second `UPDATE` waits for the first's row
    /// lock, then finds `held_until` moved and changes nothing).
    pub async fn claim_acme_order(
        &self,
        hostname: &str,
        holder: &str,
        now: i64,
        held_until: i64,
    ) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE acme_orders SET held_by = $1, held_until = $2, state = 'issuing', updated_at = $3 \
             WHERE hostname = $4 AND held_until < $3 AND next_attempt_at <= $3",
        )
        .bind(holder)
        .bind(held_until)
        .bind(now)
        .bind(hostname)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a certificate issued by `holder`'s order: active, due again
    /// at its renewal time. False when `holder` no longer held the name.
    pub async fn finish_acme_order(
        &self,
        hostname: &str,
        holder: &str,
        issued: AcmeIssued,
    ) -> anyhow::Result<bool> {
        let now = now_millis();
        let done = sqlx::query(
            "UPDATE acme_orders SET state = 'active', last_error_type = NULL, last_error = NULL, \
             attempts = 0, next_attempt_at = $1, held_by = NULL, held_until = 0, not_before = $2, \
             not_after = $3, renew_at = $1, issued_at = $4, updated_at = $4 \
             WHERE hostname = $5 AND held_by = $6",
        )
        .bind(issued.renew_at)
        .bind(issued.not_before)
        .bind(issued.not_after)
        .bind(now)
        .bind(hostname)
        .bind(holder)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records `holder`'s failed order: `failed`, one more attempt, due
    /// again at `retry_at`. Answers the attempts counted so far, `None`
    /// when `holder` no longer held the name.
    pub async fn fail_acme_order(
        &self,
        hostname: &str,
        holder: &str,
        error_type: &str,
        error: &str,
        retry_at: i64,
    ) -> anyhow::Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "UPDATE acme_orders SET state = 'failed', last_error_type = $1, last_error = $2, \
             attempts = attempts + 1, next_attempt_at = $3, held_by = NULL, held_until = 0, updated_at = $4 \
             WHERE hostname = $5 AND held_by = $6 RETURNING attempts",
        )
        .bind(error_type)
        .bind(error)
        .bind(retry_at)
        .bind(now_millis())
        .bind(hostname)
        .bind(holder)
        .fetch_optional(self.writer())
        .await?)
    }

    /// Makes `hostname` due now, as if its renewal time had come: for an
    /// operator's "renew now" and for tests.
    pub async fn make_acme_order_due(&self, hostname: &str) -> anyhow::Result<bool> {
        let done = sqlx::query("UPDATE acme_orders SET next_attempt_at = $1 WHERE hostname = $2")
            .bind(now_millis())
            .bind(hostname)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// (hostname, not_after) of every certificate issued by ACME, for
    /// `/metrics`.
    pub async fn certificate_expiries(&self) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT hostname, not_after FROM acme_orders WHERE not_after IS NOT NULL ORDER BY hostname",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
