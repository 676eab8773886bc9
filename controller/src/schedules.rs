//! Scheduled builds: a cron expression read in a time zone, per site, and
//! the worker that queues their builds.
//!
//! Expressions are parsed by `croner` and zones come from `chrono-tz`.
//! croner was picked over `cron` because it reads the plain five-field
//! crontab syntax people already write (`cron` wants Quartz's six or seven
//! fields, seconds first), takes an optional seconds field, follows
//! Vixie cron where day-of-month and day-of-week are both given, and
//! computes the next occurrence in any `chrono` time zone, including
//! across daylight-saving changes; both crates are widely used and kept up.
//!
//! Each schedule stores the tick it waits for (`next_run_at`). The worker
//! sleeps until the earliest one (at most [`MAX_SLEEP`], so schedules made
//! on another controller are seen), then, for each due schedule, claims its
//! tick in one conditional `UPDATE` that moves `next_run_at` to the next
//! tick after *now*; only the controller whose statement changed the row
//! queues the build. So several controllers on one PostgreSQL build each
//! tick once, and a schedule whose ticks passed while every controller was
//! down builds once for all of them. A controller that dies between
//! claiming and queueing loses that tick: a tick is built at most once.

use crate::builds::{BuildRequest, Queue, queue_build};
use crate::db::{BuildSchedule, Database, NewBuildSchedule, now_millis};
use chrono::{DateTime, SecondsFormat, TimeZone as _, Timelike as _, Utc};
use chrono_tz::Tz;
use jamstack_proto::BuildContext;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The longest the worker sleeps: how late a schedule made or removed on
/// another controller may be seen.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

/// How long the worker waits after a round that failed.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Due schedules claimed per round; more wait for the next round, at once.
const DUE_PER_ROUND: i64 = 100;

/// The zone of a schedule that names none.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

/// How long an expression may be.
const MAX_EXPRESSION: usize = 200;

/// Schedules as a service: what they are kept in, where their builds go,
/// and the worker to wake when they change.
#[derive(Clone)]
pub struct Schedules {
    pub db: Database,
    pub queue: Queue,
    /// Woken when a schedule is made or removed on this controller, so the
    /// worker sleeps until the right tick.
    pub changed: Arc<Notify>,
    /// Where the builds a schedule queues are recorded (`schedule:<id>`).
    pub audit: crate::audit::AuditLog,
}

/// A cron expression read in a time zone: it can say when it next fires.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: croner::Cron,
    zone: Tz,
}

impl CronSchedule {
    /// Reads `expression` (five fields, or six with seconds first) in the
    /// IANA zone `time_zone`; an error names the field that is wrong and
    /// what would do.
    pub fn parse(expression: &str, time_zone: &str) -> Result<Self, String> {
        let expression = expression.trim();
        if expression.is_empty() || expression.len() > MAX_EXPRESSION {
            return Err(format!(
                "`cron`: give an expression of 1 to {MAX_EXPRESSION} characters: five fields (minute hour \
                 day-of-month month day-of-week), or six with seconds first, e.g. `0 6 * * *` for 06:00 daily"
            ));
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| {
                format!(
                    "`cron`: `{expression}` is not a cron expression ({e}); write five fields (minute hour \
                     day-of-month month day-of-week), or six with seconds first, e.g. `0 6 * * *` for 06:00 daily"
                )
            })?;
        let zone: Tz = time_zone.trim().parse().map_err(|_| {
            format!(
                "`time_zone`: `{time_zone}` is not an IANA time zone name; use one such as `Europe/Paris`, \
                 `America/New_York` or `UTC`"
            )
        })?;
        let schedule = CronSchedule { cron, zone };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(format!(
                "`cron`: `{expression}` never comes round (e.g. the 30th of February); check its day and month"
            ));
        }
        Ok(schedule)
    }

    /// The first tick strictly after `after`, in the schedule's zone; `None`
    /// if it never comes. A local time the spring change skips runs when
    /// the clock jumps; one the autumn change repeats runs the first time.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Tz>> {
        // croner keeps the fraction of a second it starts from; ticks are
        // whole seconds, so start from the whole second `after` falls in.
        let after = after.with_nanosecond(0)?;
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
    }

    /// The zone the expression is read in; its `name()` is what is stored.
    pub fn zone(&self) -> Tz {
        self.zone
    }
}

/// What a user asks for when making a schedule.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// Five fields (minute hour day-of-month month day-of-week), or six with
    /// seconds first, e.g. `0 6 * * *`.
    pub cron: String,
    /// The IANA time zone the expression is read in; `UTC` when left out.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The branch its builds build; the site's production branch when left out.
    #[serde(default)]
    pub branch: Option<String>,
    /// The reason its builds show; `Scheduled build (<cron> <zone>)` when left out.
    #[serde(default)]
    pub title: Option<String>,
}

/// A schedule as the API answers it, with its next run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub id: i64,
    pub cron: String,
    pub time_zone: String,
    /// The branch its builds build; `null` for the site's production branch.
    pub branch: Option<String>,
    /// The reason its builds show; `null` for `Scheduled build (<cron> <zone>)`.
    pub title: Option<String>,
    /// The next tick, Unix milliseconds; in the past while it waits for a
    /// controller to claim it.
    pub next_run_at: i64,
    /// The next tick, RFC 3339 in UTC.
    pub next_run_utc: String,
    /// The next tick, RFC 3339 in the schedule's zone.
    pub next_run_local: String,
    /// The last tick that queued a build, Unix milliseconds; `null` if none.
    pub last_run_at: Option<i64>,
    pub created_at: i64,
}

impl ScheduleView {
    pub fn of(schedule: BuildSchedule) -> Self {
        let next = Utc
            .timestamp_millis_opt(schedule.next_run_at)
            .single()
            .unwrap_or_default();
        let zone: Tz = schedule.time_zone.parse().unwrap_or(Tz::UTC);
        ScheduleView {
            next_run_utc: next.to_rfc3339_opts(SecondsFormat::Secs, true),
            next_run_local: next
                .with_timezone(&zone)
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            id: schedule.id,
            cron: schedule.cron,
            time_zone: schedule.time_zone,
            branch: schedule.branch,
            title: schedule.title,
            next_run_at: schedule.next_run_at,
            last_run_at: schedule.last_run_at,
            created_at: schedule.created_at,
        }
    }
}

/// Why a schedule was not made.
#[derive(Debug)]
pub enum AddError {
    /// What was asked for is wrong; the message names the field.
    Invalid(String),
    Failed(anyhow::Error),
}

impl Schedules {
    /// Checks and stores a new schedule of site `site_id`, waiting for its
    /// first tick after now; the API and the dashboard make them here.
    pub async fn add(&self, site_id: i64, asked: &NewSchedule) -> Result<ScheduleView, AddError> {
        let time_zone = optional(&asked.time_zone).unwrap_or(DEFAULT_TIME_ZONE);
        let parsed = CronSchedule::parse(&asked.cron, time_zone).map_err(AddError::Invalid)?;
        let branch = optional(&asked.branch);
        // The runner hands the branch to git: refuse what git would read as
        // an option or could never name.
        if let Some(branch) = branch
            && (branch.starts_with('-')
                || branch.len() > 255
                || branch.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(AddError::Invalid(format!(
                "`branch`: `{branch}` is not a branch name (no spaces, not starting with `-`)"
            )));
        }
        let title = optional(&asked.title);
        if title.is_some_and(|t| t.len() > 200) {
            return Err(AddError::Invalid("`title` is longer than 200 characters".into()));
        }
        let first = parsed
            .next_after(Utc::now())
            .ok_or_else(|| AddError::Invalid("`cron`: the expression never comes round".into()))?;
        let schedule = self
            .db
            .insert_build_schedule(&NewBuildSchedule {
                site_id,
                cron: asked.cron.trim(),
                time_zone: parsed.zone().name(),
                branch,
                title,
                next_run_at: first.timestamp_millis(),
            })
            .await
            .map_err(AddError::Failed)?;
        self.changed.notify_one();
        Ok(ScheduleView::of(schedule))
    }

    /// Removes schedule `id` of site `site_id`, answering it as it was;
    /// `None` if the site has no such schedule.
    pub async fn remove(&self, site_id: i64, id: i64) -> anyhow::Result<Option<ScheduleView>> {
        let removed = self.db.delete_build_schedule(site_id, id).await?;
        self.changed.notify_one();
        Ok(removed.map(ScheduleView::of))
    }
}

/// A field left empty is a field left out.
fn optional(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The title a schedule's builds show.
pub fn build_title(schedule: &BuildSchedule) -> String {
    schedule
        .title
        .clone()
        .unwrap_or_else(|| format!("Scheduled build ({} {})", schedule.cron, schedule.time_zone))
}

/// The worker: queues the builds of due schedules, forever, sleeping until
/// the next tick, [`MAX_SLEEP`] at most, or until a schedule changes here.
pub async fn run(schedules: Schedules) {
    loop {
        // After a failure a due tick may still be due: try again soon, not
        // at once, so a database that is down is not called in a loop.
        let least = match build_due(&schedules).await {
            Ok(_) => Duration::ZERO,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "queueing scheduled builds");
                RETRY_AFTER_FAILURE
            }
        };
        let wait = match schedules.db.earliest_build_schedule_tick().await {
            Ok(Some(tick)) => Duration::from_millis((tick - now_millis()).max(0) as u64).min(MAX_SLEEP),
            Ok(None) => MAX_SLEEP,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "reading the next scheduled build");
                MAX_SLEEP
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait.max(least)) => {}
            () = schedules.changed.notified() => {}
        }
    }
}

/// Claims and builds every tick that has come, each on the one controller
/// whose claim moved it on. Returns how many builds this controller queued;
/// a schedule that fails is logged and the others still built.
pub async fn build_due(schedules: &Schedules) -> anyhow::Result<usize> {
    let mut queued = 0;
    loop {
        let now = now_millis();
        let due = schedules.db.due_build_schedules(now, DUE_PER_ROUND).await?;
        let full_round = due.len() as i64 == DUE_PER_ROUND;
        let mut failed = 0;
        for schedule in due {
            match build_tick(schedules, &schedule, now).await {
                Ok(true) => queued += 1,
                Ok(false) => {}
                Err(e) => {
                    failed += 1;
                    tracing::error!(
                        schedule = schedule.id,
                        site_id = schedule.site_id,
                        error = format!("{e:#}"),
                        "queueing a scheduled build"
                    );
                }
            }
        }
        if failed > 0 {
            anyhow::bail!("{failed} due schedules could not be claimed or built");
        }
        if !full_round {
            return Ok(queued);
        }
    }
}

/// Claims `schedule`'s tick, moving it to the first tick after `now`, and
/// queues its build if this controller's claim won. A stored expression
/// that no longer reads (a croner upgrade that refuses it) is moved a day
/// on, saying why, rather than tried again at once forever.
async fn build_tick(schedules: &Schedules, schedule: &BuildSchedule, now: i64) -> anyhow::Result<bool> {
    let tick = schedule.next_run_at;
    let after = Utc.timestamp_millis_opt(now).single().unwrap_or_else(Utc::now);
    let next = match CronSchedule::parse(&schedule.cron, &schedule.time_zone) {
        Ok(parsed) => parsed.next_after(after).map(|at| at.timestamp_millis()),
        Err(why) => {
            tracing::error!(
                schedule = schedule.id,
                site_id = schedule.site_id,
                why,
                "a stored schedule no longer reads; remove it and make it again"
            );
            None
        }
    };
    let Some(next) = next else {
        schedules
            .db
            .claim_build_schedule_tick(schedule.id, tick, now + 24 * 3600 * 1000)
            .await?;
        return Ok(false);
    };
    if !schedules
        .db
        .claim_build_schedule_tick(schedule.id, tick, next)
        .await?
    {
        // Another controller claimed this tick first.
        return Ok(false);
    }
    let Some(site) = schedules.db.site_by_id(schedule.site_id).await? else {
        return Ok(false);
    };
    let branch = schedule
        .branch
        .clone()
        .unwrap_or_else(|| site.production_branch.clone());
    let context = if branch == site.production_branch {
        BuildContext::Production
    } else {
        BuildContext::BranchDeploy
    };
    let tick_utc = Utc
        .timestamp_millis_opt(tick)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let build_id = queue_build(
        &schedules.queue,
        &site,
        BuildRequest {
            context,
            branch,
            // The branch's head when the runner fetches, as a build hook's.
            commit_sha: String::new(),
            commit_message: None,
            author: None,
            pr_number: None,
            from_fork: false,
            commit_unverified: false,
            trigger: "schedule",
            trigger_title: Some(build_title(schedule)),
            trigger_payload: Some(
                serde_json::json!({ "schedule_id": schedule.id, "tick": tick_utc }).to_string(),
            ),
        },
    )
    .await?;
    tracing::info!(site = %site.name, schedule = schedule.id, tick = %tick_utc, build_id, "scheduled build queued");
    // No one was answered: a schedule's entry carries no status.
    schedules
        .audit
        .builds_queued(&format!("schedule:{}", schedule.id), &[build_id], 0)
        .await;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn next(expression: &str, zone: &str, after: &str) -> String {
        CronSchedule::parse(expression, zone)
            .unwrap()
            .next_after(utc(after))
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn a_daily_build_at_six_in_paris_follows_the_clock_across_both_daylight_saving_changes() {
        // Paris is UTC+1 in winter, UTC+2 in summer (from 29 March 2026 and
        // until 25 October 2026).
        assert_eq!(
            next("0 6 * * *", "Europe/Paris", "2026-03-28T12:00:00Z"),
            "2026-03-29T06:00:00+02:00"
        );
        assert_eq!(
            next("0 6 * * *", "Europe/Paris", "2026-03-28T04:00:00Z"),
            "2026-03-28T06:00:00+01:00"
        );
        assert_eq!(
            next("0 6 * * *", "Europe/Paris", "2026-10-24T12:00:00Z"),
            "2026-10-25T06:00:00+01:00"
        );
        let sixes: Vec<String> = ["2026-03-28T12:00:00Z", "2026-10-24T12:00:00Z"]
            .iter()
            .map(|after| {
                CronSchedule::parse("0 6 * * *", "Europe/Paris")
                    .unwrap()
                    .next_after(utc(after))
                    .unwrap()
                    .with_timezone(&Utc)
                    .to_rfc3339()
            })
            .collect();
        assert_eq!(sixes, ["2026-03-29T04:00:00+00:00", "2026-10-25T05:00:00+00:00"]);
    }

    #[test]
    fn a_time_the_spring_change_skips_runs_once_that_day_and_a_time_the_autumn_change_repeats_runs_once() {
        // 02:30 does not exist in Paris on 29 March 2026 (02:00 → 03:00):
        // it runs when the clock jumps, and not again that day.
        assert_eq!(
            next("30 2 * * *", "Europe/Paris", "2026-03-28T12:00:00Z"),
            "2026-03-29T03:00:00+02:00"
        );
        assert_eq!(
            next("30 2 * * *", "Europe/Paris", "2026-03-29T01:00:00Z"),
            "2026-03-30T02:30:00+02:00"
        );
        // 02:30 happens twice on 25 October 2026 (03:00 → 02:00): once only.
        let first = next("30 2 * * *", "Europe/Paris", "2026-10-24T12:00:00Z");
        assert_eq!(first, "2026-10-25T02:30:00+02:00");
        let after_first = CronSchedule::parse("30 2 * * *", "Europe/Paris")
            .unwrap()
            .next_after(utc("2026-10-25T00:30:00Z"))
            .unwrap()
            .to_rfc3339();
        assert_eq!(
            after_first, "2026-10-26T02:30:00+01:00",
            "not again at 02:30+01:00"
        );
    }

    #[test]
    fn the_next_tick_is_a_whole_second_strictly_after_a_time_between_seconds() {
        assert_eq!(
            next("* * * * * *", "UTC", "2026-12-06T10:00:03.574Z"),
            "2026-12-06T10:00:04+00:00"
        );
        assert_eq!(
            next("* * * * * *", "UTC", "2026-12-06T10:00:03Z"),
            "2026-12-06T10:00:04+00:00"
        );
        assert_eq!(
            next("0 * * * *", "UTC", "2026-12-06T10:59:59.999Z"),
            "2026-12-06T11:00:00+00:00"
        );
    }

    #[test]
    fn six_fields_read_seconds_first_and_a_zone_is_kept_by_its_iana_name() {
        assert_eq!(
            next("*/10 * * * * *", "UTC", "2026-12-06T10:00:03Z"),
            "2026-12-06T10:00:10+00:00"
        );
        assert_eq!(
            next("0 0 * * *", " Asia/Tokyo ", "2026-12-06T10:00:00Z"),
            "2026-12-07T00:00:00+09:00"
        );
        assert_eq!(
            CronSchedule::parse("0 0 * * *", "Asia/Tokyo")
                .unwrap()
                .zone()
                .name(),
            "Asia/Tokyo"
        );
    }

    #[test]
    fn a_wrong_expression_or_zone_is_refused_naming_the_field() {
        for bad in ["", "61 * * * *", "* * *", "0 6 * * * * * *", "every day"] {
            let error = CronSchedule::parse(bad, "UTC").unwrap_err();
            assert!(error.starts_with("`cron`:"), "{bad:?}: {error}");
            assert!(error.contains("0 6 * * *"), "says what would do: {error}");
        }
        let error = CronSchedule::parse("0 6 * * *", "Europe/Pariss").unwrap_err();
        assert!(error.starts_with("`time_zone`: `Europe/Pariss`"), "{error}");
        assert!(error.contains("Europe/Paris"), "{error}");
        let error = CronSchedule::parse("0 0 30 2 *", "UTC").unwrap_err();
        assert!(error.contains("never comes round"), "{error}");
    }
}
