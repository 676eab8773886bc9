//! The dashboard in a real, headless Chromium: signing in (token or
//! password), connecting a site, watching a build's log live, rolling back,
//! checking what a path serves, cancelling, site settings with write-only
//! secrets, clearing the cache; and forms without their CSRF token refused. Screenshots of the main pages land in
//! `target/dashboard-screenshots/`.

use crate::helpers::{COPY_SITE_TOML, SiteRepo, csrf_of, spawn_app, spawn_app_with, spawn_controller_only};
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
            (
                "src/_redirects",
                "# Moved in 2024\n/old-blog/*  /blog/:splat  301\n",
            ),
            ("src/_headers", "/*\n  X-Frame-Options: DENY\n"),
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
    let answer = browser
        .wait_for_text(".path-check", "/extra.css on", Duration::from_secs(10))
        .await;
    assert!(answer.contains("→ 404"), "{answer}");

    // A path a redirect rule catches: the check names the rule and where it
    // is written, and lists the headers the edge sends, header rules
    // included, exactly as the permalink serves them.
    browser.fill("input[name=path]", "/old-blog/hello?ref=feed").await;
    browser.click("form.inline-form button").await;
    let answer = browser
        .wait_for_text(
            ".path-check",
            "redirects to /blog/hello?ref=feed",
            Duration::from_secs(10),
        )
        .await;
    assert!(answer.contains("→ 301"), "{answer}");
    let rule = browser.text(".path-check .rule").await;
    assert!(rule.contains("/old-blog/* /blog/:splat 301"), "{rule}");
    assert!(rule.contains("_redirects:2"), "{rule}");
    assert!(
        browser
            .text(".path-check .header-rules")
            .await
            .contains("_headers:1")
    );
    let sent = browser.text("table.headers").await;
    assert!(sent.contains("location /blog/hello?ref=feed"), "{sent}");
    assert!(sent.contains("x-frame-options DENY"), "{sent}");
    browser.screenshot("deploy-path-check").await;
    let served = app
        .visit(&format!("{older}--roll"), "/old-blog/hello?ref=feed")
        .await;
    assert_eq!(served.status, 301);
    assert_eq!(served.header("location"), "/blog/hello?ref=feed");
    assert_eq!(served.header("x-frame-options"), "DENY");

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
async fn cancelling_a_running_build_from_its_page_stops_it() {
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
    browser.click("#cancel").await;
    // The build never ends by itself: its ending, cancelled, shows the
    // button stopped it.
    let ended = app.wait_for_build(build).await;
    assert_eq!(ended["state"], "cancelled", "{ended}");
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
async fn a_controller_refuses_to_start_with_a_password_hash_it_cannot_use() {
    let data = tempfile::tempdir().unwrap();
    let mut config = jamstack_controller::Config::new(data.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.dashboard_password_hash = Some("my-password".to_owned());
    let Err(error) = jamstack_controller::Application::build(config).await else {
        panic!("a password in place of its hash was taken");
    };
    let message = format!("{error:#}");
    assert!(message.contains("jamstack-controller hash-password"), "{message}");
}

#[tokio::test]
async fn wrong_sign_ins_are_answered_one_at_a_time_after_a_pause() {
    let app = spawn_app().await;
    let started = Instant::now();
    let guesses = ["guess-one", "guess-two", "guess-three"].map(|guess| app.try_sign_in_over_http(guess));
    for status in futures_util::future::join_all(guesses).await {
        assert_eq!(status, 401);
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "three wrong guesses sent at once were all answered within {took:?}"
    );
    // The right token is not held up by earlier failures.
    assert_eq!(app.try_sign_in_over_http(&app.admin_token).await, 303);
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

const PASSWORD: &str = "a long dashboard passphrase";

#[tokio::test]
async fn an_operator_signs_in_with_the_password_sets_a_secret_and_rebuilds_from_an_empty_cache() {
    let hash = jamstack_controller::auth::hash_password(PASSWORD).unwrap();
    let app = spawn_app_with(|config| config.dashboard_password_hash = Some(hash)).await;
    let repo = SiteRepo::new();
    let toml = r#"
[build]
command = 'mkdir -p public && echo "key is $API_KEY" | tee public/index.html'
publish = "public"
image = "jamstack/busybox:1"
"#;
    repo.commit(&[("jamstack.toml", toml)], "Print the key");
    app.connect_site("keyed", &repo, "octo/keyed").await;
    let browser = app.open_browser().await;

    // A wrong password is refused, and says so; the right one opens the
    // dashboard.
    browser.visit("/login").await;
    browser.fill("input[name=token]", "not the passphrase").await;
    browser.click("#admin-sign-in button[type=submit]").await;
    let refused = browser
        .wait_for_text(".flash.error", "neither the admin token", Duration::from_secs(10))
        .await;
    assert!(refused.contains("password"), "{refused}");
    assert_eq!(browser.path().await, "/login");
    browser.screenshot("login-refused").await;
    browser.sign_in(PASSWORD).await;

    // A variable with a bad name is refused on the page, saying why.
    browser.visit("/sites/keyed/settings").await;
    browser
        .fill("form[action='/sites/keyed/env'] input[name=name]", "2FAST")
        .await;
    browser
        .fill(
            "form[action='/sites/keyed/env'] input[name=value]",
            "typed-once-value",
        )
        .await;
    browser
        .click("form[action='/sites/keyed/env'] input[name=secret]")
        .await;
    browser.click("form[action='/sites/keyed/env'] button").await;
    browser
        .wait_for_text(
            "#env .flash.error",
            "not a valid variable name",
            Duration::from_secs(10),
        )
        .await;
    // A secret typed into a refused form is not sent back either.
    let source = browser.client.source().await.unwrap();
    assert!(
        !source.contains("typed-once-value"),
        "a refused secret is not echoed"
    );
    assert!(source.contains("value=\"2FAST\""), "the name typed is kept");
    // So are limits out of range.
    browser.fill("input[name=timeout_seconds]", "0").await;
    browser
        .click("form[action='/sites/keyed/settings/limits'] button")
        .await;
    browser
        .wait_for_text(
            "#limits .flash.error",
            "timeout_seconds is 0",
            Duration::from_secs(10),
        )
        .await;

    // A secret set through the form is listed by name only, never by value.
    let secret = "sk-live-0123456789";
    browser
        .fill("form[action='/sites/keyed/env'] input[name=name]", "API_KEY")
        .await;
    browser
        .fill("form[action='/sites/keyed/env'] input[name=value]", secret)
        .await;
    browser
        .click("form[action='/sites/keyed/env'] input[name=secret]")
        .await;
    browser.click("form[action='/sites/keyed/env'] button").await;
    browser
        .wait_for_text(".flash", "API_KEY set", Duration::from_secs(10))
        .await;
    let row = browser.text("tr[data-var='API_KEY']").await;
    assert!(row.contains("secret, set"), "{row}");
    let source = browser.client.source().await.unwrap();
    assert!(
        !source.contains(secret),
        "the page never carries the secret's value"
    );
    browser.fill("input[name=timeout_seconds]", "600").await;
    browser
        .click("form[action='/sites/keyed/settings/limits'] button")
        .await;
    browser
        .wait_for_text(".flash", "limits saved", Duration::from_secs(10))
        .await;
    browser.screenshot("site-settings").await;
    browser.visit("/sites/keyed/settings#env").await;
    browser.screenshot("site-settings-variables").await;
    let settings = app.get_json("/sites/keyed/build-settings").await;
    assert_eq!(settings["timeout_seconds"], 600, "{settings}");
    let generation = settings["cache"]["generation"].as_i64().unwrap();

    // "Clear cache and rebuild" moves the cache on and queues a production
    // build, which sees the secret (masked in its log).
    browser.visit("/sites/keyed").await;
    browser.screenshot("site-with-actions").await;
    browser
        .click("form[action='/sites/keyed/clear-cache-and-rebuild'] button")
        .await;
    let deadline = Instant::now() + crate::processes::PATIENCE;
    while !browser.path().await.starts_with("/builds/") {
        assert!(Instant::now() < deadline, "stayed on {}", browser.path().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let build: i64 = browser.path().await["/builds/".len()..].parse().unwrap();
    let settings = app.get_json("/sites/keyed/build-settings").await;
    assert_eq!(settings["cache"]["generation"].as_i64().unwrap(), generation + 1);
    let ended = app.wait_for_build(build).await;
    assert_eq!(ended["state"], "succeeded", "{ended}");
    assert_eq!(ended["context"], "production", "{ended}");
    let log = app.build_log(build).await;
    assert!(log.contains("key is ***"), "{log}");
    assert!(!log.contains(secret), "{log}");
    assert_eq!(app.visit("keyed", "/").await.body, format!("key is {secret}\n"));
    browser.close().await;
}

/// A site on a neighbouring domain could frame the dashboard and overlay
/// its forms (clickjacking), or a sniffed asset could run as script: every
/// dashboard page, redirect and asset forbids both.
#[tokio::test]
async fn a_dashboard_page_framed_by_another_site_is_refused_by_its_headers() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    app.connect_site("framed", &repo, "octo/framed").await;
    let sha = repo.commit(
        &[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "hello")],
        "First",
    );
    let build = app
        .wait_for_success(app.push("octo/framed", &repo, &sha).await)
        .await;
    let build_id = build["id"].as_i64().unwrap();
    let deploy = build["deploy_id"]
        .as_str()
        .expect("the build made a deploy")
        .to_owned();
    let session = app.sign_in_over_http().await;

    let pages = [
        "/".to_owned(),
        "/login".to_owned(),
        "/sites".to_owned(),
        "/sites/new".to_owned(),
        "/sites/framed".to_owned(),
        "/sites/framed/settings".to_owned(),
        format!("/sites/framed/deploys/{deploy}"),
        format!("/builds/{build_id}"),
        "/queue".to_owned(),
        "/settings".to_owned(),
        "/assets/dashboard.css".to_owned(),
        "/assets/build-log.js".to_owned(),
    ];
    for signed_in in [true, false] {
        for path in &pages {
            let mut request = app.http.get(format!("{}{path}", app.base_url));
            if signed_in {
                request = request.header("cookie", &session.cookie);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            assert!(status == 200 || status == 303, "GET {path}: {status}");
            let headers = response.headers();
            let named = |name: &str| {
                headers
                    .get(name)
                    .unwrap_or_else(|| panic!("GET {path} (signed in: {signed_in}) has no {name}"))
                    .to_str()
                    .unwrap()
                    .to_owned()
            };
            let csp = named("content-security-policy");
            for directive in [
                "default-src 'self'",
                "script-src 'self'",
                "style-src 'self'",
                "frame-ancestors 'none'",
            ] {
                assert!(csp.contains(directive), "GET {path}: {csp}");
            }
            assert!(!csp.contains("unsafe-inline"), "GET {path}: {csp}");
            assert_eq!(named("x-frame-options"), "DENY", "GET {path}");
            assert_eq!(named("x-content-type-options"), "nosniff", "GET {path}");
            assert_eq!(named("referrer-policy"), "same-origin", "GET {path}");
        }
    }
}

/// Guesses sent in parallel once had the right one answered at once, the
/// throttle only pausing failures after the check. Now every attempt waits
/// its turn before it is checked, and one client holds only a few
/// attempts at once.
#[tokio::test]
async fn a_right_token_sent_among_parallel_guesses_waits_its_turn_and_guesses_beyond_the_cap_get_429() {
    use jamstack_controller::dashboard::login::{FAILURE_PAUSE, MAX_SIGN_INS_IN_FLIGHT_PER_CLIENT};
    let (app, _runner) = crate::helpers::spawn_controller_only().await;
    let throttle = app.state.as_ref().unwrap().auth.sign_in.clone();
    let me: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let wrong_count = MAX_SIGN_INS_IN_FLIGHT_PER_CLIENT - 1;
    let guesses: Vec<String> = (0..wrong_count).map(|i| format!("wrong-guess-{i}")).collect();

    let wrong = futures_util::future::join_all(guesses.iter().map(|guess| app.sign_in_answer(guess)));
    let right_and_beyond = async {
        // Polled, not slept: once every wrong guess is held, the right one
        // goes, and once it is held too, the cap is reached.
        while throttle.in_flight(me) < wrong_count {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let observed = Instant::now();
        let right_answered = std::sync::atomic::AtomicBool::new(false);
        let right = async {
            let answer = app.sign_in_answer(&app.admin_token).await;
            right_answered.store(true, std::sync::atomic::Ordering::SeqCst);
            (answer, observed.elapsed())
        };
        let beyond = async {
            // (Should the right one be answered first, which is the attack,
            // the extra guesses go anyway and the checks below fail.)
            while throttle.in_flight(me) < MAX_SIGN_INS_IN_FLIGHT_PER_CLIENT
                && !right_answered.load(std::sync::atomic::Ordering::SeqCst)
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            futures_util::future::join_all((0..5).map(|_| app.sign_in_answer("yet-another-guess"))).await
        };
        tokio::join!(right, beyond)
    };
    let (wrong, (((right_status, _), right_took), beyond)) = tokio::join!(wrong, right_and_beyond);

    for (status, _) in &wrong {
        assert_eq!(*status, 401);
    }
    assert_eq!(right_status, 303, "the right token signs in");
    // At least two wrong guesses were wholly ahead of it, each holding the
    // turn for the pause.
    assert!(
        right_took >= FAILURE_PAUSE * 2,
        "the right token was answered {right_took:?} after it was sent behind {wrong_count} wrong guesses"
    );
    for (status, message) in &beyond {
        assert_eq!(*status, 429, "{message}");
        assert!(message.contains("already waiting their turn"), "{message}");
    }
    assert_eq!(throttle.in_flight(me), 0, "every attempt left the count");
}

#[tokio::test]
async fn a_site_made_without_a_repository_from_the_dashboard_gets_one_connected_in_its_settings() {
    let (app, _) = spawn_controller_only().await;
    let session = app.sign_in_over_http().await;

    // The new-site form with both repository fields left empty.
    let csrf = csrf_of(&app.dashboard_page(&session, "/sites/new").await);
    let (status, body) = app
        .post_form(
            &session,
            "/sites",
            &[
                ("csrf", &csrf),
                ("name", "docs"),
                ("repo_url", ""),
                ("github_repo", ""),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(app.get_json("/sites/docs").await["repo_url"], Value::Null);
    let site_page = app.dashboard_page(&session, "/sites/docs").await;
    assert!(site_page.contains("no repository: direct deploys"), "{site_page}");

    // Its settings offer to connect one; an empty URL is refused with why.
    let settings = app.dashboard_page(&session, "/sites/docs/settings").await;
    assert!(settings.contains("This site has no repository"), "{settings}");
    let csrf = csrf_of(&settings);
    let (status, body) = app
        .post_form(
            &session,
            "/sites/docs/settings/repository",
            &[("csrf", &csrf), ("repo_url", " ")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(body.contains("the repository URL is empty"), "{body}");
    let repo = SiteRepo::new();
    let (status, body) = app
        .post_form(
            &session,
            "/sites/docs/settings/repository",
            &[("csrf", &csrf), ("repo_url", &repo.url())],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(app.get_json("/sites/docs").await["repo_url"], repo.url().as_str());
    let settings = app.dashboard_page(&session, "/sites/docs/settings").await;
    assert!(!settings.contains("This site has no repository"), "{settings}");
}
