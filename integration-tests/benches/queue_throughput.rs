//! Lease throughput with 50 simulated runners, and webhook ingestion with
//! signature checks, on SQLite and on PostgreSQL, side by side.
//!
//!     ./scripts/start-postgres.sh
//!     cargo bench -p integration-tests --bench queue_throughput
//!
//! Simulated runners speak the real protocol over HTTP: lease, then complete
//! at once (no Docker), so the figure is the queue's, not the builds'.

#[path = "../tests/e2e/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use jamstack_controller::db::{NewBuild, NewSite, SchedulingSettings};
use jamstack_controller::{Application, Config};
use jamstack_proto::{BuildContext, JobOutcome};
use jamstack_runner::client::ControllerClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const RUNNERS: usize = 50;
const JOBS: usize = 5_000;
const DELIVERIES: usize = 10_000;
const SENDERS: usize = 50;

#[tokio::main]
async fn main() {
    println!("{:<12} {:>14} {:>18}", "database", "leases/s", "deliveries/s");
    // The controllers' errors, if any, say why a call was refused.
    jamstack_program::logging::init(
        jamstack_program::logging::LogFormat::Text,
        "jamstack_controller=error",
    );
    for backend in ["sqlite", "postgres"] {
        let (leases, deliveries) = run(backend).await;
        println!("{backend:<12} {leases:>14.0} {deliveries:>18.0}");
    }
    println!("goal: at least 500 leases/s and 2,000 deliveries/s");
}

async fn start(backend: &str, dir: &std::path::Path) -> Application {
    let mut config = Config::new(dir.join("data"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.webhook_secret = Some(helpers::WEBHOOK_SECRET.into());
    if backend == "postgres" {
        config.database_url = Some(helpers::fresh_postgres_database().await);
    }
    Application::build(config).await.expect("starting the controller")
}

async fn run(backend: &str) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let app = start(backend, dir.path()).await;
    let db = app.state().db.clone();
    let base = app.base_url().to_owned();
    let mut tokens = Vec::new();
    for i in 0..RUNNERS {
        tokens.push(
            app.register_local_runner(&format!("sim-{i}"), &[], 1)
                .await
                .unwrap(),
        );
    }
    let mut sites = Vec::new();
    for i in 0..20 {
        let site = db
            .insert_site(&NewSite {
                name: format!("bench-{i}"),
                repo_url: Some("/nowhere".into()),
                github_repo: Some(format!("octo/bench-{i}")),
                production_branch: "main".into(),
                production_branch_follows_default: false,
                settings: Default::default(),
            })
            .await
            .unwrap()
            .unwrap();
        db.update_scheduling(
            site.id,
            &SchedulingSettings {
                max_concurrent_builds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        sites.push(site);
    }
    for i in 0..JOBS {
        db.enqueue_build(&NewBuild {
            site_id: sites[i % sites.len()].id,
            context: BuildContext::BranchDeploy,
            branch: format!("b{i}"),
            commit_sha: "a".repeat(40),
            commit_message: None,
            author: None,
            pr_number: None,
            from_fork: false,
            commit_unverified: false,
            trigger: "api",
            trigger_title: None,
            trigger_payload: None,
        })
        .await
        .unwrap();
    }
    tokio::spawn(app.run_until_stopped());

    // Leases: 50 runners take jobs until the queue is empty.
    let leased = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut runners = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let client = ControllerClient::new(&base, token);
        let leased = leased.clone();
        runners.push(tokio::spawn(async move {
            let name = format!("sim-{i}");
            while let Ok(Some(lease)) = client.lease(&name, Duration::ZERO).await {
                client
                    .complete(&lease, &JobOutcome::Cancelled, &[])
                    .await
                    .unwrap();
                leased.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for runner in runners {
        runner.await.unwrap();
    }
    let lease_rate = leased.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    assert_eq!(
        leased.load(Ordering::Relaxed),
        JOBS,
        "every job leased exactly once"
    );

    // Webhooks: signed push deliveries from 50 senders at once.
    let repo = helpers::SiteRepo::new();
    let http = reqwest::Client::new();
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let (http, base, sent) = (http.clone(), base.clone(), sent.clone());
        let bodies: Vec<Vec<u8>> = (0..DELIVERIES / SENDERS)
            .map(|i| {
                let sha = format!("{:040x}", s * 1_000_000 + i);
                let payload = helpers::push_payload(&format!("octo/bench-{}", s % 20), &repo, "main", &sha);
                serde_json::to_vec(&payload).unwrap()
            })
            .collect();
        senders.push(tokio::spawn(async move {
            for (i, body) in bodies.into_iter().enumerate() {
                let response = http
                    .post(format!("{base}/webhooks/github"))
                    .header("X-GitHub-Event", "push")
                    .header("X-GitHub-Delivery", format!("bench-{s}-{i}"))
                    .header(
                        "X-Hub-Signature-256",
                        helpers::sign(helpers::WEBHOOK_SECRET, &body),
                    )
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                if status != 202 {
                    let body = response.text().await.unwrap_or_default();
                    panic!("delivery bench-{s}-{i} was answered {status}: {body}");
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let delivery_rate = sent.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    (lease_rate, delivery_rate)
}
