//! The runner of `jamstack-controller up`, in a process of its own.
//!
//! A build is outside input: it can make its runner run out of memory,
//! crash, or overflow a parser's stack. In its own process, none of that
//! takes the controller (and every site it serves) down with it. `up`
//! starts the `jamstack-runner` program as `jamstack-runner
//! embedded-runner` ([`supervise`]), found beside the controller's own
//! executable or on `PATH` ([`runner_program`]), and restarts it with
//! backoff when it dies. The controller links no runner code: the two
//! programs share only the contract of
//! [`jamstack_proto::embedded_runner`].
//!
//! The child's settings, its token among them, travel as one JSON line on
//! its standard input: never on the command line, where `ps` shows them to
//! every user, nor in a file left behind. The parent then holds the pipe
//! open and says nothing more: the child stops (handing its lease back)
//! when the pipe closes, which the kernel does for any death of the parent,
//! `kill -9` included. The child's log lines go to the parent's own
//! standard output and error, so they appear in the controller's output.

use anyhow::Context as _;
use backon::{BackoffBuilder, ExponentialBuilder};
use jamstack_program::logging::LogFormat;
use jamstack_proto::embedded_runner::{EmbeddedRunnerSettings, SUBCOMMAND};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio_util::sync::CancellationToken;

/// The runner's program, as the release archive and `cargo build` name it.
pub const RUNNER_PROGRAM: &str = "jamstack-runner";

/// The `jamstack-runner` program `up` starts: the one beside this
/// controller's own executable (where the packages and `cargo build` put
/// it, so the two come from one build and speak one protocol), else the
/// first on `PATH`.
pub fn runner_program() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the controller's own executable")?;
    find_runner_program(&exe, std::env::var_os("PATH").as_deref())
}

fn find_runner_program(controller_exe: &Path, path_var: Option<&OsStr>) -> anyhow::Result<PathBuf> {
    let dir = controller_exe.parent().unwrap_or(Path::new("."));
    let beside = dir.join(RUNNER_PROGRAM);
    if is_executable(&beside) {
        return Ok(beside);
    }
    let on_path = path_var
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(RUNNER_PROGRAM))
        .find(|candidate| is_executable(candidate));
    on_path.ok_or_else(|| {
        anyhow::anyhow!(
            "`up` runs builds with the `{RUNNER_PROGRAM}` program, which is neither beside this \
             controller (in {}) nor on PATH. Install it next to jamstack-controller: both are in \
             the release, and `cargo build --release -p jamstack-controller -p jamstack-runner` \
             builds both into target/release",
            dir.display()
        )
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The longest pause between two starts of a child that keeps dying.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A child that ran this long was healthy: the next restart is quick again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// How long a stopping child gets to hand its lease back and remove its
/// containers before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Runs the runner as a child process until `shutdown`, starting it again
/// (1 s, 2 s, 4 s … up to 30 s apart) whenever it dies. On `shutdown` the
/// child is asked to stop and waited for, so it can hand its job back
/// while the controller still answers.
pub async fn supervise(
    program: PathBuf,
    settings: EmbeddedRunnerSettings,
    log_format: LogFormat,
    shutdown: CancellationToken,
) {
    let restarts = ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(MAX_BACKOFF)
        .with_factor(2.0)
        .without_max_times();
    let mut pauses = restarts.build();
    loop {
        let started = Instant::now();
        match start_child(&program, &settings, log_format).await {
            Ok((mut child, stdin)) => {
                tracing::info!(pid = child.id(), "embedded runner started");
                tokio::select! {
                    status = child.wait() => {
                        log_death(status, started.elapsed());
                        drop(stdin);
                    }
                    () = shutdown.cancelled() => {
                        stop_child(child, stdin).await;
                        return;
                    }
                }
            }
            Err(e) => tracing::error!(error = format!("{e:#}"), "starting the embedded runner"),
        }
        if started.elapsed() >= HEALTHY_RUN {
            pauses = restarts.build();
        }
        let pause = pauses.next().unwrap_or(MAX_BACKOFF);
        tracing::warn!(
            in_seconds = pause.as_secs(),
            "restarting the embedded runner; its job, if any, is queued again when its lease expires"
        );
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

async fn start_child(
    program: &Path,
    settings: &EmbeddedRunnerSettings,
    log_format: LogFormat,
) -> anyhow::Result<(Child, ChildStdin)> {
    let format = clap::ValueEnum::to_possible_value(&log_format)
        .map(|value| value.get_name().to_owned())
        .unwrap_or_else(|| "text".to_owned());
    let mut child = Command::new(program)
        .args(["--log-format", &format, SUBCOMMAND])
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        // Its own process group: a Ctrl-C in the terminal reaches the
        // controller alone, which then stops the child in order.
        .process_group(0)
        // A controller that panics or returns early never leaves it behind.
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("running {} {SUBCOMMAND}", program.display()))?;
    let mut stdin = child.stdin.take().context("the child's standard input")?;
    let mut line = serde_json::to_vec(settings)?;
    line.push(b'\n');
    stdin
        .write_all(&line)
        .await
        .context("sending the embedded runner its settings")?;
    stdin.flush().await?;
    Ok((child, stdin))
}

fn log_death(status: std::io::Result<ExitStatus>, ran: Duration) {
    let ran_seconds = ran.as_secs();
    match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt as _;
            match status.signal() {
                Some(signal) => tracing::error!(signal, ran_seconds, "the embedded runner was killed"),
                None => tracing::error!(code = status.code(), ran_seconds, "the embedded runner exited"),
            }
        }
        Err(e) => tracing::error!(error = %e, ran_seconds, "waiting for the embedded runner"),
    }
}

/// Closes the child's standard input (its signal to stop) and waits for it,
/// killing it if it takes longer than [`STOP_GRACE`].
async fn stop_child(mut child: Child, stdin: ChildStdin) {
    drop(stdin);
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(_) => tracing::info!("the embedded runner stopped"),
        Err(_) => {
            tracing::warn!(
                grace_seconds = STOP_GRACE.as_secs(),
                "the embedded runner did not stop in time; killing it"
            );
            let _ = child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program_in(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(RUNNER_PROGRAM);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn up_runs_the_runner_beside_the_controller_before_one_on_path() {
        let dir = tempfile::tempdir().unwrap();
        let beside = program_in(&dir.path().join("release"));
        let elsewhere = program_in(&dir.path().join("bin"));
        let controller = dir.path().join("release/jamstack-controller");
        let path = std::env::join_paths([dir.path().join("bin")]).unwrap();
        assert_eq!(find_runner_program(&controller, Some(&path)).unwrap(), beside);
        std::fs::remove_file(&beside).unwrap();
        assert_eq!(find_runner_program(&controller, Some(&path)).unwrap(), elsewhere);
    }

    #[test]
    fn up_without_a_runner_program_names_where_it_looked_and_how_to_install_it() {
        let dir = tempfile::tempdir().unwrap();
        let controller = dir.path().join("jamstack-controller");
        // A file of that name that cannot run is no runner.
        std::fs::write(dir.path().join(RUNNER_PROGRAM), "").unwrap();
        let path = std::env::join_paths([dir.path().join("nothing-here")]).unwrap();
        let error = find_runner_program(&controller, Some(&path))
            .unwrap_err()
            .to_string();
        assert!(error.contains(&dir.path().display().to_string()), "{error}");
        assert!(error.contains("nor on PATH"), "{error}");
        assert!(
            error.contains("cargo build --release -p jamstack-controller -p jamstack-runner"),
            "{error}"
        );
    }
}
