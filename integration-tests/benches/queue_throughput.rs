//! Lease throughput with 50 simulated runners, and webhook ingestion with
//! signature checks, on SQLite and on PostgreSQL, side by side; and, on
//! PostgreSQL, their ceiling: the same statements run raw by `pgbench`
//! (50 clients, the scripts in `benches/pgbench/`) on the same database.
//!
//!     scripts/bench/queue.sh
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
    println!("load before: {}", uptime());
    // The controllers' errors, if any, say why a call was refused.
    jamstack_program::logging::init(
        jamstack_program::logging::LogFormat::Text,
        "jamstack_controller=error",
    );
    let mut rows = Vec::new();
    for backend in ["sqlite", "postgres"] {
        let rates = run(backend).await;
        rows.push(format!(
            "{:<26} {:>14.0} {:>18.0}",
            format!("{backend} (ours, HTTP)"),
            rates.leases,
            rates.deliveries
        ));
        if let Some((leases, deliveries)) = rates.ceiling {
            rows.push(format!(
                "{:<26} {leases:>14.0} {deliveries:>18.0}",
                "postgres (pgbench, raw)"
            ));
            rows.push(format!(
                "{:<26} {:>14.2} {:>18.2}",
                "ours / pgbench",
                rates.leases / leases,
                rates.deliveries / deliveries
            ));
        }
    }
    println!("load after: {}", uptime());
    println!();
    println!("{:<26} {:>14} {:>18}", "", "leases/s", "deliveries/s");
    for row in rows {
        println!("{row}");
    }
    println!(
        "{RUNNERS} runners, {JOBS} jobs; {SENDERS} senders, {DELIVERIES} deliveries. Goal: SQLite at least \
         2,000 leases/s; PostgreSQL at least 0.5 of pgbench's rate (its statements alone: no HTTP, no \
         token check, no events, no batching)"
    );
}

fn uptime() -> String {
    std::process::Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("(uptime failed: {e})"))
}

struct Rates {
    leases: f64,
    deliveries: f64,
    /// PostgreSQL: pgbench's leases/s and deliveries/s on the same database.
    ceiling: Option<(f64, f64)>,
}

async fn start(backend: &str, dir: &std::path::Path) -> (Application, Option<String>) {
    let mut config = Config::new(dir.join("data"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.webhook_secret = Some(helpers::WEBHOOK_SECRET.into());
    if backend == "postgres" {
        config.database_url = Some(helpers::fresh_postgres_database().await);
    }
    let url = config.database_url.clone();
    (
        Application::build(config).await.expect("starting the controller"),
        url,
    )
}

async fn enqueue_jobs(db: &jamstack_controller::db::Database, sites: &[jamstack_controller::db::Site]) {
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
}

/// Runs `script` (in `benches/pgbench/`) with pgbench, [`RUNNERS`] clients
/// of `per_client` transactions each, against `database_url`; returns
/// transactions per second.
fn pgbench(database_url: &str, script: &str, per_client: usize) -> f64 {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/pgbench")
        .join(script);
    let output = std::process::Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &RUNNERS.to_string(),
            "-j",
            "2",
            "-t",
            &per_client.to_string(),
            "-f",
        ])
        .arg(&path)
        .arg(database_url)
        .output()
        .expect("running pgbench (Debian's postgresql-client; scripts/bench/queue.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && text.contains("number of failed transactions: 0"),
        "pgbench {script} failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench's output:\n{text}"))
}

async fn run(backend: &str) -> Rates {
    let dir = tempfile::tempdir().unwrap();
    let (app, database_url) = start(backend, dir.path()).await;
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
    enqueue_jobs(&db, &sites).await;
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

    // The ceiling: the same statements, raw, on the same database, with the
    // queue as full as ours was.
    let ceiling = match database_url {
        Some(url) => {
            // The deliveries' builds leave the queue first, so pgbench's
            // clients claim exactly the jobs queued for them.
            let pool = db_pool(&url).await;
            sqlx::query("UPDATE jobs SET state = 'done' WHERE state = 'queued'")
                .execute(&pool)
                .await
                .unwrap();
            enqueue_jobs(&db, &sites).await;
            let leases = pgbench(&url, "claim.sql", JOBS / RUNNERS);
            let (claimed, left): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM attempts WHERE runner_name LIKE 'pgbench-%'), \
                 (SELECT COUNT(*) FROM jobs WHERE state <> 'done')",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(
                (claimed, left),
                (JOBS as i64, 0),
                "pgbench leased and finished every job once"
            );
            let deliveries = pgbench(&url, "delivery.sql", DELIVERIES / SENDERS);
            Some((leases, deliveries))
        }
        None => None,
    };
    Rates {
        leases: lease_rate,
        deliveries: delivery_rate,
        ceiling,
    }
}

async fn db_pool(url: &str) -> sqlx::PgPool {
    sqlx::PgPool::connect(url)
        .await
        .expect("connecting to the bench's database")
}
