//! People signing in to the dashboard through a real OpenID Connect
//! provider (`oidc-provider-mock`, a Python OIDC provider for tests,
//! started per test): a new person gets a user, the same `sub` is the same
//! user, a team's group rule makes them a member until they leave the
//! group, and answers that do not belong to the sign-in are refused.

use crate::helpers::{TestApp, eventually, spawn_controller_only_with};
use jamstack_controller::config::OidcSettings;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `oidc-provider-mock` on a free loopback port, killed on drop.
struct Provider {
    issuer: String,
    child: Child,
}

impl Provider {
    /// Starts a provider on a free port and waits until it answers.
    async fn start() -> Provider {
        let port = free_port();
        let mut provider = Provider::start_on(port);
        provider.wait_until_ready().await;
        provider
    }

    /// Starts a provider on `port` without waiting for it.
    fn start_on(port: u16) -> Provider {
        let child = Command::new("python3")
            .args([
                "-m",
                "oidc_provider_mock",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting python3 -m oidc_provider_mock");
        Provider {
            issuer: format!("http://127.0.0.1:{port}"),
            child,
        }
    }

    async fn wait_until_ready(&mut self) {
        let http = reqwest::Client::new();
        let discovery = format!("{}/.well-known/openid-configuration", self.issuer);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the OpenID Connect test provider exited at once ({status}); install it with \
                     `python3 -m pip install oidc-provider-mock` (scripts/test.sh does)"
                );
            }
            if let Ok(answer) = http.get(&discovery).send().await
                && answer.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the OpenID Connect test provider did not answer {discovery} within 30s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sets what the provider says about `sub` in its ID tokens.
    async fn set_person(&self, sub: &str, claims: Value) {
        let answer = reqwest::Client::new()
            .put(format!("{}/users/{sub}", self.issuer))
            .json(&claims)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 204, "setting the claims of {sub}");
    }

    fn settings(&self) -> OidcSettings {
        let mut settings = OidcSettings::new(&self.issuer, "jamstack-dashboard", "a client secret");
        settings.name = "Staff ID".to_owned();
        settings
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A person's browser without JavaScript: follows redirects itself and
/// keeps each origin's cookies, so the test sees every step.
struct Person {
    http: reqwest::Client,
    /// Cookies by origin (`http://host:port`), then name.
    cookies: HashMap<String, HashMap<String, String>>,
}

/// A page the person ended on.
#[derive(Debug)]
struct Landed {
    status: u16,
    url: reqwest::Url,
    body: String,
}

fn origin(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}

impl Person {
    fn new() -> Person {
        Person {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    /// Sends `request` to `url` with the origin's cookies and keeps the
    /// cookies the answer sets.
    async fn send(&mut self, url: &reqwest::Url, request: reqwest::RequestBuilder) -> reqwest::Response {
        let jar = self.cookies.entry(origin(url)).or_default();
        let header: Vec<String> = jar
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let request = if header.is_empty() {
            request
        } else {
            request.header("cookie", header.join("; "))
        };
        let answer = request.send().await.unwrap();
        for set in answer.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        answer
    }

    /// Opens `url` and follows redirects to where they end.
    async fn open(&mut self, url: &str) -> Landed {
        let mut url = reqwest::Url::parse(url).unwrap();
        for _ in 0..10 {
            let answer = self.send(&url, self.http.get(url.clone())).await;
            if let Some(next) = location(&url, &answer) {
                url = next;
                continue;
            }
            return Landed {
                status: answer.status().as_u16(),
                url,
                body: answer.text().await.unwrap(),
            };
        }
        panic!("more than 10 redirects, the last to {url}");
    }

    /// Posts a form to `url`; where the answer redirects.
    async fn submit(&mut self, url: &reqwest::Url, fields: &[(&str, &str)]) -> reqwest::Url {
        let answer = self.send(url, self.http.post(url.clone()).form(fields)).await;
        let status = answer.status();
        location(url, &answer)
            .unwrap_or_else(|| panic!("posting to {url} answered {status} without a redirect"))
    }
}

fn location(from: &reqwest::Url, answer: &reqwest::Response) -> Option<reqwest::Url> {
    if !answer.status().is_redirection() {
        return None;
    }
    let to = answer.headers().get("location")?.to_str().ok()?;
    Some(from.join(to).unwrap())
}

/// The person starts signing in at the controller and is shown the
/// provider's authorization page; its URL.
async fn to_the_provider(person: &mut Person, app: &TestApp, provider: &Provider) -> reqwest::Url {
    let page = person.open(&format!("{}/login/oidc", app.base_url)).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.url
            .as_str()
            .starts_with(&format!("{}/oauth2/authorize?", provider.issuer)),
        "the button leads to the provider: {page:?}"
    );
    let query: HashMap<String, String> = page.url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256", "{query:?}");
    for parameter in ["state", "nonce", "code_challenge"] {
        assert!(query.contains_key(parameter), "no {parameter}: {query:?}");
    }
    page.url
}

/// The person signs in at the provider as `sub`; the page they land on.
async fn sign_in_as(person: &mut Person, app: &TestApp, provider: &Provider, sub: &str) -> Landed {
    let authorize = to_the_provider(person, app, provider).await;
    let callback = person.submit(&authorize, &[("sub", sub)]).await;
    person.open(callback.as_str()).await
}

/// The person's own dashboard page.
async fn dashboard(person: &mut Person, app: &TestApp, path: &str) -> Landed {
    person.open(&format!("{}{path}", app.base_url)).await
}

async fn spawn_with(provider: &Provider) -> TestApp {
    let settings = provider.settings();
    let (app, _) = spawn_controller_only_with(move |config| config.oidc = Some(settings)).await;
    app
}

fn alice_in(groups: &[&str]) -> Value {
    json!({
        "preferred_username": "alice",
        "email": "Alice@Example.com",
        "email_verified": true,
        "groups": groups,
    })
}

#[tokio::test]
async fn a_person_signs_in_through_the_provider_and_lands_on_the_sites_list_as_the_same_user_each_time() {
    let provider = Provider::start().await;
    let app = spawn_with(&provider).await;
    let login = reqwest::get(format!("{}/login", app.base_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login.contains("Sign in with Staff ID"), "{login}");

    provider.set_person("sub-alice-1", alice_in(&[])).await;
    let mut person = Person::new();
    let landed = sign_in_as(&mut person, &app, &provider, "sub-alice-1").await;
    assert_eq!(landed.status, 200, "{landed:?}");
    assert_eq!(landed.url.path(), "/sites", "{landed:?}");
    let account = dashboard(&mut person, &app, "/account").await;
    assert!(
        account.body.contains("<span id=\"login\">alice</span>"),
        "{}",
        account.body
    );
    assert!(
        account.body.contains(&format!("oidc:{}", provider.issuer)),
        "the account lists the linked identity: {}",
        account.body
    );

    // Signing in again, in another browser, is the same user, not alice-2.
    let mut again = Person::new();
    let landed = sign_in_as(&mut again, &app, &provider, "sub-alice-1").await;
    assert_eq!(landed.url.path(), "/sites", "{landed:?}");
    let account = dashboard(&mut again, &app, "/account").await;
    assert!(
        account.body.contains("<span id=\"login\">alice</span>"),
        "{}",
        account.body
    );

    // Another subject with the same username is another person.
    provider.set_person("sub-alice-2", alice_in(&[])).await;
    let mut other = Person::new();
    sign_in_as(&mut other, &app, &provider, "sub-alice-2").await;
    let account = dashboard(&mut other, &app, "/account").await;
    assert!(
        account.body.contains("<span id=\"login\">alice-2</span>"),
        "{}",
        account.body
    );

    let (_, entries) = app.api_json(app.http.get(app.api("/audit?action=sign_in"))).await;
    assert_eq!(entries.as_array().unwrap().len(), 3, "{entries}");
}

#[tokio::test]
async fn a_group_rule_makes_a_person_a_developer_who_sees_the_teams_site_until_they_leave_the_group() {
    let provider = Provider::start().await;
    let app = spawn_with(&provider).await;
    app.connect_site_with("blog", json!({})).await;
    let (status, body) = app
        .api_json(app.http.put(app.api("/teams/default/settings")).json(&json!({
            "max_concurrent_builds": 0,
            "auto_memberships": [{ "source": "oidc-group:web", "role": "developer" }],
        })))
        .await;
    assert_eq!(status, 200, "{body}");

    // Not in the group: signed in, but no team's sites.
    provider.set_person("sub-alice", alice_in(&["ops"])).await;
    let mut person = Person::new();
    let sites = sign_in_as(&mut person, &app, &provider, "sub-alice").await;
    assert_eq!(sites.url.path(), "/sites");
    assert!(!sites.body.contains("/sites/blog"), "{}", sites.body);

    // In the group: a developer of the team, who sees its site and may build.
    provider.set_person("sub-alice", alice_in(&["ops", "web"])).await;
    let sites = sign_in_as(&mut person, &app, &provider, "sub-alice").await;
    assert!(sites.body.contains("/sites/blog"), "{}", sites.body);
    let (_, members) = app
        .api_json(app.http.get(app.api("/teams/default/members")))
        .await;
    let alice = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["login"] == "alice")
        .unwrap_or_else(|| panic!("alice is a member: {members}"));
    assert_eq!(alice["role"], "developer", "{members}");

    // Out of the group again: the next sign-in ends the membership.
    provider.set_person("sub-alice", alice_in(&["ops"])).await;
    let sites = sign_in_as(&mut person, &app, &provider, "sub-alice").await;
    assert!(!sites.body.contains("/sites/blog"), "{}", sites.body);
    let (_, members) = app
        .api_json(app.http.get(app.api("/teams/default/members")))
        .await;
    assert!(
        !members.as_array().unwrap().iter().any(|m| m["login"] == "alice"),
        "{members}"
    );
}

#[tokio::test]
async fn an_answer_with_a_tampered_state_or_declined_at_the_provider_signs_no_one_in_and_is_audited() {
    let provider = Provider::start().await;
    let app = spawn_with(&provider).await;
    provider.set_person("sub-mallory", alice_in(&[])).await;
    let mut person = Person::new();

    let authorize = to_the_provider(&mut person, &app, &provider).await;
    let callback = person.submit(&authorize, &[("sub", "sub-mallory")]).await;
    let mut tampered = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    let refused = person.open(tampered.as_str()).await;
    assert_eq!(refused.status, 401, "{refused:?}");
    assert_eq!(refused.url.path(), "/login/oidc/callback");
    assert!(
        refused.body.contains("state"),
        "the page says why: {}",
        refused.body
    );
    assert!(!person.cookies[&app.base_url].contains_key("jamstack_session"));
    // The sign-in's state is spent: the untouched answer is refused too.
    let replayed = person.open(callback.as_str()).await;
    assert_eq!(replayed.status, 401, "{replayed:?}");
    assert!(
        replayed.body.contains("not started in this browser"),
        "{}",
        replayed.body
    );

    // Declined at the provider.
    let authorize = to_the_provider(&mut person, &app, &provider).await;
    let back = person.submit(&authorize, &[("action", "deny")]).await;
    let declined = person.open(back.as_str()).await;
    assert_eq!(declined.status, 401, "{declined:?}");
    assert!(declined.body.contains("declined"), "{}", declined.body);

    let (_, failed) = app
        .api_json(app.http.get(app.api("/audit?action=sign_in_failed")))
        .await;
    let actors: Vec<&str> = failed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors.len(), 3, "{failed}");
    assert!(
        actors.iter().all(|a| a.starts_with("oidc:http://127.0.0.1:")),
        "{failed}"
    );
    let (_, signed_in) = app.api_json(app.http.get(app.api("/audit?action=sign_in"))).await;
    assert_eq!(signed_in, json!([]));
}

#[tokio::test]
async fn a_provider_down_at_start_is_reached_later_and_meanwhile_the_button_names_it() {
    let port = free_port();
    let settings = OidcSettings::new(
        format!("http://127.0.0.1:{port}"),
        "jamstack-dashboard",
        "a secret",
    );
    let (app, _) = spawn_controller_only_with(move |config| config.oidc = Some(settings)).await;
    let mut person = Person::new();
    let waiting = person.open(&format!("{}/login/oidc", app.base_url)).await;
    assert_eq!(waiting.status, 503, "{waiting:?}");
    assert!(
        waiting.body.contains(&format!("http://127.0.0.1:{port}")),
        "the page names the issuer: {}",
        waiting.body
    );

    let mut provider = Provider::start_on(port);
    provider.wait_until_ready().await;
    provider.set_person("sub-late", alice_in(&[])).await;
    eventually("the controller reaches the provider", || {
        let url = format!("{}/login/oidc", app.base_url);
        let http = person.http.clone();
        async move {
            let answer = http.get(url).send().await.map_err(|e| e.to_string())?;
            match answer.status().as_u16() {
                303 => Ok(()),
                other => Err(format!("/login/oidc answers {other}")),
            }
        }
    })
    .await;
    let landed = sign_in_as(&mut person, &app, &provider, "sub-late").await;
    assert_eq!(landed.url.path(), "/sites", "{landed:?}");
}

#[tokio::test]
async fn a_person_clicks_sign_in_with_the_provider_in_chromium_and_reaches_the_sites_list() {
    let provider = Provider::start().await;
    let app = spawn_with(&provider).await;
    app.connect_site_with("blog", json!({})).await;
    let (status, body) = app
        .api_json(app.http.put(app.api("/teams/default/settings")).json(&json!({
            "max_concurrent_builds": 0,
            "auto_memberships": [{ "source": "oidc-group:web", "role": "viewer" }],
        })))
        .await;
    assert_eq!(status, 200, "{body}");
    provider
        .set_person(
            "sub-carol",
            json!({ "preferred_username": "carol", "groups": ["web"] }),
        )
        .await;

    let browser = app.open_browser().await;
    browser.visit("/login").await;
    assert_eq!(browser.text("#oidc-sign-in").await, "Sign in with Staff ID");
    browser.click("#oidc-sign-in").await;
    browser.fill("input[name=sub]", "sub-carol").await;
    browser
        .click(".form-grid > form:first-child button[type=submit]")
        .await;
    browser.wait_for_path("/sites").await;
    browser
        .wait_for_text("main", "blog", Duration::from_secs(10))
        .await;
    browser.close().await;
}
