//! Connecting GitHub repositories: pull requests, branches, skips, and what
//! is reported back to GitHub (through the stand-in GitHub API).

use crate::helpers::{
    COPY_SITE_TOML, FakeGitHub, SiteRepo, fixture, pull_request_payload, push_payload, spawn_app_with_github,
    spawn_controller_with_github, spawn_controller_with_github_and,
};
use jamstack_runner::client::ControllerClient;
use serde_json::{Value, json};
use std::time::Duration;

fn page(text: &str) -> String {
    format!("<h1>{text}</h1>")
}

#[tokio::test]
async fn a_pull_request_gets_a_preview_a_status_a_deployment_and_one_comment_edited_on_every_push() {
    let github = FakeGitHub::start().await;
    let app = spawn_app_with_github(&github).await;
    let repo = SiteRepo::new();
    repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("production")),
        ],
        "Production",
    );
    app.connect_site_with(
        "previews",
        json!({"repo_url": repo.url(), "github_repo": "octo/previews", "github_installation_id": 77}),
    )
    .await;

    let first = repo.commit_on(
        "feature",
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("preview one")),
        ],
        "First change",
    );
    let build = app.open_pull_request("octo/previews", 5, "feature", &first).await;
    let built = app.wait_for_success(build).await;
    assert_eq!(built["context"], "deploy-preview");
    assert_eq!(built["pr_number"], 5);
    assert_eq!(built["branch"], "feature");
    assert_eq!(built["from_fork"], false);
    assert_eq!(
        app.visit("deploy-preview-5--previews", "/").await.body,
        page("preview one")
    );
    let preview_url = format!("http://deploy-preview-5--previews.localhost:{}/", app.port);

    // The commit status: pending while building, then success linking the preview.
    github
        .wait_for("a success status for the first commit", |g| {
            g.status_states("octo/previews", &first)
                .last()
                .map(String::as_str)
                == Some("success")
        })
        .await;
    let statuses = github.statuses("octo/previews", &first);
    assert_eq!(statuses[0]["state"], "pending", "{statuses:?}");
    assert!(
        statuses[0]["target_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/v1/builds/{build}/log")),
        "a pending status links the build log: {statuses:?}"
    );
    let last = statuses.last().unwrap();
    assert_eq!(last["target_url"], preview_url.as_str());
    assert_eq!(last["context"], "jamstack/previews/deploy-preview");
    assert!(statuses.iter().all(|s| s["state"] != "failure"));

    // The calls were made as the App's installation, with a token it minted.
    assert!(
        !github
            .requests_to("POST", "/app/installations/77/access_tokens")
            .is_empty()
    );
    let status_call = &github.requests_to("POST", "/repos/octo/previews/statuses/")[0];
    assert!(
        status_call
            .authorization
            .as_deref()
            .unwrap()
            .starts_with("Bearer ghs_installation77"),
        "{status_call:?}"
    );

    // A GitHub Deployment for the preview's environment, ending in success.
    github
        .wait_for("a successful preview deployment", |g| {
            g.deployments("octo/previews").first().is_some_and(|(id, _)| {
                g.deployment_states("octo/previews", *id)
                    .last()
                    .map(String::as_str)
                    == Some("success")
            })
        })
        .await;
    let deployments = github.deployments("octo/previews");
    assert_eq!(deployments.len(), 1);
    let (first_deployment, sent) = &deployments[0];
    assert_eq!(sent["environment"], "previews/deploy-preview-5");
    assert_eq!(sent["ref"], first.as_str());
    assert_eq!(sent["transient_environment"], true);
    assert_eq!(sent["production_environment"], false);
    let success = github
        .requests_to(
            "POST",
            &format!("/repos/octo/previews/deployments/{first_deployment}/statuses"),
        )
        .pop()
        .unwrap();
    assert_eq!(success.body["environment_url"], preview_url.as_str());

    // One comment, with the preview's address.
    github
        .wait_for("the comment saying the preview is ready", |g| {
            g.comments("octo/previews", 5)
                .first()
                .is_some_and(|c| c.body.contains("is ready"))
        })
        .await;
    let comments = github.comments("octo/previews", 5);
    assert_eq!(comments.len(), 1);
    assert!(comments[0].body.contains(&preview_url), "{}", comments[0].body);
    assert!(comments[0].body.contains(&first[..7]), "{}", comments[0].body);

    // A second push: a new preview, and the same comment edited.
    let second = repo.commit_on(
        "feature",
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("preview two")),
        ],
        "Second change",
    );
    let build = app
        .push_to_pull_request("octo/previews", 5, "feature", &second)
        .await;
    app.wait_for_success(build).await;
    assert_eq!(
        app.visit("deploy-preview-5--previews", "/").await.body,
        page("preview two")
    );
    github
        .wait_for("the comment naming the second commit", |g| {
            g.comments("octo/previews", 5)
                .iter()
                .any(|c| c.body.contains(&second[..7]) && c.body.contains("is ready"))
        })
        .await;
    assert_eq!(
        github.comments("octo/previews", 5).len(),
        1,
        "edited, never duplicated"
    );
    assert_eq!(
        github
            .requests_to("POST", "/repos/octo/previews/issues/5/comments")
            .len(),
        1,
        "one comment was created"
    );
    assert!(
        github
            .requests_to("PATCH", "/repos/octo/previews/issues/comments/")
            .len()
            >= 2,
        "and edited at each step since"
    );

    // Closing the pull request takes the preview down.
    let closed = app
        .close_pull_request("octo/previews", 5, "feature", &second)
        .await;
    assert!(
        closed["message"].as_str().unwrap().contains("taken down"),
        "{closed}"
    );
    assert_eq!(app.visit("deploy-preview-5--previews", "/").await.status, 404);
    github
        .wait_for("both preview deployments marked inactive", |g| {
            let deployments = g.deployments("octo/previews");
            deployments.len() == 2
                && deployments.iter().all(|(id, _)| {
                    g.deployment_states("octo/previews", *id)
                        .last()
                        .map(String::as_str)
                        == Some("inactive")
                })
        })
        .await;
    github
        .wait_for("the comment saying the preview was removed", |g| {
            g.comments("octo/previews", 5)
                .first()
                .is_some_and(|c| c.body.contains("removed"))
        })
        .await;
    assert_eq!(github.comments("octo/previews", 5).len(), 1);
}

#[tokio::test]
async fn a_comment_left_by_an_earlier_controller_is_found_by_its_marker_and_edited() {
    let github = FakeGitHub::start().await;
    let (app, _token) = spawn_controller_with_github(&github).await;
    let repo = SiteRepo::new();
    let sha = repo.commit_on("fix", &[("src/index.html", "x")], "Fix");
    app.connect_site_with(
        "marked",
        json!({"repo_url": repo.url(), "github_repo": "octo/marked", "github_installation_id": 9}),
    )
    .await;
    github.add_comment("octo/marked", 3, "Looks good to me!");
    let earlier = github.add_comment(
        "octo/marked",
        3,
        "<!-- jamstack:deploy-preview site=marked -->\nold news",
    );

    app.open_pull_request("octo/marked", 3, "fix", &sha).await;
    github
        .wait_for("the marked comment edited", |g| {
            g.comments("octo/marked", 3)
                .iter()
                .any(|c| c.id == earlier && c.body.contains("Building the deploy preview"))
        })
        .await;
    assert_eq!(github.comments("octo/marked", 3).len(), 2, "no new comment");
    assert!(
        github
            .requests_to("POST", "/repos/octo/marked/issues/3/comments")
            .is_empty()
    );
    assert_eq!(github.comments("octo/marked", 3)[0].body, "Looks good to me!");
}

#[tokio::test]
async fn a_failing_build_reports_pending_then_failure_linking_its_log() {
    let github = FakeGitHub::start().await;
    let app = spawn_app_with_github(&github).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[(
            "jamstack.toml",
            "[build]\ncommand = \"echo broken; exit 3\"\npublish = \"public\"\nimage = \"jamstack/busybox:1\"\n",
        )],
        "Break the build",
    );
    app.connect_site_with(
        "failing",
        json!({"repo_url": repo.url(), "github_repo": "octo/failing", "github_installation_id": 5}),
    )
    .await;
    let build = app.push("octo/failing", &repo, &sha).await;
    assert_eq!(app.wait_for_build(build).await["state"], "failed");

    github
        .wait_for("a failure status", |g| {
            g.status_states("octo/failing", &sha).last().map(String::as_str) == Some("failure")
        })
        .await;
    let statuses = github.statuses("octo/failing", &sha);
    assert_eq!(statuses[0]["state"], "pending");
    let failure = statuses.last().unwrap();
    assert!(
        failure["description"].as_str().unwrap().contains("exited with 3"),
        "{failure}"
    );
    assert!(
        failure["target_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/v1/builds/{build}/log")),
        "{failure}"
    );
    assert_eq!(failure["context"], "jamstack/failing/production");
    github
        .wait_for("a failed production deployment", |g| {
            g.deployments("octo/failing").first().is_some_and(|(id, _)| {
                g.deployment_states("octo/failing", *id)
                    .last()
                    .map(String::as_str)
                    == Some("failure")
            })
        })
        .await;
    let (_, deployment) = &github.deployments("octo/failing")[0];
    assert_eq!(deployment["environment"], "failing/production");
    assert_eq!(deployment["production_environment"], true);
    assert!(
        github
            .requests_to("POST", "/repos/octo/failing/issues/")
            .is_empty(),
        "no comment for a push"
    );
}

#[tokio::test]
async fn calls_to_github_that_fail_are_retried_and_never_fail_the_build() {
    let github = FakeGitHub::start().await;
    let app = spawn_app_with_github(&github).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("live")),
        ],
        "Go live",
    );
    app.connect_site_with(
        "flaky",
        json!({"repo_url": repo.url(), "github_repo": "octo/flaky", "github_installation_id": 6}),
    )
    .await;
    github.fail_next("statuses", 3);
    github.fail_next("deployments", 2);

    let build = app.push("octo/flaky", &repo, &sha).await;
    app.wait_for_success(build).await;
    assert_eq!(app.visit("flaky", "/").await.body, page("live"));
    github
        .wait_for("a success status despite the outage", |g| {
            g.status_states("octo/flaky", &sha).last().map(String::as_str) == Some("success")
        })
        .await;
    let attempts = github.statuses("octo/flaky", &sha);
    assert!(
        attempts.len() >= 5,
        "3 refused and then pending and success: {attempts:?}"
    );
    assert_eq!(
        attempts.last().unwrap()["target_url"],
        format!("http://flaky.localhost:{}/", app.port)
    );
    github
        .wait_for("the production deployment despite the outage", |g| {
            g.deployments("octo/flaky").first().is_some_and(|(id, _)| {
                g.deployment_states("octo/flaky", *id).last().map(String::as_str) == Some("success")
            })
        })
        .await;
    assert_eq!(github.deployments("octo/flaky").len(), 1, "created once");
}

#[tokio::test]
async fn connecting_with_an_access_token_registers_the_webhook_and_never_shows_or_stores_the_token_in_clear()
{
    let github = FakeGitHub::start().await;
    let (app, _token) = spawn_controller_with_github(&github).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("src/index.html", "x")], "x");
    let token = "ghp_example0123456789abcdefTOKEN";
    let site = app
        .connect_site_with(
            "tokened",
            json!({"repo_url": repo.url(), "github_repo": "octo/tokened", "github_token": token}),
        )
        .await;
    assert_eq!(site["github_token_set"], true);
    assert_eq!(site["github_webhook"]["registered"], true, "{site}");
    assert!(
        !site.to_string().contains(token),
        "the answer shows no token: {site}"
    );

    let hooks = github.hooks("octo/tokened");
    assert_eq!(hooks.len(), 1);
    let (hook_id, hook) = &hooks[0];
    assert_eq!(site["github_webhook"]["hook_id"], *hook_id);
    assert_eq!(hook["config"]["url"], format!("{}/webhooks/github", app.base_url));
    assert_eq!(hook["config"]["secret"], crate::helpers::WEBHOOK_SECRET);
    assert_eq!(hook["config"]["content_type"], "json");
    assert_eq!(hook["events"], json!(["push", "pull_request"]));
    let registration = &github.requests_to("POST", "/repos/octo/tokened/hooks")[0];
    assert_eq!(
        registration.authorization.as_deref(),
        Some(format!("Bearer {token}").as_str())
    );

    // Setting the token again updates the same hook.
    let changed = app
        .change_site_settings("tokened", json!({"github_token": token}))
        .await;
    assert_eq!(changed["github_webhook"]["hook_id"], *hook_id);
    assert_eq!(github.hooks("octo/tokened").len(), 1);

    // Reports use the token too.
    app.push("octo/tokened", &repo, &sha).await;
    github
        .wait_for("a pending status sent with the token", |g| {
            !g.statuses("octo/tokened", &sha).is_empty()
        })
        .await;
    let status = &github.requests_to("POST", "/repos/octo/tokened/statuses/")[0];
    assert_eq!(
        status.authorization.as_deref(),
        Some(format!("Bearer {token}").as_str())
    );

    // Neither the database nor the log of the site shows it.
    let (_, shown) = app.api_json(app.http.get(app.api("/sites/tokened"))).await;
    assert!(!shown.to_string().contains(token));
    for entry in std::fs::read_dir(app.data_dir().join("controller")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "{} holds the token in clear",
                path.display()
            );
        }
    }

    // A token GitHub refuses: the site is connected, and the answer says why.
    let refused = app
        .connect_site_with(
            "refused",
            json!({"repo_url": repo.url(), "github_repo": "octo/refused", "github_token": "ghp_revoked"}),
        )
        .await;
    assert_eq!(refused["github_webhook"]["registered"], false);
    let error = refused["github_webhook"]["error"].as_str().unwrap();
    assert!(
        error.contains("Bad credentials") && error.contains("github-webhook"),
        "{error}"
    );
}

#[tokio::test]
async fn installation_events_keep_the_reachable_repositories_and_jobs_get_a_token_for_them() {
    let github = FakeGitHub::start().await;
    let (app, runner_token) = spawn_controller_with_github(&github).await;

    let mut installed = fixture("installation.created.json");
    installed["installation"]["id"] = json!(31337);
    installed["repositories"][0]["full_name"] = json!("octo/private");
    let (status, answer) = app.deliver_github_event("installation", &installed).await;
    assert_eq!(status, 200, "{answer}");
    let mut added = fixture("installation_repositories.added.json");
    added["installation"]["id"] = json!(31337);
    let (status, _) = app
        .deliver_github_event("installation_repositories", &added)
        .await;
    assert_eq!(status, 200);
    let (_, installations) = app.api_json(app.http.get(app.api("/github/installations"))).await;
    assert_eq!(installations[0]["id"], 31337);
    assert_eq!(installations[0]["account"], "Codertocat");
    assert_eq!(
        installations[0]["repositories"],
        json!(["Codertocat/Space", "octo/private"])
    );

    // A site on a reachable repository needs no installation id: its jobs
    // get a token that can only read that repository.
    app.connect_site_with(
        "private",
        json!({"github_repo": "octo/private", "production_branch": "main"}),
    )
    .await;
    let (status, _) = app
        .api_json(app.http.post(app.api("/sites/private/builds")))
        .await;
    assert_eq!(status, 201);
    let runner = ControllerClient::new(&app.base_url, &runner_token);
    runner.connect("hand").await.unwrap();
    let lease = runner
        .lease("hand", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("a job");
    assert_eq!(lease.repo_url, "https://github.com/octo/private.git");
    let token = lease.git_token.expect("a token for the private repository");
    assert!(token.expose().starts_with("ghs_installation31337"), "{token:?}");
    assert!(
        !lease.honour_skip_ci,
        "a build asked for by hand is never skipped"
    );
    let minted = &github.requests_to("POST", "/app/installations/31337/access_tokens")[0];
    assert_eq!(minted.body["repositories"], json!(["private"]));
    assert_eq!(minted.body["permissions"], json!({"contents": "read"}));

    // Removing the repository and uninstalling are remembered too.
    let mut removed = added.clone();
    removed["action"] = json!("removed");
    removed["repositories_removed"] = removed["repositories_added"].take();
    removed["repositories_added"] = json!([]);
    app.deliver_github_event("installation_repositories", &removed)
        .await;
    let (_, installations) = app.api_json(app.http.get(app.api("/github/installations"))).await;
    assert_eq!(installations[0]["repositories"], json!(["octo/private"]));
    installed["action"] = json!("deleted");
    app.deliver_github_event("installation", &installed).await;
    let (_, installations) = app.api_json(app.http.get(app.api("/github/installations"))).await;
    assert_eq!(installations, json!([]));
}

#[tokio::test]
async fn branch_deploys_build_other_branches_when_on_and_a_deleted_branch_is_taken_down() {
    let github = FakeGitHub::start().await;
    let app = spawn_app_with_github(&github).await;
    let repo = SiteRepo::new();
    repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("main")),
        ],
        "Main",
    );
    app.connect_site_with(
        "branchy",
        json!({"repo_url": repo.url(), "github_repo": "octo/shared", "branch_deploys": true}),
    )
    .await;
    app.connect_site_with(
        "mainonly",
        json!({"repo_url": repo.url(), "github_repo": "octo/shared"}),
    )
    .await;

    let sha = repo.commit_on(
        "feature/Login",
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("login")),
        ],
        "Login",
    );
    let payload = push_payload("octo/shared", &repo, "feature/Login", &sha);
    let (status, answer) = app.deliver_github_event("push", &payload).await;
    assert_eq!(status, 202, "{answer}");
    let builds = answer["builds"].as_array().unwrap();
    assert_eq!(
        builds.len(),
        1,
        "only the site with branch deploys builds: {answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("mainonly: `feature/Login` is not the production branch and branch deploys are off"),
        "{answer}"
    );
    let build = app.wait_for_success(builds[0].as_i64().unwrap()).await;
    assert_eq!(build["context"], "branch-deploy");
    assert_eq!(app.visit("feature-login--branchy", "/").await.body, page("login"));
    assert_eq!(app.visit("feature-login--mainonly", "/").await.status, 404);

    // A tag push builds nothing, on purpose.
    let mut tag = push_payload("octo/shared", &repo, "main", &sha);
    tag["ref"] = json!("refs/tags/v1.0");
    let (status, answer) = app.deliver_github_event("push", &tag).await;
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("ignored")));
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("tag pushes do not build"),
        "{answer}"
    );

    // Deleting the branch takes its hostname down.
    let answer = app.delete_branch("octo/shared", &repo, "feature/Login").await;
    assert!(
        answer["message"].as_str().unwrap().contains("taken down"),
        "{answer}"
    );
    assert_eq!(app.visit("feature-login--branchy", "/").await.status, 404);
    github
        .wait_for("the branch deployment marked inactive", |g| {
            g.deployments("octo/shared").iter().any(|(id, d)| {
                d["environment"] == "branchy/branch/feature-login"
                    && g.deployment_states("octo/shared", *id).last().map(String::as_str) == Some("inactive")
            })
        })
        .await;

    // Deleting the production branch unpublishes nothing.
    let answer = app.delete_branch("octo/shared", &repo, "main").await;
    assert!(
        answer["message"].as_str().unwrap().contains("keeps serving"),
        "{answer}"
    );
}

#[tokio::test]
async fn skip_markers_and_the_ignore_command_skip_builds_and_say_why() {
    let github = FakeGitHub::start().await;
    let app = spawn_app_with_github(&github).await;
    let repo = SiteRepo::new();
    let toml = format!("{COPY_SITE_TOML}ignore = \"grep -q skip src/flag.txt\"\n");
    app.connect_site_with(
        "skippy",
        json!({"repo_url": repo.url(), "github_repo": "octo/skippy", "github_installation_id": 8}),
    )
    .await;

    // `[skip ci]` in the pushed head commit: recorded as skipped, never run.
    let docs = repo.commit(
        &[
            ("jamstack.toml", &toml),
            ("src/index.html", "x"),
            ("src/flag.txt", "build"),
        ],
        "Docs only [skip ci]",
    );
    let mut payload = push_payload("octo/skippy", &repo, "main", &docs);
    payload["head_commit"]["message"] = json!("Docs only [skip ci]");
    let (status, answer) = app.deliver_github_event("push", &payload).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("skipped")),
        "{answer}"
    );
    let skipped = app.build(answer["builds"][0].as_i64().unwrap()).await;
    assert_eq!(skipped["state"], "skipped");
    assert!(
        skipped["skip_reason"].as_str().unwrap().contains("[skip ci]"),
        "{skipped}"
    );
    github
        .wait_for("a success status saying the build was skipped", |g| {
            g.statuses("octo/skippy", &docs).iter().any(|s| {
                s["state"] == "success"
                    && s["description"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("Build skipped")
            })
        })
        .await;
    assert!(
        github.deployments("octo/skippy").is_empty(),
        "nothing was deployed"
    );

    // A pull request carries no commit message: the runner finds the marker.
    let marked = repo.commit_on(
        "wip",
        &[
            ("jamstack.toml", &toml),
            ("src/index.html", "x"),
            ("src/flag.txt", "build"),
        ],
        "WIP [ci skip]",
    );
    let build = app.open_pull_request("octo/skippy", 9, "wip", &marked).await;
    let build = app.wait_for_build(build).await;
    assert_eq!(build["state"], "skipped", "{build}");
    assert!(build["skip_reason"].as_str().unwrap().contains("[ci skip]"));

    // The ignore command runs in the build container; exit 0 skips.
    let quiet = repo.commit(
        &[
            ("jamstack.toml", &toml),
            ("src/index.html", "x"),
            ("src/flag.txt", "skip"),
        ],
        "Nothing to see",
    );
    let build = app.push("octo/skippy", &repo, &quiet).await;
    let build = app.wait_for_build(build).await;
    assert_eq!(build["state"], "skipped", "{build}");
    assert!(build["skip_reason"].as_str().unwrap().contains("ignore command"));
    let log = app.build_log(build["id"].as_i64().unwrap()).await;
    assert!(log.contains("Running the ignore command"), "{log}");
    assert!(log.contains("Build skipped"), "{log}");

    // Any other exit status builds.
    let real = repo.commit(
        &[
            ("jamstack.toml", &toml),
            ("src/index.html", &page("real")),
            ("src/flag.txt", "build"),
        ],
        "Real change",
    );
    let build = app.push("octo/skippy", &repo, &real).await;
    app.wait_for_success(build).await;
    assert!(
        app.build_log(build)
            .await
            .contains("The ignore command exited with 1: building")
    );
    assert_eq!(app.visit("skippy", "/").await.body, page("real"));
}

#[tokio::test]
async fn a_pull_request_from_a_fork_is_built_marked_untrusted_and_sites_without_previews_skip_it() {
    let github = FakeGitHub::start().await;
    let (app, _token) = spawn_controller_with_github(&github).await;
    let repo = SiteRepo::new();
    app.connect_site_with(
        "open",
        json!({"repo_url": repo.url(), "github_repo": "octo/forked"}),
    )
    .await;
    app.connect_site_with(
        "closed",
        json!({"repo_url": repo.url(), "github_repo": "octo/forked", "deploy_previews": false}),
    )
    .await;
    let mut payload = pull_request_payload("opened", "octo/forked", 12, "patch-1", &"c".repeat(40));
    payload["pull_request"]["head"]["repo"]["full_name"] = json!("stranger/forked");
    let (status, answer) = app.deliver_github_event("pull_request", &payload).await;
    assert_eq!(status, 202, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("(from a fork)"), "{message}");
    assert!(message.contains("closed: deploy previews are off"), "{message}");
    let build = app.build(answer["builds"][0].as_i64().unwrap()).await;
    assert_eq!(build["from_fork"], true);
    assert_eq!(build["site"], "open");
    assert!(app.builds_of("closed").await.is_empty());

    // Turned on later, the next pull request builds there too.
    let site = app
        .change_site_settings("closed", json!({"deploy_previews": true}))
        .await;
    assert_eq!(site["deploy_previews"], true);
    assert_eq!(site["branch_deploys"], false, "other settings stay");
    let next = pull_request_payload("opened", "octo/forked", 13, "patch-2", &"d".repeat(40));
    let (status, answer) = app.deliver_github_event("pull_request", &next).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["builds"].as_array().unwrap().len(), 2, "{answer}");
    let build = app.builds_of("closed").await[0].clone();
    assert_eq!(build["from_fork"], false);
}

#[tokio::test]
async fn every_delivery_is_kept_with_its_outcome_and_a_redelivery_is_handled_once() {
    let github = FakeGitHub::start().await;
    let (app, _token) = spawn_controller_with_github(&github).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("src/index.html", "x")], "x");
    app.connect_site("kept", &repo, "octo/kept").await;
    let payload = push_payload("octo/kept", &repo, "main", &sha);

    let (status, first) = app
        .deliver_github_event_with_id("push", &payload, "6a1b-redelivered")
        .await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = app
        .deliver_github_event_with_id("push", &payload, "6a1b-redelivered")
        .await;
    assert_eq!(
        (status, again["outcome"].as_str()),
        (200, Some("duplicate")),
        "{again}"
    );
    assert_eq!(again["builds"], first["builds"]);
    assert!(again["message"].as_str().unwrap().contains("6a1b-redelivered"));
    assert_eq!(app.builds_of("kept").await.len(), 1, "built once");

    let body = serde_json::to_vec(&payload).unwrap();
    let (status, _) = app
        .deliver_raw_webhook("push", body.clone(), Some(crate::helpers::sign("wrong", &body)))
        .await;
    assert_eq!(status, 401);
    let (status, _) = app.deliver_raw_webhook("push", body.clone(), None).await;
    assert_eq!(status, 401);
    let huge = vec![b' '; 26 * 1024 * 1024];
    let (status, answer) = app
        .deliver_raw_webhook(
            "push",
            huge.clone(),
            Some(crate::helpers::sign(crate::helpers::WEBHOOK_SECRET, &huge)),
        )
        .await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("25 MB"), "{answer}");
    let malformed = b"{\"ref\": \"refs/heads/main\", \"after\": ".to_vec();
    let (status, answer) = app
        .deliver_raw_webhook(
            "push",
            malformed.clone(),
            Some(crate::helpers::sign(crate::helpers::WEBHOOK_SECRET, &malformed)),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = app
        .deliver_github_event(
            "star",
            &json!({"action": "created", "repository": {"full_name": "octo/kept"}}),
        )
        .await;
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("ignored")));
    let mut odd = pull_request_payload("opened", "octo/kept", 1, "x", &sha);
    odd["action"] = json!("teleported");
    let (status, answer) = app.deliver_github_event("pull_request", &odd).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("ignored")),
        "{answer}"
    );
    let (status, _) = app.deliver_github_event("ping", &fixture("ping.json")).await;
    assert_eq!(status, 200);

    let deliveries = app.webhook_deliveries().await;
    let outcomes: Vec<(&str, &str)> = deliveries
        .iter()
        .map(|d| (d["event"].as_str().unwrap(), d["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("ping", "ignored"),
            ("pull_request", "ignored"),
            ("star", "ignored"),
            ("push", "rejected"),
            ("push", "rejected"),
            ("push", "rejected"),
            ("push", "rejected"),
            ("push", "duplicate"),
            ("push", "queued"),
        ]
    );
    let message = |i: usize| deliveries[i]["message"].as_str().unwrap().to_owned();
    assert!(
        message(3).contains("not a valid `push` payload"),
        "{}",
        message(3)
    );
    assert!(message(4).contains("larger than 25 MB"), "{}", message(4));
    assert!(
        message(5).contains("missing X-Hub-Signature-256"),
        "{}",
        message(5)
    );
    assert!(message(6).contains("does not match"), "{}", message(6));
    assert_eq!(deliveries[8]["delivery_id"], "6a1b-redelivered");
    assert_eq!(deliveries[8]["repository"], "octo/kept");
    assert_eq!(deliveries[8]["builds"], first["builds"]);
    assert_eq!(deliveries[1]["action"], "teleported");

    let id = deliveries[8]["id"].as_i64().unwrap();
    let (status, one) = app
        .api_json(app.http.get(app.api(&format!("/webhook-deliveries/{id}"))))
        .await;
    assert_eq!((status, &one["outcome"]), (200, &Value::from("queued")));
}

/// Plays the runner by hand, so the pull request can close while its
/// preview is still building.
#[tokio::test]
async fn a_preview_still_building_when_its_pull_request_closes_does_not_come_back_until_it_reopens() {
    let github = FakeGitHub::start().await;
    let (app, runner_token) = spawn_controller_with_github(&github).await;
    let repo = SiteRepo::new();
    let sha = repo.commit_on("late", &[("index.html", "late")], "Late");
    app.connect_site_with(
        "late",
        json!({"repo_url": repo.url(), "github_repo": "octo/late"}),
    )
    .await;
    let runner = ControllerClient::new(&app.base_url, &runner_token);
    runner.connect("hand").await.unwrap();
    let lease = || async {
        runner
            .lease("hand", Duration::from_secs(5))
            .await
            .unwrap()
            .expect("a job")
    };
    let runner = &runner;
    let deploy_by_hand = |lease: jamstack_proto::JobLease| async move {
        let content = bytes::Bytes::from_static(b"late");
        let file = jamstack_proto::ManifestFile {
            path: "index.html".into(),
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content)),
            size: content.len() as u64,
            mode: 0o644,
        };
        let answer = runner.send_manifest(&lease, vec![file.clone()]).await.unwrap();
        if !answer.missing.is_empty() {
            runner.put_blob(&file.sha256, content).await.unwrap();
        }
        let finalized = runner.finalize(&lease).await.unwrap();
        runner
            .complete(
                &lease,
                &jamstack_proto::JobOutcome::Succeeded {
                    deploy_id: finalized.deploy_id.clone(),
                },
                &[],
            )
            .await
            .unwrap();
        finalized
    };

    app.open_pull_request("octo/late", 4, "late", &sha).await;
    let building = lease().await;
    // Closed while the runner works on it; the runner finishes anyway.
    let closed = app.close_pull_request("octo/late", 4, "late", &sha).await;
    assert!(
        closed["message"]
            .as_str()
            .unwrap()
            .contains("had no deploy preview"),
        "{closed}"
    );
    let finalized = deploy_by_hand(building).await;
    assert_eq!(
        finalized.alias_url, None,
        "the deploy is kept, its hostname is not"
    );
    assert_eq!(app.visit("deploy-preview-4--late", "/").await.status, 404);
    assert_eq!(
        app.visit(&format!("{}--late", finalized.deploy_id), "/")
            .await
            .body,
        "late",
        "the permalink still works"
    );

    let payload = pull_request_payload("synchronize", "octo/late", 4, "late", &sha);
    let mut reopened = payload.clone();
    reopened["action"] = json!("reopened");
    let (status, answer) = app.deliver_github_event("pull_request", &reopened).await;
    assert_eq!(status, 202, "{answer}");
    let finalized = deploy_by_hand(lease().await).await;
    assert!(finalized.alias_url.is_some());
    assert_eq!(app.visit("deploy-preview-4--late", "/").await.body, "late");
}

#[tokio::test]
async fn a_cancelled_build_reports_an_error_status_and_deployment() {
    let github = FakeGitHub::start().await;
    let (app, _runner_token) = spawn_controller_with_github(&github).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("src/index.html", "x")], "x");
    app.connect_site_with(
        "stopped",
        json!({"repo_url": repo.url(), "github_repo": "octo/stopped", "github_installation_id": 3}),
    )
    .await;
    let build = app.push("octo/stopped", &repo, &sha).await;
    github
        .wait_for("the pending status", |g| {
            !g.statuses("octo/stopped", &sha).is_empty()
        })
        .await;
    let (status, cancelled) = app
        .api_json(app.http.post(app.api(&format!("/builds/{build}/cancel"))))
        .await;
    assert_eq!((status, &cancelled["state"]), (200, &json!("cancelled")));
    github
        .wait_for("an error status and deployment", |g| {
            g.status_states("octo/stopped", &sha).last().map(String::as_str) == Some("error")
                && g.deployments("octo/stopped").first().is_some_and(|(id, _)| {
                    g.deployment_states("octo/stopped", *id)
                        .last()
                        .map(String::as_str)
                        == Some("error")
                })
        })
        .await;
    assert_eq!(
        github.statuses("octo/stopped", &sha).last().unwrap()["description"],
        "Build cancelled"
    );
}

#[tokio::test]
async fn a_build_needing_labels_no_runner_has_says_why_it_waits_until_a_runner_with_them_registers() {
    let github = FakeGitHub::start().await;
    // The controller's registered runner ("embedded") has no labels and is
    // not even running.
    let (app, _runner_token) = spawn_controller_with_github(&github).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("rendered")),
        ],
        "Render on a GPU",
    );
    app.connect_site_with(
        "rendered",
        json!({"repo_url": repo.url(), "github_repo": "octo/rendered", "github_installation_id": 14,
               "production_branch": "main"}),
    )
    .await;
    app.change_site_settings("rendered", json!({"required_labels": ["gpu"]}))
        .await;
    let build = app.trigger_build("rendered", &sha).await;

    // The API, the build page and the queue page say why it waits.
    let reason = "no registered runner has the labels gpu (runners: embedded [no labels])";
    let shown = app.build(build).await;
    assert_eq!(shown["state"], "queued");
    assert_eq!(shown["waiting_reason"], reason, "{shown}");
    let queue = app.get_json("/queue").await;
    assert_eq!(queue["queued"][0]["build_id"], build);
    assert_eq!(queue["queued"][0]["waiting_reason"], reason, "{queue}");
    let session = app.sign_in_over_http().await;
    let build_page = app.dashboard_page(&session, &format!("/builds/{build}")).await;
    assert!(
        build_page.contains(reason),
        "the build page says why: {build_page}"
    );
    let queue_page = app.dashboard_page(&session, "/queue").await;
    assert!(
        queue_page.contains(reason),
        "the queue page says why: {queue_page}"
    );

    // So does the pending commit status.
    github
        .wait_for("a pending status saying why the build waits", |g| {
            g.statuses("octo/rendered", &sha).iter().any(|s| {
                s["state"] == "pending"
                    && s["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("no registered runner has the labels gpu"))
            })
        })
        .await;

    // A runner with the label registers: the build runs, and says nothing
    // of waiting any more.
    app.start_runner_with_labels("gpu-box", &["gpu", "linux"]).await;
    let built = app.wait_for_success(build).await;
    assert!(built.get("waiting_reason").is_none(), "{built}");
    assert_eq!(app.visit("rendered", "/").await.body, page("rendered"));
    github
        .wait_for("a success status", |g| {
            g.status_states("octo/rendered", &sha).last().map(String::as_str) == Some("success")
        })
        .await;
}

#[tokio::test]
async fn a_site_connected_without_naming_a_production_branch_builds_the_default_branch_github_names() {
    let github = FakeGitHub::start().await;
    github.set_default_branch("octo/trunk", "trunk");
    let (app, _runner_token) = spawn_controller_with_github(&github).await;
    let repo = SiteRepo::new();

    // GitHub is asked, as the App's installation.
    let site = app
        .connect_site_with(
            "asked",
            json!({"repo_url": repo.url(), "github_repo": "octo/trunk", "github_installation_id": 21}),
        )
        .await;
    assert_eq!(site["production_branch"], "trunk", "{site}");
    assert_eq!(site["production_branch_follows_default"], true);
    assert_eq!(github.requests_to("GET", "/repos/octo/trunk").len(), 1);

    // A branch the person names wins, and GitHub is not asked.
    let named = app
        .connect_site_with(
            "named",
            json!({"repo_url": repo.url(), "github_repo": "octo/trunk", "github_installation_id": 21,
                   "production_branch": "release"}),
        )
        .await;
    assert_eq!(named["production_branch"], "release");
    assert_eq!(github.requests_to("GET", "/repos/octo/trunk").len(), 1);

    // GitHub not answering leaves today's behaviour: `main` until a
    // delivery names the default branch.
    github.fail_next("other", 20);
    let unanswered = app
        .connect_site_with(
            "unanswered",
            json!({"repo_url": repo.url(), "github_repo": "octo/trunk", "github_installation_id": 21}),
        )
        .await;
    assert_eq!(unanswered["production_branch"], "main");
    assert_eq!(unanswered["production_branch_follows_default"], true);
    github.fail_next("other", 0);

    // A site made for direct deploys, connected to the repository later,
    // gets the default branch the same way.
    app.connect_site_with("later", json!({})).await;
    let connected = app
        .change_site_settings(
            "later",
            json!({"github_repo": "octo/trunk", "github_installation_id": 21}),
        )
        .await;
    assert_eq!(connected["production_branch"], "trunk", "{connected}");
    assert_eq!(connected["repo_url"], "https://github.com/octo/trunk.git");
}

#[tokio::test]
async fn a_build_queued_past_the_warning_threshold_says_so_and_its_pending_status_follows() {
    let github = FakeGitHub::start().await;
    // The registered runner ("embedded") could take the build, but is not
    // running to ask for it.
    let (app, _runner_token) = spawn_controller_with_github_and(&github, |config| {
        config.queued_warning_after = Duration::from_secs(1);
    })
    .await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("src/index.html", "x")], "x");
    app.connect_site_with(
        "slow",
        json!({"repo_url": repo.url(), "github_repo": "octo/slow", "github_installation_id": 15,
               "production_branch": "main"}),
    )
    .await;
    let build = app.trigger_build("slow", &sha).await;
    assert!(
        app.build(build).await.get("waiting_reason").is_none(),
        "young, nothing to say yet"
    );
    github
        .wait_for("the first pending status", |g| {
            g.statuses("octo/slow", &sha)
                .first()
                .is_some_and(|s| s["description"] == "Build queued")
        })
        .await;

    // Past the threshold, the API says how long and why ...
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let shown = app.build(build).await;
    let reason = shown["waiting_reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("queued for "), "{shown}");
    assert!(
        reason.ends_with(
            "longer than 1s: 1 runner(s) with a free slot have not asked for work; \
             check that they run and reach the controller"
        ),
        "{shown}"
    );

    // ... and the periodic check updates the pending status once, without
    // the seconds that change every time.
    github
        .wait_for("a pending status saying the build waits too long", |g| {
            g.statuses("octo/slow", &sha).iter().any(|s| {
                s["state"] == "pending"
                    && s["description"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("Build queued, waiting: queued longer than 1s"))
            })
        })
        .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        github.statuses("octo/slow", &sha).len(),
        2,
        "a status is sent again only when it changes: {:?}",
        github.statuses("octo/slow", &sha)
    );
}
