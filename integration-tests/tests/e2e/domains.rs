//! Custom domains: a site's own hostnames, claimed through the API with a
//! TXT record looked up at a real DNS server (Let's Encrypt's
//! `pebble-challtestsrv`, records set through its management API), or at
//! once by an admin; served exactly as the site's production hostname once
//! verified, aliases redirecting to the primary, nothing served before,
//! and nothing after removal, on every controller.

use crate::helpers::{
    Page, TestApp, eventually, fresh_postgres_database, manifest_file, spawn_controller_beside,
    spawn_controller_only_with,
};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A DNS server for tests: `pebble-challtestsrv` on free loopback ports,
/// answering only what the test sets. Stopped when dropped.
struct TestDns {
    process: Child,
    /// Where it answers DNS (UDP and TCP).
    dns: SocketAddr,
    management: String,
    http: reqwest::Client,
}

impl TestDns {
    async fn start() -> TestDns {
        let dns = free_port();
        let management = free_port();
        let process = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &dns.to_string(),
                "-management",
                &management.to_string(),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting pebble-challtestsrv failed ({e}); install it with `apt-get install -y pebble` \
                     (scripts/test.sh does)"
                )
            });
        let server = TestDns {
            process,
            dns,
            management: format!("http://{management}"),
            http: reqwest::Client::new(),
        };
        // Ready once its management API answers.
        eventually("pebble-challtestsrv to answer", || async {
            match server
                .http
                .post(format!("{}/clear-txt", server.management))
                .json(&json!({ "host": "_ready.example." }))
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(format!("it answered {}", response.status())),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        server
    }

    /// Sets the TXT record of `name` (no trailing dot needed).
    async fn set_txt(&self, name: &str, value: &str) {
        let response = self
            .http
            .post(format!("{}/set-txt", self.management))
            .json(&json!({ "host": format!("{name}."), "value": value }))
            .send()
            .await
            .expect("setting a TXT record");
        assert!(response.status().is_success(), "{response:?}");
    }

    async fn clear_txt(&self, name: &str) {
        let response = self
            .http
            .post(format!("{}/clear-txt", self.management))
            .json(&json!({ "host": format!("{name}.") }))
            .send()
            .await
            .expect("clearing a TXT record");
        assert!(response.status().is_success(), "{response:?}");
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A loopback address no one listens on now (UDP and TCP).
fn free_port() -> SocketAddr {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}

/// A controller whose TXT lookups go to `dns`.
async fn controller_asking(dns: &TestDns) -> TestApp {
    let server = dns.dns;
    let (app, _) = spawn_controller_only_with(move |config| {
        config.dns_resolver = Some(server);
    })
    .await;
    app
}

/// Makes a site for direct deploys and publishes `files` on it.
pub(crate) async fn site_with(app: &TestApp, name: &str, files: &[(&str, &[u8])]) {
    app.connect_site_with(name, json!({ "repo_url": "/nowhere/repo.git" }))
        .await;
    let manifest: Vec<_> = files
        .iter()
        .map(|(path, content)| manifest_file(path, content))
        .collect();
    let started = app.start_direct_deploy(name, json!({ "files": manifest })).await;
    let deploy_id = started["deploy_id"].as_str().unwrap().to_owned();
    for hash in started["required"].as_array().unwrap() {
        let hash = hash.as_str().unwrap();
        let (path, content) = files
            .iter()
            .zip(&manifest)
            .find(|(_, entry)| entry.sha256 == hash)
            .map(|(file, _)| *file)
            .expect("a required hash is one of the files");
        let (status, body) = app
            .api_json(
                app.http
                    .put(app.api(&format!("/blobs/{hash}")))
                    .body(content.to_vec()),
            )
            .await;
        assert_eq!(status, 201, "uploading {path}: {body}");
    }
    let (status, done) = app
        .api_json(
            app.http
                .post(app.api(&format!("/sites/{name}/deploys/{deploy_id}/finalize")))
                .json(&json!({ "publish": true })),
        )
        .await;
    assert_eq!(status, 200, "{done}");
}

/// Makes an API token that may change sites but is no admin.
pub(crate) async fn site_manager_token(app: &TestApp) -> String {
    let (status, body) = app
        .api_json(
            app.http
                .post(app.api("/tokens"))
                .json(&json!({ "name": "site-manager", "scopes": ["read", "sites"] })),
        )
        .await;
    assert_eq!(status, 201, "making a token: {body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Sends `request` with `token` instead of the admin token.
async fn call_with(token: &str, request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.bearer_auth(token).send().await.expect("calling the API");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub(crate) async fn add_domain(app: &TestApp, token: &str, site: &str, body: Value) -> (u16, Value) {
    call_with(
        token,
        app.http
            .post(app.api(&format!("/sites/{site}/domains")))
            .json(&body),
    )
    .await
}

async fn verify_domain(app: &TestApp, token: &str, site: &str, hostname: &str) -> Value {
    let (status, body) = call_with(
        token,
        app.http
            .post(app.api(&format!("/sites/{site}/domains/{hostname}/verify"))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Visits `path` with `Host: host`.
async fn visit_host(app: &TestApp, host: &str, path: &str) -> Page {
    let response = app
        .http
        .get(format!("http://127.0.0.1:{}{path}", app.port))
        .header("Host", host)
        .send()
        .await
        .expect("visiting a custom domain");
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

/// Asserts `host`, claimed but not verified, answers the edge's "no such
/// site" and nothing of the site.
async fn assert_serves_nothing(app: &TestApp, host: &str, secret: &str) {
    let page = visit_host(app, host, "/").await;
    assert_eq!(page.status, 404, "{host}: {page:?}");
    assert_eq!(page.body, "no such site\n", "{host}");
    assert!(
        !page.body.contains(secret),
        "{host} served the site: {}",
        page.body
    );
}

/// Asserts `host`, claimed by no site, reaches the controller's own pages
/// (as any name the operator gives it does), nothing of a site.
async fn assert_unclaimed(app: &TestApp, host: &str, secret: &str) {
    let page = visit_host(app, host, "/").await;
    assert!(!(200..300).contains(&page.status), "{host}: {page:?}");
    assert!(
        !page.body.contains(secret),
        "{host} served the site: {}",
        page.body
    );
    assert_eq!(
        page.header("location"),
        "/sites",
        "the dashboard's home: {page:?}"
    );
}

const HEADERS_FILE: &[u8] = b"/*\n  X-Served-By: the-site\n";

#[tokio::test]
async fn a_site_manager_proves_a_domain_with_a_txt_record_and_only_then_it_serves_the_production_deploy() {
    let dns = TestDns::start().await;
    let app = controller_asking(&dns).await;
    site_with(
        &app,
        "blog",
        &[("index.html", b"<h1>the blog</h1>"), ("_headers", HEADERS_FILE)],
    )
    .await;
    let token = site_manager_token(&app).await;

    let (status, added) = add_domain(&app, &token, "blog", json!({ "hostname": "WWW.Example.com." })).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["hostname"], "www.example.com", "stored normalised");
    assert_eq!(added["state"], "waiting_for_dns");
    assert_eq!(added["primary"], true, "a site's first domain is its primary");
    assert_eq!(added["certificate"], Value::Null);
    assert_eq!(added["txt_record"]["name"], "_jamstack-challenge.www.example.com");
    let token_value = added["txt_record"]["value"].as_str().unwrap().to_owned();
    assert!(token_value.len() >= 32, "{added}");
    assert!(
        added["next_step"].as_str().unwrap().contains(&token_value),
        "{added}"
    );

    // Unverified: nothing of the site, not even its headers.
    assert_serves_nothing(&app, "www.example.com", "the blog").await;
    let page = visit_host(&app, "www.example.com", "/").await;
    assert_eq!(page.header("x-served-by"), "");

    // No record yet: the user is told what to add and what to run.
    let checked = verify_domain(&app, &token, "blog", "www.example.com").await;
    assert_eq!(checked["state"], "waiting_for_dns", "{checked}");
    let error = checked["last_error"].as_str().unwrap();
    assert!(
        error.contains("no TXT record _jamstack-challenge.www.example.com found")
            && error.contains(&format!(
                "add TXT _jamstack-challenge.www.example.com = {token_value}"
            ))
            && error.contains("jamstack domains verify www.example.com"),
        "{error}"
    );

    // A record with another value proves nothing.
    dns.set_txt("_jamstack-challenge.www.example.com", "someone-elses-token")
        .await;
    let checked = verify_domain(&app, &token, "blog", "www.example.com").await;
    assert_eq!(checked["state"], "waiting_for_dns", "{checked}");
    assert!(
        checked["last_error"]
            .as_str()
            .unwrap()
            .contains("\"someone-elses-token\""),
        "{checked}"
    );
    assert_serves_nothing(&app, "www.example.com", "the blog").await;

    // The right record: verified, and served as blog.localhost is.
    dns.clear_txt("_jamstack-challenge.www.example.com").await;
    dns.set_txt("_jamstack-challenge.www.example.com", &token_value)
        .await;
    let checked = verify_domain(&app, &token, "blog", "www.example.com").await;
    assert_eq!(checked["state"], "verified", "{checked}");
    assert_eq!(checked["verified_by"], "dns");
    assert_eq!(checked["last_error"], Value::Null);

    let custom = visit_host(&app, "www.example.com", "/").await;
    let platform = app.visit("blog", "/").await;
    assert_eq!(custom.status, 200, "{custom:?}");
    assert_eq!(custom.body, "<h1>the blog</h1>");
    assert_eq!(
        custom.header("x-served-by"),
        "the-site",
        "the deploy's header rules apply"
    );
    assert_eq!(custom.header("etag"), platform.header("etag"));
    assert_eq!(custom.header("cache-control"), platform.header("cache-control"));
    // With a port and in capitals, as browsers on another port send it.
    let with_port = visit_host(&app, &format!("WWW.EXAMPLE.COM:{}", app.port), "/").await;
    assert_eq!(with_port.body, "<h1>the blog</h1>");

    let (status, listed) = call_with(&token, app.http.get(app.api("/sites/blog/domains"))).await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["state"], "verified", "{listed}");
}

#[tokio::test]
async fn a_domain_another_site_holds_cannot_be_claimed_verified_or_not() {
    let dns = TestDns::start().await;
    let app = controller_asking(&dns).await;
    site_with(&app, "blog", &[("index.html", b"<h1>the blog</h1>")]).await;
    site_with(&app, "squatter", &[("index.html", b"<h1>not yours</h1>")]).await;
    let token = site_manager_token(&app).await;

    let (status, _) = add_domain(&app, &token, "blog", json!({ "hostname": "example.com" })).await;
    assert_eq!(status, 201);
    for (who, caller) in [
        ("a site manager", token.as_str()),
        ("an admin", app.admin_token.as_str()),
    ] {
        let (status, refused) =
            add_domain(&app, caller, "squatter", json!({ "hostname": "Example.COM" })).await;
        assert_eq!(status, 409, "{who}: {refused}");
        let message = refused["error"].as_str().unwrap();
        assert!(
            message.contains("`example.com` belongs to another site"),
            "{who}: {message}"
        );
    }
    // Even proving control of it does not hand it over.
    let (_, listed) = call_with(&token, app.http.get(app.api("/sites/blog/domains"))).await;
    dns.set_txt(
        "_jamstack-challenge.example.com",
        listed[0]["txt_record"]["value"].as_str().unwrap(),
    )
    .await;
    verify_domain(&app, &token, "blog", "example.com").await;
    let (status, _) = add_domain(
        &app,
        &app.admin_token,
        "squatter",
        json!({ "hostname": "example.com" }),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        visit_host(&app, "example.com", "/").await.body,
        "<h1>the blog</h1>"
    );

    // Names that are not a site's to have.
    for (hostname, says) in [
        ("blog.localhost", "own domain"),
        ("*.example.org", "wildcard"),
        ("203.0.113.7", "IP address"),
        ("https://example.org/", "URL"),
    ] {
        let (status, refused) = add_domain(&app, &token, "squatter", json!({ "hostname": hostname })).await;
        assert_eq!(status, 400, "{hostname}: {refused}");
        assert!(
            refused["error"].as_str().unwrap().contains(says),
            "{hostname}: {refused}"
        );
    }
}

#[tokio::test]
async fn an_alias_answers_with_a_permanent_redirect_to_the_primary_keeping_path_and_query() {
    let dns = TestDns::start().await;
    let app = controller_asking(&dns).await;
    site_with(
        &app,
        "shop",
        &[
            ("index.html", b"<h1>the shop</h1>"),
            ("docs/index.html", b"<h1>docs</h1>"),
        ],
    )
    .await;
    // Added by the admin: verified at once, no record needed.
    let (status, primary) = add_domain(
        &app,
        &app.admin_token,
        "shop",
        json!({ "hostname": "example.com" }),
    )
    .await;
    assert_eq!(status, 201, "{primary}");
    assert_eq!(primary["state"], "verified");
    assert_eq!(primary["verified_by"], "admin");
    let (status, alias) = add_domain(
        &app,
        &app.admin_token,
        "shop",
        json!({ "hostname": "www.example.com" }),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(alias["primary"], false);

    let redirect = visit_host(&app, "www.example.com", "/docs/?page=2&sort=new").await;
    assert_eq!(redirect.status, 301, "{redirect:?}");
    assert_eq!(redirect.header("location"), "//example.com/docs/?page=2&sort=new");
    assert!(!redirect.body.contains("docs"));
    let on_port = visit_host(&app, &format!("www.example.com:{}", app.port), "/").await;
    assert_eq!(on_port.header("location"), format!("//example.com:{}/", app.port));
    assert_eq!(
        visit_host(&app, "example.com", "/docs/").await.body,
        "<h1>docs</h1>"
    );

    // Adding it again as primary switches: the old primary now redirects.
    let (status, switched) = add_domain(
        &app,
        &app.admin_token,
        "shop",
        json!({ "hostname": "www.example.com", "primary": true }),
    )
    .await;
    assert_eq!(status, 200, "{switched}");
    assert_eq!(switched["primary"], true);
    assert_eq!(
        visit_host(&app, "www.example.com", "/").await.body,
        "<h1>the shop</h1>"
    );
    let redirect = visit_host(&app, "example.com", "/docs/").await;
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.header("location"), "//www.example.com/docs/");
}

#[tokio::test]
async fn a_waiting_domain_is_verified_in_the_background_once_its_record_appears() {
    let dns = TestDns::start().await;
    let server = dns.dns;
    let (app, _) = spawn_controller_only_with(move |config| {
        config.dns_resolver = Some(server);
        config.domain_checks.first_delay = Duration::from_millis(200);
        config.domain_checks.max_delay = Duration::from_millis(400);
        config.domain_checks.poll_interval = Duration::from_millis(100);
    })
    .await;
    site_with(&app, "docs", &[("index.html", b"<h1>the docs</h1>")]).await;
    let token = site_manager_token(&app).await;
    let (_, added) = add_domain(&app, &token, "docs", json!({ "hostname": "docs.example.org" })).await;

    // Checked, and what was found kept for the user.
    let waiting = eventually("a background check", || async {
        let (_, listed) = call_with(&token, app.http.get(app.api("/sites/docs/domains"))).await;
        if listed[0]["last_error"].as_str().is_some() {
            Ok(listed[0].clone())
        } else {
            Err(listed.to_string())
        }
    })
    .await;
    assert_eq!(waiting["state"], "waiting_for_dns");
    assert!(waiting["last_checked_at"].as_i64().is_some());

    dns.set_txt(
        "_jamstack-challenge.docs.example.org",
        added["txt_record"]["value"].as_str().unwrap(),
    )
    .await;
    eventually("the background check to verify it", || async {
        let page = visit_host(&app, "docs.example.org", "/").await;
        if page.status == 200 {
            Ok(page)
        } else {
            Err(format!("{page:?}"))
        }
    })
    .await;
    let (_, listed) = call_with(&token, app.http.get(app.api("/sites/docs/domains"))).await;
    assert_eq!(listed[0]["state"], "verified", "{listed}");
    assert_eq!(listed[0]["next_check_at"], Value::Null);
}

#[tokio::test]
async fn a_removed_domain_stops_serving_at_once_on_every_controller() {
    let database = fresh_postgres_database().await;
    let url = database.clone();
    let (first, _) = spawn_controller_only_with(move |config| config.database_url = Some(url)).await;
    let second = spawn_controller_beside(&first, &database).await;
    site_with(&first, "news", &[("index.html", b"<h1>the news</h1>")]).await;
    let (status, _) = add_domain(
        &first,
        &first.admin_token,
        "news",
        json!({ "hostname": "news.example.net" }),
    )
    .await;
    assert_eq!(status, 201);

    // Both serve it, and so both hold it in memory.
    for controller in [&first, &second] {
        let page = eventually("the domain to serve", || async {
            let page = visit_host(controller, "news.example.net", "/").await;
            if page.status == 200 {
                Ok(page)
            } else {
                Err(format!("{page:?}"))
            }
        })
        .await;
        assert_eq!(page.body, "<h1>the news</h1>");
    }

    let (status, body) = call_with(
        &first.admin_token,
        first
            .http
            .delete(first.api("/sites/news/domains/news.example.net")),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_unclaimed(&first, "news.example.net", "the news").await;
    // The other controller is told at once, well before its memory of the
    // hostname would expire.
    let started = std::time::Instant::now();
    eventually("the other controller to stop serving it", || async {
        let page = visit_host(&second, "news.example.net", "/").await;
        if page.status != 200 && !page.body.contains("the news") {
            Ok(())
        } else {
            Err(format!("{page:?}"))
        }
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(second.get_json("/sites/news/domains").await, json!([]),);
}

#[tokio::test]
async fn a_user_adds_a_domain_on_the_dashboard_sees_the_record_to_add_verifies_it_and_removes_it() {
    let dns = TestDns::start().await;
    let app = controller_asking(&dns).await;
    site_with(&app, "garden", &[("index.html", b"<h1>the garden</h1>")]).await;
    let browser = app.open_browser().await;
    browser.sign_in(&app.admin_token).await;
    browser.visit("/sites/garden/settings").await;

    // Not a hostname a site may have: said in the section, what was typed kept.
    browser
        .fill("#domains input[name=hostname]", "garden.localhost")
        .await;
    browser.click("#domains button.primary").await;
    browser
        .wait_for_text("#domains .error", "own domain", Duration::from_secs(10))
        .await;

    browser
        .fill("#domains input[name=hostname]", "garden.example.com")
        .await;
    browser.click("#domains button.primary").await;
    browser
        .wait_for_text("main", "Domain added", Duration::from_secs(10))
        .await;
    let row = "#domains tr[data-domain='garden.example.com']";
    browser
        .wait_for_text(
            &format!("{row} .state"),
            "waiting for dns",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        browser.text(&format!("{row} .txt-name")).await,
        "_jamstack-challenge.garden.example.com"
    );
    let token = browser.text(&format!("{row} .txt-value")).await;
    assert_eq!(token.len(), 32, "{token}");
    browser.screenshot("site-settings-domains").await;
    assert_serves_nothing(&app, "garden.example.com", "the garden").await;

    // Verify before the record exists: the page says what to add.
    browser.click(&format!("{row} button:not(.danger)")).await;
    browser
        .wait_for_text(
            &format!("{row} .domain-error"),
            "no TXT record _jamstack-challenge.garden.example.com found",
            Duration::from_secs(10),
        )
        .await;

    dns.set_txt("_jamstack-challenge.garden.example.com", &token)
        .await;
    browser.click(&format!("{row} button:not(.danger)")).await;
    browser
        .wait_for_text(&format!("{row} .state"), "verified", Duration::from_secs(10))
        .await;
    assert_eq!(
        visit_host(&app, "garden.example.com", "/").await.body,
        "<h1>the garden</h1>"
    );

    browser.click(&format!("{row} button.danger")).await;
    browser
        .wait_for_text("main", "Domain removed", Duration::from_secs(10))
        .await;
    assert_unclaimed(&app, "garden.example.com", "the garden").await;
    assert_eq!(app.get_json("/sites/garden/domains").await, json!([]));
    browser.close().await;
}
