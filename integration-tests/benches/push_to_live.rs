//! How long a trivial build takes from webhook to served page, how that
//! splits into its steps, and its floor: the same build done by hand in the
//! same run (`git clone` the commit, `docker run` the build command in
//! `jamstack/busybox:1`, copy the output out, swap a symlink, read the
//! page). Run: `scripts/bench/push-to-live.sh`.
//!
//! Each round commits a one-file change, delivers a signed push webhook, and
//! polls the site until it serves the new content; then builds the same
//! commit by hand. The step split comes from the step timings the runner
//! reports with each build's outcome. `BENCH_ROUNDS` (10) sets the rounds.

#[path = "../tests/e2e/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use helpers::{COPY_SITE_TOML, SiteRepo, spawn_app};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The build command of [`COPY_SITE_TOML`], run by hand for the floor.
const BUILD_COMMAND: &str = "mkdir -p public && cp -R src/. public/ && echo built $COMMIT_REF";

#[tokio::main]
async fn main() {
    assert!(
        COPY_SITE_TOML.contains(BUILD_COMMAND),
        "the floor runs the same command as the site"
    );
    println!("load before: {}", uptime());
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    repo.commit(
        &[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "warm-up")],
        "warm-up",
    );
    app.connect_site("bench", &repo, "octo/bench").await;
    let floor_dir = tempfile::tempdir().unwrap();

    let (mut totals, mut floors) = (Vec::new(), Vec::new());
    let mut steps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut floor_steps: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 0..=rounds {
        let content = format!("round {round}");
        let sha = repo.commit(&[("src/index.html", &content)], &content);
        let started = Instant::now();
        let build = app.push("octo/bench", &repo, &sha).await;
        loop {
            if app.visit("bench", "/").await.body == content {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "round {round} never went live"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let total = started.elapsed().as_secs_f64() * 1000.0;
        let finished = app.wait_for_success(build).await;
        let (floor, floor_split) = by_hand(floor_dir.path(), &repo.url(), &sha, round, &content);
        if round == 0 {
            continue; // warm-up: first container start, first connections
        }
        totals.push(total);
        floors.push(floor);
        for (name, millis) in floor_split {
            floor_steps.entry(name).or_default().push(millis);
        }
        for step in finished["step_timings"].as_array().into_iter().flatten() {
            let (Some(name), Some(millis)) = (step["name"].as_str(), step["millis"].as_f64()) else {
                continue;
            };
            steps.entry(name.to_owned()).or_default().push(millis);
        }
    }
    println!("load after: {}", uptime());
    println!();
    let ratio = median(&mut totals) / median(&mut floors);
    println!(
        "ours: webhook → served page, {rounds} rounds (ms): {}",
        summary(&mut totals)
    );
    for (name, values) in &mut steps {
        println!("  {name:<20} {}", summary(values));
    }
    println!(
        "floor: clone, docker run, copy out, symlink swap, read (ms): {}",
        summary(&mut floors)
    );
    for (name, values) in &mut floor_steps {
        println!("  {name:<20} {}", summary(values));
    }
    println!("ours / floor (median): {ratio:.2}. Goal: at most 1.25.");
}

/// The build done by hand: the commit cloned, the command run in the same
/// image, the output copied into a release folder, a symlink swapped to it
/// and the page read through it. Returns the total and each step (ms).
fn by_hand(
    dir: &Path,
    repo: &str,
    sha: &str,
    round: usize,
    content: &str,
) -> (f64, Vec<(&'static str, f64)>) {
    let checkout = dir.join(format!("checkout-{round}"));
    let release = dir.join(format!("release-{round}"));
    let mut split = Vec::new();
    let started = Instant::now();
    let mut step = Instant::now();
    let mut lap = |name: &'static str, step: &mut Instant| {
        split.push((name, step.elapsed().as_secs_f64() * 1000.0));
        *step = Instant::now();
    };
    run(Command::new("git")
        .args(["clone", "--quiet", "--depth", "1", "--branch", "main"])
        .arg(format!("file://{repo}"))
        .arg(&checkout));
    let head = Command::new("git")
        .arg("-C")
        .arg(&checkout)
        .args(["rev-parse", "HEAD"])
        .output()
        .expect("git rev-parse");
    assert_eq!(
        String::from_utf8_lossy(&head.stdout).trim(),
        sha,
        "the clone is of the commit"
    );
    lap("clone", &mut step);
    // The checkout's owner runs the command, so it can write beside the
    // sources through the bind mount (the image's own user cannot).
    let owner = {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&checkout).unwrap();
        format!("{}:{}", meta.uid(), meta.gid())
    };
    run(Command::new("docker")
        .args(["run", "--rm", "--network", "none", "--user", &owner, "-e"])
        .arg(format!("COMMIT_REF={sha}"))
        .arg("-v")
        .arg(format!("{}:/workspace", checkout.display()))
        .args([
            "-w",
            "/workspace",
            "jamstack/busybox:1",
            "sh",
            "-c",
            BUILD_COMMAND,
        ]));
    lap("docker run", &mut step);
    run(Command::new("cp")
        .arg("-a")
        .arg(checkout.join("public"))
        .arg(&release));
    lap("copy out", &mut step);
    let link = dir.join("current");
    let temporary = dir.join("current.next");
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(&release, &temporary).unwrap();
    std::fs::rename(&temporary, &link).unwrap();
    let served = std::fs::read_to_string(link.join("index.html")).unwrap();
    assert_eq!(served, content, "the swapped release serves the commit");
    lap("swap and read", &mut step);
    (started.elapsed().as_secs_f64() * 1000.0, split)
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn uptime() -> String {
    Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("(uptime failed: {e})"))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn summary(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    format!(
        "median {median:.0}, mean {mean:.0}, min {:.0}, max {:.0}",
        values[0],
        values[values.len() - 1]
    )
}
