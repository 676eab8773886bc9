//! What a build's container can reach: a build is code from its repository
//! (a fork's pull request is an attacker), so by default it must not reach
//! the runner's host (a service on the Docker bridge's gateway address) or a
//! private network, unless the site names the private host it needs; with
//! its network off it reaches nothing at all.
//!
//! Every address these tests send traffic to is one they made themselves:
//! a listener of their own on the build network's gateway (the host), and
//! one inside a network namespace they make, reached through a veth pair
//! with 10.213.x.y addresses. DNS is only tried with the network off, where
//! nothing can leave the container.

use crate::helpers::{
    SiteRepo, TestApp, runner_binary, spawn_app, spawn_app_with_runner, spawn_controller_only,
};
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP server answering every connection with a short HTTP page and
/// keeping the request lines that carry its probe's mark; its socket may
/// be made inside a network namespace.
/// Dropping it closes it.
struct Listener {
    address: SocketAddr,
    hits: Arc<Mutex<Vec<String>>>,
    serving: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// `mark` starts the path of every request the probe sends: the host's
    /// listener takes any free port, which may be one another test just
    /// closed and still dials (a dead upstream, a service being awaited),
    /// so only the probe's own requests count.
    fn start(bind: SocketAddr, netns: Option<String>, page: &'static str, mark: String) -> Self {
        // A socket belongs to the namespace of the thread that made it, for
        // good: a thread of its own enters the namespace and makes it.
        let listener = std::thread::spawn(move || {
            if let Some(netns) = netns {
                let file =
                    std::fs::File::open(format!("/var/run/netns/{netns}")).expect("opening the namespace");
                rustix::thread::move_into_link_name_space(
                    file.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .unwrap_or_else(|e| panic!("entering {netns}: {e}"));
            }
            let listener = std::net::TcpListener::bind(bind).expect("binding the test's listener");
            listener.set_nonblocking(true).unwrap();
            listener
        })
        .join()
        .expect("making the listener");
        let address = listener.local_addr().unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let serving = tokio::spawn({
            let hits = hits.clone();
            async move {
                while let Ok((mut stream, peer)) = listener.accept().await {
                    let mut request = [0u8; 1024];
                    let read = stream.read(&mut request).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&request[..read]);
                    let line = request.lines().next().unwrap_or_default();
                    if line.contains(&mark) {
                        hits.lock().unwrap().push(format!("{line} from {peer}"));
                    } else {
                        eprintln!("{address}: not counted, not the probe's: {line:?} from {peer}");
                    }
                    let answer = format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                        page.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                }
            }
        });
        Listener {
            address,
            hits,
            serving,
        }
    }

    /// The probe's requests that got here, each with where it came from.
    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A private network of the test's own: a namespace holding 10.213.a.b+2,
/// joined to the host by a veth pair whose host end is 10.213.a.b+1, so
/// the host routes to it as it would to a private network it stands in.
/// Dropping it removes the namespace and the pair.
struct PrivateNetwork {
    namespace: String,
    host_end: String,
    address: Ipv4Addr,
}

impl PrivateNetwork {
    fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let id = format!("{:x}{:02x}", pid & 0xf_ffff, n & 0xff);
        let (a, b) = ((pid % 256) as u8, ((n % 64) * 4) as u8);
        let network = PrivateNetwork {
            namespace: format!("jamstack-test-{id}"),
            host_end: format!("vjh{id}"),
            address: Ipv4Addr::new(10, 213, a, b + 2),
        };
        let peer = format!("vjn{id}");
        let host_address = format!("10.213.{a}.{}/30", b + 1);
        let ns_address = format!("{}/30", network.address);
        ip(&["netns", "add", &network.namespace]);
        ip(&[
            "link",
            "add",
            &network.host_end,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &network.namespace]);
        ip(&["addr", "add", &host_address, "dev", &network.host_end]);
        ip(&["link", "set", &network.host_end, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &network.namespace, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["link", "set", "lo", "up"]);
        inside(&["addr", "add", &ns_address, "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["route", "add", "default", "via", &format!("10.213.{a}.{}", b + 1)]);
        network
    }

    fn listen(&self, mark: String) -> Listener {
        Listener::start(
            SocketAddr::from((self.address, 0)),
            Some(self.namespace.clone()),
            "hello from the private network",
            mark,
        )
    }
}

impl Drop for PrivateNetwork {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .output();
        // Deleting the namespace takes the pair with it; this is in case
        // the peer never moved in.
        let _ = Command::new("ip").args(["link", "del", &self.host_end]).output();
    }
}

/// Where the probe runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RunsIn {
    /// The build command.
    Build,
    /// The site's ignore command (which then says "build").
    Ignore,
}

/// A build that tries the host through its network's gateway, the private
/// listener and (with `dns`) a name lookup, printing REACHED or REFUSED
/// for each, and succeeds either way. Its requests' paths start with
/// `mark`, then name the step that sent them (`build` or `ignore`) and
/// what they tried.
fn probe_site(
    mark: &str,
    gateway_port: u16,
    private: SocketAddr,
    dns: bool,
    runs_in: RunsIn,
) -> Vec<(&'static str, String)> {
    let (private_ip, private_port) = (private.ip(), private.port());
    let script = format!(
        r#"mkdir -p public && echo probed > public/index.html
step=$1
gateway=$(ip route | awk '/^default/ {{print $3}}')
echo "gateway: ${{gateway:-none}}"
probe() {{
  if out=$(printf 'GET {mark}%s/%s HTTP/1.0\r\n\r\n' "$step" "$1" | nc -w 10 "$2" "$3" 2>&1) && [ -n "$out" ]; then
    echo "REACHED $1: $(echo "$out" | tail -n 1)"
  else
    echo "REFUSED $1: $out"
  fi
}}
probe gateway "$gateway" {gateway_port}
probe private {private_ip} {private_port}
if [ "{dns}" = true ]; then
  if out=$(nslookup jamstack-network-probe.test 2>&1); then echo "REACHED dns: $out"; else echo "REFUSED dns: $out"; fi
fi
"#
    );
    let commands = match runs_in {
        RunsIn::Build => "command = \"sh probe.sh build\"\n",
        RunsIn::Ignore => {
            "command = \"sh probe.sh build > /dev/null\"\nignore = \"sh probe.sh ignore; exit 1\"\n"
        }
    };
    vec![
        (
            "jamstack.toml",
            format!("[build]\n{commands}publish = \"public\"\nimage = \"jamstack/busybox:1\"\n"),
        ),
        ("probe.sh", script),
    ]
}

struct Probe {
    log: String,
    private_address: Ipv4Addr,
    /// The probe's requests each listener got (see [`Listener::hits`]).
    gateway_hits: Vec<String>,
    private_hits: Vec<String>,
}

/// Connects a site, sets its network with `network` (when given), runs
/// the probe build and reports what it reached.
async fn probe(app: &TestApp, site: &str, network: Option<serde_json::Value>, dns: bool) -> Probe {
    probe_in(app, site, network, dns, RunsIn::Build).await
}

async fn probe_in(
    app: &TestApp,
    site: &str,
    network: Option<serde_json::Value>,
    dns: bool,
    runs_in: RunsIn,
) -> Probe {
    let mark = format!("/probe-{site}-{}/", std::process::id());
    let private = PrivateNetwork::create();
    let private_listener = private.listen(mark.clone());
    // Every address of the host, the build network's gateway among them.
    let gateway_listener = Listener::start(
        SocketAddr::from(([0, 0, 0, 0], 0)),
        None,
        "hello from the host",
        mark.clone(),
    );
    let repo = SiteRepo::new();
    let files = probe_site(
        &mark,
        gateway_listener.address.port(),
        private_listener.address,
        dns,
        runs_in,
    );
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let sha = repo.commit(&files, "probe the network");
    app.connect_site(site, &repo, &format!("octo/{site}")).await;
    if let Some(network) = network {
        let network = network
            .to_string()
            .replace("PRIVATE_ADDRESS", &private.address.to_string());
        let (status, body) = app
            .api_json(
                app.http
                    .put(app.api(&format!("/sites/{site}/build-network")))
                    .json(&serde_json::from_str::<serde_json::Value>(&network).unwrap()),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let id = app.trigger_build(site, &sha).await;
    app.wait_for_success(id).await;
    Probe {
        log: app.build_log(id).await,
        private_address: private.address,
        gateway_hits: gateway_listener.hits(),
        private_hits: private_listener.hits(),
    }
}

#[tokio::test]
async fn a_build_cannot_reach_the_host_through_its_bridge_gateway_nor_a_private_network() {
    let app = spawn_app().await;
    let probe = probe(&app, "fenced", None, false).await;
    let log = &probe.log;
    assert!(!log.contains("REACHED"), "{log}");
    assert!(
        probe.gateway_hits.is_empty(),
        "the host's listener was reached: {:?}\n{log}",
        probe.gateway_hits
    );
    assert!(
        probe.private_hits.is_empty(),
        "the private listener was reached: {:?}\n{log}",
        probe.private_hits
    );
    assert!(log.contains("REFUSED gateway"), "{log}");
    assert!(log.contains("REFUSED private"), "{log}");
    assert!(
        log.contains("Network: public internet only"),
        "the log says what the build may reach:\n{log}"
    );
    assert_eq!(
        log.matches("No route to host").count(),
        2,
        "both were refused at once, not left to time out:\n{log}"
    );
}

#[tokio::test]
async fn a_runner_allowing_private_networks_lets_builds_reach_the_host_and_private_networks() {
    // The attack the policy stops, and the operator's way to accept it.
    let app = spawn_app_with_runner(|runner| runner.allow_private_networks = true).await;
    let probe = probe(&app, "open", None, false).await;
    let log = &probe.log;
    assert!(log.contains("Network: unrestricted"), "{log}");
    assert!(log.contains("REACHED gateway: hello from the host"), "{log}");
    assert!(
        log.contains("REACHED private: hello from the private network"),
        "{log}"
    );
    assert!(
        !probe.gateway_hits.is_empty() && !probe.private_hits.is_empty(),
        "{:?} {:?}",
        probe.gateway_hits,
        probe.private_hits
    );
}

#[tokio::test]
async fn a_private_host_the_site_allows_is_reachable_and_nothing_else_is() {
    let app = spawn_app().await;
    let probe = probe(
        &app,
        "mirrored",
        Some(json!({ "network": "public", "private_hosts": ["PRIVATE_ADDRESS"] })),
        false,
    )
    .await;
    let log = &probe.log;
    assert!(log.contains("Private hosts this site allows: 10.213."), "{log}");
    assert!(
        log.contains("REACHED private: hello from the private network"),
        "{log}"
    );
    assert!(log.contains("REFUSED gateway"), "{log}");
    assert!(probe.gateway_hits.is_empty(), "{:?}\n{log}", probe.gateway_hits);
    assert!(!probe.private_hits.is_empty(), "{log}");

    // The opening was the job's own: it is closed once the job is over.
    app.wait_until_nothing_left().await;
    let opened = format!("-d {}/32", probe.private_address);
    let deadline = tokio::time::Instant::now() + crate::processes::PATIENCE;
    loop {
        let rules = Command::new("iptables")
            .args(["-w", "10", "-S", "JAMSTACK-EGRESS"])
            .output()
            .unwrap();
        let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
        if !rules.contains(&opened) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job's allowance outlived it:\n{rules}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_build_with_its_network_off_reaches_nothing_not_even_dns() {
    let app = spawn_app().await;
    let probe = probe(
        &app,
        "offline",
        // The allowed host does not open anything while the network is off.
        Some(json!({ "network": "off", "private_hosts": ["PRIVATE_ADDRESS"] })),
        true,
    )
    .await;
    let log = &probe.log;
    assert!(log.contains("gateway: none"), "no route out at all:\n{log}");
    assert!(log.contains("Network: off"), "{log}");
    assert!(log.contains("REFUSED gateway"), "{log}");
    assert!(log.contains("REFUSED private"), "{log}");
    assert!(log.contains("REFUSED dns"), "{log}");
    assert!(!log.contains("REACHED"), "{log}");
    assert!(
        probe.gateway_hits.is_empty() && probe.private_hits.is_empty(),
        "reached: {:?} {:?}\n{log}",
        probe.gateway_hits,
        probe.private_hits
    );
}

#[tokio::test]
async fn an_ignore_command_cannot_reach_the_host_or_a_private_network() {
    // It runs before the build's own network exists; it once ran on the
    // engine's default bridge, which no rule of the runner covers.
    let app = spawn_app().await;
    let probe = probe_in(&app, "ignoring", None, false, RunsIn::Ignore).await;
    let log = &probe.log;
    assert!(log.contains("Running the ignore command"), "{log}");
    assert!(
        log.contains("gateway: none"),
        "the ignore command has no network:\n{log}"
    );
    assert!(
        log.contains("REFUSED gateway") && log.contains("REFUSED private"),
        "{log}"
    );
    assert!(!log.contains("REACHED"), "{log}");
    assert!(
        probe.gateway_hits.is_empty() && probe.private_hits.is_empty(),
        "reached: {:?} {:?}\n{log}",
        probe.gateway_hits,
        probe.private_hits
    );
}

/// The `docker` group's id, which opens the engine's socket to a user.
fn docker_group() -> u32 {
    let groups = std::fs::read_to_string("/etc/group").unwrap();
    groups
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"docker")).then(|| fields[2].parse().unwrap())
        })
        .expect("a docker group")
}

#[tokio::test]
async fn a_runner_that_cannot_install_its_firewall_rules_refuses_builds_with_network_and_says_what_to_do() {
    use std::os::unix::process::CommandExt;
    // A runner process that is not root (it reaches the engine through the
    // docker group) cannot change iptables.
    let (app, token) = spawn_controller_only().await;
    let (nobody, docker) = (65534, docker_group());
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(work.path(), Some(nobody), Some(docker)).unwrap();
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[(
            "jamstack.toml",
            "[build]\ncommand = \"mkdir -p public && echo built > public/index.html\"\npublish = \"public\"\n\
             image = \"jamstack/busybox:1\"\n",
        )],
        "a site",
    );
    // git fetches only from repositories of the user it runs as.
    let readable = Command::new("chown")
        .args(["-R", &format!("{nobody}:{docker}"), &repo.url()])
        .status()
        .unwrap();
    assert!(readable.success());
    let runner = Command::new(runner_binary())
        .args(["--controller", &app.base_url, "--name", "unprivileged"])
        .arg("--work-dir")
        .arg(work.path())
        .env("JAMSTACK_RUNNER_TOKEN", &token)
        .env("RUST_LOG", "warn")
        // Its own home: git reads the user's configuration from there.
        .env("HOME", work.path())
        .stdin(std::process::Stdio::null())
        .uid(nobody)
        .gid(docker)
        .spawn()
        .expect("starting the runner binary");
    let _runner = KillOnDrop(runner);

    app.connect_site("unfenced", &repo, "octo/unfenced").await;
    let build = app
        .wait_for_build(app.trigger_build("unfenced", &sha).await)
        .await;
    assert_eq!(build["state"], "failed", "{build}");
    let error = build["error"].as_str().unwrap();
    assert!(
        error.contains("cannot keep builds off its host and private networks"),
        "the error says what is wrong: {error}"
    );
    assert!(
        error.contains("Run the runner as root")
            && error.contains("\"network\": \"off\"")
            && error.contains("--allow-private-networks"),
        "the error says what to do: {error}"
    );

    // A build with no network has nothing to keep it from: it runs.
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api("/sites/unfenced/build-network"))
                .json(&json!({ "network": "off" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.wait_for_success(app.trigger_build("unfenced", &sha).await)
        .await;
}

/// A child process, killed when the test ends however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
