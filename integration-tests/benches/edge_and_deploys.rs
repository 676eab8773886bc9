//! The edge and deploys side by side with their peers, in one run:
//!
//! 1. Serving: wrk against our edge and against Debian's nginx (sendfile on)
//!    serving the same files from disk, a 1 KB page and a 100 KB asset,
//!    alternately, with the same threads and connections.
//! 2. Incremental deploy of 10,000 files with 1% changed: our digest flow
//!    (hash, manifest, missing blobs, finalize; the runner's own upload code
//!    over HTTP to a real controller process, hashing with the hash cache
//!    `jamstack deploy` keeps for a folder deployed again) against `rsync -a
//!    --link-dest` into a new release folder plus a symlink swap; time, the
//!    time of each of our steps, and storage growth.
//! 3. Rollback: from the API call to the first byte of the old version,
//!    against a symlink swap behind nginx.
//! 4. Proxying: a path our edge proxies (a `200` rule to an http:// URL)
//!    against nginx's `proxy_pass` (keep-alive to the upstream), both to
//!    the same upstream (nginx serving a 1 KB file).
//! 5. Protection: a password-protected hostname (wrk sends the access
//!    cookie) against the same content on a public one, both ours; then
//!    the public one sent the same cookie, so both requests are as long.
//! 6. Big deploys (`big`, not run unless named): `BENCH_BIG_FILES` files
//!    (100,000) of 1 KB to 1 MB (pages, images, a few media files), the
//!    first deploy and a 1%-changed one through our digest flow against
//!    `rsync -a --link-dest` plus a symlink swap: time, bytes and rows
//!    added, the controller's RSS during finalize, and publish to served.
//! 7. Large assets (`large`, not run unless named): 100 KB and 1 MB files,
//!    our edge against nginx (sendfile on) with wrk: requests/s, p99 and
//!    memory per connection (the server's RSS growth under wrk divided by
//!    its connections).
//!
//! Run it with `scripts/bench/edge-and-deploys.sh`, which installs nginx,
//! wrk and rsync and builds the controller in release first. Knobs:
//! `BENCH_WRK_SECONDS` (8), `BENCH_WRK_CONNECTIONS` (50), `BENCH_WRK_THREADS`
//! (2), `BENCH_ROUNDS` (3), `BENCH_DEPLOY_ROUNDS` (5), `BENCH_ROLLBACKS` (200),
//! and `BENCH_ONLY`, a comma-separated choice of `serving`, `deploys`,
//! `rollback`, `proxy`, `protected`, `big` and `large` (all but `big` and
//! `large` when unset), to run only the parts being worked on.
//! `scripts/bench/big-deploys.sh` and `scripts/bench/large-assets.sh` run
//! the last two.

mod common;
#[path = "../tests/e2e/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../tests/e2e/processes.rs"]
#[allow(dead_code)]
mod processes;

use helpers::{SiteRepo, TestApp};
use jamstack_proto::{JobLease, JobOutcome, RegisterRequest};
use jamstack_runner::client::ControllerClient;
use processes::ControllerProcess;
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SITE: &str = "bench";
const PAGE: &str = "page.html";
const ASSET: &str = "asset-100k.bin";
const FILES: usize = 10_000;
const CHANGED: usize = FILES / 100;

/// Whether `BENCH_ONLY` names `part` (unset: every part but the long
/// `big` and `large`, which have scripts of their own).
fn runs(part: &str) -> bool {
    match std::env::var("BENCH_ONLY") {
        Ok(only) if !only.trim().is_empty() => only.split(',').any(|p| p.trim() == part),
        _ => !["big", "large"].contains(&part),
    }
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let work = tempfile::tempdir().expect("a work directory");
    println!("load before: {}", uptime());
    // The proxy part's upstream is on loopback.
    let controller = ControllerProcess::start_with(work.path(), &["--allow-private-proxy-targets"]);
    // It listens before it prints its first tokens.
    let started = Instant::now();
    while !controller.process.printed().contains("Registration:") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the controller printed no tokens:\n{}",
            controller.process.printed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let app = TestApp::of(&controller.url(), &controller.printed_token("Admin token:"));
    let app_pid = controller.process.id().expect("the controller runs");
    let runner = Uploader::register(&controller).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("README", "bench")], "bench");
    for site in [SITE, "rollback", PROXIED, PROTECTED, BIG_SITE] {
        app.connect_site_with(
            site,
            json!({ "repo_url": repo.url(), "production_branch": "main" }),
        )
        .await;
    }

    let mut tables = Vec::new();
    if runs("serving") {
        tables.push(serving(work.path(), &app, &runner, &sha).await);
    }
    if runs("deploys") {
        tables.push(incremental_deploys(work.path(), &app, &runner, &sha).await);
    }
    if runs("rollback") {
        tables.push(rollbacks(work.path(), &app, &runner, &sha).await);
    }
    if runs("proxy") {
        tables.push(proxying(work.path(), &app, &runner, &sha).await);
    }
    if runs("protected") {
        tables.push(protection(work.path(), &app, app_pid, &runner, &sha).await);
    }
    let controller_pid = controller.process.id().expect("the controller runs");
    if runs("big") {
        tables.push(big_deploys(work.path(), &app, &runner, &sha, controller_pid).await);
    }
    if runs("large") {
        tables.push(large_assets(work.path(), &app, &runner, &sha, controller_pid).await);
    }

    println!();
    println!("load after: {}", uptime());
    println!();
    for table in tables {
        println!("{table}");
    }
}

fn uptime() -> String {
    Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("(uptime failed: {e})"))
}

/// A runner registered with the controller, uploading as `jamstack-runner`
/// does (its own `upload` module), without Docker: the publish directory is
/// already there.
struct Uploader {
    client: ControllerClient,
    name: String,
}

impl Uploader {
    async fn register(controller: &ControllerProcess) -> Self {
        let registration = controller.printed_token("Registration:");
        let name = "bench-uploader".to_owned();
        let answer = ControllerClient::new(&controller.url(), "")
            .register(&RegisterRequest {
                registration_token: registration,
                name: name.clone(),
                labels: Vec::new(),
                slots: 1,
            })
            .await
            .expect("registering the uploader");
        let client = ControllerClient::new(&controller.url(), &answer.token);
        client.connect(&name).await.expect("connecting the uploader");
        Uploader { client, name }
    }

    async fn lease(&self, app: &TestApp, site: &str, sha: &str) -> JobLease {
        app.trigger_build(site, sha).await;
        self.client
            .lease(&self.name, Duration::from_secs(10))
            .await
            .expect("leasing")
            .expect("the job just queued")
    }

    /// Deploys `dir` to `site`; returns the deploy id and what went over
    /// the wire.
    async fn deploy(&self, app: &TestApp, site: &str, sha: &str, dir: &Path) -> (String, Sent) {
        let lease = self.lease(app, site, sha).await;
        let started = Instant::now();
        let sent = self.upload(&lease, dir).await;
        let elapsed = started.elapsed();
        (sent.deploy_id.clone(), Sent { elapsed, ..sent })
    }

    async fn upload(&self, lease: &JobLease, dir: &Path) -> Sent {
        // The runner keeps its lease alive beside the upload; so do we (the
        // first upload of 10,000 files outlasts a lease).
        let heartbeat = {
            let (client, lease) = (self.client.clone(), lease.clone());
            tokio::spawn(async move {
                loop {
                    let _ = client.heartbeat(&lease, Duration::from_secs(1)).await;
                }
            })
        };
        let started = Instant::now();
        // Deploying the same folder again, as `jamstack deploy` does: files
        // unchanged since the last deploy are not read again (rsync's quick
        // check, which rsync does too).
        let cache = dir.with_extension("hashes.json");
        let manifest = jamstack_deploy_files::build_manifest_with_cache(dir, &cache)
            .expect("hashing the publish directory");
        let hashed = started.elapsed();
        let hashes: HashSet<String> = manifest.files.iter().map(|f| f.sha256.clone()).collect();
        let uploaded = jamstack_runner::upload::upload(&self.client, lease, manifest)
            .await
            .expect("uploading");
        let elapsed = started.elapsed();
        let finished = Instant::now();
        heartbeat.abort();
        let outcome = JobOutcome::Succeeded {
            deploy_id: uploaded.finalized.deploy_id.clone(),
        };
        self.client
            .complete(lease, &outcome, &[])
            .await
            .expect("completing");
        Sent {
            deploy_id: uploaded.finalized.deploy_id,
            blobs: uploaded.uploaded_blobs,
            bytes: uploaded.uploaded_bytes,
            hashes,
            elapsed,
            finished,
            phases: [
                hashed,
                uploaded.timings.manifest,
                uploaded.timings.blobs,
                uploaded.timings.finalize,
            ],
        }
    }
}

struct Sent {
    deploy_id: String,
    blobs: usize,
    bytes: u64,
    hashes: HashSet<String>,
    elapsed: Duration,
    /// When the upload (its finalize last) returned.
    finished: Instant,
    /// Hashing, manifest, blobs, finalize.
    phases: [Duration; 4],
}

const PHASES: [&str; 4] = ["hashing", "manifest", "blobs", "finalize"];

// ---------------------------------------------------------------- serving

struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    /// Debian's nginx serving `root` from disk, as a static host would.
    fn start(dir: &Path, root: &Path) -> Self {
        Self::start_serving(dir, "nginx", "", &format!("root {};", root.display()))
    }

    /// Debian's nginx with `http` (blocks at the `http` level) and `server`
    /// (directives of its one server), its files under `dir/name`.
    fn start_serving(dir: &Path, name: &str, http: &str, server: &str) -> Self {
        // nginx cannot say which port it bound, so it is given one that was
        // free a moment ago: the benchmark runs alone, with nobody to take
        // it in between.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let prefix = dir.join(name);
        std::fs::create_dir_all(prefix.join("logs")).unwrap();
        let conf = prefix.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes auto;\npid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log;\n\
                 daemon off;\nevents {{ worker_connections 4096; }}\n\
                 http {{\n  include /etc/nginx/mime.types;\n  sendfile on;\n  tcp_nopush on;\n\
                 access_log off;\n  keepalive_requests 100000;\n\
                 client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n\
                 fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n\
                 scgi_temp_path {prefix}/scgi;\n{http}\n\
                 server {{\n    listen 127.0.0.1:{port};\n    {server}\n  }}\n}}\n",
                prefix = prefix.display(),
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .spawn()
            .expect("starting nginx (scripts/bench/edge-and-deploys.sh installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, port }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        common::terminate(&mut self.child);
    }
}

#[derive(Debug, Clone, Copy)]
struct WrkRun {
    requests_per_second: f64,
    p99_ms: f64,
    /// Requests wrk completed.
    requests: f64,
    /// The server's CPU time per request, when the run was measured with
    /// [`with_cpu_of`]: steadier than requests/s on a machine whose speed
    /// drifts, and free of wrk's share of the two cores.
    server_cpu_us: Option<f64>,
}

/// `run`, with the CPU time process `pid` spent during it per request.
fn with_cpu_of(pid: u32, run: impl FnOnce() -> WrkRun) -> WrkRun {
    let before = cpu_seconds(pid);
    let mut measured = run();
    let spent = cpu_seconds(pid) - before;
    measured.server_cpu_us = Some(spent * 1e6 / measured.requests.max(1.0));
    measured
}

/// User and system CPU seconds process `pid` has used so far
/// (`/proc/<pid>/stat`, in clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server's /proc stat");
    // The command name may hold spaces: fields are counted after its `)`.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn wrk(port: u16, path: &str) -> WrkRun {
    wrk_as(port, &format!("{SITE}.localhost"), path, &[])
}

/// [`wrk`] on the hostname `host`, with the `headers` given (`Name: value`).
fn wrk_as(port: u16, host: &str, path: &str, headers: &[String]) -> WrkRun {
    let header_args: Vec<&str> = headers.iter().flat_map(|h| ["-H", h.as_str()]).collect();
    let output = Command::new("wrk")
        .args([
            "-t",
            &knob("BENCH_WRK_THREADS", 2).to_string(),
            "-c",
            &knob("BENCH_WRK_CONNECTIONS", 50).to_string(),
            "-d",
            &format!("{}s", knob("BENCH_WRK_SECONDS", 8)),
            "--latency",
            "-H",
            &format!("Host: {host}"),
        ])
        .args(header_args)
        .arg(format!("http://127.0.0.1:{port}/{path}"))
        .output()
        .expect("running wrk (scripts/bench/edge-and-deploys.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains("Non-2xx"),
        "wrk saw errors against port {port}:\n{text}"
    );
    let requests_per_second = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no 99% latency in wrk's output:\n{text}"));
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's output:\n{text}"));
    WrkRun {
        requests_per_second,
        p99_ms: millis_of(&p99),
        requests,
        server_cpu_us: None,
    }
}

/// wrk's durations: `812.00us`, `2.10ms`, `1.02s`.
fn millis_of(text: &str) -> f64 {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => f64::NAN,
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Bytes that look like a page: compressible text, so sizes are honest.
fn text_bytes(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "static ", "site ", "deploy ", "<p>", "</p>\n", "edge ", "cache ", "jam ", "stack ", "page ",
        "build ", "hash ",
    ];
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(WORDS[(state % WORDS.len() as u64) as usize].as_bytes());
        out.extend_from_slice(format!("{} ", state % 1000).as_bytes());
    }
    out.truncate(len);
    out
}

/// Bytes that do not compress, like an image.
fn opaque_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

async fn serving(dir: &Path, app: &TestApp, runner: &Uploader, sha: &str) -> String {
    let root = dir.join("serve-root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join(PAGE), text_bytes(1, 1024)).unwrap();
    std::fs::write(root.join(ASSET), opaque_bytes(2, 100 * 1024)).unwrap();
    runner.deploy(app, SITE, sha, &root).await;
    let nginx = Nginx::start(dir, &root);
    // Both answer the same bytes before anything is timed.
    for path in [PAGE, ASSET] {
        let ours = app.visit(SITE, &format!("/{path}")).await;
        assert_eq!(ours.status, 200, "our edge on /{path}");
        let theirs = reqwest::get(format!("http://127.0.0.1:{}/{path}", nginx.port))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(ours.bytes, theirs.to_vec(), "the same file from both servers");
    }
    let rounds = knob("BENCH_ROUNDS", 3);
    let mut table = format!(
        "Serving (wrk -t{} -c{} -d{}s, {rounds} alternating rounds each, median)\n\
         {:<16} {:>14} {:>10} {:>14} {:>10} {:>9} {:>9}\n",
        knob("BENCH_WRK_THREADS", 2),
        knob("BENCH_WRK_CONNECTIONS", 50),
        knob("BENCH_WRK_SECONDS", 8),
        "file",
        "ours req/s",
        "ours p99",
        "nginx req/s",
        "nginx p99",
        "req/s x",
        "p99 x",
    );
    for path in [PAGE, ASSET] {
        // Warm both: caches, connections, page cache.
        let _ = wrk_short(app.port, path);
        let _ = wrk_short(nginx.port, path);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(wrk(app.port, path));
            theirs.push(wrk(nginx.port, path));
        }
        let rps =
            |runs: &[WrkRun]| median(&mut runs.iter().map(|r| r.requests_per_second).collect::<Vec<_>>());
        let p99 = |runs: &[WrkRun]| median(&mut runs.iter().map(|r| r.p99_ms).collect::<Vec<_>>());
        let (our_rps, their_rps, our_p99, their_p99) = (rps(&ours), rps(&theirs), p99(&ours), p99(&theirs));
        table.push_str(&format!(
            "{:<16} {:>14.0} {:>8.2}ms {:>14.0} {:>8.2}ms {:>9.2} {:>9.2}\n",
            if path == PAGE { "1 KB page" } else { "100 KB asset" },
            our_rps,
            our_p99,
            their_rps,
            their_p99,
            our_rps / their_rps,
            our_p99 / their_p99,
        ));
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            table.push_str(&format!(
                "  round {}: ours {:.0} req/s {:.2}ms, nginx {:.0} req/s {:.2}ms\n",
                i + 1,
                o.requests_per_second,
                o.p99_ms,
                t.requests_per_second,
                t.p99_ms
            ));
        }
    }
    table.push_str("Goal: req/s x >= 1.00 and p99 x <= 1.50.\n");
    table
}

fn wrk_short(port: u16, path: &str) -> std::io::Result<std::process::Output> {
    Command::new("wrk")
        .args(["-t1", "-c8", "-d1s", "-H", &format!("Host: {SITE}.localhost")])
        .arg(format!("http://127.0.0.1:{port}/{path}"))
        .output()
}

// --------------------------------------------------- proxy and protection

const PROXIED: &str = "proxied";
const PROTECTED: &str = "protected";

/// Alternating rounds of `a` and `b` (each a wrk run), as a table row pair
/// with `b` as the peer: requests/s and p99 medians, and `a`'s as a
/// multiple of `b`'s.
fn compare(
    title: &str,
    names: (&str, &str),
    mut a: impl FnMut() -> WrkRun,
    mut b: impl FnMut() -> WrkRun,
    goal: &str,
) -> String {
    let _ = (a(), b());
    let rounds = knob("BENCH_ROUNDS", 3);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    // Which side goes first alternates (ABBA...): on a machine whose speed
    // drifts during the run, always going first would be a handicap.
    for round in 0..rounds {
        if round % 2 == 0 {
            ours.push(a());
            theirs.push(b());
        } else {
            theirs.push(b());
            ours.push(a());
        }
    }
    let rps = |runs: &[WrkRun]| median(&mut runs.iter().map(|r| r.requests_per_second).collect::<Vec<_>>());
    let p99 = |runs: &[WrkRun]| median(&mut runs.iter().map(|r| r.p99_ms).collect::<Vec<_>>());
    let mut table = format!(
        "{title} (wrk -t{} -c{} -d{}s, {rounds} alternating rounds each, median)\n\
         {:<24} {:>12} {:>10}\n",
        knob("BENCH_WRK_THREADS", 2),
        knob("BENCH_WRK_CONNECTIONS", 50),
        knob("BENCH_WRK_SECONDS", 8),
        "",
        "req/s",
        "p99",
    );
    for (name, runs) in [(names.0, &ours), (names.1, &theirs)] {
        table.push_str(&format!("{name:<24} {:>12.0} {:>8.2}ms\n", rps(runs), p99(runs)));
    }
    table.push_str(&format!(
        "{:<24} {:>12.2} {:>10.2}\n",
        format!("{} / {}", names.0, names.1),
        rps(&ours) / rps(&theirs),
        p99(&ours) / p99(&theirs)
    ));
    // Each round's two runs were back to back: their ratio is the least
    // disturbed by the machine's drift.
    let mut paired: Vec<f64> = ours
        .iter()
        .zip(&theirs)
        .map(|(o, t)| o.requests_per_second / t.requests_per_second)
        .collect();
    table.push_str(&format!(
        "{:<24} {:>12.2}\n",
        "median of round ratios",
        median(&mut paired)
    ));
    let cpu = |runs: &[WrkRun]| {
        let mut each: Vec<f64> = runs.iter().filter_map(|r| r.server_cpu_us).collect();
        (!each.is_empty()).then(|| median(&mut each))
    };
    if let (Some(a), Some(b)) = (cpu(&ours), cpu(&theirs)) {
        table.push_str(&format!(
            "{:<24} {a:>9.1} µs {b:>7.1} µs  ({} / {}: {:.2})\n",
            "server CPU per request",
            names.0,
            names.1,
            a / b
        ));
    }
    let cpu_of = |run: &WrkRun| {
        run.server_cpu_us
            .map_or(String::new(), |us| format!(", {us:.1} µs CPU"))
    };
    for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
        table.push_str(&format!(
            "  round {}: {} {:.0} req/s {:.2}ms{}, {} {:.0} req/s {:.2}ms{}\n",
            i + 1,
            names.0,
            o.requests_per_second,
            o.p99_ms,
            cpu_of(o),
            names.1,
            t.requests_per_second,
            t.p99_ms,
            cpu_of(t)
        ));
    }
    table.push_str(goal);
    table
}

/// A path our edge proxies against nginx's `proxy_pass`, both to one
/// upstream: nginx serving a 1 KB file.
async fn proxying(dir: &Path, app: &TestApp, runner: &Uploader, sha: &str) -> String {
    let upstream_root = dir.join("upstream-root");
    std::fs::create_dir_all(&upstream_root).unwrap();
    std::fs::write(upstream_root.join(PAGE), text_bytes(3, 1024)).unwrap();
    let upstream = Nginx::start_serving(
        dir,
        "nginx-upstream",
        "",
        &format!("root {};", upstream_root.display()),
    );
    // nginx as a reverse proxy, configured as one would for speed: kept-alive
    // HTTP/1.1 connections to the upstream.
    let front = Nginx::start_serving(
        dir,
        "nginx-proxy",
        &format!(
            "  upstream origin {{ server 127.0.0.1:{}; keepalive 64; }}",
            upstream.port
        ),
        "location /api/ { proxy_pass http://origin/; proxy_http_version 1.1;          proxy_set_header Connection \"\"; }",
    );
    let site_root = dir.join("proxied-root");
    std::fs::create_dir_all(&site_root).unwrap();
    std::fs::write(site_root.join("index.html"), "home").unwrap();
    std::fs::write(
        site_root.join("_redirects"),
        format!("/api/* http://127.0.0.1:{}/:splat 200\n", upstream.port),
    )
    .unwrap();
    runner.deploy(app, PROXIED, sha, &site_root).await;
    let path = format!("api/{PAGE}");
    let ours = app.visit(PROXIED, &format!("/{path}")).await;
    assert_eq!(ours.status, 200, "our proxy: {}", ours.body);
    let theirs = reqwest::get(format!("http://127.0.0.1:{}/{path}", front.port))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(ours.bytes, theirs.to_vec(), "the same bytes through both proxies");
    assert_eq!(ours.bytes, text_bytes(3, 1024), "the upstream's file");
    let host = format!("{PROXIED}.localhost");
    compare(
        "Proxying a 1 KB file from a local nginx",
        ("ours", "nginx proxy_pass"),
        || wrk_as(app.port, &host, &path, &[]),
        || wrk_as(front.port, "localhost", &path, &[]),
        "For reading: proxying is not on the path of static files.\n",
    )
}

/// The headers Chromium sends when a visitor opens a page (its request
/// is some 600 bytes with them; wrk's alone is 55).
const BROWSER_HEADERS: [&str; 11] = [
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
    "Accept-Encoding: gzip, deflate, br, zstd",
    "Accept-Language: en-US,en;q=0.9",
    "Upgrade-Insecure-Requests: 1",
    "Sec-Fetch-Dest: document",
    "Sec-Fetch-Mode: navigate",
    "Sec-Fetch-Site: none",
    "sec-ch-ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"",
    "sec-ch-ua-mobile: ?0",
    "sec-ch-ua-platform: \"Linux\"",
];

/// A password-protected hostname, visited with its access cookie, against
/// the same deploy's content on a public hostname.
async fn protection(dir: &Path, app: &TestApp, app_pid: u32, runner: &Uploader, sha: &str) -> String {
    let root = dir.join("protected-root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join(PAGE), text_bytes(4, 1024)).unwrap();
    runner.deploy(app, PROTECTED, sha, &root).await;
    runner.deploy(app, SITE, sha, &root).await;
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api(&format!("/sites/{PROTECTED}/protection")))
                .json(&json!({ "production": "password", "password": "bench password" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let cookie = sign_in(app, PROTECTED, "bench password").await;
    let seen = app
        .visit_with(PROTECTED, &format!("/{PAGE}"), &[("Cookie", &cookie)])
        .await;
    assert_eq!(seen.status, 200, "the access cookie opens the protected site");
    assert_eq!(seen.bytes, text_bytes(4, 1024));
    let public = app.visit(SITE, &format!("/{PAGE}")).await;
    assert_eq!(public.bytes, seen.bytes, "the same content on both");
    let (protected_host, public_host) = (format!("{PROTECTED}.localhost"), format!("{SITE}.localhost"));
    let with_cookie = [format!("Cookie: {cookie}")];
    let as_visited = compare(
        "A 1 KB page, protected (with the access cookie) and public",
        ("protected", "public"),
        || with_cpu_of(app_pid, || wrk_as(app.port, &protected_host, PAGE, &with_cookie)),
        || with_cpu_of(app_pid, || wrk_as(app.port, &public_host, PAGE, &[])),
        "Goal: protected req/s at least 0.95 of public's.\n",
    );
    // The cookie alone adds some 80 bytes to wrk's 55-byte request, which
    // wrk writes and the server reads on the same two cores: the public
    // site sent the same bytes shows what the check itself costs.
    let same_request = compare(
        "The same, the public page sent the same Cookie header",
        ("protected", "public+cookie"),
        || with_cpu_of(app_pid, || wrk_as(app.port, &protected_host, PAGE, &with_cookie)),
        || with_cpu_of(app_pid, || wrk_as(app.port, &public_host, PAGE, &with_cookie)),
        "For reading: what the protection check costs, the request's size aside.\n",
    );
    // What a browser sends to both, the cookie only to the protected one.
    let browser: Vec<String> = BROWSER_HEADERS.iter().map(|h| h.to_string()).collect();
    let browser_signed_in: Vec<String> = browser
        .iter()
        .cloned()
        .chain(with_cookie.iter().cloned())
        .collect();
    let as_browsers = compare(
        "The same, both sent a browser's request headers (the cookie only to the protected one)",
        ("protected", "public"),
        || {
            with_cpu_of(app_pid, || {
                wrk_as(app.port, &protected_host, PAGE, &browser_signed_in)
            })
        },
        || with_cpu_of(app_pid, || wrk_as(app.port, &public_host, PAGE, &browser)),
        "For reading: the goal's measure with the request a visitor's browser sends.\n",
    );
    format!("{as_visited}\n{same_request}\n{as_browsers}")
}

/// Signs in to `site`'s hostname as a browser does (the page's form token
/// and nonce cookie); returns the access cookie as `name=value`.
async fn sign_in(app: &TestApp, site: &str, password: &str) -> String {
    let shown = app.visit(site, "/").await;
    let token = shown
        .body
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the sign-in page's form token")
        .to_owned();
    let nonce = shown.header("set-cookie").split(';').next().unwrap().to_owned();
    let answer = app
        .http
        .post(format!("{}/.jamstack/sign-in", app.base_url))
        .header("Host", format!("{site}.localhost:{}", app.port))
        .header("Cookie", nonce)
        .form(&[("password", password), ("return_to", "/"), ("form_token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303, "signing in");
    answer.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

// ---------------------------------------------------------- incremental

/// Writes the 10,000-file site: 100 folders of 100 pages of 1-8 KB.
fn write_site(root: &Path, version_of: impl Fn(usize) -> u64) {
    for i in 0..FILES {
        let path = root.join(format!("d{:02}/page{i:05}.html", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        }
        let seed = (i as u64) << 20 | version_of(i);
        let len = 1024 + (i * 7919) % (7 * 1024);
        std::fs::write(path, text_bytes(seed, len)).unwrap();
    }
}

/// Bytes of distinct inodes under `root` (hard links counted once), and
/// bytes of the directories themselves.
fn tree_bytes(root: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let (mut files, mut dirs) = (0, 0);
    for entry in walk(root) {
        let Ok(meta) = std::fs::symlink_metadata(&entry) else {
            continue;
        };
        if meta.is_dir() {
            dirs += meta.blocks() * 512;
        } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
            files += meta.len();
        }
    }
    (files, dirs)
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let path = out[i].clone();
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            out.extend(entries.flatten().map(|e| e.path()));
        }
        i += 1;
    }
    out
}

/// The blob store's files: key → size.
fn blob_files(root: &Path) -> std::collections::HashMap<String, u64> {
    walk(root)
        .into_iter()
        .filter_map(|p| {
            let meta = std::fs::symlink_metadata(&p).ok()?;
            let name = p.file_name()?.to_string_lossy().into_owned();
            (meta.is_file() && !name.starts_with('.')).then_some((name, meta.len()))
        })
        .collect()
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Writes back every dirty page before a timed step: hundreds of
/// megabytes left by the step before (the source tree, the other side's
/// copy) would otherwise be flushed during this one, and the kernel's
/// writeback throttling would charge them to whoever writes next.
fn settle_disk() {
    let status = Command::new("sync").status().expect("running sync");
    assert!(status.success(), "sync failed");
}

fn rsync_release(source: &Path, releases: &Path, release: usize) -> Duration {
    let target = releases.join(format!("r{release}"));
    let started = Instant::now();
    let mut rsync = Command::new("rsync");
    rsync.arg("-a");
    if release > 0 {
        rsync.arg(format!(
            "--link-dest={}",
            releases.join(format!("r{}", release - 1)).display()
        ));
    }
    let status = rsync
        .arg(format!("{}/", source.display()))
        .arg(&target)
        .status()
        .expect("running rsync (scripts/bench/edge-and-deploys.sh installs it)");
    assert!(status.success(), "rsync failed");
    swap_symlink(&releases.join("current"), &target);
    started.elapsed()
}

/// `ln -sfn` + `mv -T`: the atomic swap a release folder deploy does.
fn swap_symlink(link: &Path, target: &Path) {
    let temporary = link.with_extension("next");
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary).unwrap();
    std::fs::rename(&temporary, link).unwrap();
}

async fn incremental_deploys(dir: &Path, app: &TestApp, runner: &Uploader, sha: &str) -> String {
    let source = dir.join("site");
    let releases = dir.join("releases");
    std::fs::create_dir_all(&releases).unwrap();
    let blob_root = dir.join("data").join("blobs");
    let database = dir.join("data").join("jamstack.db");
    let mut versions = vec![0u64; FILES];
    write_site(&source, |i| versions[i]);
    // The first deploy of each is not timed: it uploads everything.
    let (_, first) = runner.deploy(app, SITE, sha, &source).await;
    assert_eq!(first.blobs, FILES, "the first deploy uploads every file");
    wait_for_variants(app, &page_path(0), Duration::from_secs(600)).await;
    rsync_release(&source, &releases, 0);

    let rounds = knob("BENCH_DEPLOY_ROUNDS", 5) as usize;
    let (mut ours_ms, mut rsync_ms) = (Vec::new(), Vec::new());
    let mut phases_ms: [Vec<f64>; 4] = Default::default();
    let mut variants_ms = Vec::new();
    let mut growth = Vec::new();
    for round in 1..=rounds {
        // A different 1% each round, spread over the folders.
        let mut changed = Vec::new();
        for k in 0..CHANGED {
            let i = (k * (FILES / CHANGED) + round * 37) % FILES;
            versions[i] = round as u64;
            changed.push(i);
        }
        write_site_changed(&source, &versions, round);

        let blobs_before = blob_files(&blob_root);
        let db_before = file_size(&database) + file_size(&database.with_extension("db-wal"));
        let (_, sent) = runner.deploy(app, SITE, sha, &source).await;
        assert_eq!(
            sent.blobs, CHANGED,
            "round {round}: only the changed files travel"
        );
        // The deploy is live; its compressed variants are made next, in the
        // background. They are waited for (not timed as the deploy) so that
        // neither the storage counted nor rsync's run below misses or
        // shares their work.
        variants_ms.push(
            wait_for_variants(app, &page_path(changed[0]), Duration::from_secs(120))
                .await
                .as_secs_f64()
                * 1000.0,
        );
        let blobs_after = blob_files(&blob_root);
        let db_after = file_size(&database) + file_size(&database.with_extension("db-wal"));
        let (mut originals, mut variants) = (0u64, 0u64);
        for (key, size) in &blobs_after {
            if blobs_before.contains_key(key) {
                continue;
            }
            let hash = key.split_once('.').map_or(key.as_str(), |(h, _)| h);
            if sent.hashes.contains(hash) {
                originals += size;
            } else {
                variants += size;
            }
        }

        let (files_before, dirs_before) = tree_bytes(&releases);
        let rsync_time = rsync_release(&source, &releases, round);
        let (files_after, dirs_after) = tree_bytes(&releases);

        ours_ms.push(sent.elapsed.as_secs_f64() * 1000.0);
        for (figures, phase) in phases_ms.iter_mut().zip(sent.phases) {
            figures.push(phase.as_secs_f64() * 1000.0);
        }
        rsync_ms.push(rsync_time.as_secs_f64() * 1000.0);
        growth.push((
            sent.bytes,
            originals,
            variants,
            db_after.saturating_sub(db_before),
            files_after - files_before,
            dirs_after.saturating_sub(dirs_before),
        ));
    }
    let mut table = format!(
        "Incremental deploy: {FILES} files, {CHANGED} changed per round, {rounds} rounds (ms)\n\
         {:<28} {:>10} {:>10} {:>10}\n",
        "", "median", "min", "max"
    );
    for (name, values) in [
        ("ours (digest flow)", &mut ours_ms),
        ("rsync --link-dest + swap", &mut rsync_ms),
    ] {
        let m = median(values);
        table.push_str(&format!(
            "{name:<28} {m:>10.1} {:>10.1} {:>10.1}\n",
            values[0],
            values[values.len() - 1]
        ));
    }
    table.push_str(&format!(
        "ours / rsync (median): {:.2}  Goal: < 1.00.\n",
        median(&mut ours_ms) / median(&mut rsync_ms)
    ));
    table.push_str("ours by step (median ms):");
    for (name, figures) in PHASES.iter().zip(phases_ms.iter_mut()) {
        table.push_str(&format!(" {name} {:.1};", median(figures)));
    }
    table.push_str(&format!(
        "\nours: compressed variants served {:.1} ms (median) after the deploy, made in the background\n",
        median(&mut variants_ms)
    ));
    table.push_str(
        "Storage growth per round (bytes): changed = bytes of the changed files; ours: blob store \
         originals, precompressed variants, database; rsync: new inodes, new directories\n",
    );
    for (round, (changed, originals, variants, db, files, dirs)) in growth.iter().enumerate() {
        table.push_str(&format!(
            "  round {}: changed {changed}; ours originals {originals}, variants {variants}, database {db}; \
             rsync files {files}, directories {dirs}\n",
            round + 1
        ));
    }
    table
}

/// The site path of page `i` of the 10,000-file site.
fn page_path(i: usize) -> String {
    format!("/d{:02}/page{i:05}.html", i / 100)
}

/// Waits until the controller has made every variant it was asked for
/// (its `jamstack_variants_pending_deploys` metric is 0), then checks that
/// our edge serves `path` brotli-compressed. Returns how long that took.
async fn wait_for_variants(app: &TestApp, path: &str, limit: Duration) -> Duration {
    wait_for_variants_of(app, SITE, path, limit).await
}

/// [`wait_for_variants`] for `path` of `site`.
async fn wait_for_variants_of(app: &TestApp, site: &str, path: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let metrics = app.metrics().await;
        if metrics
            .lines()
            .any(|l| l == "jamstack_variants_pending_deploys 0")
        {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "the variants were not made within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waited = started.elapsed();
    let page = app.visit_with(site, path, &[("Accept-Encoding", "br")]).await;
    assert_eq!(
        (page.status, page.header("content-encoding")),
        (200, "br"),
        "{path} once the variants are made"
    );
    waited
}

fn write_site_changed(root: &Path, versions: &[u64], round: usize) {
    for (i, version) in versions.iter().enumerate() {
        if *version != round as u64 {
            continue;
        }
        let path = root.join(format!("d{:02}/page{i:05}.html", i / 100));
        let seed = (i as u64) << 20 | version;
        let len = 1024 + (i * 7919) % (7 * 1024);
        std::fs::write(path, text_bytes(seed, len)).unwrap();
    }
}

// -------------------------------------------------------------- rollback

async fn first_byte(http: &reqwest::Client, url: &str, host: Option<&str>) -> Vec<u8> {
    let mut request = http.get(url);
    if let Some(host) = host {
        request = request.header("Host", host);
    }
    let mut response = request.send().await.expect("fetching the page");
    response
        .chunk()
        .await
        .expect("reading the page")
        .map(|b| b.to_vec())
        .unwrap_or_default()
}

async fn rollbacks(dir: &Path, app: &TestApp, runner: &Uploader, sha: &str) -> String {
    let versions = dir.join("rollback-versions");
    let mut deploys = Vec::new();
    for version in ["old", "new"] {
        let root = versions.join(version);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("index.html"), format!("{version} version\n")).unwrap();
        let (id, _) = runner.deploy(app, "rollback", sha, &root).await;
        deploys.push((id, format!("{version} version\n")));
    }
    let current = versions.join("current");
    swap_symlink(&current, &versions.join("new"));
    let nginx = Nginx::start(&dir.join("rollback-nginx"), &current);

    let http = reqwest::Client::new();
    let our_url = format!("http://127.0.0.1:{}/", app.port);
    let our_host = format!("rollback.localhost:{}", app.port);
    let their_url = format!("http://127.0.0.1:{}/", nginx.port);
    let rounds = knob("BENCH_ROLLBACKS", 200) as usize;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut stale_reads = 0;
    for round in 0..rounds {
        // Alternate: roll back to the old version, then forward again.
        let (deploy_id, content) = &deploys[round % 2];
        let version = if round % 2 == 0 { "old" } else { "new" };
        let started = Instant::now();
        let (status, body) = app.publish("rollback", deploy_id).await;
        assert_eq!(status, 200, "publishing: {body}");
        loop {
            let first = first_byte(&http, &our_url, Some(&our_host)).await;
            if content.as_bytes().starts_with(&first) && !first.is_empty() {
                break;
            }
            stale_reads += 1;
        }
        ours.push(started.elapsed().as_secs_f64() * 1000.0);

        let started = Instant::now();
        swap_symlink(&current, &versions.join(version));
        loop {
            let first = first_byte(&http, &their_url, None).await;
            if content.as_bytes().starts_with(&first) && !first.is_empty() {
                break;
            }
        }
        theirs.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    format!(
        "Rollback: API call to the old version's first byte, {rounds} rounds (ms)\n\
         {:<28} {:>10} {:>10} {:>10}\n\
         {:<28} {:>10.2} {:>10.2} {:>10.2}\n\
         {:<28} {:>10.2} {:>10.2} {:>10.2}\n\
         stale reads after our publish answered: {stale_reads}. Goal: ours under 50 ms.\n",
        "",
        "median",
        "p99",
        "max",
        "ours (publish API)",
        median(&mut ours),
        percentile(&mut ours, 99.0),
        ours[ours.len() - 1],
        "symlink swap behind nginx",
        median(&mut theirs),
        percentile(&mut theirs, 99.0),
        theirs[theirs.len() - 1],
    )
}

// ------------------------------------------------------------ big deploys

const BIG_SITE: &str = "big";

/// File `i` of the big site: its path, size and whether it compresses.
/// Of every 100 files, 80 are pages of 1-16 KB, 18 images of 16-128 KB
/// and 2 media files of 128 KB to 1 MB, 1,000 to a folder.
fn big_file(i: usize) -> (String, usize, bool) {
    let spread = i.wrapping_mul(7919);
    let folder = i / 1000;
    match i % 100 {
        0..80 => (
            format!("/s{folder:03}/page{i:06}.html"),
            1024 + spread % (15 * 1024),
            true,
        ),
        80..98 => (
            format!("/s{folder:03}/img{i:06}.jpg"),
            16 * 1024 + spread % (112 * 1024),
            false,
        ),
        _ => (
            format!("/s{folder:03}/media{i:06}.bin"),
            128 * 1024 + spread % (896 * 1024),
            false,
        ),
    }
}

fn big_content(i: usize, version: u64) -> Vec<u8> {
    let (_, len, text) = big_file(i);
    let seed = (i as u64) << 20 | version;
    if text {
        text_bytes(seed, len)
    } else {
        opaque_bytes(seed, len)
    }
}

fn write_big_file(root: &Path, i: usize, version: u64) {
    let (path, _, _) = big_file(i);
    let path = root.join(&path[1..]);
    if i.is_multiple_of(1000) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    }
    std::fs::write(path, big_content(i, version)).unwrap();
}

/// The controller's resident memory, sampled every 5 ms until stopped.
struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Instant, u64)>>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut samples = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    samples.push((Instant::now(), rss_kb(pid)));
                    std::thread::sleep(Duration::from_millis(5));
                }
                samples
            })
        };
        RssSampler { stop, thread }
    }

    fn stop(self) -> Vec<(Instant, u64)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the RSS sampler")
    }
}

/// `VmRSS` of a process, in KiB (0 once it is gone).
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Rows of every table of the controller's SQLite database.
async fn database_rows(database: &Path) -> std::collections::BTreeMap<String, i64> {
    use sqlx::Row;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", database.display()))
        .await
        .expect("opening the controller's database to read");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut rows = std::collections::BTreeMap::new();
    for table in tables {
        let row = sqlx::query(&format!("SELECT COUNT(*) FROM \"{table}\""))
            .fetch_one(&pool)
            .await
            .unwrap();
        rows.insert(table, row.get::<i64, _>(0));
    }
    pool.close().await;
    rows
}

/// Rows added between two counts: the total and the tables that grew.
fn rows_added(
    before: &std::collections::BTreeMap<String, i64>,
    after: &std::collections::BTreeMap<String, i64>,
) -> String {
    let mut total = 0;
    let mut grown = Vec::new();
    for (table, count) in after {
        let added = count - before.get(table).copied().unwrap_or(0);
        if added != 0 {
            total += added;
            grown.push(format!("{table} {added}"));
        }
    }
    format!("{total} ({})", grown.join(", "))
}

/// One deploy of the big site, ours, with what it added.
struct BigDeploy {
    sent: Sent,
    peak_finalize_rss_kb: u64,
    rss_before_kb: u64,
    originals: u64,
    variants: u64,
    database_bytes: u64,
    rows: String,
    variants_ms: f64,
}

async fn big_deploy(
    app: &TestApp,
    runner: &Uploader,
    sha: &str,
    source: &Path,
    data: &Path,
    pid: u32,
    probe: &str,
) -> BigDeploy {
    let blob_root = data.join("blobs");
    let database = data.join("jamstack.db");
    let database_size = || file_size(&database) + file_size(&database.with_extension("db-wal"));
    let blobs_before = blob_files(&blob_root);
    let (db_before, rows_before) = (database_size(), database_rows(&database).await);
    let rss_before_kb = rss_kb(pid);
    let sampler = RssSampler::start(pid);
    let (_, sent) = runner.deploy(app, BIG_SITE, sha, source).await;
    let samples = sampler.stop();
    let finalize_from = sent.finished - sent.phases[3];
    let peak_finalize_rss_kb = samples
        .iter()
        .filter(|(at, _)| *at >= finalize_from && *at <= sent.finished)
        .map(|(_, kb)| *kb)
        .max()
        .unwrap_or_else(|| rss_kb(pid));
    // The compressed variants are made in the background once the deploy
    // is live; waited for (not timed as the deploy) so that the storage
    // counted and the rsync run that follows neither miss nor share their
    // work.
    let variants_ms = wait_for_variants_of(app, BIG_SITE, probe, Duration::from_secs(3600))
        .await
        .as_secs_f64()
        * 1000.0;
    let (mut originals, mut variants) = (0, 0);
    for (key, size) in blob_files(&blob_root) {
        if blobs_before.contains_key(&key) {
            continue;
        }
        let hash = key.split_once('.').map_or(key.as_str(), |(h, _)| h);
        if sent.hashes.contains(hash) {
            originals += size;
        } else {
            variants += size;
        }
    }
    BigDeploy {
        peak_finalize_rss_kb,
        rss_before_kb,
        originals,
        variants,
        database_bytes: database_size().saturating_sub(db_before),
        rows: rows_added(&rows_before, &database_rows(&database).await),
        variants_ms,
        sent,
    }
}

async fn big_deploys(dir: &Path, app: &TestApp, runner: &Uploader, sha: &str, pid: u32) -> String {
    let files = knob("BENCH_BIG_FILES", 100_000) as usize;
    let changed_count = (files / 100).max(1);
    let source = dir.join("big-site");
    let releases = dir.join("big-releases");
    std::fs::create_dir_all(&releases).unwrap();
    let data = dir.join("data");
    let written = Instant::now();
    for i in 0..files {
        write_big_file(&source, i, 0);
    }
    let (source_bytes, _) = tree_bytes(&source);
    println!(
        "big deploys: wrote {files} files, {source_bytes} bytes, in {:.1} s",
        written.elapsed().as_secs_f64()
    );
    // A page to probe, large enough that its compressed form saves a disk
    // block (smaller files are kept without variants).
    let probe = (0..files)
        .map(big_file)
        .find(|(_, size, compressible)| *compressible && *size >= 12 * 1024)
        .expect("the big site has a page of 12 KB or more")
        .0;

    settle_disk();
    let first = big_deploy(app, runner, sha, &source, &data, pid, &probe).await;
    assert_eq!(first.sent.blobs, files, "the first deploy uploads every file");
    let (files_before, dirs_before) = tree_bytes(&releases);
    settle_disk();
    let rsync_first = rsync_release(&source, &releases, 0);
    let (files_after, dirs_after) = tree_bytes(&releases);
    let rsync_first_growth = (
        files_after.saturating_sub(files_before),
        dirs_after.saturating_sub(dirs_before),
    );

    // 1% changed, spread over the folders and sizes.
    let step = files / changed_count;
    let changed: Vec<usize> = (0..changed_count).map(|k| k * step + (k * 37) % step).collect();
    // Version 2: `opaque_bytes` sets the seed's lowest bit, so version 1
    // would give images the same bytes.
    for &i in &changed {
        write_big_file(&source, i, 2);
    }
    settle_disk();
    let second = big_deploy(app, runner, sha, &source, &data, pid, &probe).await;
    let unique_changed: HashSet<Vec<u8>> = changed.iter().map(|&i| big_content(i, 2)).collect();
    assert_eq!(
        second.sent.blobs,
        unique_changed.len(),
        "only the changed files travel"
    );
    let changed_bytes: u64 = changed.iter().map(|&i| big_file(i).1 as u64).sum();
    let (files_before, dirs_before) = tree_bytes(&releases);
    settle_disk();
    let rsync_second = rsync_release(&source, &releases, 1);
    let (files_after, dirs_after) = tree_bytes(&releases);
    let rsync_second_growth = (
        files_after.saturating_sub(files_before),
        dirs_after.saturating_sub(dirs_before),
    );

    // Publish to served: the first deploy and the second again, in turn,
    // each until a changed page answers with its content; against a
    // symlink swap between the two rsync releases and a read of the page.
    let page = changed
        .iter()
        .copied()
        .find(|&i| big_file(i).2)
        .expect("a changed page");
    let page_path = big_file(page).0;
    let contents = [big_content(page, 0), big_content(page, 2)];
    let deploys = [first.sent.deploy_id.clone(), second.sent.deploy_id.clone()];
    let rounds = knob("BENCH_ROLLBACKS", 200).min(40) as usize;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let which = round % 2;
        let started = Instant::now();
        let (status, body) = app.publish(BIG_SITE, &deploys[which]).await;
        assert_eq!(status, 200, "publishing: {body}");
        loop {
            let seen = app.visit(BIG_SITE, &page_path).await;
            if seen.status == 200 && seen.bytes == contents[which] {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the published deploy was not served within 30 s"
            );
        }
        ours.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        swap_symlink(&releases.join("current"), &releases.join(format!("r{which}")));
        let read = std::fs::read(releases.join("current").join(&page_path[1..])).unwrap();
        assert_eq!(read, contents[which]);
        theirs.push(started.elapsed().as_secs_f64() * 1000.0);
    }

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut table = format!(
        "Big deploys: {files} files, {source_bytes} bytes (80% pages 1-16 KB, 18% images 16-128 KB, \
         2% media 128 KB-1 MB); then {changed_count} changed ({changed_bytes} bytes)\n\
         {:<26} {:>12} {:>12} {:>8}  goal\n",
        "", "ours ms", "rsync ms", "x"
    );
    for (name, ours, theirs, goal) in [
        ("first deploy", &first, rsync_first, "<= 1.20"),
        ("1% changed", &second, rsync_second, "< 0.50"),
    ] {
        table.push_str(&format!(
            "{name:<26} {:>12.0} {:>12.0} {:>8.2}  {goal}\n",
            ms(ours.sent.elapsed),
            ms(theirs),
            ms(ours.sent.elapsed) / ms(theirs)
        ));
    }
    for (name, deploy, (rsync_files, rsync_dirs)) in [
        ("first deploy", &first, rsync_first_growth),
        ("1% changed", &second, rsync_second_growth),
    ] {
        table.push_str(&format!(
            "{name}: ours by step (ms): {}; sent {} blobs, {} bytes; blob store + {} originals, + {} \
             variants (made in {:.0} ms after, in the background); database + {} bytes, rows added {}; \
             controller RSS {} KiB before, {} KiB at most during finalize. rsync: + {rsync_files} bytes \
             of new inodes, + {rsync_dirs} bytes of directories\n",
            PHASES
                .iter()
                .zip(deploy.sent.phases)
                .map(|(name, phase)| format!("{name} {:.0}", ms(phase)))
                .collect::<Vec<_>>()
                .join(", "),
            deploy.sent.blobs,
            deploy.sent.bytes,
            deploy.originals,
            deploy.variants,
            deploy.variants_ms,
            deploy.database_bytes,
            deploy.rows,
            deploy.rss_before_kb,
            deploy.peak_finalize_rss_kb,
        ));
    }
    table.push_str(&format!(
        "Publish to served ({rounds} publishes, the two deploys in turn, ms): ours median {:.2}, p99 {:.2}, \
         max {:.2}; symlink swap + read median {:.3}. Goal: ours under 50 ms.\n",
        median(&mut ours),
        percentile(&mut ours, 99.0),
        ours[ours.len() - 1],
        median(&mut theirs),
    ));
    table
}

// ----------------------------------------------------------- large assets

/// `VmRSS` of `pid` and its children (nginx's workers), in KiB.
fn tree_rss_kb(pid: u32) -> u64 {
    let mut total = rss_kb(pid);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let parent = std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // After the command's closing parenthesis: state, ppid.
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                });
            if parent == Some(pid) {
                total += rss_kb(child);
            }
        }
    }
    total
}

/// A wrk run against `port`, with the highest RSS of `pid` (and its
/// children) seen while it ran.
fn wrk_with_rss(port: u16, path: &str, pid: u32) -> (WrkRun, u64) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(tree_rss_kb(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let run = wrk(port, path);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (run, sampler.join().unwrap())
}

async fn large_assets(dir: &Path, app: &TestApp, runner: &Uploader, sha: &str, pid: u32) -> String {
    const SIZES: [(&str, usize); 2] = [("asset-100k.bin", 100 * 1024), ("asset-1m.bin", 1024 * 1024)];
    let root = dir.join("large-root");
    std::fs::create_dir_all(&root).unwrap();
    for (seed, (name, len)) in SIZES.iter().enumerate() {
        std::fs::write(root.join(name), opaque_bytes(10 + seed as u64, *len)).unwrap();
    }
    runner.deploy(app, SITE, sha, &root).await;
    let nginx = Nginx::start(&dir.join("large-nginx"), &root);
    for (name, _) in SIZES {
        let ours = app.visit(SITE, &format!("/{name}")).await;
        let theirs = reqwest::get(format!("http://127.0.0.1:{}/{name}", nginx.port))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(ours.bytes, theirs.to_vec(), "the same {name} from both servers");
    }
    let connections = knob("BENCH_WRK_CONNECTIONS", 50);
    let rounds = knob("BENCH_ROUNDS", 3);
    let mut table = format!(
        "Large assets (wrk -t{} -c{connections} -d{}s, {rounds} alternating rounds each, median; memory \
         per connection = (peak RSS under wrk - idle RSS) / connections, nginx counted with its workers)\n\
         {:<10} {:>11} {:>9} {:>9} {:>11} {:>9} {:>9} {:>8} {:>7}\n",
        knob("BENCH_WRK_THREADS", 2),
        knob("BENCH_WRK_SECONDS", 8),
        "file",
        "ours req/s",
        "ours p99",
        "KiB/conn",
        "nginx req/s",
        "nginx p99",
        "KiB/conn",
        "req/s x",
        "p99 x",
    );
    for (name, _) in SIZES {
        let _ = wrk_short(app.port, name);
        let _ = wrk_short(nginx.port, name);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let (mut our_kb, mut their_kb) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let idle = tree_rss_kb(pid);
            let (run, peak) = wrk_with_rss(app.port, name, pid);
            ours.push(run);
            our_kb.push(peak.saturating_sub(idle) as f64 / connections as f64);
            let nginx_pid = nginx.child.id();
            let idle = tree_rss_kb(nginx_pid);
            let (run, peak) = wrk_with_rss(nginx.port, name, nginx_pid);
            theirs.push(run);
            their_kb.push(peak.saturating_sub(idle) as f64 / connections as f64);
        }
        let rps =
            |runs: &[WrkRun]| median(&mut runs.iter().map(|r| r.requests_per_second).collect::<Vec<_>>());
        let p99 = |runs: &[WrkRun]| median(&mut runs.iter().map(|r| r.p99_ms).collect::<Vec<_>>());
        table.push_str(&format!(
            "{name:<10} {:>11.0} {:>7.2}ms {:>9.1} {:>11.0} {:>7.2}ms {:>9.1} {:>8.2} {:>7.2}\n",
            rps(&ours),
            p99(&ours),
            median(&mut our_kb),
            rps(&theirs),
            p99(&theirs),
            median(&mut their_kb),
            rps(&ours) / rps(&theirs),
            p99(&ours) / p99(&theirs),
        ));
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            table.push_str(&format!(
                "  round {}: ours {:.0} req/s {:.2}ms, nginx {:.0} req/s {:.2}ms\n",
                i + 1,
                o.requests_per_second,
                o.p99_ms,
                t.requests_per_second,
                t.p99_ms
            ));
        }
    }
    table.push_str("Goal: req/s x >= 1.00 and p99 x <= 1.50.\n");
    table
}
