//! Monorepos: one repository holding three sites, each connected with its
//! own base folder. A push builds the sites whose files it changed, compared
//! with the commit of each site's last successful build, and records the
//! others as skipped, saying which paths were compared between which commits.

use crate::helpers::{SiteRepo, TestApp, csrf_of, spawn_app, spawn_controller_only};
use serde_json::{Value, json};

const SITES: [&str; 3] = ["a", "b", "c"];

/// A site's jamstack.toml, read in its base folder: the build copies
/// `src/` to `public/`, both relative to that folder.
const SITE_TOML: &str = r#"
[build]
command = "mkdir -p public && cp -R src/. public/"
publish = "public"
image = "jamstack/busybox:1"
"#;

/// The same, with Netlify's usual ignore command; git is in the hugo image.
const SITE_TOML_WITH_IGNORE: &str = r#"
[build]
command = "mkdir -p public && cp -R src/. public/"
publish = "public"
image = "jamstack/hugo:1"
ignore = "git diff --quiet $CACHED_COMMIT_REF $COMMIT_REF -- ."
"#;

fn short(sha: &str) -> &str {
    &sha[..7]
}

/// Sets a site's base folder (`PUT build-paths`).
async fn set_base(app: &TestApp, site: &str, base: &str) -> Value {
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api(&format!("/sites/{site}/build-paths")))
                .json(&json!({ "base": base })),
        )
        .await;
    assert_eq!(status, 200, "setting the base of {site}: {body}");
    body
}

/// Pushes `sha` to main and returns each site's build, in [`SITES`] order,
/// once all three have ended.
async fn push_and_wait(app: &TestApp, repo: &SiteRepo, sha: &str) -> Vec<Value> {
    let payload = crate::helpers::push_payload("octo/mono", repo, "main", sha);
    let (status, answer) = app.deliver_github_event("push", &payload).await;
    assert_eq!(status, 202, "{answer}");
    let queued: Vec<i64> = answer["builds"]
        .as_array()
        .expect("the push queued builds")
        .iter()
        .map(|id| id.as_i64().unwrap())
        .collect();
    assert_eq!(queued.len(), 3, "one build per site: {answer}");
    let mut ended = Vec::new();
    for id in queued {
        ended.push(app.wait_for_build(id).await);
    }
    SITES
        .iter()
        .map(|site| {
            ended
                .iter()
                .find(|build| build["site"] == *site)
                .unwrap_or_else(|| panic!("no build of {site} in {ended:?}"))
                .clone()
        })
        .collect()
}

#[tokio::test]
async fn a_push_to_a_monorepo_builds_only_the_sites_whose_files_it_changed() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let mut files: Vec<(String, String)> = Vec::new();
    for site in SITES {
        files.push((format!("sites/{site}/jamstack.toml"), SITE_TOML.to_owned()));
        files.push((format!("sites/{site}/src/index.html"), format!("{site} one")));
    }
    files.push(("README.md".to_owned(), "three sites".to_owned()));
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let first = repo.commit(&borrowed, "three sites");
    for site in SITES {
        app.connect_site(site, &repo, "octo/mono").await;
        let paths = set_base(&app, site, &format!("./sites/{site}/")).await;
        assert_eq!(paths, json!({"base": format!("sites/{site}"), "watch_paths": []}));
    }

    // The first push builds every site: nothing was built before.
    let builds = push_and_wait(&app, &repo, &first).await;
    for (site, build) in SITES.iter().zip(&builds) {
        assert_eq!(build["state"], "succeeded", "{site}: {build}");
        assert_eq!(app.visit(site, "/").await.body, format!("{site} one"));
    }

    // A push touching only site b builds b; a and c say what was compared.
    let session = app.sign_in_over_http().await;
    let touch_b = repo.commit(&[("sites/b/src/index.html", "b two")], "b only");
    let builds = push_and_wait(&app, &repo, &touch_b).await;
    assert_eq!(builds[1]["state"], "succeeded", "{}", builds[1]);
    assert_eq!(app.visit("b", "/").await.body, "b two");
    for (site, build) in [("a", &builds[0]), ("c", &builds[2])] {
        assert_eq!(build["state"], "skipped", "{site}: {build}");
        let reason = build["skip_reason"].as_str().unwrap();
        assert_eq!(
            reason,
            format!(
                "no file under `sites/{site}/**` (the site's base) changed between {} and {}",
                short(&first),
                short(&touch_b)
            )
        );
        let log = app.build_log(build["id"].as_i64().unwrap()).await;
        assert!(log.contains(reason), "the log says why too:\n{log}");
        let page = app
            .dashboard_page(&session, &format!("/builds/{}", build["id"]))
            .await;
        assert!(
            page.contains(&format!("Skipped: no file under `sites/{site}/**`")),
            "and the build's page:\n{page}"
        );
        assert_eq!(app.visit(site, "/").await.body, format!("{site} one"));
    }

    // Two commits pushed at once, the head touching none of the sites:
    // site a is compared with its last successful build, not with the
    // head's parent, so the first commit's change to it is built.
    let touch_a = repo.commit(&[("sites/a/src/index.html", "a two")], "a changes");
    let readme = repo.commit(&[("README.md", "still three sites")], "docs");
    let builds = push_and_wait(&app, &repo, &readme).await;
    assert_eq!(builds[0]["state"], "succeeded", "{}", builds[0]);
    assert_eq!(app.visit("a", "/").await.body, "a two");
    let log = app.build_log(builds[0]["id"].as_i64().unwrap()).await;
    assert!(
        log.contains(&format!(
            "`sites/a/src/index.html` changed between {} and {}",
            short(&first),
            short(&readme)
        )),
        "{log}"
    );
    assert!(
        !log.contains(&format!("between {}", short(&touch_a))),
        "not with the head's parent:\n{log}"
    );
    let reason = builds[1]["skip_reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("between {} and {}", short(&touch_b), short(&readme))),
        "b is compared with the commit it last built: {reason}"
    );
    assert_eq!(builds[2]["state"], "skipped", "{}", builds[2]);

    // Site c takes Netlify's ignore command instead of its base's default
    // watch path. The change that brings it in is under sites/c: git diff
    // finds it, the command exits 1 and c builds.
    let with_ignore = repo.commit(
        &[
            ("sites/c/jamstack.toml", SITE_TOML_WITH_IGNORE),
            ("sites/c/src/index.html", "c two"),
        ],
        "c decides with git",
    );
    let builds = push_and_wait(&app, &repo, &with_ignore).await;
    assert_eq!(builds[2]["state"], "succeeded", "{}", builds[2]);
    let log = app.build_log(builds[2]["id"].as_i64().unwrap()).await;
    assert!(
        log.contains(&format!(
            "(COMMIT_REF {}, CACHED_COMMIT_REF {})",
            short(&with_ignore),
            short(&first)
        )),
        "{log}"
    );
    assert!(
        log.contains("The ignore command exited with 1: building"),
        "{log}"
    );
    assert_eq!(app.visit("c", "/").await.body, "c two");

    // Nothing under sites/c changes: the ignore command exits 0.
    let elsewhere = repo.commit(&[("sites/a/src/index.html", "a three")], "a again");
    let builds = push_and_wait(&app, &repo, &elsewhere).await;
    assert_eq!(builds[0]["state"], "succeeded", "{}", builds[0]);
    assert_eq!(builds[2]["state"], "skipped", "{}", builds[2]);
    assert!(
        builds[2]["skip_reason"]
            .as_str()
            .unwrap()
            .contains("ignore command"),
        "{}",
        builds[2]
    );
    assert_eq!(app.visit("c", "/").await.body, "c two");
}

#[tokio::test]
async fn a_sites_watch_paths_and_a_first_build_with_an_ignore_command_build() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let first = repo.commit(
        &[
            ("sites/docs/jamstack.toml", SITE_TOML_WITH_IGNORE),
            ("sites/docs/src/index.html", "docs one"),
            ("shared/style.css", "body {}"),
        ],
        "docs",
    );
    app.connect_site("docs", &repo, "octo/docs").await;
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api("/sites/docs/build-paths"))
                .json(&json!({"base": "sites/docs", "watch_paths": ["/etc/**"]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("absolute path"),
        "{body}"
    );
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api("/sites/docs/build-paths"))
                .json(&json!({"base": "sites/docs", "watch_paths": ["shared/**"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // The first build has nothing to compare with: the ignore command gets
    // git's empty tree, so `git diff` sees every file and the site builds.
    let build = app.push("octo/docs", &repo, &first).await;
    let build = app.wait_for_success(build).await;
    let log = app.build_log(build["id"].as_i64().unwrap()).await;
    assert!(log.contains("git's empty tree"), "{log}");

    // Watch paths come before the ignore command: a change outside them
    // skips, naming them.
    let outside = repo.commit(&[("sites/docs/src/index.html", "docs two")], "docs text");
    let build = app.push("octo/docs", &repo, &outside).await;
    let build = app.wait_for_build(build).await;
    assert_eq!(build["state"], "skipped", "{build}");
    assert_eq!(
        build["skip_reason"],
        format!(
            "no file under `shared/**` (the site's watch paths) changed between {} and {}",
            short(&first),
            short(&outside)
        )
    );

    // A build asked for by hand always builds.
    let by_hand = app.trigger_build("docs", &outside).await;
    app.wait_for_success(by_hand).await;
    let log = app.build_log(by_hand).await;
    assert!(log.contains("are not applied"), "{log}");
}

#[tokio::test]
async fn a_sites_base_and_watch_paths_are_set_on_its_settings_page_and_refused_with_a_reason() {
    let (app, _runner_token) = spawn_controller_only().await;
    app.connect_site_with("pages", json!({ "repo_url": "/nowhere/repo.git" }))
        .await;
    let session = app.sign_in_over_http().await;
    let page = app.dashboard_page(&session, "/sites/pages/settings").await;
    assert!(page.contains("action=\"/sites/pages/settings/paths\""), "{page}");
    let csrf = csrf_of(&page);

    let (status, page) = app
        .post_form(
            &session,
            "/sites/pages/settings/paths",
            &[
                ("csrf", &csrf),
                ("base", "sites/pages"),
                ("watch_paths", "sites/pages/**\n../secrets/**"),
            ],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("climbs out with `..`"), "{page}");

    let (status, _) = app
        .post_form(
            &session,
            "/sites/pages/settings/paths",
            &[
                ("csrf", &csrf),
                ("base", "sites/pages/"),
                ("watch_paths", "sites/pages/**\r\nshared/**\r\n"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let (status, paths) = app
        .api_json(app.http.get(app.api("/sites/pages/build-paths")))
        .await;
    assert_eq!(status, 200, "{paths}");
    assert_eq!(
        paths,
        json!({"base": "sites/pages", "watch_paths": ["sites/pages/**", "shared/**"]})
    );
    let page = app.dashboard_page(&session, "/sites/pages/settings").await;
    assert!(page.contains("sites/pages/**\nshared/**"), "{page}");
}

#[tokio::test]
async fn a_force_push_that_removed_the_last_built_commit_builds_and_says_why() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let first = repo.commit(
        &[
            ("sites/a/jamstack.toml", SITE_TOML),
            ("sites/a/src/index.html", "a one"),
        ],
        "a",
    );
    app.connect_site("a", &repo, "octo/forced").await;
    set_base(&app, "a", "sites/a").await;
    let build = app.push("octo/forced", &repo, &first).await;
    app.wait_for_success(build).await;
    let second = repo.commit(&[("sites/a/src/index.html", "a two")], "a two");
    let build = app.push("octo/forced", &repo, &second).await;
    app.wait_for_success(build).await;

    // main goes back to the first commit and on elsewhere; the second
    // commit, the last one built, is gone from the server.
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(repo.url())
            .status()
            .expect("the git command line is installed");
        assert!(status.success(), "git {args:?}");
    };
    git(&["reset", "-q", "--hard", &first]);
    git(&["reflog", "expire", "--expire=now", "--all"]);
    git(&["gc", "-q", "--prune=now"]);
    let rewritten = repo.commit(&[("README.md", "outside the site")], "rewritten");

    let build = app.push("octo/forced", &repo, &rewritten).await;
    let build = app.wait_for_success(build).await;
    let log = app.build_log(build["id"].as_i64().unwrap()).await;
    assert!(
        log.contains(&format!(
            "Could not fetch commit {} of the last successful build to compare with",
            short(&second)
        )),
        "{log}"
    );
    assert!(log.contains("a force-push may have removed it"), "{log}");
    assert_eq!(app.visit("a", "/").await.body, "a one");
}
