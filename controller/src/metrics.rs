//! Prometheus metrics, served at `GET /metrics` in the text format.
//!
//! The figures live in one `prometheus_client` registry per controller (not
//! a process-wide one, so several controllers in one process, as in the
//! tests, keep their own), which also writes the text format. The edge
//! holds its five counters and histograms (one per status class) directly,
//! so an answer is recorded without a label lookup or an allocation.
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
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    site: String,
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn build_duration_histogram() -> Histogram {
    Histogram::new(BUILD_BOUNDS.iter().copied())
}

/// What the edge records per answer: the series of each status class,
/// taken out of their families once.
#[derive(Debug)]
pub struct EdgeMetrics {
    requests: [Counter; 5],
    latency: [Histogram; 5],
}

impl EdgeMetrics {
    /// Counts one answer of the edge and how long it took: an atomic add
    /// and one histogram observation, nothing else.
    pub fn record(&self, status: StatusCode, took: Duration) {
        let class = (usize::from(status.as_u16() / 100)).clamp(1, 5) - 1;
        self.requests[class].inc();
        self.latency[class].observe(took.as_secs_f64());
    }
}

/// Every figure a controller keeps in memory, and the registry that
/// writes them out.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub edge: EdgeMetrics,
    queue_depth: Gauge,
    builds_running: Gauge,
    runners_connected: Gauge,
    runners_busy: Gauge,
    /// Seconds from queued to first leased.
    queue_wait: Histogram,
    /// By (site, outcome). Touched once per finished build, never by the edge.
    builds: Family<BuildLabels, Counter>,
    build_duration: HistogramFamily<BuildLabels>,
    deploy_files_referenced: Counter,
    deploy_files_uploaded: Counter,
    deploy_bytes_referenced: Counter,
    deploy_bytes_uploaded: Counter,
    deploy_size: Histogram,
    /// Ready deploys whose variants are queued or being made.
    variant_deploys_pending: Gauge,
    variant_blobs_made: Counter,
    /// The edge's deploy indexes: their estimated size and evictions.
    pub edge_index: EdgeIndexMetrics,
    /// Restarts of background workers after a panic, by worker name.
    worker_restarts: Family<WorkerLabels, Counter>,
    /// Failed renewals of ACME certificates by this controller.
    acme_renewal_failures: Counter,
    /// Seconds until each served certificate expires, by hostname.
    certificate_expiry: Family<HostnameLabels, Gauge>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostnameLabels {
    hostname: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        // Counters are named without `_total` and help texts without their
        // closing full stop: the registry adds both.
        let mut gauge = |name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let queue_depth = gauge("jamstack_queue_depth", "Builds waiting for a runner");
        let builds_running = gauge("jamstack_builds_running", "Builds leased to a runner now");
        let runners_connected = gauge(
            "jamstack_runners_connected",
            "Runners that called within the last minute",
        );
        let runners_busy = gauge("jamstack_runners_busy", "Runners holding at least one lease");
        let queue_wait = Histogram::new(WAIT_BOUNDS.iter().copied());
        registry.register(
            "jamstack_queue_wait_seconds",
            "Time from a build being queued to its first lease",
            queue_wait.clone(),
        );
        let builds = Family::<BuildLabels, Counter>::default();
        registry.register(
            "jamstack_builds",
            "Builds that ended, by site and outcome",
            builds.clone(),
        );
        let build_duration = HistogramFamily::<BuildLabels>::new_with_constructor(build_duration_histogram);
        registry.register(
            "jamstack_build_duration_seconds",
            "How long builds ran, from first lease to end, by site and outcome",
            build_duration.clone(),
        );
        let mut counter = |name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let deploy_files_referenced = counter(
            "jamstack_deploy_files_referenced",
            "Files named by deploy manifests",
        );
        let deploy_files_uploaded = counter(
            "jamstack_deploy_files_uploaded",
            "Files of deploy manifests the store lacked, which had to be uploaded",
        );
        let deploy_bytes_referenced = counter(
            "jamstack_deploy_bytes_referenced",
            "Bytes named by deploy manifests",
        );
        let deploy_bytes_uploaded = counter(
            "jamstack_deploy_bytes_uploaded",
            "Bytes of deploy manifests the store lacked; 1 - uploaded/referenced is the dedupe ratio",
        );
        let deploy_size = Histogram::new(DEPLOY_SIZE_BOUNDS.iter().copied());
        registry.register(
            "jamstack_deploy_size_bytes",
            "Total size of each deploy's files",
            deploy_size.clone(),
        );
        let variant_deploys_pending = Gauge::default();
        registry.register(
            "jamstack_variants_pending_deploys",
            "Ready deploys whose compressed variants are queued or being made",
            variant_deploys_pending.clone(),
        );
        let variant_blobs_made = Counter::default();
        registry.register(
            "jamstack_variant_blobs",
            "Blobs compressed into brotli and gzip variants",
            variant_blobs_made.clone(),
        );
        let edge_index = EdgeIndexMetrics::default();
        registry.register(
            "jamstack_edge_index_cache_bytes",
            "Estimated memory of the deploy indexes the edge holds (bounded by --edge-index-cache-mib)",
            edge_index.bytes.clone(),
        );
        registry.register(
            "jamstack_edge_index_evictions",
            "Deploy indexes the edge dropped to stay within --edge-index-cache-mib",
            edge_index.evictions.clone(),
        );
        let edge_requests = Family::<ClassLabels, Counter>::default();
        registry.register(
            "jamstack_edge_requests",
            "Answers of the edge (site hostnames), by status class",
            edge_requests.clone(),
        );
        let edge_latency = HistogramFamily::<ClassLabels>::new_with_constructor(|| {
            Histogram::new(EDGE_LATENCY_BOUNDS.iter().copied())
        });
        registry.register(
            "jamstack_edge_request_duration_seconds",
            "Time the edge took to produce an answer, by status class",
            edge_latency.clone(),
        );
        let worker_restarts = Family::<WorkerLabels, Counter>::default();
        registry.register(
            "jamstack_worker_restarts",
            "Background workers started again after a panic, by worker.",
            worker_restarts.clone(),
        );
        let acme_renewal_failures = Counter::default();
        registry.register(
            "jamstack_acme_renewal_failures",
            "Renewals of ACME certificates that failed (each is retried with backoff)",
            acme_renewal_failures.clone(),
        );
        let certificate_expiry = Family::<HostnameLabels, Gauge>::default();
        registry.register(
            "jamstack_certificate_expiry_seconds",
            "Seconds until the certificate stored for a hostname expires (negative once expired)",
            certificate_expiry.clone(),
        );
        let edge = EdgeMetrics {
            requests: CLASSES.map(|class| edge_requests.get_or_create_owned(&ClassLabels { class })),
            latency: CLASSES.map(|class| edge_latency.get_or_create_owned(&ClassLabels { class })),
        };
        Metrics {
            registry,
            edge,
            queue_depth,
            builds_running,
            runners_connected,
            runners_busy,
            queue_wait,
            builds,
            build_duration,
            deploy_files_referenced,
            deploy_files_uploaded,
            deploy_bytes_referenced,
            deploy_bytes_uploaded,
            deploy_size,
            variant_deploys_pending,
            variant_blobs_made,
            edge_index,
            worker_restarts,
            acme_renewal_failures,
            certificate_expiry,
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
        let labels = BuildLabels {
            site: site.to_owned(),
            outcome,
        };
        self.builds.get_or_create(&labels).inc();
        // Every (site, outcome) that counts a build has its histogram, even
        // before a build of it ran long enough to be timed.
        let duration = self.build_duration.get_or_create(&labels);
        if let Some(ran) = ran {
            duration.observe(ran.as_secs_f64());
        }
    }

    /// A manifest arrived: what it names and what of it the store lacked.
    pub fn record_manifest(&self, figures: ManifestFigures) {
        self.deploy_files_referenced.inc_by(figures.files_referenced);
        self.deploy_files_uploaded.inc_by(figures.files_uploaded);
        self.deploy_bytes_referenced.inc_by(figures.bytes_referenced);
        self.deploy_bytes_uploaded.inc_by(figures.bytes_uploaded);
        self.deploy_size.observe(figures.bytes_referenced as f64);
    }

    /// A deploy was queued for its compressed variants.
    pub fn record_variants_queued(&self) {
        self.variant_deploys_pending.inc();
    }

    /// A queued deploy's variants are done: `blobs` were compressed.
    pub fn record_variants_made(&self, blobs: usize) {
        self.variant_deploys_pending.dec();
        self.variant_blobs_made.inc_by(blobs as u64);
    }

    /// A background worker panicked and is started again (see
    /// [`crate::supervisor`]).
    pub fn record_worker_restart(&self, worker: &'static str) {
        self.worker_restarts.get_or_create(&WorkerLabels { worker }).inc();
    }

    /// A renewal of an ACME certificate failed.
    pub fn record_acme_renewal_failure(&self) {
        self.acme_renewal_failures.inc();
    }

    /// Sets the expiry gauge to the certificates served now (hostname and
    /// end of validity in Unix milliseconds), forgetting removed ones.
    pub fn set_certificate_expiries(&self, expiries: &[(String, i64)], now_millis: i64) {
        self.certificate_expiry.clear();
        for (hostname, not_after) in expiries {
            self.certificate_expiry
                .get_or_create(&HostnameLabels {
                    hostname: hostname.clone(),
                })
                .set(not_after.saturating_sub(now_millis) / 1000);
        }
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self, queue: QueueFigures) -> String {
        self.queue_depth.set(queue.queued);
        self.builds_running.set(queue.running);
        self.runners_connected.set(queue.runners_connected);
        self.runners_busy.set(queue.runners_busy);
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// What the edge's cache of deploy indexes reports; clones share figures.
#[derive(Debug, Clone, Default)]
pub struct EdgeIndexMetrics {
    pub bytes: Gauge,
    pub evictions: Counter,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: &'static str,
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
        let metrics = Metrics::default();
        for seconds in [1, 5, 7, 4000] {
            metrics.record_build("a", "succeeded", Some(Duration::from_secs(seconds)));
        }
        let text = metrics.render(QueueFigures::default());
        for line in [
            "jamstack_build_duration_seconds_bucket{site=\"a\",outcome=\"succeeded\",le=\"1\"} 1\n",
            "jamstack_build_duration_seconds_bucket{site=\"a\",outcome=\"succeeded\",le=\"5\"} 2\n",
            "jamstack_build_duration_seconds_bucket{site=\"a\",outcome=\"succeeded\",le=\"10\"} 3\n",
            "jamstack_build_duration_seconds_bucket{site=\"a\",outcome=\"succeeded\",le=\"3600\"} 3\n",
            "jamstack_build_duration_seconds_bucket{site=\"a\",outcome=\"succeeded\",le=\"+Inf\"} 4\n",
            "jamstack_build_duration_seconds_sum{site=\"a\",outcome=\"succeeded\"} 4013.0\n",
            "jamstack_build_duration_seconds_count{site=\"a\",outcome=\"succeeded\"} 4\n",
            "jamstack_builds_total{site=\"a\",outcome=\"succeeded\"} 4\n",
        ] {
            assert!(text.contains(line), "no {line} in:\n{text}");
        }
    }

    #[test]
    fn every_metric_keeps_its_name_type_and_help() {
        let metrics = Metrics::default();
        // Families by site are written once they have a series: from the
        // first build that ends.
        metrics.record_build("a", "succeeded", None);
        let text = metrics.render(QueueFigures::default());
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        assert_eq!(
            types,
            [
                "# TYPE jamstack_queue_depth gauge",
                "# TYPE jamstack_builds_running gauge",
                "# TYPE jamstack_runners_connected gauge",
                "# TYPE jamstack_runners_busy gauge",
                "# TYPE jamstack_queue_wait_seconds histogram",
                "# TYPE jamstack_builds_total counter",
                "# TYPE jamstack_build_duration_seconds histogram",
                "# TYPE jamstack_deploy_files_referenced_total counter",
                "# TYPE jamstack_deploy_files_uploaded_total counter",
                "# TYPE jamstack_deploy_bytes_referenced_total counter",
                "# TYPE jamstack_deploy_bytes_uploaded_total counter",
                "# TYPE jamstack_deploy_size_bytes histogram",
                "# TYPE jamstack_variants_pending_deploys gauge",
                "# TYPE jamstack_variant_blobs_total counter",
                "# TYPE jamstack_edge_index_cache_bytes gauge",
                "# TYPE jamstack_edge_index_evictions_total counter",
                "# TYPE jamstack_edge_requests_total counter",
                "# TYPE jamstack_edge_request_duration_seconds histogram",
                "# TYPE jamstack_acme_renewal_failures_total counter",
            ]
        );
        assert!(
            text.contains("# HELP jamstack_queue_depth Builds waiting for a runner.\n"),
            "{text}"
        );
        assert!(
            text.contains("jamstack_deploy_size_bytes_bucket{le=\"1e+10\"} 0\n"),
            "{text}"
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
