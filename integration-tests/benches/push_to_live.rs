//! How long a trivial build takes from webhook to served page, and how that
//! splits into its steps. Run: `cargo bench -p integration-tests --bench push_to_live`.
//!
//! Each round commits a one-file change, delivers a signed push webhook, and
//! polls the site until it serves the new content. The step split comes from
//! the step timings the runner reports with each build's outcome.

#[path = "../tests/e2e/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use helpers::{COPY_SITE_TOML, SiteRepo, spawn_app};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ROUNDS: usize = 10;

#[tokio::main]
async fn main() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    repo.commit(
        &[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "warm-up")],
        "warm-up",
    );
    app.connect_site("bench", &repo, "octo/bench").await;

    let mut totals = Vec::new();
    let mut steps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for round in 0..=ROUNDS {
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
        if round == 0 {
            continue; // warm-up: first container start, first connections
        }
        totals.push(total);
        for step in finished["step_timings"].as_array().into_iter().flatten() {
            let (Some(name), Some(millis)) = (step["name"].as_str(), step["millis"].as_f64()) else {
                continue;
            };
            steps.entry(name.to_owned()).or_default().push(millis);
        }
    }
    println!(
        "webhook → served page, {ROUNDS} rounds (ms): {}",
        summary(&mut totals)
    );
    for (name, values) in &mut steps {
        println!("  {name:<20} {}", summary(values));
    }
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
