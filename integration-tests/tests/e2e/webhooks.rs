use crate::helpers::{COPY_SITE_TOML, SiteRepo, WEBHOOK_SECRET, fixture, push_payload, sign, spawn_app};

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
