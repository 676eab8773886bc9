use crate::helpers::{SiteRepo, manifest_file as file, spawn_app, spawn_controller_only};
use bytes::Bytes;
use jamstack_proto::{JobOutcome, PROTOCOL_HEADER, routes};
use jamstack_runner::client::{ClientError, ControllerClient};
use std::time::Duration;

/// Plays the runner's part by hand, stopping between the steps to look.
#[tokio::test]
async fn nothing_of_a_deploy_is_visible_until_it_is_finalized_and_stored_blobs_are_never_sent_again() {
    let (app, token) = spawn_controller_only().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("README", "by hand")], "by hand");
    app.connect_site("atomic", &repo, "octo/atomic").await;
    app.trigger_build("atomic", &sha).await;

    let runner = ControllerClient::new(&app.base_url, &token);
    runner.connect("hand").await.expect("connecting");
    let lease = runner
        .lease("hand", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("a job");
    assert_eq!(lease.commit_sha, sha);

    let (index, style) = (b"<h1>hello</h1>".as_slice(), b"body{}".as_slice());
    let answer = runner
        .send_manifest(&lease, vec![file("index.html", index), file("style.css", style)])
        .await
        .unwrap();
    assert_eq!(answer.missing.len(), 2);

    let early = runner.finalize(&lease).await.unwrap_err();
    assert!(early.to_string().contains("upload every missing blob"), "{early}");

    let wrong = runner
        .put_blob(&file("x", index).sha256, Bytes::from_static(b"other bytes"))
        .await;
    assert!(matches!(wrong, Err(ClientError::Refused { .. })), "{wrong:?}");

    runner
        .put_blob(&file("x", index).sha256, Bytes::from_static(b"<h1>hello</h1>"))
        .await
        .unwrap();
    runner
        .put_blob(&file("x", style).sha256, Bytes::from_static(b"body{}"))
        .await
        .unwrap();
    // Every blob is stored, but the deploy is not finalized: nothing shows.
    assert_eq!(app.visit("atomic", "/").await.status, 404);
    assert_eq!(
        app.visit(&format!("{}--atomic", answer.deploy_id), "/")
            .await
            .status,
        404
    );

    let finalized = runner.finalize(&lease).await.unwrap();
    assert!(finalized.published);
    assert_eq!(app.visit("atomic", "/").await.body, "<h1>hello</h1>");
    let again = runner.finalize(&lease).await.unwrap();
    assert_eq!(
        (again.deploy_id.as_str(), again.published),
        (answer.deploy_id.as_str(), true),
        "finalize is idempotent"
    );
    runner
        .complete(
            &lease,
            &JobOutcome::Succeeded {
                deploy_id: answer.deploy_id.clone(),
            },
            &[],
        )
        .await
        .unwrap();
    assert!(
        matches!(runner.finalize(&lease).await, Err(ClientError::StaleLease)),
        "a finished lease is stale"
    );

    // A second build with one changed file: only that file's blob is asked for.
    app.trigger_build("atomic", &sha).await;
    let lease = runner
        .lease("hand", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("a second job");
    let answer = runner
        .send_manifest(
            &lease,
            vec![file("index.html", b"<h1>changed</h1>"), file("style.css", style)],
        )
        .await
        .unwrap();
    assert_eq!(answer.missing, vec![file("x", b"<h1>changed</h1>").sha256]);
}

#[tokio::test]
async fn a_runner_speaking_another_protocol_version_is_refused_on_connect() {
    let (app, token) = spawn_controller_only().await;
    let response = app
        .http
        .post(format!("{}{}", app.base_url, routes::runner::CONNECT))
        .bearer_auth(&token)
        .header(PROTOCOL_HEADER, "999")
        .json(&serde_json::json!({ "protocol_version": 999, "runner_name": "old" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 426);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["controller_version"], jamstack_proto::PROTOCOL_VERSION);
    assert!(body["message"].as_str().unwrap().contains("999"), "{body}");

    let unauthenticated = ControllerClient::new(&app.base_url, "jsr_wrong");
    let refused = unauthenticated.connect("intruder").await.unwrap_err();
    assert!(refused.to_string().contains("unknown or revoked"), "{refused}");
}

/// Readers hammer a site while new deploys and rollbacks go live: every
/// answer is a whole old or a whole new version, never a 404 in between.
#[tokio::test]
async fn readers_see_the_old_or_the_new_deploy_never_a_half_written_one() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let toml = "[build]\ncommand = \"sh build.sh\"\npublish = \"public\"\nimage = \"jamstack/busybox:1\"\n";
    let build_sh = |version: &str| {
        format!(
            "set -e\nmkdir -p public/assets\necho -n '{version}' > public/index.html\n\
             echo -n 'asset {version}' > public/assets/app.css\n\
             i=0; while [ $i -lt 300 ]; do echo \"{version} $i\" > public/assets/f$i.txt; i=$((i+1)); done\n"
        )
    };
    let v1 = repo.commit(&[("jamstack.toml", toml), ("build.sh", &build_sh("v1"))], "v1");
    app.connect_site("busy", &repo, "octo/busy").await;
    let first = app
        .wait_for_success(app.push("octo/busy", &repo, &v1).await)
        .await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            let (port, http) = (app.port, app.http.clone());
            tokio::spawn(async move {
                let mut seen = std::collections::BTreeSet::new();
                let mut requests = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    for (path, prefix) in [("/", ""), ("/assets/app.css", "asset ")] {
                        let response = http
                            .get(format!("http://127.0.0.1:{port}{path}"))
                            .header("Host", format!("busy.localhost:{port}"))
                            .send()
                            .await
                            .unwrap();
                        let status = response.status().as_u16();
                        let body = response.text().await.unwrap();
                        assert_eq!(status, 200, "{path} answered {status} mid-deploy: {body}");
                        let version = body.strip_prefix(prefix).unwrap_or(&body).to_owned();
                        assert!(
                            version == "v1" || version == "v2",
                            "{path} served a mix: {body:?}"
                        );
                        seen.insert(version);
                        requests += 1;
                    }
                }
                (requests, seen)
            })
        })
        .collect();

    let v2 = repo.commit(&[("build.sh", &build_sh("v2"))], "v2");
    let second = app
        .wait_for_success(app.push("octo/busy", &repo, &v2).await)
        .await;
    let deploys = [
        first["deploy_id"].as_str().unwrap().to_owned(),
        second["deploy_id"].as_str().unwrap().to_owned(),
    ];
    for round in 0..20 {
        let (status, body) = app.publish("busy", &deploys[round % 2]).await;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut versions = std::collections::BTreeSet::new();
    for reader in readers {
        let (requests, seen) = reader.await.expect("a reader saw something wrong");
        assert!(requests > 10, "the readers ran: {requests}");
        versions.extend(seen);
    }
    assert_eq!(
        versions.len(),
        2,
        "the readers saw both versions go live: {versions:?}"
    );
}

/// The page of version `n`: its number, then enough text to compress.
fn page_of(n: usize) -> Vec<u8> {
    format!(
        "<h1>version {n}</h1>{}",
        "<p>same text in every version</p>".repeat(60)
    )
    .into_bytes()
}

/// A 200 KB asset of version `n`: `[nnnn]` over and over.
fn asset_of(n: usize) -> Vec<u8> {
    format!("[{n:04}]").repeat(200 * 1024 / 6).into_bytes()
}

fn version_of_page(body: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(body).ok()?;
    let n = text
        .strip_prefix("<h1>version ")?
        .split('<')
        .next()?
        .parse()
        .ok()?;
    (body == page_of(n).as_slice()).then_some(n)
}

fn version_of_asset(body: &[u8]) -> Option<usize> {
    let n = std::str::from_utf8(body.get(1..5)?).ok()?.parse().ok()?;
    (body == asset_of(n).as_slice()).then_some(n)
}

/// Readers hammer a site while twenty pointer moves alternate: ten new
/// deploys, each followed by a rollback to the one before. Every answer is
/// one whole version (a page, a 200 KB asset, a byte range of it), never a
/// 404 or a mix, and each move is served from the very next request.
#[tokio::test]
async fn twenty_deploys_and_rollbacks_alternate_under_load_and_readers_see_only_whole_versions() {
    use crate::helpers::HandRunner;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let (app, token) = spawn_controller_only().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("README", "by hand")], "by hand");
    app.connect_site("load", &repo, "octo/load").await;
    let runner = HandRunner::connect(&app, &token).await;
    let deploy = |n: usize| {
        let (page, asset) = (page_of(n), asset_of(n));
        let runner = &runner;
        let (app, sha) = (&app, &sha);
        async move {
            let files: [(&str, &[u8]); 3] = [
                ("index.html", &page),
                ("asset.bin", &asset),
                ("README.txt", b"same"),
            ];
            runner.deploy(app, "load", sha, &files).await.deploy_id
        }
    };
    let mut deploys = vec![deploy(0).await];

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|reader| {
            let stop = stop.clone();
            let (port, http) = (app.port, app.http.clone());
            tokio::spawn(async move {
                let mut seen = std::collections::BTreeSet::new();
                let mut requests = 0;
                while !stop.load(Ordering::SeqCst) {
                    let get = |path: &str| {
                        http.get(format!("http://127.0.0.1:{port}{path}"))
                            .header("Host", format!("load.localhost:{port}"))
                    };
                    let page = get("/").send().await.unwrap();
                    assert_eq!(
                        page.status().as_u16(),
                        200,
                        "the page answered {} mid-deploy",
                        page.status()
                    );
                    let body = page.bytes().await.unwrap();
                    let version = version_of_page(&body).unwrap_or_else(|| {
                        panic!(
                            "a page that is no whole version: {:?}",
                            String::from_utf8_lossy(&body)
                        )
                    });
                    seen.insert(version);

                    let asset = get("/asset.bin").send().await.unwrap();
                    assert_eq!(asset.status().as_u16(), 200);
                    let body = asset.bytes().await.unwrap();
                    seen.insert(version_of_asset(&body).expect("an asset that is no whole version"));

                    // A range is one version's bytes too.
                    let start = (reader * 6_000 + requests * 6) % 190_000;
                    let part = get("/asset.bin")
                        .header("Range", format!("bytes={start}-{}", start + 59))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(part.status().as_u16(), 206);
                    let body = part.bytes().await.unwrap();
                    let token_at = (6 - start % 6) % 6;
                    let n: usize = std::str::from_utf8(&body[token_at + 1..token_at + 5])
                        .unwrap()
                        .parse()
                        .unwrap();
                    assert_eq!(
                        &body[..],
                        &asset_of(n)[start..start + 60],
                        "a range mixing versions"
                    );
                    requests += 3;
                }
                (requests, seen)
            })
        })
        .collect();

    for n in 1..=10 {
        let new = deploy(n).await;
        let next = app.visit("load", "/").await;
        assert_eq!(
            version_of_page(&next.bytes),
            Some(n),
            "the new deploy is served from the next request"
        );
        deploys.push(new);
        tokio::time::sleep(Duration::from_millis(20)).await;

        let (status, body) = app.publish("load", &deploys[n - 1]).await;
        assert_eq!(status, 200, "{body}");
        let next = app.visit("load", "/").await;
        assert_eq!(
            version_of_page(&next.bytes),
            Some(n - 1),
            "the rollback is served from the next request"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut versions = std::collections::BTreeSet::new();
    for reader in readers {
        let (requests, seen) = reader.await.expect("a reader saw something wrong");
        assert!(requests > 30, "the readers ran: {requests}");
        versions.extend(seen);
    }
    assert!(
        versions.len() > 2,
        "the readers saw versions come and go: {versions:?}"
    );
    assert!(versions.iter().all(|v| *v <= 10));
}
