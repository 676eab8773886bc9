//! People signing in to the dashboard with GitHub: through the stand-in
//! GitHub's approval page and code exchange, to a user of ours linked to
//! their GitHub account, members of the teams whose rules name their
//! organizations and teams; and the ways it is refused.

use crate::helpers::github_api::{GitHubAccount, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET};
use crate::helpers::{FakeGitHub, TestApp, spawn_controller_with_github_and};
use crate::processes::ControllerProcess;
use jamstack_controller::config::GitHubOAuth;
use serde_json::{Value, json};
use std::time::Duration;

const STATE_COOKIE: &str = "jamstack_github_sign_in";

/// A controller that offers "Sign in with GitHub" through the stand-in.
async fn controller_with_github_sign_in(github: &FakeGitHub) -> TestApp {
    let (app, _) = spawn_controller_with_github_and(github, |config| {
        config.github_web_url = github.url.clone();
        config.github_oauth = Some(GitHubOAuth {
            client_id: OAUTH_CLIENT_ID.to_owned(),
            client_secret: OAUTH_CLIENT_SECRET.to_owned().into(),
        });
    })
    .await;
    app
}

fn cookie_named(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .filter(|v| !v.ends_with('='))
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .unwrap_or_else(|| panic!("a redirect, not {}", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// "Sign in with GitHub" chosen on the dashboard: the state cookie it set
/// and GitHub's approval page it sends the browser to.
async fn choose_sign_in_with_github(app: &TestApp, github: &FakeGitHub) -> (String, String) {
    let start = app
        .http
        .get(format!("{}/login/github", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let cookie = cookie_named(&start, STATE_COOKIE).expect("the state cookie is set");
    let set_cookie = start.headers()[reqwest::header::SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/login/github"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let approval = location(&start);
    assert!(
        approval.starts_with(&format!("{}/login/oauth/authorize?", github.url)),
        "{approval}"
    );
    let query: std::collections::HashMap<String, String> = reqwest::Url::parse(&approval)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(query["client_id"], OAUTH_CLIENT_ID);
    assert_eq!(query["scope"], "read:org");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(
        query["redirect_uri"],
        format!("{}/login/github/callback", app.base_url)
    );
    assert!(!cookie.contains(&query["state"]), "the state is sealed");
    (cookie, approval)
}

/// The person signed in at GitHub approves (`approve`) or cancels
/// (`deny`) on the approval page; where GitHub sends the browser back.
async fn decide_at_github(app: &TestApp, approval: &str, decision: &str) -> String {
    let page = app.http.get(approval).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Authorize"));
    let back = app
        .http
        .post(approval)
        .form(&[("decision", decision)])
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 302);
    location(&back)
}

/// What the dashboard answered GitHub's redirect back with.
struct Answer {
    status: u16,
    location: Option<String>,
    session: Option<String>,
    page: String,
}

async fn come_back(app: &TestApp, callback: &str, state_cookie: Option<&str>) -> Answer {
    let mut request = app.http.get(callback);
    if let Some(cookie) = state_cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        location: response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned()),
        session: cookie_named(&response, "jamstack_session"),
        page: response.text().await.unwrap(),
    }
}

/// The whole flow, approved: the session cookie it opened.
async fn sign_in_with_github(app: &TestApp, github: &FakeGitHub) -> String {
    let (cookie, approval) = choose_sign_in_with_github(app, github).await;
    let callback = decide_at_github(app, &approval, "approve").await;
    let answer = come_back(app, &callback, Some(&cookie)).await;
    assert_eq!(answer.status, 303, "{}", answer.page);
    assert_eq!(answer.location.as_deref(), Some("/sites"));
    answer.session.expect("signing in opens a session")
}

async fn dashboard(app: &TestApp, session: &str, path: &str) -> (u16, String) {
    let response = app
        .http
        .get(format!("{}{path}", app.base_url))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn db(app: &TestApp) -> &jamstack_controller::db::Database {
    &app.state
        .as_ref()
        .expect("the controller runs in this process")
        .db
}

async fn api(app: &TestApp, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = app.http.request(method.clone(), app.api(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let (status, answer) = app.api_json(request).await;
    assert!((200..300).contains(&status), "{method} {path}: {status} {answer}");
    answer
}

/// The sign-ins (or failed ones, `action`) through GitHub the audit log holds.
async fn github_sign_ins(app: &TestApp, action: &str) -> Vec<Value> {
    let entries = api(
        app,
        reqwest::Method::GET,
        &format!("/audit?action={action}"),
        None,
    )
    .await;
    entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == "/login/github")
        .cloned()
        .collect()
}

#[tokio::test]
async fn signing_in_with_github_makes_a_user_named_after_the_login_who_stays_the_same_after_a_rename() {
    let github = FakeGitHub::start().await;
    let app = controller_with_github_sign_in(&github).await;
    github.set_account(GitHubAccount::new(583231, "octocat"));
    github.sign_in_at_github(583231);

    let (status, login_page) = dashboard(&app, "", "/login").await;
    assert_eq!(status, 200);
    assert!(login_page.contains("Sign in with GitHub"), "{login_page}");

    let session = sign_in_with_github(&app, &github).await;
    let (status, sites) = dashboard(&app, &session, "/sites").await;
    assert_eq!(status, 200, "{sites}");
    let user = db(&app)
        .user_by_login("octocat")
        .await
        .unwrap()
        .expect("a user named after the GitHub login");
    assert_eq!(
        db(&app).user_of_identity("github", "583231").await.unwrap(),
        Some(user.id)
    );
    assert!(user.password_hash.is_none(), "no password is made up");
    let linked = db(&app).identities_of_user(user.id).await.unwrap();
    assert_eq!(linked[0].email, None, "read:org alone shows no e-mail");

    // Renamed at GitHub, with an e-mail the token may now read: the same
    // GitHub account is the same user, and what GitHub says is refreshed.
    let mut renamed = GitHubAccount::new(583231, "octo-renamed");
    renamed.email = Some("Octo@Example.com".into());
    github.set_account(renamed);
    github.let_tokens_read_emails();
    sign_in_with_github(&app, &github).await;
    assert_eq!(
        db(&app).user_of_identity("github", "583231").await.unwrap(),
        Some(user.id)
    );
    assert!(db(&app).user_by_login("octo-renamed").await.unwrap().is_none());
    let linked = db(&app).identities_of_user(user.id).await.unwrap();
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0].login.as_deref(), Some("octo-renamed"));
    assert_eq!(linked[0].email.as_deref(), Some("octo@example.com"));

    // Someone called `hubot` here already: a GitHub account of that login
    // gets a user of its own, never theirs.
    let (status, body) = app
        .api_json(
            app.http
                .post(app.api("/users"))
                .json(&json!({"login": "hubot", "password": "a password of hubot's own"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    github.set_account(GitHubAccount::new(777, "hubot"));
    github.sign_in_at_github(777);
    sign_in_with_github(&app, &github).await;
    let newcomer = db(&app).user_of_identity("github", "777").await.unwrap().unwrap();
    let local = db(&app).user_by_login("hubot").await.unwrap().unwrap();
    assert_ne!(newcomer, local.id);
    assert_eq!(
        db(&app).user_by_id(newcomer).await.unwrap().unwrap().login,
        "hubot-2"
    );

    let signed_in = github_sign_ins(&app, "sign_in").await;
    assert_eq!(signed_in.len(), 3, "{signed_in:?}");
    assert_eq!(signed_in.last().unwrap()["actor"], format!("user:{}", user.id));
}

#[tokio::test]
async fn organization_and_team_rules_make_a_github_person_a_member_until_they_leave_the_organization() {
    let github = FakeGitHub::start().await;
    let app = controller_with_github_sign_in(&github).await;
    use reqwest::Method;
    api(&app, Method::POST, "/users", Some(json!({"login": "olga"}))).await;
    api(
        &app,
        Method::POST,
        "/teams",
        Some(json!({"name": "web", "owner": "olga"})),
    )
    .await;
    let olga = api(
        &app,
        Method::POST,
        "/teams/web/tokens",
        Some(json!({"name": "olga-laptop", "scopes": ["read", "sites", "admin"], "login": "olga"})),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.connect_site_with("blog", json!({})).await;
    let made = app
        .http
        .post(app.api("/sites"))
        .bearer_auth(&olga)
        .json(&json!({"name": "shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    // The owner of `web` lets acme's people in as viewers, and its web
    // team as developers.
    let settings = app
        .http
        .put(app.api("/teams/web/settings"))
        .bearer_auth(&olga)
        .json(&json!({
            "max_concurrent_builds": 0,
            "auto_memberships": [
                {"source": "github-org:acme", "role": "viewer"},
                {"source": "github-team:acme/web", "role": "developer"},
            ],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(settings.status(), 200, "{}", settings.text().await.unwrap());

    let mut mona = GitHubAccount::new(9001, "mona");
    mona.organizations = vec!["acme".into(), "elsewhere".into()];
    mona.teams = vec![("acme".into(), "web".into())];
    github.set_account(mona.clone());
    github.sign_in_at_github(9001);
    let session = sign_in_with_github(&app, &github).await;

    // Both rules match: the stronger role wins.
    let members = api(&app, Method::GET, "/teams/web/members", None).await;
    assert!(
        members
            .as_array()
            .unwrap()
            .contains(&json!({"login": "mona", "role": "developer"})),
        "{members}"
    );
    let (status, sites) = dashboard(&app, &session, "/sites").await;
    assert_eq!(status, 200);
    assert!(sites.contains("/sites/shop"), "{sites}");
    assert!(!sites.contains("/sites/blog"), "another team's site: {sites}");
    let (status, _) = dashboard(&app, &session, "/sites/shop").await;
    assert_eq!(status, 200);

    // Out of the web team but still in acme: a viewer.
    mona.teams.clear();
    github.set_account(mona.clone());
    let session = sign_in_with_github(&app, &github).await;
    let members = api(&app, Method::GET, "/teams/web/members", None).await;
    assert!(
        members
            .as_array()
            .unwrap()
            .contains(&json!({"login": "mona", "role": "viewer"})),
        "{members}"
    );
    let (_, sites) = dashboard(&app, &session, "/sites").await;
    assert!(sites.contains("/sites/shop"), "{sites}");

    // Out of acme: the next sign-in ends the membership.
    mona.organizations = vec!["elsewhere".into()];
    github.set_account(mona);
    let session = sign_in_with_github(&app, &github).await;
    let members = api(&app, Method::GET, "/teams/web/members", None).await;
    assert!(
        !members.to_string().contains("mona"),
        "mona is still a member: {members}"
    );
    let (_, sites) = dashboard(&app, &session, "/sites").await;
    assert!(!sites.contains("/sites/shop"), "{sites}");
    let (status, _) = dashboard(&app, &session, "/sites/shop").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn declined_consent_a_tampered_state_and_github_down_are_refused_with_a_clear_page_and_audited() {
    let github = FakeGitHub::start().await;
    let app = controller_with_github_sign_in(&github).await;
    github.set_account(GitHubAccount::new(4711, "mallory-target"));
    github.sign_in_at_github(4711);

    // The person cancels at GitHub.
    let (cookie, approval) = choose_sign_in_with_github(&app, &github).await;
    let callback = decide_at_github(&app, &approval, "deny").await;
    assert!(callback.contains("error=access_denied"), "{callback}");
    let answer = come_back(&app, &callback, Some(&cookie)).await;
    assert_eq!(answer.status, 401, "{}", answer.page);
    assert!(answer.session.is_none());
    assert!(
        answer
            .page
            .contains("You did not let this dashboard see your GitHub account"),
        "{}",
        answer.page
    );
    assert!(answer.page.contains("Sign in with GitHub"), "{}", answer.page);

    // A callback whose state was changed on the way, one with no state
    // cookie (another browser's code: login CSRF), and one whose cookie
    // was forged: refused before the code is ever sent to GitHub.
    let (cookie, approval) = choose_sign_in_with_github(&app, &github).await;
    let callback = decide_at_github(&app, &approval, "approve").await;
    let mut tampered = reqwest::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = tampered
        .query_pairs()
        .into_owned()
        .map(|(name, value)| {
            let value = if name == "state" { "f".repeat(64) } else { value };
            (name, value)
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    let forged_cookie = format!("{STATE_COOKIE}=v1:{}", "ab".repeat(80));
    for (callback, cookie) in [
        (tampered.as_str(), Some(cookie.as_str())),
        (callback.as_str(), None),
        (callback.as_str(), Some(forged_cookie.as_str())),
    ] {
        let answer = come_back(&app, callback, cookie).await;
        assert_eq!(answer.status, 401, "{}", answer.page);
        assert!(answer.session.is_none());
        assert!(
            answer
                .page
                .contains("was not started from this dashboard in this browser"),
            "{}",
            answer.page
        );
    }
    assert!(
        github.requests_to("POST", "/login/oauth/access_token").is_empty(),
        "a refused callback's code was sent to GitHub"
    );

    // GitHub answers the exchange but is down for the rest.
    github.fail_next("user", 100);
    let (cookie, approval) = choose_sign_in_with_github(&app, &github).await;
    let callback = decide_at_github(&app, &approval, "approve").await;
    let answer = come_back(&app, &callback, Some(&cookie)).await;
    assert_eq!(answer.status, 401, "{}", answer.page);
    assert!(answer.session.is_none());
    assert!(
        answer.page.contains("GitHub could not be asked who you are"),
        "{}",
        answer.page
    );
    github.fail_next("user", 0);

    let failed = github_sign_ins(&app, "sign_in_failed").await;
    assert_eq!(failed.len(), 5, "{failed:?}");
    assert!(failed.iter().all(|e| e["actor"] == "github"), "{failed:?}");
    assert!(
        failed[0]["ip"].as_str().unwrap().starts_with("127."),
        "{failed:?}"
    );
    assert!(github_sign_ins(&app, "sign_in").await.is_empty());
    assert!(db(&app).user_by_login("mallory-target").await.unwrap().is_none());
}

#[tokio::test]
async fn the_token_github_gives_is_in_none_of_the_controllers_logs() {
    let github = FakeGitHub::start().await;
    github.set_account(GitHubAccount::new(31337, "loggy"));
    github.sign_in_at_github(31337);
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("github-oauth-client-secret");
    std::fs::write(&secret_file, format!("{OAUTH_CLIENT_SECRET}\n")).unwrap();
    let controller = ControllerProcess::start_with(
        dir.path(),
        &[
            "--github-api-url",
            &github.url,
            "--github-web-url",
            &github.url,
            "--github-oauth-client-id",
            OAUTH_CLIENT_ID,
            "--github-oauth-client-secret-file",
            secret_file.to_str().unwrap(),
        ],
    );
    let app = TestApp::of(&controller.url(), "");
    let session = sign_in_with_github(&app, &github).await;
    let (status, _) = dashboard(&app, &session, "/sites").await;
    assert_eq!(status, 200);

    let tokens = github.user_tokens();
    assert_eq!(tokens.len(), 1);
    let exchanged = github.requests_to("POST", "/login/oauth/access_token");
    let code = exchanged[0].body["code"].as_str().unwrap().to_owned();
    let logs = crate::processes::eventually("the sign-in in the controller's log", || {
        let printed = controller.process.printed();
        if printed.contains("dashboard sign-in") {
            Ok(printed)
        } else {
            Err(printed)
        }
    });
    assert!(logs.contains("loggy"), "{logs}");
    for secret in [tokens[0].as_str(), OAUTH_CLIENT_SECRET, code.as_str()] {
        assert!(!logs.contains(secret), "`{secret}` is in the log:\n{logs}");
    }
    // The calls GitHub received carried the token, so it was the one used.
    assert!(
        github
            .requests_to("GET", "/user")
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {}", tokens[0]))),
    );
}

#[tokio::test]
async fn a_person_clicks_sign_in_with_github_approves_at_github_and_sees_their_teams_sites() {
    let github = FakeGitHub::start().await;
    let app = controller_with_github_sign_in(&github).await;
    app.connect_site_with("blog", json!({})).await;
    api(
        &app,
        reqwest::Method::PUT,
        "/teams/default/settings",
        Some(json!({
            "max_concurrent_builds": 0,
            "auto_memberships": [{"source": "github-org:acme", "role": "viewer"}],
        })),
    )
    .await;
    let mut ada = GitHubAccount::new(1815, "ada");
    ada.organizations = vec!["acme".into()];
    github.set_account(ada);
    github.sign_in_at_github(1815);

    let browser = app.open_browser().await;
    browser.visit("/sites").await;
    browser.wait_for_path("/login").await;
    browser.click("#github-sign-in").await;
    browser.wait_for_path("/login/oauth/authorize").await;
    assert_eq!(browser.text("#login").await, "ada");
    browser.screenshot("github-approval").await;
    browser.click("#approve").await;
    browser.wait_for_path("/sites").await;
    browser
        .wait_for_text("main", "blog", Duration::from_secs(10))
        .await;
    browser.screenshot("signed-in-with-github").await;
    browser.close().await;
}
