//! Proxy rewrites as a site uses them for its API: a `200` rule to an
//! http:// URL, answered by a real upstream server on loopback, through a
//! real build, a real controller and real HTTP.

use crate::helpers::{COPY_SITE_TOML, SiteRepo, TestApp, spawn_app, spawn_app_with};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::IntoResponse;
use std::time::Duration;

/// An upstream on loopback: `/echo/...` answers with what it was sent,
/// `/moved` redirects, `/slow` answers after five seconds. Returns its port.
async fn start_upstream() -> u16 {
    async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> String {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        format!(
            "method={method}\nuri={uri}\nforwarded-for={}\nforwarded-proto={}\nforwarded-host={}\nx-from={}\nhost={}\nbody={}\n",
            header("x-forwarded-for"),
            header("x-forwarded-proto"),
            header("x-forwarded-host"),
            header("x-from"),
            header("host"),
            String::from_utf8_lossy(&body),
        )
    }
    let app = axum::Router::new()
        .route("/echo/{*rest}", axum::routing::any(echo))
        .route(
            "/moved",
            axum::routing::get(|| async {
                (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]).into_response()
            }),
        )
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "too late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// A port nothing listens on, held for as long as the socket lives: a
/// socket bound and never listening refuses every connection, and no other
/// test's listener can take the port meanwhile.
fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Builds and publishes a site whose `/api/*` is proxied to `upstream`
/// (with a header from `jamstack.toml`), and whose `/old`, `/slow` and
/// `/dead` go to the upstream's redirect, its slow page and a closed port.
async fn publish_proxying_site(app: &TestApp, site: &str, upstream: u16, dead: u16) {
    let toml = format!(
        "{COPY_SITE_TOML}\n[[redirects]]\nfrom = \"/api/*\"\nto = \"http://127.0.0.1:{upstream}/echo/:splat\"\n\
         status = 200\nheaders = {{ X-From = \"Netlify\" }}\n"
    );
    let redirects = format!(
        "/old http://127.0.0.1:{upstream}/moved 200\n/slow http://127.0.0.1:{upstream}/slow 200\n\
         /dead http://127.0.0.1:{dead}/ 200\n"
    );
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[
            ("jamstack.toml", toml.as_str()),
            ("src/index.html", "home"),
            ("src/_redirects", redirects.as_str()),
        ],
        "proxying site",
    );
    app.connect_site(site, &repo, &format!("octo/{site}")).await;
    app.wait_for_success(app.push(&format!("octo/{site}"), &repo, &sha).await)
        .await;
}

#[tokio::test]
async fn a_site_proxies_its_api_to_an_upstream_with_forwarded_headers_and_bodies_both_ways() {
    let app = spawn_app_with(|config| {
        config.proxy.allow_private_targets = true;
        config.proxy.timeout = Duration::from_secs(1);
        config.proxy.max_body_bytes = 1_000_000;
    })
    .await;
    let upstream = start_upstream().await;
    let (_held, dead) = closed_port();
    publish_proxying_site(&app, "proxied", upstream, dead).await;
    let host = format!("proxied.localhost:{}", app.port);
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", app.port);

    let got = app
        .http
        .get(url("/api/users/7?page=2"))
        .header("Host", &host)
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let body = got.text().await.unwrap();
    assert!(body.contains("method=GET\n"), "{body}");
    assert!(body.contains("uri=/echo/users/7?page=2\n"), "{body}");
    assert!(body.contains("forwarded-for=203.0.113.9, 127.0.0.1\n"), "{body}");
    assert!(body.contains("forwarded-proto=http\n"), "{body}");
    assert!(body.contains(&format!("forwarded-host={host}\n")), "{body}");
    assert!(body.contains("x-from=Netlify\n"), "{body}");
    assert!(body.contains(&format!("host=127.0.0.1:{upstream}\n")), "{body}");

    // A POST's body is streamed to the upstream and its answer back.
    let payload = "x".repeat(300_000);
    let posted = app
        .http
        .post(url("/api/orders"))
        .header("Host", &host)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            payload
                .as_bytes()
                .chunks(10_000)
                .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
                .collect::<Vec<_>>(),
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let body = posted.text().await.unwrap();
    assert!(body.contains("method=POST\n"), "{}", &body[..200]);
    assert!(
        body.contains(&format!("body={payload}\n")),
        "the upstream did not get the whole body"
    );

    // A body over the limit is cut off with a page saying so, streamed
    // (no Content-Length to refuse it by) or not.
    let streamed_too_much = app
        .http
        .post(url("/api/orders"))
        .header("Host", &host)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            (0..30).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 100_000])),
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed_too_much.status(), 413);
    assert!(
        streamed_too_much
            .text()
            .await
            .unwrap()
            .contains("larger than the 1000000 bytes")
    );
    let declared_too_much = app
        .http
        .post(url("/api/orders"))
        .header("Host", &host)
        .body(vec![b'z'; 1_500_000])
        .send()
        .await
        .unwrap();
    assert_eq!(declared_too_much.status(), 413);

    // The upstream's redirect is passed on, not followed.
    let moved = app.visit("proxied", "/old").await;
    assert_eq!(moved.status, 302);
    assert_eq!(moved.header("location"), "/elsewhere");

    let slow = app.visit("proxied", "/slow").await;
    assert_eq!(slow.status, 504, "{}", slow.body);
    assert!(
        slow.body.contains("did not answer within 1 seconds"),
        "{}",
        slow.body
    );

    let dead = app.visit("proxied", "/dead").await;
    assert_eq!(dead.status, 502, "{}", dead.body);
    assert!(dead.body.contains("could not be reached"), "{}", dead.body);

    // The site's own files are still served, and only read.
    assert_eq!(app.visit("proxied", "/").await.body, "home");
    let refused = app
        .http
        .post(url("/"))
        .header("Host", &host)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 405);
}

#[tokio::test]
async fn without_the_operators_switch_a_proxy_to_a_private_address_gets_a_502_page_naming_it() {
    let app = spawn_app().await;
    let upstream = start_upstream().await;
    let (_held, dead) = closed_port();
    publish_proxying_site(&app, "private", upstream, dead).await;

    let page = app.visit("private", "/api/anything").await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(
        page.body.contains("private or local address") && page.body.contains("--allow-private-proxy-targets"),
        "{}",
        page.body
    );
}

/// An upstream on loopback: `/signed` answers with the `X-Nf-Sign` it was
/// sent, `/big` streams two megabytes in 100 kB chunks with no length
/// announced. Returns its port.
async fn start_signing_upstream() -> u16 {
    let app = axum::Router::new()
        .route(
            "/signed",
            axum::routing::get(|headers: HeaderMap| async move {
                headers
                    .get("x-nf-sign")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned()
            }),
        )
        .route(
            "/big",
            axum::routing::get(|| async {
                let chunks = futures_util::stream::iter(
                    (0..20).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'b'; 100_000]))),
                );
                axum::body::Body::from_stream(chunks)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

#[tokio::test]
async fn a_signed_proxy_request_carries_a_token_the_upstream_verifies_with_the_sites_variable() {
    let app = spawn_app_with(|config| {
        config.proxy.allow_private_targets = true;
        config.proxy.max_body_bytes = 1_000_000;
    })
    .await;
    let upstream = start_signing_upstream().await;
    let toml = format!(
        "{COPY_SITE_TOML}\n[[redirects]]\nfrom = \"/signed\"\nto = \"http://127.0.0.1:{upstream}/signed\"\n\
         status = 200\nsigned = \"API_SIGNATURE\"\n\n[[redirects]]\nfrom = \"/big\"\n\
         to = \"http://127.0.0.1:{upstream}/big\"\nstatus = 200\n"
    );
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[("jamstack.toml", toml.as_str()), ("src/index.html", "home")],
        "signed proxy",
    );
    app.connect_site("signer", &repo, "octo/signer").await;
    app.wait_for_success(app.push("octo/signer", &repo, &sha).await)
        .await;

    // Without the variable, the page says which one to set.
    let unsigned = app.visit("signer", "/signed").await;
    assert_eq!(unsigned.status, 502, "{}", unsigned.body);
    assert!(unsigned.body.contains("`API_SIGNATURE`"), "{}", unsigned.body);

    app.set_env("signer", "API_SIGNATURE", "a-shared-secret", true)
        .await;
    let token = app.visit("signer", "/signed").await;
    assert_eq!(token.status, 200, "{}", token.body);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.set_issuer(&["netlify"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &token.body,
        &jsonwebtoken::DecodingKey::from_secret(b"a-shared-secret"),
        &validation,
    )
    .expect("the upstream verifies the signature with the shared secret")
    .claims;
    assert_eq!(claims["iss"], "netlify");
    assert_eq!(
        claims["site_url"],
        format!("http://signer.localhost:{}", app.port)
    );
    assert!(
        claims["netlify_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{claims}"
    );
    let forged = jsonwebtoken::decode::<serde_json::Value>(
        &token.body,
        &jsonwebtoken::DecodingKey::from_secret(b"another-secret"),
        &validation,
    );
    assert!(forged.is_err(), "a token verifies with any key");

    // An answer streaming past the limit is cut off after it started.
    let big = app
        .http
        .get(format!("http://127.0.0.1:{}/big", app.port))
        .header("Host", format!("signer.localhost:{}", app.port))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 200);
    assert!(
        big.bytes().await.is_err(),
        "an answer over the limit arrived whole"
    );
}

#[tokio::test]
async fn a_proxy_to_another_site_here_is_served_in_process_with_its_own_headers_and_loops_end() {
    // The private-address guard is on: `back.localhost` is loopback, so
    // only an in-process answer gets through.
    let app = spawn_app().await;
    let back = SiteRepo::new();
    let sha = back.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", "back home"),
            ("src/post.html", "a post from the back"),
            ("src/_redirects", "/echo-host /host.html 200\n"),
            ("src/host.html", "back host page"),
            ("src/_headers", "/*\n  X-Back: yes\n"),
        ],
        "the back site",
    );
    app.connect_site("back", &back, "octo/back").await;
    app.wait_for_success(app.push("octo/back", &back, &sha).await)
        .await;
    let port = app.port;
    let redirects = format!(
        "/blog/* http://back.localhost:{port}/:splat 200\n/loop http://front.localhost:{port}/loop 200\n"
    );
    let front = SiteRepo::new();
    let sha = front.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", "front home"),
            ("src/_redirects", redirects.as_str()),
            ("src/_headers", "/blog/*\n  X-Served-By: front\n"),
        ],
        "the front site",
    );
    app.connect_site("front", &front, "octo/front").await;
    app.wait_for_success(app.push("octo/front", &front, &sha).await)
        .await;

    let post = app.visit("front", "/blog/post").await;
    assert_eq!(post.status, 200, "{}", post.body);
    assert_eq!(post.body, "a post from the back");
    assert_eq!(post.header("x-back"), "yes");
    assert_eq!(
        post.header("x-served-by"),
        "",
        "the proxying site's _headers apply only to its own files, as on Netlify"
    );
    let missing = app.visit("front", "/blog/nothing-here").await;
    assert_eq!(missing.status, 404);

    let looped = app.visit("front", "/loop").await;
    assert_eq!(looped.status, 508, "{}", looped.body);
    assert!(looped.body.contains("in a circle"), "{}", looped.body);
}
