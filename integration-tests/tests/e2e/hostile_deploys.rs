//! Deploys written by an attacker (any site's author; a fork's pull request
//! is one): their rules, manifests and file names can take nothing that is
//! not their own. Deploys go in through the real API and runner protocol;
//! answers come over real HTTP, some read byte by byte off the socket.

use crate::helpers::{HandRunner, SiteRepo, TestApp, manifest_file, spawn_controller_only};
use jamstack_proto::JobLease;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// A build of a new site `name`, queued and leased by a runner driven by
/// hand: what a build's upload goes through.
async fn build_leased_by_hand(app: &TestApp, token: &str, name: &str) -> (HandRunner, JobLease) {
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("README", "a build")], "a build");
    app.connect_site(name, &repo, &format!("octo/{name}")).await;
    let runner = HandRunner::connect(app, token).await;
    app.trigger_build(name, &sha).await;
    let lease = runner.lease().await;
    (runner, lease)
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
async fn a_manifest_declaring_a_false_size_is_refused_at_finalize_through_the_api_and_the_runner_protocol() {
    let (app, token) = spawn_controller_only().await;
    make_site(&app, "sizes").await;
    let tiny: &[u8] = b"tiny!\n";
    let mut lie = manifest_file("big.bin", tiny);
    lie.size = 100_000;
    let id = start_deploy(&app, "sizes", json!({ "files": [lie] }), &[tiny]).await;
    let (status, body) = finalize(&app, "sizes", &id).await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("`big.bin` is declared as 100000 bytes but its content is 6 bytes"),
        "{error}"
    );

    // A build's deploy, through the runner protocol: the blob is stored
    // already, so nothing is uploaded, and finalize still refuses.
    let (runner, lease) = build_leased_by_hand(&app, &token, "built").await;
    let answer = runner
        .client
        .send_manifest(&lease, vec![lie.clone()])
        .await
        .expect("the manifest itself is well-formed");
    assert!(answer.missing.is_empty(), "{:?}", answer.missing);
    let refused = runner.client.finalize(&lease).await.expect_err("a false size");
    assert!(
        refused
            .to_string()
            .contains("declared as 100000 bytes but its content is 6 bytes"),
        "{refused}"
    );
}

/// One HTTP/1.1 answer read off a socket: status line, headers, body.
#[derive(Debug)]
struct RawAnswer {
    head: String,
    content_length: usize,
    body: Vec<u8>,
}

/// A request to send raw: method, path, headers.
type RawRequest<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// Sends `requests` on one kept-alive connection, then reads the answers
/// in order, each taking exactly its `Content-Length` bytes of body: a
/// length that was false would shift every answer after it.
async fn on_one_connection(app: &TestApp, label: &str, requests: &[RawRequest<'_>]) -> Vec<RawAnswer> {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let mut written = String::new();
    for (index, (method, path, headers)) in requests.iter().enumerate() {
        written.push_str(&format!(
            "{method} {path} HTTP/1.1\r\nHost: {label}.localhost:{}\r\n",
            app.port
        ));
        for (name, value) in *headers {
            written.push_str(&format!("{name}: {value}\r\n"));
        }
        if index + 1 == requests.len() {
            written.push_str("Connection: close\r\n");
        }
        written.push_str("\r\n");
    }
    socket.write_all(written.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    socket.read_to_end(&mut received).await.unwrap();

    let mut answers = Vec::new();
    let mut rest = &received[..];
    for (method, path, _) in requests {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
            panic!(
                "no answer head for {method} {path}: {:?}",
                String::from_utf8_lossy(rest)
            )
        });
        let head = String::from_utf8(rest[..end].to_vec()).unwrap();
        assert!(head.starts_with("HTTP/1.1 "), "{method} {path}: {head}");
        let content_length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_owned())
            })
            .map_or(0, |v| v.parse().unwrap());
        rest = &rest[end + 4..];
        let body_length = if *method == "HEAD" { 0 } else { content_length };
        assert!(
            rest.len() >= body_length,
            "{method} {path} announced {content_length} bytes, {} arrived:\n{head}",
            rest.len()
        );
        answers.push(RawAnswer {
            head,
            content_length,
            body: rest[..body_length].to_vec(),
        });
        rest = &rest[body_length..];
    }
    assert!(
        rest.is_empty(),
        "bytes beyond the last answer: {:?}",
        String::from_utf8_lossy(rest)
    );
    answers
}

#[tokio::test]
async fn the_edge_never_sends_a_content_length_other_than_the_bytes_it_sends() {
    let (app, _) = spawn_controller_only().await;
    make_site(&app, "lengths").await;
    let tiny: &[u8] = b"tiny!\n";
    let (status, body) = deploy_files(
        &app,
        "lengths",
        &[("tiny.txt", tiny), ("index.html", b"<p>home</p>")],
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The same content declared 100,000 bytes long: stored already, so
    // nothing is uploaded; going live would make the edge announce 100,000
    // bytes and send 6, and the rest of the connection's answers would be
    // read as the missing bytes.
    let mut lie = manifest_file("tiny.txt", tiny);
    lie.size = 100_000;
    let id = start_deploy(
        &app,
        "lengths",
        json!({ "files": [lie, manifest_file("index.html", b"<p>home</p>")] }),
        &[],
    )
    .await;
    let (status, body) = finalize(&app, "lengths", &id).await;
    assert_eq!(status, 400, "{body}");

    let answers = on_one_connection(
        &app,
        "lengths",
        &[
            ("GET", "/tiny.txt", &[]),
            // Again: now from the bytes held beside the index.
            ("GET", "/tiny.txt", &[]),
            ("GET", "/tiny.txt", &[("Range", "bytes=2-")]),
            ("HEAD", "/tiny.txt", &[]),
            ("GET", "/", &[]),
            ("GET", "/missing", &[]),
        ],
    )
    .await;
    for answer in &answers[..2] {
        assert!(answer.head.starts_with("HTTP/1.1 200"), "{}", answer.head);
        assert_eq!(answer.content_length, tiny.len());
        assert_eq!(answer.body, tiny);
    }
    assert!(answers[2].head.starts_with("HTTP/1.1 206"), "{}", answers[2].head);
    assert_eq!(answers[2].body, &tiny[2..]);
    assert_eq!(answers[2].content_length, tiny.len() - 2);
    assert_eq!(answers[3].content_length, tiny.len(), "{}", answers[3].head);
    assert_eq!(answers[4].body, b"<p>home</p>");
    assert!(answers[5].head.starts_with("HTTP/1.1 404"), "{}", answers[5].head);
    assert_eq!(answers[5].content_length, answers[5].body.len());
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

#[tokio::test]
async fn a_changed_image_with_a_word_and_digits_in_its_name_is_revalidated_not_cached_for_a_year() {
    let (app, _) = spawn_controller_only().await;
    make_site(&app, "images").await;
    let (status, body) = deploy_files(
        &app,
        "images",
        &[
            ("assets/hero-Banner01.webp", b"version one"),
            ("assets/index-BxE3k9aQ.js", b"console.log(1)"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let image = app.visit("images", "/assets/hero-Banner01.webp").await;
    assert_eq!(
        image.header("cache-control"),
        "public, max-age=0, must-revalidate"
    );
    let script = app.visit("images", "/assets/index-BxE3k9aQ.js").await;
    assert_eq!(
        script.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
}

#[tokio::test]
async fn a_manifest_of_changes_cannot_take_files_from_another_sites_deploy_or_remove_outside_its_base() {
    let (app, token) = spawn_controller_only().await;
    make_site(&app, "victim").await;
    make_site(&app, "taker").await;
    let (status, body) = deploy_files(&app, "victim", &[("secret.html", b"the victim's")]).await;
    assert_eq!(status, 200, "{body}");
    let victims = app.deploys_of("victim").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = deploy_files(&app, "taker", &[("index.html", b"mine")]).await;
    assert_eq!(status, 200, "{body}");
    let own = app.deploys_of("taker").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let changes = |base: &str, files: Value, removed: Value| {
        let body = json!({ "files": files, "base": { "deploy_id": base, "removed": removed } });
        app.api_json(app.http.post(app.api("/sites/taker/deploys")).json(&body))
    };

    // Another site's deploy as a base; its own, removing paths it does not
    // have or may not name, or leaving no file: refused, nothing recorded.
    let sent = json!([manifest_file("index.html", b"again")]);
    let cases = [
        (
            &victims,
            json!([]),
            json!([]),
            412,
            "is not a deploy of this site",
        ),
        (&victims, json!([]), json!([]), 412, "send every file instead"),
        (
            &own,
            json!([]),
            json!(["secret.html"]),
            412,
            "removes `secret.html`",
        ),
        (
            &own,
            json!([]),
            json!(["../victim/secret.html"]),
            400,
            "paths must be relative",
        ),
        (&own, sent, json!(["index.html"]), 400, "both sent and removed"),
        (&own, json!([]), json!(["index.html"]), 400, "without files"),
    ];
    for (base, files, removed, status, says) in cases {
        let (answered, body) = changes(base, files, removed.clone()).await;
        assert_eq!(answered, status, "removing {removed}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(says), "removing {removed}: {error}");
    }
    assert_eq!(app.deploys_of("taker").await.len(), 1, "nothing recorded");

    // Through the runner protocol, a build of the site cannot either.
    let (runner, lease) = build_leased_by_hand(&app, &token, "built").await;
    let manifest = jamstack_proto::DeployManifest {
        base: Some(jamstack_proto::ManifestBase {
            deploy_id: victims.clone(),
            removed: Vec::new(),
        }),
        ..Default::default()
    };
    let refused = runner
        .client
        .send_deploy_manifest(&lease, &manifest)
        .await
        .expect_err("another site's deploy");
    assert!(
        matches!(refused, jamstack_runner::client::ClientError::Refused { status, .. } if status == 412),
        "{refused}"
    );
    assert!(app.deploys_of("built").await.is_empty());
    assert_eq!(app.visit("taker", "/secret.html").await.status, 404);
}
