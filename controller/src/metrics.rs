//! Prometheus metrics, served at `GET /metrics` in the text format.
//!
//! Counters and histograms live in [`Metrics`], one per controller (not a
//! process-wide registry, so several controllers in one process, as in the
//! tests, keep their own). Everything the edge records per request is an
//! atomic add on fixed arrays: no lock, no allocation, no label lookup.
//! Figures that are facts of the database (queue depth, runners) are read
//! when scraped, so every controller sharing a database reports the same.
//! Build outcomes and durations come from [`crate::events`] (a listener,
//! [`record_build_events`]), so no build path calls into this module.
//!
//! Labels stay bounded: `site` only where the number of sites bounds it,
//! `class` (1xx…5xx) for edge answers, `outcome` from the build states.

use crate::db::Database;
pub use crate::db::QueueFigures;
use crate::events::Events;
use axum::http::StatusCode;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of edge latency buckets, in seconds.
const EDGE_LATENCY_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Upper bounds of queue wait buckets, in seconds.
const WAIT_BOUNDS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];
/// Upper bounds of build duration buckets, in seconds.
const BUILD_BOUNDS: &[f64] = &[1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];
/// Upper bounds of deploy size buckets, in bytes.
const DEPLOY_SIZE_BOUNDS: &[f64] = &[1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

/// The edge's status classes, 1xx to 5xx.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A histogram of fixed buckets, recorded with atomic adds only.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative; the last counts what exceeds every bound.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// The sum in `1 / scale` of the unit, kept as an integer so adding is
    /// one atomic operation.
    sum_scaled: AtomicU64,
    scale: f64,
}

impl Histogram {
    /// A histogram of seconds (its sum is kept in microseconds).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self::with_scale(bounds, 1e6)
    }

    /// A histogram of whole units such as bytes.
    pub fn of_units(bounds: &'static [f64]) -> Self {
        Self::with_scale(bounds, 1.0)
    }

    fn with_scale(bounds: &'static [f64], scale: f64) -> Self {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_scaled: AtomicU64::new(0),
            scale,
        }
    }

    pub fn observe(&self, value: f64) {
        let value = value.max(0.0);
        let index = self.bounds.partition_point(|bound| *bound < value);
        self.buckets[index].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_scaled.fetch_add((value * self.scale) as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let separator = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(self.buckets.iter()) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[self.bounds.len()].load(Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {cumulative}"
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_scaled.load(Relaxed) as f64 / self.scale;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {}", self.count.load(Relaxed));
    }
}

/// What the edge records per answer.
#[derive(Debug)]
pub struct EdgeMetrics {
    requests: [AtomicU64; 5],
    latency: [Histogram; 5],
}

impl Default for EdgeMetrics {
    fn default() -> Self {
        EdgeMetrics {
            requests: Default::default(),
            latency: std::array::from_fn(|_| Histogram::new(EDGE_LATENCY_BOUNDS)),
        }
    }
}

impl EdgeMetrics {
    /// Counts one answer of the edge and how long it took: two atomic adds
    /// and a bucket search, nothing else.
    pub fn record(&self, status: StatusCode, took: Duration) {
        let class = (usize::from(status.as_u16() / 100)).clamp(1, 5) - 1;
        self.requests[class].fetch_add(1, Relaxed);
        self.latency[class].observe(took.as_secs_f64());
    }
}

/// Builds of one site that ended one way, and how long they ran.
#[derive(Debug)]
struct BuildFigures {
    count: u64,
    duration: Histogram,
}

/// Every figure a controller keeps in memory.
#[derive(Debug)]
pub struct Metrics {
    pub edge: EdgeMetrics,
    /// Seconds from queued to first leased.
    queue_wait: Histogram,
    /// By (site, outcome). Touched once per finished build, never by the edge.
    builds: Mutex<BTreeMap<(String, &'static str), BuildFigures>>,
    deploy_files_referenced: AtomicU64,
    deploy_files_uploaded: AtomicU64,
    deploy_bytes_referenced: AtomicU64,
    deploy_bytes_uploaded: AtomicU64,
    deploy_size: Histogram,
    /// Ready deploys whose variants are queued or being made.
    variant_deploys_pending: AtomicU64,
    variant_blobs_made: AtomicU64,
    worker_restarts: WorkerRestarts,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            edge: EdgeMetrics::default(),
            queue_wait: Histogram::new(WAIT_BOUNDS),
            builds: Mutex::new(BTreeMap::new()),
            deploy_files_referenced: AtomicU64::new(0),
            deploy_files_uploaded: AtomicU64::new(0),
            deploy_bytes_referenced: AtomicU64::new(0),
            deploy_bytes_uploaded: AtomicU64::new(0),
            deploy_size: Histogram::of_units(DEPLOY_SIZE_BOUNDS),
            variant_deploys_pending: AtomicU64::new(0),
            variant_blobs_made: AtomicU64::new(0),
            worker_restarts: WorkerRestarts::default(),
        }
    }
}

/// What one manifest named and what of it had to travel.
#[derive(Debug, Clone, Copy, Default)]
pub struct ManifestFigures {
    pub files_referenced: u64,
    pub bytes_referenced: u64,
    pub files_uploaded: u64,
    pub bytes_uploaded: u64,
}

impl ManifestFigures {
    /// Every file counts as referenced; each missing blob is uploaded once,
    /// however many paths name it.
    pub fn of(files: &[jamstack_proto::ManifestFile], missing: &[String]) -> Self {
        let missing: std::collections::HashSet<&str> = missing.iter().map(String::as_str).collect();
        let mut uploaded = std::collections::HashSet::new();
        let mut figures = ManifestFigures::default();
        for file in files {
            figures.files_referenced += 1;
            figures.bytes_referenced += file.size;
            if missing.contains(file.sha256.as_str()) && uploaded.insert(file.sha256.as_str()) {
                figures.files_uploaded += 1;
                figures.bytes_uploaded += file.size;
            }
        }
        figures
    }
}

impl Metrics {
    pub fn record_queue_wait(&self, waited: Duration) {
        self.queue_wait.observe(waited.as_secs_f64());
    }

    pub fn record_build(&self, site: &str, outcome: &'static str, ran: Option<Duration>) {
        let mut builds = self.builds.lock().unwrap_or_else(|e| e.into_inner());
        let figures = builds
            .entry((site.to_owned(), outcome))
            .or_insert_with(|| BuildFigures {
                count: 0,
                duration: Histogram::new(BUILD_BOUNDS),
            });
        figures.count += 1;
        if let Some(ran) = ran {
            figures.duration.observe(ran.as_secs_f64());
        }
    }

    /// A manifest arrived: what it names and what of it the store lacked.
    pub fn record_manifest(&self, figures: ManifestFigures) {
        self.deploy_files_referenced
            .fetch_add(figures.files_referenced, Relaxed);
        self.deploy_files_uploaded
            .fetch_add(figures.files_uploaded, Relaxed);
        self.deploy_bytes_referenced
            .fetch_add(figures.bytes_referenced, Relaxed);
        self.deploy_bytes_uploaded
            .fetch_add(figures.bytes_uploaded, Relaxed);
        self.deploy_size.observe(figures.bytes_referenced as f64);
    }

    /// A deploy was queued for its compressed variants.
    pub fn record_variants_queued(&self) {
        self.variant_deploys_pending.fetch_add(1, Relaxed);
    }

    /// A queued deploy's variants are done: `blobs` were compressed.
    pub fn record_variants_made(&self, blobs: usize) {
        self.variant_deploys_pending.fetch_sub(1, Relaxed);
        self.variant_blobs_made.fetch_add(blobs as u64, Relaxed);
    }

    /// A background worker panicked and is started again (see
    /// [`crate::supervisor`]).
    pub fn record_worker_restart(&self, worker: &'static str) {
        self.worker_restarts.record(worker);
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self, queue: QueueFigures) -> String {
        let mut out = String::with_capacity(8 * 1024);
        gauge(
            &mut out,
            "jamstack_queue_depth",
            "Builds waiting for a runner.",
            queue.queued,
        );
        gauge(
            &mut out,
            "jamstack_builds_running",
            "Builds leased to a runner now.",
            queue.running,
        );
        gauge(
            &mut out,
            "jamstack_runners_connected",
            "Runners that called within the last minute.",
            queue.runners_connected,
        );
        gauge(
            &mut out,
            "jamstack_runners_busy",
            "Runners holding at least one lease.",
            queue.runners_busy,
        );
        header(
            &mut out,
            "jamstack_queue_wait_seconds",
            "histogram",
            "Time from a build being queued to its first lease.",
        );
        self.queue_wait
            .render(&mut out, "jamstack_queue_wait_seconds", "");

        let builds = self.builds.lock().unwrap_or_else(|e| e.into_inner());
        header(
            &mut out,
            "jamstack_builds_total",
            "counter",
            "Builds that ended, by site and outcome.",
        );
        for ((site, outcome), figures) in builds.iter() {
            let _ = writeln!(
                out,
                "jamstack_builds_total{{site=\"{}\",outcome=\"{outcome}\"}} {}",
                escape(site),
                figures.count
            );
        }
        header(
            &mut out,
            "jamstack_build_duration_seconds",
            "histogram",
            "How long builds ran, from first lease to end, by site and outcome.",
        );
        for ((site, outcome), figures) in builds.iter() {
            let labels = format!("site=\"{}\",outcome=\"{outcome}\"", escape(site));
            figures
                .duration
                .render(&mut out, "jamstack_build_duration_seconds", &labels);
        }
        drop(builds);

        for (name, help, value) in [
            (
                "jamstack_deploy_files_referenced_total",
                "Files named by deploy manifests.",
                &self.deploy_files_referenced,
            ),
            (
                "jamstack_deploy_files_uploaded_total",
                "Files of deploy manifests the store lacked, which had to be uploaded.",
                &self.deploy_files_uploaded,
            ),
            (
                "jamstack_deploy_bytes_referenced_total",
                "Bytes named by deploy manifests.",
                &self.deploy_bytes_referenced,
            ),
            (
                "jamstack_deploy_bytes_uploaded_total",
                "Bytes of deploy manifests the store lacked; 1 - uploaded/referenced is the dedupe ratio.",
                &self.deploy_bytes_uploaded,
            ),
        ] {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", value.load(Relaxed));
        }
        header(
            &mut out,
            "jamstack_deploy_size_bytes",
            "histogram",
            "Total size of each deploy's files.",
        );
        self.deploy_size
            .render(&mut out, "jamstack_deploy_size_bytes", "");
        gauge(
            &mut out,
            "jamstack_variants_pending_deploys",
            "Ready deploys whose compressed variants are queued or being made.",
            self.variant_deploys_pending.load(Relaxed) as i64,
        );
        header(
            &mut out,
            "jamstack_variant_blobs_total",
            "counter",
            "Blobs compressed into brotli and gzip variants.",
        );
        let _ = writeln!(
            out,
            "jamstack_variant_blobs_total {}",
            self.variant_blobs_made.load(Relaxed)
        );

        header(
            &mut out,
            "jamstack_edge_requests_total",
            "counter",
            "Answers of the edge (site hostnames), by status class.",
        );
        for (class, count) in CLASSES.iter().zip(self.edge.requests.iter()) {
            let _ = writeln!(
                out,
                "jamstack_edge_requests_total{{class=\"{class}\"}} {}",
                count.load(Relaxed)
            );
        }
        header(
            &mut out,
            "jamstack_edge_request_duration_seconds",
            "histogram",
            "Time the edge took to produce an answer, by status class.",
        );
        for (class, histogram) in CLASSES.iter().zip(self.edge.latency.iter()) {
            histogram.render(
                &mut out,
                "jamstack_edge_request_duration_seconds",
                &format!("class=\"{class}\""),
            );
        }
        self.worker_restarts.render(&mut out);
        out
    }
}

/// Restarts of background workers after a panic, by worker name (a fixed
/// set: the names the supervisor is given).
#[derive(Debug, Default)]
struct WorkerRestarts(Mutex<BTreeMap<&'static str, u64>>);

impl WorkerRestarts {
    fn record(&self, worker: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(worker)
            .or_default() += 1;
    }

    fn render(&self, out: &mut String) {
        header(
            out,
            "jamstack_worker_restarts_total",
            "counter",
            "Background workers started again after a panic, by worker.",
        );
        for (worker, count) in self.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "jamstack_worker_restarts_total{{worker=\"{worker}\"}} {count}"
            );
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: i64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Records build outcomes, durations and queue waits from the build events
/// of this controller. Runs beside the server; takes the times an event
/// carries and reads the build only when it carries none, so a missed event
/// costs a figure, never a wrong one.
pub async fn record_build_events(db: Database, events: Events, metrics: Arc<Metrics>) {
    use crate::db::BuildState;
    use crate::events::BuildTiming;
    let mut changes = events.build_changes();
    // Site names never change: each is read once.
    let mut site_names: HashMap<i64, String> = HashMap::new();
    while let Some(change) = changes.next().await {
        if change.state != BuildState::Running && !change.state.is_finished() {
            // Queued: nothing to count yet.
            continue;
        }
        let millis = |from: i64, to: i64| Duration::from_millis(to.saturating_sub(from).max(0) as u64);
        let timing = match change.timing {
            Some(timing) => timing,
            None => match db.build(change.build_id).await {
                Ok(Some(build)) => {
                    site_names.insert(build.site_id, build.site.clone());
                    if change.state == BuildState::Running {
                        match build.started_at {
                            Some(started_at) => BuildTiming::Started {
                                queued_at: build.created_at,
                                started_at,
                                attempt: build.attempts,
                            },
                            None => continue,
                        }
                    } else {
                        BuildTiming::Ended {
                            started_at: build.started_at.filter(|_| build.finished_at.is_some()),
                            finished_at: build.finished_at.unwrap_or(build.created_at),
                        }
                    }
                }
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        build_id = change.build_id,
                        "metrics could not read a build"
                    );
                    continue;
                }
            },
        };
        match timing {
            BuildTiming::Started {
                queued_at,
                started_at,
                attempt,
            } => {
                if attempt == 1 {
                    metrics.record_queue_wait(millis(queued_at, started_at));
                }
            }
            BuildTiming::Ended {
                started_at,
                finished_at,
            } => {
                if !change.state.is_finished() {
                    continue;
                }
                let site = match site_names.get(&change.site_id) {
                    Some(name) => name,
                    None => match db.site_by_id(change.site_id).await {
                        Ok(Some(site)) => site_names.entry(change.site_id).or_insert(site.name),
                        Ok(None) => continue,
                        Err(error) => {
                            tracing::warn!(
                                error = format!("{error:#}"),
                                site_id = change.site_id,
                                "metrics could not read a site"
                            );
                            continue;
                        }
                    },
                };
                let ran = started_at.map(|started| millis(started, finished_at));
                metrics.record_build(site, change.state.as_str(), ran);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_each_value_in_its_bucket_and_cumulate_when_rendered() {
        let histogram = Histogram::new(&[1.0, 5.0]);
        for value in [0.5, 1.0, 3.0, 7.0] {
            histogram.observe(value);
        }
        let mut out = String::new();
        histogram.render(&mut out, "h", "site=\"a\"");
        assert_eq!(
            out,
            "h_bucket{site=\"a\",le=\"1\"} 2\nh_bucket{site=\"a\",le=\"5\"} 3\n\
             h_bucket{site=\"a\",le=\"+Inf\"} 4\nh_sum{site=\"a\"} 11.5\nh_count{site=\"a\"} 4\n"
        );
    }

    #[test]
    fn edge_answers_are_counted_by_status_class() {
        let metrics = Metrics::default();
        metrics.edge.record(StatusCode::OK, Duration::from_micros(300));
        metrics
            .edge
            .record(StatusCode::NOT_FOUND, Duration::from_millis(2));
        metrics
            .edge
            .record(StatusCode::NOT_MODIFIED, Duration::from_millis(2));
        let text = metrics.render(QueueFigures::default());
        assert!(
            text.contains("jamstack_edge_requests_total{class=\"2xx\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("jamstack_edge_requests_total{class=\"3xx\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("jamstack_edge_requests_total{class=\"4xx\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("jamstack_edge_requests_total{class=\"5xx\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("jamstack_edge_request_duration_seconds_bucket{class=\"2xx\",le=\"0.0005\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn site_names_cannot_break_out_of_their_label() {
        let metrics = Metrics::default();
        metrics.record_build("a\"b", "failed", None);
        let text = metrics.render(QueueFigures::default());
        assert!(
            text.contains("jamstack_builds_total{site=\"a\\\"b\",outcome=\"failed\"} 1\n"),
            "{text}"
        );
    }
}
