//! The build cache: kept from one successful build to the next, never
//! written by a failed one, emptied by "clear cache and rebuild".

use crate::helpers::{SiteRepo, docker_objects_labelled, spawn_app};
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
