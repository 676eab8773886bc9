//! One job, end to end: fetch, configure, build in a container, upload,
//! save the cache, report. A build that fails is an outcome reported to the
//! controller, never an error of the runner.
//!
//! The job speaks to its engine only through an [`Executor`] and the
//! job's [`Workspace`] on it. Whatever ends a job (success, failure,
//! cancel, timeout, a lost lease, the runner shutting down), everything it
//! made there is removed by [`Workspace::clean_up`], which no stop signal
//! interrupts.

use crate::RunnerConfig;
use crate::build_log::BuildLog;
use crate::client::{ClientError, ControllerClient};
use crate::executor::cache::{CACHE_DIR, CACHE_ENV, CacheVolume, Saved};
use crate::executor::{
    Executor, Exit, ImageReady, JobIds, JobNetwork, Limits, StepSpec, WORKSPACE, Workspace, image,
    private_hosts, source,
};
use crate::git;
use crate::inside;
use crate::masking::Masker;
use crate::site_config::{self, BuildSettings};
use crate::upload::{self, UploadError};
use crate::watch::{self, WatchPaths};
use jamstack_proto::{BuildNetwork, CommitInfo, JobLease, JobOutcome, SiteBuildSettings, StepTiming};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Job folders in the work directory start with this.
pub const JOB_DIR_PREFIX: &str = "jamstack-job-";

/// What a job needs from its runner.
#[derive(Debug)]
pub struct JobContext<'a> {
    pub client: &'a ControllerClient,
    pub executor: &'a dyn Executor,
    pub config: &'a RunnerConfig,
    /// The runner instance, for the labels of what the job makes.
    pub instance: &'a str,
    pub heartbeat: Duration,
    pub shutdown: &'a CancellationToken,
}

/// Why a build was stopped before it ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Someone cancelled it.
    Cancelled,
    /// It ran past its timeout.
    TimedOut(Duration),
    /// The controller no longer counts this runner as its holder.
    LeaseLost,
    /// The runner is shutting down.
    Shutdown,
}

/// A stop signal that remembers its first reason.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
}

impl Stop {
    pub fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

/// How a build ended short of a deploy.
#[derive(Debug)]
enum Ended {
    Failed {
        exit_code: Option<i64>,
        message: String,
    },
    /// Stopped: the reason is in the job's [`Stop`].
    Stopped,
    /// Nothing to build (a skip marker, the ignore command): the reason.
    Skipped(String),
}

fn failed(exit_code: Option<i64>, message: impl Into<String>) -> Ended {
    Ended::Failed {
        exit_code,
        message: message.into(),
    }
}

/// Runs a leased job to its end and reports the outcome.
pub async fn run_job(ctx: &JobContext<'_>, lease: JobLease) {
    let masker = Arc::new(masker_for(&lease));
    let stop = Stop::default();
    let heartbeats = tokio::spawn(keep_lease(
        ctx.client.clone(),
        lease.clone(),
        ctx.heartbeat,
        stop.clone(),
    ));
    let (timeout, timeout_note) = resolve_timeout(ctx.config, &lease.settings);
    let watchdog = tokio::spawn({
        let stop = stop.clone();
        async move {
            tokio::time::sleep(timeout).await;
            stop.stop(StopReason::TimedOut(timeout));
        }
    });
    let shutdown_watch = tokio::spawn({
        let (stop, shutdown) = (stop.clone(), ctx.shutdown.clone());
        async move {
            shutdown.cancelled().await;
            stop.stop(StopReason::Shutdown);
        }
    });
    let (log, shipper) = BuildLog::start(
        ctx.client.clone(),
        lease.clone(),
        masker.clone(),
        ctx.config.log_limits,
        &ctx.config.work_dir,
    );
    if let Some(note) = timeout_note {
        log.say(&note).await;
    }
    let started = Instant::now();
    // The job's network is made while the source is fetched.
    let workspace = ctx
        .executor
        .open(job_ids(ctx, &lease), lease.settings.network == BuildNetwork::Off);
    let mut timings = Timings::default();
    let ended = build(
        ctx,
        &lease,
        &log,
        &stop,
        workspace.as_ref(),
        timeout,
        &mut timings,
    )
    .await;
    watchdog.abort();
    shutdown_watch.abort();
    let elapsed = format_duration(started.elapsed());
    let outcome = match ended {
        Ok(deploy_id) => Some(JobOutcome::Succeeded { deploy_id }),
        Err(Ended::Failed { exit_code, message }) => Some(JobOutcome::Failed {
            exit_code,
            message: masker.mask_str(&message),
        }),
        Err(Ended::Skipped(reason)) => Some(JobOutcome::Skipped { reason }),
        Err(Ended::Stopped) => match stop.reason() {
            Some(StopReason::Cancelled) => Some(JobOutcome::Cancelled),
            Some(StopReason::TimedOut(limit)) => Some(JobOutcome::Failed {
                exit_code: None,
                message: format!(
                    "the build did not finish within its timeout of {} and was stopped; \
                     make it faster or raise the site's timeout (build-settings, at most {} on this runner)",
                    format_duration(limit),
                    format_duration(ctx.config.max_timeout)
                ),
            }),
            Some(StopReason::LeaseLost | StopReason::Shutdown) | None => None,
        },
    };
    match &outcome {
        Some(JobOutcome::Succeeded { .. }) => {
            log.say(&format!("\x1b[32mBuild succeeded\x1b[0m in {elapsed}"))
                .await
        }
        Some(JobOutcome::Failed { message, .. }) => {
            log.say(&format!("\x1b[31mBuild failed\x1b[0m after {elapsed}: {message}"))
                .await;
        }
        Some(JobOutcome::Cancelled) => log.say(&format!("Build cancelled after {elapsed}")).await,
        Some(JobOutcome::Skipped { reason }) => {
            log.say(&format!("\x1b[33mBuild skipped\x1b[0m after {elapsed}: {reason}"))
                .await
        }
        None if stop.reason() == Some(StopReason::Shutdown) => {
            log.say(&format!(
                "The runner shut down after {elapsed}; the build goes back to the queue"
            ))
            .await;
        }
        None => {}
    }
    drop(log);
    shipper.finish().await;
    heartbeats.abort();
    match outcome {
        Some(outcome) => match ctx.client.complete(&lease, &outcome, &timings.steps()).await {
            Ok(()) => tracing::info!(job = lease.job_id, ?outcome, "job reported"),
            Err(e) => tracing::error!(job = lease.job_id, error = %e, "reporting the job's outcome failed"),
        },
        None if stop.reason() == Some(StopReason::Shutdown) => match ctx.client.hand_back(&lease).await {
            Ok(()) => tracing::info!(job = lease.job_id, "job handed back to the queue"),
            Err(e) => tracing::warn!(
                job = lease.job_id,
                error = %e,
                "handing the job back failed; it is requeued when its lease runs out"
            ),
        },
        None => {
            tracing::warn!(job = lease.job_id, reason = ?stop.reason(), "the job's outcome is not reported");
        }
    }
    // Removal comes after the report, off the build's time, but before the
    // runner takes another job; no stop signal interrupts it.
    let cleanup = Instant::now();
    workspace.clean_up().await;
    tracing::debug!(job = lease.job_id, took = ?cleanup.elapsed(), "job cleaned up");
}

/// The name of a job's container, network and scratch volume (with a
/// suffix): unique even when several controllers hand out the same job id.
pub fn job_object_name(lease: &JobLease) -> String {
    let lease_part: String = lease.lease_id.chars().take(16).collect();
    format!("jamstack-job-{}-{lease_part}", lease.job_id)
}

/// Puts the network policy in place for a build's container on `network`
/// and says in the log what the build may reach: nothing (the site turned
/// its network off), everything (the runner allows private networks), or
/// the public internet plus the private hosts the site allows, which
/// stay open until the returned allowance is revoked. A runner that cannot
/// enforce the policy refuses the build and says what to do.
async fn keep_off_private_networks(
    ctx: &JobContext<'_>,
    lease: &JobLease,
    network: &JobNetwork,
    workspace: &dyn Workspace,
    log: &BuildLog,
) -> Result<(), Ended> {
    if *network == JobNetwork::Off {
        log.say("Network: off (the site's setting); the build reaches nothing, not even DNS")
            .await;
        return Ok(());
    }
    if ctx.config.allow_private_networks {
        log.say(
            "\x1b[33mNetwork: unrestricted; this runner lets builds reach its host and private networks \
             (--allow-private-networks)\x1b[0m",
        )
        .await;
        return Ok(());
    }
    if *network == JobNetwork::Shared {
        return Err(failed(
            None,
            format!(
                "this runner runs builds on {}'s default bridge (--network-per-job=false), where it cannot \
                 keep them off its host and private networks; run it with --network-per-job=true, turn the \
                 site's build network off, or accept the risk with --allow-private-networks",
                ctx.executor.engine_name()
            ),
        ));
    }
    if let Err(e) = workspace.hold_off_private_networks().await {
        return Err(failed(None, e));
    }
    log.say(
        "Network: public internet only; the runner's host, private networks and link-local addresses \
         (cloud metadata) are refused",
    )
    .await;
    if lease.settings.private_hosts.is_empty() {
        return Ok(());
    }
    let (nets, notes) = private_hosts::resolve_allowed(&lease.settings.private_hosts).await;
    log.say(&format!("Private hosts this site allows: {}", notes.join(", ")))
        .await;
    if nets.is_empty() {
        return Ok(());
    }
    match workspace.allow_private_hosts(&nets).await {
        Ok(()) => Ok(()),
        Err(e) => Err(failed(
            None,
            format!("opening the site's allowed private hosts to the build failed: {e}"),
        )),
    }
}

/// Every secret of the job: the site's secret variables (also those an
/// untrusted build does not get, in case they turn up anyway) and the git
/// token.
fn masker_for(lease: &JobLease) -> Masker {
    let secrets = lease
        .settings
        .environment
        .iter()
        .filter(|var| var.secret)
        .map(|var| var.value.as_str())
        .chain(lease.git_token.as_ref().map(|t| t.expose()));
    Masker::new(secrets)
}

/// Heartbeats until aborted. Each heartbeat waits at the controller until
/// the next is due, or answers at once when the build is cancelled. Stops
/// the build on cancel or when the lease is lost.
async fn keep_lease(client: ControllerClient, lease: JobLease, every: Duration, stop: Stop) {
    loop {
        let sent = Instant::now();
        match client.heartbeat(&lease, every).await {
            Ok(answer) if answer.cancel => {
                stop.stop(StopReason::Cancelled);
                return;
            }
            Ok(_) => {}
            Err(ClientError::StaleLease) => {
                stop.stop(StopReason::LeaseLost);
                return;
            }
            Err(e) => tracing::warn!(job = lease.job_id, error = %e, "heartbeat failed"),
        }
        // An answer that came back early without a cancel (an older
        // controller, an error) must not turn into a busy loop.
        if let Some(rest) = Duration::from_secs(1).checked_sub(sent.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
}

/// The build's timeout: the site's, capped by the runner's maximum, or the
/// runner's default. Also a line for the log when the site's was lowered.
pub fn resolve_timeout(config: &RunnerConfig, site: &SiteBuildSettings) -> (Duration, Option<String>) {
    match site.timeout_seconds.map(Duration::from_secs) {
        Some(asked) if asked > config.max_timeout => (
            config.max_timeout,
            Some(format!(
                "The site's timeout of {} is above this runner's maximum; the build gets {}",
                format_duration(asked),
                format_duration(config.max_timeout)
            )),
        ),
        Some(asked) => (asked, None),
        None => (config.default_timeout.min(config.max_timeout), None),
    }
}

/// The build's limits: the site's where it sets them, the runner's defaults
/// elsewhere, none above the runner's maxima. Also a line for the log for
/// each limit that was lowered.
pub fn resolve_limits(default: Limits, max: Limits, site: &SiteBuildSettings) -> (Limits, Vec<String>) {
    let mut notes = Vec::new();
    let mut pick =
        |what: &str, asked: Option<i64>, default: i64, max: i64, show: &dyn Fn(i64) -> String| match asked {
            Some(asked) if asked > max => {
                notes.push(format!(
                    "The site asks for a {what} of {}, above this runner's maximum; the build gets {}",
                    show(asked),
                    show(max)
                ));
                max
            }
            Some(asked) => asked,
            None => default.min(max),
        };
    let mib = |bytes: i64| format!("{} MiB", bytes / (1024 * 1024));
    let cpus = |nano: i64| format!("{} CPUs", nano as f64 / 1e9);
    let count = |n: i64| format!("{n} processes");
    let memory_bytes = pick(
        "memory limit",
        site.memory_mib.map(|m| (m as i64).saturating_mul(1024 * 1024)),
        default.memory_bytes,
        max.memory_bytes,
        &mib,
    );
    let nano_cpus = pick(
        "CPU limit",
        site.cpus.map(|c| (c * 1e9) as i64),
        default.nano_cpus,
        max.nano_cpus,
        &cpus,
    );
    let pids = pick(
        "process limit",
        site.pids.map(|p| p as i64),
        default.pids,
        max.pids,
        &count,
    );
    (
        Limits {
            memory_bytes,
            nano_cpus,
            pids,
        },
        notes,
    )
}

pub use jamstack_proto::format_duration;

/// A random id of 16 hex digits.
pub fn random_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Timings of the steps: sent with the outcome, and written at the end of
/// the log for people reading it.
#[derive(Default)]
struct Timings(Vec<(&'static str, Duration)>);

impl Timings {
    fn record(&mut self, step: &'static str, since: Instant) {
        self.0.push((step, since.elapsed()));
    }

    fn steps(&self) -> Vec<StepTiming> {
        self.0
            .iter()
            .map(|(step, took)| StepTiming {
                name: (*step).to_owned(),
                millis: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            })
            .collect()
    }

    fn summary(&self) -> String {
        self.0
            .iter()
            .map(|(step, d)| format!("{step} {}", format_duration(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn build(
    ctx: &JobContext<'_>,
    lease: &JobLease,
    log: &BuildLog,
    stop: &Stop,
    workspace: &dyn Workspace,
    timeout: Duration,
    timings: &mut Timings,
) -> Result<String, Ended> {
    let config = ctx.config;
    let work = tempfile::Builder::new()
        .prefix(JOB_DIR_PREFIX)
        .tempdir_in(&config.work_dir)
        .map_err(|e| {
            failed(
                None,
                format!(
                    "the runner could not make a work directory in {}: {e}",
                    config.work_dir.display()
                ),
            )
        })?;
    let checkout_dir = work.path().join("src");

    // 1. Fetch the exact commit.
    let what = if lease.commit_sha.is_empty() {
        format!("the head of {}", lease.branch)
    } else {
        format!("commit {}", &lease.commit_sha)
    };
    log.say(&format!(
        "Fetching {what} from {} (time limit {})",
        lease.repo_url,
        format_duration(timeout)
    ))
    .await;
    let step = Instant::now();
    let fetched = {
        let (url, branch, sha, dest, token) = (
            lease.repo_url.clone(),
            lease.branch.clone(),
            lease.commit_sha.clone(),
            checkout_dir.clone(),
            lease.git_token.clone(),
        );
        let stop = stop.token().clone();
        tokio::task::spawn_blocking(move || {
            let request = git::FetchRequest {
                url: &url,
                branch: &branch,
                sha: &sha,
                token: token.as_ref().map(|t| t.expose()),
                stop: &stop,
            };
            git::checkout(&request, &dest)
        })
        .await
    };
    let commit = match fetched {
        Ok(Ok(commit)) => commit,
        Ok(Err(git::GitError::Stopped)) => return Err(Ended::Stopped),
        Ok(Err(e)) => return Err(failed(None, e.to_string())),
        Err(e) => return Err(failed(None, format!("fetching the source crashed: {e}"))),
    };
    timings.record("fetch", step);
    let submodules = match commit.submodules {
        0 => String::new(),
        1 => " with 1 submodule".to_owned(),
        n => format!(" with {n} submodules"),
    };
    log.say(&format!(
        "Checked out {} ({}){submodules} in {}",
        &commit.sha[..12.min(commit.sha.len())],
        commit.message.lines().next().unwrap_or(""),
        format_duration(step.elapsed())
    ))
    .await;
    // A commit picked by hand by someone who may not change the site: the
    // build gets the site's secrets and production only if the commit is
    // on the branch. The runner, which holds the lease's secrets, keeps
    // them from a build of any other commit; the controller publishes
    // nothing the runner did not report reachable.
    let reachable = match &lease.verify_reachable_from {
        None => None,
        Some(branch) => {
            let (url, branch, sha, dest, token) = (
                lease.repo_url.clone(),
                branch.clone(),
                commit.sha.clone(),
                work.path().join("reachability"),
                lease.git_token.clone(),
            );
            let stop = stop.token().clone();
            let checked = tokio::task::spawn_blocking(move || {
                let request = git::FetchRequest {
                    url: &url,
                    branch: &branch,
                    sha: "",
                    token: token.as_ref().map(|t| t.expose()),
                    stop: &stop,
                };
                git::is_reachable_from_branch(&request, &sha, &dest)
            })
            .await;
            Some(match checked {
                Ok(Ok(reachable)) => reachable,
                Ok(Err(git::GitError::Stopped)) => return Err(Ended::Stopped),
                Ok(Err(e)) => {
                    log.say(&format!("Could not check the commit against its branch: {e}"))
                        .await;
                    false
                }
                Err(e) => {
                    log.say(&format!("Checking the commit against its branch crashed: {e}"))
                        .await;
                    false
                }
            })
        }
    };
    let untrusted_lease;
    let lease = if reachable == Some(false) {
        log.say(&format!(
            "\x1b[33mCommit {} is not on branch {}: it was picked by hand with a token that may not change \
             the site, so it builds as untrusted code (no secret variables, a cache of its own) and is not \
             published. Build it with a token holding the `sites` scope, or push it to the branch\x1b[0m",
            &commit.sha, lease.branch
        ))
        .await;
        untrusted_lease = JobLease {
            trusted: false,
            ..lease.clone()
        };
        &untrusted_lease
    } else {
        lease
    };
    let info = CommitInfo {
        sha: commit.sha.clone(),
        message: commit.message.clone(),
        author: commit.author.clone(),
        reachable,
    };
    if let Err(e) = ctx.client.report_commit(lease, &info).await {
        tracing::warn!(job = lease.job_id, error = %e, "reporting the commit failed");
    }
    if lease.honour_skip_ci
        && let Some(marker) = jamstack_proto::skip_ci_marker(&commit.message)
    {
        return Err(Ended::Skipped(format!("the commit's message says {marker}")));
    }

    // 2. Read jamstack.toml.
    let (site, settings) = match read_settings(&checkout_dir, lease).await {
        Ok(read) => read,
        Err(message) => {
            log.say(&format!("\x1b[31m{message}\x1b[0m")).await;
            return Err(failed(None, message));
        }
    };
    if stop.token().is_cancelled() {
        return Err(Ended::Stopped);
    }
    let watch = WatchPaths::choose(
        settings.watch.as_deref(),
        &lease.settings.watch_paths,
        &settings.base,
        settings.ignore.is_some(),
    )
    .map_err(|message| failed(None, message))?;
    // Like skip markers, watch paths sort out what a push or a pull
    // request changed; a build asked for by hand always builds.
    let watch = match watch {
        Some(watch) if !lease.honour_skip_ci => {
            log.say(&format!(
                "Watch paths {} are not applied: this build was asked for, not started by a push",
                watch.listed()
            ))
            .await;
            None
        }
        watch => watch,
    };
    let compared_with = if watch.is_some() || settings.ignore.is_some() {
        fetch_cached_commit(lease, &commit, &checkout_dir, log, stop).await?
    } else {
        None
    };
    if let Some(watch) = &watch
        && let Some(reason) =
            watch_says_skip(watch, &commit, compared_with.as_deref(), &checkout_dir, log).await
    {
        return Err(Ended::Skipped(reason));
    }
    if let Some(ignore) = &settings.ignore
        && ignore_says_skip(
            ctx,
            lease,
            &commit,
            compared_with.as_deref(),
            &settings,
            ignore,
            &checkout_dir,
            work.path(),
            log,
            stop,
            workspace,
        )
        .await?
    {
        return Err(Ended::Skipped(format!("the ignore command `{ignore}` exited 0")));
    }

    // 3. Build in a container, or take the files as they are.
    let (publish_dir, cache_save) = match &settings.command {
        Some(command) => {
            let built = run_in_container(
                ctx,
                lease,
                &commit,
                &settings,
                command,
                &checkout_dir,
                work.path(),
                log,
                stop,
                workspace,
                timings,
            )
            .await?;
            (built.publish_dir, built.cache)
        }
        None => {
            log.say("No build command: deploying the publish directory as it is in the repository")
                .await;
            let publish = inside::real_dir(&checkout_dir, &settings.publish, "publish", "repository");
            (checked_publish_dir(publish, &settings)?, None)
        }
    };

    // 4. Upload what the controller lacks and finalize.
    log.say(&format!("Uploading `{}`", display_publish(&settings)))
        .await;
    let step = Instant::now();
    let manifest = {
        let dir = publish_dir.clone();
        tokio::task::spawn_blocking(move || upload::build_manifest(&dir)).await
    };
    let mut manifest = match manifest {
        Ok(Ok(manifest)) => manifest,
        Ok(Err(e)) => return Err(failed(None, e.to_string())),
        Err(e) => {
            return Err(failed(
                None,
                format!("reading the publish directory crashed: {e}"),
            ));
        }
    };
    let hashed = step.elapsed();
    for warning in rule_file_warnings(&manifest) {
        log.say(&format!("\x1b[33mWarning: {warning}\x1b[0m")).await;
    }
    (manifest.redirects, manifest.headers) = site.wire_rules();
    let done = match upload::upload(ctx.client, lease, manifest).await {
        Ok(done) => done,
        Err(UploadError::Controller(ClientError::StaleLease)) => {
            stop.stop(StopReason::LeaseLost);
            return Err(Ended::Stopped);
        }
        Err(e) => return Err(failed(None, format!("uploading the deploy failed: {e}"))),
    };
    timings.record("upload and publish", step);
    log.say(&format!(
        "Uploaded {} new of {} files ({} bytes) in {} (hashing {}, manifest {}, blobs {}, finalize {})",
        done.uploaded_blobs,
        done.files,
        done.uploaded_bytes,
        format_duration(step.elapsed()),
        format_duration(hashed),
        format_duration(done.timings.manifest),
        format_duration(done.timings.blobs),
        format_duration(done.timings.finalize),
    ))
    .await;
    let where_ = if done.finalized.published {
        "published; it is live now"
    } else {
        "ready (not published: this is not a production build, or publishing is locked)"
    };
    log.say(&format!(
        "Deploy {} {where_}. Permalink: {}",
        done.finalized.deploy_id, done.finalized.permalink
    ))
    .await;

    // 5. The build succeeded: its cache becomes the site's.
    if let Some(save) = cache_save {
        let step = Instant::now();
        let version = format!("{:013}-{}", now_millis(), lease.job_id);
        match workspace
            .save_cache(
                &save.volume,
                save.empty,
                &version,
                config.cache_limit_bytes,
                stop.token(),
            )
            .await
        {
            Ok(Saved::Saved(kib)) => {
                timings.record("cache save", step);
                log.say(&format!(
                    "Saved the build cache ({}) in {}",
                    kib_text(kib),
                    format_duration(step.elapsed())
                ))
                .await;
            }
            Ok(Saved::Emptied) => {}
            Ok(Saved::TooLarge { kib, limit_kib }) => {
                log.say(&format!(
                    "\x1b[33mThe build cache was not saved: {} is over this runner's limit of {}; \
                     the previous cache stays\x1b[0m",
                    kib_text(kib),
                    kib_text(limit_kib)
                ))
                .await;
            }
            Err(e) => {
                log.say(&format!(
                    "\x1b[33mThe build cache was not saved: {e}; the previous cache stays\x1b[0m"
                ))
                .await;
            }
        }
    }
    log.say(&format!("Timings: {}", timings.summary())).await;
    Ok(done.finalized.deploy_id)
}

/// What the publish directory's `_headers` holds that is ignored, as
/// Netlify ignores it (a path with no headers, a line without a `:`), for
/// the log. Its mistakes are the controller's to refuse, when it publishes.
fn rule_file_warnings(manifest: &upload::Manifest) -> Vec<jamstack_rules::RuleWarning> {
    let Some(source) = manifest
        .files
        .iter()
        .find(|file| file.path == "_headers")
        .and_then(|file| manifest.sources.get(&file.sha256))
    else {
        return Vec::new();
    };
    // The manifest refused a rule file over `MAX_RULE_FILE_BYTES`.
    match std::fs::read(source) {
        Ok(bytes) => jamstack_rules::parse_headers_file_with_warnings(&String::from_utf8_lossy(&bytes))
            .map(|file| file.warnings)
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

fn now_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn kib_text(kib: u64) -> String {
    if kib >= 1024 {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    } else {
        format!("{kib} KiB")
    }
}

/// The publish directory once [`inside::real_dir`] found it real, or why
/// the build fails.
fn checked_publish_dir(
    found: Result<PathBuf, inside::InsideError>,
    settings: &BuildSettings,
) -> Result<PathBuf, Ended> {
    found.map_err(|e| match e {
        inside::InsideError::Missing { .. } => failed(
            None,
            format!(
                "the publish directory `{}` does not exist; check `publish` in jamstack.toml",
                display_publish(settings)
            ),
        ),
        e => failed(
            None,
            format!(
                "the publish directory `{}` is refused: {e}",
                display_publish(settings)
            ),
        ),
    })
}

fn display_publish(settings: &BuildSettings) -> String {
    if settings.publish.is_empty() {
        ".".to_owned()
    } else {
        settings.publish.clone()
    }
}

/// The parsed `jamstack.toml` and the settings it gives this build. The
/// file is read in the site's base folder (the repository root unless the
/// site's settings name one). It is the repository's: only a regular file
/// of at most [`inside::CONFIG_FILE_LIMIT`] is read, never a symlink (to
/// `/dev/zero`, say); the site's base and `base` must not go through a
/// symlink either.
async fn read_settings(
    checkout: &Path,
    lease: &JobLease,
) -> Result<(site_config::SiteConfig, BuildSettings), String> {
    let checkout = checkout.to_path_buf();
    let site_base = lease.settings.base.clone().unwrap_or_default();
    let file_name = match site_base.as_str() {
        "" => site_config::FILE_NAME.to_owned(),
        base => format!("{base}/{}", site_config::FILE_NAME),
    };
    let read = {
        let (site_base, shown) = (site_base.clone(), file_name.clone());
        tokio::task::spawn_blocking(move || {
            let folder = inside::real_dir(&checkout, &site_base, "the site's base", "repository").map_err(
                |e| match e {
                    inside::InsideError::Missing { .. } => format!(
                        "the site's base `{site_base}` is not a folder of this commit; check the site's \
                         base setting (jamstack sites settings SITE --set base=...)"
                    ),
                    e => format!("the site's base `{site_base}`: {e}"),
                },
            )?;
            inside::read_small_file(
                &folder,
                site_config::FILE_NAME,
                &shown,
                "repository",
                inside::CONFIG_FILE_LIMIT,
            )
            .map(|text| (checkout, text))
            .map_err(|e| format!("{shown}: {e}"))
        })
        .await
        .map_err(|e| format!("reading {file_name} crashed: {e}"))?
    };
    let (checkout, text) = read?;
    let config = site_config::parse(text.as_deref().unwrap_or(""), &file_name).map_err(|e| e.to_string())?;
    let settings = config.resolve_in(&site_base, lease.context, &lease.branch);
    inside::no_link_on_the_way(&checkout, &settings.base, "base", "repository")
        .map_err(|e| format!("base `{}`: {e}", settings.base))?;
    Ok((config, settings))
}

/// What a successful container step hands on.
struct Built {
    publish_dir: PathBuf,
    cache: Option<CacheSave>,
}

/// What saving the cache after the deploy needs.
struct CacheSave {
    volume: CacheVolume,
    /// The build left its cache directory empty.
    empty: bool,
}

/// Who the job's objects on the engine belong to.
pub fn job_ids(ctx: &JobContext<'_>, lease: &JobLease) -> JobIds {
    JobIds {
        name: job_object_name(lease),
        job_id: lease.job_id,
        build_id: lease.build_id,
        runner: ctx.config.name.clone(),
        instance: ctx.instance.to_owned(),
    }
}

/// The environment of the build: jamstack.toml's, then the site's (whose
/// secrets only trusted builds get), then the runner's own variables, which
/// nothing overrides. Returns the names of the secrets withheld.
pub fn build_environment(
    lease: &JobLease,
    commit_sha: &str,
    settings: &BuildSettings,
    cache: bool,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut env: Vec<(String, String)> = settings
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut withheld = Vec::new();
    for var in &lease.settings.environment {
        if var.secret && !lease.trusted {
            withheld.push(var.name.clone());
            continue;
        }
        env.retain(|(name, _)| name != &var.name);
        env.push((var.name.clone(), var.value.clone()));
    }
    let mut platform = vec![
        ("CI".to_owned(), "true".to_owned()),
        ("COMMIT_REF".to_owned(), commit_sha.to_owned()),
        ("BRANCH".to_owned(), lease.branch.clone()),
        ("HEAD".to_owned(), lease.branch.clone()),
        ("CONTEXT".to_owned(), lease.context.as_str().to_owned()),
        ("SITE_NAME".to_owned(), lease.site.clone()),
        ("BUILD_ID".to_owned(), lease.build_id.to_string()),
    ];
    if cache {
        platform.push((CACHE_ENV.to_owned(), CACHE_DIR.to_owned()));
    }
    // What a build hook's caller said, as Netlify gives it. The hook's URL
    // (`INCOMING_HOOK_URL` there) is not given: its id is the only thing a
    // caller needs to start builds, and is kept hashed.
    if let Some(hook) = &lease.incoming_hook {
        platform.push(("INCOMING_HOOK_TITLE".to_owned(), hook.title.clone()));
        platform.push(("INCOMING_HOOK_BODY".to_owned(), hook.body.clone()));
    }
    env.retain(|(name, _)| !platform.iter().any(|(p, _)| p == name));
    env.extend(platform);
    (env, withheld)
}

#[allow(clippy::too_many_arguments)]
async fn run_in_container(
    ctx: &JobContext<'_>,
    lease: &JobLease,
    commit: &git::CheckedOut,
    settings: &BuildSettings,
    command: &str,
    checkout: &Path,
    work: &Path,
    log: &BuildLog,
    stop: &Stop,
    workspace: &dyn Workspace,
    timings: &mut Timings,
) -> Result<Built, Ended> {
    let config = ctx.config;
    let image = build_image(settings, config)?;
    let step = Instant::now();
    match workspace.ensure_image(&image, config.pull_policy).await {
        Ok(ImageReady::Present) => {}
        Ok(ImageReady::Pulled) => log.say(&format!("Pulled {image}")).await,
        Ok(ImageReady::Stale { detail }) => {
            log.say(&format!(
                "\x1b[33mCould not pull a newer {image} ({detail}); using the copy on this runner\x1b[0m"
            ))
            .await;
        }
        Err(e) => return Err(failed(None, e.to_string())),
    }
    let (limits, notes) = resolve_limits(config.limits, config.max_limits, &lease.settings);
    for note in notes {
        log.say(&note).await;
    }
    let cache_volume = CacheVolume::for_build(
        &lease.settings.cache.key,
        lease.trusted,
        lease.context,
        lease.settings.cache.generation,
    );
    let (env, withheld) = build_environment(lease, &commit.sha, settings, cache_volume.is_some());
    if !withheld.is_empty() {
        log.say(&format!(
            "Secret variables withheld: this build's code does not come from the site's repository ({})",
            withheld.join(", ")
        ))
        .await;
    }
    // The network, the scratch cache and the source archive are independent.
    let scratch_volume = async {
        match &cache_volume {
            Some(cache) => workspace.prepare_cache(cache).await,
            None => Ok(()),
        }
    };
    let tar_path = work.join("source.tar");
    let source_tar = {
        let (source, tar_path) = (checkout.to_path_buf(), tar_path.clone());
        let extra: &'static [&'static str] = if cache_volume.is_some() { &["cache"] } else { &[] };
        tokio::task::spawn_blocking(move || source::write_workspace_tar(&source, extra, &tar_path))
    };
    let retire = async {
        if let Some(cache) = &cache_volume {
            ctx.executor.retire_cache(&cache.key, cache.generation).await
        } else {
            0
        }
    };
    let (network, scratch_made, packed, retired) =
        tokio::join!(workspace.network(), scratch_volume, source_tar, retire);
    let network = match network {
        Ok((network, notes)) => {
            for note in notes {
                log.say(&note).await;
            }
            network
        }
        Err(message) => return Err(failed(None, message)),
    };
    keep_off_private_networks(ctx, lease, &network, workspace, log).await?;
    if let Err(e) = scratch_made {
        return Err(failed(None, format!("making the build's cache volume: {e}")));
    }
    match packed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(failed(None, format!("packing the source: {e}"))),
        Err(e) => return Err(failed(None, format!("packing the source crashed: {e}"))),
    }
    if retired > 0 {
        log.say(&format!(
            "Removed {retired} build cache volume(s) of earlier cache generations"
        ))
        .await;
    }

    let working_dir = join_workspace(&settings.base);
    let spec = StepSpec {
        role: "build",
        image: image.clone(),
        command: command.to_owned(),
        working_dir: working_dir.clone(),
        env,
        limits,
        networked: true,
        cache: cache_volume.is_some(),
    };
    let container = workspace
        .create_step(&spec, &tar_path)
        .await
        .map_err(|e| failed(None, format!("creating the build container: {e}")))?;
    let _ = std::fs::remove_file(&tar_path);
    timings.record("container setup", step);

    if let Some(cache) = &cache_volume {
        let step = Instant::now();
        let restored = workspace.restore_cache(cache, stop.token()).await;
        match restored {
            Ok(None) => {
                log.say(&format!(
                    "No build cache yet; {CACHE_ENV}={CACHE_DIR} starts empty"
                ))
                .await
            }
            Ok(Some(kib)) => {
                timings.record("cache restore", step);
                log.say(&format!(
                    "Restored the build cache ({}) into {CACHE_DIR} in {}",
                    kib_text(kib),
                    format_duration(step.elapsed())
                ))
                .await;
            }
            Err(_) if stop.token().is_cancelled() => return Err(Ended::Stopped),
            Err(e) => {
                log.say(&format!(
                    "\x1b[33mThe build cache could not be restored ({e}); the build starts without it\x1b[0m"
                ))
                .await;
            }
        }
    }

    log.say(&format!(
        "Running `{command}` in {image} (in {working_dir}; {} MiB memory, {} CPUs, {} processes)",
        limits.memory_bytes / (1024 * 1024),
        limits.nano_cpus as f64 / 1e9,
        limits.pids
    ))
    .await;
    let step = Instant::now();
    let (exit, start) = workspace
        .run_step(&container, log.sender(), stop.token(), config.stop_grace)
        .await
        .map_err(|e| failed(None, e.to_string()))?;
    timings.0.push(("container start", start));
    timings.0.push(("build", step.elapsed().saturating_sub(start)));
    match exit {
        Exit::Stopped => return Err(Ended::Stopped),
        Exit::Code {
            code,
            oom_killed: true,
        } => {
            return Err(failed(
                Some(code),
                format!(
                    "the build ran out of memory (limit {} MiB) and was killed; lower its memory use \
                     or raise the site's memory limit",
                    limits.memory_bytes / (1024 * 1024)
                ),
            ));
        }
        Exit::Code { code, .. } if code != 0 => {
            return Err(failed(
                Some(code),
                format!("the build command exited with {code}"),
            ));
        }
        Exit::Code { .. } => {}
    }
    let step = Instant::now();
    let output = workspace
        .copy_out(
            &container,
            &join_workspace(&settings.publish),
            work,
            config.publish_limit_bytes,
        )
        .await
        .map_err(|e| failed(None, e.to_string()))?;
    if !output.skipped.is_empty() {
        log.say(&format!(
            "\x1b[33mLeft out of the deploy: {} entr{} of the build's output that are not files, \
             folders or symlinks, or whose path leaves the publish directory: {}\x1b[0m",
            output.skipped.len(),
            if output.skipped.len() == 1 { "y" } else { "ies" },
            output
                .skipped
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await;
    }
    // The build may have made `publish` a symlink (`ln -s ../.. public`):
    // the archive then holds the link itself, which is refused here.
    let publish = inside::real_dir(&output.folder, &output.top, "publish", "build's output");
    let publish_dir = checked_publish_dir(publish, settings)?;
    let cache = match cache_volume {
        Some(volume) => {
            let empty = !workspace.has_entries(&container, CACHE_DIR).await.unwrap_or(true);
            Some(CacheSave { volume, empty })
        }
        None => None,
    };
    timings.record("collect output", step);
    Ok(Built { publish_dir, cache })
}

/// Fetches the commit of the site's last successful build of this context
/// beside the checkout, to compare with. `None`, said in the log, when
/// there is none yet or the server no longer has it (a force-push dropped
/// it): nothing then counts as unchanged.
async fn fetch_cached_commit(
    lease: &JobLease,
    commit: &git::CheckedOut,
    checkout: &Path,
    log: &BuildLog,
    stop: &Stop,
) -> Result<Option<String>, Ended> {
    let Some(cached) = lease.cached_commit.clone() else {
        log.say("No earlier successful build of this context to compare with: every change counts")
            .await;
        return Ok(None);
    };
    if cached == commit.sha {
        log.say(&format!(
            "The last successful build of this context built this same commit ({}): comparing it with itself",
            watch::short(&cached)
        ))
        .await;
        return Ok(Some(cached));
    }
    let fetched = {
        let (url, branch, dest, token, sha) = (
            lease.repo_url.clone(),
            lease.branch.clone(),
            checkout.to_path_buf(),
            lease.git_token.clone(),
            cached.clone(),
        );
        let stop = stop.token().clone();
        tokio::task::spawn_blocking(move || {
            let request = git::FetchRequest {
                url: &url,
                branch: &branch,
                sha: &sha,
                token: token.as_ref().map(|t| t.expose()),
                stop: &stop,
            };
            git::fetch_for_comparison(&request, &dest, &sha)
        })
        .await
    };
    match fetched {
        Ok(Ok(())) => Ok(Some(cached)),
        Ok(Err(git::GitError::Stopped)) => Err(Ended::Stopped),
        Ok(Err(e)) => {
            log.say(&format!(
                "\x1b[33mCould not fetch commit {} of the last successful build to compare with ({e}); \
                 a force-push may have removed it. Building\x1b[0m",
                watch::short(&cached)
            ))
            .await;
            Ok(None)
        }
        Err(e) => Err(failed(
            None,
            format!("fetching the last built commit crashed: {e}"),
        )),
    }
}

/// Why the build is skipped when no path under `watch` changed between
/// `compared_with` and the commit being built; `None` (and a line in the
/// log) when the build goes ahead.
async fn watch_says_skip(
    watch: &WatchPaths,
    commit: &git::CheckedOut,
    compared_with: Option<&str>,
    checkout: &Path,
    log: &BuildLog,
) -> Option<String> {
    let Some(from) = compared_with else {
        log.say(&format!("Watch paths {}: building", watch.listed()))
            .await;
        return None;
    };
    let found = {
        let (dir, from, to, globs) = (
            checkout.to_path_buf(),
            from.to_owned(),
            commit.sha.clone(),
            watch.clone(),
        );
        tokio::task::spawn_blocking(move || {
            git::first_changed_path(&dir, &from, &to, |path| globs.matches(path))
        })
        .await
    };
    let found = match found {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            log.say(&format!(
                "\x1b[33mCould not compare {} with {}: {e}; building\x1b[0m",
                watch::short(from),
                watch::short(&commit.sha)
            ))
            .await;
            return None;
        }
        Err(e) => {
            log.say(&format!("Comparing the commits crashed: {e}; building"))
                .await;
            return None;
        }
    };
    match found {
        Some(path) => {
            log.say(&format!(
                "`{path}` changed between {} and {}, under the watch paths {}: building",
                watch::short(from),
                watch::short(&commit.sha),
                watch.listed()
            ))
            .await;
            None
        }
        None => Some(watch.skip_reason(from, &commit.sha)),
    }
}

/// Runs the site's `ignore` command in its own build container, with the
/// build's image, source and environment (secrets withheld from untrusted
/// builds as for the build itself); exit status 0 means "nothing to build"
/// (Netlify's rule). Any other status builds, so a broken ignore command
/// never hides a change; its output is in the log either way.
///
/// As on Netlify, it gets `COMMIT_REF` and `CACHED_COMMIT_REF`, the commit
/// of the last successful build of this context, and the checkout's
/// `.git` holding both, so `git diff --quiet $CACHED_COMMIT_REF $COMMIT_REF
/// -- .` works. With nothing to compare with (a first build, or a commit a
/// force-push removed), `CACHED_COMMIT_REF` is git's empty tree, so that
/// diff finds every file changed and the site builds; Netlify hands
/// `COMMIT_REF` there, and the same command skips the first build.
#[allow(clippy::too_many_arguments)]
async fn ignore_says_skip(
    ctx: &JobContext<'_>,
    lease: &JobLease,
    commit: &git::CheckedOut,
    compared_with: Option<&str>,
    settings: &BuildSettings,
    ignore: &str,
    checkout: &Path,
    work: &Path,
    log: &BuildLog,
    stop: &Stop,
    workspace: &dyn Workspace,
) -> Result<bool, Ended> {
    let config = ctx.config;
    let image = build_image(settings, config)?;
    workspace
        .ensure_image(&image, config.pull_policy)
        .await
        .map_err(|e| failed(None, e.to_string()))?;
    let (mut env, _withheld) = build_environment(lease, &commit.sha, settings, false);
    let cached_ref = compared_with.unwrap_or(git::EMPTY_TREE);
    env.push(("CACHED_COMMIT_REF".to_owned(), cached_ref.to_owned()));
    let (limits, _notes) = resolve_limits(config.limits, config.max_limits, &lease.settings);
    let spec = StepSpec {
        role: "ignore",
        image: image.clone(),
        command: ignore.to_owned(),
        working_dir: join_workspace(&settings.base),
        env,
        limits,
        // Deciding whether to build needs the source only; the command
        // runs before the build's network (and its policy) is in place.
        networked: false,
        cache: false,
    };
    let tar_path = work.join("ignore-source.tar");
    let packed = {
        let (source, tar_path) = (checkout.to_path_buf(), tar_path.clone());
        tokio::task::spawn_blocking(move || source::write_workspace_tar_with_history(&source, &tar_path))
            .await
    };
    match packed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(failed(None, format!("packing the source: {e}"))),
        Err(e) => return Err(failed(None, format!("packing the source crashed: {e}"))),
    }
    log.say(&format!(
        "Running the ignore command `{ignore}` in {image} (COMMIT_REF {}, CACHED_COMMIT_REF {})",
        watch::short(&commit.sha),
        match compared_with {
            Some(sha) => watch::short(sha).to_owned(),
            None => format!(
                "{} (git's empty tree: nothing built before to compare with)",
                watch::short(cached_ref)
            ),
        }
    ))
    .await;
    let container = workspace.create_step(&spec, &tar_path).await.map_err(|e| {
        failed(
            None,
            format!("creating the container for the ignore command: {e}"),
        )
    })?;
    let ran = workspace
        .run_step(&container, log.sender(), stop.token(), config.stop_grace)
        .await;
    match ran {
        Ok((Exit::Code { code: 0, .. }, _)) => Ok(true),
        Ok((Exit::Code { code, .. }, _)) => {
            log.say(&format!("The ignore command exited with {code}: building"))
                .await;
            Ok(false)
        }
        Ok((_, _)) => Err(Ended::Stopped),
        Err(e) => Err(failed(None, format!("running the ignore command: {e}"))),
    }
}

/// `/workspace/<relative>` without a trailing slash.
fn join_workspace(relative: &str) -> String {
    let relative = relative.trim_matches('/');
    if relative.is_empty() {
        WORKSPACE.to_owned()
    } else {
        format!("{WORKSPACE}/{relative}")
    }
}

/// The image the site's build runs in (its own or the runner's default),
/// if this runner allows it: the build and the `ignore` command both use it.
fn build_image(settings: &BuildSettings, config: &RunnerConfig) -> Result<String, Ended> {
    let image = settings
        .image
        .clone()
        .unwrap_or_else(|| config.default_image.clone());
    if !image::image_allowed(&image, &config.allowed_images) {
        return Err(failed(
            None,
            format!(
                "image `{image}` is not allowed on this runner (allowed: {}); set `image` in jamstack.toml to one of those",
                config.allowed_images.join(", ")
            ),
        ));
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jamstack_proto::{BuildContext, CacheRef, EnvVar};

    #[test]
    fn paths_in_the_container_sit_under_the_workspace() {
        assert_eq!(join_workspace(""), "/workspace");
        assert_eq!(join_workspace("site"), "/workspace/site");
        assert_eq!(join_workspace("site/public/"), "/workspace/site/public");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.23s");
        assert_eq!(format_duration(Duration::from_millis(87)), "87ms");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn a_site_may_lower_its_limits_but_not_raise_them_past_the_runners_maximum() {
        let default = Limits::default();
        let max = Limits {
            memory_bytes: 4096 * 1024 * 1024,
            ..Limits::default()
        };
        let site = SiteBuildSettings {
            memory_mib: Some(8192),
            pids: Some(64),
            ..Default::default()
        };
        let (limits, notes) = resolve_limits(default, max, &site);
        assert_eq!(limits.memory_bytes, 4096 * 1024 * 1024);
        assert_eq!(limits.pids, 64);
        assert_eq!(limits.nano_cpus, default.nano_cpus);
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("8192 MiB") && notes[0].contains("4096 MiB"),
            "{notes:?}"
        );
    }

    #[test]
    fn a_site_timeout_is_capped_by_the_runner() {
        let mut config = RunnerConfig::new("http://x", "t");
        config.max_timeout = Duration::from_secs(600);
        let site = |s| SiteBuildSettings {
            timeout_seconds: s,
            ..Default::default()
        };
        assert_eq!(
            resolve_timeout(&config, &site(Some(60))).0,
            Duration::from_secs(60)
        );
        let (capped, note) = resolve_timeout(&config, &site(Some(3600)));
        assert_eq!(capped, Duration::from_secs(600));
        assert!(note.unwrap().contains("maximum"));
        assert_eq!(resolve_timeout(&config, &site(None)).0, Duration::from_secs(600));
    }

    fn lease(trusted: bool) -> JobLease {
        JobLease {
            job_id: 1,
            lease_id: "l".into(),
            build_id: 2,
            attempt: 1,
            site: "blog".into(),
            repo_url: "/tmp/x".into(),
            commit_sha: String::new(),
            branch: "main".into(),
            context: BuildContext::Production,
            pr_number: None,
            lease_seconds: 60,
            honour_skip_ci: false,
            trusted,
            verify_reachable_from: None,
            cached_commit: None,
            settings: SiteBuildSettings {
                environment: vec![
                    EnvVar {
                        name: "API_KEY".into(),
                        value: "k-123456".into(),
                        secret: true,
                    },
                    EnvVar {
                        name: "THEME".into(),
                        value: "dark".into(),
                        secret: false,
                    },
                    EnvVar {
                        name: "CONTEXT".into(),
                        value: "mine".into(),
                        secret: false,
                    },
                ],
                cache: CacheRef {
                    key: "k".into(),
                    generation: 0,
                },
                ..Default::default()
            },
            git_token: Some(jamstack_proto::Secret::new("ghs_token_value")),
            incoming_hook: None,
        }
    }

    #[test]
    fn site_variables_override_the_file_and_the_runners_own_override_both() {
        let settings = BuildSettings {
            environment: [("THEME".to_owned(), "light".to_owned())].into(),
            ..Default::default()
        };
        let (env, withheld) = build_environment(&lease(true), "abc", &settings, true);
        let get = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("THEME"), Some("dark"));
        assert_eq!(get("API_KEY"), Some("k-123456"));
        assert_eq!(get("CONTEXT"), Some("production"));
        assert_eq!(get(CACHE_ENV), Some(CACHE_DIR));
        assert!(withheld.is_empty());
        assert_eq!(env.iter().filter(|(n, _)| n == "CONTEXT").count(), 1);
        assert!(
            !env.iter().any(|(_, v)| v.contains("ghs_token_value")),
            "the git token never reaches the container"
        );
    }

    #[test]
    fn untrusted_builds_get_no_secrets_but_secrets_are_masked_all_the_same() {
        let lease = lease(false);
        let (env, withheld) = build_environment(&lease, "abc", &BuildSettings::default(), true);
        assert!(!env.iter().any(|(n, _)| n == "API_KEY"));
        assert_eq!(withheld, ["API_KEY"]);
        let masker = masker_for(&lease);
        assert_eq!(masker.mask_str("k-123456 ghs_token_value"), "*** ***");
    }
}
