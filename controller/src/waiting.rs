//! Why a queued build waits, so none waits in silence: a build needing
//! labels no registered runner has would otherwise sit in the queue with
//! nothing said (Woodpecker's most heard complaint).
//!
//! The reason is worked out when read, from the runners' registrations and
//! the jobs they hold now: it is cheap (two reads for a whole queue) and
//! never stale, and nothing has to clear it when a runner registers. The
//! API, the build and queue pages show it; the GitHub reporter puts its
//! [`WaitingReason::summary`] in the pending commit status, looking again
//! every few seconds and sending only when it changed.

use crate::config::Config;
use crate::db::{Database, QueuedJob, RunnerLoad, labels_satisfy, now_millis, split_labels};
use std::collections::HashMap;
use std::time::Duration;

/// Why a queued build has not started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitingReason {
    /// No registered runner has every label the site requires (with no
    /// labels required: no runner is registered at all).
    NoRunnerHasLabels {
        needed: Vec<String>,
        /// Each registered runner's name and labels.
        runners: Vec<(String, Vec<String>)>,
    },
    /// Queued longer than the controller's threshold, and why.
    QueuedLong {
        queued_for: Duration,
        threshold: Duration,
        cause: SlowCause,
    },
}

/// What keeps a build that some runner could take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlowCause {
    /// Every runner with the labels is using all its slots.
    RunnersBusy { runners: usize },
    /// The site already runs as many builds as it may at once.
    SiteLimit { limit: i64 },
    /// The controller already runs as many builds as it may at once.
    GlobalLimit { limit: i64 },
    /// A runner has a free slot but has not asked for work (stopped, or
    /// cut off from the controller).
    RunnersNotAsking { runners: usize },
}

impl WaitingReason {
    /// The reason in full, for the API and the dashboard.
    pub fn describe(&self) -> String {
        match self {
            WaitingReason::NoRunnerHasLabels { .. } => self.summary(),
            WaitingReason::QueuedLong {
                queued_for,
                threshold,
                cause,
            } => format!(
                "queued for {}, longer than {}: {}",
                human(*queued_for),
                human(*threshold),
                cause.describe()
            ),
        }
    }

    /// The reason without the time waited, so it changes only when the
    /// reason does: for the commit status, which is sent again only then.
    pub fn summary(&self) -> String {
        match self {
            WaitingReason::NoRunnerHasLabels { needed, runners } if runners.is_empty() => {
                if needed.is_empty() {
                    "no runner is registered; start one (jamstack-runner) or run the controller with `up`"
                        .to_owned()
                } else {
                    format!(
                        "no registered runner has the labels {}; no runner is registered",
                        needed.join(", ")
                    )
                }
            }
            WaitingReason::NoRunnerHasLabels { needed, runners } => {
                let runners: Vec<String> = runners
                    .iter()
                    .map(|(name, labels)| match labels.as_slice() {
                        [] => format!("{name} [no labels]"),
                        labels => format!("{name} [{}]", labels.join(", ")),
                    })
                    .collect();
                format!(
                    "no registered runner has the labels {} (runners: {})",
                    needed.join(", "),
                    runners.join(", ")
                )
            }
            WaitingReason::QueuedLong { threshold, cause, .. } => {
                format!("queued longer than {}: {}", human(*threshold), cause.describe())
            }
        }
    }
}

impl SlowCause {
    fn describe(&self) -> String {
        match self {
            SlowCause::RunnersBusy { runners: 1 } => "the one runner that can build it is busy".to_owned(),
            SlowCause::RunnersBusy { runners } => format!("all {runners} runners that can build it are busy"),
            SlowCause::SiteLimit { limit } => {
                format!("the site runs its limit of {limit} builds at once (max_concurrent_builds)")
            }
            SlowCause::GlobalLimit { limit } => {
                format!("the controller runs its limit of {limit} builds at once (--max-concurrent-builds)")
            }
            SlowCause::RunnersNotAsking { runners } => format!(
                "{runners} runner(s) with a free slot have not asked for work; check that they run and reach the controller"
            ),
        }
    }
}

/// `45s`, `2m 10s`, `1h 5m`.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 if secs.is_multiple_of(60) => format!("{}m", secs / 60),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// What the reason of every queued job is worked out from.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// A build queued longer says so (`--queued-warning-seconds`).
    pub queued_warning_after: Duration,
    /// Builds running at once across the controller; 0 for no limit.
    pub max_concurrent_builds: i64,
}

impl Thresholds {
    pub fn of(config: &Config) -> Self {
        Thresholds {
            queued_warning_after: config.queued_warning_after,
            max_concurrent_builds: config.max_concurrent_builds,
        }
    }
}

/// Why `job` waits, if something keeps it; `None` while it is young and
/// some runner could take it.
pub fn reason(
    job: &QueuedJob,
    runners: &[RunnerLoad],
    thresholds: Thresholds,
    now: i64,
) -> Option<WaitingReason> {
    let able: Vec<&RunnerLoad> = runners
        .iter()
        .filter(|load| labels_satisfy(&load.runner.labels, &job.required_labels))
        .collect();
    if able.is_empty() {
        return Some(WaitingReason::NoRunnerHasLabels {
            needed: split_labels(&job.required_labels),
            runners: runners
                .iter()
                .map(|load| (load.runner.name.clone(), load.runner.labels.clone()))
                .collect(),
        });
    }
    let queued_for = Duration::from_millis(now.saturating_sub(job.queued_at).max(0) as u64);
    if queued_for <= thresholds.queued_warning_after {
        return None;
    }
    let running: i64 = runners.iter().map(|load| load.leased).sum();
    let cause = if job.site_limit > 0 && job.site_running >= job.site_limit {
        SlowCause::SiteLimit {
            limit: job.site_limit,
        }
    } else if thresholds.max_concurrent_builds > 0 && running >= thresholds.max_concurrent_builds {
        SlowCause::GlobalLimit {
            limit: thresholds.max_concurrent_builds,
        }
    } else if able.iter().all(|load| load.leased >= load.runner.slots) {
        SlowCause::RunnersBusy { runners: able.len() }
    } else {
        SlowCause::RunnersNotAsking {
            runners: able.iter().filter(|load| load.leased < load.runner.slots).count(),
        }
    };
    Some(WaitingReason::QueuedLong {
        queued_for,
        threshold: thresholds.queued_warning_after,
        cause,
    })
}

/// The reasons of the queued builds, read at one moment.
#[derive(Debug, Default)]
pub struct WaitingReasons {
    by_build: HashMap<i64, WaitingReason>,
}

impl WaitingReasons {
    /// Every queued build's reason.
    pub async fn of_queue(db: &Database, thresholds: Thresholds) -> anyhow::Result<Self> {
        Self::load(db, thresholds, None).await
    }

    /// One build's reason (nothing when it is not queued).
    pub async fn of_build(db: &Database, thresholds: Thresholds, build_id: i64) -> anyhow::Result<Self> {
        Self::load(db, thresholds, Some(build_id)).await
    }

    async fn load(db: &Database, thresholds: Thresholds, build_id: Option<i64>) -> anyhow::Result<Self> {
        let jobs = db.queued_jobs(build_id).await?;
        if jobs.is_empty() {
            return Ok(Self::default());
        }
        let runners = db.live_runner_loads().await?;
        let now = now_millis();
        let by_build = jobs
            .iter()
            .filter_map(|job| reason(job, &runners, thresholds, now).map(|reason| (job.build_id, reason)))
            .collect();
        Ok(WaitingReasons { by_build })
    }

    pub fn of(&self, build_id: i64) -> Option<&WaitingReason> {
        self.by_build.get(&build_id)
    }

    /// The queued builds that wait for a reason.
    pub fn build_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.by_build.keys().copied()
    }

    /// Fills in [`crate::db::Build::waiting_reason`] of the queued builds.
    pub fn explain(&self, builds: &mut [crate::db::Build]) {
        for build in builds {
            build.waiting_reason = self.of(build.id).map(WaitingReason::describe);
        }
    }
}

/// Fills in the waiting reasons of the queued builds among `builds`.
pub async fn explain_builds(
    db: &Database,
    thresholds: Thresholds,
    builds: &mut [crate::db::Build],
) -> anyhow::Result<()> {
    if !builds.iter().any(|b| b.state == crate::db::BuildState::Queued) {
        return Ok(());
    }
    let reasons = match builds {
        [only] => WaitingReasons::of_build(db, thresholds, only.id).await?,
        _ => WaitingReasons::of_queue(db, thresholds).await?,
    };
    reasons.explain(builds);
    Ok(())
}

/// Fills in the waiting reasons of the queued entries of the queue.
pub async fn explain_queue(
    db: &Database,
    thresholds: Thresholds,
    entries: &mut [crate::db::QueueEntry],
) -> anyhow::Result<()> {
    if !entries.iter().any(|e| e.state == "queued") {
        return Ok(());
    }
    let reasons = WaitingReasons::of_queue(db, thresholds).await?;
    for entry in entries {
        entry.waiting_reason = reasons.of(entry.build_id).map(WaitingReason::describe);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::RunnerRecord;

    fn runner(name: &str, labels: &[&str], slots: i64, leased: i64) -> RunnerLoad {
        RunnerLoad {
            runner: RunnerRecord {
                id: 1,
                name: name.to_owned(),
                labels: labels.iter().map(|l| (*l).to_owned()).collect(),
                slots,
                created_at: 0,
                last_seen_at: None,
                revoked_at: None,
            },
            leased,
        }
    }

    fn job(labels: &str, queued_at: i64) -> QueuedJob {
        QueuedJob {
            build_id: 7,
            site_id: 1,
            site: "blog".to_owned(),
            required_labels: labels.to_owned(),
            queued_at,
            site_limit: 1,
            site_running: 0,
        }
    }

    const THRESHOLDS: Thresholds = Thresholds {
        queued_warning_after: Duration::from_secs(60),
        max_concurrent_builds: 0,
    };

    #[test]
    fn a_build_needing_labels_no_runner_has_says_which_and_what_runners_have() {
        let runners = [
            runner("r1", &["linux"], 1, 0),
            runner("r2", &["big", "linux"], 2, 0),
        ];
        let reason = reason(&job("arm64,gpu", 0), &runners, THRESHOLDS, 1_000).expect("a reason");
        assert_eq!(
            reason.describe(),
            "no registered runner has the labels arm64, gpu (runners: r1 [linux], r2 [big, linux])"
        );
    }

    #[test]
    fn a_young_build_some_runner_can_take_waits_without_a_reason() {
        let runners = [runner("r1", &["gpu"], 1, 1)];
        assert_eq!(reason(&job("gpu", 0), &runners, THRESHOLDS, 59_000), None);
    }

    #[test]
    fn a_build_queued_past_the_threshold_says_how_long_and_why() {
        let runners = [runner("r1", &["gpu"], 1, 1), runner("r2", &["gpu"], 1, 1)];
        let reason = reason(&job("gpu", 0), &runners, THRESHOLDS, 130_000).expect("a reason");
        assert_eq!(
            reason.describe(),
            "queued for 2m 10s, longer than 1m: all 2 runners that can build it are busy"
        );
        assert_eq!(
            reason.summary(),
            "queued longer than 1m: all 2 runners that can build it are busy"
        );
        let mut at_its_limit = job("", 0);
        at_its_limit.site_running = 1;
        let idle = [runner("r1", &[], 2, 0)];
        let reason = super::reason(&at_its_limit, &idle, THRESHOLDS, 61_000).expect("a reason");
        assert!(
            reason.describe().contains("limit of 1 builds"),
            "{}",
            reason.describe()
        );
    }

    #[test]
    fn without_any_runner_the_reason_says_to_start_one() {
        let reason = reason(&job("", 0), &[], THRESHOLDS, 0).expect("a reason");
        assert!(reason.describe().starts_with("no runner is registered"));
    }
}
