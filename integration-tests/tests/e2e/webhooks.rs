use crate::helpers::{
    COPY_SITE_TOML, SiteRepo, TestApp, WEBHOOK_SECRET, fixture, fresh_postgres_database, push_payload, sign,
    spawn_app, spawn_controller_only, spawn_controller_only_with,
};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};

#[tokio::test]
async fn a_webhook_with_a_bad_or_missing_signature_is_refused_and_queues_nothing() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "x")], "x");
    app.connect_site("signed", &repo, "octo/signed").await;
    let body = serde_json::to_vec(&push_payload("octo/signed", &repo, "main", &sha)).unwrap();

    let (status, answer) = app
        .deliver_raw_webhook("push", body.clone(), Some(sign("not-the-secret", &body)))
        .await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("does not match"),
        "{answer}"
    );

    let (status, answer) = app.deliver_raw_webhook("push", body.clone(), None).await;
    assert_eq!(status, 401);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("missing X-Hub-Signature-256"),
        "{answer}"
    );

    // A body changed after signing is refused too.
    let mut tampered = body.clone();
    tampered.push(b' ');
    let (status, _) = app
        .deliver_raw_webhook("push", tampered, Some(sign(WEBHOOK_SECRET, &body)))
        .await;
    assert_eq!(status, 401);

    assert!(app.builds_of("signed").await.is_empty(), "nothing was queued");
}

#[tokio::test]
async fn pushes_that_are_not_for_a_production_branch_of_a_connected_site_queue_nothing() {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "x")], "x");
    app.connect_site("branches", &repo, "octo/branches").await;

    let other_branch = push_payload("octo/branches", &repo, "feature", &sha);
    let (status, answer) = app.deliver_github_event("push", &other_branch).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("ignored")),
        "{answer}"
    );

    let unknown_repo = push_payload("someone/else", &repo, "main", &sha);
    let (status, answer) = app.deliver_github_event("push", &unknown_repo).await;
    assert_eq!(status, 200);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("no site is connected"),
        "{answer}"
    );

    let mut deleted = push_payload("octo/branches", &repo, "main", &sha);
    deleted["deleted"] = serde_json::json!(true);
    let (status, _) = app.deliver_github_event("push", &deleted).await;
    assert_eq!(status, 200);

    assert!(app.builds_of("branches").await.is_empty());
}

#[tokio::test]
async fn ping_and_unknown_events_are_accepted_and_malformed_pushes_get_a_clear_400() {
    let app = spawn_app().await;
    let (status, answer) = app.deliver_github_event("ping", &fixture("ping.json")).await;
    assert_eq!((status, answer["message"].as_str()), (200, Some("pong")));

    let (status, _) = app
        .deliver_github_event("star", &serde_json::json!({"action": "created"}))
        .await;
    assert_eq!(status, 200);

    let body = b"{\"ref\": 12".to_vec();
    let (status, answer) = app
        .deliver_raw_webhook("push", body.clone(), Some(sign(WEBHOOK_SECRET, &body)))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("push"), "{answer}");
}

/// GitHub's webhook settings offer two content types; a push builds under
/// either. The JSON body is signed as it is; a form body is signed as sent,
/// with the JSON in its `payload` field.
async fn a_push_builds_when_the_webhook_sends(content_type: &str) {
    let app = spawn_app().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "x")], "x");
    app.connect_site("by-hand", &repo, "octo/by-hand").await;
    let payload = serde_json::to_string(&push_payload("octo/by-hand", &repo, "main", &sha)).unwrap();
    let body = match content_type {
        "application/json" => payload.into_bytes(),
        _ => form_body(&payload),
    };

    let (status, answer) = app
        .deliver_webhook_as(
            "push",
            content_type,
            body.clone(),
            Some(sign(WEBHOOK_SECRET, &body)),
            Some("by-hand-1"),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let build = app
        .wait_for_success(answer["builds"][0].as_i64().expect("the push queued a build"))
        .await;
    assert_eq!(build["commit_sha"], sha.as_str(), "{build}");
}

/// A form body as GitHub sends it: `payload=<the event's JSON>`.
fn form_body(payload: &str) -> Vec<u8> {
    serde_urlencoded::to_string([("payload", payload)])
        .unwrap()
        .into_bytes()
}

#[tokio::test]
async fn a_push_builds_through_a_webhook_sending_json() {
    a_push_builds_when_the_webhook_sends("application/json").await;
}

#[tokio::test]
async fn a_push_builds_through_a_webhook_added_by_hand_with_githubs_default_form_content_type() {
    a_push_builds_when_the_webhook_sends("application/x-www-form-urlencoded").await;
}

#[tokio::test]
async fn a_form_delivery_signed_with_another_secret_or_over_its_json_alone_is_refused() {
    let (app, _) = spawn_controller_only().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "x")], "x");
    app.connect_site("form-signed", &repo, "octo/form-signed").await;
    let payload = serde_json::to_string(&push_payload("octo/form-signed", &repo, "main", &sha)).unwrap();
    let body = form_body(&payload);
    let form = "application/x-www-form-urlencoded";

    let (status, answer) = app
        .deliver_webhook_as(
            "push",
            form,
            body.clone(),
            Some(sign("not-the-secret", &body)),
            Some("f-1"),
        )
        .await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("does not match"),
        "{answer}"
    );

    // The signature covers the form body as sent, not the JSON inside it.
    let (status, answer) = app
        .deliver_webhook_as(
            "push",
            form,
            body,
            Some(sign(WEBHOOK_SECRET, payload.as_bytes())),
            Some("f-2"),
        )
        .await;
    assert_eq!(status, 401, "{answer}");

    assert!(
        app.builds_of("form-signed").await.is_empty(),
        "nothing was queued"
    );
}

#[tokio::test]
async fn a_form_without_payload_or_an_unknown_content_type_gets_a_400_saying_what_to_pick_on_github() {
    let (app, _) = spawn_controller_only().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "x")], "x");
    app.connect_site("form-bad", &repo, "octo/form-bad").await;

    let body = b"ref=refs%2Fheads%2Fmain".to_vec();
    let (status, answer) = app
        .deliver_webhook_as(
            "push",
            "application/x-www-form-urlencoded",
            body.clone(),
            Some(sign(WEBHOOK_SECRET, &body)),
            Some("bad-1"),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("no `payload` field"), "{error}");
    assert!(error.contains("application/json"), "{error}");

    let body = serde_json::to_vec(&push_payload("octo/form-bad", &repo, "main", &sha)).unwrap();
    let (status, answer) = app
        .deliver_webhook_as(
            "push",
            "text/plain",
            body.clone(),
            Some(sign(WEBHOOK_SECRET, &body)),
            Some("bad-2"),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("`text/plain`"), "{error}");
    assert!(error.contains("application/x-www-form-urlencoded"), "{error}");

    assert!(app.builds_of("form-bad").await.is_empty(), "nothing was queued");
    let recorded = app.webhook_deliveries().await;
    assert!(
        recorded.iter().all(|d| d["outcome"] == "rejected"),
        "both are recorded as rejected: {recorded:?}"
    );
}

/// A push to `branch` of a repository whose default branch is
/// `default_branch`, as GitHub delivers it.
async fn push_with_default_branch(
    app: &TestApp,
    github_repo: &str,
    repo: &SiteRepo,
    branch: &str,
    default_branch: &str,
    sha: &str,
) -> (u16, serde_json::Value) {
    let mut payload = push_payload(github_repo, repo, branch, sha);
    payload["repository"]["default_branch"] = serde_json::json!(default_branch);
    app.deliver_github_event("push", &payload).await
}

#[tokio::test]
async fn a_site_connected_without_naming_a_branch_builds_the_repositorys_default_branch_and_follows_its_rename()
 {
    let (app, _) = spawn_controller_only().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "x")], "x");
    let site = app
        .connect_site_with(
            "on-master",
            serde_json::json!({"repo_url": repo.url(), "github_repo": "octo/on-master"}),
        )
        .await;
    assert_eq!(site["production_branch"], "main", "{site}");
    assert_eq!(site["production_branch_follows_default"], true, "{site}");

    // The repository's default branch is `master`: its first push builds
    // for production, not ignored as "not the production branch".
    let (status, answer) =
        push_with_default_branch(&app, "octo/on-master", &repo, "master", "master", &sha).await;
    assert_eq!(status, 202, "{answer}");
    let build = app.build(answer["builds"][0].as_i64().unwrap()).await;
    assert_eq!(build["context"], "production", "{build}");
    let site = app.get_json("/sites/on-master").await;
    assert_eq!(site["production_branch"], "master", "{site}");

    // Renamed on GitHub to `trunk`: the next push to it is production too.
    let renamed = repo.commit(&[("src/index.html", "y")], "y");
    let (status, answer) =
        push_with_default_branch(&app, "octo/on-master", &repo, "trunk", "trunk", &renamed).await;
    assert_eq!(status, 202, "{answer}");
    let build = app.build(answer["builds"][0].as_i64().unwrap()).await;
    assert_eq!(build["context"], "production", "{build}");
    assert_eq!(
        app.get_json("/sites/on-master").await["production_branch"],
        "trunk"
    );

    // The first delivery played again under a new id is older than the
    // rename: it is a duplicate and the site stays on `trunk`.
    let (status, answer) =
        push_with_default_branch(&app, "octo/on-master", &repo, "master", "master", &sha).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("duplicate")),
        "{answer}"
    );
    assert_eq!(
        app.get_json("/sites/on-master").await["production_branch"],
        "trunk"
    );

    // A branch a person names stays, whatever GitHub's default is.
    app.change_site_settings("on-master", serde_json::json!({"production_branch": "live"}))
        .await;
    let (status, answer) =
        push_with_default_branch(&app, "octo/on-master", &repo, "trunk", "trunk", &sha).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("ignored")),
        "{answer}"
    );
    let site = app.get_json("/sites/on-master").await;
    assert_eq!(site["production_branch"], "live", "{site}");
    assert_eq!(site["production_branch_follows_default"], false, "{site}");
}

#[tokio::test]
async fn a_site_connected_with_a_named_branch_keeps_it_whatever_the_repositorys_default_branch() {
    let (app, _) = spawn_controller_only().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(&[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "x")], "x");
    app.connect_site("named", &repo, "octo/named").await;
    let (status, answer) =
        push_with_default_branch(&app, "octo/named", &repo, "master", "master", &sha).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("ignored")),
        "{answer}"
    );
    let site = app.get_json("/sites/named").await;
    assert_eq!(site["production_branch"], "main", "{site}");
    assert_eq!(site["production_branch_follows_default"], false, "{site}");
}

/// A bare repository on "another git server", with the project's
/// `post-receive` hook installed, pushed to with the git command line.
/// Several threads: `git push` blocks one while the hook calls the
/// controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_any_git_server_builds_through_the_signed_generic_webhook_of_its_post_receive_hook() {
    let app = spawn_app().await;
    let server = tempfile::tempdir().unwrap();
    let bare = server.path().join("site.git");
    git(
        server.path(),
        &["init", "--bare", "--initial-branch=main", "site.git"],
    );
    let hook = bare.join("hooks/post-receive");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/post-receive"),
        &hook,
    )
    .unwrap();
    app.connect_site_with("anygit", serde_json::json!({"repo_url": bare.to_str().unwrap()}))
        .await;
    let (status, webhook) = app
        .api_json(app.http.post(app.api("/sites/anygit/generic-webhook")))
        .await;
    assert_eq!(status, 201, "{webhook}");
    assert_eq!(
        webhook["url"],
        format!("{}/webhooks/generic/anygit", app.base_url)
    );
    let secret = webhook["secret"].as_str().unwrap();
    git(
        &bare,
        &["config", "jamstack.url", webhook["url"].as_str().unwrap()],
    );
    git(&bare, &["config", "jamstack.secret", secret]);

    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["init", "--initial-branch=main", "."]);
    std::fs::write(work.path().join("jamstack.toml"), COPY_SITE_TOML).unwrap();
    std::fs::create_dir(work.path().join("src")).unwrap();
    std::fs::write(work.path().join("src/index.html"), "from any git server").unwrap();
    git(work.path(), &["add", "."]);
    git(work.path(), &["commit", "-m", "First \"quoted\" \\ commit"]);
    git(work.path(), &["remote", "add", "origin", bare.to_str().unwrap()]);
    let pushed = git(work.path(), &["push", "origin", "main"]);
    assert!(pushed.contains("jamstack: main ->"), "the hook ran: {pushed}");
    assert!(pushed.contains("\"outcome\":\"queued\""), "{pushed}");

    let builds = app.builds_of("anygit").await;
    assert_eq!(builds.len(), 1, "{builds:?}");
    let build = app.wait_for_success(builds[0]["id"].as_i64().unwrap()).await;
    assert_eq!(build["trigger"], "generic-webhook");
    assert_eq!(build["commit_message"], "First \"quoted\" \\ commit");
    assert_eq!(app.visit("anygit", "/").await.body, "from any git server");

    // A commit that asks for no build is recorded as skipped.
    std::fs::write(work.path().join("README"), "notes").unwrap();
    git(work.path(), &["add", "."]);
    git(work.path(), &["commit", "-m", "Notes [skip ci]"]);
    let pushed = git(work.path(), &["push", "origin", "main"]);
    assert!(pushed.contains("\"outcome\":\"skipped\""), "{pushed}");

    // Resending one delivery is handled once; an unsigned one is refused.
    let body = br#"{"ref": "refs/heads/main"}"#.to_vec();
    let send = |signature: Option<String>| {
        let mut request = app
            .http
            .post(format!("{}/webhooks/generic/anygit", app.base_url))
            .header("X-Jamstack-Delivery", "resent-1")
            .body(body.clone());
        if let Some(signature) = signature {
            request = request.header("X-Jamstack-Signature-256", signature);
        }
        request.send()
    };
    let first = send(Some(sign(secret, &body))).await.unwrap();
    assert_eq!(first.status().as_u16(), 202);
    let again: serde_json::Value = send(Some(sign(secret, &body)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["outcome"], "duplicate");
    let unsigned = send(None).await.unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let refusal: serde_json::Value = unsigned.json().await.unwrap();
    assert!(
        refusal["error"]
            .as_str()
            .unwrap()
            .contains("missing X-Jamstack-Signature-256"),
        "{refusal}"
    );
    assert_eq!(app.builds_of("anygit").await.len(), 3);
}

/// Runs git, failing the test with its output when it fails; returns what
/// it printed (a push prints the remote hook's output on stderr).
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(["-c", "user.name=Tester", "-c", "user.email=tester@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running git: {e}; install git"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "git {args:?} failed: {text}");
    text
}

#[tokio::test]
async fn a_thousand_concurrent_deliveries_with_redeliveries_among_them_each_build_once() {
    let (app, _runner_token) = spawn_controller_only().await;
    a_thousand_deliveries_with_redeliveries(app).await;
}

/// The same on PostgreSQL, where several batches of deliveries are written
/// at once.
#[tokio::test]
async fn a_thousand_concurrent_deliveries_to_a_controller_on_postgresql_each_build_once() {
    let url = fresh_postgres_database().await;
    let (app, _runner_token) = spawn_controller_only_with(|config| config.database_url = Some(url)).await;
    a_thousand_deliveries_with_redeliveries(app).await;
}

async fn a_thousand_deliveries_with_redeliveries(app: TestApp) {
    const SITES: usize = 10;
    const DISTINCT: usize = 900;
    let repo = SiteRepo::new();
    for site in 0..SITES {
        app.connect_site(&format!("flood-{site}"), &repo, &format!("octo/flood-{site}"))
            .await;
    }
    // Real push payloads, one commit each, spread over the sites.
    let deliveries: Vec<(String, Vec<u8>, String)> = (0..DISTINCT)
        .map(|i| {
            let sha = format!("{:040x}", 0xf100d000 + i);
            let payload = push_payload(&format!("octo/flood-{}", i % SITES), &repo, "main", &sha);
            (
                format!("flood-delivery-{i}"),
                serde_json::to_vec(&payload).unwrap(),
                sha,
            )
        })
        .collect();
    // Every ninth delivery comes twice, as GitHub's "Redeliver" sends it:
    // same id, same body, same signature.
    let mut sends: Vec<usize> = (0..DISTINCT).chain((0..DISTINCT).step_by(9)).collect();
    assert_eq!(sends.len(), 1000);
    // A fixed shuffle, so a redelivery may come before, during or after
    // the first one.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for i in (1..sends.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        sends.swap(i, (seed % (i as u64 + 1)) as usize);
    }

    let answers: Vec<(usize, u16, serde_json::Value)> = futures_util::stream::iter(sends)
        .map(|i| {
            let app = &app;
            let (id, body, _) = &deliveries[i];
            async move {
                let (status, answer) = app
                    .deliver_signed_webhook("push", body.clone(), sign(WEBHOOK_SECRET, body), id)
                    .await;
                (i, status, answer)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;

    let mut builds_by_delivery: HashMap<usize, Vec<i64>> = HashMap::new();
    let mut duplicates = 0;
    for (i, status, answer) in &answers {
        match (status, answer["outcome"].as_str()) {
            (202, Some("queued")) => {
                let builds: Vec<i64> = answer["builds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b.as_i64().unwrap())
                    .collect();
                assert_eq!(builds.len(), 1, "one build per push: {answer}");
                builds_by_delivery.entry(*i).or_default().extend(builds);
            }
            (200, Some("duplicate")) => duplicates += 1,
            _ => panic!("delivery {i} got {status}: {answer}"),
        }
    }
    assert_eq!(duplicates, 100, "every redelivery is answered as a duplicate");
    assert_eq!(builds_by_delivery.len(), DISTINCT, "every delivery id is handled");
    assert!(
        builds_by_delivery.values().all(|builds| builds.len() == 1),
        "no delivery id is handled twice"
    );
    let distinct_builds: HashSet<i64> = builds_by_delivery.values().flatten().copied().collect();
    assert_eq!(distinct_builds.len(), DISTINCT);

    // The controller's own records agree: one build per delivery, of its
    // commit, and nothing more.
    for site in 0..SITES {
        let builds = app.builds_of(&format!("flood-{site}")).await;
        let mut stored: Vec<String> = builds
            .iter()
            .map(|b| b["commit_sha"].as_str().unwrap().to_owned())
            .collect();
        stored.sort();
        let mut expected: Vec<String> = deliveries
            .iter()
            .enumerate()
            .filter(|(i, _)| i % SITES == site)
            .map(|(_, (_, _, sha))| sha.clone())
            .collect();
        expected.sort();
        assert_eq!(stored, expected, "the builds of flood-{site}");
    }
}
