//! Where deploy files live and how long: the S3 blob store, deduplication,
//! limits, publish locks, and retention with garbage collection.

use crate::helpers::{
    HandRunner, SiteRepo, a_fresh_s3_bucket, objects_in_bucket, spawn_app_with, spawn_controller_only_with,
};
use jamstack_controller::config::BlobStoreConfig;
use std::time::Duration;

#[tokio::test]
async fn a_site_on_s3_is_uploaded_to_the_bucket_served_from_it_and_collected_from_it() {
    let bucket = a_fresh_s3_bucket().await;
    let s3 = bucket.clone();
    let app = spawn_app_with(move |config| {
        config.blob_store = BlobStoreConfig::S3(s3);
        config.retention.keep_deploys = 1;
        config.retention.blob_grace = Duration::ZERO;
    })
    .await;
    let repo = SiteRepo::new();
    // 9 MB of random bytes: more than one multipart part, and too big for
    // the edge's memory, so it streams from the bucket.
    let random: Vec<u8> = std::iter::repeat_with(rand_byte).take(9_000_000).collect();
    let build_sh = |version: &str| {
        format!(
            "set -e\nmkdir -p public\necho '<h1>{version}</h1>' > public/index.html\ncp big.bin public/big.bin\n"
        )
    };
    let toml = "[build]\ncommand = \"sh build.sh\"\npublish = \"public\"\nimage = \"jamstack/busybox:1\"\n";
    let v1 = jamstack_runner::git::commit_files(
        std::path::Path::new(&repo.url()),
        "main",
        &[
            ("jamstack.toml", toml.as_bytes()),
            ("build.sh", build_sh("v1").as_bytes()),
            ("big.bin", &random),
        ],
        "v1",
    )
    .unwrap();
    app.connect_site("bucket", &repo, "octo/bucket").await;
    let first = app
        .wait_for_success(app.push("octo/bucket", &repo, &v1).await)
        .await;
    let stored = objects_in_bucket(&bucket).await;
    assert_eq!(stored.len(), 2, "index.html and big.bin: {stored:?}");

    assert_eq!(app.visit("bucket", "/").await.body, "<h1>v1</h1>\n");
    let whole = app.visit("bucket", "/big.bin").await;
    assert_eq!(whole.bytes.len(), random.len());
    assert!(whole.bytes == random, "the big file comes back byte for byte");
    let part = app
        .visit_with("bucket", "/big.bin", &[("Range", "bytes=8999990-")])
        .await;
    assert_eq!((part.status, &part.bytes[..]), (206, &random[8_999_990..]));

    let v2 = repo.commit(&[("build.sh", &build_sh("v2"))], "v2");
    let second = app
        .wait_for_success(app.push("octo/bucket", &repo, &v2).await)
        .await;
    assert_eq!(
        objects_in_bucket(&bucket).await.len(),
        3,
        "only the changed page was uploaded"
    );
    let log = app.build_log(second["id"].as_i64().unwrap()).await;
    assert!(log.contains("Uploaded 1 new of 2 files"), "{log}");

    let report = app.collect_garbage().await;
    assert_eq!(
        report["deploys_removed"],
        serde_json::json!([first["deploy_id"]]),
        "{report}"
    );
    assert_eq!(report["blobs_removed"], 1, "{report}");
    assert_eq!(
        objects_in_bucket(&bucket).await.len(),
        2,
        "v1's page left the bucket"
    );
    assert_eq!(app.visit("bucket", "/").await.body, "<h1>v2</h1>\n");
    assert_eq!(app.visit("bucket", "/big.bin").await.bytes.len(), random.len());
    let old = format!("{}--bucket", first["deploy_id"].as_str().unwrap());
    assert_eq!(app.visit(&old, "/").await.status, 404);
}

fn rand_byte() -> u8 {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) });
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x >> 24) as u8
    })
}

#[tokio::test]
async fn a_second_deploy_of_a_5000_file_site_with_10_changed_files_uploads_10_blobs() {
    let app = spawn_app_with(|_| {}).await;
    let repo = SiteRepo::new();
    let build_sh = |changed: &str| {
        format!(
            "set -e\nmkdir -p public\necho home > public/index.html\ni=0\n\
             while [ $i -lt 5000 ]; do echo \"file $i\" > public/f$i.txt; i=$((i+1)); done\n\
             for i in {changed}; do echo \"changed $i\" > public/f$i.txt; done\n"
        )
    };
    let toml = "[build]\ncommand = \"sh build.sh\"\npublish = \"public\"\nimage = \"jamstack/busybox:1\"\n";
    let v1 = repo.commit(
        &[("jamstack.toml", toml), ("build.sh", &build_sh(""))],
        "5000 files",
    );
    app.connect_site("many", &repo, "octo/many").await;
    let first = app
        .wait_for_success(app.push("octo/many", &repo, &v1).await)
        .await;
    let log = app.build_log(first["id"].as_i64().unwrap()).await;
    assert!(log.contains("Uploaded 5001 new of 5001 files"), "{log}");
    let blobs_before = app.stored_blob_files();
    assert_eq!(blobs_before, 5001);

    let v2 = repo.commit(&[("build.sh", &build_sh("0 1 2 3 4 5 6 7 8 9"))], "10 changed");
    let second = app
        .wait_for_success(app.push("octo/many", &repo, &v2).await)
        .await;
    let log = app.build_log(second["id"].as_i64().unwrap()).await;
    assert!(log.contains("Uploaded 10 new of 5001 files"), "{log}");
    assert_eq!(
        app.stored_blob_files(),
        blobs_before + 10,
        "the store grew by the changed files only"
    );
    assert_eq!(app.visit("many", "/f7.txt").await.body, "changed 7\n");
    assert_eq!(app.visit("many", "/f4999.txt").await.body, "file 4999\n");
}

#[tokio::test]
async fn files_over_the_limits_are_refused_naming_the_setting() {
    let (app, token) = spawn_controller_only_with(|config| {
        config.limits.max_file_size = 1024 * 1024;
        config.limits.max_files = 3;
        config.limits.max_deploy_size = 1536 * 1024;
    })
    .await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("README", "by hand")], "by hand");
    app.connect_site("limits", &repo, "octo/limits").await;
    let runner = HandRunner::connect(&app, &token).await;
    let big = vec![b'x'; 1024 * 1024 + 1];
    let medium = vec![b'y'; 1024 * 1024];

    let refused = |files: Vec<(&'static str, Vec<u8>)>| {
        let (app, runner, sha) = (&app, &runner, &sha);
        async move {
            app.trigger_build("limits", sha).await;
            let lease = runner.lease().await;
            let manifest = files
                .iter()
                .map(|(path, content)| crate::helpers::manifest_file(path, content))
                .collect();
            let error = runner.client.send_manifest(&lease, manifest).await.unwrap_err();
            runner
                .client
                .complete(
                    &lease,
                    &jamstack_proto::JobOutcome::Failed {
                        exit_code: None,
                        message: error.to_string(),
                    },
                    &[],
                )
                .await
                .unwrap();
            error.to_string()
        }
    };
    let error = refused(vec![("video.mp4", big.clone())]).await;
    assert!(
        error.contains("`video.mp4` is 1.0 MiB") && error.contains("--max-file-size-mb"),
        "{error}"
    );
    let error = refused(vec![
        ("a", vec![1]),
        ("b", vec![2]),
        ("c", vec![3]),
        ("d", vec![4]),
    ])
    .await;
    assert!(
        error.contains("4 files") && error.contains("--max-files"),
        "{error}"
    );
    let error = refused(vec![("a", medium.clone()), ("b", medium)]).await;
    assert!(error.contains("--max-deploy-size-mb"), "{error}");

    // A blob over the limit sent without a manifest is cut off as it streams.
    let hash = crate::helpers::manifest_file("x", &big).sha256;
    let error = runner
        .client
        .put_blob(&hash, bytes::Bytes::from(big))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("413"), "{error}");
    assert_eq!(app.stored_blob_files(), 0);
}

/// Retention removes what it may while an upload is in flight, and never a
/// blob that a kept deploy, or that upload, uses.
#[tokio::test]
async fn garbage_collection_never_removes_a_blob_a_kept_deploy_or_an_upload_in_flight_uses() {
    let (app, token) = spawn_controller_only_with(|config| {
        config.retention.keep_deploys = 2;
        config.retention.blob_grace = Duration::ZERO;
        config.retention.gc_interval = Duration::ZERO;
    })
    .await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("README", "by hand")], "by hand");
    app.connect_site("gc", &repo, "octo/gc").await;
    let runner = HandRunner::connect(&app, &token).await;
    let shared = b"shared by every deploy".as_slice();
    let d1 = runner
        .deploy(
            &app,
            "gc",
            &sha,
            &[
                ("index.html", b"v1"),
                ("shared.txt", shared),
                ("one.txt", b"only in one"),
            ],
        )
        .await;
    let d2 = runner
        .deploy(
            &app,
            "gc",
            &sha,
            &[
                ("index.html", b"v2"),
                ("shared.txt", shared),
                ("two.txt", b"only in two"),
                ("later.txt", b"used again later"),
            ],
        )
        .await;
    let d3 = runner
        .deploy(&app, "gc", &sha, &[("index.html", b"v3"), ("shared.txt", shared)])
        .await;
    let d4 = runner
        .deploy(&app, "gc", &sha, &[("index.html", b"v4"), ("shared.txt", shared)])
        .await;
    // The oldest deploy is rolled back to: published, so kept whatever its age.
    let (status, _) = app.publish("gc", &d1.deploy_id).await;
    assert_eq!(status, 200);

    // An upload in flight names a blob only the deploy about to go has.
    app.trigger_build("gc", &sha).await;
    let lease = runner.lease().await;
    let d5_files: [(&str, &[u8]); 3] = [
        ("index.html", b"v5"),
        ("later.txt", b"used again later"),
        ("new.txt", b"new"),
    ];
    let answer = runner.send_manifest(&lease, &d5_files).await;
    assert_eq!(answer.missing.len(), 2, "later.txt is stored already");

    // An object a crashed upload left behind, named by no row.
    let orphan = format!("{}.{}", "ab".repeat(32), "00112233");
    std::fs::create_dir_all(app.data_dir.join("blobs/ab")).unwrap();
    std::fs::write(app.data_dir.join("blobs/ab").join(&orphan), b"orphan").unwrap();
    let before = app.stored_blob_files();

    let report = app.collect_garbage().await;
    assert_eq!(
        report["deploys_removed"],
        serde_json::json!([d2.deploy_id]),
        "{report}"
    );
    assert_eq!(report["blobs_removed"], 2, "v2's page and two.txt: {report}");
    assert_eq!(report["orphans_removed"], 1, "{report}");
    assert_eq!(app.stored_blob_files(), before - 3);

    let check = |label: String, files: Vec<(&'static str, &'static [u8])>| {
        let app = &app;
        async move {
            for (path, content) in files {
                let page = app.visit(&label, &format!("/{path}")).await;
                assert_eq!((page.status, &page.bytes[..]), (200, content), "{label}/{path}");
            }
        }
    };
    check(
        "gc".into(),
        vec![
            ("index.html", b"v1"),
            ("shared.txt", shared),
            ("one.txt", b"only in one"),
        ],
    )
    .await;
    check(
        format!("{}--gc", d3.deploy_id),
        vec![("index.html", b"v3"), ("shared.txt", shared)],
    )
    .await;
    check(
        format!("{}--gc", d4.deploy_id),
        vec![("index.html", b"v4"), ("shared.txt", shared)],
    )
    .await;
    assert_eq!(app.visit(&format!("{}--gc", d2.deploy_id), "/").await.status, 404);

    // The upload in flight completes without sending later.txt again.
    runner.upload_missing(&answer, &d5_files).await;
    let d5 = runner.finish(&lease).await;
    assert!(d5.published);
    check(
        "gc".into(),
        vec![
            ("index.html", b"v5"),
            ("later.txt", b"used again later"),
            ("new.txt", b"new"),
        ],
    )
    .await;

    // Locked, production stays where it is while deploys go on.
    app.lock_publishing("gc").await;
    let d6 = runner.deploy(&app, "gc", &sha, &[("index.html", b"v6")]).await;
    assert!(!d6.published);
    assert_eq!(app.visit("gc", "/").await.body, "v5");
    assert_eq!(app.visit(&format!("{}--gc", d6.deploy_id), "/").await.body, "v6");
    let report = app.collect_garbage().await;
    let removed = report["deploys_removed"].as_array().unwrap();
    assert!(
        !removed.iter().any(|id| id == &d5.deploy_id),
        "the published deploy stays: {report}"
    );
    assert_eq!(app.visit("gc", "/").await.body, "v5");
    app.unlock_publishing("gc").await;
    let d7 = runner.deploy(&app, "gc", &sha, &[("index.html", b"v7")]).await;
    assert!(d7.published);

    // A branch deploy is served at its hostname until the branch goes.
    app.trigger_build_of("gc", Some("feature"), &sha).await;
    let lease = runner.lease().await;
    let files: [(&str, &[u8]); 1] = [("index.html", b"feature")];
    let answer = runner.send_manifest(&lease, &files).await;
    runner.upload_missing(&answer, &files).await;
    let feature = runner.finish(&lease).await;
    assert_eq!(app.visit("feature--gc", "/").await.body, "feature");
    let report = app.collect_garbage().await;
    assert!(
        !report["deploys_removed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|id| id == &feature.deploy_id)
    );
    assert_eq!(app.take_alias_down("gc", "feature").await, 204);
    assert_eq!(
        app.visit("feature--gc", "/").await.status,
        404,
        "gone from the next request"
    );
    let report = app.collect_garbage().await;
    assert!(
        report["deploys_removed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|id| id == &feature.deploy_id),
        "the deleted branch's deploy is removed: {report}"
    );
}
