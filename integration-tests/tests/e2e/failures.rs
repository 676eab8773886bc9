use crate::helpers::{COPY_SITE_TOML, SiteRepo, spawn_app};

#[tokio::test]
async fn a_failing_build_command_fails_the_build_with_its_log_and_the_live_deploy_stays() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let good = repo.commit(
        &[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "good")],
        "good",
    );
    app.connect_site("shop", &repo, "octo/shop").await;
    app.wait_for_success(app.push("octo/shop", &repo, &good).await)
        .await;

    let broken = repo.commit(
        &[(
            "jamstack.toml",
            "[build]\ncommand = \"echo compiling; echo 'error: missing semicolon' >&2; exit 3\"\n\
             publish = \"public\"\nimage = \"jamstack/busybox:1\"\n",
        )],
        "break the build",
    );
    let id = app.push("octo/shop", &repo, &broken).await;
    let build = app.wait_for_build(id).await;
    assert_eq!(build["state"], "failed", "{build}");
    assert_eq!(build["exit_code"], 3);
    assert!(
        build["error"].as_str().unwrap().contains("exited with 3"),
        "{build}"
    );
    assert!(build["deploy_id"].is_null());
    let log = app.build_log(id).await;
    assert!(
        log.contains("compiling") && log.contains("error: missing semicolon"),
        "{log}"
    );
    assert!(log.contains("Build failed"), "{log}");

    assert_eq!(
        app.visit("shop", "/").await.body,
        "good",
        "the published deploy is untouched"
    );
}

#[tokio::test]
async fn a_typo_in_jamstack_toml_fails_the_build_naming_the_line_and_column() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[(
            "jamstack.toml",
            "[build]\npublish = \"public\"\ncomand = \"make\"\n",
        )],
        "typo",
    );
    app.connect_site("typo", &repo, "octo/typo").await;
    let id = app.push("octo/typo", &repo, &sha).await;
    let build = app.wait_for_build(id).await;
    assert_eq!(build["state"], "failed");
    let error = build["error"].as_str().unwrap();
    assert!(error.starts_with("jamstack.toml:3:1:"), "{error}");
    assert!(
        error.contains("comand") && error.contains("command"),
        "says what was expected: {error}"
    );
    assert!(app.build_log(id).await.contains("jamstack.toml:3:1:"));
    assert_eq!(app.visit("typo", "/").await.status, 404, "nothing was published");
}

#[tokio::test]
async fn a_site_whose_image_is_missing_fails_naming_the_image_and_what_to_do() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[(
            "jamstack.toml",
            "[build]\ncommand = \"true\"\nimage = \"jamstack/no-such-image:9\"\n",
        )],
        "missing image",
    );
    app.connect_site("noimage", &repo, "octo/noimage").await;
    let build = app
        .wait_for_build(app.push("octo/noimage", &repo, &sha).await)
        .await;
    assert_eq!(build["state"], "failed");
    let error = build["error"].as_str().unwrap();
    assert!(
        error.contains("jamstack/no-such-image:9") && error.contains("build-images.sh"),
        "{error}"
    );
}

#[tokio::test]
async fn a_publish_directory_that_is_not_there_fails_with_a_hint() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[(
            "jamstack.toml",
            "[build]\ncommand = \"mkdir -p dist && echo hi > dist/index.html\"\npublish = \"public\"\n",
        )],
        "wrong publish dir",
    );
    app.connect_site("nopublish", &repo, "octo/nopublish").await;
    let build = app
        .wait_for_build(app.push("octo/nopublish", &repo, &sha).await)
        .await;
    assert_eq!(build["state"], "failed");
    assert!(build["error"].as_str().unwrap().contains("publish"), "{build}");
}
