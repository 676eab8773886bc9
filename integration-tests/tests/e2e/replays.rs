//! A captured webhook delivery, played again: under a new delivery id its
//! signed body is recognised; once the controller has forgotten it (after
//! the deliveries' retention), a push of a commit the branch built before
//! that does not move the branch from what it last built builds nothing.
//! A revert by force-push and GitHub's own redelivery keep working. (A
//! push that creates its branch is let through: it cannot say where the
//! branch was; its body is still recognised while its record is kept.)

use crate::helpers::{SiteRepo, TestApp, WEBHOOK_SECRET, fixture, sign, spawn_controller_only};
use serde_json::{Value, json};

const ZEROS: &str = "0000000000000000000000000000000000000000";

/// GitHub's real push payload (`push.json`), rewritten as a push of
/// `before..after` to `main` of `octo/<site>`.
fn push_body(site: &str, repo: &SiteRepo, before: &str, after: &str) -> Vec<u8> {
    let mut payload = fixture("push.json");
    payload["ref"] = json!("refs/heads/main");
    payload["before"] = json!(before);
    payload["after"] = json!(after);
    payload["created"] = json!(before == ZEROS);
    payload["deleted"] = json!(false);
    payload["base_ref"] = Value::Null;
    payload["repository"]["full_name"] = json!(format!("octo/{site}"));
    payload["repository"]["default_branch"] = json!("main");
    payload["repository"]["name"] = json!(site);
    payload["repository"]["clone_url"] = json!(format!("file://{}", repo.url()));
    serde_json::to_vec(&payload).unwrap()
}

/// Delivers a signed GitHub push body under `id`.
async fn deliver(app: &TestApp, body: &[u8], id: &str) -> (u16, Value) {
    app.deliver_signed_webhook("push", body.to_vec(), sign(WEBHOOK_SECRET, body), id)
        .await
}

/// Forgets every delivery record, as the retention does after 30 days.
async fn forget_deliveries(app: &TestApp) {
    let state = app.state.as_ref().expect("the controller runs in this process");
    state
        .db
        .prune_deliveries(jamstack_controller::db::now_millis() + 1, 0)
        .await
        .unwrap();
}

fn message(answer: &Value) -> &str {
    answer["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_captured_github_push_replayed_under_a_new_delivery_id_rebuilds_nothing() {
    let (app, _runner) = spawn_controller_only().await;
    let repo = SiteRepo::new();
    app.connect_site("replayed", &repo, "octo/replayed").await;
    let base = repo.commit(&[("src/index.html", "base")], "Base");
    let one = repo.commit(&[("src/index.html", "one")], "One");
    let two = repo.commit(&[("src/index.html", "two")], "Two");

    let captured = push_body("replayed", &repo, &base, &one);
    let (status, first) = deliver(&app, &captured, "d-1").await;
    assert_eq!(
        (status, first["outcome"].as_str()),
        (202, Some("queued")),
        "{first}"
    );

    // The same signed body under a new id: recognised by its digest.
    let (status, replay) = deliver(&app, &captured, "d-1-replayed").await;
    assert_eq!(
        (status, replay["outcome"].as_str()),
        (200, Some("duplicate")),
        "{replay}"
    );
    assert!(
        message(&replay).contains("received before under another delivery id"),
        "{replay}"
    );

    // GitHub's "Redeliver" (same id, same body) is answered as before.
    let (status, redelivered) = deliver(&app, &captured, "d-1").await;
    assert_eq!(
        (status, redelivered["outcome"].as_str()),
        (200, Some("duplicate")),
        "{redelivered}"
    );
    assert!(message(&redelivered).contains("d-1"), "{redelivered}");

    let newer = push_body("replayed", &repo, &one, &two);
    let (status, answer) = deliver(&app, &newer, "d-2").await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (202, Some("queued")),
        "{answer}"
    );
    assert_eq!(app.builds_of("replayed").await.len(), 2);

    // Months later the records are gone; the old pushes, played again,
    // still build nothing: `one` was built and the push does not move the
    // branch from `two`, and `two` is what the branch last built.
    forget_deliveries(&app).await;
    let (status, replay) = deliver(&app, &captured, "d-1-much-later").await;
    assert_eq!(
        (status, replay["outcome"].as_str()),
        (200, Some("duplicate")),
        "{replay}"
    );
    assert!(
        message(&replay).contains(&format!(
            "commit {} was built for branch `main` before",
            &one[..7]
        )),
        "{replay}"
    );
    let (status, replay) = deliver(&app, &newer, "d-2-much-later").await;
    assert_eq!(
        (status, replay["outcome"].as_str()),
        (200, Some("duplicate")),
        "{replay}"
    );
    assert!(
        message(&replay).contains(&format!(
            "commit {} was already built for branch `main`",
            &two[..7]
        )),
        "{replay}"
    );
    let record = app
        .get_json(&format!("/webhook-deliveries/{}", replay["delivery"]))
        .await;
    assert_eq!(record["outcome"], "duplicate", "{record}");
    assert_eq!(
        app.builds_of("replayed").await.len(),
        2,
        "nothing was built again"
    );

    // A revert by `git push -f` to the older commit moves the branch from
    // what it last built: it builds.
    let revert = push_body("replayed", &repo, &two, &one);
    let (status, answer) = deliver(&app, &revert, "d-3").await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (202, Some("queued")),
        "{answer}"
    );
    let builds = app.builds_of("replayed").await;
    assert_eq!(builds.len(), 3);
    assert!(
        builds
            .iter()
            .any(|b| b["id"] == answer["builds"][0] && b["commit_sha"] == one.as_str())
    );
}

#[tokio::test]
async fn a_captured_generic_push_replayed_under_a_new_delivery_id_rebuilds_nothing() {
    let (app, _runner) = spawn_controller_only().await;
    let repo = SiteRepo::new();
    app.connect_site_with("anygit-replayed", json!({"repo_url": repo.url()}))
        .await;
    let (status, webhook) = app
        .api_json(app.http.post(app.api("/sites/anygit-replayed/generic-webhook")))
        .await;
    assert_eq!(status, 201, "{webhook}");
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    let base = repo.commit(&[("src/index.html", "base")], "Base");
    let one = repo.commit(&[("src/index.html", "one")], "One");
    let two = repo.commit(&[("src/index.html", "two")], "Two");
    // As scripts/post-receive sends a ref update.
    let body = |before: &str, after: &str| {
        serde_json::to_vec(&json!({
            "ref": "refs/heads/main", "before": before, "after": after,
            "message": "a commit", "author": "Tester"
        }))
        .unwrap()
    };
    let deliver = |body: Vec<u8>, id: &str| {
        let request = app
            .http
            .post(format!("{}/webhooks/generic/anygit-replayed", app.base_url))
            .header("X-Jamstack-Delivery", id)
            .header("X-Jamstack-Signature-256", sign(&secret, &body))
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };

    let captured = body(&base, &one);
    let (status, first) = deliver(captured.clone(), "refs/heads/main:0..1").await;
    assert_eq!(
        (status, first["outcome"].as_str()),
        (202, Some("queued")),
        "{first}"
    );
    let (status, replay) = deliver(captured.clone(), "replayed-1").await;
    assert_eq!(
        (status, replay["outcome"].as_str()),
        (200, Some("duplicate")),
        "{replay}"
    );
    assert!(
        message(&replay).contains("received before under another delivery id"),
        "{replay}"
    );
    let (status, answer) = deliver(body(&one, &two), "refs/heads/main:1..2").await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (202, Some("queued")),
        "{answer}"
    );

    forget_deliveries(&app).await;
    let (status, replay) = deliver(captured, "replayed-much-later").await;
    assert_eq!(
        (status, replay["outcome"].as_str()),
        (200, Some("duplicate")),
        "{replay}"
    );
    assert!(message(&replay).contains("a replayed old delivery"), "{replay}");
    assert_eq!(app.builds_of("anygit-replayed").await.len(), 2);

    let (status, answer) = deliver(body(&two, &one), "refs/heads/main:2..1").await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (202, Some("queued")),
        "a revert builds: {answer}"
    );
    assert_eq!(app.builds_of("anygit-replayed").await.len(), 3);
}
