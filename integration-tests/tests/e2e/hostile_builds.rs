//! Hostile builds: a repository (a fork's pull request is one) and its
//! build may make any file, symlink or amount of output. The runner
//! publishes only what is really inside the checkout or the build's output,
//! reads rule files only when they are small regular files, and never
//! reads through a link out of them: the runner's own work folder (its
//! token in it) and the host's files stay out of every deploy.

use crate::helpers::{SiteRepo, TestApp, pull_request_payload, spawn_app, spawn_app_with_runner};
use serde_json::{Value, json};

/// A file standing for the runner's token in its work folder: what the
/// attacks below are after.
const TOKEN_STAND_IN: &str = "runner-token-stand-in-7f3e9a";

fn plant_token_stand_in(app: &TestApp) -> std::path::PathBuf {
    let work_dir = app.data_dir().join("runner");
    std::fs::create_dir_all(&work_dir).unwrap();
    let file = work_dir.join("runner-token");
    std::fs::write(&file, TOKEN_STAND_IN).unwrap();
    file
}

/// Pushes `sha`, waits for the build and checks it failed with an error
/// holding `expected` and published nothing.
async fn assert_refused(app: &TestApp, site: &str, repo: &SiteRepo, sha: &str, expected: &str) -> Value {
    let id = app.push(&format!("octo/{site}"), repo, sha).await;
    let build = app.wait_for_build(id).await;
    assert_eq!(build["state"], "failed", "{build}");
    let error = build["error"].as_str().unwrap_or_default();
    assert!(error.contains(expected), "the error says what was wrong: {error}");
    assert!(build["deploy_id"].is_null(), "{build}");
    assert!(app.deploys_of(site).await.is_empty(), "no deploy was made");
    assert_eq!(app.visit(site, "/").await.status, 404, "nothing is served");
    let log = app.build_log(id).await;
    assert!(log.contains(expected), "the log says it too: {log}");
    assert!(!log.contains(TOKEN_STAND_IN), "{log}");
    build
}

fn toml(command: Option<&str>, extra: &str) -> String {
    let command = command
        .map(|c| format!("command = '''{c}'''\nimage = \"jamstack/busybox:1\"\n"))
        .unwrap_or_default();
    format!("[build]\n{command}{extra}")
}

#[tokio::test]
async fn a_build_that_links_its_publish_folder_out_of_the_container_output_publishes_nothing() {
    let app = spawn_app().await;
    plant_token_stand_in(&app);
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[(
            "jamstack.toml",
            &toml(Some("ln -s ../.. public"), "publish = \"public\"\n"),
        )],
        "publish the runner's folder",
    );
    app.connect_site("linkout", &repo, "octo/linkout").await;
    assert_refused(
        &app,
        "linkout",
        &repo,
        &sha,
        "`public` is a symlink (to `../..`); publish must be a real folder inside the build's output",
    )
    .await;
}

/// The attack as it came: a pull request from a fork, delivered as GitHub
/// sends it, whose build links its publish folder to the runner's own work
/// folder to publish the runner's token.
#[tokio::test]
async fn a_fork_pull_request_that_links_its_publish_folder_to_the_runners_folder_publishes_nothing() {
    let app = spawn_app().await;
    plant_token_stand_in(&app);
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[(
            "jamstack.toml",
            &toml(Some("ln -s ../.. public"), "publish = \"public\"\n"),
        )],
        "a harmless-looking pull request",
    );
    app.connect_site("forked", &repo, "octo/forked").await;
    let mut payload = pull_request_payload("opened", "octo/forked", 7, "patch-1", &sha);
    payload["pull_request"]["head"]["repo"]["full_name"] = json!("stranger/forked");
    let (status, answer) = app.deliver_github_event("pull_request", &payload).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["builds"][0]
        .as_i64()
        .expect("the pull request queued a preview");
    let build = app.wait_for_build(id).await;
    assert_eq!(build["from_fork"], true, "{build}");
    assert_eq!(build["state"], "failed", "{build}");
    let error = build["error"].as_str().unwrap_or_default();
    assert!(error.contains("`public` is a symlink (to `../..`)"), "{error}");
    assert!(app.deploys_of("forked").await.is_empty(), "no deploy was made");
    assert!(!app.build_log(id).await.contains(TOKEN_STAND_IN));
}

#[tokio::test]
async fn a_committed_publish_folder_symlink_out_of_the_checkout_is_refused_without_a_build_command() {
    let app = spawn_app().await;
    plant_token_stand_in(&app);
    let repo = SiteRepo::new();
    let sha = repo.commit_with_links(
        &[("jamstack.toml", &toml(None, "publish = \"out\"\n"))],
        &[("out", "../..")],
        "publish the runner's folder",
    );
    app.connect_site("outlink", &repo, "octo/outlink").await;
    assert_refused(
        &app,
        "outlink",
        &repo,
        &sha,
        "`out` is a symlink (to `../..`); publish must be a real folder inside the repository",
    )
    .await;
}

#[tokio::test]
async fn a_base_folder_that_is_a_symlink_out_of_the_checkout_is_refused() {
    let app = spawn_app().await;
    plant_token_stand_in(&app);
    let repo = SiteRepo::new();
    let sha = repo.commit_with_links(
        &[("jamstack.toml", &toml(None, "base = \"site\"\n"))],
        &[("site", "../..")],
        "base out of the checkout",
    );
    app.connect_site("baselink", &repo, "octo/baselink").await;
    assert_refused(
        &app,
        "baselink",
        &repo,
        &sha,
        "base `site`: `site` is a symlink (to `../..`); base must be a real folder inside the repository",
    )
    .await;
}

/// A monorepo site's base folder, from its settings, is walked the same
/// way: a link there would hand the runner's files in as jamstack.toml.
#[tokio::test]
async fn a_sites_base_folder_that_is_a_symlink_out_of_the_checkout_is_refused_before_its_jamstack_toml_is_read()
 {
    let app = spawn_app().await;
    plant_token_stand_in(&app);
    let repo = SiteRepo::new();
    let sha = repo.commit_with_links(
        &[("README.md", "a monorepo")],
        &[("sites/blog", "../..")],
        "site base out of the checkout",
    );
    app.connect_site("sitebase", &repo, "octo/sitebase").await;
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api("/sites/sitebase/build-paths"))
                .json(&serde_json::json!({"base": "sites/blog"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_refused(
        &app,
        "sitebase",
        &repo,
        &sha,
        "the site's base `sites/blog`: `sites/blog` is a symlink (to `../..`)",
    )
    .await;
}

#[tokio::test]
async fn a_symlink_inside_the_publish_folder_to_etc_passwd_fails_the_build_unread() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[(
            "jamstack.toml",
            &toml(
                Some("mkdir public && echo hi > public/index.html && ln -s /etc/passwd public/passwd"),
                "publish = \"public\"\n",
            ),
        )],
        "leak the host's passwd",
    );
    app.connect_site("passwd", &repo, "octo/passwd").await;
    let build = assert_refused(
        &app,
        "passwd",
        &repo,
        &sha,
        "`passwd` in the publish directory is a symlink to `/etc/passwd`, outside the publish directory",
    )
    .await;
    assert!(!build.to_string().contains("root:x:0:0"), "{build}");
}

#[tokio::test]
async fn a_committed_symlink_inside_the_publish_folder_to_the_runners_token_fails_the_build_unread() {
    let app = spawn_app().await;
    let token_file = plant_token_stand_in(&app);
    let repo = SiteRepo::new();
    let sha = repo.commit_with_links(
        &[
            ("jamstack.toml", &toml(None, "publish = \"public\"\n")),
            ("public/index.html", "hi"),
        ],
        &[("public/token.txt", token_file.to_str().unwrap())],
        "leak the runner's token",
    );
    app.connect_site("tokenlink", &repo, "octo/tokenlink").await;
    assert_refused(
        &app,
        "tokenlink",
        &repo,
        &sha,
        "`token.txt` in the publish directory is a symlink to",
    )
    .await;
}

#[tokio::test]
async fn a_jamstack_toml_that_is_a_symlink_to_dev_zero_fails_the_build_unread() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = repo.commit_with_links(
        &[("public/index.html", "hi")],
        &[("jamstack.toml", "/dev/zero")],
        "endless config",
    );
    app.connect_site("zerotoml", &repo, "octo/zerotoml").await;
    assert_refused(
        &app,
        "zerotoml",
        &repo,
        &sha,
        "jamstack.toml: `jamstack.toml` is a symlink (to `/dev/zero`); jamstack.toml must be a regular file",
    )
    .await;
}

#[tokio::test]
async fn a_two_mib_jamstack_toml_fails_the_build_naming_the_file_and_the_limit() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let huge = format!("{}\n[build]\npublish = \"public\"\n", "#".repeat(2 * 1024 * 1024));
    let sha = repo.commit(
        &[("jamstack.toml", &huge), ("public/index.html", "hi")],
        "huge config",
    );
    app.connect_site("hugetoml", &repo, "octo/hugetoml").await;
    assert_refused(
        &app,
        "hugetoml",
        &repo,
        &sha,
        "`jamstack.toml` is larger than the limit of 1 MiB",
    )
    .await;
}

#[tokio::test]
async fn a_redirects_file_symlinked_to_dev_zero_in_the_publish_folder_fails_the_build_unread() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = repo.commit_with_links(
        &[
            ("jamstack.toml", &toml(None, "publish = \"public\"\n")),
            ("public/index.html", "hi"),
        ],
        &[("public/_redirects", "/dev/zero")],
        "endless rules",
    );
    app.connect_site("zerorules", &repo, "octo/zerorules").await;
    assert_refused(
        &app,
        "zerorules",
        &repo,
        &sha,
        "`_redirects` in the publish directory is a symlink to `/dev/zero`",
    )
    .await;
}

#[tokio::test]
async fn a_build_output_over_the_runners_publish_limit_fails_the_build_naming_the_limit() {
    let app = spawn_app_with_runner(|runner| runner.publish_limit_bytes = 1024 * 1024).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[(
            "jamstack.toml",
            &toml(
                // Sparse: nothing on the build's disk, 256 MiB in the archive.
                Some("mkdir public && echo hi > public/index.html && truncate -s 256M public/big.bin"),
                "publish = \"public\"\n",
            ),
        )],
        "huge output",
    );
    app.connect_site("hugeout", &repo, "octo/hugeout").await;
    assert_refused(
        &app,
        "hugeout",
        &repo,
        &sha,
        "the build's output `/workspace/public` is larger than this runner's limit of 1 MiB (--publish-limit-mib)",
    )
    .await;
}

#[tokio::test]
async fn a_secret_split_by_ansi_escapes_never_reaches_the_stored_log() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[(
            "jamstack.toml",
            &toml(
                Some(
                    "mkdir public && echo hi > public/index.html && \
                     printf 'split: %s\\033[0m%s\\n' \"${API_TOKEN%??????}\" \"${API_TOKEN#???????????}\"",
                ),
                "publish = \"public\"\n",
            ),
        )],
        "print the secret split by an escape",
    );
    app.connect_site("ansi", &repo, "octo/ansi").await;
    app.set_env("ansi", "API_TOKEN", "tok-ansi-5e1d2c3b", true).await;
    let id = app.push("octo/ansi", &repo, &sha).await;
    app.wait_for_success(id).await;
    let log = app.build_log(id).await;
    assert!(log.contains("split: ***"), "{log}");
    // Neither half of it is left, with or without the escape.
    assert!(!log.replace("\x1b[0m", "").contains("tok-ansi-5e1d2c3b"), "{log}");
    assert!(!log.contains("tok-ansi-5e") && !log.contains("1d2c3b"), "{log}");
}
