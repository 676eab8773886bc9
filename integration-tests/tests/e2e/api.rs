//! The REST API as scripts and the `jamstack` CLI use it: tokens with
//! scopes, pages, retry, direct deploys of a folder and deploy diffs.

use crate::helpers::{TestApp, manifest_file, spawn_controller_only};
use serde_json::{Value, json};

/// Makes an API token with `scopes` using the admin token.
async fn make_token(app: &TestApp, name: &str, scopes: &[&str]) -> (i64, String) {
    let (status, body) = app
        .api_json(
            app.http
                .post(app.api("/tokens"))
                .json(&json!({ "name": name, "scopes": scopes })),
        )
        .await;
    assert_eq!(status, 201, "making a token: {body}");
    assert_eq!(body["scopes"], json!(scopes), "{body}");
    (
        body["id"].as_i64().unwrap(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

/// Sends a request with `token` instead of the admin token.
async fn call_with(token: &str, request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.bearer_auth(token).send().await.expect("calling the API");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn make_site(app: &TestApp, name: &str) {
    app.connect_site_with(name, json!({ "repo_url": "/nowhere/repo.git" }))
        .await;
}

#[tokio::test]
async fn a_read_only_token_lists_but_is_refused_writes_naming_the_scope_and_stops_when_revoked() {
    let (app, _) = spawn_controller_only().await;
    make_site(&app, "blog").await;
    let (id, token) = make_token(&app, "dashboard-screen", &["read"]).await;

    let (status, sites) = call_with(&token, app.http.get(app.api("/sites"))).await;
    assert_eq!(status, 200, "{sites}");
    assert_eq!(sites[0]["name"], "blog");

    for (request, scope) in [
        (
            app.http.post(app.api("/sites/blog/builds")).json(&json!({})),
            "builds",
        ),
        (app.http.post(app.api("/sites/blog/lock")), "deploys"),
        (
            app.http
                .patch(app.api("/sites/blog"))
                .json(&json!({ "branch_deploys": true })),
            "sites",
        ),
        (app.http.get(app.api("/tokens")), "admin"),
    ] {
        let (status, body) = call_with(&token, request).await;
        assert_eq!(status, 403, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(&format!("`{scope}` scope")), "{error}");
    }
    let blog = app.get_json("/sites/blog").await;
    assert_eq!(blog["publish_locked"], false, "the refused lock changed nothing");

    let listed = app.get_json("/tokens").await;
    let listed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .expect("the token is listed")
        .clone();
    assert_eq!(listed["scopes"], json!(["read"]));
    assert!(listed["last_used_at"].is_i64(), "its use was noted: {listed}");
    assert!(
        listed.get("token").is_none(),
        "a listed token never shows the token"
    );

    let (status, _) = app
        .api_json(app.http.delete(app.api(&format!("/tokens/{id}"))))
        .await;
    assert_eq!(status, 204);
    let (status, body) = call_with(&token, app.http.get(app.api("/sites"))).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("revoked"), "{body}");
}

#[tokio::test]
async fn listing_sites_a_page_at_a_time_links_to_the_next_page_until_the_last() {
    let (app, _) = spawn_controller_only().await;
    for name in ["alpha", "bravo", "charlie"] {
        make_site(&app, name).await;
    }
    let first = app
        .http
        .get(app.api("/sites?per_page=2"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let link = first.headers()["link"].to_str().unwrap().to_owned();
    let names = |page: Value| -> Vec<String> {
        page.as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(first.json().await.unwrap()), ["alpha", "bravo"]);
    let next = link
        .strip_prefix('<')
        .and_then(|l| l.strip_suffix(">; rel=\"next\""))
        .unwrap_or_else(|| panic!("a GitHub-style next link: {link}"));
    assert!(next.ends_with("/api/v1/sites?page=2&per_page=2"), "{next}");

    let last = app
        .http
        .get(next)
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(last.status().as_u16(), 200);
    assert!(
        last.headers().get("link").is_none(),
        "the last page links nowhere"
    );
    assert_eq!(names(last.json().await.unwrap()), ["charlie"]);

    let (status, body) = app.api_json(app.http.get(app.api("/sites?per_page=500"))).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("per_page"), "{body}");
}

#[tokio::test]
async fn retrying_a_build_queues_a_new_build_of_the_same_commit_branch_and_context() {
    let (app, _) = spawn_controller_only().await;
    make_site(&app, "docs").await;
    let sha = "ab".repeat(20);
    let first = app.trigger_build_of("docs", Some("staging"), &sha).await;
    let (status, retry) = app
        .api_json(app.http.post(app.api(&format!("/builds/{first}/retry"))))
        .await;
    assert_eq!(status, 201, "{retry}");
    assert_ne!(retry["id"].as_i64().unwrap(), first);
    let original = app.build(first).await;
    for field in ["site_id", "commit_sha", "branch", "context"] {
        assert_eq!(retry[field], original[field], "{field}: {retry}");
    }
    assert_eq!(retry["commit_sha"], sha);
    assert_eq!(retry["context"], "branch-deploy");
    assert_eq!(retry["state"], "queued");
}

/// The steps `jamstack deploy <dir>` takes: manifest, upload what is
/// required, finalize. Returns the manifest's answer and the finalize answer.
async fn deploy_folder(app: &TestApp, site: &str, files: &[(&str, &[u8])], publish: bool) -> (Value, Value) {
    let manifest: Vec<_> = files
        .iter()
        .map(|(path, content)| manifest_file(path, content))
        .collect();
    let started = app
        .start_direct_deploy(site, json!({ "files": manifest, "title": "from my laptop" }))
        .await;
    let deploy_id = started["deploy_id"].as_str().unwrap().to_owned();
    for hash in started["required"].as_array().unwrap() {
        let hash = hash.as_str().unwrap();
        let (_, content) = files
            .iter()
            .zip(&manifest)
            .find(|(_, m)| m.sha256 == hash)
            .map(|(f, _)| *f)
            .expect("a required hash is one of the files");
        let (status, body) = app
            .api_json(
                app.http
                    .put(app.api(&format!("/blobs/{hash}")))
                    .body(content.to_vec()),
            )
            .await;
        assert_eq!(status, 201, "uploading {hash}: {body}");
    }
    let (status, done) = app
        .api_json(
            app.http
                .post(app.api(&format!("/sites/{site}/deploys/{deploy_id}/finalize")))
                .json(&json!({ "publish": publish })),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    (started, done)
}

#[tokio::test]
async fn small_files_go_up_many_to_a_request_and_a_bundle_with_one_wrong_blob_stores_none() {
    use jamstack_proto::blob_bundle;
    let (app, _) = spawn_controller_only().await;
    make_site(&app, "bundled").await;
    let files: Vec<(String, Vec<u8>)> = (0..300)
        .map(|n| (format!("page-{n}.html"), format!("<p>page {n}</p>").into_bytes()))
        .collect();
    let manifest: Vec<_> = files
        .iter()
        .map(|(path, content)| manifest_file(path, content))
        .collect();
    let started = app
        .start_direct_deploy("bundled", json!({ "files": manifest }))
        .await;
    let deploy_id = started["deploy_id"].as_str().unwrap().to_owned();
    assert_eq!(started["required"].as_array().unwrap().len(), 300, "{started}");
    let bundle = |corrupt: Option<usize>| {
        let mut body = Vec::new();
        for (n, ((_, content), file)) in files.iter().zip(&manifest).enumerate() {
            let mut content = content.clone();
            if corrupt == Some(n) {
                content[0] ^= 1;
            }
            blob_bundle::push_frame(&mut body, &file.sha256, &content);
        }
        body
    };
    let post = |body: Vec<u8>| {
        app.api_json(
            app.http
                .post(app.api("/blob-bundles"))
                .header("content-type", blob_bundle::CONTENT_TYPE)
                .body(body),
        )
    };

    // One blob that does not hash to its name: none of the 300 is kept.
    let (status, body) = post(bundle(Some(17))).await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(&manifest[17].sha256), "names the blob: {error}");
    assert!(error.contains("nothing of the bundle was stored"), "{error}");
    assert_eq!(app.stored_blob_files(), 0);

    // A bundle cut short says which blob and where.
    let mut cut = bundle(None);
    cut.truncate(cut.len() - 3);
    let (status, body) = post(cut).await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("blob 300 of the bundle (at byte "), "{error}");
    assert!(error.contains("were announced"), "{error}");
    assert_eq!(app.stored_blob_files(), 0);

    // Over the bound: refused before it is read.
    let (status, body) = post(vec![b'x'; blob_bundle::MAX_BUNDLE_BYTES + 1]).await;
    assert_eq!(status, 413, "{body}");

    let (status, body) = post(bundle(None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "stored": 300, "already_had": 0 }));
    assert_eq!(app.stored_blob_files(), 300);
    let (status, body) = post(bundle(None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "stored": 0, "already_had": 300 }));
    assert_eq!(app.stored_blob_files(), 300, "nothing stored twice");

    let (status, done) = app
        .api_json(
            app.http
                .post(app.api(&format!("/sites/bundled/deploys/{deploy_id}/finalize")))
                .json(&json!({ "publish": true })),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(app.visit("bundled", "/page-42.html").await.body, "<p>page 42</p>");
}

#[tokio::test]
async fn deploying_a_folder_twice_uploads_nothing_the_second_time_and_publishes_it() {
    let (app, _) = spawn_controller_only().await;
    make_site(&app, "folder").await;
    let files: &[(&str, &[u8])] = &[
        ("index.html", b"<h1>hello from a folder</h1>"),
        ("css/site.css", b"body { color: teal }"),
    ];

    let (first, done) = deploy_folder(&app, "folder", files, true).await;
    assert_eq!(first["required"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(done["published"], true, "{done}");
    assert_eq!(done["context"], "production");
    assert_eq!(done["title"], "from my laptop");
    assert!(
        done["url"].as_str().unwrap().starts_with("http://folder."),
        "{done}"
    );
    assert_eq!(
        app.visit("folder", "/").await.body,
        "<h1>hello from a folder</h1>"
    );

    let (second, done) = deploy_folder(&app, "folder", files, true).await;
    assert_eq!(
        second["required"],
        json!([]),
        "nothing is uploaded again: {second}"
    );
    assert_ne!(second["deploy_id"], first["deploy_id"]);
    assert_eq!(done["published"], true, "{done}");
    let site = app.get_json("/sites/folder").await;
    assert_eq!(site["published_deploy_id"], second["deploy_id"]);
    assert_eq!(
        app.visit("folder", "/css/site.css").await.body,
        "body { color: teal }"
    );

    // A blob that does not match its name is refused, and an upload of
    // content the controller has is answered 200.
    let hash = manifest_file("x", b"real").sha256;
    let (status, body) = app
        .api_json(app.http.put(app.api(&format!("/blobs/{hash}"))).body("forged"))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = app
        .api_json(app.http.put(app.api(&format!("/blobs/{hash}"))).body("real"))
        .await;
    assert_eq!(status, 201);
    let (status, _) = app
        .api_json(app.http.put(app.api(&format!("/blobs/{hash}"))).body("real"))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn finalizing_a_direct_deploy_before_its_upload_names_the_missing_blobs() {
    let (app, _) = spawn_controller_only().await;
    make_site(&app, "early").await;
    let file = manifest_file("index.html", b"never uploaded, early");
    let (status, started) = app
        .api_json(
            app.http
                .post(app.api("/sites/early/deploys"))
                .json(&json!({ "files": [file] })),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let id = started["deploy_id"].as_str().unwrap();
    let (status, body) = app
        .api_json(
            app.http
                .post(app.api(&format!("/sites/early/deploys/{id}/finalize")))
                .json(&json!({ "publish": true })),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["missing"], json!([file.sha256]));
    assert!(body["error"].as_str().unwrap().contains(&file.sha256), "{body}");
}

#[tokio::test]
async fn a_diff_lists_the_files_a_draft_adds_changes_and_removes_against_the_published_deploy() {
    let (app, _) = spawn_controller_only().await;
    make_site(&app, "diffs").await;
    let (live, _) = deploy_folder(
        &app,
        "diffs",
        &[
            ("index.html", b"same"),
            ("style.css", b"old style"),
            ("gone.js", b"going away"),
        ],
        true,
    )
    .await;
    let (draft, done) = deploy_folder(
        &app,
        "diffs",
        &[
            ("index.html", b"same"),
            ("style.css", b"a new, longer style"),
            ("new.png", b"png!"),
        ],
        false,
    )
    .await;
    assert_eq!(done["published"], false);
    assert_eq!(done["context"], "draft");
    assert_eq!(done["url"], Value::Null, "a draft is not at the site's address");
    let draft_id = draft["deploy_id"].as_str().unwrap();
    assert_eq!(app.visit("diffs", "/style.css").await.body, "old style");
    let permalink = format!("{draft_id}--diffs");
    assert_eq!(
        app.visit(&permalink, "/style.css").await.body,
        "a new, longer style"
    );

    let diff = app
        .get_json(&format!("/sites/diffs/deploys/{draft_id}/diff"))
        .await;
    assert_eq!(diff["deploy"], draft_id);
    assert_eq!(diff["against"], live["deploy_id"]);
    assert_eq!(diff["added"], json!([{ "path": "new.png", "size": 4 }]));
    assert_eq!(
        diff["changed"],
        json!([{ "path": "style.css", "size": 19, "previous_size": 9 }])
    );
    assert_eq!(diff["removed"], json!([{ "path": "gone.js", "size": 10 }]));

    let shown = app.get_json(&format!("/sites/diffs/deploys/{draft_id}")).await;
    assert_eq!(shown["id"], draft_id);
    assert_eq!(shown["published"], false);
    assert!(
        shown["permalink"].as_str().unwrap().contains(&permalink),
        "{shown}"
    );

    let back = app
        .get_json(&format!(
            "/sites/diffs/deploys/{}/diff?against={draft_id}",
            live["deploy_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(back["added"], json!([{ "path": "gone.js", "size": 10 }]));
    assert_eq!(back["removed"], json!([{ "path": "new.png", "size": 4 }]));
}

/// Every operation of the served OpenAPI document: method, path, and the
/// one scope it names under `security` (`None` for the document itself).
fn documented_operations(doc: &Value) -> Vec<(String, String, Option<String>)> {
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            let scope = operation.get("security").map(|security| {
                let scopes = security[0]["token"].as_array().expect("a `token` requirement");
                assert_eq!(scopes.len(), 1, "{method} {path} names one scope: {security}");
                scopes[0].as_str().unwrap().to_owned()
            });
            operations.push((method.clone(), path.clone(), scope));
        }
    }
    operations
}

/// A documented path with its parameters filled in with names of nothing.
fn concrete(path: &str) -> String {
    path.replace("{site}", "no-such-site")
        .replace("{deploy}", "no-such-deploy")
        .replace("{id}", "999999")
        .replace("{name}", "NO_SUCH_VAR")
        .replace("{alias}", "no-such-alias")
        .replace("{sha256}", &"0".repeat(64))
}

#[tokio::test]
async fn the_served_openapi_document_is_valid_and_every_operation_in_it_is_routed_and_checks_its_scope() {
    let (app, _) = spawn_controller_only().await;
    let answer = app.http.get(app.api("/openapi.json")).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200, "the document needs no token");
    let doc: Value = answer.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );

    // Valid by an independent validator, not only by our own reading.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&doc).unwrap()).unwrap();
    let validation = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             from openapi_spec_validator import validate\n\
             validate(json.load(open(sys.argv[1])))",
        ])
        .arg(file.path())
        .output()
        .expect("running python3");
    let stderr = String::from_utf8_lossy(&validation.stderr);
    assert!(
        !stderr.contains("No module named"),
        "the OpenAPI validator is missing: pip install openapi-spec-validator (scripts/test.sh does)"
    );
    assert!(
        validation.status.success(),
        "the document is not valid OpenAPI:\n{stderr}"
    );

    let operations = documented_operations(&doc);
    assert!(
        operations.len() >= 41,
        "only {} operations documented",
        operations.len()
    );
    for (method, path) in [
        ("post", "/api/v1/sites/{site}/deploys"),
        ("put", "/api/v1/blobs/{sha256}"),
        ("post", "/api/v1/builds/{id}/retry"),
        ("get", "/api/v1/sites/{site}/deploys/{deploy}/diff"),
        ("delete", "/api/v1/tokens/{id}"),
    ] {
        assert!(
            operations.iter().any(|(m, p, _)| m == method && p == path),
            "{method} {path} is documented"
        );
    }

    // One token per scope, holding every scope but that one.
    let all = ["read", "builds", "deploys", "sites", "admin"];
    let mut lacking = std::collections::HashMap::new();
    for missing in all {
        let others: Vec<&str> = all
            .iter()
            .copied()
            .filter(|s| *s != missing && (missing == "admin" || *s != "admin"))
            .collect();
        let (_, token) = make_token(&app, &format!("without-{missing}"), &others).await;
        lacking.insert(missing, token);
    }

    for (method, path, scope) in &operations {
        let url = format!("{}{}", app.base_url, concrete(path));
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        // The route exists: the admin token never meets the fallback or a
        // method the route does not have.
        let (status, body) = call_with(&app.admin_token, app.http.request(method.clone(), &url)).await;
        assert_ne!(status, 405, "{method} {path} is routed: {body}");
        assert!(
            !body.to_string().contains("no such route"),
            "{method} {path} is routed: {body}"
        );
        let Some(scope) = scope else { continue };
        // The handler checks the very scope the document names.
        let (status, body) =
            call_with(&lacking[scope.as_str()], app.http.request(method.clone(), &url)).await;
        assert_eq!(status, 403, "{method} {path} without `{scope}`: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains(&format!("`{scope}` scope")),
            "{method} {path}: {body}"
        );
    }
}
