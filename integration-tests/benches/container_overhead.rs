//! The overhead of the runner's container step against `docker run` of the
//! same image and command from a shell, side by side, in the same run.
//! Run: `cargo bench -p integration-tests --bench container_overhead`.
//!
//! "Ours" is the sequence `job.rs` runs for every build, through the same
//! `executor/docker/engine.rs` calls: the scratch cache volume, the source packed and
//! streamed in through the archive API, create with every limit, attach +
//! start + stream output + wait; the job's own network is made while the
//! source is fetched, and the container, volume and network are removed
//! after the build is reported. So two figures: what a build waits for
//! (the critical path) and all the work (network and removal included).
//! The peer is `sh -c 'docker run --rm --init <image> sh -c <command>'`,
//! removal included. Both run `echo hello` in `jamstack/busybox:1`; rounds
//! alternate so both see the same machine load. Goal: ours at most 1.2x
//! the peer, or at most 150 ms more.

use jamstack_runner::build_log::LogItem;
use jamstack_runner::executor::docker::engine::{ContainerSpec, Engine, Network, VolumeMount};
use jamstack_runner::executor::image::PullPolicy;
use jamstack_runner::executor::{Limits, labels, source};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const IMAGE: &str = "jamstack/busybox:1";
const COMMAND: &str = "echo hello";
const ROUNDS: usize = 20;

#[tokio::main]
async fn main() {
    let engine = Engine::connect().await.expect("a running Docker engine");
    engine
        .ensure_image(IMAGE, PullPolicy::Never)
        .await
        .expect("jamstack/busybox:1: run scripts/build-images.sh first");
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("index.html"), "<h1>hello</h1>").unwrap();
    std::fs::create_dir_all(source.path().join("css")).unwrap();
    std::fs::write(source.path().join("css/site.css"), "body{}").unwrap();
    let work = tempfile::tempdir().unwrap();
    let instance = format!("bench-{}", std::process::id());

    let mut critical = Vec::new();
    let mut total = Vec::new();
    let mut bridge = Vec::new();
    let mut peer = Vec::new();
    let mut steps: HashMap<&'static str, Vec<f64>> = HashMap::new();
    for round in 0..ROUNDS + 2 {
        let ours = our_step(&engine, source.path(), work.path(), &instance, round, true).await;
        let on_bridge = our_step(&engine, source.path(), work.path(), &instance, round, false).await;
        let theirs = docker_run();
        if round < 2 {
            continue; // warm-up
        }
        critical.push(ours.critical);
        total.push(ours.total);
        bridge.push(on_bridge.total);
        peer.push(theirs);
        for (step, ms) in ours.split {
            steps.entry(step).or_default().push(ms);
        }
    }

    println!("container step, {ROUNDS} rounds each (ms)                 median    mean     p90");
    row("docker run --rm (shell, the peer)", &peer);
    row("ours, what a build waits for", &critical);
    row("ours, all the work (network, removal)", &total);
    row("ours on the default bridge, all the work", &bridge);
    println!("\nours, by step (median ms; * = off the build's critical path):");
    for step in [
        "network*", "volume", "pack", "create", "upload", "start", "run", "remove*",
    ] {
        println!(
            "  {step:<9} {:>7.1}",
            median(steps.get(step).map_or(&[][..], |v| v))
        );
    }
    let (ours_m, peer_m) = (median(&critical), median(&peer));
    println!(
        "\nwhat a build waits for / peer: {:.2}x, {:+.0} ms; all the work / peer: {:.2}x, {:+.0} ms \
         (goal: at most 1.2x or +150 ms)",
        ours_m / peer_m,
        ours_m - peer_m,
        median(&total) / peer_m,
        median(&total) - peer_m
    );
}

/// The times of one container step, in ms.
struct Step {
    /// What the build waits for.
    critical: f64,
    /// Everything, the network and removal included.
    total: f64,
    split: Vec<(&'static str, f64)>,
}

/// One container step as a build runs it; returns the total and the split.
async fn our_step(
    engine: &Engine,
    source: &std::path::Path,
    work: &std::path::Path,
    instance: &str,
    round: usize,
    network_per_job: bool,
) -> Step {
    let mut laps = Laps::default();
    let name = format!("jamstack-bench-{instance}-{round}-{network_per_job}");
    let labels = HashMap::from([
        (labels::INSTANCE.to_owned(), instance.to_owned()),
        (labels::RUNNER.to_owned(), "bench".to_owned()),
    ]);
    let network = if network_per_job {
        engine.create_network(&name, None, &labels).await.unwrap();
        Network::Named(name.clone())
    } else {
        Network::DefaultBridge
    };
    laps.lap("network*");
    let critical_start = Instant::now();
    let scratch = format!("{name}-cache");
    engine.create_volume(&scratch, &labels).await.unwrap();
    laps.lap("volume");
    let tar = work.join(format!("{name}.tar"));
    source::write_workspace_tar(source, &["cache"], &tar).unwrap();
    laps.lap("pack");
    let spec = ContainerSpec {
        name: name.clone(),
        image: IMAGE.to_owned(),
        command: COMMAND.to_owned(),
        working_dir: "/workspace".to_owned(),
        env: vec![("CI".to_owned(), "true".to_owned())],
        labels,
        limits: Limits::default(),
        network,
        mounts: vec![VolumeMount {
            volume: scratch.clone(),
            target: "/cache".to_owned(),
            read_only: false,
        }],
    };
    let id = engine.create(&spec).await.unwrap();
    laps.lap("create");
    engine.upload_tar_file(&id, &tar).await.unwrap();
    std::fs::remove_file(&tar).unwrap();
    laps.lap("upload");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<LogItem>(64);
    let drain = tokio::spawn(async move {
        let mut bytes = 0;
        while let Some(item) = rx.recv().await {
            bytes += item.bytes.len();
        }
        bytes
    });
    let (exit, start) = engine
        .run(&id, &tx, &CancellationToken::new(), Duration::from_secs(5))
        .await
        .unwrap();
    drop(tx);
    assert!(exit.succeeded(), "{exit:?}");
    assert_eq!(drain.await.unwrap(), "hello\n".len());
    laps.split.push(("start", start.as_secs_f64() * 1000.0));
    laps.split.push((
        "run",
        (laps.mark.elapsed().saturating_sub(start)).as_secs_f64() * 1000.0,
    ));
    let critical = critical_start.elapsed().as_secs_f64() * 1000.0;
    laps.mark = Instant::now();
    engine.remove(&id).await;
    engine.remove_volume(&scratch).await;
    if network_per_job {
        engine.remove_network(&name).await;
    }
    laps.lap("remove*");
    let total = laps.split.iter().map(|(_, ms)| ms).sum();
    Step {
        critical,
        total,
        split: laps.split,
    }
}

/// Step times of one round, in ms.
struct Laps {
    mark: Instant,
    split: Vec<(&'static str, f64)>,
}

impl Default for Laps {
    fn default() -> Self {
        Laps {
            mark: Instant::now(),
            split: Vec::new(),
        }
    }
}

impl Laps {
    fn lap(&mut self, name: &'static str) {
        self.split
            .push((name, self.mark.elapsed().as_secs_f64() * 1000.0));
        self.mark = Instant::now();
    }
}

/// `docker run --rm` of the same image and command, from a shell.
fn docker_run() -> f64 {
    let started = Instant::now();
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("docker run --rm --init {IMAGE} sh -c '{COMMAND}'"))
        .output()
        .expect("running the docker CLI");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"hello\n");
    started.elapsed().as_secs_f64() * 1000.0
}

fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn row(name: &str, values: &[f64]) {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    println!(
        "{name:<42} {:>7.0} {:>7.0} {:>7.0}",
        median(values),
        mean,
        percentile(values, 0.9)
    );
}
