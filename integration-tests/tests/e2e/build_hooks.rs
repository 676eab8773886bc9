//! Build hooks as a headless CMS uses them: a plain URL it POSTs to when
//! content changes, with no other credential than the id in the URL.

use crate::helpers::{SiteRepo, TestApp, csrf_of, spawn_app, spawn_controller_only};
use serde_json::{Value, json};

/// A site whose build also writes what the build hook's caller said
/// (`INCOMING_HOOK_TITLE` and `INCOMING_HOOK_BODY`) to `/hook.txt`.
const HOOK_ECHOING_SITE_TOML: &str = r#"
[build]
command = "mkdir -p public && cp -R src/. public/ && printf '%s|%s' \"$INCOMING_HOOK_TITLE\" \"$INCOMING_HOOK_BODY\" > public/hook.txt"
publish = "public"
image = "jamstack/busybox:1"
"#;

/// Makes a build hook of `site` through the API; returns it with its URL.
async fn make_hook(app: &TestApp, site: &str, body: Value) -> Value {
    let (status, hook) = app
        .api_json(
            app.http
                .post(app.api(&format!("/sites/{site}/build-hooks")))
                .json(&body),
        )
        .await;
    assert_eq!(status, 201, "making a build hook: {hook}");
    hook
}

/// POSTs `body` to a hook's URL as a CMS would: no token.
async fn call(app: &TestApp, url: &str, body: &str) -> reqwest::Response {
    app.http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("calling the build hook")
}

/// The id in a hook's URL (its last path segment).
fn url_id(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

#[tokio::test]
async fn a_cms_posts_to_a_build_hook_and_the_site_builds_its_branch_head_and_goes_live_with_the_hooks_title()
{
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    repo.commit(
        &[
            ("jamstack.toml", HOOK_ECHOING_SITE_TOML),
            ("src/index.html", "old content"),
        ],
        "first",
    );
    app.connect_site("cms-site", &repo, "octo/cms-site").await;
    let hook = make_hook(
        &app,
        "cms-site",
        json!({ "name": "contentful", "trigger_title": "Content published" }),
    )
    .await;
    let url = hook["url"]
        .as_str()
        .expect("the URL is shown on creation")
        .to_owned();
    assert!(
        url.starts_with(&format!("{}/hooks/build/", app.base_url)),
        "{url}"
    );
    assert_eq!(hook["trigger_branch"], Value::Null, "the production branch");

    // The CMS published new content: the repository's head moved on.
    let head = repo.commit(&[("src/index.html", "new content")], "content");
    let payload = r#"{"sys": {"type": "Entry", "id": "5KsDBWseXY6QegucYAoacS"}}"#;
    let response = call(&app, &url, payload).await;
    assert_eq!(response.status().as_u16(), 201);
    let answer: Value = response.json().await.unwrap();
    let build = app.wait_for_success(answer["build_id"].as_i64().unwrap()).await;
    assert_eq!(build["trigger"], "build_hook");
    assert_eq!(build["trigger_title"], "Content published");
    assert_eq!(
        build["trigger_payload"], payload,
        "the body is kept with the build"
    );
    assert_eq!(build["context"], "production");
    assert_eq!(build["branch"], "main");
    assert_eq!(
        build["commit_sha"],
        head.as_str(),
        "the branch's head, resolved by the runner"
    );
    assert_eq!(app.visit("cms-site", "/").await.body, "new content");
    assert_eq!(
        app.visit("cms-site", "/hook.txt").await.body,
        format!("Content published|{payload}"),
        "the build saw the hook's title and body as Netlify gives them"
    );

    // The build page shows the reason.
    let session = app.sign_in_over_http().await;
    let page = app
        .dashboard_page(&session, &format!("/builds/{}", build["id"]))
        .await;
    assert!(
        page.contains("<span id=\"trigger-title\">Content published</span>"),
        "{page}"
    );

    let listed = app.get_json("/sites/cms-site/build-hooks").await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "contentful");
    assert_eq!(listed[0]["trigger_title"], "Content published");
    assert!(listed[0]["created_at"].is_i64());
    assert!(
        listed[0]["last_used_at"].is_i64(),
        "its use was noted: {}",
        listed[0]
    );
    assert!(listed[0].get("url").is_none(), "the URL is shown only once");

    // The id is never stored in clear: not in the database file, nor its
    // write-ahead log.
    let id = url_id(&url);
    for file in ["jamstack.db", "jamstack.db-wal"] {
        let Ok(bytes) = std::fs::read(app.data_dir.join(file)) else {
            continue;
        };
        assert!(
            !bytes.windows(id.len()).any(|w| w == id.as_bytes()),
            "{file} holds the hook's id in clear"
        );
    }
}

#[tokio::test]
async fn revoked_and_unknown_hooks_answer_the_same_bare_404_and_a_hook_called_too_often_429() {
    let (app, _runner_token) = spawn_controller_only().await;
    app.connect_site_with("quiet", json!({ "repo_url": "/nowhere/repo.git" }))
        .await;
    let hook = make_hook(
        &app,
        "quiet",
        json!({ "name": "cms", "trigger_branch": "staging" }),
    )
    .await;
    let url = hook["url"].as_str().unwrap().to_owned();

    // A burst of five, then the hook has to wait.
    for n in 0..5 {
        let response = call(&app, &url, "").await;
        assert_eq!(response.status().as_u16(), 201, "call {n}");
        let build = app
            .build(
                response.json::<Value>().await.unwrap()["build_id"]
                    .as_i64()
                    .unwrap(),
            )
            .await;
        assert_eq!(build["branch"], "staging");
        assert_eq!(build["context"], "branch-deploy");
        assert_eq!(
            build["trigger_title"], "build hook `cms`",
            "the name when it has no title"
        );
    }
    let refused = call(&app, &url, "").await;
    assert_eq!(refused.status().as_u16(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=10).contains(&wait), "{wait}");

    // Another hook of the same site has its own allowance.
    let other = make_hook(&app, "quiet", json!({ "name": "other" })).await;
    let other_url = other["url"].as_str().unwrap();
    assert_eq!(call(&app, other_url, "").await.status().as_u16(), 201);

    // Bodies are bounded.
    let huge = "x".repeat(9 * 1024);
    assert_eq!(call(&app, other_url, &huge).await.status().as_u16(), 413);

    // Revoked: gone, with the same answer as an id never made.
    let (status, _) = app
        .api_json(
            app.http
                .delete(app.api(&format!("/sites/quiet/build-hooks/{}", hook["id"]))),
        )
        .await;
    assert_eq!(status, 204);
    let revoked = call(&app, &url, "").await;
    assert_eq!(revoked.status().as_u16(), 404);
    let revoked = revoked.text().await.unwrap();
    let unknown = call(
        &app,
        &format!("{}/hooks/build/{}", app.base_url, "0".repeat(64)),
        "",
    )
    .await;
    assert_eq!(unknown.status().as_u16(), 404);
    let unknown = unknown.text().await.unwrap();
    assert_eq!(
        revoked, unknown,
        "nothing tells a revoked hook from one never made"
    );
    assert!(!unknown.contains("quiet"), "no site is named: {unknown}");

    let listed = app.get_json("/sites/quiet/build-hooks").await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["other"]);
    let (status, body) = app
        .api_json(
            app.http
                .delete(app.api(&format!("/sites/quiet/build-hooks/{}", hook["id"]))),
        )
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn a_build_hook_made_on_the_site_settings_page_shows_its_url_once_and_is_revoked_there() {
    let (app, _runner_token) = spawn_controller_only().await;
    app.connect_site_with("pages", json!({ "repo_url": "/nowhere/repo.git" }))
        .await;
    let session = app.sign_in_over_http().await;
    let csrf = csrf_of(&app.dashboard_page(&session, "/sites/pages/settings").await);

    let (status, page) = app
        .post_form(
            &session,
            "/sites/pages/build-hooks",
            &[
                ("csrf", &csrf),
                ("name", ""),
                ("trigger_branch", ""),
                ("trigger_title", ""),
            ],
        )
        .await;
    assert_eq!(status, 422, "a hook needs a name");
    assert!(page.contains("give the hook a name"), "{page}");

    let (status, page) = app
        .post_form(
            &session,
            "/sites/pages/build-hooks",
            &[
                ("csrf", &csrf),
                ("name", "sanity"),
                ("trigger_branch", ""),
                ("trigger_title", "Sanity publish"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let start = page
        .find("<code id=\"new-build-hook\">")
        .expect("the new hook's URL is shown once")
        + "<code id=\"new-build-hook\">".len();
    let url = page[start..start + page[start..].find('<').unwrap()].to_owned();
    assert!(url.contains("/hooks/build/"), "{url}");

    let again = app.dashboard_page(&session, "/sites/pages/settings").await;
    assert!(!again.contains(url_id(&url)), "the URL is never shown again");
    assert!(again.contains("Sanity publish"), "the hook is listed");
    assert_eq!(call(&app, &url, "").await.status().as_u16(), 201);

    let revoke = again
        .split("action=\"/sites/pages/build-hooks/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("a revoke button")
        .to_owned();
    let (status, _) = app
        .post_form(
            &session,
            &format!("/sites/pages/build-hooks/{revoke}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(call(&app, &url, "").await.status().as_u16(), 404);
    assert!(
        app.dashboard_page(&session, "/sites/pages/settings")
            .await
            .contains("No build hook yet"),
    );
}
