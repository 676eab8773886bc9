//! Credentials and trust follow the repository: a site's token goes only to
//! its own GitHub repository, a `sites` token cannot point a site at the
//! runner's disk nor mint a generic webhook secret.

use crate::helpers::{
    FakeGitHub, HandRunner, PrivateGitServer, SiteRepo, TestApp, spawn_controller_only_with,
    spawn_controller_with_github,
};
use serde_json::{Value, json};

/// Makes an API token with `scopes` using the admin token.
async fn make_token(app: &TestApp, scopes: &[&str]) -> String {
    let (status, body) = app
        .api_json(
            app.http
                .post(app.api("/tokens"))
                .json(&json!({ "name": scopes.join("-"), "scopes": scopes })),
        )
        .await;
    assert_eq!(status, 201, "making a token: {body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Leases jobs until one of `site` comes (another test step's job may
/// come back to the queue when its lease runs out).
async fn lease_of(runner: &HandRunner, site: &str) -> jamstack_proto::JobLease {
    loop {
        let lease = runner.lease().await;
        if lease.site == site {
            return lease;
        }
    }
}

async fn call_with(token: &str, request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.bearer_auth(token).send().await.expect("calling the API");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn a_site_whose_repo_url_names_another_host_gets_no_github_token_and_that_host_never_sees_one() {
    let github = FakeGitHub::start().await;
    let (app, runner_token) = spawn_controller_with_github(&github).await;
    let repo = SiteRepo::new();
    repo.commit(&[("index.html", "hi")], "first");
    // The attacker's server, recording every Authorization header.
    let attacker = PrivateGitServer::start(&repo, "site", "the-attackers-own").await;
    let elsewhere = attacker.base_url.replace("http://", "https://");
    let runner = HandRunner::connect(&app, &runner_token).await;

    // The site names octo/private (reachable by the App's installation) but
    // clones from another host.
    app.connect_site_with(
        "stolen",
        json!({
            "github_repo": "octo/private",
            "github_installation_id": 31337,
            "repo_url": format!("{elsewhere}/site.git"),
        }),
    )
    .await;
    app.trigger_build_with("stolen", json!({})).await;
    let lease = lease_of(&runner, "stolen").await;
    assert_eq!(lease.repo_url, format!("{elsewhere}/site.git"));
    assert!(
        lease.git_token.is_none(),
        "a token for octo/private went out with a job cloning from {elsewhere}"
    );

    // The same over http, built by a real runner: the server never sees a
    // credential.
    app.connect_site_with(
        "stolen-http",
        json!({
            "github_repo": "octo/private",
            "github_installation_id": 31337,
            "repo_url": format!("{}/site.git", attacker.base_url),
        }),
    )
    .await;
    let id = app.trigger_build_with("stolen-http", json!({})).await;
    let lease = lease_of(&runner, "stolen-http").await;
    assert!(lease.git_token.is_none());
    let work = tempfile::tempdir().unwrap();
    let mut config = jamstack_runner::RunnerConfig::new(&app.base_url, &runner_token);
    config.name = format!("trust-runner-{}", std::process::id());
    config.work_dir = work.path().to_path_buf();
    let real = jamstack_runner::Runner::start(config)
        .await
        .expect("starting a runner");
    real.run_job(lease, &tokio_util::sync::CancellationToken::new())
        .await;
    let build = app.wait_for_build(id).await;
    assert_eq!(build["state"], "failed", "{build}");
    let seen = attacker.seen_auth.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the runner asked the server");
    assert!(
        seen.iter().all(|auth| auth == "-"),
        "the server was sent credentials: {seen:?}"
    );

    // The repository itself still gets its token.
    app.connect_site_with(
        "own",
        json!({"github_repo": "octo/private", "github_installation_id": 31337}),
    )
    .await;
    app.trigger_build_with("own", json!({})).await;
    let lease = lease_of(&runner, "own").await;
    assert_eq!(lease.repo_url, "https://github.com/octo/private.git");
    assert!(
        lease.git_token.is_some(),
        "the repository's own job has its token"
    );
}

#[tokio::test]
async fn a_sites_token_cannot_point_a_site_at_a_path_on_the_runners_machine_nor_learn_whether_it_exists() {
    let (app, _) = spawn_controller_only_with(|config| config.allow_local_repositories = false).await;
    let sites = make_token(&app, &["sites"]).await;
    let exists = std::env::temp_dir();
    let exists = exists.to_str().unwrap();
    let mut errors = Vec::new();
    for (i, url) in [
        exists.to_owned(),
        "/no/such/folder/anywhere".to_owned(),
        format!("file://{exists}"),
        "file:///no/such/folder".to_owned(),
        "../relative".to_owned(),
        "git://127.0.0.1/site.git".to_owned(),
        "http://127.0.0.1/site.git".to_owned(),
        "https://".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        let (status, body) = call_with(
            &sites,
            app.http
                .post(app.api("/sites"))
                .json(&json!({"name": format!("local-{i}"), "repo_url": url})),
        )
        .await;
        assert_eq!(status, 400, "{url}: {body}");
        let error = body["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains("https://") && error.contains("--allow-local-repositories"),
            "{error}"
        );
        errors.push(error.replace(&format!("`{url}`"), "`URL`"));
    }
    assert!(
        errors.iter().all(|e| e == &errors[0]),
        "the answer differs by what exists: {errors:?}"
    );
    let (status, _) = app.api_json(app.http.get(app.api("/sites/local-0"))).await;
    assert_eq!(status, 404, "nothing was made");

    // The dashboard's form says the same.
    let session = app.sign_in_over_http().await;
    let csrf = crate::helpers::csrf_of(&app.dashboard_page(&session, "/sites/new").await);
    let (status, page) = app
        .post_form(
            &session,
            "/sites",
            &[("csrf", &csrf), ("name", "local-form"), ("repo_url", exists)],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("--allow-local-repositories"), "{page}");
    let (status, _) = app.api_json(app.http.get(app.api("/sites/local-form"))).await;
    assert_eq!(status, 404, "nothing was made");

    for (name, url) in [
        ("remote", "https://git.example.com/octo/site.git"),
        ("wiki", "ssh://git@git.example.com/wiki.git"),
    ] {
        let (status, body) = call_with(
            &sites,
            app.http
                .post(app.api("/sites"))
                .json(&json!({"name": name, "repo_url": url})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
}

#[tokio::test]
async fn a_sites_token_cannot_make_a_generic_webhook_secret_that_builds_production_with_secrets() {
    let (app, _) = spawn_controller_only_with(|_| {}).await;
    app.connect_site_with("hooked", json!({"repo_url": "https://git.example.com/o/r.git"}))
        .await;
    let sites = make_token(&app, &["sites"]).await;
    let (status, body) = call_with(&sites, app.http.post(app.api("/sites/hooked/generic-webhook"))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("admin"), "{body}");
    let admin = make_token(&app, &["admin"]).await;
    let (status, body) = call_with(&admin, app.http.post(app.api("/sites/hooked/generic-webhook"))).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["secret"].as_str().unwrap().len() >= 32, "{body}");
}

/// Builds a commit by hand with `token`; answers the finished build.
async fn build_by_hand(app: &TestApp, token: &str, sha: &str) -> Value {
    let (status, build) = call_with(
        token,
        app.http
            .post(app.api("/sites/trusty/builds"))
            .json(&json!({ "commit_sha": sha })),
    )
    .await;
    assert_eq!(status, 201, "{build}");
    app.wait_for_success(build["id"].as_i64().unwrap()).await
}

#[tokio::test]
async fn a_commit_off_the_branch_built_by_hand_with_a_builds_token_gets_no_secrets_and_is_not_published() {
    const SECRET: &str = "deploy-key-5c1f9e0a77";
    let app = crate::helpers::spawn_app().await;
    let repo = SiteRepo::new();
    let toml = "[build]\ncommand = 'mkdir -p public && echo \"$(cat page.txt) secret=[$DEPLOY_KEY]\" | tee public/index.html'\n\
                publish = \"public\"\nimage = \"jamstack/busybox:1\"\n";
    let older = repo.commit(&[("jamstack.toml", toml), ("page.txt", "older")], "older");
    repo.commit(&[("page.txt", "main")], "main");
    // A commit on no branch of main's history: a fork's, say.
    let side = repo.commit_on("side", &[("page.txt", "side")], "side");
    app.connect_site("trusty", &repo, "octo/trusty").await;
    app.set_env("trusty", "DEPLOY_KEY", SECRET, true).await;
    app.wait_for_success(app.trigger_build_with("trusty", json!({})).await)
        .await;
    assert_eq!(
        app.visit("trusty", "/").await.body.trim(),
        format!("main secret=[{SECRET}]")
    );
    let builds = make_token(&app, &["builds"]).await;

    let build = build_by_hand(&app, &builds, &side).await;
    let log = app.build_log(build["id"].as_i64().unwrap()).await;
    assert!(log.contains("side secret=[]"), "built without the secret:\n{log}");
    assert!(log.contains("is not on branch main"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
    let deploy = build["deploy_id"].as_str().unwrap();
    let page = app.visit(&format!("{deploy}--trusty"), "/").await.body;
    assert_eq!(page.trim(), "side secret=[]", "the deployed file has no secret");
    assert_eq!(
        app.visit("trusty", "/").await.body.trim(),
        format!("main secret=[{SECRET}]"),
        "production still serves main"
    );
    assert_eq!(build["commit_unverified"], true, "{build}");

    // A commit of the branch, picked by hand with the same token, is the
    // site's code.
    let build = build_by_hand(&app, &builds, &older).await;
    assert_eq!(build["commit_unverified"], false, "{build}");
    assert_eq!(
        app.visit("trusty", "/").await.body.trim(),
        format!("older secret=[{SECRET}]")
    );

    // Someone who may change the site anyway may build any commit.
    let sites = make_token(&app, &["builds", "sites"]).await;
    build_by_hand(&app, &sites, &side).await;
    assert_eq!(
        app.visit("trusty", "/").await.body.trim(),
        format!("side secret=[{SECRET}]")
    );
}
