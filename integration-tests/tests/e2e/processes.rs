//! Real `jamstack-controller` and `jamstack-runner` processes, for the
//! tests that kill them. `./scripts/test.sh` builds the binaries before the
//! tests run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    pub port: u16,
    args: Vec<String>,
    dir: PathBuf,
    starts: usize,
}

impl ControllerProcess {
    /// `jamstack-controller serve` on `port`, with a short lease so lost
    /// runners are noticed in seconds.
    pub fn start(dir: &Path, port: u16, database_url: Option<&str>) -> Self {
        Self::start_command("serve", dir, port, database_url)
    }

    /// `jamstack-controller up`: the controller and its runner, a child
    /// process of its own.
    pub fn start_up(dir: &Path, port: u16) -> Self {
        Self::start_command("up", dir, port, None)
    }

    fn start_command(command: &str, dir: &Path, port: u16, database_url: Option<&str>) -> Self {
        let mut args: Vec<String> = [
            command,
            "--listen",
            &format!("127.0.0.1:{port}"),
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
        let mut controller = ControllerProcess {
            process: spawn(
                &binary("jamstack-controller"),
                &args,
                dir.join(format!("controller-{port}-0.log")),
            ),
            port,
            args,
            dir: dir.to_path_buf(),
            starts: 1,
        };
        controller.wait_until_up();
        controller
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_until_up(&mut self) {
        let started = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                self.process.is_running(),
                "the controller exited:\n{}",
                self.process.printed()
            );
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the controller did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A token the controller printed on its first start (`Admin token:`,
    /// `Registration:`).
    /// The port may open a moment before the line is written: the log is
    /// read again for a few seconds.
    pub fn printed_token(&self, label: &str) -> String {
        let first = self.dir.join(format!("controller-{}-0.log", self.port));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let file = std::fs::File::open(&first).unwrap();
            let found = BufReader::new(file)
                .lines()
                .map_while(Result::ok)
                .find_map(|line| {
                    line.strip_prefix(label)
                        .and_then(|rest| rest.split_whitespace().next().map(str::to_owned))
                });
            match found {
                Some(token) => return token,
                None if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                None => panic!("the controller printed no `{label}` line"),
            }
        }
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
        let output = self
            .dir
            .join(format!("controller-{}-{}.log", self.port, self.starts));
        self.starts += 1;
        self.process = spawn(&binary("jamstack-controller"), &self.args, output);
        self.wait_until_up();
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
