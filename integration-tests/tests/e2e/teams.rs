//! Teams on a real controller: what the audit log records of changes made
//! without an API call (webhooks, schedules, the dashboard).

use crate::helpers::{COPY_SITE_TOML, SiteRepo, TestApp, csrf_of, eventually, spawn_controller_only};
use serde_json::{Value, json};

/// The audit log's entries by `actor`, newest first, as the admin reads it.
async fn audit_by(app: &TestApp, actor: &str) -> Vec<Value> {
    let entries = app.get_json(&format!("/audit?actor={actor}")).await;
    entries.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_push_a_schedule_and_a_dashboard_lock_are_each_in_the_audit_log_with_who_did_them() {
    let (app, _runner_token) = spawn_controller_only().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "audited")],
        "first",
    );
    app.connect_site("audited", &repo, "octo/audited").await;

    // A push delivered by GitHub queues a build: done by `webhook:github`.
    let build = app.push("octo/audited", &repo, &sha).await;
    let pushed = audit_by(&app, "webhook:github").await;
    assert_eq!(pushed.len(), 1, "{pushed:#?}");
    assert_eq!(pushed[0]["action"], "queue_build");
    assert_eq!(pushed[0]["site"], "audited");
    assert_eq!(pushed[0]["target"], format!("/api/v1/builds/{build}"));
    assert_eq!(pushed[0]["status"], 202);
    assert!(pushed[0]["team_id"].is_i64(), "the site's team: {pushed:#?}");

    // A schedule that fires queues a build: done by `schedule:<id>`.
    let (status, schedule) = app
        .api_json(
            app.http
                .post(app.api("/sites/audited/schedules"))
                .json(&json!({ "cron": "* * * * * *", "time_zone": "UTC" })),
        )
        .await;
    assert_eq!(status, 201, "{schedule}");
    let actor = format!("schedule:{}", schedule["id"]);
    let fired = eventually("a scheduled build in the audit log", || {
        let (app, actor) = (&app, &actor);
        async move {
            let entries = audit_by(app, actor).await;
            if entries.is_empty() {
                Err(format!("no entry by {actor} yet"))
            } else {
                Ok(entries)
            }
        }
    })
    .await;
    assert_eq!(fired[0]["action"], "queue_build");
    assert_eq!(fired[0]["site"], "audited");
    assert!(
        fired[0]["target"]
            .as_str()
            .unwrap()
            .starts_with("/api/v1/builds/"),
        "{fired:#?}"
    );
    let (status, _) = app
        .api_json(
            app.http
                .delete(app.api(&format!("/sites/audited/schedules/{}", schedule["id"]))),
        )
        .await;
    assert_eq!(status, 200);

    // Locking from the dashboard: done by the session's admin, on the
    // dashboard's path, under the API operation's name.
    let session = app.sign_in_over_http().await;
    let csrf = csrf_of(&app.dashboard_page(&session, "/sites/audited").await);
    let (status, _) = app
        .post_form(&session, "/sites/audited/lock", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303);
    let locks = app.get_json("/audit?action=lock_site").await;
    let locks = locks.as_array().unwrap();
    assert_eq!(locks.len(), 1, "{locks:#?}");
    assert_eq!(locks[0]["actor"], "admin");
    assert_eq!(locks[0]["site"], "audited");
    assert_eq!(locks[0]["target"], "/sites/audited/lock");
    assert_eq!(locks[0]["status"], 303);

    // A form refused (a wrong CSRF token) changed nothing and is not in it.
    let (status, _) = app
        .post_form(&session, "/sites/audited/unlock", &[("csrf", &"0".repeat(64))])
        .await;
    assert_eq!(status, 403);
    let unlocks = app.get_json("/audit?action=unlock_site").await;
    assert_eq!(unlocks, json!([]), "a refused form is not a change");
}

/// Makes a person with `role` on the first team (`default`, where the
/// admin token's sites go; the first person made owns it) and a token of
/// theirs with `scopes`; returns the token's id and secret.
async fn member_with_token(app: &TestApp, login: &str, role: &str, scopes: &[&str]) -> (i64, String) {
    let (status, user) = app
        .api_json(app.http.post(app.api("/users")).json(&json!({ "login": login })))
        .await;
    assert_eq!(status, 201, "{user}");
    let (status, member) = app
        .api_json(
            app.http
                .put(app.api(&format!("/teams/default/members/{login}")))
                .json(&json!({ "role": role })),
        )
        .await;
    assert!(status == 200 || status == 201, "{member}");
    let (status, token) = app
        .api_json(
            app.http
                .post(app.api("/teams/default/tokens"))
                .json(&json!({ "name": login, "scopes": scopes, "login": login })),
        )
        .await;
    assert_eq!(status, 201, "{token}");
    (
        token["id"].as_i64().unwrap(),
        token["token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn an_owner_subscribes_a_hook_to_the_audit_log_and_it_hears_who_changed_what_without_values() {
    use crate::ops::{start_receiver, wait_for_requests};
    let (app, _runner_token) = spawn_controller_only().await;
    let (url, received) = start_receiver(0).await;
    let (every_url, every_received) = start_receiver(0).await;
    let repo = SiteRepo::new();
    app.connect_site("watched", &repo, "octo/watched").await;
    let (owner_id, owner) =
        member_with_token(&app, "olga", "owner", &["read", "sites", "deploys", "admin"]).await;
    let (_, admin_role) = member_with_token(&app, "adam", "admin", &["read", "sites", "deploys"]).await;

    // The audit log is the owners': an admin of the team may make hooks,
    // but not one that hears it.
    let asked = json!({ "url": url, "events": ["audit"] });
    let (status, refused) = app
        .api_json(
            app.http
                .post(app.api("/sites/watched/notifications"))
                .bearer_auth(&admin_role)
                .json(&asked),
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("owners"), "{refused}");
    // A hook made without naming events does not hear it either.
    let (status, every) = app
        .api_json(
            app.http
                .post(app.api("/sites/watched/notifications"))
                .bearer_auth(&admin_role)
                .json(&json!({ "url": every_url })),
        )
        .await;
    assert_eq!(status, 201, "{every}");
    assert!(
        !every["events"].as_array().unwrap().iter().any(|e| e == "audit"),
        "{every}"
    );
    let (status, hook) = app
        .api_json(
            app.http
                .post(app.api("/sites/watched/notifications"))
                .bearer_auth(&owner)
                .json(&asked),
        )
        .await;
    assert_eq!(status, 201, "{hook}");

    // The owner locks the site and sets a secret variable.
    let (status, _) = app
        .api_json(app.http.post(app.api("/sites/watched/lock")).bearer_auth(&owner))
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .api_json(
            app.http
                .put(app.api("/sites/watched/env/API_KEY"))
                .bearer_auth(&owner)
                .json(&json!({ "value": "hunter2-very-secret", "secret": true })),
        )
        .await;
    assert!(status == 200 || status == 201, "setting a variable: {status}");

    // GitHub delivers a push, which queues a build.
    let sha = repo.commit(
        &[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "watched")],
        "first",
    );
    let build = app.push("octo/watched", &repo, &sha).await;

    // Four entries: the hook's own making, the lock, the variable and the
    // queued build.
    let requests = wait_for_requests(&received, 4).await;
    let bodies: Vec<Value> = requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    for (request, body) in requests.iter().zip(&bodies) {
        assert_eq!(request.headers["x-jamstack-event"], "audit");
        assert_eq!(body["event"], "audit");
        assert_eq!(body["data"]["site"]["name"], "watched");
        assert!(
            !String::from_utf8_lossy(&request.body).contains("hunter2"),
            "never a variable's value: {body}"
        );
    }
    let shipped = |action: &str| {
        bodies
            .iter()
            .find(|b| b["data"]["audit"]["action"] == action)
            .map(|b| b["data"]["audit"].clone())
            .unwrap_or_else(|| panic!("`{action}` was not shipped: {bodies:#?}"))
    };
    let lock = shipped("lock_site");
    assert_eq!(lock["actor"], format!("token:{owner_id}"));
    assert_eq!(lock["target"], "/api/v1/sites/watched/lock");
    assert_eq!(lock["status"], 200);
    assert!(lock["at"].is_i64(), "{lock}");
    let variable = shipped("set_env_var");
    assert_eq!(
        variable["target"], "/api/v1/sites/watched/env/API_KEY",
        "by name only"
    );
    assert_eq!(
        shipped("create_notification_hook")["actor"],
        format!("token:{owner_id}")
    );
    // The hook made without naming events heard the lock, not the log.
    let heard: Vec<String> = wait_for_requests(&every_received, 1)
        .await
        .iter()
        .map(|request| request.headers["x-jamstack-event"].to_str().unwrap().to_owned())
        .collect();
    assert!(heard.contains(&"deploy.locked".to_owned()), "{heard:?}");
    assert!(!heard.contains(&"audit".to_owned()), "{heard:?}");
    let queued = shipped("queue_build");
    assert_eq!(queued["actor"], "webhook:github");
    assert_eq!(queued["target"], format!("/api/v1/builds/{build}"));
    assert_eq!(queued["status"], 202);
}
