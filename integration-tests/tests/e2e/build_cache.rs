//! The build cache: kept from one successful build to the next, never
//! written by a failed one, emptied by "clear cache and rebuild".

use crate::helpers::{FakeGitHub, SiteRepo, docker_objects_labelled, spawn_app, spawn_app_with_github};
use serde_json::json;

/// Publishes what the cache held (or `none`), then leaves this commit's id
/// in the cache; `fail` makes the build fail after writing the cache.
fn cache_toml(fail: bool) -> String {
    let tail = if fail { " && exit 1" } else { "" };
    format!(
        "[build]\ncommand = '''mkdir -p public && \
         (cat \"$JAMSTACK_CACHE_DIR/marker\" 2>/dev/null || echo none) > public/index.html && \
         echo \"$COMMIT_REF\" > \"$JAMSTACK_CACHE_DIR/marker\" && \
         mkdir -p \"$JAMSTACK_CACHE_DIR/deps\" && echo dep > \"$JAMSTACK_CACHE_DIR/deps/lib.js\"{tail}'''\n\
         publish = \"public\"\nimage = \"jamstack/busybox:1\"\n"
    )
}

/// Removes the site's cache volumes when the test ends, pass or fail.
struct CacheVolumes(String);

impl Drop for CacheVolumes {
    fn drop(&mut self) {
        for object in docker_objects_labelled("org.jamstack.cache.key", &self.0) {
            if let Some(name) = object.strip_prefix("volume ") {
                let _ = std::process::Command::new("docker")
                    .args(["volume", "rm", "-f", name])
                    .output();
            }
        }
    }
}

#[tokio::test]
async fn the_cache_carries_files_to_the_next_build_survives_a_failed_one_and_clear_cache_empties_it() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let first = repo.commit(&[("jamstack.toml", &cache_toml(false))], "cache");
    app.connect_site("cached", &repo, "octo/cached").await;
    let settings = app.set_build_settings("cached", json!({})).await;
    let key = settings["cache"]["key"].as_str().unwrap().to_owned();
    let _cleanup = CacheVolumes(key.clone());

    let id = app.trigger_build_with("cached", json!({})).await;
    app.wait_for_success(id).await;
    assert_eq!(app.visit("cached", "/").await.body.trim(), "none");
    assert!(app.build_log(id).await.contains("Saved the build cache"));

    let id = app.trigger_build_with("cached", json!({})).await;
    app.wait_for_success(id).await;
    assert_eq!(
        app.visit("cached", "/").await.body.trim(),
        first,
        "the second build found what the first left"
    );
    assert!(app.build_log(id).await.contains("Restored the build cache"));

    // A failing build writes its own commit into the cache: it must not stick.
    repo.commit(&[("jamstack.toml", &cache_toml(true))], "break");
    let failing = app.trigger_build_with("cached", json!({})).await;
    assert_eq!(app.wait_for_build(failing).await["state"], "failed");
    let fixed = repo.commit(&[("jamstack.toml", &cache_toml(false))], "fix");
    app.wait_for_success(app.trigger_build_with("cached", json!({})).await)
        .await;
    assert_eq!(
        app.visit("cached", "/").await.body.trim(),
        first,
        "the failed build's cache was not saved"
    );

    let id = app
        .trigger_build_with("cached", json!({ "clear_cache": true }))
        .await;
    app.wait_for_success(id).await;
    assert_eq!(app.visit("cached", "/").await.body.trim(), "none");
    let volumes = docker_objects_labelled("org.jamstack.cache.key", &key);
    assert_eq!(
        volumes,
        [format!("volume jamstack-cache-{key}-trusted-g1")],
        "the old generation is gone, the new one holds build {fixed}'s successor"
    );
    app.wait_until_nothing_left().await;
}

#[tokio::test]
async fn a_preview_or_branch_deploy_that_poisons_its_cache_does_not_change_what_the_next_production_build_finds()
 {
    let github = FakeGitHub::start().await;
    let app = spawn_app_with_github(&github).await;
    let repo = SiteRepo::new();
    let production = repo.commit(&[("jamstack.toml", &cache_toml(false))], "cache");
    app.connect_site("warm", &repo, "octo/warm").await;
    let settings = app.set_build_settings("warm", json!({})).await;
    let key = settings["cache"]["key"].as_str().unwrap().to_owned();
    let _cleanup = CacheVolumes(key.clone());
    app.wait_for_success(app.trigger_build_with("warm", json!({})).await)
        .await;

    // A pull request from a branch of the same repository: its build starts
    // from production's cache, then leaves its own commit id in it.
    let preview_sha = repo.commit_on("poison", &[("poison.txt", "1")], "poison the cache");
    let preview = app
        .open_pull_request("octo/warm", 9, "poison", &preview_sha)
        .await;
    app.wait_for_success(preview).await;
    assert_eq!(
        app.visit("deploy-preview-9--warm", "/").await.body.trim(),
        production,
        "a preview starts warm, from production's cache"
    );
    // A branch deploy does the same.
    let branch_sha = repo.commit_on("other", &[("poison.txt", "2")], "poison again");
    let branch = app.trigger_build_of("warm", Some("other"), &branch_sha).await;
    app.wait_for_success(branch).await;
    assert!(
        app.build_log(branch).await.contains("Restored the build cache"),
        "a branch deploy starts warm too"
    );

    let id = app.trigger_build_with("warm", json!({})).await;
    app.wait_for_success(id).await;
    assert_eq!(
        app.visit("warm", "/").await.body.trim(),
        production,
        "production found what production left, not what a preview or branch deploy wrote"
    );
    let volumes = docker_objects_labelled("org.jamstack.cache.key", &key);
    for scope in ["trusted", "preview", "branch"] {
        let name = format!("volume jamstack-cache-{key}-{scope}-g0");
        assert!(volumes.contains(&name), "{name} in {volumes:?}");
    }
    app.wait_until_nothing_left().await;
}
