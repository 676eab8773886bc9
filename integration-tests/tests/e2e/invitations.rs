//! Invitations by link: an owner invites (on the API or the dashboard's
//! Team page), the link lets one person join once, expired, revoked and
//! misaddressed links are refused, and the Team page changes roles.

use crate::helpers::{DashboardSession, TestApp, csrf_of, eventually, spawn_controller_only};
use jamstack_controller::auth::hash_token;
use jamstack_controller::db::{NewInvitation, Role, now_millis};
use serde_json::{Value, json};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";

/// `olga` (password `PASSWORD`) owns the team `web` and its site `shop`;
/// `vic` (same password) is a viewer on it. Returns olga's API token.
async fn team_web(app: &TestApp) -> String {
    for login in ["olga", "vic"] {
        let (status, body) = app
            .api_json(
                app.http
                    .post(app.api("/users"))
                    .json(&json!({"login": login, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = app
        .api_json(
            app.http
                .post(app.api("/teams"))
                .json(&json!({"name": "web", "owner": "olga"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api("/teams/web/members/vic"))
                .json(&json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, token) = app
        .api_json(app.http.post(app.api("/teams/web/tokens")).json(&json!({
            "name": "olga-laptop",
            "scopes": ["read", "builds", "deploys", "sites", "admin"],
            "login": "olga",
        })))
        .await;
    assert_eq!(status, 201, "{token}");
    let olga = token["token"].as_str().unwrap().to_owned();
    let (status, body) = as_token(
        app,
        &olga,
        reqwest::Method::POST,
        "/sites",
        Some(json!({"name": "shop"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    olga
}

/// Calls the API with `token`; the status and the JSON answer.
async fn as_token(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.http.request(method, app.api(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn cookie_named(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .filter(|v| !v.ends_with('='))
}

/// A page as someone with `cookie` (or nobody) sees it: status, the
/// cookies it sets, and the body.
async fn open(app: &TestApp, path: &str, cookie: Option<&str>) -> (u16, reqwest::Response) {
    let mut request = app.http.get(format!("{}{path}", app.base_url));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response)
}

/// Makes an account from an invitation's page, as its form does; the
/// status, the new session (if any) and the answer.
async fn create_account(app: &TestApp, path: &str, login: &str) -> (u16, Option<DashboardSession>, String) {
    let (status, page) = open(app, path, None).await;
    assert_eq!(status, 200, "{path}");
    let form_cookie = cookie_named(&page, "jamstack_login").expect("the page sets its form cookie");
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"create-account\""), "{html}");
    let csrf = csrf_of(&html[html.find("id=\"create-account\"").unwrap()..]);
    let response = app
        .http
        .post(format!("{}{path}/account", app.base_url))
        .header("cookie", form_cookie)
        .form(&[("csrf", csrf.as_str()), ("login", login), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let session = cookie_named(&response, "jamstack_session").map(|cookie| DashboardSession { cookie });
    (status, session, response.text().await.unwrap())
}

/// Signs in with a login and password over HTTP.
async fn sign_in(app: &TestApp, login: &str) -> DashboardSession {
    let page = app
        .http
        .get(format!("{}/login", app.base_url))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie_named(&page, "jamstack_login").unwrap();
    let csrf = csrf_of(&page.text().await.unwrap());
    let response = app
        .http
        .post(format!("{}/login", app.base_url))
        .header("cookie", login_cookie)
        .form(&[("csrf", csrf.as_str()), ("login", login), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303, "{login} signs in");
    DashboardSession {
        cookie: cookie_named(&response, "jamstack_session").unwrap(),
    }
}

/// The local path of an invitation link.
fn path_of(link: &str) -> String {
    let at = link.find("/invitations/").expect("an invitation link");
    link[at..].to_owned()
}

#[tokio::test]
async fn an_invitation_link_lets_one_person_join_once_and_expired_revoked_or_misaddressed_links_are_refused()
{
    let (app, _) = spawn_controller_only().await;
    let olga = team_web(&app).await;

    // Only an owner invites: a viewer's token, however made, is refused.
    let (status, viewer) = app
        .api_json(app.http.post(app.api("/teams/web/tokens")).json(&json!({
            "name": "vic-ci", "scopes": ["read"], "login": "vic",
        })))
        .await;
    assert_eq!(status, 201, "{viewer}");
    let viewer = viewer["token"].as_str().unwrap();
    let (status, body) = as_token(
        &app,
        viewer,
        reqwest::Method::POST,
        "/teams/web/invitations",
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Nor on the dashboard, where the refusal names the role.
    let vic = sign_in(&app, "vic").await;
    let team_page = app.dashboard_page(&vic, "/teams/web").await;
    assert!(
        team_page.contains("olga"),
        "a viewer sees the members: {team_page}"
    );
    assert!(!team_page.contains("id=\"invite\""), "{team_page}");
    let (status, body) = app
        .post_form(
            &vic,
            "/teams/web/invitations",
            &[("csrf", &csrf_of(&team_page)), ("role", "owner")],
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("viewer"), "{body}");

    // Bad requests say what is wrong.
    let (status, body) = as_token(
        &app,
        &olga,
        reqwest::Method::POST,
        "/teams/web/invitations",
        Some(json!({"role": "developer", "expires_in_days": 90})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("1 to 30 days"), "{body}");

    // The link, shown once, lets one person make an account and join.
    let (status, made) = as_token(
        &app,
        &olga,
        reqwest::Method::POST,
        "/teams/web/invitations",
        Some(json!({"role": "developer"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let link = made["link"].as_str().unwrap();
    assert!(link.starts_with(&app.base_url), "{link}");
    let path = path_of(link);
    let (_, listed) = as_token(&app, &olga, reqwest::Method::GET, "/teams/web/invitations", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert!(
        !listed.to_string().contains(&path[13..]),
        "the list never shows a link: {listed}"
    );
    let (status, page) = open(&app, &path, None).await;
    assert_eq!(status, 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("web") && html.contains("developer"), "{html}");
    assert!(html.contains("Sign in to accept"), "{html}");
    let (status, nina, body) = create_account(&app, &path, "nina").await;
    assert_eq!(status, 303, "{body}");
    let nina = nina.expect("the new account is signed in");
    let sites = app.dashboard_page(&nina, "/sites").await;
    assert!(sites.contains("/sites/shop"), "{sites}");
    let (_, members) = as_token(&app, &olga, reqwest::Method::GET, "/teams/web/members", None).await;
    assert!(
        members
            .as_array()
            .unwrap()
            .contains(&json!({"login": "nina", "role": "developer"})),
        "{members}"
    );

    // Used once: the link now says so, and makes no second account.
    let (status, page) = open(&app, &path, None).await;
    assert_eq!(status, 410);
    assert!(page.text().await.unwrap().contains("used already"));
    let (status, page) = open(&app, &path, Some(&vic.cookie)).await;
    assert_eq!(status, 410, "{}", page.text().await.unwrap());

    // Revoked: gone from the list, and the link is refused.
    let (_, made) = as_token(
        &app,
        &olga,
        reqwest::Method::POST,
        "/teams/web/invitations",
        Some(json!({"role": "admin", "expires_in_days": 1})),
    )
    .await;
    let revoked_path = path_of(made["link"].as_str().unwrap());
    let id = made["id"].as_i64().unwrap();
    let (status, body) = as_token(
        &app,
        &olga,
        reqwest::Method::DELETE,
        &format!("/teams/web/invitations/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = as_token(
        &app,
        &olga,
        reqwest::Method::DELETE,
        &format!("/teams/web/invitations/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (_, listed) = as_token(&app, &olga, reqwest::Method::GET, "/teams/web/invitations", None).await;
    assert_eq!(listed, json!([]));
    let (status, page) = open(&app, &revoked_path, None).await;
    assert_eq!(status, 410);
    assert!(page.text().await.unwrap().contains("revoked"));
    let (status, _) = app
        .post_form(&vic, &revoked_path, &[("csrf", &csrf_of(&team_page))])
        .await;
    assert_eq!(status, 410, "a revoked link makes no member");

    // Expired: refused alike.
    let db = &app.state.as_ref().unwrap().db;
    let team = db.team_by_name("web").await.unwrap().unwrap().id;
    let expired_token = "jsinv_expiredexpiredexpired";
    db.insert_invitation(&NewInvitation {
        team,
        role: Role::Owner,
        token_hash: &hash_token(expired_token),
        github_login: None,
        email: None,
        invited_by: "user:1",
        expires_at: now_millis() - 1,
    })
    .await
    .unwrap();
    let (status, page) = open(&app, &format!("/invitations/{expired_token}"), None).await;
    assert_eq!(status, 410);
    assert!(page.text().await.unwrap().contains("expired"));
    let (status, _) = open(&app, "/invitations/jsinv_nosuchinvitation", None).await;
    assert_eq!(status, 404);

    // Addressed to a GitHub user: no account form, and vic (who signs in
    // with a password) may not take it.
    let (_, made) = as_token(
        &app,
        &olga,
        reqwest::Method::POST,
        "/teams/web/invitations",
        Some(json!({"role": "admin", "github_login": "octocat"})),
    )
    .await;
    let addressed = path_of(made["link"].as_str().unwrap());
    let (_, page) = open(&app, &addressed, None).await;
    let html = page.text().await.unwrap();
    assert!(html.contains("GitHub user octocat"), "{html}");
    assert!(!html.contains("id=\"create-account\""), "{html}");
    let (status, page) = open(&app, &addressed, Some(&vic.cookie)).await;
    assert_eq!(status, 200);
    let csrf = csrf_of(&page.text().await.unwrap());
    let (status, body) = app.post_form(&vic, &addressed, &[("csrf", &csrf)]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("octocat"), "{body}");
    let (_, members) = as_token(&app, &olga, reqwest::Method::GET, "/teams/web/members", None).await;
    assert!(
        members
            .as_array()
            .unwrap()
            .contains(&json!({"login": "vic", "role": "viewer"})),
        "{members}"
    );

    // The team's audit log has who invited, who revoked and who joined.
    let (_, log) = as_token(&app, &olga, reqwest::Method::GET, "/teams/web/audit", None).await;
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for wanted in [
        "create_team_invitation",
        "revoke_team_invitation",
        "accept_team_invitation",
    ] {
        assert!(actions.contains(&wanted), "{wanted} in {log}");
    }
    assert!(
        !log.to_string().contains("jsinv_"),
        "no invitation token in the audit log: {log}"
    );
}

#[tokio::test]
async fn an_owner_invites_on_the_team_page_the_newcomer_joins_and_made_viewer_can_no_longer_trigger_builds() {
    let (app, _) = spawn_controller_only().await;
    team_web(&app).await;

    // olga invites a developer on the Team page, reached from the nav.
    let owner = app.open_browser().await;
    owner.visit("/login").await;
    owner.fill("#user-sign-in input[name=login]", "olga").await;
    owner.fill("#user-sign-in input[name=password]", PASSWORD).await;
    owner.click("#user-sign-in button[type=submit]").await;
    owner.wait_for_path("/sites").await;
    owner.click("nav a[href='/teams']").await;
    owner.wait_for_path("/teams").await;
    owner.click("a[href='/teams/web']").await;
    owner.wait_for_path("/teams/web").await;
    owner
        .find("#invite select[name=role]")
        .await
        .select_by_value("developer")
        .await
        .unwrap();
    owner.click("#invite button[type=submit]").await;
    let link = owner.text("#invitation-link").await;
    owner.screenshot("team-page-invitation").await;

    // A new person opens it, makes an account and sees the team's site.
    let newcomer = app.open_browser().await;
    newcomer.visit(&path_of(&link)).await;
    newcomer
        .wait_for_text("#invitation", "developer", Duration::from_secs(5))
        .await;
    newcomer.fill("#create-account input[name=login]", "nina").await;
    newcomer
        .fill("#create-account input[name=password]", PASSWORD)
        .await;
    newcomer.click("#create-account button[type=submit]").await;
    newcomer.wait_for_path("/sites").await;
    newcomer
        .wait_for_text("main", "shop", Duration::from_secs(5))
        .await;

    // olga makes nina a viewer on the Team page.
    owner.visit("/teams/web").await;
    owner
        .find("tr[data-login=nina] select[name=role]")
        .await
        .select_by_value("viewer")
        .await
        .unwrap();
    owner.click("tr[data-login=nina] form.member-role button").await;
    eventually("nina is made viewer", || async {
        let (_, members) = app.api_json(app.http.get(app.api("/teams/web/members"))).await;
        if members
            .as_array()
            .unwrap()
            .contains(&json!({"login": "nina", "role": "viewer"}))
        {
            Ok(())
        } else {
            Err(members.to_string())
        }
    })
    .await;

    // nina's "Trigger build" is refused, naming her role.
    newcomer.visit("/sites/shop").await;
    newcomer
        .click("form[action='/sites/shop/builds'] button[type=submit]")
        .await;
    newcomer
        .wait_for_text("main", "viewer", Duration::from_secs(5))
        .await;
    let (_, builds) = app.api_json(app.http.get(app.api("/sites/shop/builds"))).await;
    assert_eq!(builds, json!([]), "no build was queued");

    // The last owner cannot be removed, and the page says why.
    owner.visit("/teams/web").await;
    owner.click("tr[data-login=olga] form.member-remove button").await;
    owner
        .wait_for_text("main", "without an owner", Duration::from_secs(5))
        .await;
    owner.close().await;
    newcomer.close().await;
}
