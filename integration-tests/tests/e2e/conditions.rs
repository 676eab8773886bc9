//! `Country` and `Role` conditions and signed proxy requests, as a site
//! uses them: through a real build, a real controller and real HTTP, with
//! a GeoIP database written by the test and visitors on loopback
//! addresses of their own (127.0.0.1 and 127.0.0.2).

use crate::helpers::mmdb::country_database;
use crate::helpers::{COPY_SITE_TOML, SiteRepo, TestApp, spawn_app, spawn_app_with};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// A page of `site` fetched from `from` (a loopback address) with `headers`.
async fn visit_from(
    app: &TestApp,
    from: [u8; 4],
    site: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(from)))
        .build()
        .unwrap();
    let mut request = client
        .get(format!("http://127.0.0.1:{}{path}", app.port))
        .header("Host", format!("{site}.localhost:{}", app.port));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("visiting the site");
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A site sending North American visitors of `/where` to one page and
/// everyone else to another, with rules in `_redirects` and `jamstack.toml`.
fn site_by_country(repo: &SiteRepo) -> String {
    let toml = format!(
        "{COPY_SITE_TOML}\n[[redirects]]\nfrom = \"/toml-where\"\nto = \"/north-america.html\"\nstatus = 200\n\
         conditions = {{ Country = [\"us\", \"CA\"] }}\n"
    );
    repo.commit(
        &[
            ("jamstack.toml", toml.as_str()),
            ("src/north-america.html", "north america"),
            ("src/elsewhere.html", "elsewhere"),
            (
                "src/_redirects",
                "/where /north-america.html 200 Country=US,ca\n/where /elsewhere.html 200\n",
            ),
        ],
        "pages by country",
    )
}

#[tokio::test]
async fn visitors_see_the_page_for_their_country_from_a_geoip_database_or_a_trusted_proxys_header() {
    let data = tempfile::tempdir().unwrap();
    let database = data.path().join("countries.mmdb");
    std::fs::write(
        &database,
        country_database(&[
            ("127.0.0.1/32", "DE"),
            ("127.0.0.2/32", "FR"),
            ("203.0.113.0/24", "US"),
        ]),
    )
    .unwrap();
    let app = spawn_app_with(|config| {
        config.visitors.geoip_database = Some(database.clone());
        config.visitors.country_header = Some("CF-IPCountry".into());
        config.visitors.trusted_proxies = vec!["127.0.0.2/32".parse().unwrap()];
    })
    .await;
    let repo = SiteRepo::new();
    let sha = site_by_country(&repo);
    app.connect_site("atlas", &repo, "octo/atlas").await;
    app.wait_for_success(app.push("octo/atlas", &repo, &sha).await)
        .await;

    let visitor = [127, 0, 0, 1];
    let proxy = [127, 0, 0, 2];
    let north_america = (200, "north america".to_owned());
    let elsewhere = (200, "elsewhere".to_owned());
    // A visitor in Germany, by the database.
    assert_eq!(visit_from(&app, visitor, "atlas", "/where", &[]).await, elsewhere);
    // Headers from a peer that is not a trusted proxy are ignored.
    let claims = [("CF-IPCountry", "us"), ("X-Forwarded-For", "203.0.113.9")];
    assert_eq!(
        visit_from(&app, visitor, "atlas", "/where", &claims).await,
        elsewhere
    );
    // Behind the trusted proxy: its country header, else the forwarded
    // address in the database, else its own address.
    assert_eq!(
        visit_from(&app, proxy, "atlas", "/where", &[("CF-IPCountry", "ca")]).await,
        north_america
    );
    assert_eq!(
        visit_from(
            &app,
            proxy,
            "atlas",
            "/where",
            &[("X-Forwarded-For", "203.0.113.9")]
        )
        .await,
        north_america
    );
    assert_eq!(
        visit_from(
            &app,
            proxy,
            "atlas",
            "/toml-where",
            &[("X-Forwarded-For", "203.0.113.9")]
        )
        .await,
        north_america
    );
    assert_eq!(visit_from(&app, proxy, "atlas", "/where", &[]).await, elsewhere);
}

#[tokio::test]
async fn a_deploy_with_country_rules_is_refused_with_the_rule_named_when_the_server_cannot_tell_countries() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = site_by_country(&repo);
    app.connect_site("nowhere", &repo, "octo/nowhere").await;
    let build = app
        .wait_for_build(app.push("octo/nowhere", &repo, &sha).await)
        .await;
    assert_eq!(build["state"], "failed", "{build}");
    let error = build["error"].as_str().unwrap();
    assert!(
        error.contains("jamstack.toml:")
            && error.contains("`Country` conditions")
            && error.contains("--geoip-database"),
        "{error}"
    );
}

/// A token for `roles`, signed HS256 with `secret`, expiring at `exp`.
fn hs256_token(secret: &[u8], roles: &[&str], exp: u64) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "u1", "exp": exp, "app_metadata": {"roles": roles}}),
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// An RSA key pair made with openssl: (private PEM, public PEM, JWK `n`).
fn rsa_key_pair(dir: &std::path::Path) -> (String, String, String) {
    let private = dir.join("private.pem");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is installed (apt-get install openssl)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["genrsa", "-out", private.to_str().unwrap(), "2048"]);
    let public = run(&["rsa", "-in", private.to_str().unwrap(), "-pubout"]);
    let modulus = run(&["rsa", "-in", private.to_str().unwrap(), "-noout", "-modulus"]);
    let hex_modulus = modulus.trim().trim_start_matches("Modulus=");
    use base64::Engine as _;
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hex::decode(hex_modulus).unwrap());
    (std::fs::read_to_string(&private).unwrap(), public, n)
}

#[tokio::test]
async fn role_rules_let_in_visitors_whose_token_names_a_listed_role_with_a_secret_a_public_key_or_a_key_set()
{
    let app = spawn_app_with(|config| config.proxy.allow_private_targets = true).await;
    let repo = SiteRepo::new();
    let files = [
        ("jamstack.toml", COPY_SITE_TOML),
        ("src/index.html", "home"),
        ("src/members/secret.html", "members only"),
        ("src/join.html", "join us"),
        (
            "src/_redirects",
            "/members/* /members/:splat 200! Role=admin,editor\n/members/* /join.html 404!\n",
        ),
    ];
    let sha = repo.commit(&files, "members area");
    app.connect_site("club", &repo, "octo/club").await;

    // Without a key the deploy is refused, naming the rule and the fix.
    let build = app.wait_for_build(app.push("octo/club", &repo, &sha).await).await;
    assert_eq!(build["state"], "failed", "{build}");
    let error = build["error"].as_str().unwrap();
    assert!(
        error.contains("_redirects:1") && error.contains("no key"),
        "{error}"
    );

    const SECRET: &[u8] = b"a-long-identity-secret";
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api("/sites/club/identity"))
                .json(&serde_json::json!({"hs256_secret": std::str::from_utf8(SECRET).unwrap()})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "hs256");
    assert!(!body.to_string().contains("a-long-identity-secret"), "{body}");
    let sha = repo.commit(&[("src/index.html", "home again")], "again");
    app.wait_for_success(app.push("octo/club", &repo, &sha).await)
        .await;

    let in_an_hour = jsonwebtoken::get_current_timestamp() + 3600;
    let visit = |token: String| {
        let app = &app;
        async move {
            let cookie = format!("nf_jwt={token}");
            let page = app
                .visit_with("club", "/members/secret.html", &[("Cookie", cookie.as_str())])
                .await;
            let cache = page.header("cache-control").to_owned();
            (page.status, page.body, cache)
        }
    };
    let (status, body, cache) = visit(hs256_token(SECRET, &["editor"], in_an_hour)).await;
    assert_eq!((status, body.as_str()), (200, "members only"));
    assert!(cache.contains("private"), "{cache}");
    for refused in [
        hs256_token(SECRET, &["viewer"], in_an_hour),
        hs256_token(SECRET, &["admin"], 1),
        hs256_token(b"someone-elses-secret", &["admin"], in_an_hour),
        "not-a-token".to_owned(),
    ] {
        assert_eq!(visit(refused.clone()).await.0, 404, "{refused}");
    }
    assert_eq!(app.visit("club", "/members/secret.html").await.body, "join us");

    // An RS256 public key, then the same key published as a key set.
    let keys = tempfile::tempdir().unwrap();
    let (private_pem, public_pem, modulus) = rsa_key_pair(keys.path());
    let rs256 = |kid: Option<&str>, roles: &[&str]| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(
            &header,
            &serde_json::json!({"exp": in_an_hour, "app_metadata": {"roles": roles}}),
            &jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api("/sites/club/identity"))
                .json(&serde_json::json!({"public_key_pem": public_pem})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(visit(rs256(None, &["admin"])).await.0, 200);
    assert_eq!(
        visit(hs256_token(SECRET, &["admin"], in_an_hour)).await.0,
        404,
        "the old secret"
    );

    let key_set = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": modulus, "e": "AQAB"}]});
    let jwks = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let key_set = key_set.clone();
            async move { axum::Json(key_set) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, jwks).await.unwrap() });
    let (status, body) = app
        .api_json(app.http.put(app.api("/sites/club/identity")).json(
            &serde_json::json!({"jwks_url": format!("http://127.0.0.1:{jwks_port}/.well-known/jwks.json")}),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "jwks_url");
    assert_eq!(visit(rs256(Some("k1"), &["admin"])).await.0, 200);
    assert_eq!(visit(rs256(Some("unknown"), &["admin"])).await.0, 404);
}

#[tokio::test]
async fn an_owner_sets_the_token_key_for_role_rules_on_the_dashboard_and_the_secret_is_never_shown() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    app.connect_site("keyed", &repo, "octo/keyed").await;
    let browser = app.open_browser().await;
    browser.sign_in(&app.admin_token).await;
    browser.visit("/sites/keyed/settings").await;
    browser
        .wait_for_text("#identity", "No key is set", Duration::from_secs(10))
        .await;
    browser.fill("#identity textarea[name=value]", "too-short").await;
    browser.click("#identity button[type=submit]").await;
    browser
        .wait_for_text("#identity .error", "16", Duration::from_secs(10))
        .await;
    browser
        .fill("#identity textarea[name=value]", "a-secret-long-enough-for-hs256")
        .await;
    browser.click("#identity button[type=submit]").await;
    browser
        .wait_for_text("main", "Token key saved", Duration::from_secs(10))
        .await;
    let shown = app.get_json("/sites/keyed/identity").await;
    assert_eq!(shown["kind"], "hs256", "{shown}");
    let page = browser.client.source().await.unwrap();
    assert!(
        !page.contains("a-secret-long-enough-for-hs256"),
        "the secret came back in the page"
    );
}
