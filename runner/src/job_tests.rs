//! `job.rs`'s orchestration over a fake executor and a fake controller:
//! how a job ends when it is cancelled, runs past its timeout, loses its
//! lease or the runner shuts down, and that it always cleans up. Time is
//! tokio's paused clock, so a timeout of minutes passes in milliseconds.
//!
//! The controller is a small axum server on a loopback port of its own
//! (bound once, never rebound) that answers the runner protocol's calls a
//! job makes, as the test scripts them, and records what it was sent.

use crate::RunnerConfig;
use crate::client::ControllerClient;
use crate::executor::fake::{FakeExecutor, StepScript};
use crate::job::{self, JobContext};
use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jamstack_proto::{
    BuildContext, CacheRef, HeartbeatResponse, JobLease, JobOutcome, LogAppendResponse, SiteBuildSettings,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the fake controller answers to heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heartbeat {
    /// The lease goes on.
    Keep,
    /// The build was cancelled.
    Cancel,
    /// The lease is gone (409).
    Stale,
}

#[derive(Debug)]
struct Controller {
    heartbeat: Mutex<Heartbeat>,
    log: Mutex<Vec<u8>>,
    outcome: Mutex<Option<JobOutcome>>,
    handed_back: Mutex<bool>,
}

impl Controller {
    fn answer_heartbeats(&self, answer: Heartbeat) {
        *self.heartbeat.lock().unwrap() = answer;
    }

    fn outcome(&self) -> Option<JobOutcome> {
        self.outcome.lock().unwrap().clone()
    }

    fn handed_back(&self) -> bool {
        *self.handed_back.lock().unwrap()
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }
}

async fn heartbeat(State(controller): State<Arc<Controller>>) -> Response {
    match *controller.heartbeat.lock().unwrap() {
        Heartbeat::Keep => Json(HeartbeatResponse { cancel: false }).into_response(),
        Heartbeat::Cancel => Json(HeartbeatResponse { cancel: true }).into_response(),
        Heartbeat::Stale => StatusCode::CONFLICT.into_response(),
    }
}

async fn append_log(
    State(controller): State<Arc<Controller>>,
    Query(query): Query<HashMap<String, u64>>,
    body: axum::body::Bytes,
) -> Json<LogAppendResponse> {
    let mut log = controller.log.lock().unwrap();
    if query.get("offset").copied() == Some(log.len() as u64) {
        log.extend_from_slice(&body);
    }
    Json(LogAppendResponse {
        stored_length: log.len() as u64,
    })
}

async fn complete(State(controller): State<Arc<Controller>>, Json(outcome): Json<JobOutcome>) -> StatusCode {
    *controller.outcome.lock().unwrap() = Some(outcome);
    StatusCode::NO_CONTENT
}

async fn hand_back(State(controller): State<Arc<Controller>>) -> StatusCode {
    *controller.handed_back.lock().unwrap() = true;
    StatusCode::NO_CONTENT
}

/// A job with a repository of its own, a runner's settings, the fake
/// controller and the fake executor.
struct Harness {
    controller: Arc<Controller>,
    client: ControllerClient,
    executor: FakeExecutor,
    config: RunnerConfig,
    lease: JobLease,
    shutdown: CancellationToken,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Harness {
    async fn new(step: StepScript) -> Self {
        let controller = Arc::new(Controller {
            heartbeat: Mutex::new(Heartbeat::Keep),
            log: Mutex::default(),
            outcome: Mutex::default(),
            handed_back: Mutex::default(),
        });
        let app = Router::new()
            .route("/runner/v1/jobs/{id}/heartbeat", post(heartbeat))
            .route("/runner/v1/jobs/{id}/log", post(append_log))
            .route(
                "/runner/v1/jobs/{id}/commit",
                post(|| async { StatusCode::NO_CONTENT }),
            )
            .route("/runner/v1/jobs/{id}/complete", post(complete))
            .route("/runner/v1/jobs/{id}/hand-back", post(hand_back))
            .with_state(controller.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let repo = tempfile::tempdir().unwrap();
        crate::git::commit_files(
            repo.path(),
            "main",
            &[(
                "jamstack.toml",
                b"[build]\ncommand = \"make\"\npublish = \"public\"\n",
            )],
            "A site",
        )
        .unwrap();
        let work = tempfile::tempdir().unwrap();
        let mut config = RunnerConfig::new(&url, "runner-token");
        config.work_dir = work.path().to_path_buf();
        config.name = "test-runner".into();
        let lease = JobLease {
            job_id: 7,
            lease_id: "lease-0123456789abcdef".into(),
            build_id: 3,
            attempt: 1,
            site: "blog".into(),
            repo_url: repo.path().to_string_lossy().into_owned(),
            commit_sha: String::new(),
            branch: "main".into(),
            context: BuildContext::Production,
            pr_number: None,
            lease_seconds: 60,
            honour_skip_ci: false,
            trusted: true,
            verify_reachable_from: None,
            cached_commit: None,
            settings: SiteBuildSettings {
                cache: CacheRef {
                    key: "blog-key".into(),
                    generation: 0,
                },
                ..Default::default()
            },
            git_token: None,
            incoming_hook: None,
        };
        Harness {
            controller,
            client: ControllerClient::new(&url, "runner-token"),
            executor: FakeExecutor::new(step),
            config,
            lease,
            shutdown: CancellationToken::new(),
            _dirs: (repo, work),
        }
    }

    /// Runs the job to its end, as a runner slot does.
    async fn run(&self) {
        let ctx = JobContext {
            client: &self.client,
            executor: &self.executor,
            config: &self.config,
            instance: "instance-1",
            heartbeat: Duration::from_secs(20),
            shutdown: &self.shutdown,
        };
        job::run_job(&ctx, self.lease.clone()).await;
    }

    /// Runs the job; once its step is running, `meanwhile` happens.
    async fn run_and_once_running(&self, meanwhile: impl FnOnce(&Self)) {
        let record = self.executor.record.clone();
        let job = self.run();
        let act = async {
            record.step_running.notified().await;
            meanwhile(self);
        };
        tokio::join!(job, act);
    }

    fn calls(&self) -> Vec<String> {
        self.executor.record.calls()
    }

    fn assert_stopped_and_cleaned_up(&self) {
        let calls = self.calls();
        assert!(calls.contains(&"stopped build".to_owned()), "{calls:?}");
        assert_eq!(calls.last().map(String::as_str), Some("clean_up"), "{calls:?}");
        assert!(
            !calls.iter().any(|c| c == "dropped without clean_up"),
            "{calls:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_build_cancelled_while_it_runs_is_stopped_reported_cancelled_and_cleaned_up() {
    let harness = Harness::new(StepScript::RunsUntilStopped).await;
    harness
        .run_and_once_running(|h| h.controller.answer_heartbeats(Heartbeat::Cancel))
        .await;
    assert_eq!(harness.controller.outcome(), Some(JobOutcome::Cancelled));
    assert!(!harness.controller.handed_back());
    harness.assert_stopped_and_cleaned_up();
    let log = harness.controller.log();
    assert!(log.contains("build is running"), "{log}");
    assert!(log.contains("Build cancelled after"), "{log}");
}

#[tokio::test(start_paused = true)]
async fn a_build_past_its_timeout_is_stopped_and_fails_saying_how_to_give_it_more_time() {
    let mut harness = Harness::new(StepScript::RunsUntilStopped).await;
    harness.lease.settings.timeout_seconds = Some(2 * 60);
    harness.run().await;
    match harness.controller.outcome() {
        Some(JobOutcome::Failed { exit_code, message }) => {
            assert_eq!(exit_code, None);
            assert!(
                message.contains("did not finish within its timeout of 2m00s"),
                "{message}"
            );
            assert!(message.contains("raise the site's timeout"), "{message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    harness.assert_stopped_and_cleaned_up();
}

#[tokio::test(start_paused = true)]
async fn a_build_whose_lease_is_lost_is_stopped_and_reports_nothing() {
    let harness = Harness::new(StepScript::RunsUntilStopped).await;
    harness
        .run_and_once_running(|h| h.controller.answer_heartbeats(Heartbeat::Stale))
        .await;
    assert_eq!(
        harness.controller.outcome(),
        None,
        "another runner may hold the job now"
    );
    assert!(!harness.controller.handed_back());
    harness.assert_stopped_and_cleaned_up();
}

#[tokio::test(start_paused = true)]
async fn a_build_running_when_the_runner_shuts_down_is_stopped_and_handed_back() {
    let harness = Harness::new(StepScript::RunsUntilStopped).await;
    harness.run_and_once_running(|h| h.shutdown.cancel()).await;
    assert!(harness.controller.handed_back());
    assert_eq!(harness.controller.outcome(), None);
    harness.assert_stopped_and_cleaned_up();
    let log = harness.controller.log();
    assert!(log.contains("the build goes back to the queue"), "{log}");
}

#[tokio::test(start_paused = true)]
async fn a_failing_build_command_fails_the_build_with_its_exit_code_and_cleans_up() {
    let harness = Harness::new(StepScript::Exits(2)).await;
    harness.run().await;
    assert_eq!(
        harness.controller.outcome(),
        Some(JobOutcome::Failed {
            exit_code: Some(2),
            message: "the build command exited with 2".into()
        })
    );
    let calls = harness.calls();
    assert_eq!(
        calls,
        [
            "open jamstack-job-7-lease-0123456789 offline=false",
            "ensure_image jamstack/busybox:1",
            "prepare_cache jamstack-cache-blog-key-trusted-g0",
            "hold_off_private_networks",
            "create_step build",
            "restore_cache",
            "run_step build",
            "clean_up",
        ]
    );
}
