//! Protected sites: the production hostname, a deploy preview, a branch
//! deploy and a permalink, each public until the site asks for its
//! password; signing in on the hostname's own page, with a plain HTTP
//! client and in Chromium; a new password signing everyone out; share
//! links that let in until they expire.

use crate::helpers::{
    COPY_SITE_TOML, FakeGitHub, Page, SiteRepo, TestApp, fresh_postgres_database, spawn_app_with,
    spawn_app_with_github,
};
use serde_json::{Value, json};
use std::time::Duration;

fn page(text: &str) -> String {
    format!("<h1>{text}</h1>\n")
}

/// The sign-in form `label`'s hostname shows a visitor: its token and the
/// nonce cookie that goes with it (`name=value`).
pub async fn sign_in_form(app: &TestApp, label: &str) -> (String, String) {
    let shown = app.visit(label, "/").await;
    assert_eq!(
        shown.status, 401,
        "{label} shows its sign-in page: {}",
        shown.body
    );
    let token = shown
        .body
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the sign-in page has no form token: {}", shown.body))
        .to_owned();
    let nonce = cookie_of(&shown);
    (token, nonce)
}

/// Posts the sign-in form of `label`'s hostname as a browser does: the
/// token of the page it was shown, and its nonce cookie.
pub async fn sign_in(app: &TestApp, label: &str, password: &str, return_to: &str) -> Page {
    let (token, nonce) = sign_in_form(app, label).await;
    post_sign_in(
        app,
        label,
        &[
            ("password", password),
            ("return_to", return_to),
            ("form_token", &token),
        ],
        &[("Cookie", &nonce)],
    )
    .await
}

/// Posts `form` to `label`'s sign-in address with `headers`.
pub async fn post_sign_in(
    app: &TestApp,
    label: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Page {
    let mut request = app
        .http
        .post(format!("http://127.0.0.1:{}/.jamstack/sign-in", app.port))
        .header("Host", format!("{label}.localhost:{}", app.port))
        .form(form);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("posting the sign-in form");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap().to_vec();
    Page {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
    }
}

/// `name=value` of the cookie an answer sets.
pub fn cookie_of(page: &Page) -> String {
    let set_cookie = page.header("set-cookie");
    assert!(!set_cookie.is_empty(), "no cookie set: {page:?}");
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn protect(app: &TestApp, site: &str, body: Value) -> (u16, Value) {
    app.api_json(
        app.http
            .put(app.api(&format!("/sites/{site}/protection")))
            .json(&body),
    )
    .await
}

/// Asserts `label` answers the sign-in page and nothing of the site.
async fn assert_asks_for_password(app: &TestApp, label: &str, cookie: Option<&str>, secret: &str) {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
    let refused = app.visit_with(label, "/", &headers).await;
    assert_eq!(refused.status, 401, "{label}: {}", refused.body);
    assert!(
        refused.body.contains("/.jamstack/sign-in"),
        "{label}: {}",
        refused.body
    );
    assert!(!refused.body.contains(secret), "{label} showed its content");
    assert_eq!(refused.header("cache-control"), "no-store", "{label}");
}

#[tokio::test]
async fn every_kind_of_hostname_asks_for_the_site_password_once_protected_and_a_new_password_signs_everyone_out()
 {
    let github = FakeGitHub::start().await;
    let app = spawn_app_with_github(&github).await;
    let repo = SiteRepo::new();
    let production = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("production secret")),
        ],
        "production",
    );
    app.connect_site("vault", &repo, "octo/vault").await;
    app.wait_for_success(app.push("octo/vault", &repo, &production).await)
        .await;
    let branch = repo.commit_on(
        "staging",
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("branch secret")),
        ],
        "staging",
    );
    app.wait_for_success(app.trigger_build_of("vault", Some("staging"), &branch).await)
        .await;
    let preview = repo.commit_on(
        "feature",
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("preview secret")),
        ],
        "feature",
    );
    app.wait_for_success(app.open_pull_request("octo/vault", 4, "feature", &preview).await)
        .await;
    let deploys = app.deploys_of("vault").await;
    let production_deploy = deploys
        .iter()
        .find(|d| d["branch"] == "main")
        .expect("the production deploy");
    let permalink = format!("{}--vault", production_deploy["id"].as_str().unwrap());
    let hostnames = [
        ("vault".to_owned(), "production secret"),
        ("deploy-preview-4--vault".to_owned(), "preview secret"),
        ("staging--vault".to_owned(), "branch secret"),
        (permalink.clone(), "production secret"),
    ];

    // Public by default.
    for (label, content) in &hostnames {
        let public = app.visit(label, "/").await;
        assert_eq!(public.status, 200, "{label}");
        assert_eq!(public.body, page(content), "{label}");
        assert!(!public.header("cache-control").contains("private"), "{label}");
    }
    let shown = app.get_json("/sites/vault/protection").await;
    assert_eq!(
        shown,
        json!({"production": "public", "previews": "public", "branch_deploys": "public",
               "permalinks": "public", "password_set": false})
    );

    // Protecting a hostname needs a password.
    let (status, body) = protect(&app, "vault", json!({"production": "password"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("no password"), "{body}");

    let (status, body) = protect(
        &app,
        "vault",
        json!({"production": "password", "previews": "password", "branch_deploys": "password",
               "permalinks": "password", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["password_set"], true);
    assert!(
        !body.to_string().contains("correct horse"),
        "the password is never shown"
    );

    let mut cookies = Vec::new();
    for (label, content) in &hostnames {
        assert_asks_for_password(&app, label, None, content).await;
        let wrong = sign_in(&app, label, "battery staple", "/").await;
        assert_eq!(wrong.status, 401, "{label}");
        assert!(
            wrong.body.contains("not this site's password"),
            "{label}: {}",
            wrong.body
        );
        assert!(wrong.header("set-cookie").is_empty(), "{label}");

        // The right password: a cookie for this hostname alone, and back
        // to where the visitor was, never to another host.
        let right = sign_in(&app, label, "correct horse", "//evil.example/").await;
        assert_eq!(right.status, 303, "{label}: {}", right.body);
        assert_eq!(right.header("location"), "/", "{label}");
        let set_cookie = right.header("set-cookie");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(set_cookie.contains(attribute), "{label}: {set_cookie}");
        }
        assert!(!set_cookie.contains("Domain"), "{label}: host-only: {set_cookie}");
        let cookie = cookie_of(&right);

        let seen = app.visit_with(label, "/", &[("Cookie", &cookie)]).await;
        assert_eq!(seen.status, 200, "{label}");
        assert_eq!(seen.body, page(content), "{label}");
        assert!(
            seen.header("cache-control").starts_with("private"),
            "{label}: {:?}",
            seen.headers
        );
        assert!(!seen.header("cache-control").contains("public"), "{label}");
        assert!(
            seen.headers
                .get_all("vary")
                .iter()
                .flat_map(|v| v.to_str().unwrap().split(','))
                .any(|name| name.trim() == "Cookie"),
            "{label}: {:?}",
            seen.headers
        );
        let again = app.visit_with(label, "/", &[("Cookie", &cookie)]).await;
        assert_eq!(again.body, page(content), "{label}: served again, from memory");
        cookies.push((label.clone(), *content, cookie));
    }
    // A cookie of one kind of hostname does not open another.
    let (_, _, production_cookie) = &cookies[0];
    assert_asks_for_password(&app, "staging--vault", Some(production_cookie), "branch secret").await;

    // Nor another site's hostname, even with the same password.
    let other = SiteRepo::new();
    let other_sha = other.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("other secret")),
        ],
        "other",
    );
    app.connect_site("other", &other, "octo/other").await;
    app.wait_for_success(app.push("octo/other", &other, &other_sha).await)
        .await;
    let (status, body) = protect(
        &app,
        "other",
        json!({"production": "password", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_asks_for_password(&app, "other", Some(production_cookie), "other secret").await;

    // A new password signs everyone out.
    let (status, body) = protect(&app, "vault", json!({"password": "new horse"})).await;
    assert_eq!(status, 200, "{body}");
    for (label, content, cookie) in &cookies {
        assert_asks_for_password(&app, label, Some(cookie), content).await;
    }
    assert_eq!(sign_in(&app, "vault", "correct horse", "/").await.status, 401);
    assert_eq!(sign_in(&app, "vault", "new horse", "/").await.status, 303);

    // Public again: no cookie needed, and nothing private.
    let (status, body) = protect(
        &app,
        "vault",
        json!({"production": "public", "previews": "public", "branch_deploys": "public", "permalinks": "public"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let public = app.visit("vault", "/").await;
    assert_eq!(public.body, page("production secret"));
    assert!(!public.header("cache-control").contains("private"));
}

#[tokio::test]
async fn a_share_link_lets_its_visitor_in_until_it_expires() {
    let github = FakeGitHub::start().await;
    let app = spawn_app_with_github(&github).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("shared secret")),
        ],
        "production",
    );
    app.connect_site("shared", &repo, "octo/shared").await;
    app.wait_for_success(app.push("octo/shared", &repo, &sha).await)
        .await;
    let deploy = app.deploys_of("shared").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let links = app.api("/sites/shared/share-links");

    // A public hostname needs no link.
    let (status, body) = app
        .api_json(app.http.post(&links).json(&json!({"expires_in_seconds": 60})))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("public"), "{body}");

    let (status, body) = protect(
        &app,
        "shared",
        json!({"production": "password", "permalinks": "password", "password": "open sesame"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    for (label, request) in [
        ("shared".to_owned(), json!({"expires_in_seconds": 2})),
        (
            format!("{deploy}--shared"),
            json!({"deploy_id": deploy, "expires_in_seconds": 2}),
        ),
    ] {
        let (status, body) = app.api_json(app.http.post(&links).json(&request)).await;
        assert_eq!(status, 200, "{body}");
        let url = body["url"].as_str().unwrap();
        let origin = format!("http://{label}.localhost:{}", app.port);
        let path_and_query = url
            .strip_prefix(&origin)
            .unwrap_or_else(|| panic!("{url} is not on {origin}"));
        assert!(path_and_query.starts_with("/?jamstack_share="), "{url}");

        let opened = app.visit(&label, path_and_query).await;
        assert_eq!(opened.status, 303, "{label}: {}", opened.body);
        assert_eq!(
            opened.header("location"),
            "/",
            "{label}: the link's token is taken out"
        );
        assert_eq!(opened.header("cache-control"), "no-store");
        let cookie = cookie_of(&opened);
        let seen = app.visit_with(&label, "/", &[("Cookie", &cookie)]).await;
        assert_eq!(seen.status, 200, "{label}");
        assert_eq!(seen.body, page("shared secret"));

        // Past its expiry, neither the link nor the cookie it left opens.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_asks_for_password(&app, &label, Some(&cookie), "shared secret").await;
        let expired = app.visit(&label, path_and_query).await;
        assert_eq!(expired.status, 401, "{label}");
        assert!(expired.body.contains("expired"), "{label}: {}", expired.body);
        assert!(!expired.body.contains("shared secret"));
    }
}

#[tokio::test]
async fn an_owner_protects_a_site_on_the_dashboard_and_a_visitor_signs_in_to_it_in_a_browser() {
    let github = FakeGitHub::start().await;
    let app = spawn_app_with_github(&github).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("browser secret")),
            ("src/docs/index.html", &page("the docs")),
        ],
        "production",
    );
    app.connect_site("walled", &repo, "octo/walled").await;
    app.wait_for_success(app.push("octo/walled", &repo, &sha).await)
        .await;
    let browser = app.open_browser().await;

    // The site's owner protects it on the dashboard's settings page.
    browser.sign_in(&app.admin_token).await;
    browser.visit("/sites/walled/settings").await;
    browser.click("#protection input[name=production]").await;
    browser.click("#protection button[type=submit]").await;
    browser
        .wait_for_text("#protection .error", "no password", Duration::from_secs(10))
        .await;
    browser
        .fill("#protection input[name=password]", "let me in")
        .await;
    browser.click("#protection button[type=submit]").await;
    browser
        .wait_for_text("main", "Protection saved", Duration::from_secs(10))
        .await;
    let shown = app.get_json("/sites/walled/protection").await;
    assert_eq!(shown["production"], "password");
    assert_eq!(shown["previews"], "public");
    assert_eq!(shown["password_set"], true);

    // A visitor signs in on the site's own page.
    let docs = format!("http://walled.localhost:{}/docs/", app.port);
    browser.client.goto(&docs).await.unwrap();
    browser
        .wait_for_text("h1", "This site is protected", Duration::from_secs(10))
        .await;
    browser.fill("input[name=password]", "wrong").await;
    browser.click("button[type=submit]").await;
    browser
        .wait_for_text(".error", "not this site's password", Duration::from_secs(10))
        .await;
    browser.fill("input[name=password]", "let me in").await;
    browser.click("button[type=submit]").await;
    // Back on the page the visitor asked for, now shown.
    browser
        .wait_for_text("h1", "the docs", Duration::from_secs(10))
        .await;
    assert_eq!(browser.client.current_url().await.unwrap().as_str(), docs);
    browser
        .client
        .goto(&format!("http://walled.localhost:{}/", app.port))
        .await
        .unwrap();
    browser
        .wait_for_text("h1", "browser secret", Duration::from_secs(10))
        .await;
    // The cookie is the page's no more than the site's: scripts cannot read it.
    let script_cookies = browser
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(script_cookies, json!(""));
    browser.close().await;
}

#[tokio::test]
async fn on_postgresql_a_new_password_signs_out_who_signed_in_with_the_old_one() {
    let database = fresh_postgres_database().await;
    let app = spawn_app_with(|config| config.database_url = Some(database.clone())).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("pg secret")),
        ],
        "production",
    );
    app.connect_site("pgvault", &repo, "octo/pgvault").await;
    app.wait_for_success(app.push("octo/pgvault", &repo, &sha).await)
        .await;
    let (status, body) = protect(
        &app,
        "pgvault",
        json!({"production": "password", "password": "first"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_asks_for_password(&app, "pgvault", None, "pg secret").await;
    let cookie = cookie_of(&sign_in(&app, "pgvault", "first", "/").await);
    assert_eq!(
        app.visit_with("pgvault", "/", &[("Cookie", &cookie)]).await.body,
        page("pg secret")
    );

    let (status, body) = protect(&app, "pgvault", json!({"password": "second"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["production"], "password", "left as it was");
    assert_asks_for_password(&app, "pgvault", Some(&cookie), "pg secret").await;
    let cookie = cookie_of(&sign_in(&app, "pgvault", "second", "/").await);
    assert_eq!(
        app.visit_with("pgvault", "/", &[("Cookie", &cookie)]).await.body,
        page("pg secret")
    );
}

#[tokio::test]
async fn basic_auth_in_headers_asks_for_a_listed_user_on_its_paths_only() {
    use base64::Engine as _;
    let github = FakeGitHub::start().await;
    let app = spawn_app_with_github(&github).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("open to all")),
            ("src/team/index.html", &page("team only")),
            (
                "src/_headers",
                "/team/*\n  Basic-Auth: alice:wonder bob:builder\n  X-Team: yes\n  Cache-Control: public, max-age=3600\n  Vary: Origin\n",
            ),
        ],
        "basic auth",
    );
    app.connect_site("club", &repo, "octo/club").await;
    app.wait_for_success(app.push("octo/club", &repo, &sha).await)
        .await;
    let basic = |pair: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));

    let open = app.visit("club", "/").await;
    assert_eq!(open.body, page("open to all"));
    assert!(!open.header("cache-control").contains("private"));

    for refused in [None, Some(basic("alice:builder")), Some(basic("carol:wonder"))] {
        let headers: Vec<(&str, &str)> = refused
            .as_deref()
            .map(|v| ("Authorization", v))
            .into_iter()
            .collect();
        let page_seen = app.visit_with("club", "/team/", &headers).await;
        assert_eq!(page_seen.status, 401, "{refused:?}");
        assert!(
            page_seen.header("www-authenticate").starts_with("Basic"),
            "{refused:?}"
        );
        assert!(!page_seen.body.contains("team only"));
        assert_eq!(page_seen.header("cache-control"), "no-store");
    }
    let seen = app
        .visit_with("club", "/team/", &[("Authorization", &basic("bob:builder"))])
        .await;
    assert_eq!(seen.status, 200);
    assert_eq!(seen.body, page("team only"));
    assert_eq!(seen.header("x-team"), "yes");
    assert_eq!(seen.header("basic-auth"), "", "the credentials are never sent");
    // The deploy's own caching, made private; its `Vary` kept beside the
    // edge's, `Cookie` named once.
    assert_eq!(seen.header("cache-control"), "private, max-age=3600");
    let vary: Vec<String> = seen
        .headers
        .get_all("vary")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|name| name.trim().to_owned())
        .collect();
    assert_eq!(
        vary.iter().filter(|name| *name == "Cookie").count(),
        1,
        "{vary:?}"
    );
    assert!(vary.iter().any(|name| name == "Origin"), "{vary:?}");
}

#[tokio::test]
async fn a_sign_in_posted_without_the_forms_token_or_from_another_site_is_refused() {
    let app = spawn_app_with(|_| {}).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("forged secret")),
        ],
        "production",
    );
    app.connect_site("forged", &repo, "octo/forged").await;
    app.wait_for_success(app.push("octo/forged", &repo, &sha).await)
        .await;
    let (status, body) = protect(
        &app,
        "forged",
        json!({"production": "password", "password": "right"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (token, nonce) = sign_in_form(&app, "forged").await;
    assert!(nonce.starts_with("jamstack_sign_in_nonce="), "{nonce}");
    let (_, other_nonce) = sign_in_form(&app, "forged").await;
    let other_origin = format!("http://evil.localhost:{}", app.port);
    let own_origin = format!("http://forged.localhost:{}", app.port);
    fn form(token: &str) -> Vec<(&'static str, &str)> {
        vec![("password", "right"), ("return_to", "/"), ("form_token", token)]
    }
    // What is wrong, the form, the request's headers.
    type Pairs<'a> = Vec<(&'a str, &'a str)>;
    let refusals: Vec<(&str, Pairs<'_>, Pairs<'_>)> = vec![
        ("no token", form(""), vec![("Cookie", nonce.as_str())]),
        (
            "a wrong token",
            form("4102444800.00ff"),
            vec![("Cookie", nonce.as_str())],
        ),
        ("no nonce cookie", form(&token), vec![]),
        (
            "another browser's nonce",
            form(&token),
            vec![("Cookie", other_nonce.as_str())],
        ),
        (
            "another site's page",
            form(&token),
            vec![("Cookie", nonce.as_str()), ("Origin", other_origin.as_str())],
        ),
    ];
    for (what, form, headers) in refusals {
        let refused = post_sign_in(&app, "forged", &form, &headers).await;
        assert_eq!(refused.status, 403, "{what}: {}", refused.body);
        assert!(
            refused
                .body
                .contains("did not come from this site's own sign-in page"),
            "{what}: {}",
            refused.body
        );
        assert!(
            refused.body.contains("name=\"form_token\""),
            "{what}: a fresh form is shown"
        );
        assert!(!refused.body.contains("forged secret"), "{what}");
        assert!(
            !refused.header("set-cookie").contains("jamstack_site_access"),
            "{what}: nobody is signed in"
        );
    }
    let accepted = post_sign_in(
        &app,
        "forged",
        &form(&token),
        &[("Cookie", nonce.as_str()), ("Origin", own_origin.as_str())],
    )
    .await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    let cookie = cookie_of(&accepted);
    assert_eq!(
        app.visit_with("forged", "/", &[("Cookie", &cookie)]).await.body,
        page("forged secret")
    );
}
