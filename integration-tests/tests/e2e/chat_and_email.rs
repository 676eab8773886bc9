//! Notifications people already read: a Slack-compatible chat webhook and
//! e-mail through an SMTP server (Python's aiosmtpd, a real one on
//! loopback), sent from a real build.

use crate::helpers::{
    COPY_SITE_TOML, SiteRepo, TestApp, csrf_of, spawn_app, spawn_app_with, spawn_controller_only_with,
};
use axum::body::Bytes;
use axum::http::HeaderMap;
use jamstack_controller::config::{SmtpSettings, SmtpTls};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Adds a notification hook; the API's answer must be 201.
async fn add_hook(app: &TestApp, site: &str, body: Value) -> Value {
    let (status, hook) = app
        .api_json(
            app.http
                .post(app.api(&format!("/sites/{site}/notifications")))
                .json(&body),
        )
        .await;
    assert_eq!(status, 201, "adding a notification hook: {hook}");
    hook
}

/// A chat server's incoming webhook on a random port: records what it is
/// sent and answers `ok`, as Slack does.
async fn start_chat_receiver() -> (String, Arc<Mutex<Vec<(HeaderMap, Value)>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().route(
        "/services/T000/B000/secret-part",
        axum::routing::post({
            let received = received.clone();
            move |headers: HeaderMap, body: Bytes| async move {
                let message: Value = serde_json::from_slice(&body).expect("a JSON message");
                received.lock().unwrap().push((headers, message));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/services/T000/B000/secret-part",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// Waits until `found` says what arrived is enough, and returns it.
async fn wait_for<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + crate::processes::PATIENCE;
    loop {
        if let Some(found) = found() {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A hook's delivery log once `count` deliveries are recorded delivered:
/// a receiver has the message a moment before its answer is recorded.
async fn delivered_log(app: &TestApp, site: &str, hook: &Value, count: usize) -> Vec<Value> {
    let path = format!("/sites/{site}/notifications/{}/deliveries", hook["id"]);
    let deadline = tokio::time::Instant::now() + crate::processes::PATIENCE;
    loop {
        let log = app.get_json(&path).await.as_array().unwrap().clone();
        if log.len() == count && log.iter().all(|d| d["state"] == "delivered") {
            return log;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not {count} deliveries delivered: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The attachment field titled `title` of a Slack-shaped message.
fn field<'a>(message: &'a Value, title: &str) -> &'a str {
    message["attachments"][0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["title"] == title)
        .and_then(|f| f["value"].as_str())
        .unwrap_or_else(|| panic!("no field {title}: {message}"))
}

#[tokio::test]
async fn a_chat_channel_gets_a_message_with_site_context_commit_link_and_outcome_of_a_build() {
    let app = spawn_app().await;
    let (url, received) = start_chat_receiver().await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "chatty")],
        "Add the landing page\n\nWith a longer body that chat does not show.",
    );
    app.connect_site("chatty", &repo, "octo/chatty").await;
    let hook = add_hook(
        &app,
        "chatty",
        json!({ "kind": "slack", "url": url, "events": ["build.succeeded", "deploy.published"] }),
    )
    .await;
    assert_eq!(hook["kind"], "slack");
    assert!(hook.get("secret").is_none(), "a chat hook is not signed: {hook}");
    // The URL is the channel's credential: listed by its host only.
    let listed = app.get_json("/sites/chatty/notifications").await;
    let shown = listed[0]["url"].as_str().unwrap();
    assert!(
        shown.starts_with("http://127.0.0.1") && !shown.contains("secret-part"),
        "{listed}"
    );
    // Nor is it stored in clear: it is sealed, as a webhook's secret is.
    for file in ["jamstack.db", "jamstack.db-wal"] {
        let Ok(bytes) = std::fs::read(app.data_dir.join(file)) else {
            continue;
        };
        assert!(
            !bytes.windows(11).any(|w| w == b"secret-part"),
            "{file} holds the chat URL in clear"
        );
    }

    let build = app.trigger_build("chatty", &sha).await;
    let built = app.wait_for_success(build).await;
    let messages = wait_for("two chat messages", || {
        let all = received.lock().unwrap().clone();
        (all.len() >= 2).then_some(all)
    })
    .await;
    let permalink = format!(
        "http://{}--chatty.localhost:{}/",
        built["deploy_id"].as_str().unwrap(),
        app.base_url.rsplit(':').next().unwrap()
    );
    let short_sha = &sha[..7];
    let succeeded = messages
        .iter()
        .map(|(_, message)| message)
        .find(|message| field(message, "Outcome").contains("succeeded"))
        .expect("the build's success");
    assert_eq!(
        succeeded["text"],
        format!("chatty: Build #{build} succeeded (production) <{permalink}|open>")
    );
    assert_eq!(field(succeeded, "Site"), "chatty");
    assert_eq!(field(succeeded, "Context"), "production");
    assert_eq!(
        field(succeeded, "Commit"),
        format!("{short_sha} Add the landing page")
    );
    assert_eq!(field(succeeded, "Outcome"), format!("Build #{build} succeeded"));
    assert_eq!(succeeded["attachments"][0]["title_link"], permalink.as_str());
    assert_eq!(succeeded["attachments"][0]["color"], "good");
    assert!(
        field(succeeded, "Build log").contains(&format!("/builds/{build}|build log>")),
        "{succeeded}"
    );

    let published = messages
        .iter()
        .map(|(_, message)| message)
        .find(|message| field(message, "Outcome").contains("published"))
        .expect("the publish");
    assert_eq!(
        field(published, "Outcome"),
        format!("Deploy {} published", built["deploy_id"].as_str().unwrap())
    );
    assert_eq!(
        field(published, "Commit"),
        format!("{short_sha} Add the landing page")
    );
    for (headers, _) in &messages {
        assert_eq!(headers["content-type"], "application/json");
        assert!(headers.get("x-jamstack-signature").is_none(), "{headers:?}");
    }

    let log = delivered_log(&app, "chatty", &hook, 2).await;
    for delivery in &log {
        assert_eq!(delivery["last_status"], 200, "{delivery}");
    }
}

#[tokio::test]
async fn a_chat_hook_may_not_call_a_private_address_and_email_needs_an_smtp_server() {
    let (app, _) =
        spawn_controller_only_with(|config| config.notifications.allow_private_targets = false).await;
    app.connect_site("guarded", &SiteRepo::new(), "octo/guarded")
        .await;
    let refused = |body: Value| {
        let app = &app;
        async move {
            let (status, answer) = app
                .api_json(app.http.post(app.api("/sites/guarded/notifications")).json(&body))
                .await;
            assert_eq!(status, 400, "{body}: {answer}");
            answer["error"].as_str().unwrap().to_owned()
        }
    };
    for url in [
        "http://127.0.0.1:9/services/x",
        "http://169.254.169.254/latest/meta-data/",
    ] {
        let error = refused(json!({ "kind": "slack", "url": url })).await;
        assert!(
            error.contains("private or local address") && error.contains("--allow-private-hook-targets"),
            "{error}"
        );
    }
    let error = refused(json!({ "kind": "email", "emails": ["ops@example.com"] })).await;
    assert!(
        error.contains("no SMTP server") && error.contains("--smtp-url"),
        "{error}"
    );
    let error = refused(json!({ "kind": "slack" })).await;
    assert!(error.contains("`url` is missing"), "{error}");
    let error = refused(
        json!({ "kind": "slack", "url": "https://hooks.example.com/x", "secret": "0123456789abcdef" }),
    )
    .await;
    assert!(error.contains("not signed"), "{error}");
    assert_eq!(app.get_json("/sites/guarded/notifications").await, json!([]));
    // A public chat server is taken (it is not called until something happens).
    add_hook(
        &app,
        "guarded",
        json!({ "kind": "slack", "url": "https://hooks.slack.com/services/T000/B000/XXXX" }),
    )
    .await;
}

/// Python's aiosmtpd on a loopback port, storing what it is sent in a
/// maildir; killed when dropped.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    fn start() -> Self {
        let installed = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            installed,
            "the SMTP test server is missing: install it with `python3 -m pip install aiosmtpd` \
             (./scripts/test.sh does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("maildir");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting python3 -m aiosmtpd");
        let server = SmtpServer {
            child,
            port,
            maildir,
            _dir: dir,
        };
        crate::processes::eventually("aiosmtpd answering", || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| e.to_string())
        });
        server
    }

    /// The messages stored so far, decoded by Python's `email` package:
    /// subject, from, envelope recipients, plain text and HTML bodies.
    fn messages(&self) -> Vec<Value> {
        if !self.maildir.join("new").exists() {
            return Vec::new();
        }
        read_maildir(&self.maildir)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_maildir(maildir: &Path) -> Vec<Value> {
    const READ: &str = r#"
import email, json, mailbox, sys
from email import policy
box = mailbox.Maildir(sys.argv[1], factory=None, create=False)
out = []
for key in sorted(box.keys()):
    message = email.message_from_bytes(box.get_bytes(key), policy=policy.default)
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    out.append({
        "subject": str(message["subject"]),
        "from": str(message["from"]),
        "to": str(message["to"]),
        "recipients": str(message.get("X-RcptTo", "")),
        "text": text.get_content() if text else None,
        "html": html.get_content() if html else None,
    })
print(json.dumps(out))
"#;
    let output = Command::new("python3")
        .args(["-c", READ])
        .arg(maildir)
        .output()
        .expect("reading the maildir with python3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn an_email_with_site_context_commit_link_and_outcome_reaches_every_address_of_the_hook() {
    let smtp = SmtpServer::start();
    let port = smtp.port;
    let app = spawn_app_with(|config| {
        config.smtp = Some(
            SmtpSettings::from_url(
                &format!("smtp://127.0.0.1:{port}"),
                SmtpTls::None,
                "Deploys <deploys@example.com>",
            )
            .unwrap(),
        );
    })
    .await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "mailed")],
        "Add the landing page",
    );
    app.connect_site("mailed", &repo, "octo/mailed").await;

    let (status, refused) = app
        .api_json(
            app.http
                .post(app.api("/sites/mailed/notifications"))
                .json(&json!({ "kind": "email", "emails": ["ops@example.com", "not an address"] })),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("`not an address` is not an e-mail address"),
        "{refused}"
    );
    let hook = add_hook(
        &app,
        "mailed",
        json!({
            "kind": "email",
            "emails": ["ops@example.com", "dev@example.com"],
            "events": ["build.succeeded", "build.failed"],
        }),
    )
    .await;
    assert_eq!(hook["emails"], json!(["ops@example.com", "dev@example.com"]));
    assert!(
        hook.get("url").is_none() && hook.get("secret").is_none(),
        "{hook}"
    );

    let build = app.trigger_build("mailed", &sha).await;
    let built = app.wait_for_success(build).await;
    let messages = wait_for("the e-mail", || {
        let messages = smtp.messages();
        (!messages.is_empty()).then_some(messages)
    })
    .await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let mail = &messages[0];
    assert_eq!(
        mail["subject"],
        format!("[mailed] Build #{build} succeeded (production)")
    );
    assert_eq!(mail["from"], "Deploys <deploys@example.com>");
    let recipients = mail["recipients"].as_str().unwrap();
    assert!(
        recipients.contains("ops@example.com") && recipients.contains("dev@example.com"),
        "{mail}"
    );
    let permalink = format!(
        "http://{}--mailed.localhost:{}/",
        built["deploy_id"].as_str().unwrap(),
        app.base_url.rsplit(':').next().unwrap()
    );
    let text = mail["text"].as_str().expect("a plain-text body");
    for line in [
        format!("Build #{build} succeeded."),
        "Site:      mailed".to_owned(),
        "Context:   production".to_owned(),
        format!("Commit:    {} Add the landing page", &sha[..7]),
        format!("Outcome:   Build #{build} succeeded"),
        format!("Link:      {permalink}"),
    ] {
        assert!(text.contains(&line), "no `{line}` in:\n{text}");
    }
    let html = mail["html"].as_str().expect("an HTML body");
    assert!(html.contains(&format!("<a href=\"{permalink}\">")), "{html}");

    let log = delivered_log(&app, "mailed", &hook, 1).await;
    assert_eq!(log[0]["last_status"], 250, "the SMTP server's reply: {log:?}");
}

#[tokio::test]
async fn a_site_admin_picks_a_kind_on_the_settings_page_to_add_a_chat_or_email_notification_and_removes_it() {
    let (app, _) = spawn_controller_only_with(|config| {
        config.smtp =
            Some(SmtpSettings::from_url("smtp://127.0.0.1:9", SmtpTls::None, "deploys@example.com").unwrap());
    })
    .await;
    app.connect_site_with("paged", json!({ "repo_url": "/nowhere/repo.git" }))
        .await;
    let session = app.sign_in_over_http().await;
    let page = app.dashboard_page(&session, "/sites/paged/settings").await;
    assert!(page.contains("No notification hook yet"), "{page}");
    assert!(
        page.contains("<option value=\"slack\""),
        "a kind selector: {page}"
    );
    let csrf = csrf_of(&page);

    let form = |kind: &'static str, url: &'static str, emails: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("kind", kind.to_owned()),
            ("url", url.to_owned()),
            ("emails", emails.to_owned()),
            ("events", "build.failed, deploy.published".to_owned()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let app = &app;
        let session = &session;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.post_form(session, "/sites/paged/notifications", &fields)
                .await
        }
    };
    let (status, page) = post(form("email", "", "ops@example.com, not-an-address")).await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("`not-an-address` is not an e-mail address"),
        "{page}"
    );
    assert!(
        page.contains("value=\"ops@example.com, not-an-address\""),
        "what was typed is kept: {page}"
    );

    let (status, _) = post(form("email", "", "ops@example.com dev@example.com")).await;
    assert_eq!(status, 303);
    let (status, _) = post(form(
        "slack",
        "https://hooks.slack.com/services/T0/B0/XXXXSECRET",
        "",
    ))
    .await;
    assert_eq!(status, 303);
    let hooks = app.get_json("/sites/paged/notifications").await;
    assert_eq!(hooks[0]["kind"], "email");
    assert_eq!(hooks[0]["emails"], json!(["ops@example.com", "dev@example.com"]));
    assert_eq!(hooks[0]["events"], json!(["build.failed", "deploy.published"]));
    assert_eq!(hooks[1]["kind"], "slack");

    let page = app.dashboard_page(&session, "/sites/paged/settings").await;
    assert!(page.contains("ops@example.com, dev@example.com"), "{page}");
    assert!(page.contains("https://hooks.slack.com/…"), "{page}");
    assert!(
        !page.contains("XXXXSECRET"),
        "a chat URL is shown by its host only"
    );

    let (status, _) = app
        .post_form(
            &session,
            &format!("/sites/paged/notifications/{}/remove", hooks[1]["id"]),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 303);
    let hooks = app.get_json("/sites/paged/notifications").await;
    assert_eq!(hooks.as_array().unwrap().len(), 1, "{hooks}");
}
