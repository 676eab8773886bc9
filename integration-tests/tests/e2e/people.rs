//! People signing in: a user's own password on the dashboard's sign-in
//! form, what their roles let them see and do there, their sessions listed
//! and ended (on the API, the dashboard and the command line), and the
//! audit log of sign-ins.

use crate::helpers::{DashboardSession, TestApp, csrf_of, spawn_controller_only};
use crate::processes::binary;
use serde_json::{Value, json};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

const VIC_PASSWORD: &str = "correct horse battery";

/// The installation with two teams: `default` (site `blog`, made with the
/// admin token) owned by olga, and `web` (site `shop`) owned by olga with
/// vic, who has a password, as `role`. Returns olga's token on `web`.
async fn two_teams_with_vic_as(app: &TestApp, role: &str) -> String {
    for (login, password) in [("olga", None), ("vic", Some(VIC_PASSWORD))] {
        let (status, body) = app
            .api_json(
                app.http
                    .post(app.api("/users"))
                    .json(&json!({"login": login, "password": password})),
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
    set_role(app, "vic", role).await;
    let (status, token) = app
        .api_json(app.http.post(app.api("/teams/web/tokens")).json(&json!({
            "name": "olga-laptop",
            "scopes": ["read", "builds", "deploys", "sites", "admin"],
            "login": "olga",
        })))
        .await;
    assert_eq!(status, 201, "{token}");
    let olga = token["token"].as_str().unwrap().to_owned();
    app.connect_site_with("blog", json!({})).await;
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

async fn set_role(app: &TestApp, login: &str, role: &str) {
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api(&format!("/teams/web/members/{login}")))
                .json(&json!({ "role": role })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
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

/// Posts the sign-in form with a login and password, as a browser would;
/// the status, the session (when one was opened) and the page.
async fn sign_in_as(app: &TestApp, login: &str, password: &str) -> (u16, Option<DashboardSession>, String) {
    let page = app
        .http
        .get(format!("{}/login", app.base_url))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie_named(&page, "jamstack_login").expect("the sign-in page sets its CSRF cookie");
    let csrf = csrf_of(&page.text().await.unwrap());
    let response = app
        .http
        .post(format!("{}/login", app.base_url))
        .header("cookie", login_cookie)
        .form(&[("csrf", csrf.as_str()), ("login", login), ("password", password)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let session = cookie_named(&response, "jamstack_session").map(|cookie| DashboardSession { cookie });
    (status, session, response.text().await.unwrap())
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

/// A dashboard page's status and body with a session's cookie.
async fn page(app: &TestApp, session: &DashboardSession, path: &str) -> (u16, String) {
    let response = app
        .http
        .get(format!("{}{path}", app.base_url))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    let body = response.text().await.unwrap();
    (status, location.unwrap_or(body))
}

#[tokio::test]
async fn a_member_signs_in_with_their_password_and_sees_and_does_only_what_their_role_allows() {
    let (app, _) = spawn_controller_only().await;
    let olga = two_teams_with_vic_as(&app, "viewer").await;

    // A wrong password and an unknown login are refused alike, after the pause.
    let (status, session, body) = sign_in_as(&app, "vic", "not the password").await;
    assert_eq!(status, 401, "{body}");
    assert!(session.is_none());
    assert!(body.contains("login and password do not match"), "{body}");
    let (status, _, _) = sign_in_as(&app, "nobody-here", VIC_PASSWORD).await;
    assert_eq!(status, 401);
    // olga has no password: no password opens her account.
    let (status, _, _) = sign_in_as(&app, "olga", "").await;
    assert_eq!(status, 401);

    let (status, session, body) = sign_in_as(&app, "vic", VIC_PASSWORD).await;
    assert_eq!(status, 303, "{body}");
    let vic = session.expect("signing in sets the session cookie");

    // The site list shows the sites of vic's teams only.
    let (status, sites) = page(&app, &vic, "/sites").await;
    assert_eq!(status, 200);
    assert!(sites.contains("/sites/shop"), "{sites}");
    assert!(
        !sites.contains("/sites/blog"),
        "another team's site is listed: {sites}"
    );
    assert!(
        !sites.contains("href=\"/settings\""),
        "the installation's settings are offered: {sites}"
    );
    let (status, _) = page(&app, &vic, "/sites/shop").await;
    assert_eq!(status, 200);
    let (status, body) = page(&app, &vic, "/sites/blog").await;
    assert_eq!(
        status, 404,
        "another team's site is hidden as a missing one: {body}"
    );
    for installation_page in ["/settings", "/queue", "/sites/new"] {
        let (status, _) = page(&app, &vic, installation_page).await;
        assert_eq!(status, 403, "{installation_page}");
    }

    // A viewer may not lock; the refusal names the role.
    let (_, shop) = page(&app, &vic, "/sites/shop").await;
    let csrf = csrf_of(&shop);
    let (status, body) = app.post_form(&vic, "/sites/shop/lock", &[("csrf", &csrf)]).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("viewer"),
        "the page says which role falls short: {body}"
    );
    let (_, site) = as_token(&app, &olga, reqwest::Method::GET, "/sites/shop", None).await;
    assert_eq!(site["publish_locked"], false);

    // Made developer, the same session may lock.
    set_role(&app, "vic", "developer").await;
    let (status, body) = app.post_form(&vic, "/sites/shop/lock", &[("csrf", &csrf)]).await;
    assert_eq!(status, 303, "{body}");
    let (_, site) = as_token(&app, &olga, reqwest::Method::GET, "/sites/shop", None).await;
    assert_eq!(site["publish_locked"], true);
    // Still not another team's site, nor a developer's settings.
    let (status, _) = app.post_form(&vic, "/sites/blog/lock", &[("csrf", &csrf)]).await;
    assert_eq!(status, 404);
    let (status, _) = page(&app, &vic, "/sites/shop/settings").await;
    assert_eq!(status, 403);

    // Sign-ins and failed ones are in the audit log, with the address.
    let (status, entries) = app
        .api_json(app.http.get(app.api("/audit?action=sign_in_failed")))
        .await;
    assert_eq!(status, 200, "{entries}");
    let failed: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&"login:vic"), "{entries}");
    assert!(failed.contains(&"login:nobody-here"), "{entries}");
    assert!(
        entries[0]["ip"].as_str().unwrap().starts_with("127."),
        "{entries}"
    );
    let (_, entries) = app.api_json(app.http.get(app.api("/audit?action=sign_in"))).await;
    let signed_in = entries.as_array().unwrap();
    assert_eq!(signed_in.len(), 1, "{entries}");
    assert!(
        signed_in[0]["actor"].as_str().unwrap().starts_with("user:"),
        "{entries}"
    );

    // The owner sets a new password: vic's session ends at once, and only
    // the new password opens a new one.
    let new_password = "a brand new passphrase";
    let (status, body) = as_token(
        &app,
        &olga,
        reqwest::Method::PUT,
        "/teams/web/members/vic/password",
        Some(json!({"password": new_password})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, location) = page(&app, &vic, "/sites").await;
    assert_eq!((status, location.as_str()), (303, "/login"));
    let (status, _, _) = sign_in_as(&app, "vic", VIC_PASSWORD).await;
    assert_eq!(status, 401);
    let (status, _, _) = sign_in_as(&app, "vic", new_password).await;
    assert_eq!(status, 303);

    // olga also owns `default`, so the owner of `web` alone may not set hers.
    let (status, body) = as_token(
        &app,
        &olga,
        reqwest::Method::PUT,
        "/teams/web/members/olga/password",
        Some(json!({"password": "long enough password"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("other teams"), "{body}");
}

/// Runs the `jamstack` command line with a token and stdin.
async fn jamstack(app: &TestApp, token: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = tokio::process::Command::new(binary("jamstack"))
        .args(args)
        .env("JAMSTACK_URL", &app.base_url)
        .env("JAMSTACK_TOKEN", token)
        .env("JAMSTACK_CONFIG", app.data_dir().join("cli-config.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting jamstack");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_user_lists_their_sessions_and_ends_one_which_is_refused_at_once() {
    let (app, _) = spawn_controller_only().await;
    let olga = two_teams_with_vic_as(&app, "developer").await;
    let (status, token) = as_token(
        &app,
        &olga,
        reqwest::Method::POST,
        "/teams/web/tokens",
        Some(json!({"name": "vic-cli", "scopes": ["read"], "login": "vic"})),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    let vic_token = token["token"].as_str().unwrap().to_owned();

    let (_, laptop, _) = sign_in_as(&app, "vic", VIC_PASSWORD).await;
    let (_, phone, _) = sign_in_as(&app, "vic", VIC_PASSWORD).await;
    let (laptop, phone) = (laptop.unwrap(), phone.unwrap());

    let (status, sessions) =
        as_token(&app, &vic_token, reqwest::Method::GET, "/users/me/sessions", None).await;
    assert_eq!(status, 200, "{sessions}");
    let ids: Vec<i64> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{sessions}");
    // Newest first: the phone's, then the laptop's.
    let (phone_id, laptop_id) = (ids[0], ids[1]);

    // Ended on the command line, the phone's session is refused at once,
    // on the dashboard and on the API.
    let (code, out, err) = jamstack(&app, &vic_token, &["account", "sessions"], "").await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&phone_id.to_string()) && out.contains(&laptop_id.to_string()),
        "{out}"
    );
    let (code, out, err) = jamstack(
        &app,
        &vic_token,
        &["account", "end-session", &phone_id.to_string()],
        "",
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let (status, location) = page(&app, &phone, "/sites").await;
    assert_eq!((status, location.as_str()), (303, "/login"));
    let read = app
        .http
        .get(app.api("/sites/shop"))
        .header("cookie", &phone.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status().as_u16(), 401);
    let (status, _) = page(&app, &laptop, "/sites/shop").await;
    assert_eq!(status, 200, "the other session lives on");

    // Nobody ends another user's session by its number.
    let (status, body) = as_token(
        &app,
        &olga,
        reqwest::Method::DELETE,
        &format!("/users/me/sessions/{laptop_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    // The admin token is no user's.
    let (status, body) = app.api_json(app.http.get(app.api("/users/me/sessions"))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("belongs to no user"), "{body}");

    // The account page lists the laptop's session as this one, and ends it.
    let (status, account) = page(&app, &laptop, "/account").await;
    assert_eq!(status, 200);
    assert!(account.contains(&format!("{laptop_id} (this one)")), "{account}");
    let csrf = csrf_of(&account);
    let (status, _) = app
        .post_form(
            &laptop,
            &format!("/account/sessions/{laptop_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 303);
    let (status, _) = page(&app, &laptop, "/sites").await;
    assert_eq!(status, 303);

    // vic changes the password from the command line: the current one is
    // needed, and a wrong one changes nothing.
    let (code, _, err) = jamstack(
        &app,
        &vic_token,
        &["account", "set-password"],
        "wrong current password\nsomething much longer\n",
    )
    .await;
    assert_eq!(code, 4, "{err}");
    let (code, out, err) = jamstack(
        &app,
        &vic_token,
        &["account", "set-password"],
        &format!("{VIC_PASSWORD}\nsomething much longer\n"),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let (status, _, _) = sign_in_as(&app, "vic", "something much longer").await;
    assert_eq!(status, 303);

    // An owner ends every session of a member of their team only.
    let (status, sessions) = as_token(
        &app,
        &olga,
        reqwest::Method::GET,
        "/teams/web/members/vic/sessions",
        None,
    )
    .await;
    assert_eq!(
        (status, sessions.as_array().map(Vec::len)),
        (200, Some(1)),
        "{sessions}"
    );
    let (status, _) = as_token(
        &app,
        &olga,
        reqwest::Method::DELETE,
        "/teams/web/members/vic/sessions",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, sessions) = as_token(&app, &vic_token, reqwest::Method::GET, "/users/me/sessions", None).await;
    assert_eq!(sessions, json!([]));
}
