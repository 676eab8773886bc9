//! The dashboard in a real, headless Chromium: signing in, connecting a
//! site, watching a build's log live, rolling back, cancelling; and forms
//! without their CSRF token refused. Screenshots of the main pages land in
//! `target/dashboard-screenshots/`.

use crate::helpers::{COPY_SITE_TOML, SiteRepo, csrf_of, spawn_app};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A build that prints a coloured line, then a line every 0.3 s for about
/// six seconds, then publishes.
const SLOW_SITE_TOML: &str = r#"
[build]
command = '''
printf '\033[1;32mgreen and bold\033[0m then plain\n'
i=1
while [ $i -le 20 ]; do echo "tick $i"; i=$((i+1)); sleep 0.3; done
mkdir -p public && echo '<h1>live</h1>' > public/index.html
'''
publish = "public"
image = "jamstack/busybox:1"
"#;

#[tokio::test]
async fn an_admin_signs_in_connects_a_site_and_watches_a_pushed_build_live() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("jamstack.toml", SLOW_SITE_TOML)], "Slow build");
    let browser = app.open_browser().await;

    // Signed out, the dashboard sends people to the sign-in page.
    browser.visit("/sites").await;
    browser.wait_for_path("/login").await;
    browser.screenshot("login").await;
    browser.sign_in(&app.admin_token).await;
    browser
        .wait_for_text("main", "No site yet", Duration::from_secs(5))
        .await;

    // Connect a repository through the form.
    browser.click("a[href='/sites/new']").await;
    browser.wait_for_path("/sites/new").await;
    browser.fill("input[name=name]", "live").await;
    browser.fill("input[name=repo_url]", &repo.url()).await;
    browser.fill("input[name=github_repo]", "octo/live").await;
    browser.screenshot("connect-a-repository").await;
    browser.click("form[action='/sites'] button[type=submit]").await;
    browser.wait_for_path("/sites/live").await;
    let site: Value = app.get_json("/sites/live").await;
    assert_eq!(site["github_repo"], "octo/live");
    assert_eq!(site["production_branch"], "main");

    // A push builds it; its log shows up while the build still runs.
    let build = app.push("octo/live", &repo, &sha).await;
    browser.visit(&format!("/builds/{build}")).await;
    browser
        .wait_for_text("#log", "tick 3", Duration::from_secs(60))
        .await;
    assert_eq!(
        app.build(build).await["state"],
        "running",
        "the lines appeared while the build was still running"
    );
    browser.screenshot("build-running").await;

    // The connection comes back twice mid-build (as after a network change):
    // each time the page opens a new stream from the last event id.
    for wanted in ["tick 6", "tick 10"] {
        browser
            .client
            .execute("window.dispatchEvent(new Event('online'))", vec![])
            .await
            .unwrap();
        browser
            .wait_for_text("#log", wanted, Duration::from_secs(30))
            .await;
    }

    // The end arrives live too; every line is there once (no gap, no
    // repeat across the reconnections), numbered, with its colours.
    browser
        .wait_for_text("#build-state", "succeeded", Duration::from_secs(60))
        .await;
    let shown = browser.text("#log").await;
    for i in 1..=20 {
        assert_eq!(
            shown.matches(&format!("tick {i}\n")).count(),
            1,
            "tick {i} once:\n{shown}"
        );
    }
    let green = browser.text("#log .line .fg2.b").await;
    assert_eq!(green, "green and bold");
    let stored_lines = app.build_log(build).await.lines().count();
    let numbered = browser
        .client
        .find_all(fantoccini::Locator::Css("#log .line"))
        .await
        .unwrap();
    assert_eq!(
        numbered.len(),
        stored_lines,
        "one numbered line per line of the log"
    );
    assert_eq!(browser.text("#L2 .ln").await, "2");

    // Reloaded, the finished build shows its timings by step.
    browser.visit(&format!("/builds/{build}")).await;
    browser
        .wait_for_text(".timings", "fetch", Duration::from_secs(5))
        .await;
    browser
        .wait_for_text("#build-state", "succeeded", Duration::from_secs(30))
        .await;
    browser.screenshot("build").await;

    browser.visit("/sites").await;
    browser
        .wait_for_text("main", "succeeded", Duration::from_secs(5))
        .await;
    browser.screenshot("sites").await;
    browser.visit("/sites/live").await;
    browser
        .wait_for_text("table.deploys", "published", Duration::from_secs(5))
        .await;
    browser.screenshot("site").await;
    browser.visit("/queue").await;
    browser
        .wait_for_text("main", "embedded", Duration::from_secs(5))
        .await;
    browser.screenshot("queue").await;
    browser.close().await;
}

#[tokio::test]
async fn publishing_an_older_deploy_from_the_deploy_list_rolls_the_site_back() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    app.connect_site("roll", &repo, "octo/roll").await;
    let v1 = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", "version one"),
        ],
        "First version",
    );
    let first = app
        .wait_for_success(app.push("octo/roll", &repo, &v1).await)
        .await;
    let v2 = repo.commit(
        &[("src/index.html", "version two"), ("src/extra.css", "body{}")],
        "Second version",
    );
    app.wait_for_success(app.push("octo/roll", &repo, &v2).await)
        .await;
    assert_eq!(app.visit("roll", "/").await.body, "version two");

    let browser = app.open_browser().await;
    browser.sign_in(&app.admin_token).await;
    let older = first["deploy_id"].as_str().unwrap();

    // The older deploy's page shows what differs from the published one,
    // and what it would serve for a path.
    browser.visit(&format!("/sites/roll/deploys/{older}")).await;
    let changes = browser.text("table.changes").await;
    assert!(changes.contains("changed index.html 11 B → 11 B"), "{changes}");
    assert!(changes.contains("removed extra.css 6 B"), "{changes}");
    browser.fill("input[name=path]", "/").await;
    browser.click("form.inline-form button").await;
    let answer = browser
        .wait_for_text(".path-check", "200", Duration::from_secs(10))
        .await;
    assert!(answer.contains("serves index.html"), "{answer}");
    browser.screenshot("deploy-diff").await;
    browser.fill("input[name=path]", "/extra.css").await;
    browser.click("form.inline-form button").await;
    browser
        .wait_for_text(".path-check", "404", Duration::from_secs(10))
        .await;

    browser.visit("/sites/roll").await;
    browser
        .click(&format!("tr[data-deploy='{older}'] button.publish"))
        .await;
    browser
        .wait_for_text(".flash", "Published", Duration::from_secs(10))
        .await;
    assert_eq!(app.visit("roll", "/").await.body, "version one");
    let marked = browser.text(&format!("tr[data-deploy='{older}']")).await;
    assert!(marked.contains("published"), "{marked}");
    browser.screenshot("site-after-rollback").await;

    // Locking publishing from the page: the next production build deploys
    // but does not go live.
    browser.click("form[action='/sites/roll/lock'] button").await;
    browser
        .wait_for_text(".flash", "locked", Duration::from_secs(10))
        .await;
    let v3 = repo.commit(&[("src/index.html", "version three")], "Third version");
    app.wait_for_success(app.push("octo/roll", &repo, &v3).await)
        .await;
    assert_eq!(app.visit("roll", "/").await.body, "version one");
    browser.click("form[action='/sites/roll/unlock'] button").await;
    browser
        .wait_for_text(".flash", "unlocked", Duration::from_secs(10))
        .await;
    browser.close().await;
}

#[tokio::test]
async fn cancelling_a_running_build_from_its_page_stops_it_within_seconds() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let toml = "[build]\ncommand = \"echo started; sleep 120\"\npublish = \"public\"\nimage = \"jamstack/busybox:1\"\n";
    let sha = repo.commit(&[("jamstack.toml", toml)], "Endless build");
    app.connect_site("endless", &repo, "octo/endless").await;
    let build = app.push("octo/endless", &repo, &sha).await;

    let browser = app.open_browser().await;
    browser.sign_in(&app.admin_token).await;
    browser.visit(&format!("/builds/{build}")).await;
    browser
        .wait_for_text("#log", "started", Duration::from_secs(60))
        .await;
    let asked = Instant::now();
    browser.click("#cancel").await;
    let ended = app.wait_for_build(build).await;
    assert_eq!(ended["state"], "cancelled", "{ended}");
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "the build stopped {:?} after cancel",
        asked.elapsed()
    );
    browser
        .wait_for_text("#build-state", "cancelled", Duration::from_secs(20))
        .await;
    browser.close().await;
}

#[tokio::test]
async fn forms_posted_without_their_csrf_token_are_refused() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    app.connect_site("guarded", &repo, "octo/guarded").await;

    // Signing in needs the sign-in page's own token too.
    let (status, _) = {
        let response = app
            .http
            .post(format!("{}/login", app.base_url))
            .form(&[("token", app.admin_token.as_str())])
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), ())
    };
    assert_eq!(status, 403, "a sign-in without the form's token");

    let session = app.sign_in_over_http().await;
    let (status, body) = app.post_form(&session, "/sites/guarded/lock", &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF"), "the page says why: {body}");
    let (status, _) = app
        .post_form(&session, "/sites/guarded/lock", &[("csrf", &"0".repeat(64))])
        .await;
    assert_eq!(status, 403, "a wrong token");
    assert_eq!(app.get_json("/sites/guarded").await["publish_locked"], false);

    // With the token of the page, the same form works.
    let csrf = csrf_of(&app.dashboard_page(&session, "/sites/guarded").await);
    let (status, _) = app
        .post_form(&session, "/sites/guarded/lock", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303);
    assert_eq!(app.get_json("/sites/guarded").await["publish_locked"], true);

    // The session cookie reads the API (the live log needs that) but never
    // writes through it.
    let read = app
        .http
        .get(app.api("/sites/guarded"))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status().as_u16(), 200);
    let write = app
        .http
        .post(app.api("/sites/guarded/builds"))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(write.status().as_u16(), 401);

    // Signed out, the cookie opens nothing.
    let (status, _) = app.post_form(&session, "/logout", &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    let after = app
        .http
        .get(format!("{}/sites", app.base_url))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status().as_u16(), 303);
    assert_eq!(after.headers()["location"], "/login");
}

#[tokio::test]
async fn an_api_token_made_on_the_settings_page_opens_the_api_for_its_scopes_until_revoked() {
    let app = spawn_app().await;
    let session = app.sign_in_over_http().await;
    let csrf = csrf_of(&app.dashboard_page(&session, "/settings").await);
    let (status, page) = app
        .post_form(
            &session,
            "/settings/tokens",
            &[("csrf", &csrf), ("name", "ci"), ("scope_read", "on")],
        )
        .await;
    assert_eq!(status, 200);
    let start = page
        .find("<code id=\"new-token\">")
        .expect("the new token is shown once")
        + 21;
    let token = page[start..start + page[start..].find('<').unwrap()].to_owned();
    assert!(token.starts_with("jsapi_"), "{token}");
    let again = app.dashboard_page(&session, "/settings").await;
    assert!(!again.contains(&token), "the token is never shown again");
    assert!(
        again.contains("<td class=\"token-scopes\">read</td>"),
        "the page shows the token's scopes"
    );

    let sites = |token: String| {
        let app = &app;
        async move {
            app.http
                .get(app.api("/sites"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(sites(token.clone()).await, 200);
    let write = app
        .http
        .post(app.api("/sites"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "nope", "repo_url": "/tmp/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        write.status().as_u16(),
        403,
        "a read-only token cannot create sites"
    );
    let revoke = again
        .split("action=\"/settings/tokens/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("a revoke button")
        .to_owned();
    let (status, _) = app
        .post_form(
            &session,
            &format!("/settings/tokens/{revoke}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(sites(token).await, 401);
}
