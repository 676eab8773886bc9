//! Scheduled builds on real controllers: a schedule builds its branch head
//! on every tick, two controllers sharing one PostgreSQL database build each
//! tick once, and ticks missed while every controller was down build once.

use crate::helpers::{
    COPY_SITE_TOML, SiteRepo, TestApp, eventually, fresh_postgres_database, spawn_another_controller_on,
    spawn_app, spawn_controller_only, spawn_controller_only_with,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// Makes a schedule of `site` through the API; returns it as answered.
async fn add_schedule(app: &TestApp, site: &str, body: Value) -> Value {
    let (status, schedule) = app
        .api_json(
            app.http
                .post(app.api(&format!("/sites/{site}/schedules")))
                .json(&body),
        )
        .await;
    assert_eq!(status, 201, "making a schedule: {schedule}");
    schedule
}

async fn remove_schedule(app: &TestApp, site: &str, id: i64) -> Value {
    let (status, removed) = app
        .api_json(app.http.delete(app.api(&format!("/sites/{site}/schedules/{id}"))))
        .await;
    assert_eq!(status, 200, "removing schedule {id}: {removed}");
    removed
}

/// The site's builds a schedule queued, oldest first.
async fn scheduled_builds(app: &TestApp, site: &str) -> Vec<Value> {
    let mut builds: Vec<Value> = app
        .builds_of(site)
        .await
        .into_iter()
        .filter(|b| b["trigger"] == "schedule")
        .collect();
    builds.sort_by_key(|b| b["id"].as_i64());
    builds
}

/// The tick a scheduled build was queued for, in Unix milliseconds.
fn tick_of(build: &Value) -> i64 {
    let payload: Value = serde_json::from_str(build["trigger_payload"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("a scheduled build's payload is JSON ({e}): {build}"));
    chrono::DateTime::parse_from_rfc3339(payload["tick"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("its tick is RFC 3339 ({e}): {build}"))
        .timestamp_millis()
}

/// Waits until `site` has at least `count` scheduled builds; returns them.
async fn wait_for_scheduled_builds(app: &TestApp, site: &str, count: usize) -> Vec<Value> {
    eventually(&format!("{count} scheduled builds of {site}"), || async move {
        let builds = scheduled_builds(app, site).await;
        if builds.len() >= count {
            Ok(builds)
        } else {
            Err(format!("{} so far", builds.len()))
        }
    })
    .await
}

#[tokio::test]
async fn a_schedule_every_second_builds_the_branch_head_with_its_title_until_it_is_removed() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", "built on schedule"),
        ],
        "first",
    );
    app.connect_site("ticking", &repo, "octo/ticking").await;
    let schedule = add_schedule(
        &app,
        "ticking",
        json!({ "cron": "* * * * * *", "time_zone": "Europe/Paris" }),
    )
    .await;
    assert_eq!(schedule["time_zone"], "Europe/Paris");
    assert_eq!(schedule["branch"], Value::Null, "the production branch");
    let next_utc = schedule["next_run_utc"].as_str().unwrap();
    let next_local = schedule["next_run_local"].as_str().unwrap();
    assert!(next_utc.ends_with('Z'), "{schedule}");
    assert!(
        next_local.ends_with("+01:00") || next_local.ends_with("+02:00"),
        "in Paris: {schedule}"
    );

    let builds = wait_for_scheduled_builds(&app, "ticking", 3).await;
    let removed = remove_schedule(&app, "ticking", schedule["id"].as_i64().unwrap()).await;
    assert_eq!(removed["id"], schedule["id"]);
    assert!(removed["last_run_at"].is_i64(), "{removed}");

    for build in &builds {
        assert_eq!(
            build["trigger_title"],
            "Scheduled build (* * * * * * Europe/Paris)"
        );
        assert_eq!(build["context"], "production");
        assert_eq!(build["branch"], "main");
        assert_eq!(tick_of(build) % 1000, 0, "ticks are whole seconds: {build}");
    }
    let ticks: Vec<i64> = builds.iter().map(tick_of).collect();
    assert!(
        ticks.windows(2).all(|pair| pair[0] < pair[1]),
        "one build per tick, in order: {ticks:?}"
    );

    // A claim already under way when the schedule went may still land;
    // after that, nothing more comes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = scheduled_builds(&app, "ticking").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        scheduled_builds(&app, "ticking").await.len(),
        settled.len(),
        "a removed schedule builds no more"
    );

    // The last one was not superseded by a later tick: it builds and goes live.
    let last = settled.last().unwrap();
    let built = app.wait_for_success(last["id"].as_i64().unwrap()).await;
    assert_eq!(built["trigger"], "schedule");
    assert_eq!(app.visit("ticking", "/").await.body, "built on schedule");
}

#[tokio::test]
async fn a_schedule_with_a_wrong_expression_or_zone_is_refused_naming_the_field() {
    let app = spawn_app().await;
    app.connect_site("refusing", &SiteRepo::new(), "octo/refusing")
        .await;
    for (body, field) in [
        (json!({ "cron": "0 6 * *" }), "`cron`"),
        (json!({ "cron": "0 6 * * MON-XYZ" }), "`cron`"),
        (
            json!({ "cron": "0 6 * * *", "time_zone": "Europe/Lutetia" }),
            "`time_zone`",
        ),
        (
            json!({ "cron": "0 6 * * *", "branch": "--upload-pack=x" }),
            "`branch`",
        ),
    ] {
        let (status, answer) = app
            .api_json(app.http.post(app.api("/sites/refusing/schedules")).json(&body))
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().starts_with(field),
            "{body}: {answer}"
        );
    }
    assert_eq!(app.get_json("/sites/refusing/schedules").await, json!([]));
}

#[tokio::test]
async fn two_controllers_on_one_postgresql_database_build_each_tick_of_a_schedule_once() {
    let database = fresh_postgres_database().await;
    let (first, _) = spawn_controller_only_with(|config| config.database_url = Some(database.clone())).await;
    first
        .connect_site_with("shared", json!({ "repo_url": "/nowhere/repo.git" }))
        .await;
    let schedule = add_schedule(&first, "shared", json!({ "cron": "* * * * * *" })).await;
    // Started after the schedule is made, so both workers wait for the same
    // ticks from the start.
    let second = spawn_another_controller_on(&database, &first.admin_token).await;

    wait_for_scheduled_builds(&second, "shared", 6).await;
    remove_schedule(&second, "shared", schedule["id"].as_i64().unwrap()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let builds = scheduled_builds(&first, "shared").await;

    let ticks: Vec<i64> = builds.iter().map(tick_of).collect();
    let distinct: BTreeSet<i64> = ticks.iter().copied().collect();
    assert_eq!(distinct.len(), ticks.len(), "no tick was built twice: {ticks:?}");
    assert!(ticks.len() >= 6, "{ticks:?}");
}

#[tokio::test]
async fn ticks_missed_while_every_controller_was_down_build_once_when_one_starts() {
    let data = tempfile::tempdir().unwrap();
    let mut config = jamstack_controller::Config::new(data.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.allow_local_repositories = true;

    let first = jamstack_controller::Application::build(config.clone())
        .await
        .unwrap();
    let admin_token = first.new_admin_token.clone().unwrap();
    let app = TestApp::of(first.base_url(), &admin_token);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(first.run_until(async {
        let _ = stopped.await;
    }));
    app.connect_site_with("sleepy", json!({ "repo_url": "/nowhere/repo.git" }))
        .await;
    // Daily, at the hour half a day from now: no tick of its own comes
    // while the test runs.
    let hour = (chrono::Utc::now()
        .format("%H")
        .to_string()
        .parse::<u32>()
        .unwrap()
        + 12)
        % 24;
    let cron = format!("0 {hour} * * *");
    let schedule = add_schedule(&app, "sleepy", json!({ "cron": cron })).await;
    let id = schedule["id"].as_i64().unwrap();
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();

    // Every controller was down for thirty days: thirty ticks went by.
    let missed_since = jamstack_controller::db::now_millis() - 30 * 24 * 3600 * 1000;
    let db = jamstack_controller::db::Database::connect(&config.database_url())
        .await
        .unwrap();
    db.set_build_schedule_next_run(id, missed_since).await.unwrap();
    drop(db);

    let second = jamstack_controller::Application::build(config).await.unwrap();
    let app = TestApp::of(second.base_url(), &admin_token);
    tokio::spawn(second.run_until_stopped());

    let builds = wait_for_scheduled_builds(&app, "sleepy", 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let builds_later = scheduled_builds(&app, "sleepy").await;
    assert_eq!(builds_later.len(), 1, "one build, not thirty: {builds_later:?}");
    assert_eq!(tick_of(&builds[0]), missed_since, "built for the tick it missed");

    let listed = app.get_json("/sites/sleepy/schedules").await;
    let after = &listed[0];
    assert_eq!(after["last_run_at"], missed_since);
    let next = after["next_run_at"].as_i64().unwrap();
    let now = jamstack_controller::db::now_millis();
    assert!(
        next > now && next <= now + 24 * 3600 * 1000,
        "waits for the next tick after now, not the next missed one: {after}"
    );
    assert!(
        after["next_run_utc"]
            .as_str()
            .unwrap()
            .contains(&format!("T{hour:02}:00:00")),
        "{after}"
    );
}

#[tokio::test]
async fn a_site_admin_adds_a_schedule_on_the_settings_page_sees_its_next_run_and_removes_it() {
    let (app, _) = spawn_controller_only().await;
    app.connect_site_with("paged", json!({ "repo_url": "/nowhere/repo.git" }))
        .await;
    let browser = app.open_browser().await;
    browser.sign_in(&app.admin_token).await;
    browser.visit("/sites/paged/settings").await;
    browser
        .wait_for_text("#schedules", "No schedule yet", Duration::from_secs(10))
        .await;

    // A misspelt zone comes back named, with what was typed kept.
    browser.fill("#schedules input[name=cron]", "0 3 * * *").await;
    browser
        .fill("#schedules input[name=time_zone]", "Asia/Tokio")
        .await;
    browser
        .fill("#schedules input[name=title]", "Nightly rebuild")
        .await;
    browser.click("#schedules button.primary").await;
    browser
        .wait_for_text(
            "#schedules .flash.error",
            "`time_zone`: `Asia/Tokio`",
            Duration::from_secs(10),
        )
        .await;
    let kept = browser
        .find("#schedules input[name=cron]")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("0 3 * * *"));

    browser
        .fill("#schedules input[name=time_zone]", "Asia/Tokyo")
        .await;
    browser.click("#schedules button.primary").await;
    let row = browser
        .wait_for_text("#schedules table", "Asia/Tokyo", Duration::from_secs(10))
        .await;
    let listed = app.get_json("/sites/paged/schedules").await;
    let schedule = &listed[0];
    assert_eq!(schedule["title"], "Nightly rebuild");
    let local = schedule["next_run_local"].as_str().unwrap();
    assert!(local.ends_with("T03:00:00+09:00"), "{schedule}");
    for shown in [
        "0 3 * * *",
        "Nightly rebuild",
        local,
        schedule["next_run_utc"].as_str().unwrap(),
    ] {
        assert!(row.contains(shown), "{shown} in the list: {row}");
    }
    browser.screenshot("scheduled-builds").await;

    browser.click("#schedules button.danger").await;
    browser
        .wait_for_text("#schedules", "No schedule yet", Duration::from_secs(10))
        .await;
    assert_eq!(app.get_json("/sites/paged/schedules").await, json!([]));
    browser.close().await;
}
