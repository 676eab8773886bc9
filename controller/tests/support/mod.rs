//! What the controller's own tests share: its binary started as a user
//! would, on a port it picks itself (`--listen 127.0.0.1:0`), and waiting
//! on a condition with a deadline that fails saying what never happened.

#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough for a start or a build under parallel Docker load on a busy
/// machine: a deadline only turns a hang into a failure, it measures nothing.
pub const PATIENCE: Duration = Duration::from_secs(180);

/// Polls `check` every 50 ms until it gives a value. Past `PATIENCE`, fails
/// with `what` never happened and what `context` says then (a log, say).
pub async fn eventually<T, F>(what: &str, context: impl Fn() -> String, mut check: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {PATIENCE:?}:\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `jamstack-controller` with `args`, what it prints (standard output and
/// error) kept in a file; killed when dropped.
pub struct Controller {
    child: Child,
    pub output: PathBuf,
}

impl Controller {
    pub fn start(args: &[&str], dir: &Path, configure: impl FnOnce(&mut Command)) -> Self {
        let output = dir.join(format!("controller-{}.log", args.join("-").replace('/', "_")));
        let log = std::fs::File::create(&output).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_jamstack-controller"));
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        configure(&mut command);
        let child = command.spawn().expect("starting jamstack-controller");
        Controller { child, output }
    }

    pub fn printed(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// The first word after `label` on a line the controller printed, once
    /// it has printed it (`Controller:`, `Admin token:`, ...).
    pub async fn printed_value(&mut self, label: &str) -> String {
        let output = self.output.clone();
        let child = &mut self.child;
        eventually(
            &format!("the controller printing `{label}`"),
            || std::fs::read_to_string(&output).unwrap_or_default(),
            || {
                let printed = std::fs::read_to_string(&output).unwrap_or_default();
                let found = printed
                    .lines()
                    .find_map(|line| line.strip_prefix(label))
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_owned);
                if found.is_none() {
                    assert!(
                        matches!(child.try_wait(), Ok(None)),
                        "the controller exited before printing `{label}`:\n{printed}"
                    );
                }
                std::future::ready(found)
            },
        )
        .await
    }

    /// The address the controller listens on, as it printed it: it binds
    /// the port itself (`--listen 127.0.0.1:0`), so no other process can
    /// take it between a test choosing it and the controller binding it.
    pub async fn base_url(&mut self) -> String {
        self.printed_value("Controller:").await
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
