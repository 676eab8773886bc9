//! Real `jamstack-controller` and `jamstack-runner` processes, for the
//! tests that kill them. `./scripts/test.sh` builds the binaries before the
//! tests run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A binary of this workspace, next to the test executable's folder.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --bins`; ./scripts/test.sh does)",
        path.display()
    );
    path
}

/// A name no other test of this run gives a runner (runners' containers
/// are labelled with it).
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub use crate::helpers::PATIENCE;

/// Polls `check` every 50 ms until it gives `Ok`; past [`PATIENCE`], fails
/// saying `what` never happened and the last thing `check` said (`Err`:
/// how things stood).
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match check() {
            Ok(value) => return value,
            Err(state) => assert!(
                Instant::now() < deadline,
                "{what} did not happen within {PATIENCE:?}:\n{state}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed (SIGKILL) when dropped.
pub struct Process {
    child: Option<Child>,
    pub output: PathBuf,
}

impl Process {
    /// `kill -9`: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn printed(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(binary: &Path, args: &[String], output: PathBuf) -> Process {
    let log = std::fs::File::create(&output).unwrap();
    let child = Command::new(binary)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    Process {
        child: Some(child),
        output,
    }
}

pub struct ControllerProcess {
    pub process: Process,
    /// The port it listens on: picked by the controller on its first start
    /// (`--listen 127.0.0.1:0`, so no other process can take it between a
    /// test choosing it and the controller binding it), kept on restarts.
    pub port: u16,
    args: Vec<String>,
    dir: PathBuf,
    /// Names this controller's logs apart from others' in the same folder.
    name: String,
    starts: usize,
}

impl ControllerProcess {
    /// `jamstack-controller serve`, with a short lease so lost runners are
    /// noticed in seconds.
    pub fn start(dir: &Path, database_url: Option<&str>) -> Self {
        Self::start_command("serve", dir, database_url, &[])
    }

    /// [`ControllerProcess::start`] with more arguments (operator flags).
    #[allow(dead_code)] // Used by the benchmarks, which share this file.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Self {
        Self::start_command("serve", dir, None, extra)
    }

    /// `jamstack-controller up`: the controller and its runner, a child
    /// process of its own.
    pub fn start_up(dir: &Path) -> Self {
        Self::start_command("up", dir, None, &[])
    }

    fn start_command(command: &str, dir: &Path, database_url: Option<&str>, extra: &[&str]) -> Self {
        let mut args: Vec<String> = [
            command,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.join("data").to_str().unwrap(),
            "--lease-seconds",
            "6",
            "--webhook-secret",
            crate::helpers::WEBHOOK_SECRET,
            // The tests' repositories are folders.
            "--allow-local-repositories",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(url) = database_url {
            args.extend(["--database-url".to_owned(), url.to_owned()]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let name = unique_name("controller");
        let mut controller = ControllerProcess {
            process: spawn(
                &binary("jamstack-controller"),
                &args,
                dir.join(format!("{name}-0.log")),
            ),
            port: 0,
            args,
            dir: dir.to_path_buf(),
            name,
            starts: 1,
        };
        controller.port = controller.wait_until_up();
        // Started again, it listens where its runners and tests know it.
        let listen = controller.args.iter().position(|a| a == "--listen").unwrap() + 1;
        controller.args[listen] = format!("127.0.0.1:{}", controller.port);
        controller
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until the controller says where it listens, which it does once
    /// its listener is bound; returns the port.
    fn wait_until_up(&mut self) -> u16 {
        let process = &mut self.process;
        eventually("the controller's start", || {
            let printed = process.printed();
            let port = printed
                .lines()
                .find_map(|line| line.strip_prefix("Controller:"))
                .and_then(|rest| rest.trim().rsplit(':').next()?.parse().ok());
            match port {
                Some(port) => Ok(port),
                None if process.is_running() => Err(printed),
                None => panic!("the controller exited:\n{printed}"),
            }
        })
    }

    /// A token the controller printed on its first start (`Admin token:`,
    /// `Registration:`), a line or two after its address.
    pub fn printed_token(&self, label: &str) -> String {
        let first = self.dir.join(format!("{}-0.log", self.name));
        eventually(&format!("the controller printing `{label}`"), || {
            let printed = std::fs::read_to_string(&first).unwrap_or_default();
            printed
                .lines()
                .find_map(|line| {
                    line.strip_prefix(label)
                        .and_then(|rest| rest.split_whitespace().next().map(str::to_owned))
                })
                .ok_or(printed)
        })
    }

    /// The processes the controller started that are alive now (for `up`,
    /// its runner).
    pub fn children(&self) -> Vec<u32> {
        let Some(pid) = self.process.id() else {
            return Vec::new();
        };
        // A child is listed under the thread that started it.
        let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        threads
            .flatten()
            .filter_map(|thread| std::fs::read_to_string(thread.path().join("children")).ok())
            .flat_map(|list| {
                list.split_whitespace()
                    .filter_map(|id| id.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect()
    }

    /// `kill -9`, then start again on the same port and data.
    pub fn restart(&mut self) {
        self.process.kill();
        self.start_again();
    }

    /// `kill -9`, leaving it down until [`Self::start_again`].
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts a killed controller again on the same port and data.
    pub fn start_again(&mut self) {
        let output = self.dir.join(format!("{}-{}.log", self.name, self.starts));
        self.starts += 1;
        self.process = spawn(&binary("jamstack-controller"), &self.args, output);
        let port = self.wait_until_up();
        assert_eq!(port, self.port, "started again on its port");
    }
}

/// `jamstack-runner`, registering with the registration token on start.
pub fn start_runner(dir: &Path, controller_url: &str, registration_token: &str, name: &str) -> Process {
    start_runner_with(dir, controller_url, registration_token, name, &[])
}

/// The work directory of the runner `name` started in `dir`.
pub fn runner_work_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("runner-{name}"))
}

/// [`start_runner`] with more arguments.
pub fn start_runner_with(
    dir: &Path,
    controller_url: &str,
    registration_token: &str,
    name: &str,
    extra: &[&str],
) -> Process {
    let work = runner_work_dir(dir, name);
    std::fs::create_dir_all(&work).unwrap();
    let mut args: Vec<String> = [
        "--controller",
        controller_url,
        "--registration-token",
        registration_token,
        "--name",
        name,
        "--work-dir",
        work.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    spawn(
        &binary("jamstack-runner"),
        &args,
        dir.join(format!("runner-{name}.log")),
    )
}

/// Removes the containers a killed runner left behind (it had no chance).
pub async fn remove_containers_of_runner(name: &str) {
    let _ = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker ps -aq --filter label=org.jamstack.runner={name} | xargs -r docker rm -f"
        ))
        .output()
        .await;
}
