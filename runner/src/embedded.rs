//! The runner as the child of `jamstack-controller up`
//! (`jamstack-runner embedded-runner`, a hidden subcommand).
//!
//! `up` starts this program with its settings as one JSON line on standard
//! input ([`jamstack_proto::embedded_runner`]) and then holds the pipe
//! open: the runner stops (handing its lease back) when its standard input
//! closes, which the kernel does for any death of `up`, `kill -9`
//! included, or on SIGTERM. Its log lines go to the standard output and
//! error it shares with `up`, so they appear in the controller's output.

use crate::{Runner, RunnerConfig};
use anyhow::Context as _;
use jamstack_proto::embedded_runner::EmbeddedRunnerSettings;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio_util::sync::CancellationToken;

/// Reads the settings from standard input, runs the runner, and stops it
/// when standard input closes (the controller stopping it, or dying) or on
/// SIGTERM.
pub async fn run() -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .await
        .context("reading the embedded runner's settings from standard input")?;
    let settings: EmbeddedRunnerSettings = serde_json::from_str(&line).context(
        "the embedded runner's settings on standard input are not valid; \
         `embedded-runner` is started by `jamstack-controller up`, not by hand",
    )?;
    let mut config = RunnerConfig::new(&settings.controller_url, &settings.token);
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
        runner = Runner::start(config) => runner?,
        () = shutdown.cancelled() => return Ok(()),
    };
    runner.run_until(shutdown).await
}
