//! The rules against a table of cases, written from Netlify's documentation
//! of `_redirects` ("Redirects and rewrites", "Redirect options", "Rewrites
//! and proxies") and `_headers` ("Custom headers").

use super::*;

fn compile(redirects: &str, headers: &str) -> Rules {
    RuleSet {
        redirects: parse_redirects_file(redirects).unwrap(),
        headers: parse_headers_file(headers).unwrap(),
    }
    .compile()
    .unwrap()
}

struct Visit<'a> {
    url: &'a str,
    host: &'a str,
    exists: bool,
    language: Option<&'a str>,
    cookie: Option<&'a str>,
}

fn visit(url: &str) -> Visit<'_> {
    Visit {
        url,
        host: "site.localhost",
        exists: false,
        language: None,
        cookie: None,
    }
}

impl Visit<'_> {
    fn existing(mut self) -> Self {
        self.exists = true;
        self
    }

    fn on(self, rules: &Rules) -> Option<Action> {
        let (path, query) = self
            .url
            .split_once('?')
            .map_or((self.url, None), |(p, q)| (p, Some(q)));
        let request = Request {
            path,
            query,
            host: self.host,
            accept_language: self.language,
            cookie: self.cookie,
            ..Request::default()
        };
        rules.redirect_for(&request, self.exists)
    }
}

fn redirect(status: u16, location: &str) -> Option<Action> {
    Some(Action::Redirect {
        status,
        location: location.to_owned(),
    })
}

fn rewrite(status: u16, path: &str) -> Option<Action> {
    Some(Action::Rewrite {
        status,
        path: path.to_owned(),
    })
}

#[test]
fn redirects_follow_netlifys_documented_examples() {
    let rules = compile(include_str!("../testdata/netlify-examples._redirects"), "");
    let table: &[(&str, Option<Action>)] = &[
        ("/home", redirect(301, "/")),
        ("/blog/my-post.php", redirect(301, "/blog/my-post")),
        ("/news", redirect(301, "/blog")),
        ("/cuties", redirect(301, "https://www.petsofnetlify.com")),
        // Rules match the decoded path; the target keeps its encoding.
        ("/authors/céline", redirect(301, "/authors/about-c%C3%A9line")),
        ("/my-redirect", redirect(302, "/")),
        ("/pass-through", rewrite(200, "/index.html")),
        ("/ecommerce", rewrite(404, "/store-closed")),
        ("/gone", rewrite(410, "/gone.html")),
        // Splats take the rest of the path, also several segments, also none.
        (
            "/shop/2004/01/10/my-story",
            redirect(301, "/store/2004/01/10/my-story"),
        ),
        ("/shop", redirect(301, "/store/")),
        // Placeholders take one segment each, in any order in the target.
        (
            "/news/02/12/2004/my-story",
            redirect(301, "/blog/2004/02/12/my-story"),
        ),
        ("/news/02/12/2004", None),
        // Query parameters: matched, bound, and not passed on.
        ("/store?id=my-blog-post", redirect(301, "/blog/my-blog-post")),
        ("/store", None),
        ("/store?other=1", None),
        ("/articles?id=7&tag=rust", redirect(301, "/posts/rust/7")),
        ("/articles?id=7", None),
        ("/catalog?kind=books", redirect(302, "/books")),
        ("/catalog?kind=films", None),
        // Without query rules, the query string travels to the target.
        ("/home?utm=mail", redirect(301, "/?utm=mail")),
        // A trailing slash does not matter; case does.
        ("/home/", redirect(301, "/")),
        ("/Home", None),
        ("/nothing-here", None),
    ];
    for (url, expected) in table {
        assert_eq!(visit(url).on(&rules), *expected, "{url}");
    }
}

#[test]
fn existing_files_shadow_rules_unless_forced() {
    let rules = compile(
        "/app/*  /app/index.html  200
/blog/*  /news/:splat      301!
",
        "",
    );
    assert_eq!(visit("/app/settings").on(&rules), rewrite(200, "/app/index.html"));
    assert_eq!(visit("/app/style.css").existing().on(&rules), None);
    assert_eq!(
        visit("/blog/post.html").existing().on(&rules),
        redirect(301, "/news/post.html"),
        "`!` forces the rule over the file"
    );
}

#[test]
fn the_first_matching_rule_wins_and_a_shadowed_one_lets_later_forced_ones_apply() {
    let rules = compile(
        "/a  /first   302
/a  /second  302
/*  /index.html 200
/b  /never   302
/c  /forced  302!
",
        "",
    );
    assert_eq!(visit("/a").on(&rules), redirect(302, "/first"));
    assert_eq!(visit("/b").on(&rules), rewrite(200, "/index.html"));
    assert_eq!(visit("/c").existing().on(&rules), redirect(302, "/forced"));
}

#[test]
fn an_spa_fallback_serves_index_html_for_every_missing_path() {
    let rules = compile("/*  /index.html  200\n", "");
    for url in ["/dashboard", "/dashboard/settings/", "/users/42?tab=profile"] {
        assert_eq!(visit(url).on(&rules), rewrite(200, "/index.html"), "{url}");
    }
    assert_eq!(visit("/").existing().on(&rules), None);
    assert_eq!(visit("/assets/app.js").existing().on(&rules), None);
}

#[test]
fn conditions_on_language_cookies_and_hosts() {
    let rules = compile(
        "/       /de/        302!  Language=de
/       /en/        302!  Language=en,en-gb
/*      /beta/:splat 200!  Cookie=beta,preview
https://blog.example.com/*  https://example.com/blog/:splat  301!
",
        "",
    );
    let german = Visit {
        language: Some("de-CH, de;q=0.9, en;q=0.8"),
        ..visit("/").existing()
    };
    assert_eq!(german.on(&rules), redirect(302, "/de/"));
    let english = Visit {
        language: Some("en-US,en;q=0.9"),
        ..visit("/").existing()
    };
    assert_eq!(english.on(&rules), redirect(302, "/en/"));
    let french = Visit {
        language: Some("fr"),
        ..visit("/").existing()
    };
    assert_eq!(french.on(&rules), None);
    let tester = Visit {
        cookie: Some("session=1; preview=yes"),
        ..visit("/pricing").existing()
    };
    assert_eq!(tester.on(&rules), rewrite(200, "/beta/pricing"));
    let other_host = Visit {
        host: "blog.example.com",
        ..visit("/2020/post").existing()
    };
    assert_eq!(
        other_host.on(&rules),
        redirect(301, "https://example.com/blog/2020/post")
    );
    assert_eq!(visit("/2020/post").existing().on(&rules), None);
}

#[test]
fn placeholder_values_are_encoded_in_locations_and_kept_decoded_in_rewrites() {
    let rules = compile(
        "/old/:name /new/:name 301\n/page/:name /pages/:name.html 200\n",
        "",
    );
    assert_eq!(
        visit("/old/café menu").on(&rules),
        redirect(301, "/new/caf%C3%A9%20menu")
    );
    assert_eq!(visit("/page/café").on(&rules), rewrite(200, "/pages/café.html"));
}

fn refused_redirects(text: &str) -> RuleError {
    match parse_redirects_file(text) {
        Err(e) => e,
        Ok(redirects) => RuleSet {
            redirects,
            headers: Vec::new(),
        }
        .compile()
        .expect_err(text),
    }
}

#[test]
fn mistakes_in_redirects_name_the_line_and_the_reason() {
    let cases: &[(&str, &str, &str)] = &[
        ("# comment\n\n/a\n", "_redirects:3", "has no target"),
        ("/a /b 999\n", "_redirects:1", "status 999 is not supported"),
        ("/a /b 301 nonsense\n", "_redirects:1", "unexpected `nonsense`"),
        (
            "/a /b 301 Colour=red\n",
            "_redirects:1",
            "unknown condition `Colour`",
        ),
        ("/ok /fine\nold /new\n", "_redirects:2", "`old` is not a path"),
        ("/a b\n", "_redirects:1", "the target `b` is not a path"),
        (
            "/a/*/b /c\n",
            "_redirects:1",
            "`*` may only be a whole last segment",
        ),
        ("/a/: /c\n", "_redirects:1", "is not a placeholder"),
        ("/a?x=1 /c\n", "_redirects:1", "not with `?`"),
        (
            "/api/* https://api.example.com/:splat 404\n",
            "_redirects:1",
            "another site's page",
        ),
    ];
    for (text, origin, reason) in cases {
        let error = refused_redirects(text);
        assert_eq!(error.origin, *origin, "{text:?}: {error}");
        assert!(error.message.contains(reason), "{text:?}: {error}");
    }
}

#[test]
fn headers_follow_netlifys_documented_examples() {
    let rules = compile(
        "",
        "# a path:
/templates/index.html
  # headers for that path:
  X-Frame-Options: DENY
  X-XSS-Protection: 1; mode=block
# another path:
/templates/index2.html
  X-Frame-Options: SAMEORIGIN
# multi-value header:
/*
  cache-control: max-age=0
  cache-control: no-cache
  cache-control: no-store
  cache-control: must-revalidate
/assets/*
  X-Asset: yes
/*.css
  X-Style: yes
/blog/:slug
  X-Post: yes
",
    );
    let headers = |path: &str| -> Vec<(String, String)> {
        rules
            .headers_for(path)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect()
    };
    let cache = (
        "cache-control".to_owned(),
        "max-age=0, no-cache, no-store, must-revalidate".to_owned(),
    );
    assert_eq!(
        headers("/templates/index.html"),
        vec![
            ("x-frame-options".into(), "DENY".into()),
            ("x-xss-protection".into(), "1; mode=block".into()),
            cache.clone(),
        ]
    );
    assert_eq!(
        headers("/templates/index2.html"),
        vec![("x-frame-options".into(), "SAMEORIGIN".into()), cache.clone()]
    );
    assert_eq!(headers("/"), vec![cache.clone()]);
    assert_eq!(
        headers("/assets/"),
        vec![cache.clone(), ("x-asset".into(), "yes".into())]
    );
    assert_eq!(
        headers("/assets/deep/style.css"),
        vec![
            cache.clone(),
            ("x-asset".into(), "yes".into()),
            ("x-style".into(), "yes".into())
        ]
    );
    assert_eq!(
        headers("/blog/hello/"),
        vec![cache.clone(), ("x-post".into(), "yes".into())]
    );
    assert_eq!(headers("/blog/hello/comments"), vec![cache]);
}

#[test]
fn mistakes_in_headers_name_the_line_and_the_reason() {
    let cases: &[(&str, &str, &str)] = &[
        ("X-Frame-Options: DENY\n", "_headers:1", "comes before any path"),
        ("/a\n  X-Empty:\n", "_headers:2", "has no value"),
        ("/a\n  : value\n", "_headers:2", "no header name"),
        ("/a /b\n  X: y\n", "_headers:1", "one path"),
        (
            "/a\n  Content-Length: 5\n",
            "_headers:1",
            "set by the server itself",
        ),
        ("/a\n  Bad Name: 5\n", "_headers:1", "not a valid header name"),
    ];
    for (text, origin, reason) in cases {
        let error = match parse_headers_file(text) {
            Err(e) => e,
            Ok(headers) => RuleSet {
                redirects: Vec::new(),
                headers,
            }
            .compile()
            .expect_err(text),
        };
        assert_eq!(error.origin, *origin, "{text:?}: {error}");
        assert!(error.message.contains(reason), "{text:?}: {error}");
    }
}

#[test]
fn jamstack_toml_rules_carry_their_line_and_come_after_the_files() {
    use jamstack_proto::{HeaderRule as WireHeader, RedirectConditions, RedirectRule as WireRedirect};
    let wire = |line, from: &str, to: &str, status| WireRedirect {
        line,
        from: from.into(),
        to: to.into(),
        status,
        force: false,
        query: [("id".to_owned(), ":id".to_owned())].into_iter().collect(),
        conditions: RedirectConditions::default(),
        headers: Default::default(),
        signed: None,
    };
    let config = from_config(
        &[wire(4, "/a", "/from-toml/:id", 302)],
        &[WireHeader {
            line: 9,
            for_path: "/*".into(),
            values: [("X-Multi".to_owned(), "one,\n  two\n".to_owned())]
                .into_iter()
                .collect(),
        }],
    )
    .unwrap();
    assert_eq!(config.redirects[0].origin, "jamstack.toml:4");
    let files = RuleSet {
        redirects: parse_redirects_file("/a /from-file 302\n").unwrap(),
        headers: Vec::new(),
    };
    let rules = files.then(config).compile().unwrap();
    assert_eq!(visit("/a?id=1").on(&rules), redirect(302, "/from-file?id=1"));
    assert_eq!(rules.headers_for("/x")[0].1, "one, two");

    let mut proxy = wire(7, "/api/*", "https://api.example.com/:splat", 200);
    proxy.query.clear();
    proxy.headers = [("X-From".to_owned(), "Netlify".to_owned())]
        .into_iter()
        .collect();
    let rules = from_config(&[proxy.clone()], &[]).unwrap().compile().unwrap();
    assert_eq!(
        visit("/api/v1/users?page=2").on(&rules),
        Some(Action::Proxy {
            url: "https://api.example.com/v1/users?page=2".into(),
            headers: vec![(
                http::HeaderName::from_static("x-from"),
                http::HeaderValue::from_static("Netlify")
            )],
            signed: None,
        })
    );
    let mut not_a_proxy = wire(8, "/old", "/new", 301);
    not_a_proxy.headers = proxy.headers.clone();
    let error = from_config(&[not_a_proxy], &[]).unwrap().compile().unwrap_err();
    assert_eq!(error.origin, "jamstack.toml:8");
    assert!(error.message.contains("does not proxy"), "{error}");
    let mut host_header = proxy.clone();
    host_header.headers = [("Host".to_owned(), "evil".to_owned())].into_iter().collect();
    let error = from_config(&[host_header], &[]).unwrap().compile().unwrap_err();
    assert!(error.message.contains("`Host`"), "{error}");
    proxy.conditions.country = vec!["US".into()];
    let set = from_config(&[proxy], &[]).unwrap();
    assert_eq!(
        set.first_rule_needing(Needs::Country)
            .map(|rule| rule.origin.as_str()),
        Some("jamstack.toml:7")
    );
    assert!(set.first_rule_needing(Needs::Role).is_none());
}

#[test]
fn the_header_rules_that_apply_are_named_in_order() {
    let rules = compile(
        "",
        "/*\n  X-Frame-Options: DENY\n/assets/*\n  Cache-Control: max-age=60\n/blog/:slug\n  X-Blog: yes\n",
    );
    let named = |path: &str| -> Vec<String> {
        rules
            .matching_header_rules(path)
            .into_iter()
            .map(|m| format!("{} {}", m.origin, m.rule))
            .collect()
    };
    assert_eq!(named("/assets/app.js"), ["_headers:1 /*", "_headers:3 /assets/*"]);
    assert_eq!(named("/blog/hello/"), ["_headers:1 /*", "_headers:5 /blog/:slug"]);
    assert_eq!(named("/"), ["_headers:1 /*"]);
    // The names agree with the headers applied.
    assert_eq!(rules.headers_for("/assets/app.js").len(), 2);
}

// ---------------------------------------------------------------------------
// Rules written by an attacker: any deploy's author, a fork's pull request.

#[test]
fn a_header_rule_with_many_stars_is_matched_in_time_linear_in_the_path() {
    // Tried split by split, this rule against this path is some 10^30
    // steps; the test finishes only if matching does not backtrack.
    let stars = "/*a".repeat(16);
    let rules = compile("", &format!("{stars}*b\n  X-Starry: yes\n/*a*\n  X-A: yes\n"));
    let long = format!("/{}", "a/".repeat(2_000));
    let headers = rules.headers_for(&long);
    assert_eq!(headers.len(), 1, "only `/*a*` matches: {headers:?}");
    assert_eq!(headers[0].0, "x-a");
    let starry = format!("{long}b");
    assert_eq!(
        rules.headers_for(&starry).len(),
        2,
        "and both match once it ends in b"
    );
}

#[test]
fn too_many_or_too_long_rules_refuse_the_deploy_naming_the_line_and_the_limit() {
    let many_redirects: String = (0..=MAX_REDIRECT_RULES)
        .map(|i| format!("/old/{i} /new/{i} 301\n"))
        .collect();
    let error = refused_redirects(&many_redirects);
    assert_eq!(error.origin, format!("_redirects:{}", MAX_REDIRECT_RULES + 1));
    assert!(
        error.message.contains(&format!("limit of {MAX_REDIRECT_RULES}")),
        "{error}"
    );

    let many_headers: String = (0..=MAX_HEADER_RULES)
        .map(|i| format!("/page/{i}\n  X-Page: {i}\n"))
        .collect();
    let error = RuleSet {
        redirects: Vec::new(),
        headers: parse_headers_file(&many_headers).unwrap(),
    }
    .compile()
    .unwrap_err();
    assert_eq!(error.origin, format!("_headers:{}", 2 * MAX_HEADER_RULES + 1));
    assert!(
        error.message.contains(&format!("limit of {MAX_HEADER_RULES}")),
        "{error}"
    );

    let long_path = format!("/{}", "*a".repeat(MAX_RULE_PATH));
    let error = refused_redirects(&format!("/ok /fine\n/a {long_path} 301\n"));
    assert_eq!(error.origin, "_redirects:2");
    assert!(
        error.message.contains(&format!("limit of {MAX_RULE_PATH}")),
        "{error}"
    );
    let error = RuleSet {
        redirects: Vec::new(),
        headers: parse_headers_file(&format!("/x\n  X: y\n{long_path}\n  X-Long: yes\n")).unwrap(),
    }
    .compile()
    .unwrap_err();
    assert_eq!(error.origin, "_headers:3");
    assert!(error.message.contains("bytes long"), "{error}");

    // Just under every limit is fine.
    let most: String = (0..MAX_REDIRECT_RULES)
        .map(|i| format!("/old/{i} /new/{i} 301\n"))
        .collect();
    assert_eq!(
        visit("/old/9999").on(&compile(&most, "")),
        redirect(301, "/new/9999")
    );
}

#[test]
fn a_placeholder_from_the_request_cannot_make_the_location_leave_the_site() {
    let rules = compile(
        "/go to=:to  /:to  302
/jump/:a  /:a  302
/both x=:x y=:y  /:x:y  302
",
        "",
    );
    let table: &[(&str, &str)] = &[
        ("/go?to=/evil.com", "/%2Fevil.com"),
        ("/go?to=%2F%2Fevil.com", "/%2F/evil.com"),
        ("/go?to=%5Cevil.com", "/%5Cevil.com"),
        ("/go?to=/%5Cevil.com", "/%2F%5Cevil.com"),
        ("/go?to=a%5C%5Cb", "/a%5C%5Cb"),
        // An empty value first cannot hand the second the leading place.
        ("/both?x=&y=/evil.com", "/%2Fevil.com"),
        // Ordinary values are left as they were.
        ("/go?to=docs/intro", "/docs/intro"),
        ("/jump/page", "/page"),
    ];
    for (url, location) in table {
        assert_eq!(visit(url).on(&rules), redirect(302, location), "{url}");
        assert!(!location.starts_with("//") && !location.starts_with("/\\"));
    }
}

#[test]
fn set_cookie_and_hop_by_hop_headers_are_refused_in_header_rules() {
    for (name, reason) in [
        ("Set-Cookie", "beyond this site"),
        ("set-cookie2", "beyond this site"),
        ("TE", "speaks for the connection"),
        ("Proxy-Connection", "speaks for the connection"),
        ("Transfer-Encoding", "set by the server itself"),
        ("Connection", "set by the server itself"),
        ("Content-Length", "set by the server itself"),
    ] {
        let error = RuleSet {
            redirects: Vec::new(),
            headers: parse_headers_file(&format!(
                "/*\n  X-Fine: yes\n/a/*\n  {name}: x=1; Domain=localhost\n"
            ))
            .unwrap(),
        }
        .compile()
        .unwrap_err();
        assert_eq!(error.origin, "_headers:3", "{name}: {error}");
        assert!(error.message.contains(reason), "{name}: {error}");
    }
    use jamstack_proto::HeaderRule as WireHeader;
    let error = from_config(
        &[],
        &[WireHeader {
            line: 12,
            for_path: "/*".into(),
            values: [(
                "Set-Cookie".to_owned(),
                "session=planted; Domain=localhost".to_owned(),
            )]
            .into_iter()
            .collect(),
        }],
    )
    .unwrap()
    .compile()
    .unwrap_err();
    assert_eq!(error.origin, "jamstack.toml:12");
    assert!(
        error.message.contains("`Set-Cookie` cannot be set by a rule"),
        "{error}"
    );
}

#[test]
fn basic_auth_asks_for_its_credentials_on_matching_paths_and_is_never_sent() {
    let rules = compile(
        "",
        "\
/team/*
  Basic-Auth: alice:wonder bob:builder
  X-Team: yes
/open
  X-Open: yes
",
    );
    assert!(rules.has_basic_auth());
    let users = |path: &str| -> Option<Vec<(String, String)>> {
        rules.basic_auth_for(path).map(|found| {
            found
                .iter()
                .map(|c| (c.user.clone(), c.password.clone()))
                .collect()
        })
    };
    let team = vec![
        ("alice".to_owned(), "wonder".to_owned()),
        ("bob".to_owned(), "builder".to_owned()),
    ];
    assert_eq!(users("/team/notes.html"), Some(team.clone()));
    assert_eq!(users("/team"), Some(team), "the directory itself too");
    assert_eq!(users("/open"), None);
    let sent: Vec<String> = rules
        .headers_for("/team/notes.html")
        .into_iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(sent, vec!["x-team".to_owned()]);
    assert!(!compile("", "/a\n  X-A: 1\n").has_basic_auth());

    for wrong in ["alice", ":pass", "alice:", "alice:ok bob"] {
        let set = RuleSet {
            redirects: Vec::new(),
            headers: parse_headers_file(&format!("/x\n  Basic-Auth: {wrong}\n")).unwrap(),
        };
        let refused = set.compile().unwrap_err();
        assert!(refused.message.contains("user:password"), "{wrong}: {refused}");
    }
}

#[test]
fn a_200_rule_to_a_url_proxies_with_the_splat_and_query_passed_on() {
    let rules = compile(
        "/api/* https://api.example.com/v2/:splat 200\n/forced/:id https://example.com/items/:id 200!\n",
        "",
    );
    assert!(rules.proxies());
    assert!(!compile("/a /b 200\n/c https://example.com/ 301\n", "").proxies());
    let proxy = |url: &str| {
        Some(Action::Proxy {
            url: url.to_owned(),
            headers: Vec::new(),
            signed: None,
        })
    };
    assert_eq!(
        visit("/api/users/7?expand=1").on(&rules),
        proxy("https://api.example.com/v2/users/7?expand=1")
    );
    // Unforced, a file at the path wins; forced, the proxy does.
    assert_eq!(visit("/api/users").existing().on(&rules), None);
    assert_eq!(
        visit("/forced/42").existing().on(&rules),
        proxy("https://example.com/items/42")
    );
}

// ---------------------------------------------------------------------------
// Where Netlify's own parsers (netlify-redirect-parser,
// netlify-headers-parser) accept or refuse, so do we.

#[test]
fn a_splat_rule_with_status_200_and_no_target_forwards_the_path() {
    let rules = compile("/admin/* 200!\n/app/* 200\n", "");
    assert_eq!(visit("/admin/users/1").on(&rules), rewrite(200, "/admin/users/1"));
    assert_eq!(visit("/app/").on(&rules), rewrite(200, "/app/"));
    assert_eq!(visit("/app/x").existing().on(&rules), None);
    let spec = &parse_redirects_file("/admin/* 200!\n").unwrap()[0];
    assert_eq!(
        (spec.to.as_str(), spec.status, spec.force),
        ("/admin/:splat", 200, true)
    );
    // Without a splat, or with a redirect status, a target is still needed.
    for text in ["/admin 200\n", "/admin/* 301\n"] {
        let error = refused_redirects(text);
        assert!(
            error.message.contains("only a rule for a path ending in `/*`"),
            "{text:?}: {error}"
        );
    }
}

#[test]
fn rules_for_netlify_paths_and_malformed_urls_are_refused() {
    let cases: &[(&str, &str)] = &[
        ("/.netlify/functions/x /y 200\n", "reserved"),
        ("/.netlify /y\n", "reserved"),
        ("https://example.com/.netlify/x /y\n", "reserved"),
        ("/a https://exa%mple.com/ 200\n", "not a valid URL"),
        ("/a http://[::1/x 302\n", "not a valid URL"),
        ("https://host:99999/a /b\n", "not a valid URL"),
    ];
    for (text, reason) in cases {
        let error = refused_redirects(text);
        assert_eq!(error.origin, "_redirects:1", "{text:?}");
        assert!(error.message.contains(reason), "{text:?}: {error}");
    }
    // A path merely starting with the letters is not reserved.
    compile("/.netlifyish /y\n", "");
    let error = RuleSet {
        redirects: Vec::new(),
        headers: parse_headers_file("https://exa%mple.com/*\n  X: y\n").unwrap(),
    }
    .compile()
    .unwrap_err();
    assert!(error.message.contains("not a valid URL"), "{error}");
}

#[test]
fn statuses_are_read_as_netlify_writes_them() {
    assert_eq!(parse_status("301"), Some((301, false)));
    assert_eq!(parse_status(" 200! "), Some((200, true)));
    assert_eq!(parse_status("404!"), Some((404, true)));
    for refused in ["", "!", "abc", "+301", "999", "30 1", "200!!"] {
        assert_eq!(parse_status(refused), None, "{refused:?}");
    }
}

#[test]
fn header_lines_netlify_ignores_are_ignored_with_a_warning() {
    let file = parse_headers_file_with_warnings("/empty\n/a\n  just words\n  X-A: 1\n/also-empty\n").unwrap();
    assert_eq!(file.rules.len(), 1);
    assert_eq!(file.rules[0].for_path, "/a");
    assert_eq!(file.rules[0].values, vec![("X-A".to_owned(), "1".to_owned())]);
    let warnings: Vec<String> = file.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings[0].starts_with("_headers:3: `just words` is neither a path"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with("_headers:1: the path `/empty` has no headers"),
        "{warnings:?}"
    );
    assert!(
        warnings[2].starts_with("_headers:5: the path `/also-empty`"),
        "{warnings:?}"
    );
}

fn header_values(rules: &Rules, path: &str) -> Vec<(String, String)> {
    rules
        .headers_for(path)
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn a_header_set_again_for_the_same_path_takes_the_later_value() {
    use jamstack_proto::HeaderRule as WireHeader;
    let files = RuleSet {
        redirects: Vec::new(),
        headers: parse_headers_file(
            "/a\n  X-Twice: one\n  X-Twice: two\n  X-Kept: file\n/*\n  X-All: star\n/a/\n  X-Later: file\n  X-Kept: again\n",
        )
        .unwrap(),
    };
    let config = from_config(
        &[],
        &[WireHeader {
            line: 3,
            for_path: "/a".into(),
            values: [("X-Later".to_owned(), "toml".to_owned())].into_iter().collect(),
        }],
    )
    .unwrap();
    let rules = files.then(config).compile().unwrap();
    assert_eq!(
        header_values(&rules, "/a"),
        vec![
            ("x-twice".into(), "one, two".into()),
            ("x-all".into(), "star".into()),
            ("x-kept".into(), "again".into()),
            ("x-later".into(), "toml".into()),
        ]
    );
    // Different paths that both match still add up.
    let rules = compile("", "/*\n  Vary: Cookie\n/b\n  Vary: Accept\n");
    assert_eq!(
        header_values(&rules, "/b"),
        vec![("vary".into(), "Cookie, Accept".into())]
    );
}

#[test]
fn header_paths_match_regardless_of_case_and_doubled_slashes() {
    let rules = compile(
        "",
        "/Docs//Guide\n  X-Exact: 1\n/Assets/*\n  X-Prefix: 1\n/Blog/:slug/*.HTML\n  X-Pattern: 1\n",
    );
    assert_eq!(
        header_values(&rules, "/docs/guide/"),
        vec![("x-exact".into(), "1".into())]
    );
    assert_eq!(
        header_values(&rules, "/ASSETS/app.js"),
        vec![("x-prefix".into(), "1".into())]
    );
    assert_eq!(
        header_values(&rules, "/assets"),
        vec![("x-prefix".into(), "1".into())]
    );
    assert_eq!(
        header_values(&rules, "/blog/hello/page.html"),
        vec![("x-pattern".into(), "1".into())]
    );
}

#[test]
fn jamstack_toml_rules_are_read_as_netlify_reads_netlify_toml() {
    use jamstack_proto::{HeaderRule as WireHeader, RedirectRule as WireRedirect};
    let set = from_config(
        &[WireRedirect {
            line: 1,
            from: "  old/*  ".into(),
            to: " /new/:splat ".into(),
            status: 302,
            force: false,
            query: Default::default(),
            conditions: Default::default(),
            headers: Default::default(),
            signed: None,
        }],
        &[WireHeader {
            line: 5,
            for_path: " assets/* ".into(),
            values: [
                (
                    " Cache-Control ".to_owned(),
                    "\n  max-age=0 ,\n  no-cache,no-store\n".to_owned(),
                ),
                (
                    "Content-Security-Policy".to_owned(),
                    "default-src 'self';\n  img-src *".to_owned(),
                ),
            ]
            .into_iter()
            .collect(),
        }],
    )
    .unwrap();
    assert_eq!(
        (set.redirects[0].from.as_str(), set.redirects[0].to.as_str()),
        ("/old/*", "/new/:splat")
    );
    assert_eq!(set.headers[0].for_path, "/assets/*");
    let rules = set.compile().unwrap();
    assert_eq!(visit("/old/a").on(&rules), redirect(302, "/new/a"));
    assert_eq!(
        header_values(&rules, "/assets/x"),
        vec![
            ("cache-control".into(), "max-age=0, no-cache, no-store".into()),
            (
                "content-security-policy".into(),
                "default-src 'self'; img-src *".into()
            ),
        ]
    );
}

/// A request from `country` with a token naming `roles`.
fn visit_as<'a>(path: &'a str, country: Option<&'a str>, roles: &'a [String]) -> Request<'a> {
    Request {
        path,
        host: "site.localhost",
        country,
        roles,
        ..Request::default()
    }
}

#[test]
fn country_rules_apply_to_visitors_from_the_listed_countries_in_any_case() {
    let rules = compile("/ /us/ 302 Country=us,CA\n/ /world/ 302\n", "");
    assert!(rules.uses_country() && !rules.uses_roles());
    let location = |country: Option<&str>| match rules.redirect_for(&visit_as("/", country, &[]), false) {
        Some(Action::Redirect { location, .. }) => location,
        other => panic!("{other:?}"),
    };
    assert_eq!(location(Some("US")), "/us/");
    assert_eq!(location(Some("ca")), "/us/");
    assert_eq!(location(Some("DE")), "/world/");
    assert_eq!(location(None), "/world/");
    let set = RuleSet {
        redirects: parse_redirects_file("/a /b\n/ /us/ 302 Country=us\n").unwrap(),
        headers: Vec::new(),
    };
    assert_eq!(
        set.first_rule_needing(Needs::Country)
            .map(|rule| rule.origin.as_str()),
        Some("_redirects:2")
    );
}

#[test]
fn role_rules_apply_to_a_token_with_a_listed_role_and_are_skipped_without_one() {
    let rules = compile(
        "/admin/* /admin/:splat 200! Role=admin,editor\n/admin/* /404.html 404\n",
        "",
    );
    assert!(rules.uses_roles() && !rules.uses_country());
    let roles = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        rules.redirect_for(&visit_as("/admin/x", None, &roles(&["editor"])), true),
        rewrite(200, "/admin/x")
    );
    // Without a matching role the rule is skipped, as on Netlify.
    assert_eq!(
        rules.redirect_for(&visit_as("/admin/x", None, &roles(&["viewer"])), true),
        None
    );
    assert_eq!(rules.redirect_for(&visit_as("/admin/x", None, &[]), true), None);
}

#[test]
fn signed_is_kept_on_a_proxy_rule_and_refused_elsewhere() {
    let mut proxy = RedirectSpec {
        origin: "jamstack.toml:3".into(),
        from: "/api/*".into(),
        to: "https://api.example.com/:splat".into(),
        status: 200,
        force: false,
        query: Vec::new(),
        language: Vec::new(),
        cookie: Vec::new(),
        country: Vec::new(),
        role: Vec::new(),
        signed: Some("API_SIGNATURE".into()),
        headers: Vec::new(),
    };
    let rules = RuleSet {
        redirects: vec![proxy.clone()],
        headers: Vec::new(),
    }
    .compile()
    .unwrap();
    match rules.redirect_for(&visit_as("/api/x", None, &[]), false) {
        Some(Action::Proxy { signed, .. }) => assert_eq!(signed.as_deref(), Some("API_SIGNATURE")),
        other => panic!("{other:?}"),
    }
    proxy.to = "/elsewhere".into();
    let error = RuleSet {
        redirects: vec![proxy],
        headers: Vec::new(),
    }
    .compile()
    .unwrap_err();
    assert!(error.message.contains("does not proxy"), "{error}");
}
