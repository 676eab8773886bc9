//! Build schedules: a cron expression and a time zone per row, with the
//! tick each waits for. A tick is claimed by moving `next_run_at` on in one
//! conditional `UPDATE`, so of several controllers sharing the database
//! exactly one claims it.

use super::{Database, now_millis};

/// A build schedule as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BuildSchedule {
    pub id: i64,
    pub site_id: i64,
    /// The expression as given: five fields, or six with seconds first.
    pub cron: String,
    /// The IANA time zone the expression is read in, e.g. `Europe/Paris`.
    pub time_zone: String,
    /// The branch its builds build; `None` for the site's production branch.
    pub branch: Option<String>,
    /// The reason its builds show; `None` to make one of `cron` and the zone.
    pub title: Option<String>,
    /// The next tick, not yet claimed; in the past when every controller
    /// was down at that time.
    pub next_run_at: i64,
    /// The last tick claimed (and built).
    pub last_run_at: Option<i64>,
    pub created_at: i64,
}

const SCHEDULE_COLUMNS: &str =
    "id, site_id, cron, time_zone, branch, title, next_run_at, last_run_at, created_at";

/// What a new build schedule is made of; the expression and zone checked.
#[derive(Debug, Clone)]
pub struct NewBuildSchedule<'a> {
    pub site_id: i64,
    pub cron: &'a str,
    pub time_zone: &'a str,
    pub branch: Option<&'a str>,
    pub title: Option<&'a str>,
    pub next_run_at: i64,
}

impl Database {
    pub async fn insert_build_schedule(
        &self,
        schedule: &NewBuildSchedule<'_>,
    ) -> anyhow::Result<BuildSchedule> {
        Ok(sqlx::query_as(&format!(
            "INSERT INTO build_schedules (site_id, cron, time_zone, branch, title, next_run_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {SCHEDULE_COLUMNS}"
        ))
        .bind(schedule.site_id)
        .bind(schedule.cron)
        .bind(schedule.time_zone)
        .bind(schedule.branch)
        .bind(schedule.title)
        .bind(schedule.next_run_at)
        .bind(now_millis())
        .fetch_one(self.writer())
        .await?)
    }

    /// The site's build schedules, oldest first.
    pub async fn build_schedules(&self, site_id: i64) -> anyhow::Result<Vec<BuildSchedule>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM build_schedules WHERE site_id = $1 ORDER BY id"
        ))
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn build_schedule(&self, site_id: i64, id: i64) -> anyhow::Result<Option<BuildSchedule>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM build_schedules WHERE site_id = $1 AND id = $2"
        ))
        .bind(site_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Removes a schedule, answering it as it was; `None` when the site has
    /// no such schedule.
    pub async fn delete_build_schedule(
        &self,
        site_id: i64,
        id: i64,
    ) -> anyhow::Result<Option<BuildSchedule>> {
        Ok(sqlx::query_as(&format!(
            "DELETE FROM build_schedules WHERE site_id = $1 AND id = $2 RETURNING {SCHEDULE_COLUMNS}"
        ))
        .bind(site_id)
        .bind(id)
        .fetch_optional(self.writer())
        .await?)
    }

    /// Schedules whose tick has come by `now`, longest waiting first, at
    /// most `limit` of them.
    pub async fn due_build_schedules(&self, now: i64, limit: i64) -> anyhow::Result<Vec<BuildSchedule>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM build_schedules WHERE next_run_at <= $1 \
             ORDER BY next_run_at, id LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The earliest tick any schedule waits for.
    pub async fn earliest_build_schedule_tick(&self) -> anyhow::Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(next_run_at) FROM build_schedules")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Claims schedule `id`'s tick `tick` by moving its next run to `next`;
    /// true only for the one caller whose statement found the tick still
    /// unclaimed (on PostgreSQL a second `UPDATE` waits for the first's row
    /// lock, then finds `next_run_at` moved and changes nothing).
    pub async fn claim_build_schedule_tick(&self, id: i64, tick: i64, next: i64) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE build_schedules SET next_run_at = $1, last_run_at = $2 WHERE id = $3 AND next_run_at = $2",
        )
        .bind(next)
        .bind(tick)
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets a schedule's next tick as if every controller had been down
    /// since `next_run_at`: for tests of what a controller does when it
    /// starts after missed ticks.
    pub async fn set_build_schedule_next_run(&self, id: i64, next_run_at: i64) -> anyhow::Result<()> {
        sqlx::query("UPDATE build_schedules SET next_run_at = $1 WHERE id = $2")
            .bind(next_run_at)
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
