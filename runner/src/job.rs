//! One job, end to end: fetch, configure, build in a container, upload,
//! report. A build that fails is an outcome reported to the controller,
//! never an error of the runner.

use crate::RunnerConfig;
use crate::build_log::BuildLog;
use crate::client::{ClientError, ControllerClient};
use crate::docker::{ContainerSpec, DockerError, Engine, Exit, WORKSPACE};
use crate::git;
use crate::site_config::{self, BuildSettings};
use crate::upload::{self, UploadError};
use jamstack_proto::{CommitInfo, JobLease, JobOutcome};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Runs a leased job to its end and reports the outcome.
pub async fn run_job(
    client: &ControllerClient,
    engine: &Engine,
    config: &RunnerConfig,
    heartbeat: Duration,
    lease: JobLease,
) {
    let cancel = CancellationToken::new();
    let lease_lost = Arc::new(AtomicBool::new(false));
    let heartbeats = tokio::spawn(keep_lease(
        client.clone(),
        lease.clone(),
        heartbeat,
        cancel.clone(),
        lease_lost.clone(),
    ));
    let (log, shipper) = BuildLog::start(client.clone(), lease.clone());
    let started = Instant::now();
    let outcome = build(client, engine, config, &lease, &log, &cancel).await;
    let elapsed = format_duration(started.elapsed());
    match &outcome {
        JobOutcome::Succeeded { .. } => {
            log.say(&format!("\x1b[32mBuild succeeded\x1b[0m in {elapsed}"))
                .await
        }
        JobOutcome::Failed { message, .. } => {
            log.say(&format!("\x1b[31mBuild failed\x1b[0m after {elapsed}: {message}"))
                .await;
        }
        JobOutcome::Cancelled => log.say(&format!("Build cancelled after {elapsed}")).await,
        JobOutcome::Skipped { reason } => {
            log.say(&format!("\x1b[33mBuild skipped\x1b[0m after {elapsed}: {reason}"))
                .await
        }
    }
    drop(log);
    shipper.finish().await;
    heartbeats.abort();
    if lease_lost.load(Ordering::SeqCst) {
        tracing::warn!(
            job = lease.job_id,
            "lease lost; the job's outcome is not reported"
        );
        return;
    }
    match client.complete(&lease, &outcome).await {
        Ok(()) => tracing::info!(job = lease.job_id, ?outcome, "job reported"),
        Err(e) => tracing::error!(job = lease.job_id, error = %e, "reporting the job's outcome failed"),
    }
}

/// Heartbeats until aborted. Cancels the build when the controller asks for
/// it or when the lease is lost.
async fn keep_lease(
    client: ControllerClient,
    lease: JobLease,
    every: Duration,
    cancel: CancellationToken,
    lost: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        match client.heartbeat(&lease).await {
            Ok(answer) if answer.cancel => cancel.cancel(),
            Ok(_) => {}
            Err(ClientError::StaleLease) => {
                lost.store(true, Ordering::SeqCst);
                cancel.cancel();
                return;
            }
            Err(e) => tracing::warn!(job = lease.job_id, error = %e, "heartbeat failed"),
        }
    }
}

fn failed(exit_code: Option<i64>, message: impl Into<String>) -> JobOutcome {
    JobOutcome::Failed {
        exit_code,
        message: message.into(),
    }
}

pub fn format_duration(d: Duration) -> String {
    if d.as_secs() >= 60 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// Timings of the steps, reported at the end of the log.
#[derive(Default)]
struct Timings(Vec<(&'static str, Duration)>);

impl Timings {
    fn record(&mut self, step: &'static str, since: Instant) {
        self.0.push((step, since.elapsed()));
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
    client: &ControllerClient,
    engine: &Engine,
    config: &RunnerConfig,
    lease: &JobLease,
    log: &BuildLog,
    cancel: &CancellationToken,
) -> JobOutcome {
    let mut timings = Timings::default();
    let work = match tempfile::Builder::new()
        .prefix("jamstack-job-")
        .tempdir_in(&config.work_dir)
    {
        Ok(dir) => dir,
        Err(e) => {
            return failed(
                None,
                format!(
                    "the runner could not make a work directory in {}: {e}",
                    config.work_dir.display()
                ),
            );
        }
    };
    let checkout_dir = work.path().join("src");

    // 1. Fetch the exact commit.
    let what = if lease.commit_sha.is_empty() {
        format!("the head of {}", lease.branch)
    } else {
        format!("commit {}", &lease.commit_sha)
    };
    log.say(&format!("Fetching {what} from {}", lease.repo_url)).await;
    let step = Instant::now();
    let fetched = {
        let (url, branch, sha, dest, token) = (
            lease.repo_url.clone(),
            lease.branch.clone(),
            lease.commit_sha.clone(),
            checkout_dir.clone(),
            lease.github_token.clone(),
        );
        tokio::task::spawn_blocking(move || {
            git::checkout(&url, &branch, &sha, &dest, token.as_ref().map(|t| t.expose()))
        })
        .await
    };
    let commit = match fetched {
        Ok(Ok(commit)) => commit,
        Ok(Err(e)) => return failed(None, e.to_string()),
        Err(e) => return failed(None, format!("fetching the source crashed: {e}")),
    };
    timings.record("fetch", step);
    log.say(&format!(
        "Checked out {} ({}) in {}",
        &commit.sha[..12.min(commit.sha.len())],
        commit.message.lines().next().unwrap_or(""),
        format_duration(step.elapsed())
    ))
    .await;
    let info = CommitInfo {
        sha: commit.sha.clone(),
        message: commit.message.clone(),
        author: commit.author.clone(),
    };
    if let Err(e) = client.report_commit(lease, &info).await {
        tracing::warn!(job = lease.job_id, error = %e, "reporting the commit failed");
    }
    if lease.honour_skip_ci
        && let Some(marker) = jamstack_proto::skip_ci_marker(&commit.message)
    {
        return JobOutcome::Skipped {
            reason: format!("the commit's message says {marker}"),
        };
    }

    // 2. Read jamstack.toml.
    let (site, settings) = match read_settings(&checkout_dir, lease).await {
        Ok(read) => read,
        Err(message) => {
            log.say(&format!("\x1b[31m{message}\x1b[0m")).await;
            return failed(None, message);
        }
    };
    if cancel.is_cancelled() {
        return JobOutcome::Cancelled;
    }
    if let Some(ignore) = &settings.ignore {
        match ignore_says_skip(
            engine,
            config,
            lease,
            &commit,
            &settings,
            ignore,
            &checkout_dir,
            log,
            cancel,
        )
        .await
        {
            Ok(true) => {
                return JobOutcome::Skipped {
                    reason: format!("the ignore command `{ignore}` exited 0"),
                };
            }
            Ok(false) => {}
            Err(outcome) => return outcome,
        }
    }

    // 3. Build in a container, or take the files as they are.
    let publish_dir = match &settings.command {
        Some(command) => {
            match run_in_container(
                engine,
                config,
                lease,
                &commit,
                &settings,
                command,
                &checkout_dir,
                work.path(),
                log,
                cancel,
                &mut timings,
            )
            .await
            {
                Ok(dir) => dir,
                Err(outcome) => return outcome,
            }
        }
        None => {
            log.say("No build command: deploying the publish directory as it is in the repository")
                .await;
            checkout_dir.join(&settings.publish)
        }
    };
    if !publish_dir.is_dir() {
        return failed(
            None,
            format!(
                "the publish directory `{}` does not exist; check `publish` in jamstack.toml",
                display_publish(&settings)
            ),
        );
    }

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
        Ok(Err(e)) => return failed(None, e.to_string()),
        Err(e) => return failed(None, format!("reading the publish directory crashed: {e}")),
    };
    (manifest.redirects, manifest.headers) = site.wire_rules();
    match upload::upload(client, lease, manifest).await {
        Ok(done) => {
            timings.record("upload and publish", step);
            log.say(&format!(
                "Uploaded {} new of {} files ({} bytes) in {}",
                done.uploaded_blobs,
                done.files,
                done.uploaded_bytes,
                format_duration(step.elapsed())
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
            log.say(&format!("Timings: {}", timings.summary())).await;
            JobOutcome::Succeeded {
                deploy_id: done.finalized.deploy_id,
            }
        }
        Err(UploadError::Controller(ClientError::StaleLease)) => JobOutcome::Cancelled,
        Err(e) => failed(None, format!("uploading the deploy failed: {e}")),
    }
}

fn display_publish(settings: &BuildSettings) -> String {
    if settings.publish.is_empty() {
        ".".to_owned()
    } else {
        settings.publish.clone()
    }
}

/// The parsed `jamstack.toml` and the settings it gives this build.
async fn read_settings(
    checkout: &Path,
    lease: &JobLease,
) -> Result<(site_config::SiteConfig, BuildSettings), String> {
    let path = checkout.join(site_config::FILE_NAME);
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("reading {}: {e}", site_config::FILE_NAME)),
    };
    let config = site_config::parse(&text, site_config::FILE_NAME).map_err(|e| e.to_string())?;
    let settings = config.resolve(lease.context, &lease.branch);
    Ok((config, settings))
}

#[allow(clippy::too_many_arguments)]
async fn run_in_container(
    engine: &Engine,
    config: &RunnerConfig,
    lease: &JobLease,
    commit: &git::CheckedOut,
    settings: &BuildSettings,
    command: &str,
    checkout: &Path,
    work: &Path,
    log: &BuildLog,
    cancel: &CancellationToken,
    timings: &mut Timings,
) -> Result<PathBuf, JobOutcome> {
    let image = settings
        .image
        .clone()
        .unwrap_or_else(|| config.default_image.clone());
    let step = Instant::now();
    if let Err(e) = engine.ensure_image(&image).await {
        return Err(failed(None, e.to_string()));
    }
    let env = build_env(lease, commit, settings);
    let working_dir = join_workspace(&settings.base);
    let spec = ContainerSpec {
        image: image.clone(),
        command: command.to_owned(),
        working_dir: working_dir.clone(),
        env,
        job_id: lease.job_id,
        lease_id: lease.lease_id.clone(),
        runner: config.name.clone(),
        limits: config.limits,
    };
    let source = checkout.to_path_buf();
    let tar = match tokio::task::spawn_blocking(move || crate::docker::workspace_tar(&source)).await {
        Ok(Ok(tar)) => bytes::Bytes::from(tar),
        Ok(Err(e)) => return Err(failed(None, format!("packing the source: {e}"))),
        Err(e) => return Err(failed(None, format!("packing the source crashed: {e}"))),
    };
    let container = match engine.create(&spec).await {
        Ok(id) => id,
        Err(e) => return Err(failed(None, format!("creating the build container: {e}"))),
    };
    let result = async {
        engine.upload(&container, tar).await?;
        timings.record("container setup", step);
        log.say(&format!("Running `{command}` in {image} (in {working_dir})"))
            .await;
        let step = Instant::now();
        let (exit, start) = engine.run(&container, log.sender(), cancel).await?;
        timings.0.push(("container start", start));
        timings.0.push(("build", step.elapsed().saturating_sub(start)));
        if exit
            != (Exit::Code {
                code: 0,
                oom_killed: false,
            })
        {
            return Ok::<_, DockerError>(Err(exit));
        }
        let step = Instant::now();
        let dir = engine
            .download(&container, &join_workspace(&settings.publish), work)
            .await?;
        timings.record("collect output", step);
        Ok(Ok(dir))
    }
    .await;
    engine.remove(&container).await;
    match result {
        Ok(Ok(dir)) => Ok(dir),
        Ok(Err(Exit::Cancelled)) => Err(JobOutcome::Cancelled),
        Ok(Err(Exit::Code {
            code,
            oom_killed: true,
        })) => Err(failed(
            Some(code),
            format!(
                "the build ran out of memory (limit {} MiB) and was killed; lower its memory use or raise the limit",
                config.limits.memory_bytes / (1024 * 1024)
            ),
        )),
        Ok(Err(Exit::Code { code, .. })) => Err(failed(
            Some(code),
            format!("the build command exited with {code}"),
        )),
        Err(e) => Err(failed(None, e.to_string())),
    }
}

/// The environment of the build (and of the `ignore` command).
fn build_env(lease: &JobLease, commit: &git::CheckedOut, settings: &BuildSettings) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = settings
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend([
        ("CI".to_owned(), "true".to_owned()),
        ("COMMIT_REF".to_owned(), commit.sha.clone()),
        ("BRANCH".to_owned(), lease.branch.clone()),
        ("HEAD".to_owned(), lease.branch.clone()),
        ("CONTEXT".to_owned(), lease.context.as_str().to_owned()),
        ("SITE_NAME".to_owned(), lease.site.clone()),
        ("BUILD_ID".to_owned(), lease.build_id.to_string()),
    ]);
    env
}

/// Runs the site's `ignore` command in its own build container, with the
/// build's image, source and environment; exit status 0 means "nothing to
/// build" (Netlify's rule). Any other status builds, so a broken ignore
/// command never hides a change; its output is in the log either way.
#[allow(clippy::too_many_arguments)]
async fn ignore_says_skip(
    engine: &Engine,
    config: &RunnerConfig,
    lease: &JobLease,
    commit: &git::CheckedOut,
    settings: &BuildSettings,
    ignore: &str,
    checkout: &Path,
    log: &BuildLog,
    cancel: &CancellationToken,
) -> Result<bool, JobOutcome> {
    let image = settings
        .image
        .clone()
        .unwrap_or_else(|| config.default_image.clone());
    if let Err(e) = engine.ensure_image(&image).await {
        return Err(failed(None, e.to_string()));
    }
    let spec = ContainerSpec {
        image: image.clone(),
        command: ignore.to_owned(),
        working_dir: join_workspace(&settings.base),
        env: build_env(lease, commit, settings),
        job_id: lease.job_id,
        lease_id: lease.lease_id.clone(),
        runner: config.name.clone(),
        limits: config.limits,
    };
    let source = checkout.to_path_buf();
    let tar = match tokio::task::spawn_blocking(move || crate::docker::workspace_tar(&source)).await {
        Ok(Ok(tar)) => bytes::Bytes::from(tar),
        Ok(Err(e)) => return Err(failed(None, format!("packing the source: {e}"))),
        Err(e) => return Err(failed(None, format!("packing the source crashed: {e}"))),
    };
    log.say(&format!("Running the ignore command `{ignore}` in {image}"))
        .await;
    let container = engine.create(&spec).await.map_err(|e| {
        failed(
            None,
            format!("creating the container for the ignore command: {e}"),
        )
    })?;
    let ran = async {
        engine.upload(&container, tar).await?;
        engine.run(&container, log.sender(), cancel).await
    }
    .await;
    engine.remove(&container).await;
    match ran {
        Ok((Exit::Code { code: 0, .. }, _)) => Ok(true),
        Ok((Exit::Code { code, .. }, _)) => {
            log.say(&format!("The ignore command exited with {code}: building"))
                .await;
            Ok(false)
        }
        Ok((Exit::Cancelled, _)) => Err(JobOutcome::Cancelled),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
