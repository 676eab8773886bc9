//! The permission matrix, generated from the operations the API serves:
//! every operation is called as each role of the site's team, as the owner
//! of another team, as the admin token and anonymously, and the answer is
//! checked against the role table (`Permission::least_role`). A new
//! operation is in the matrix as soon as it is served.

use jamstack_controller::api::access::declarations;
use jamstack_controller::auth::{Permission, hash_token, new_token, role_grants};
use jamstack_controller::config::Config;
use jamstack_controller::db::{Database, NewBuild, Role, TokenKind};
use jamstack_controller::startup::Application;

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Member(Role),
    OwnerOfAnotherTeam,
    AdminToken,
    Anonymous,
}

/// What the table says the caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Allowed,
    /// 401: nobody signed in.
    Unauthenticated,
    /// 403: signed in, allowed too little.
    Forbidden,
    /// 404 as for a site that does not exist: another team's site, build
    /// or the team itself.
    Hidden,
}

fn expected(caller: Caller, permission: Permission, names_a_site: bool) -> Expected {
    if permission == Permission::Public {
        return Expected::Allowed;
    }
    match caller {
        Caller::AdminToken => Expected::Allowed,
        Caller::Anonymous => Expected::Unauthenticated,
        _ if permission == Permission::InstallationAdmin => Expected::Forbidden,
        Caller::OwnerOfAnotherTeam if names_a_site => Expected::Hidden,
        Caller::OwnerOfAnotherTeam => {
            if role_grants(Role::Owner, permission) {
                Expected::Allowed
            } else {
                Expected::Forbidden
            }
        }
        Caller::Member(role) if role_grants(role, permission) => Expected::Allowed,
        Caller::Member(_) => Expected::Forbidden,
    }
}

/// What the answer was, read the way the table is written.
fn observed(status: u16, body: &str, build: i64) -> Expected {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    match status {
        401 => Expected::Unauthenticated,
        403 => Expected::Forbidden,
        // The permission layer hides another team's site or build with the
        // answer a missing one gets; the handler's own 404s (an unknown
        // deploy or hook id) name something else.
        404 if message == "no site named `blog`; list sites with GET /api/v1/sites"
            || message == format!("no build {build}")
            || message == "no team named `default`" =>
        {
            Expected::Hidden
        }
        _ => Expected::Allowed,
    }
}

/// A member's API token with every scope, so the role alone limits it.
async fn member_token(db: &Database, team: i64, login: &str, role: Role) -> String {
    let user = db.insert_user(login, None).await.unwrap().unwrap();
    db.set_member_role(team, user.id, role).await.unwrap();
    let token = new_token(TokenKind::Api);
    db.insert_team_token(
        team,
        Some(user.id),
        login,
        "read builds deploys sites admin",
        &hash_token(&token),
    )
    .await
    .unwrap();
    token
}

/// A controller serving on a free port: its URL, admin token, database
/// and a client (the folder is kept as long as the first value lives).
async fn start() -> (tempfile::TempDir, String, String, Database, reqwest::Client) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("controller"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.allow_local_repositories = true;
    // Nothing here may reach GitHub: a closed local port fails at once.
    config.github_api_url = "http://127.0.0.1:9".into();
    let app = Application::build(config).await.unwrap();
    let base = app.base_url().to_owned();
    let admin_token = app.new_admin_token.clone().unwrap();
    let db = app.state().db.clone();
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    (dir, base, admin_token, db, http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_each_role_of_the_sites_team_another_team_and_anonymous_as_the_table_says() {
    let (_dir, base, admin_token, db, http) = start().await;

    // The site `blog` of the first team, one of its builds, and the team's
    // members; another team with an owner and a site of its own.
    let made = http
        .post(format!("{base}/api/v1/sites"))
        .bearer_auth(&admin_token)
        .json(&serde_json::json!({"name": "blog", "repo_url": "/repos/blog"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201, "{}", made.text().await.unwrap());
    let blog = db.site_by_name("blog").await.unwrap().unwrap();
    let team = db.first_team_id().await.unwrap();
    let build = db
        .enqueue_build(&NewBuild {
            site_id: blog.id,
            context: jamstack_proto::BuildContext::Production,
            branch: "main".into(),
            commit_sha: "a".repeat(40),
            commit_message: None,
            author: None,
            pr_number: None,
            from_fork: false,
            commit_unverified: false,
            trigger: "api",
            trigger_title: None,
            trigger_payload: None,
        })
        .await
        .unwrap()
        .0;
    let mut callers = vec![
        (Caller::AdminToken, Some(admin_token.clone())),
        (Caller::Anonymous, None),
    ];
    for role in Role::ALL {
        let token = member_token(&db, team, &format!("member-{role}"), role).await;
        callers.push((Caller::Member(role), Some(token)));
    }
    let stranger = db.insert_user("stranger", None).await.unwrap().unwrap();
    let other_team = db.insert_team("other", stranger.id).await.unwrap().unwrap();
    let stranger_token = new_token(TokenKind::Api);
    db.insert_team_token(
        other_team.id,
        Some(stranger.id),
        "stranger",
        "read builds deploys sites admin",
        &hash_token(&stranger_token),
    )
    .await
    .unwrap();
    callers.push((Caller::OwnerOfAnotherTeam, Some(stranger_token.clone())));

    let mut operations: Vec<_> = declarations()
        .iter()
        .map(|((method, path), permission)| {
            (
                method.clone(),
                path.clone(),
                permission.clone().unwrap_or_else(|missing| panic!("{missing}")),
            )
        })
        .collect();
    // Reads first, then writes, deletions last: what one call changes does
    // not hide another's answer.
    operations.sort_by_key(|(method, path, _)| {
        let order = match method.as_str() {
            "GET" => 0,
            "DELETE" => 2,
            _ => 1,
        };
        (order, path.clone())
    });
    let mut wrong = Vec::new();
    let mut calls = 0;
    for (method, pattern, permission) in &operations {
        let names_a_site = pattern.contains("{site}")
            || pattern.contains("{team}")
            || pattern.starts_with("/api/v1/builds/{id}");
        let path = pattern
            .replace("{site}", "blog")
            .replace("{team}", "default")
            .replace("{login}", "nobody")
            .replace("{session}", "999999")
            .replace("/builds/{id}", &format!("/builds/{build}"))
            .replace("{sha256}", &"0".repeat(64))
            .replace("{id}", "999999")
            .replace("{deploy}", "no-such-deploy")
            .replace("{alias}", "no-such-alias")
            .replace("{name}", "NO_SUCH_VARIABLE")
            .replace("{hostname}", "no-such.example.com");
        assert!(!path.contains('{'), "fill in the parameter of {pattern}");
        for (caller, token) in &callers {
            let mut request = http.request(method.clone(), format!("{base}{path}"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if *method != reqwest::Method::GET && *method != reqwest::Method::DELETE {
                request = request.json(&serde_json::json!({}));
            }
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            // A live log stream answers 200 and keeps going: its status is
            // enough.
            let body = if pattern.ends_with("/stream") && status == 200 {
                String::new()
            } else {
                answer.text().await.unwrap_or_default()
            };
            calls += 1;
            let want = expected(*caller, *permission, names_a_site);
            let got = observed(status, &body, build);
            if want != got || status == 500 {
                wrong.push(format!(
                    "{method} {pattern} ({permission}) as {caller:?}: expected {want:?}, got {status} {body}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {calls} calls:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(calls > 300, "every operation as every caller: {calls}");
    for (method, invitations) in [
        ("POST", "/api/v1/teams/{team}/invitations"),
        ("GET", "/api/v1/teams/{team}/invitations"),
        ("DELETE", "/api/v1/teams/{team}/invitations/{id}"),
    ] {
        assert!(
            operations.iter().any(|(m, path, p)| m.as_str() == method
                && path == invitations
                && *p == Permission::TeamMembers),
            "{method} {invitations} is in the matrix as an owner's"
        );
    }

    // Lists across teams show another team only its own sites.
    let listed: serde_json::Value = http
        .get(format!("{base}/api/v1/sites"))
        .bearer_auth(&stranger_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, serde_json::json!([]), "another team sees none of blog");
}

/// Sends a JSON request with `token`; the status and the JSON answer.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_adds_a_developer_whose_token_deploys_until_made_viewer_and_dies_when_removed() {
    use reqwest::Method;
    use serde_json::json;
    let (_dir, base, admin, _db, http) = start().await;
    let api = |path: &str| format!("{base}/api/v1{path}");

    for (login, first) in [("olga", true), ("dev", false)] {
        let (status, body) = call(
            &http,
            Method::POST,
            api("/users"),
            &admin,
            Some(json!({"login": login})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            body["owns_first_team"], first,
            "the first person the admin makes owns the first team: {body}"
        );
    }
    let (_, members) = call(&http, Method::GET, api("/teams/default/members"), &admin, None).await;
    assert_eq!(members, json!([{"login": "olga", "role": "owner"}]));
    let (status, body) = call(
        &http,
        Method::POST,
        api("/users"),
        &admin,
        Some(json!({"login": "short", "password": "too short"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        &http,
        Method::POST,
        api("/teams"),
        &admin,
        Some(json!({"name": "web", "owner": "olga"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, owner) = call(
        &http,
        Method::POST,
        api("/teams/web/tokens"),
        &admin,
        Some(json!({"name": "olga-laptop", "scopes": ["read", "builds", "deploys", "sites", "admin"], "login": "olga"})),
    )
    .await;
    assert_eq!(status, 201, "{owner}");
    let owner = owner["token"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &http,
        Method::POST,
        api("/teams/web/tokens"),
        &owner,
        Some(json!({"name": "robot", "scopes": ["admin"]})),
    )
    .await;
    assert_eq!(status, 403, "an owner makes no installation token: {body}");

    // The owner's site goes to the owner's team; the admin's stays apart.
    let (status, body) = call(
        &http,
        Method::POST,
        api("/sites"),
        &owner,
        Some(json!({"name": "shop"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        &http,
        Method::POST,
        api("/sites"),
        &admin,
        Some(json!({"name": "intranet"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, listed) = call(&http, Method::GET, api("/sites"), &owner, None).await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop"]);
    let (status, body) = call(&http, Method::GET, api("/sites/intranet"), &owner, None).await;
    assert_eq!(status, 404, "another team's site is not there: {body}");

    let (status, body) = call(
        &http,
        Method::PUT,
        api("/teams/web/members/dev"),
        &owner,
        Some(json!({"role": "developer"})),
    )
    .await;
    assert_eq!((status, &body["role"]), (200, &json!("developer")), "{body}");
    let (status, body) = call(
        &http,
        Method::POST,
        api("/teams/web/tokens"),
        &owner,
        Some(json!({"name": "dev-ci", "scopes": ["read", "sites"], "login": "dev"})),
    )
    .await;
    assert_eq!(status, 403, "no scope wider than the role: {body}");
    let (status, body) = call(
        &http,
        Method::POST,
        api("/teams/web/tokens"),
        &owner,
        Some(json!({"name": "dev-ci", "scopes": ["read", "deploys"], "login": "dev"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let developer = body["token"].as_str().unwrap().to_owned();
    let developer_actor = format!("token:{}", body["id"]);

    let (status, body) = call(&http, Method::POST, api("/sites/shop/lock"), &developer, None).await;
    assert!(status < 300, "a developer locks: {status} {body}");
    let (status, body) = call(&http, Method::POST, api("/sites/shop/unlock"), &developer, None).await;
    assert!(status < 300, "and unlocks: {status} {body}");
    let (status, body) = call(
        &http,
        Method::PUT,
        api("/teams/web/members/olga"),
        &developer,
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(status, 403, "a developer's token cannot change roles: {body}");

    let (status, body) = call(
        &http,
        Method::PUT,
        api("/teams/web/members/dev"),
        &owner,
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&http, Method::POST, api("/sites/shop/lock"), &developer, None).await;
    assert_eq!(
        status, 403,
        "a viewer's token locks no more, whatever its scopes: {body}"
    );
    assert!(body["error"].as_str().unwrap().contains("`viewer`"), "{body}");
    let (status, _) = call(&http, Method::GET, api("/sites/shop"), &developer, None).await;
    assert_eq!(status, 200, "a viewer reads");

    let (status, body) = call(
        &http,
        Method::DELETE,
        api("/teams/web/members/olga"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 409, "the last owner stays: {body}");
    let (status, body) = call(&http, Method::DELETE, api("/teams/web/members/dev"), &owner, None).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = call(&http, Method::GET, api("/sites/shop"), &developer, None).await;
    assert_eq!(status, 401, "the token died with the membership: {body}");
    let (_, members) = call(&http, Method::GET, api("/teams/web/members"), &owner, None).await;
    assert_eq!(members, json!([{"login": "olga", "role": "owner"}]));

    // The audit log holds each change that was made, by whom, and none
    // that was refused; a team's owner reads the team's part.
    let (status, log) = call(&http, Method::GET, api("/audit?site=shop"), &admin, None).await;
    assert_eq!(status, 200, "{log}");
    let seen: Vec<(String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen[0],
        ("unlock_site".to_owned(), developer_actor.clone()),
        "{log}"
    );
    assert_eq!(
        seen[1],
        ("lock_site".to_owned(), developer_actor.clone()),
        "{log}"
    );
    assert_eq!(seen.len(), 2, "the refused lock is not a change: {log}");
    assert_eq!(log[0]["target"], "/api/v1/sites/shop/unlock");
    assert_eq!(log[0]["ip"], "127.0.0.1");
    let (status, team_log) = call(&http, Method::GET, api("/teams/web/audit"), &owner, None).await;
    assert_eq!(status, 200, "{team_log}");
    let actions: Vec<&str> = team_log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "remove_member",
            "set_member_role",
            "unlock_site",
            "lock_site",
            "create_team_token",
            "set_member_role",
            "create_team_token",
        ],
        "{team_log}"
    );
    let (status, only) = call(
        &http,
        Method::GET,
        api(&format!(
            "/teams/web/audit?actor={developer_actor}&action=lock_site"
        )),
        &owner,
        None,
    )
    .await;
    assert_eq!((status, only.as_array().unwrap().len()), (200, 1), "{only}");
    let (status, body) = call(&http, Method::GET, api("/audit"), &owner, None).await;
    assert_eq!(status, 403, "the installation's log is the admin's: {body}");
}
