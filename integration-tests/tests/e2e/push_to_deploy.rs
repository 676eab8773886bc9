use crate::helpers::{COPY_SITE_TOML, SiteRepo, spawn_app};

#[tokio::test]
async fn a_push_goes_live_a_second_push_replaces_it_and_rollback_serves_the_first_again() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let first = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", "<h1>version one</h1>"),
            ("src/about/index.html", "about one"),
            ("src/404.html", "custom not found"),
        ],
        "first",
    );
    app.connect_site("blog", &repo, "octo/blog").await;

    let build = app.push("octo/blog", &repo, &first).await;
    let build = app.wait_for_success(build).await;
    assert_eq!(build["commit_sha"], first.as_str());
    let first_deploy = build["deploy_id"].as_str().unwrap().to_owned();
    // The runner reports how long each step took with the outcome.
    let steps: Vec<&str> = build["step_timings"]
        .as_array()
        .expect("the build carries its step timings")
        .iter()
        .map(|step| step["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps.first(), Some(&"fetch"), "{steps:?}");
    assert!(steps.contains(&"build"), "{steps:?}");

    let home = app.visit("blog", "/").await;
    assert_eq!((home.status, home.body.as_str()), (200, "<h1>version one</h1>"));
    assert_eq!(home.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(app.visit("blog", "/about/").await.body, "about one");
    let missing = app.visit("blog", "/no/such/page").await;
    assert_eq!((missing.status, missing.body.as_str()), (404, "custom not found"));

    let log = app.build_log(build["id"].as_i64().unwrap()).await;
    assert!(
        log.contains(&format!("built {first}")),
        "the build's own output is in the log:\n{log}"
    );

    let second = repo.commit(&[("src/index.html", "<h1>version two</h1>")], "second");
    let build = app.push("octo/blog", &repo, &second).await;
    let second_deploy = app.wait_for_success(build).await["deploy_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first_deploy, second_deploy);
    assert_eq!(app.visit("blog", "/").await.body, "<h1>version two</h1>");

    // Rollback: publish the first deploy again. Nothing is rebuilt.
    let builds_before = app.builds_of("blog").await.len();
    let (status, body) = app.publish("blog", &first_deploy).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.visit("blog", "/").await.body, "<h1>version one</h1>");
    assert_eq!(
        app.builds_of("blog").await.len(),
        builds_before,
        "a rollback builds nothing"
    );

    // Each deploy stays reachable at its permalink, and is cached forever.
    let permalink = app.visit(&format!("{second_deploy}--blog"), "/").await;
    assert_eq!(permalink.body, "<h1>version two</h1>");
    assert!(
        permalink.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );

    let deploys = app.deploys_of("blog").await;
    let published: Vec<_> = deploys.iter().filter(|d| d["published"] == true).collect();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["id"], first_deploy.as_str());
}

#[tokio::test]
async fn pages_revalidate_with_their_etag_and_directories_get_one_trailing_slash_rule() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", "home"),
            ("src/docs/index.html", "docs"),
            ("src/pricing.html", "pricing"),
        ],
        "site",
    );
    app.connect_site("paths", &repo, "octo/paths").await;
    app.wait_for_success(app.push("octo/paths", &repo, &sha).await)
        .await;

    let home = app.visit("paths", "/").await;
    let etag = home.headers["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.len() == 66,
        "strong ETag from the content hash: {etag}"
    );
    let again = app.visit_with("paths", "/", &[("If-None-Match", &etag)]).await;
    assert_eq!(again.status, 304);

    let redirect = app.visit("paths", "/docs").await;
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.headers["location"], "/docs/");
    assert_eq!(app.visit("paths", "/docs/").await.body, "docs");
    assert_eq!(app.visit("paths", "/pricing").await.body, "pricing");
    assert_eq!(app.visit("paths", "/pricing.html").await.body, "pricing");
    for escape in [
        "/%2e%2e/%2e%2e/etc/passwd",
        "/docs/..%2f..%2fetc/passwd",
        "/..\\..\\etc",
        "/a%5c..%5cb",
        "/%00",
    ] {
        assert_eq!(app.visit_raw_path("paths", escape).await, 400, "{escape}");
    }
    assert_eq!(app.visit("paths", "/nothing-here").await.status, 404);
}

#[tokio::test]
async fn a_real_hugo_site_builds_in_its_image_and_is_served() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hugo-site");
    let mut files = Vec::new();
    for entry in walk(&root) {
        let relative = entry.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        if relative.starts_with("public/") || relative.starts_with("resources/") {
            continue;
        }
        files.push((relative, std::fs::read_to_string(&entry).unwrap()));
    }
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let sha = repo.commit(&files, "hugo site");
    app.connect_site("hugo", &repo, "octo/hugo").await;

    let build = app
        .wait_for_success(app.push("octo/hugo", &repo, &sha).await)
        .await;
    let log = app.build_log(build["id"].as_i64().unwrap()).await;
    assert!(log.contains("jamstack/hugo:1"), "{log}");
    let home = app.visit("hugo", "/").await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.to_lowercase().contains("<html"), "{}", home.body);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn a_build_triggered_from_the_api_builds_the_branch_head_and_records_its_commit() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    repo.commit(
        &[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "old")],
        "old",
    );
    let head = repo.commit(&[("src/index.html", "head")], "the head commit");
    app.connect_site("manual", &repo, "octo/manual").await;

    let response = app
        .http
        .post(app.api("/sites/manual/builds"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let build: serde_json::Value = response.json().await.unwrap();
    let build = app.wait_for_success(build["id"].as_i64().unwrap()).await;
    assert_eq!(build["commit_sha"], head.as_str());
    assert_eq!(build["commit_message"], "the head commit");
    assert_eq!(app.visit("manual", "/").await.body, "head");
}

#[tokio::test]
async fn a_build_of_another_branch_is_served_at_its_branch_hostname_and_leaves_production_alone() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let main = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", "production"),
        ],
        "main",
    );
    app.connect_site("branchy", &repo, "octo/branchy").await;
    app.wait_for_success(app.push("octo/branchy", &repo, &main).await)
        .await;

    let staging = repo.commit(&[("src/index.html", "staging work")], "staging");
    let response = app
        .http
        .post(app.api("/sites/branchy/builds"))
        .bearer_auth(&app.admin_token)
        .json(&serde_json::json!({ "branch": "Feature/Staging_2", "commit_sha": staging }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let build: serde_json::Value = response.json().await.unwrap();
    assert_eq!(build["context"], "branch-deploy");
    app.wait_for_success(build["id"].as_i64().unwrap()).await;

    assert_eq!(
        app.visit("feature-staging-2--branchy", "/").await.body,
        "staging work"
    );
    assert_eq!(app.visit("branchy", "/").await.body, "production");
    assert_eq!(app.visit("other-branch--branchy", "/").await.status, 404);
}
