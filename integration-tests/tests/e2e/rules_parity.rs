//! Netlify parity, as a table: `_redirects`, `_headers` and the rules of
//! `jamstack.toml`, deployed to a real controller and asked for over real
//! HTTP. Each case is named after what Netlify does (from its
//! documentation and its own parsers, netlify-redirect-parser and
//! netlify-headers-parser); a case that fails names itself and what came
//! back. Cases share a deploy per rule set, so the whole table takes
//! seconds.

use crate::helpers::{SiteRepo, TestApp, manifest_file, spawn_app_with};
use axum::http::{HeaderMap, Uri};
use serde_json::{Value, json};

/// One request and what Netlify answers to it.
struct Case {
    name: &'static str,
    path: String,
    request_headers: Vec<(&'static str, String)>,
    status: u16,
    location: Option<String>,
    /// `(name, value)`; an empty value says the header is absent.
    headers: Vec<(&'static str, String)>,
    body_contains: Option<String>,
}

fn get(name: &'static str, path: impl Into<String>) -> Case {
    Case {
        name,
        path: path.into(),
        request_headers: Vec::new(),
        status: 200,
        location: None,
        headers: Vec::new(),
        body_contains: None,
    }
}

impl Case {
    fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    fn redirects(mut self, status: u16, location: impl Into<String>) -> Self {
        self.status = status;
        self.location = Some(location.into());
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn without(self, name: &'static str) -> Self {
        self.header(name, "")
    }

    fn body(mut self, fragment: impl Into<String>) -> Self {
        self.body_contains = Some(fragment.into());
        self
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.request_headers.push((name, value.into()));
        self
    }
}

/// Asks `label` for every case and returns how many there were; panics
/// naming every case that got another answer.
async fn check(app: &TestApp, label: &str, cases: Vec<Case>) -> usize {
    let mut failures = Vec::new();
    for case in &cases {
        let headers: Vec<(&str, &str)> = case
            .request_headers
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .collect();
        let page = app.visit_with(label, &case.path, &headers).await;
        let mut wrong = Vec::new();
        if page.status != case.status {
            wrong.push(format!("status {} (expected {})", page.status, case.status));
        }
        if let Some(location) = &case.location
            && page.header("location") != location
        {
            wrong.push(format!(
                "Location {:?} (expected {location:?})",
                page.header("location")
            ));
        }
        for (name, value) in &case.headers {
            if page.header(name) != value {
                wrong.push(format!("{name}: {:?} (expected {value:?})", page.header(name)));
            }
        }
        if let Some(fragment) = &case.body_contains
            && !page.body.contains(fragment.as_str())
        {
            let start: String = page.body.chars().take(160).collect();
            wrong.push(format!("body {start:?} (expected to contain {fragment:?})"));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{label} {} — {}: {}",
                case.path,
                case.name,
                wrong.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

async fn make_site(app: &TestApp, name: &str) {
    app.connect_site_with(name, json!({ "repo_url": "/nowhere/repo.git" }))
        .await;
}

/// Deploys `files` (with `jamstack.toml`'s rules as the runner sends
/// them) directly, as `jamstack deploy` does, and publishes them.
/// Returns the status and answer of the step that refused, or of finalize.
async fn deploy(app: &TestApp, site: &str, files: &[(&str, &str)], config_rules: Value) -> (u16, Value) {
    let manifest: Vec<_> = files
        .iter()
        .map(|(p, c)| manifest_file(p, c.as_bytes()))
        .collect();
    let mut body = json!({ "files": manifest });
    if let Value::Object(rules) = config_rules {
        body.as_object_mut().unwrap().extend(rules);
    }
    let (status, started) = app
        .api_json(
            app.http
                .post(app.api(&format!("/sites/{site}/deploys")))
                .json(&body),
        )
        .await;
    if status != 201 {
        return (status, started);
    }
    for hash in started["required"].as_array().unwrap() {
        let hash = hash.as_str().unwrap();
        let (_, content) = files
            .iter()
            .find(|(p, c)| manifest_file(p, c.as_bytes()).sha256 == hash)
            .expect("a required hash is one of the files");
        let (status, body) = app
            .api_json(
                app.http
                    .put(app.api(&format!("/blobs/{hash}")))
                    .body(content.as_bytes().to_vec()),
            )
            .await;
        assert_eq!(status, 201, "uploading {hash}: {body}");
    }
    let id = started["deploy_id"].as_str().unwrap();
    app.api_json(
        app.http
            .post(app.api(&format!("/sites/{site}/deploys/{id}/finalize")))
            .json(&json!({ "publish": true })),
    )
    .await
}

async fn publish(app: &TestApp, site: &str, files: &[(&str, &str)], config_rules: Value) {
    make_site(app, site).await;
    let (status, body) = deploy(app, site, files, config_rules).await;
    assert_eq!(status, 200, "publishing {site}: {body}");
}

/// A `[[redirects]]` rule as the runner sends it.
fn toml_redirect(line: u32, from: &str, to: &str, status: u16, extra: Value) -> Value {
    let mut rule = json!({ "line": line, "from": from, "to": to, "status": status, "force": false });
    if let Value::Object(extra) = extra {
        rule.as_object_mut().unwrap().extend(extra);
    }
    rule
}

fn toml_headers(line: u32, for_path: &str, values: Value) -> Value {
    json!({ "line": line, "for": for_path, "values": values })
}

const MATCHING_REDIRECTS: &str = "\
# Statuses
/old-301 /new 301
/old-302 /new 302
/old-303 /new 303
/old-307 /new 307
/old-308 /new 308
/default /new
/external https://example.com/landing 301
/rewrite /target.html 200
/gone /gone-page.html 410
/legal /legal-page.html 451
/missing /custom-404.html 404
# Placeholders and splats
/blog/:year/:slug /posts/:year-:slug 301
/docs/* /documentation/:splat 301
/files/* /assets/:splat 200
/to-self/* /:splat 302
# Query parameters
/search q=:term /find/:term 302
/only-v2 v=2 /version-two.html 200
# Shadowing and force
/exists.html /not-applied 301
/forced.html /forced-target.html 200!
/shadow-dir /elsewhere 301
/redirect-forced.html /new 302!
# Order: the first rule wins
/first /one 301
/first /two 301
# Trailing slashes do not matter
/trailing/ /trailing-target 301
/no-trailing /no-trailing-target 301
# Conditions that work
/lang /en.html 200 Language=en
/lang /other-lang.html 200
/beta /beta-page.html 200 Cookie=beta
# A status and no target forwards the path
/admin/* 200!
# Encoding
/encoded/:name /to/:name 301
# Host rules
https://rules.localhost/host-only /host-matched.html 200
https://other.example/other-host /never.html 200
# SPA and catch-all
/spa/* /spa/index.html 200
/* /custom-404.html 404
";

fn matching_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("index.html", "home page"),
        ("target.html", "target page"),
        ("gone-page.html", "gone page"),
        ("legal-page.html", "legal page"),
        ("custom-404.html", "custom not found"),
        ("exists.html", "existing file"),
        ("forced.html", "forced original"),
        ("forced-target.html", "forced target"),
        ("redirect-forced.html", "redirect-forced original"),
        ("shadow-dir/index.html", "shadow dir index"),
        ("version-two.html", "version two"),
        ("en.html", "english"),
        ("other-lang.html", "other language"),
        ("beta-page.html", "beta page"),
        ("admin/panel.html", "admin panel"),
        ("assets/app.js", "console.log(1)"),
        ("spa/index.html", "spa shell"),
        ("host-matched.html", "host matched"),
        ("_redirects", MATCHING_REDIRECTS),
    ]
}

fn matching_cases() -> Vec<Case> {
    vec![
        get("a 301 rule redirects with 301", "/old-301").redirects(301, "/new"),
        get("a 302 rule redirects with 302", "/old-302").redirects(302, "/new"),
        get("a 303 rule redirects with 303", "/old-303").redirects(303, "/new"),
        get("a 307 rule redirects with 307", "/old-307").redirects(307, "/new"),
        get("a 308 rule redirects with 308", "/old-308").redirects(308, "/new"),
        get("a rule without a status redirects with 301", "/default").redirects(301, "/new"),
        get("a redirect passes the query string on", "/old-301?utm=x&b=2").redirects(301, "/new?utm=x&b=2"),
        get("a redirect to another site keeps the URL", "/external")
            .redirects(301, "https://example.com/landing"),
        get(
            "a 200 rule rewrites, serving the target under the URL",
            "/rewrite",
        )
        .body("target page")
        .without("location"),
        get("a 410 rule serves its target with 410", "/gone")
            .status(410)
            .body("gone page"),
        get("a 451 rule serves its target with 451", "/legal")
            .status(451)
            .body("legal page"),
        get("a 404 rule serves its target with 404", "/missing")
            .status(404)
            .body("custom not found"),
        get("placeholders fill the target", "/blog/2024/hello").redirects(301, "/posts/2024-hello"),
        get("a placeholder takes one segment only", "/blog/2024/hello/more")
            .status(404)
            .body("custom not found"),
        get("a splat takes the rest of the path", "/docs/guide/intro")
            .redirects(301, "/documentation/guide/intro"),
        get("a splat also matches nothing", "/docs/").redirects(301, "/documentation/"),
        get("a splat matches the bare directory", "/docs").redirects(301, "/documentation/"),
        get("a splat rewrite serves the file it names", "/files/app.js").body("console.log(1)"),
        get(
            "a doubled slash in a splat cannot make a Location leave the site",
            "/to-self//evil.example",
        )
        .redirects(302, "/evil.example"),
        get("a query placeholder fills the target", "/search?q=rust").redirects(302, "/find/rust"),
        get("a rule on a query parameter needs it", "/search")
            .status(404)
            .body("custom not found"),
        get("a literal query value must match", "/only-v2?v=2").body("version two"),
        get("another query value does not match", "/only-v2?v=1")
            .status(404)
            .body("custom not found"),
        get("an existing file shadows a rule", "/exists.html").body("existing file"),
        get("a forced rule applies over an existing file", "/forced.html").body("forced target"),
        get(
            "a forced redirect applies over an existing file",
            "/redirect-forced.html",
        )
        .redirects(302, "/new"),
        get("a directory with an index shadows a rule", "/shadow-dir").redirects(301, "/shadow-dir/"),
        get("the directory's index is served", "/shadow-dir/").body("shadow dir index"),
        get("the first matching rule wins", "/first").redirects(301, "/one"),
        get(
            "a rule written with a trailing slash matches without",
            "/trailing",
        )
        .redirects(301, "/trailing-target"),
        get("a rule written with a trailing slash matches with", "/trailing/")
            .redirects(301, "/trailing-target"),
        get(
            "a rule written without a trailing slash matches with",
            "/no-trailing/",
        )
        .redirects(301, "/no-trailing-target"),
        get("rules match paths case-sensitively", "/OLD-301")
            .status(404)
            .body("custom not found"),
        get("a Language condition applies to that language", "/lang")
            .with("Accept-Language", "en-GB,en;q=0.9")
            .body("english"),
        get("a Language condition skips other languages", "/lang")
            .with("Accept-Language", "de")
            .body("other language"),
        get("a Cookie condition applies with the cookie", "/beta")
            .with("Cookie", "beta=1")
            .body("beta page"),
        get("a Cookie condition skips without it", "/beta")
            .status(404)
            .body("custom not found"),
        get("a status without a target forwards the path", "/admin/panel.html").body("admin panel"),
        get("a forwarded path with no file is not found", "/admin/nothing").status(404),
        get(
            "a placeholder value is percent-encoded in a Location",
            "/encoded/a%20b",
        )
        .redirects(301, "/to/a%20b"),
        get("a rule for this hostname applies", "/host-only").body("host matched"),
        get("a rule for another hostname does not", "/other-host")
            .status(404)
            .body("custom not found"),
        get("an SPA fallback serves the shell for any path", "/spa/users/7").body("spa shell"),
        get("an SPA fallback does not hide real files", "/spa/").body("spa shell"),
        get("a catch-all 404 rule serves its page", "/nowhere/at/all")
            .status(404)
            .body("custom not found"),
        get("the home page is served, not the catch-all", "/").body("home page"),
        get("the rule file itself is not served", "/_redirects").status(404),
        get("pretty URLs serve page.html for page", "/target").body("target page"),
        get("a rewrite keeps working with a query string", "/rewrite?x=1").body("target page"),
        get(
            "a placeholder redirect passes the query on",
            "/blog/2024/hi?ref=x",
        )
        .redirects(301, "/posts/2024-hi?ref=x"),
        get("a splat redirect passes the query on", "/docs/a?b=c").redirects(301, "/documentation/a?b=c"),
        get("a query rule ignores other parameters", "/search?page=2&q=go").redirects(302, "/find/go"),
        get("a Language condition takes a regional tag", "/lang")
            .with("Accept-Language", "en-US")
            .body("english"),
        get("a Cookie condition finds the cookie among others", "/beta")
            .with("Cookie", "a=1; beta=yes")
            .body("beta page"),
        get("a later rule for the same path stays shadowed", "/first/").redirects(301, "/one"),
        get("a pretty URL shadows a rule like a file", "/gone-page").body("gone page"),
    ]
}

const HEADERS_FILE: &str = "\
/*
  X-Site: everywhere
/exact.html
  X-Exact: yes
/Case/Insensitive.html
  X-Case: matched
/dir/*
  X-Dir: yes
/*.css
  X-Css: yes
/blog/:slug
  X-Post: yes
/multi.html
  Cache-Control: max-age=0
  Cache-Control: no-cache
/twice.html
  X-Twice: first
  X-Kept: kept
/twice.html
  X-Twice: second
/both.html
  X-Both: from-file
/ignored-path
this line has no colon and is ignored
/vary.html
  X-After-Ignored: yes
/double//slash.html
  X-Double: yes
/secret/*
  Basic-Auth: ann:open-sesame bob:builder
  X-Secret: yes
";

fn headers_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("index.html", "home"),
        ("exact.html", "exact"),
        ("other.html", "other"),
        ("case/insensitive.html", "case"),
        ("dir/index.html", "dir index"),
        ("dir/sub/page.html", "dir page"),
        ("style.css", "body{}"),
        ("dir/x.css", "p{}"),
        ("blog/hello.html", "post"),
        ("blog/hello/extra.html", "extra"),
        ("multi.html", "multi"),
        ("twice.html", "twice"),
        ("both.html", "both"),
        ("toml.html", "toml"),
        ("csp.html", "csp"),
        ("noslash.html", "noslash"),
        ("spaces.html", "spaces"),
        ("array.html", "array"),
        ("vary.html", "vary"),
        ("double/slash.html", "double"),
        ("secret/page.html", "secret page"),
        ("_headers", HEADERS_FILE),
    ]
}

fn headers_config() -> Value {
    json!({
        "headers": [
            toml_headers(1, "/both.html", json!({ "X-Both": "from-toml" })),
            toml_headers(4, "/toml.html", json!({ "X-Toml": "yes" })),
            toml_headers(
                7,
                "/csp.html",
                json!({ "Content-Security-Policy": "\n  default-src 'self';\n  img-src *\n", "Cache-Control": "max-age=0,\n  no-cache,no-store" }),
            ),
            toml_headers(12, "noslash.html", json!({ "X-No-Slash": "given one" })),
            toml_headers(15, "  /spaces.html  ", json!({ " X-Spaces ": "  trimmed  " })),
            toml_headers(18, "/vary.html", json!({ "X-Toml-Vary": "yes" })),
        ]
    })
}

fn basic(pair: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

fn headers_cases() -> Vec<Case> {
    vec![
        get("a /* rule applies to every path", "/other.html").header("x-site", "everywhere"),
        get("a /* rule applies to the root", "/").header("x-site", "everywhere"),
        get("a /* rule applies deep in folders", "/dir/sub/page.html").header("x-site", "everywhere"),
        get("an exact path gets its headers", "/exact.html").header("x-exact", "yes"),
        get("an exact path's headers stay on it", "/other.html").without("x-exact"),
        get("header paths match regardless of case", "/case/insensitive.html").header("x-case", "matched"),
        get("a directory wildcard applies below it", "/dir/sub/page.html").header("x-dir", "yes"),
        get("a directory wildcard applies to the directory", "/dir/").header("x-dir", "yes"),
        get("a wildcard inside a segment matches", "/style.css").header("x-css", "yes"),
        get("a wildcard inside a segment matches at any depth", "/dir/x.css")
            .header("x-css", "yes")
            .header("x-dir", "yes"),
        get("a placeholder path matches one segment", "/blog/hello").header("x-post", "yes"),
        get("a placeholder path does not match two", "/blog/hello/extra.html").without("x-post"),
        get(
            "a header named twice under one path sends both values",
            "/multi.html",
        )
        .header("cache-control", "max-age=0, no-cache"),
        get("the same path twice: the later value wins", "/twice.html").header("x-twice", "second"),
        get("the same path twice: other headers stay", "/twice.html").header("x-kept", "kept"),
        get(
            "_headers and jamstack.toml for one path: jamstack.toml wins",
            "/both.html",
        )
        .header("x-both", "from-toml"),
        get("a jamstack.toml header rule applies", "/toml.html").header("x-toml", "yes"),
        get("a multi-line value is one line", "/csp.html")
            .header("content-security-policy", "default-src 'self'; img-src *"),
        get("listed values are separated by comma and space", "/csp.html")
            .header("cache-control", "max-age=0, no-cache, no-store"),
        get("a path without a leading slash is given one", "/noslash.html").header("x-no-slash", "given one"),
        get(
            "whitespace around paths, names and values is trimmed",
            "/spaces.html",
        )
        .header("x-spaces", "trimmed"),
        get(
            "a path with no headers is ignored, the rest applies",
            "/vary.html",
        )
        .header("x-after-ignored", "yes")
        .header("x-toml-vary", "yes"),
        get(
            "empty segments in a header path are ignored",
            "/double/slash.html",
        )
        .header("x-double", "yes"),
        get("rule headers apply to a not-found page", "/no-such-page")
            .status(404)
            .header("x-site", "everywhere"),
        get("Basic-Auth asks for credentials", "/secret/page.html")
            .status(401)
            .without("x-secret"),
        get("Basic-Auth refuses a wrong password", "/secret/page.html")
            .with("Authorization", basic("ann:wrong"))
            .status(401),
        get("Basic-Auth lets a listed user in", "/secret/page.html")
            .with("Authorization", basic("bob:builder"))
            .body("secret page")
            .header("x-secret", "yes")
            .without("basic-auth"),
        get("Basic-Auth lets any listed user in", "/secret/page.html")
            .with("Authorization", basic("ann:open-sesame"))
            .body("secret page"),
        get(
            "Basic-Auth paths match regardless of case too",
            "/SECRET/page.html",
        )
        .status(401),
        get("Basic-Auth leaves other paths open", "/exact.html").body("exact"),
        get("the headers file itself is not served", "/_headers").status(404),
    ]
}

/// An upstream on loopback that answers with what it was asked:
/// `/echo/...` with the method, URI and `X-From`; `/moved` with a 302.
async fn start_upstream() -> u16 {
    async fn echo(uri: Uri, headers: HeaderMap) -> String {
        let from = headers.get("x-from").and_then(|v| v.to_str().ok()).unwrap_or("-");
        format!("upstream uri={uri} x-from={from}")
    }
    let app = axum::Router::new()
        .route("/echo/{*rest}", axum::routing::any(echo))
        .route(
            "/moved",
            axum::routing::get(|| async {
                (
                    axum::http::StatusCode::FOUND,
                    [(axum::http::header::LOCATION, "/elsewhere")],
                )
            }),
        )
        .route(
            "/missing",
            axum::routing::get(|| async { (axum::http::StatusCode::NOT_FOUND, "upstream missing") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn proxy_files(upstream: u16) -> Vec<(&'static str, String)> {
    let redirects = format!(
        "/api/* http://127.0.0.1:{upstream}/echo/:splat 200\n\
         /item/:id http://127.0.0.1:{upstream}/echo/item/:id 200\n\
         /lookup id=:id http://127.0.0.1:{upstream}/echo/lookup/:id 200\n\
         /file.html http://127.0.0.1:{upstream}/echo/shadowed 200\n\
         /forced.html http://127.0.0.1:{upstream}/echo/forced 200!\n\
         /moved http://127.0.0.1:{upstream}/moved 200\n\
         /upstream-404 http://127.0.0.1:{upstream}/missing 200\n\
         /away http://127.0.0.1:{upstream}/echo/away 302\n"
    );
    vec![
        ("index.html", "home".to_owned()),
        ("file.html", "local file".to_owned()),
        ("forced.html", "local forced".to_owned()),
        ("_redirects", redirects),
        ("_headers", "/api/*\n  X-Api: yes\n".to_owned()),
    ]
}

fn proxy_config(upstream: u16) -> Value {
    json!({
        "redirects": [toml_redirect(
            3,
            "/toml-api/*",
            &format!("http://127.0.0.1:{upstream}/echo/toml/:splat"),
            200,
            json!({ "headers": { "X-From": "jamstack.toml" } }),
        )]
    })
}

fn proxy_cases(upstream: u16) -> Vec<Case> {
    vec![
        get("a 200 rule to a URL proxies with the splat", "/api/users/7").body("upstream uri=/echo/users/7 "),
        get("a proxy passes the query string on", "/api/search?q=a&page=2")
            .body("upstream uri=/echo/search?q=a&page=2 "),
        get("a proxy fills placeholders", "/item/42").body("upstream uri=/echo/item/42 "),
        get("a proxy fills query placeholders", "/lookup?id=9").body("upstream uri=/echo/lookup/9 "),
        get("custom headers do not apply to proxied answers", "/api/x")
            .body("upstream uri=/echo/x ")
            .without("x-api"),
        get("an existing file shadows a proxy rule", "/file.html").body("local file"),
        get("a forced proxy rule applies over a file", "/forced.html").body("upstream uri=/echo/forced "),
        get("the upstream's redirect is passed back, not followed", "/moved").redirects(302, "/elsewhere"),
        get("the upstream's status is passed back", "/upstream-404")
            .status(404)
            .body("upstream missing"),
        get("a redirect to a URL is a redirect, not a proxy", "/away")
            .redirects(302, format!("http://127.0.0.1:{upstream}/echo/away")),
        get("jamstack.toml proxy rules send their headers", "/toml-api/a")
            .body("upstream uri=/echo/toml/a x-from=jamstack.toml"),
        get("a proxy rule sends no headers it was not given", "/api/plain").body("x-from=-"),
        get("paths outside the proxy rules are served locally", "/").body("home"),
    ]
}

/// A set of rules Netlify refuses, and a fragment of the reason we give.
struct Refusal {
    name: &'static str,
    files: Vec<(&'static str, &'static str)>,
    config: Value,
    reason: &'static str,
}

fn refused_file(name: &'static str, file: &'static str, text: &'static str, reason: &'static str) -> Refusal {
    Refusal {
        name,
        files: vec![("index.html", "home"), (file, text)],
        config: Value::Null,
        reason,
    }
}

fn refused_config(name: &'static str, config: Value, reason: &'static str) -> Refusal {
    Refusal {
        name,
        files: vec![("index.html", "home")],
        config,
        reason,
    }
}

fn refusals() -> Vec<Refusal> {
    vec![
        refused_file("a rule without a target", "_redirects", "/a\n", "_redirects:1"),
        refused_file(
            "a status without a target on a path without a splat",
            "_redirects",
            "/a 200\n",
            "ending in `/*`",
        ),
        refused_file(
            "a redirect status without a target",
            "_redirects",
            "/a/* 301\n",
            "ending in `/*`",
        ),
        refused_file(
            "a path not starting with a slash",
            "_redirects",
            "a /b\n",
            "is not a path",
        ),
        refused_file(
            "a target that is neither a path nor a URL",
            "_redirects",
            "/a b\n",
            "is not a path",
        ),
        refused_file(
            "an unsupported status",
            "_redirects",
            "/a /b 418\n",
            "status 418 is not supported",
        ),
        refused_file(
            "a rule for a /.netlify path",
            "_redirects",
            "/.netlify/functions/x /y 200\n",
            "/.netlify",
        ),
        refused_file(
            "a rule for /.netlify itself",
            "_redirects",
            "/.netlify /y 301\n",
            "reserved",
        ),
        refused_file(
            "a malformed URL target",
            "_redirects",
            "/a https://exa%mple.com/ 200\n",
            "not a valid URL",
        ),
        refused_file(
            "a URL with an impossible port",
            "_redirects",
            "/a http://example.com:99999/ 302\n",
            "not a valid URL",
        ),
        refused_file(
            "an unclosed IPv6 host",
            "_redirects",
            "/a http://[::1/x 302\n",
            "not a valid URL",
        ),
        refused_file(
            "a splat before the end of a path",
            "_redirects",
            "/a/*/b /c 301\n",
            "whole last segment",
        ),
        refused_file(
            "a placeholder with odd characters",
            "_redirects",
            "/a/:b-c /d 301\n",
            "not a placeholder",
        ),
        refused_file(
            "a question mark in a rule's path",
            "_redirects",
            "/a?b=1 /c 301\n",
            "match query parameters",
        ),
        refused_file(
            "a query parameter without a name",
            "_redirects",
            "/a =x /b 301\n",
            "without a name",
        ),
        refused_file(
            "a 404 rule to another site",
            "_redirects",
            "/a https://example.com/ 404\n",
            "another site's page",
        ),
        refused_file(
            "a Country condition (refused today)",
            "_redirects",
            "/a /b 302 Country=us\n",
            "Country",
        ),
        refused_file(
            "a Role condition (refused today)",
            "_redirects",
            "/a /b 200 Role=admin\n",
            "Role",
        ),
        refused_file(
            "an unknown condition",
            "_redirects",
            "/a /b 302 Planet=mars\n",
            "unknown condition",
        ),
        refused_file(
            "a target that is not valid percent-encoding",
            "_redirects",
            "/a /%FF 200\n",
            "percent-encoded",
        ),
        refused_file(
            "a header before any path",
            "_headers",
            "X-A: b\n/a\n  X-B: c\n",
            "before any path",
        ),
        refused_file(
            "a header with no value",
            "_headers",
            "/a\n  X-Empty:\n",
            "has no value",
        ),
        refused_file(
            "a header with no name",
            "_headers",
            "/a\n  : value\n",
            "no header name",
        ),
        refused_file(
            "a header name with a space",
            "_headers",
            "/a\n  Bad Name: 1\n",
            "not a valid header name",
        ),
        refused_file(
            "a header the server owns",
            "_headers",
            "/a\n  Content-Length: 5\n",
            "set by the server",
        ),
        refused_file(
            "a cookie set by a rule",
            "_headers",
            "/a\n  Set-Cookie: a=b\n",
            "cookie",
        ),
        refused_file(
            "a path line with two paths",
            "_headers",
            "/a /b\n  X: y\n",
            "one path",
        ),
        refused_file(
            "Basic-Auth without a password",
            "_headers",
            "/a\n  Basic-Auth: ann\n",
            "user:password",
        ),
        refused_file(
            "a malformed URL header path",
            "_headers",
            "https://exa%mple.com/*\n  X: y\n",
            "not a valid URL",
        ),
        refused_file(
            "a _redirects folder",
            "_redirects/rules",
            "/a /b\n",
            "is a folder",
        ),
        refused_file(
            "a _headers folder",
            "_headers/rules",
            "/a\n  X: y\n",
            "is a folder",
        ),
        refused_config(
            "a jamstack.toml rule for a /.netlify path",
            json!({ "redirects": [toml_redirect(4, "/.netlify/x", "/y", 200, Value::Null)] }),
            "jamstack.toml:4",
        ),
        refused_config(
            "a jamstack.toml rule with an unsupported status",
            json!({ "redirects": [toml_redirect(6, "/a", "/b", 999, Value::Null)] }),
            "status 999",
        ),
        refused_config(
            "headers on a jamstack.toml rule that does not proxy",
            json!({ "redirects": [toml_redirect(2, "/a", "/b", 301, json!({ "headers": { "X-A": "b" } }))] }),
            "does not proxy",
        ),
        refused_config(
            "a jamstack.toml proxy setting Host",
            json!({ "redirects": [toml_redirect(2, "/a/*", "https://example.com/:splat", 200, json!({ "headers": { "Host": "evil" } }))] }),
            "set by the proxy",
        ),
        refused_config(
            "a jamstack.toml Country condition (refused today)",
            json!({ "redirects": [toml_redirect(2, "/a", "/b", 302, json!({ "conditions": { "country": ["US"] } }))] }),
            "Country",
        ),
        refused_config(
            "a jamstack.toml header the server owns",
            json!({ "headers": [toml_headers(9, "/*", json!({ "ETag": "x" }))] }),
            "jamstack.toml:9",
        ),
        refused_config(
            "a jamstack.toml malformed URL target",
            json!({ "redirects": [toml_redirect(3, "/a", "https://exa mple.com/", 301, Value::Null)] }),
            "not a valid URL",
        ),
    ]
}

async fn check_refusals(app: &TestApp) -> usize {
    make_site(app, "refused").await;
    let cases = refusals();
    let mut failures = Vec::new();
    for case in &cases {
        let (status, body) = deploy(app, "refused", &case.files, case.config.clone()).await;
        let error = body["error"].as_str().unwrap_or_default();
        if status != 400 || !error.contains(case.reason) {
            failures.push(format!(
                "{}: {status} {body} (expected 400 naming {:?})",
                case.name, case.reason
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} refusals failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let site = app.get_json("/sites/refused").await;
    assert_eq!(
        site["published_deploy_id"],
        Value::Null,
        "nothing refused went live"
    );
    cases.len()
}

async fn protect(app: &TestApp, site: &str, body: Value) {
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api(&format!("/sites/{site}/protection")))
                .json(&body),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The `name=value` of the access cookie that signing in with `password`
/// on `label` sets, and the answer's status.
async fn signed_in_cookie(app: &TestApp, label: &str, password: &str) -> (u16, String) {
    let answer = crate::protection::sign_in(app, label, password, "/").await;
    let cookie = answer
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    (answer.status, cookie)
}

async fn check_protection(app: &TestApp) -> usize {
    publish(
        app,
        "vault",
        &[
            ("index.html", "vault secret"),
            ("page.html", "page secret"),
            ("_redirects", "/old /page 301\n/* /index.html 200\n"),
            ("_headers", "/*\n  X-Vault: yes\n"),
        ],
        Value::Null,
    )
    .await;
    protect(
        app,
        "vault",
        json!({ "production": "password", "password": "open sesame" }),
    )
    .await;
    let (status, wrong) = signed_in_cookie(app, "vault", "wrong").await;
    assert_ne!(status, 303, "a wrong password signs nobody in");
    assert!(wrong.is_empty(), "a wrong password sets no cookie: {wrong}");
    let (_, cookie) = signed_in_cookie(app, "vault", "open sesame").await;
    assert!(!cookie.is_empty(), "signing in sets the access cookie");
    let (status, share) = app
        .api_json(
            app.http
                .post(app.api("/sites/vault/share-links"))
                .json(&json!({ "expires_in_seconds": 60 })),
        )
        .await;
    assert_eq!(status, 200, "{share}");
    let share_path = share["url"]
        .as_str()
        .unwrap()
        .split_once(&format!(":{}", app.port))
        .unwrap()
        .1
        .to_owned();
    let opened = app.visit("vault", &share_path).await;
    let share_cookie = opened
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let cases = vec![
        get("a protected site asks for its password", "/")
            .status(401)
            .body("/.jamstack/sign-in")
            .header("cache-control", "no-store"),
        get("a protected site hides its redirects too", "/old")
            .status(401)
            .without("location"),
        get("a protected site hides its rewrites too", "/anything").status(401),
        get("a protected site hides its rule headers", "/")
            .status(401)
            .without("x-vault"),
        get("a made-up cookie is refused", "/")
            .with("Cookie", "jamstack_access=forged")
            .status(401),
        get("the access cookie opens the site", "/")
            .with("Cookie", cookie.clone())
            .body("vault secret")
            .header("x-vault", "yes"),
        get("the access cookie's answers are private", "/page.html")
            .with("Cookie", cookie.clone())
            .body("page secret")
            .header("cache-control", "private, max-age=0, must-revalidate"),
        get("signed in, redirects apply", "/old")
            .with("Cookie", cookie.clone())
            .redirects(301, "/page"),
        get("signed in, rewrites apply", "/deep/link")
            .with("Cookie", cookie.clone())
            .body("vault secret"),
        get("a share link takes its token out of the URL", share_path.clone()).redirects(303, "/"),
        get("a share link's cookie opens the site", "/")
            .with("Cookie", share_cookie)
            .body("vault secret"),
    ];
    check(app, "vault", cases).await + 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netlifys_rules_table_is_served_the_way_netlify_serves_it() {
    let app = spawn_app_with(|config| config.proxy.allow_private_targets = true).await;
    let upstream = start_upstream().await;
    let mut total = 0;

    publish(&app, "rules", &matching_files(), Value::Null).await;
    total += check(&app, "rules", matching_cases()).await;

    publish(&app, "headers", &headers_files(), headers_config()).await;
    total += check(&app, "headers", headers_cases()).await;

    let files = proxy_files(upstream);
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    publish(&app, "proxied", &files, proxy_config(upstream)).await;
    total += check(&app, "proxied", proxy_cases(upstream)).await;

    total += check_refusals(&app).await;
    total += check_protection(&app).await;
    total += check_toml_through_a_build(&app).await;

    assert!(
        total >= 150,
        "the table has {total} cases; it should hold at least 150"
    );
}

const PARITY_TOML: &str = r#"
[build]
publish = "site"

[[redirects]]
from = "  toml-old  "
to = " /target.html "
status = "302"

[[redirects]]
from = "/toml-forced.html"
to = "/target.html"
status = "200!"

[[redirects]]
from = "/toml-admin/*"
to = "/toml-admin/:splat"
status = 200
force = true

[[headers]]
for = "toml-page.html"
[headers.values]
Cache-Control = ["max-age=60", " public "]
X-Multi = '''
  one,
  two'''
"#;

/// `jamstack.toml` as the runner reads it, through a real build (one
/// without a command: the repository's folder is deployed as it is).
async fn check_toml_through_a_build(app: &TestApp) -> usize {
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[
            ("jamstack.toml", PARITY_TOML),
            ("site/index.html", "toml home"),
            ("site/target.html", "toml target"),
            ("site/toml-forced.html", "toml original"),
            ("site/toml-page.html", "toml page"),
            ("site/toml-admin/a.html", "toml admin"),
            ("site/_headers", "/empty\nno colon here\n/*\n  X-Toml-Site: yes\n"),
        ],
        "toml rules",
    );
    app.connect_site("tomlsite", &repo, "octo/tomlsite").await;
    let build = app.push("octo/tomlsite", &repo, &sha).await;
    app.wait_for_success(build).await;
    let log = app.build_log(build).await;
    let mut warnings = 0;
    for line in [
        "Warning: _headers:2: `no colon here` is neither a path",
        "Warning: _headers:1: the path `/empty` has no headers under it; it is ignored",
    ] {
        assert!(log.contains(line), "the build log lacks {line:?}:\n{log}");
        warnings += 1;
    }
    let cases = vec![
        get("a status given as a string is read", "/toml-old").redirects(302, "/target.html"),
        get("a path without a leading slash is given one", "/toml-old/").redirects(302, "/target.html"),
        get("a status given as \"200!\" forces the rule", "/toml-forced.html").body("toml target"),
        get(
            "a forced splat rule to its own path serves the file",
            "/toml-admin/a.html",
        )
        .body("toml admin"),
        get("header values given as an array are joined", "/toml-page.html")
            .header("cache-control", "max-age=60, public"),
        get("a multi-line value is joined", "/toml-page.html").header("x-multi", "one, two"),
        get("_headers still applies beside jamstack.toml", "/toml-page.html").header("x-toml-site", "yes"),
    ];
    check(app, "tomlsite", cases).await + warnings
}
