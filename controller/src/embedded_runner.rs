//! The runner of `jamstack-controller up`, in a process of its own.
//!
//! A build is outside input: it can make its runner run out of memory,
//! crash, or overflow a parser's stack. In its own process, none of that
//! takes the controller (and every site it serves) down with it. `up`
//! starts its own binary again as `jamstack-controller embedded-runner`
//! ([`supervise`]) and restarts it with backoff when it dies; the child
//! ([`run_child`]) runs the runner crate's loop.
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
use jamstack_runner::logging::LogFormat;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio_util::sync::CancellationToken;

/// The hidden subcommand the child runs.
pub const SUBCOMMAND: &str = "embedded-runner";

/// What the child needs to run the runner, sent on its standard input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildSettings {
    pub controller_url: String,
    pub token: String,
    pub name: String,
    pub work_dir: PathBuf,
    pub publish_limit_bytes: u64,
    pub default_image: String,
    /// The operator's `--allow-private-networks`: builds may reach the
    /// host and private networks.
    pub allow_private_networks: bool,
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
pub async fn supervise(settings: ChildSettings, log_format: LogFormat, shutdown: CancellationToken) {
    let restarts = ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(MAX_BACKOFF)
        .with_factor(2.0)
        .without_max_times();
    let mut pauses = restarts.build();
    loop {
        let started = Instant::now();
        match start_child(&settings, log_format).await {
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

async fn start_child(settings: &ChildSettings, log_format: LogFormat) -> anyhow::Result<(Child, ChildStdin)> {
    let exe = std::env::current_exe().context("finding the controller's own binary")?;
    // The running binary itself, even when an upgrade replaced the file
    // since it started: the runner must speak this controller's protocol.
    let own = Path::new("/proc/self/exe");
    let program = if own.exists() { own } else { exe.as_path() };
    let format = clap::ValueEnum::to_possible_value(&log_format)
        .map(|value| value.get_name().to_owned())
        .unwrap_or_else(|| "text".to_owned());
    let mut child = Command::new(program)
        .arg0(&exe)
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
        .with_context(|| format!("running {} {SUBCOMMAND}", exe.display()))?;
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

/// The child's side: reads its settings from standard input, runs the
/// runner, and stops it when standard input closes (the controller stopping
/// it, or dying) or on SIGTERM.
pub async fn run_child() -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .await
        .context("reading the embedded runner's settings from standard input")?;
    let settings: ChildSettings = serde_json::from_str(&line).context(
        "the embedded runner's settings on standard input are not valid; \
         `embedded-runner` is started by `jamstack-controller up`, not by hand",
    )?;
    let mut config = jamstack_runner::RunnerConfig::new(&settings.controller_url, &settings.token);
    config.name = settings.name;
    config.work_dir = settings.work_dir;
    config.default_image = settings.default_image;
    config.publish_limit_bytes = settings.publish_limit_bytes;
    config.allow_private_networks = settings.allow_private_networks;

    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let mut rest = Vec::new();
            tokio::select! {
                // EOF or an error: either way nobody holds the other end.
                _ = stdin.read_to_end(&mut rest) => {
                    tracing::info!("the controller closed the embedded runner's input; stopping");
                }
                _ = async {
                    match terminate.as_mut() {
                        Some(signal) => { signal.recv().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => tracing::info!("SIGTERM; stopping"),
            }
            shutdown.cancel();
        }
    });
    // Starting waits for the controller to answer, for as long as it takes;
    // a controller that died meanwhile never will, and its closed input
    // must stop the child then too.
    let runner = tokio::select! {
        runner = jamstack_runner::Runner::start(config) => runner?,
        () = shutdown.cancelled() => return Ok(()),
    };
    runner.run_until(shutdown).await
}
