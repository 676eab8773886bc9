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

/// The newest entry of the installation's audit log, as the admin reads it.
async fn newest_entry(app: &TestApp) -> Value {
    let entries = app.get_json("/audit?per_page=1").await;
    entries
        .as_array()
        .and_then(|entries| entries.first())
        .cloned()
        .unwrap_or_else(|| panic!("the audit log is empty: {entries}"))
}

/// Checks the newest entry is `action` by `actor` on `site` with `status`.
async fn last_change_was(app: &TestApp, actor: &str, action: &str, site: Option<&str>, status: u16) -> Value {
    let entry = newest_entry(app).await;
    assert_eq!(entry["actor"], actor, "{entry}");
    assert_eq!(entry["action"], action, "{entry}");
    assert_eq!(entry["site"], site.map_or(Value::Null, |s| json!(s)), "{entry}");
    assert_eq!(entry["status"], status, "{entry}");
    assert!(
        entry["ip"].as_str().is_some_and(|ip| !ip.is_empty()),
        "from where: {entry}"
    );
    entry
}

#[tokio::test]
async fn a_teams_scripted_day_is_in_the_audit_log_action_by_action_and_its_owner_filters_it_on_the_dashboard()
{
    let (app, _runner_token) = spawn_controller_only().await;
    let olga = two_teams_with_vic_as(&app, "developer").await;
    let (status, made) = app
        .api_json(app.http.post(app.api("/teams/web/tokens")).json(&json!({
            "name": "vic-laptop",
            "scopes": ["read", "builds", "deploys"],
            "login": "vic",
        })))
        .await;
    assert_eq!(status, 201, "{made}");
    let vic = made["token"].as_str().unwrap().to_owned();
    let vic_token = format!("token:{}", made["id"]);
    last_change_was(&app, "admin", "create_team_token", None, 201).await;
    let olga_token = {
        let (status, _) = as_token(&app, &olga, reqwest::Method::POST, "/sites/shop/lock", None).await;
        assert_eq!(status, 200);
        let entry = newest_entry(&app).await;
        assert_eq!(
            (&entry["action"], &entry["site"]),
            (&json!("lock_site"), &json!("shop")),
            "{entry}"
        );
        entry["actor"].as_str().unwrap().to_owned()
    };
    assert!(
        olga_token.starts_with("token:") && olga_token != vic_token,
        "{olga_token}"
    );

    // Morning: vic mistypes the password, then signs in.
    let (status, _, _) = sign_in_as(&app, "vic", "wrong horse").await;
    assert_eq!(status, 401);
    last_change_was(&app, "login:vic", "sign_in_failed", None, 401).await;
    let (status, session, _) = sign_in_as(&app, "vic", VIC_PASSWORD).await;
    assert_eq!(status, 303);
    let vic_session = session.expect("signed in");
    let signed_in = newest_entry(&app).await;
    assert_eq!(signed_in["action"], "sign_in", "{signed_in}");
    let vic_user = signed_in["actor"].as_str().unwrap().to_owned();
    assert!(vic_user.starts_with("user:"), "{signed_in}");

    // Olga unlocks the site and sets a secret variable: its name is
    // logged, never its value.
    let (status, _) = as_token(&app, &olga, reqwest::Method::POST, "/sites/shop/unlock", None).await;
    assert_eq!(status, 200);
    last_change_was(&app, &olga_token, "unlock_site", Some("shop"), 200).await;
    let (status, body) = as_token(
        &app,
        &olga,
        reqwest::Method::PUT,
        "/sites/shop/env/STRIPE_KEY",
        Some(json!({"value": "sk_live_do_not_log", "secret": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let entry = last_change_was(&app, &olga_token, "set_env_var", Some("shop"), 200).await;
    assert_eq!(entry["target"], "/api/v1/sites/shop/env/STRIPE_KEY");
    assert!(!entry.to_string().contains("sk_live"), "{entry}");

    // Vic, a developer, locks the site, and is refused a domain (admins only):
    // the refusal changed nothing, so it is not a change in the log.
    let (status, _) = as_token(&app, &vic, reqwest::Method::POST, "/sites/shop/lock", None).await;
    assert_eq!(status, 200);
    last_change_was(&app, &vic_token, "lock_site", Some("shop"), 200).await;
    let (status, _) = as_token(
        &app,
        &vic,
        reqwest::Method::POST,
        "/sites/shop/domains",
        Some(json!({"hostname": "shop.example.com"})),
    )
    .await;
    assert_eq!(status, 403);
    let after_refusal = newest_entry(&app).await;
    assert_eq!(after_refusal["action"], "lock_site", "{after_refusal}");

    // Olga adds the domain instead, then makes vic a viewer.
    let (status, body) = as_token(
        &app,
        &olga,
        reqwest::Method::POST,
        "/sites/shop/domains",
        Some(json!({"hostname": "shop.example.com"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    last_change_was(&app, &olga_token, "add_site_domain", Some("shop"), 201).await;
    let (status, body) = as_token(
        &app,
        &olga,
        reqwest::Method::PUT,
        "/teams/web/members/vic",
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let entry = last_change_was(&app, &olga_token, "set_member_role", None, 200).await;
    assert_eq!(entry["target"], "/api/v1/teams/web/members/vic");

    // Evening: vic, a viewer now, ends the own dashboard session.
    let csrf = csrf_of(&page(&app, &vic_session, "/account").await.1);
    let signed_out = app
        .http
        .post(format!("{}/logout", app.base_url))
        .header("cookie", &vic_session.cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status().as_u16(), 303);

    // The team's log, as olga reads it: every change of the day on web's
    // site and members, newest first, none of the other team's.
    let (status, day) = as_token(&app, &olga, reqwest::Method::GET, "/teams/web/audit", None).await;
    assert_eq!(status, 200, "{day}");
    let actions: Vec<&str> = day
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for done in [
        "set_member_role",
        "add_site_domain",
        "lock_site",
        "set_env_var",
        "unlock_site",
        "create_team_token",
    ] {
        assert!(actions.contains(&done), "{done} missing from {actions:?}");
    }
    let positions: Vec<usize> = ["set_member_role", "add_site_domain", "set_env_var", "unlock_site"]
        .iter()
        .map(|a| actions.iter().position(|x| x == a).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "newest first: {actions:?}"
    );
    assert!(
        day.as_array().unwrap().iter().all(|e| e["site"] != "blog"),
        "another team's site: {day}"
    );

    // On the dashboard, olga's team page links the log; filtered by who,
    // it shows vic's lock and nothing of olga's.
    let (status, olga_session, _) = {
        let (status, body) = app
            .api_json(
                app.http
                    .put(app.api("/teams/web/members/olga/password"))
                    .json(&json!({"password": "olga's long password"})),
            )
            .await;
        assert!(status == 200 || status == 204, "{body}");
        sign_in_as(&app, "olga", "olga's long password").await
    };
    assert_eq!(status, 303);
    let olga_session = olga_session.unwrap();
    let (status, team_page) = page(&app, &olga_session, "/teams/web").await;
    assert_eq!(status, 200);
    assert!(team_page.contains("/teams/web/audit"), "{team_page}");
    let (status, filtered) = page(&app, &olga_session, &format!("/teams/web/audit?who={vic_token}")).await;
    assert_eq!(status, 200, "{filtered}");
    assert!(filtered.contains("lock_site"), "{filtered}");
    assert!(!filtered.contains("set_env_var"), "{filtered}");
    // The admin made vic a developer in the morning; olga made vic a viewer.
    let (status, by_action) = page(&app, &olga_session, "/teams/web/audit?action=set_member_role").await;
    assert_eq!(status, 200);
    assert_eq!(
        by_action.matches("class=\"audit-entry\"").count(),
        2,
        "{by_action}"
    );
    let (status, both) = page(
        &app,
        &olga_session,
        &format!("/teams/web/audit?action=set_member_role&who={olga_token}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(both.matches("class=\"audit-entry\"").count(), 1, "{both}");
    // A viewer does not read the team's log.
    let (_, vic_again, _) = sign_in_as(&app, "vic", VIC_PASSWORD).await;
    let (status, _) = page(&app, &vic_again.unwrap(), "/teams/web/audit").await;
    assert_eq!(status, 403);
}
