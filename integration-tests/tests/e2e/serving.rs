//! What the edge does for visitors, through a real build and real HTTP:
//! precompressed variants, ranges, caching headers, 404 pages, redirect and
//! header rules, and refusing paths that try to leave a deploy.

use crate::helpers::{COPY_SITE_TOML, HandRunner, SiteRepo, spawn_app, spawn_controller_only_with};
use std::io::Read;

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut &bytes[..], &mut out).unwrap();
    out
}

/// A visitor's `Range: bytes=0-18446744073709551615` (the largest byte
/// number) once overflowed the edge's range arithmetic.
#[tokio::test]
async fn a_range_to_the_largest_byte_number_is_answered_with_the_rest_of_the_file() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[("jamstack.toml", COPY_SITE_TOML), ("src/file.txt", "0123456789")],
        "site",
    );
    app.connect_site("ranges", &repo, "octo/ranges").await;
    app.wait_for_success(app.push("octo/ranges", &repo, &sha).await)
        .await;

    let largest = u64::MAX;
    let rest = app
        .visit_with("ranges", "/file.txt", &[("Range", &format!("bytes=4-{largest}"))])
        .await;
    assert_eq!(rest.status, 206);
    assert_eq!(rest.header("content-range"), "bytes 4-9/10");
    assert_eq!(rest.body, "456789");
}

#[tokio::test]
async fn files_are_served_compressed_by_range_and_with_cache_headers_like_a_cdn() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let home = format!("<html>{}</html>", "<p>hello jamstack</p>\n".repeat(200));
    let script = "console.log('fingerprinted');\n".repeat(100);
    let big = "0123456789\n".repeat(150_000);
    let sha = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &home),
            ("src/assets/app.3f2a9c1b.js", &script),
            ("src/logo.png", "not really a png, but served as one"),
            ("src/big.txt", &big),
            ("src/docs/index.html", "docs"),
            ("src/docs/404.html", "docs are missing this"),
            ("src/404.html", "nothing here"),
        ],
        "site",
    );
    app.connect_site("cdn", &repo, "octo/cdn").await;
    let build = app
        .wait_for_success(app.push("octo/cdn", &repo, &sha).await)
        .await;

    // Precompressed variants, made just after the deploy went live, chosen
    // by Accept-Encoding, each its own ETag.
    let br = app.wait_for_encoding("cdn", "/", "br").await;
    let plain = app.visit("cdn", "/").await;
    assert_eq!(plain.body, home);
    assert_eq!(plain.header("content-encoding"), "");
    assert_eq!(plain.header("vary"), "Accept-Encoding");
    assert_eq!(
        plain.header("cache-control"),
        "public, max-age=0, must-revalidate"
    );
    let best = app
        .visit_with("cdn", "/", &[("Accept-Encoding", "gzip, deflate, br")])
        .await;
    assert_eq!(best.header("content-encoding"), "br");
    assert_eq!(best.bytes, br.bytes);
    assert_eq!(unbrotli(&br.bytes), home.as_bytes());
    assert!(
        br.bytes.len() < home.len() / 5,
        "compressed: {} of {}",
        br.bytes.len(),
        home.len()
    );
    // Each encoding's variants are stored as they are made, brotli first:
    // gzip may come a moment after brotli is served.
    let gzip = app.wait_for_encoding("cdn", "/", "gzip").await;
    assert_eq!(gzip.header("content-encoding"), "gzip");
    assert_eq!(gunzip(&gzip.bytes), home.as_bytes());
    let tags = [plain.header("etag"), br.header("etag"), gzip.header("etag")];
    assert!(
        tags[1].ends_with("-br\"") && tags[2].ends_with("-gzip\""),
        "{tags:?}"
    );
    let unchanged = app
        .visit_with(
            "cdn",
            "/",
            &[("Accept-Encoding", "br"), ("If-None-Match", tags[1])],
        )
        .await;
    assert_eq!(unchanged.status, 304);
    assert!(unchanged.bytes.is_empty());

    // Ranges are of the file itself, also of one too big for memory.
    let part = app
        .visit_with(
            "cdn",
            "/big.txt",
            &[("Range", "bytes=11-20"), ("Accept-Encoding", "br")],
        )
        .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), format!("bytes 11-20/{}", big.len()));
    assert_eq!(part.header("content-encoding"), "");
    assert_eq!(part.body, "0123456789");
    let tail = app.visit_with("cdn", "/big.txt", &[("Range", "bytes=-5")]).await;
    assert_eq!(tail.body, "6789\n");
    let whole = app.visit("cdn", "/big.txt").await;
    assert_eq!(whole.bytes.len(), big.len());
    assert!(whole.body == big);
    let beyond = app
        .visit_with("cdn", "/big.txt", &[("Range", "bytes=9999999-")])
        .await;
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), format!("bytes */{}", big.len()));
    let stale = app
        .visit_with(
            "cdn",
            "/big.txt",
            &[("Range", "bytes=0-3"), ("If-Range", "\"old\"")],
        )
        .await;
    assert_eq!(stale.status, 200, "a range of another version is not sent");
    let head = app.head("cdn", "/big.txt").await;
    assert_eq!(head.header("content-length"), big.len().to_string());
    assert_eq!(head.header("accept-ranges"), "bytes");

    // Fingerprinted names and permalinks never change: immutable.
    let asset = app.visit("cdn", "/assets/app.3f2a9c1b.js").await;
    assert_eq!(
        asset.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert!(
        asset.header("content-type").contains("javascript"),
        "{}",
        asset.header("content-type")
    );
    let permalink = format!("{}--cdn", build["deploy_id"].as_str().unwrap());
    let forever = app.visit(&permalink, "/").await;
    assert_eq!(forever.body, home);
    assert_eq!(
        forever.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    let logo = app
        .visit_with("cdn", "/logo.png", &[("Accept-Encoding", "br")])
        .await;
    assert_eq!(logo.header("content-type"), "image/png");
    assert_eq!(logo.header("content-encoding"), "", "images are not compressed");
    assert_eq!(logo.header("vary"), "");

    // The nearest 404.html.
    let missing_doc = app.visit("cdn", "/docs/missing/page").await;
    assert_eq!(
        (missing_doc.status, missing_doc.body.as_str()),
        (404, "docs are missing this")
    );
    let missing = app.visit("cdn", "/missing").await;
    assert_eq!((missing.status, missing.body.as_str()), (404, "nothing here"));
    assert_eq!(
        missing.header("cache-control"),
        "public, max-age=0, must-revalidate"
    );
}

#[tokio::test]
async fn a_deploy_goes_live_at_once_and_its_compressed_variants_follow() {
    let (app, token) = spawn_controller_only_with(|_| {}).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("README", "by hand")], "by hand");
    app.connect_site("squeeze", &repo, "octo/squeeze").await;
    let runner = HandRunner::connect(&app, &token).await;
    let page = |version: u32| {
        format!(
            "<html>{}</html>",
            format!("<p>version {version}</p>\n").repeat(300)
        )
    };
    let script = "console.log('the same in every deploy');\n".repeat(150);
    let (v1, v2) = (page(1), page(2));

    let first = runner
        .deploy(
            &app,
            "squeeze",
            &sha,
            &[("index.html", v1.as_bytes()), ("app.js", script.as_bytes())],
        )
        .await;
    assert!(first.published);
    // Served from the moment finalize answered, compressed or not yet.
    let live = app.visit("squeeze", "/").await;
    assert_eq!((live.status, live.body.as_str()), (200, v1.as_str()));
    let br = app.wait_for_encoding("squeeze", "/", "br").await;
    assert_eq!(unbrotli(&br.bytes), v1.as_bytes());
    let gzip = app.wait_for_encoding("squeeze", "/", "gzip").await;
    assert_eq!(gunzip(&gzip.bytes), v1.as_bytes());
    let js = app.wait_for_encoding("squeeze", "/app.js", "br").await;
    assert_eq!(unbrotli(&js.bytes), script.as_bytes());

    // The next deploy's new page gets variants of its own; the first
    // deploy's permalink keeps serving its own.
    runner
        .deploy(
            &app,
            "squeeze",
            &sha,
            &[("index.html", v2.as_bytes()), ("app.js", script.as_bytes())],
        )
        .await;
    let br = app.wait_for_encoding("squeeze", "/", "br").await;
    assert_eq!(unbrotli(&br.bytes), v2.as_bytes());
    let js = app
        .visit_with("squeeze", "/app.js", &[("Accept-Encoding", "br")])
        .await;
    assert_eq!(js.header("content-encoding"), "br", "a file compressed before");
    let permalink = format!("{}--squeeze", first.deploy_id);
    let old = app.wait_for_encoding(&permalink, "/", "br").await;
    assert_eq!(unbrotli(&old.bytes), v1.as_bytes());
    let metrics = app.wait_for_metric("jamstack_variants_pending_deploys 0").await;
    assert!(
        metrics.lines().any(|l| l == "jamstack_variant_blobs_total 3"),
        "two pages and the script, each compressed once:\n{metrics}"
    );
}

#[tokio::test]
async fn redirect_and_header_rules_from_the_publish_directory_and_jamstack_toml_are_applied() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let toml = format!(
        "{COPY_SITE_TOML}
[[redirects]]
from = \"/toml\"
to = \"/from-toml\"
status = 307

[[headers]]
for = \"/*\"
[headers.values]
X-From-Toml = \"yes\"
"
    );
    let sha = repo.commit(
        &[
            ("jamstack.toml", &toml),
            (
                "src/_redirects",
                "# old links
/old          /new            301
/blog/:slug   /posts/:slug    302
/api/*        /api-docs.html  200
/app/*        /index.html     200
/about        /somewhere-else 301
/toml         /from-file      302  Cookie=from-file
",
            ),
            (
                "src/_headers",
                "/*
  X-Frame-Options: DENY
/assets/*
  Cache-Control: public, max-age=60
",
            ),
            ("src/index.html", "home"),
            ("src/about.html", "about"),
            ("src/api-docs.html", "api docs"),
            ("src/assets/site.css", "css"),
        ],
        "site with rules",
    );
    app.connect_site("rules", &repo, "octo/rules").await;
    app.wait_for_success(app.push("octo/rules", &repo, &sha).await)
        .await;

    let old = app.visit("rules", "/old").await;
    assert_eq!((old.status, old.header("location")), (301, "/new"));
    assert_eq!(old.header("x-frame-options"), "DENY");
    let post = app.visit("rules", "/blog/hello-world/?ref=mail").await;
    assert_eq!(
        (post.status, post.header("location")),
        (302, "/posts/hello-world?ref=mail")
    );
    let api = app.visit("rules", "/api/v2/users").await;
    assert_eq!((api.status, api.body.as_str()), (200, "api docs"));
    let spa = app.visit("rules", "/app/settings/profile").await;
    assert_eq!((spa.status, spa.body.as_str()), (200, "home"));
    let about = app.visit("rules", "/about").await;
    assert_eq!(
        about.body, "about",
        "an existing page shadows a rule that is not forced"
    );
    let css = app.visit("rules", "/assets/site.css").await;
    assert_eq!(css.header("cache-control"), "public, max-age=60");
    assert_eq!(css.header("x-frame-options"), "DENY");
    assert_eq!(css.header("x-from-toml"), "yes");
    let toml_rule = app.visit("rules", "/toml").await;
    assert_eq!(
        (toml_rule.status, toml_rule.header("location")),
        (307, "/from-toml")
    );
    let file_rule = app
        .visit_with("rules", "/toml", &[("Cookie", "from-file=1")])
        .await;
    assert_eq!(
        (file_rule.status, file_rule.header("location")),
        (302, "/from-file"),
        "_redirects comes before jamstack.toml"
    );
    assert_eq!(
        app.visit("rules", "/_redirects").await.status,
        404,
        "rule files are not served"
    );
    assert_eq!(app.visit("rules", "/_headers").await.status, 404);
}

#[tokio::test]
async fn a_mistake_in_a_rule_fails_the_deploy_naming_the_file_line_and_reason() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let good = repo.commit(
        &[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "good")],
        "good",
    );
    app.connect_site("typo", &repo, "octo/typo").await;
    app.wait_for_success(app.push("octo/typo", &repo, &good).await)
        .await;

    let bad_file = repo.commit(
        &[("src/_redirects", "/fine /ok\n/missing-target\n")],
        "bad _redirects",
    );
    let build = app
        .wait_for_build(app.push("octo/typo", &repo, &bad_file).await)
        .await;
    assert_eq!(build["state"], "failed", "{build}");
    let error = build["error"].as_str().unwrap();
    assert!(
        error.contains("_redirects:2") && error.contains("has no target"),
        "{error}"
    );

    let bad_toml = repo.commit(
        &[
            ("src/_redirects", "/fine /ok\n"),
            (
                "jamstack.toml",
                &format!("{COPY_SITE_TOML}\n[[redirects]]\nfrom = \"/api/*\"\nto = \"https://api.example.com/:splat\"\nstatus = 404\n"),
            ),
        ],
        "another site's page with a 404",
    );
    let build = app
        .wait_for_build(app.push("octo/typo", &repo, &bad_toml).await)
        .await;
    assert_eq!(build["state"], "failed", "{build}");
    let error = build["error"].as_str().unwrap();
    assert!(
        error.contains("jamstack.toml:8") && error.contains("another site's page"),
        "{error}"
    );

    assert_eq!(app.visit("typo", "/").await.body, "good", "the live deploy stays");
}

#[tokio::test]
async fn a_symlink_out_of_the_publish_directory_fails_the_build_and_request_paths_never_leave_a_deploy() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[(
            "jamstack.toml",
            "[build]\ncommand = \"mkdir -p public && echo hi > public/index.html && ln -s /etc/passwd public/leak\"\n\
             publish = \"public\"\nimage = \"jamstack/busybox:1\"\n",
        )],
        "a leaking link",
    );
    app.connect_site("links", &repo, "octo/links").await;
    let build = app
        .wait_for_build(app.push("octo/links", &repo, &sha).await)
        .await;
    assert_eq!(build["state"], "failed", "{build}");
    let error = build["error"].as_str().unwrap();
    assert!(error.contains("`leak`") && error.contains("symlink"), "{error}");

    let sha = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", "home"),
            ("src/%2e%2e/x.html", "a file with an odd name"),
        ],
        "site",
    );
    let build = app
        .wait_for_success(app.push("octo/links", &repo, &sha).await)
        .await;
    let permalink = format!("{}--links", build["deploy_id"].as_str().unwrap());
    for label in ["links", permalink.as_str()] {
        for escape in [
            "/../../etc/passwd",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/%2E%2e%2Fetc%2Fpasswd",
            "/.%2e/.%2e/etc/passwd",
            "/assets/..%2f..%2f..%2fetc/passwd",
            "/..\\..\\etc\\passwd",
            "/a%5c..%5c..%5cetc",
            "/%c0%ae%c0%ae/etc/passwd",
            "/index.html%00.png",
            "/%0d%0aSet-Cookie:x",
        ] {
            assert_eq!(app.visit_raw_path(label, escape).await, 400, "{label}{escape}");
        }
        // Encoded twice, `..` is just a name: looked up as such, and missing.
        assert_eq!(
            app.visit_raw_path(label, "/%252e%252e/%252e%252e/etc/passwd")
                .await,
            404
        );
    }
    assert_eq!(
        app.visit("links", "/%252e%252e/x.html").await.body,
        "a file with an odd name"
    );
}
