//! Deploys written by an attacker (any site's author; a fork's pull request
//! is one): their rules, manifests and file names can take nothing that is
//! not their own. Deploys go in through the real API and runner protocol;
//! answers come over real HTTP, some read byte by byte off the socket.

use crate::helpers::{TestApp, manifest_file, spawn_controller_only};
use serde_json::{Value, json};

async fn make_site(app: &TestApp, name: &str) {
    app.connect_site_with(name, json!({ "repo_url": "/nowhere/repo.git" }))
        .await;
}

/// Sends a direct deploy's manifest (`files` as `(path, sha256, size)`)
/// and uploads `contents` where asked; returns the deploy's id.
async fn start_deploy(app: &TestApp, site: &str, manifest: Value, contents: &[&[u8]]) -> String {
    let (status, started) = app
        .api_json(
            app.http
                .post(app.api(&format!("/sites/{site}/deploys")))
                .json(&manifest),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    for hash in started["required"].as_array().unwrap() {
        let hash = hash.as_str().unwrap();
        let content = contents
            .iter()
            .find(|c| manifest_file("", c).sha256 == hash)
            .expect("a required hash is one of the contents");
        let (status, body) = app
            .api_json(
                app.http
                    .put(app.api(&format!("/blobs/{hash}")))
                    .body(content.to_vec()),
            )
            .await;
        assert_eq!(status, 201, "uploading {hash}: {body}");
    }
    started["deploy_id"].as_str().unwrap().to_owned()
}

async fn finalize(app: &TestApp, site: &str, deploy_id: &str) -> (u16, Value) {
    app.api_json(
        app.http
            .post(app.api(&format!("/sites/{site}/deploys/{deploy_id}/finalize")))
            .json(&json!({ "publish": true })),
    )
    .await
}

/// Deploys `files` honestly and publishes them; returns the finalize answer.
async fn deploy_files(app: &TestApp, site: &str, files: &[(&str, &[u8])]) -> (u16, Value) {
    let manifest: Vec<_> = files.iter().map(|(p, c)| manifest_file(p, c)).collect();
    let contents: Vec<&[u8]> = files.iter().map(|(_, c)| *c).collect();
    let id = start_deploy(app, site, json!({ "files": manifest }), &contents).await;
    finalize(app, site, &id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_rule_with_many_stars_is_answered_promptly_while_healthz_still_answers() {
    let (app, _) = spawn_controller_only().await;
    make_site(&app, "stars").await;
    // Matched by trying every way to split the path among the stars, this
    // rule took 1.8 s for a 24-character path; for the 2,001-character path
    // below it would take longer than the universe has existed, on every
    // async thread the requests land on.
    let headers = format!(
        "{}*b\n  X-Starry: yes\n/*\n  X-Everywhere: yes\n",
        "/*a".repeat(16)
    );
    let (status, body) = deploy_files(
        &app,
        "stars",
        &[
            ("index.html", b"<h1>stars</h1>"),
            ("_headers", headers.as_bytes()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let long_path = format!("/{}", "a/".repeat(1_000));
    let visits = (0..4).map(|_| app.visit("stars", &long_path));
    let healthz = async {
        let answer = app
            .http
            .get(format!("{}/healthz", app.base_url))
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    };
    let (pages, health) = tokio::join!(futures_util::future::join_all(visits), healthz);
    assert_eq!(health, (200, "ok\n".to_owned()));
    for page in pages {
        assert_eq!(page.status, 404);
        assert_eq!(page.header("x-everywhere"), "yes");
        assert_eq!(page.header("x-starry"), "", "the path does not end in b");
    }
    let page = app.visit("stars", &format!("{long_path}b")).await;
    assert_eq!(page.header("x-starry"), "yes");
}

#[tokio::test]
async fn too_many_or_too_long_rules_refuse_the_deploy_naming_the_file_line_and_limit() {
    let (app, _) = spawn_controller_only().await;
    make_site(&app, "rules").await;
    let many: String = (0..=1_000)
        .map(|i| format!("/page/{i}\n  X-Page: {i}\n"))
        .collect();
    let (status, body) = deploy_files(&app, "rules", &[("_headers", many.as_bytes())]).await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("_headers:2001"), "{error}");
    assert!(
        error.contains("1001 header rules, more than the limit of 1000"),
        "{error}"
    );

    let long = format!("/old /{} 301\n", "x".repeat(5_000));
    let (status, body) = deploy_files(&app, "rules", &[("_redirects", long.as_bytes())]).await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("_redirects:1"), "{error}");
    assert!(error.contains("more than the limit of 2048"), "{error}");

    let site = app.get_json("/sites/rules").await;
    assert_eq!(site["published_deploy_id"], Value::Null, "nothing went live");
}

#[tokio::test]
async fn a_redirect_placeholder_cannot_send_visitors_to_another_site() {
    let (app, _) = spawn_controller_only().await;
    make_site(&app, "hops").await;
    let redirects = "/go to=:to  /:to  302\n/jump/*  /:splat  301\n";
    let (status, body) = deploy_files(
        &app,
        "hops",
        &[("index.html", b"home"), ("_redirects", redirects.as_bytes())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (path, location) in [
        ("/go?to=//evil.com", "/%2F/evil.com"),
        ("/go?to=/evil.com", "/%2Fevil.com"),
        ("/go?to=%2F%2Fevil.com", "/%2F/evil.com"),
        ("/go?to=%5Cevil.com", "/%5Cevil.com"),
        ("/go?to=/%5Cevil.com", "/%2F%5Cevil.com"),
        ("/go?to=docs/intro", "/docs/intro"),
        ("/jump//evil.com", "/evil.com"),
    ] {
        let page = app.visit("hops", path).await;
        assert!(
            page.status == 301 || page.status == 302,
            "{path}: {}",
            page.status
        );
        assert_eq!(page.header("location"), location, "{path}");
    }
}

#[tokio::test]
async fn a_set_cookie_header_rule_refuses_the_deploy_from_headers_and_from_jamstack_toml() {
    let (app, _) = spawn_controller_only().await;
    make_site(&app, "cookies").await;
    let headers =
        "/*\n  X-Frame-Options: DENY\n/login\n  Set-Cookie: session=planted; Domain=localhost; Path=/\n";
    let (status, body) = deploy_files(
        &app,
        "cookies",
        &[("index.html", b"home"), ("_headers", headers.as_bytes())],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("_headers:3"), "{error}");
    assert!(error.contains("`Set-Cookie` cannot be set by a rule"), "{error}");

    // The same from jamstack.toml is refused with the manifest, before any
    // file travels.
    let (status, body) = app
        .api_json(app.http.post(app.api("/sites/cookies/deploys")).json(&json!({
            "files": [manifest_file("index.html", b"home")],
            "headers": [{
                "line": 7,
                "for": "/*",
                "values": { "Set-Cookie": "session=planted; Domain=localhost" }
            }]
        })))
        .await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("jamstack.toml:7"), "{error}");
    assert!(error.contains("`Set-Cookie` cannot be set by a rule"), "{error}");
    let site = app.get_json("/sites/cookies").await;
    assert_eq!(site["published_deploy_id"], Value::Null, "nothing went live");
}
