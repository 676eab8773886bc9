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

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
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
    publish_proxying_site(&app, "proxied", upstream, closed_port().await).await;
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
    publish_proxying_site(&app, "private", upstream, closed_port().await).await;

    let page = app.visit("private", "/api/anything").await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(
        page.body.contains("private or local address") && page.body.contains("--allow-private-proxy-targets"),
        "{}",
        page.body
    );
}
