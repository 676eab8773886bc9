//! Many sites, at a platform team's scale, beside nginx in one run:
//!
//! 1. `BENCH_SITES` sites (default 5,000) of `BENCH_FILES` generated pages
//!    each (default 200, `BENCH_FILE_SIZE` bytes, default 2,600), deployed
//!    through the API directly (manifest, blobs, finalize; no builds) to a
//!    real controller process, and written as folders that Debian's nginx
//!    serves from disk (`root …/$host`).
//! 2. The first request to a site not served before, a sample of sites in
//!    turn (p50/p99): while the background variant worker is still busy
//!    with the new deploys, once it is idle, and after a `kill -9` and a
//!    restart (with its start-up scan running), against nginx's first
//!    request for the same sites.
//! 3. wrk over all sites and files with a Lua script, uniform and Zipf
//!    (s = 1) over sites: requests/s and p99, ours against nginx, in
//!    alternating rounds.
//! 4. The controller's resident memory after serving 500 sites and after
//!    serving all of them, and the disk its blobs and database take against
//!    the content's size (and nginx's folders).
//!
//! Run it with `scripts/bench/many-sites.sh`, which installs nginx and wrk
//! and builds the controller in release first. Knobs (environment):
//! `BENCH_SITES`, `BENCH_FILES`, `BENCH_FILE_SIZE`, `BENCH_FIRST_SAMPLES`
//! (100 sites a phase), `BENCH_WRK_SECONDS` (10), `BENCH_WRK_CONNECTIONS`
//! (50), `BENCH_WRK_THREADS` (2), `BENCH_ROUNDS` (2), `BENCH_PARALLEL_DEPLOYS`
//! (8) and `BENCH_CONTROLLER_ARGS` (more flags for the controller, such as
//! `--edge-index-cache-mib 64`).

mod common;
#[path = "../tests/e2e/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../tests/e2e/processes.rs"]
#[allow(dead_code)]
mod processes;

use futures_util::StreamExt;
use helpers::{TestApp, manifest_file};
use jamstack_proto::blob_bundle;
use processes::ControllerProcess;
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The sites and pages, all generated from their numbers.
#[derive(Debug, Clone, Copy)]
struct Shape {
    sites: usize,
    files: usize,
    file_size: usize,
}

impl Shape {
    fn site(n: usize) -> String {
        format!("s{n:05}")
    }

    fn path(file: usize) -> String {
        if file == 0 {
            "index.html".to_owned()
        } else {
            format!("page-{file}.html")
        }
    }

    fn content(&self, site: usize, file: usize) -> Vec<u8> {
        page_bytes(((site as u64) << 32) | file as u64, self.file_size)
    }

    fn content_bytes(&self) -> u64 {
        (self.sites * self.files * self.file_size) as u64
    }
}

/// Bytes that look like a page: compressible text (about 3:1 with gzip),
/// so sizes on disk are honest.
fn page_bytes(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "static ", "site ", "deploy ", "<p>", "</p>\n", "edge ", "cache ", "jam ", "stack ", "page ",
        "build ", "hash ",
    ];
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut out = Vec::with_capacity(len + 8);
    out.extend_from_slice(format!("<!doctype html><title>{seed}</title>\n").as_bytes());
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

#[tokio::main]
async fn main() {
    let shape = Shape {
        sites: knob("BENCH_SITES", 5_000) as usize,
        files: knob("BENCH_FILES", 200).max(1) as usize,
        file_size: knob("BENCH_FILE_SIZE", 2_600) as usize,
    };
    let work = tempfile::tempdir().expect("a work directory");
    println!("load before: {}", uptime());
    println!(
        "{} sites x {} files of {} bytes ({:.1} MB of content)",
        shape.sites,
        shape.files,
        shape.file_size,
        shape.content_bytes() as f64 / 1e6
    );

    let extra = std::env::var("BENCH_CONTROLLER_ARGS").unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    let mut controller = ControllerProcess::start_with(work.path(), &extra);
    let app = TestApp::of(&controller.url(), &controller.printed_token("Admin token:"));

    let root = work.path().join("nginx-root");
    let started = Instant::now();
    write_trees(&root, shape);
    let written = started.elapsed();
    let nginx = Nginx::start(work.path(), &root);

    let started = Instant::now();
    deploy_all(&app, shape).await;
    let deployed = started.elapsed();
    println!(
        "deployed {} sites in {:.1}s ({:.1} sites/s); nginx's folders written in {:.1}s",
        shape.sites,
        deployed.as_secs_f64(),
        shape.sites as f64 / deployed.as_secs_f64(),
        written.as_secs_f64()
    );

    // Disjoint samples of sites not served yet, spread over all of them.
    let per_phase = (knob("BENCH_FIRST_SAMPLES", 100) as usize)
        .min(shape.sites / 3)
        .max(1);
    let sample = |phase: usize| -> Vec<usize> {
        (0..per_phase)
            .map(|i| (i * 3 + phase) * shape.sites / (per_phase * 3))
            .collect()
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let mut firsts = Vec::new();
    let pending_before = variants_pending(&app).await;
    let busy = first_requests(&client, app.port, &sample(0)).await;
    let pending_after = variants_pending(&app).await;
    let theirs = first_requests(&client, nginx.port, &sample(0)).await;
    firsts.push((
        format!("variant worker busy ({pending_before} -> {pending_after} deploys pending)"),
        busy,
        theirs,
    ));

    let started = Instant::now();
    wait_for_variants(&app).await;
    let variants_done = started.elapsed();
    let idle = first_requests(&client, app.port, &sample(1)).await;
    let theirs = first_requests(&client, nginx.port, &sample(1)).await;
    firsts.push(("variant worker idle".to_owned(), idle, theirs));

    // Memory after 500 sites served, then after all of them.
    let pid = controller.process.id().expect("the controller runs");
    let first_500: Vec<usize> = (0..shape.sites.min(500)).collect();
    first_requests(&client, app.port, &first_500).await;
    let rss_500 = rss_kib(pid);
    let indexes_500 = index_cache_mib(&app).await;
    let all: Vec<usize> = (0..shape.sites).collect();
    first_requests(&client, app.port, &all).await;
    first_requests(&client, nginx.port, &all).await;
    let rss_all = rss_kib(pid);
    let indexes_all = index_cache_mib(&app).await;

    let rounds = knob("BENCH_ROUNDS", 2);
    let mut serving = Vec::new();
    for mix in ["uniform", "zipf"] {
        let script = wrk_script(work.path(), shape, mix);
        let (mut ours, mut nginx_runs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(wrk(app.port, &script));
            nginx_runs.push(wrk(nginx.port, &script));
        }
        serving.push((mix, ours, nginx_runs));
    }
    let rss_served = rss_kib(pid);

    let data = work.path().join("data");
    let blobs_kib = du_kib(&data.join("blobs"));
    let data_kib = du_kib(&data);
    let nginx_kib = du_kib(&root);

    // kill -9, start again: every index is cold and the variant worker
    // scans the deploys served for any it did not finish.
    let started = Instant::now();
    controller.restart();
    let restarted = started.elapsed();
    let cold = first_requests(&client, app.port, &sample(2)).await;
    let started = Instant::now();
    wait_for_variants(&app).await;
    let scan = started.elapsed();
    let theirs = first_requests(&client, nginx.port, &sample(2)).await;
    firsts.push((
        format!(
            "after kill -9 and restart ({:.1}s to listen)",
            restarted.as_secs_f64()
        ),
        cold,
        theirs,
    ));

    println!();
    println!("load after: {}", uptime());
    println!();
    println!("First request to a site not served before ({per_phase} sites a phase, one at a time)");
    println!("| phase | ours p50 | ours p99 | nginx p50 | nginx p99 |\n| --- | --- | --- | --- | --- |");
    for (phase, mut ours, mut theirs) in firsts {
        println!(
            "| {phase} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            percentile(&mut ours, 50.0),
            percentile(&mut ours, 99.0),
            percentile(&mut theirs, 50.0),
            percentile(&mut theirs, 99.0),
        );
    }
    println!();
    println!(
        "Serving all sites (wrk -t{} -c{} -d{}s, {rounds} alternating rounds, median)",
        knob("BENCH_WRK_THREADS", 2),
        knob("BENCH_WRK_CONNECTIONS", 50),
        knob("BENCH_WRK_SECONDS", 10)
    );
    println!("| mix | ours req/s | ours p99 | nginx req/s | nginx p99 |\n| --- | --- | --- | --- | --- |");
    for (mix, ours, theirs) in serving {
        let (mut a_rps, mut a_p99): (Vec<f64>, Vec<f64>) =
            ours.iter().map(|r| (r.requests_per_second, r.p99_ms)).unzip();
        let (mut b_rps, mut b_p99): (Vec<f64>, Vec<f64>) =
            theirs.iter().map(|r| (r.requests_per_second, r.p99_ms)).unzip();
        println!(
            "| {mix} | {:.0} | {:.2} ms | {:.0} | {:.2} ms |",
            median(&mut a_rps),
            median(&mut a_p99),
            median(&mut b_rps),
            median(&mut b_p99)
        );
    }
    println!();
    println!("Memory and disk");
    println!("| figure | value |\n| --- | --- |");
    println!(
        "| controller RSS, {} sites served | {:.1} MiB (index cache {indexes_500:.1} MiB) |",
        first_500.len(),
        rss_500 as f64 / 1024.0
    );
    println!(
        "| controller RSS, {} sites served | {:.1} MiB (index cache {indexes_all:.1} MiB) |",
        shape.sites,
        rss_all as f64 / 1024.0
    );
    println!(
        "| controller RSS after wrk | {:.1} MiB |",
        rss_served as f64 / 1024.0
    );
    let content_kib = shape.content_bytes() as f64 / 1024.0;
    println!("| content | {:.1} MiB |", content_kib / 1024.0);
    println!(
        "| our blobs on disk | {:.1} MiB ({:.2}x content) |",
        blobs_kib as f64 / 1024.0,
        blobs_kib as f64 / content_kib
    );
    println!(
        "| our data directory (blobs, database) | {:.1} MiB ({:.2}x content) |",
        data_kib as f64 / 1024.0,
        data_kib as f64 / content_kib
    );
    println!(
        "| nginx's folders | {:.1} MiB ({:.2}x content) |",
        nginx_kib as f64 / 1024.0,
        nginx_kib as f64 / content_kib
    );
    println!(
        "| variants of the new deploys made | {:.1}s after the last deploy |",
        variants_done.as_secs_f64()
    );
    println!(
        "| variant worker's start-up scan after restart | {:.1}s |",
        scan.as_secs_f64()
    );
}

fn uptime() -> String {
    Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("(uptime failed: {e})"))
}

/// Every site as a folder named by its hostname, for nginx's `root …/$host`.
fn write_trees(root: &Path, shape: Shape) {
    for site in 0..shape.sites {
        let dir = root.join(format!("{}.localhost", Shape::site(site)));
        std::fs::create_dir_all(&dir).unwrap();
        for file in 0..shape.files {
            std::fs::write(dir.join(Shape::path(file)), shape.content(site, file)).unwrap();
        }
    }
}

/// Creates every site and publishes its pages with a direct deploy, several
/// sites at once.
async fn deploy_all(app: &TestApp, shape: Shape) {
    let parallel = knob("BENCH_PARALLEL_DEPLOYS", 8) as usize;
    let mut done = 0;
    let mut deploys = futures_util::stream::iter(0..shape.sites)
        .map(|site| deploy_site(app, shape, site))
        .buffer_unordered(parallel);
    while deploys.next().await.is_some() {
        done += 1;
        if done % 500 == 0 {
            println!("  {done} sites deployed");
        }
    }
}

async fn deploy_site(app: &TestApp, shape: Shape, site: usize) {
    let name = Shape::site(site);
    app.connect_site_with(&name, json!({ "repo_url": "/nowhere/repo.git" }))
        .await;
    let files: Vec<(String, Vec<u8>)> = (0..shape.files)
        .map(|file| (Shape::path(file), shape.content(site, file)))
        .collect();
    let manifest: Vec<_> = files
        .iter()
        .map(|(path, content)| manifest_file(path, content))
        .collect();
    let started = app.start_direct_deploy(&name, json!({ "files": manifest })).await;
    let deploy_id = started["deploy_id"].as_str().unwrap().to_owned();
    // The required blobs in bundles, as `jamstack deploy` sends small files.
    let required: std::collections::HashSet<&str> = started["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|hash| hash.as_str())
        .collect();
    let mut bundles = vec![Vec::new()];
    let mut in_last = 0;
    for ((_, content), entry) in files.iter().zip(&manifest) {
        if !required.contains(entry.sha256.as_str()) {
            continue;
        }
        let last = bundles.last().unwrap();
        if last.len() + blob_bundle::frame_len(content.len() as u64) > 2 * 1024 * 1024
            || in_last == blob_bundle::MAX_BUNDLE_BLOBS
        {
            bundles.push(Vec::new());
            in_last = 0;
        }
        blob_bundle::push_frame(bundles.last_mut().unwrap(), &entry.sha256, content);
        in_last += 1;
    }
    for bundle in bundles.into_iter().filter(|b| !b.is_empty()) {
        let (status, body) = app
            .api_json(
                app.http
                    .post(app.api("/blob-bundles"))
                    .header("content-type", blob_bundle::CONTENT_TYPE)
                    .body(bundle),
            )
            .await;
        assert_eq!(status, 200, "uploading the blobs of {name}: {body}");
    }
    let (status, done) = app
        .api_json(
            app.http
                .post(app.api(&format!("/sites/{name}/deploys/{deploy_id}/finalize")))
                .json(&json!({ "publish": true })),
        )
        .await;
    assert_eq!(status, 200, "finalizing {name}: {done}");
}

/// Waits, for an hour at most, until the variant worker has nothing left.
async fn wait_for_variants(app: &TestApp) {
    let started = Instant::now();
    while variants_pending(app).await != "0" {
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "the variant worker did not finish within an hour"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the edge counts its deploy indexes as, in MiB.
async fn index_cache_mib(app: &TestApp) -> f64 {
    app.metrics()
        .await
        .lines()
        .find_map(|line| line.strip_prefix("jamstack_edge_index_cache_bytes "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN)
        / (1024.0 * 1024.0)
}

async fn variants_pending(app: &TestApp) -> String {
    app.metrics()
        .await
        .lines()
        .find_map(|line| line.strip_prefix("jamstack_variants_pending_deploys "))
        .unwrap_or("?")
        .to_owned()
}

/// `GET /` on each site in turn, one at a time on a kept-alive connection;
/// the milliseconds each took.
async fn first_requests(client: &reqwest::Client, port: u16, sites: &[usize]) -> Vec<f64> {
    let mut took = Vec::with_capacity(sites.len());
    for &site in sites {
        let started = Instant::now();
        let response = client
            .get(format!("http://127.0.0.1:{port}/"))
            .header("Host", format!("{}.localhost", Shape::site(site)))
            .send()
            .await
            .expect("a first request");
        let status = response.status();
        let body = response.bytes().await.expect("a body");
        took.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(
            status.is_success() && !body.is_empty(),
            "site {} on port {port} answered {status}",
            Shape::site(site)
        );
    }
    took
}

/// A wrk script that asks for a random page of a random site: sites
/// uniformly, or by Zipf's law (s = 1: the first site is asked for twice as
/// often as the second), pages uniformly.
fn wrk_script(dir: &Path, shape: Shape, mix: &str) -> std::path::PathBuf {
    let script = format!(
        r#"local sites, files, zipf = {sites}, {files}, {zipf}
local cdf = {{}}
if zipf then
  local total = 0
  for i = 1, sites do total = total + 1 / i; cdf[i] = total end
  for i = 1, sites do cdf[i] = cdf[i] / total end
end
local function pick_site()
  if not zipf then return math.random(sites) end
  local u, lo, hi = math.random(), 1, sites
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end
local counter = 0
setup = function(thread) counter = counter + 1; thread:set("seed", counter) end
init = function(args) math.randomseed(os.time() * 1000 + (seed or 0)) end
request = function()
  local site, file = pick_site() - 1, math.random(files) - 1
  local path = "/"
  if file > 0 then path = "/page-" .. file .. ".html" end
  return wrk.format("GET", path, {{ Host = string.format("s%05d.localhost", site) }})
end
"#,
        sites = shape.sites,
        files = shape.files,
        zipf = mix == "zipf",
    );
    let path = dir.join(format!("{mix}.lua"));
    std::fs::write(&path, script).unwrap();
    path
}

#[derive(Debug, Clone, Copy)]
struct WrkRun {
    requests_per_second: f64,
    p99_ms: f64,
}

fn wrk(port: u16, script: &Path) -> WrkRun {
    let output = Command::new("wrk")
        .args([
            "-t",
            &knob("BENCH_WRK_THREADS", 2).to_string(),
            "-c",
            &knob("BENCH_WRK_CONNECTIONS", 50).to_string(),
            "-d",
            &format!("{}s", knob("BENCH_WRK_SECONDS", 10)),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("running wrk (scripts/bench/many-sites.sh installs it)");
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
    WrkRun {
        requests_per_second,
        p99_ms: millis_of(&p99),
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
    percentile(values, 50.0)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Disk a folder takes (blocks allocated, as `du -sk` counts them).
fn du_kib(path: &Path) -> u64 {
    let output = Command::new("du")
        .arg("-sk")
        .arg(path)
        .output()
        .expect("running du");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Debian's nginx serving each site's folder by its hostname.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(dir: &Path, root: &Path) -> Self {
        // nginx cannot say which port it bound, so it is given one that was
        // free a moment ago: the benchmark runs alone.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("logs")).unwrap();
        let conf = prefix.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes auto;\npid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log;\n\
                 daemon off;\nevents {{ worker_connections 4096; }}\n\
                 http {{\n  include /etc/nginx/mime.types;\n  sendfile on;\n  tcp_nopush on;\n\
                 access_log off;\n  keepalive_requests 100000;\n  open_file_cache max=10000;\n\
                 client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n\
                 fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n\
                 scgi_temp_path {prefix}/scgi;\n\
                 server {{\n    listen 127.0.0.1:{port};\n    root {root}/$host;\n  }}\n}}\n",
                prefix = prefix.display(),
                root = root.display(),
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
            .expect("starting nginx (scripts/bench/many-sites.sh installs it)");
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
