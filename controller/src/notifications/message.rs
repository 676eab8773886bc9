//! What a chat message or an e-mail says about an event: the same facts
//! (site, context, commit, outcome, link) read from the event's stored JSON
//! payload, then laid out for Slack-compatible incoming webhooks
//! ([`slack_message`]) or for a mail reader ([`email_subject`],
//! [`email_text`], [`email_html`]).
//!
//! Formatting happens when a delivery is sent, from the one payload every
//! hook of the event shares, so the outbox stays one kind of row. Texts
//! that come from a repository (commit messages, build errors) are cut to
//! one bounded line and escaped for where they are shown: a commit message
//! cannot mention `@channel` in Slack or inject markup in an e-mail.

use serde_json::{Value, json};

/// The longest commit message line a message shows, in characters.
const MAX_COMMIT_TITLE: usize = 100;
/// The longest build error a message shows, in characters.
const MAX_ERROR: usize = 300;

/// What every message about one event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub site: String,
    /// `production`, `deploy preview #12` or `branch deploy of feature`.
    pub context: String,
    /// The short SHA, then the commit message's first line when known.
    pub commit: Option<String>,
    /// What happened, e.g. `Build #7 failed: exit code 2`.
    pub outcome: String,
    /// Good news (`Some(true)`), bad news (`Some(false)`), or neither.
    pub success: Option<bool>,
    /// Where to look: the deploy when there is one, else the build.
    pub link: Option<String>,
    /// The build's page with its log, when a build is involved.
    pub build_link: Option<String>,
}

/// Reads the facts of `event` from its payload (`{"event", "occurred_at",
/// "data"}`, as `notifications::queue` writes it). Missing fields leave
/// their fact out rather than fail: a delivery queued by an older
/// controller still sends.
pub fn facts(event: &str, payload: &Value) -> Facts {
    let data = &payload["data"];
    let site = text(&data["site"]["name"]).unwrap_or("a site").to_owned();
    let build = &data["build"];
    let deploy = &data["deploy"];
    // A build's event is about the build; a deploy's about the deploy.
    let source = if build.is_object() { build } else { deploy };
    let context = context_of(source);
    let commit = text(&source["commit_sha"]).map(|sha| {
        let short: String = sha.chars().take(7).collect();
        match text(&source["commit_message"]).and_then(first_line) {
            Some(title) => format!("{short} {}", bounded(title, MAX_COMMIT_TITLE)),
            None => short,
        }
    });
    let build_id = build["id"].as_i64();
    let build_name = build_id.map_or("Build".to_owned(), |id| format!("Build #{id}"));
    let deploy_id = text(&deploy["id"]).or_else(|| text(&build["deploy_id"]));
    let (outcome, success) = match event {
        "build.started" => (format!("{build_name} started"), None),
        "build.succeeded" => (format!("{build_name} succeeded"), Some(true)),
        "build.failed" => {
            let why = text(&build["error"])
                .map(|error| bounded(error.lines().next().unwrap_or(error), MAX_ERROR))
                .or_else(|| {
                    build["exit_code"]
                        .as_i64()
                        .map(|code| format!("exit code {code}"))
                });
            match why {
                Some(why) => (format!("{build_name} failed: {why}"), Some(false)),
                None => (format!("{build_name} failed"), Some(false)),
            }
        }
        "deploy.published" => (
            deploy_id.map_or("A deploy was published".to_owned(), |id| {
                format!("Deploy {id} published")
            }),
            Some(true),
        ),
        "deploy.rolled_back" => (
            deploy_id.map_or("Rolled back".to_owned(), |id| {
                format!("Rolled back to deploy {id}")
            }),
            None,
        ),
        "deploy.locked" => ("Publishing locked: new builds no longer go live".to_owned(), None),
        "deploy.unlocked" => ("Publishing unlocked: new builds go live again".to_owned(), None),
        "certificate.failed" => {
            let certificate = &data["certificate"];
            let hostname = text(&certificate["hostname"]).unwrap_or("a hostname");
            let why = text(&certificate["detail"])
                .map(|detail| bounded(detail.lines().next().unwrap_or(detail), MAX_ERROR))
                .unwrap_or_else(|| "no reason given".to_owned());
            (
                format!("Renewing the certificate of {hostname} failed: {why}"),
                Some(false),
            )
        }
        "audit" => {
            let audit = &data["audit"];
            let field = |name: &str| text(&audit[name]).map(|t| bounded(t, MAX_ERROR));
            (
                format!(
                    "{} did {} on {}",
                    field("actor").unwrap_or_else(|| "someone".to_owned()),
                    field("action").unwrap_or_else(|| "a change".to_owned()),
                    field("target").unwrap_or_else(|| "the site".to_owned()),
                ),
                None,
            )
        }
        other => (other.to_owned(), None),
    };
    let build_link = text(&build["url"]).map(str::to_owned);
    let link = text(&deploy["permalink"])
        .map(str::to_owned)
        .or_else(|| build_link.clone())
        .or_else(|| text(&data["site"]["url"]).map(str::to_owned));
    Facts {
        site,
        context,
        commit,
        outcome,
        success,
        link,
        build_link,
    }
}

/// `production`, `deploy preview #12`, `branch deploy of feature`.
fn context_of(source: &Value) -> String {
    match text(&source["context"]) {
        Some("deploy-preview") => match source["pr_number"].as_i64() {
            Some(pr) => format!("deploy preview #{pr}"),
            None => "deploy preview".to_owned(),
        },
        Some("branch-deploy") => match text(&source["branch"]) {
            Some(branch) => format!("branch deploy of {branch}"),
            None => "branch deploy".to_owned(),
        },
        // Publishing, locking and rolling back are about production.
        _ => "production".to_owned(),
    }
}

fn text(value: &Value) -> Option<&str> {
    value.as_str().filter(|text| !text.trim().is_empty())
}

fn first_line(message: &str) -> Option<&str> {
    message.lines().map(str::trim).find(|line| !line.is_empty())
}

/// `text` cut to `max` characters, with `…` when cut.
fn bounded(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let mut cut: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        cut.push('…');
    }
    cut
}

/// The one line that says it all, for notifications that show only one.
fn headline(facts: &Facts) -> String {
    format!("{}: {} ({})", facts.site, facts.outcome, facts.context)
}

/// Escapes what Slack's mrkdwn reads as control: `&`, `<` and `>` (so
/// `<!channel>` or a forged link in a commit message stays text).
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A message in the shape of Slack's incoming webhooks: `text` for
/// notifications and clients that show nothing else, and one attachment
/// with a colour, a linked title and the facts as fields. Attachments,
/// unlike blocks, are read by Slack, Mattermost, Rocket.Chat and Discord's
/// `/slack` endpoint alike.
pub fn slack_message(facts: &Facts) -> Value {
    let headline = slack_escape(&headline(facts));
    let text = match &facts.link {
        Some(link) => format!("{headline} <{}|open>", slack_escape(link)),
        None => headline.clone(),
    };
    let color = match facts.success {
        Some(true) => "good",
        Some(false) => "danger",
        None => "#439fe0",
    };
    let mut fields = vec![
        json!({ "title": "Site", "value": slack_escape(&facts.site), "short": true }),
        json!({ "title": "Context", "value": slack_escape(&facts.context), "short": true }),
    ];
    if let Some(commit) = &facts.commit {
        fields.push(json!({ "title": "Commit", "value": slack_escape(commit), "short": false }));
    }
    fields.push(json!({ "title": "Outcome", "value": slack_escape(&facts.outcome), "short": false }));
    if let Some(build_link) = facts
        .build_link
        .as_ref()
        .filter(|b| Some(*b) != facts.link.as_ref())
    {
        fields.push(json!({
            "title": "Build log",
            "value": format!("<{}|build log>", slack_escape(build_link)),
            "short": false,
        }));
    }
    let mut attachment = json!({
        "fallback": headline,
        "color": color,
        "title": slack_escape(&format!("{}: {}", facts.site, facts.outcome)),
        "fields": fields,
    });
    if let Some(link) = &facts.link {
        attachment["title_link"] = json!(link);
    }
    json!({ "text": text, "attachments": [attachment] })
}

/// `[blog] Build #7 failed: exit code 2 (production)`: one line, bounded.
pub fn email_subject(facts: &Facts) -> String {
    let subject = format!("[{}] {} ({})", facts.site, facts.outcome, facts.context);
    bounded(&subject.replace(['\r', '\n'], " "), 200)
}

/// The facts, one per line, for a plain-text mail reader.
pub fn email_text(facts: &Facts) -> String {
    let mut body = format!("{}.\n\n", facts.outcome);
    for (label, value) in rows(facts) {
        body.push_str(&format!("{label:<10} {value}\n"));
    }
    body.push_str("\nSent by jamstack: this address is on a notification hook of the site.\n");
    body
}

/// The same facts as [`email_text`], as a small HTML table.
pub fn email_html(facts: &Facts) -> String {
    let mut table = String::new();
    for (label, value) in rows(facts) {
        let shown = if value.starts_with("http://") || value.starts_with("https://") {
            format!("<a href=\"{0}\">{0}</a>", html_escape(value))
        } else {
            html_escape(value)
        };
        table.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{shown}</td></tr>\n",
            html_escape(label.trim_end_matches(':'))
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html><body>\n<p><strong>{}</strong></p>\n<table>\n{table}</table>\n\
         <p><small>Sent by jamstack: this address is on a notification hook of the site.</small></p>\n\
         </body></html>\n",
        html_escape(&facts.outcome)
    )
}

/// The labelled facts both e-mail bodies show, in order.
fn rows(facts: &Facts) -> Vec<(&'static str, &str)> {
    let mut rows = vec![
        ("Site:", facts.site.as_str()),
        ("Context:", facts.context.as_str()),
    ];
    if let Some(commit) = &facts.commit {
        rows.push(("Commit:", commit));
    }
    rows.push(("Outcome:", &facts.outcome));
    if let Some(link) = &facts.link {
        rows.push(("Link:", link));
    }
    if let Some(build_link) = facts
        .build_link
        .as_ref()
        .filter(|b| Some(*b) != facts.link.as_ref())
    {
        rows.push(("Build log:", build_link));
    }
    rows
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_payload(event: &str, build: Value) -> Value {
        json!({
            "event": event,
            "occurred_at": 1_700_000_000_000_i64,
            "data": {
                "site": { "id": 1, "name": "blog", "url": "http://blog.localhost:8080/" },
                "build": build,
            },
        })
    }

    fn production_build() -> Value {
        json!({
            "id": 7,
            "context": "production",
            "branch": "main",
            "commit_sha": "0123456789abcdef0123456789abcdef01234567",
            "commit_message": "Fix the header\n\nIt overlapped the menu.",
            "url": "http://deploy.example.com/builds/7",
        })
    }

    fn deploy_payload(event: &str) -> Value {
        json!({
            "event": event,
            "occurred_at": 1_700_000_000_000_i64,
            "data": {
                "site": { "id": 1, "name": "blog", "url": "http://blog.localhost:8080/" },
                "deploy": {
                    "id": "d0c",
                    "permalink": "http://d0c--blog.localhost:8080/",
                    "context": "production",
                    "commit_sha": "fedcba9876543210fedcba9876543210fedcba98",
                    "commit_message": "Write the about page",
                },
                "locked": event == "deploy.locked",
            },
        })
    }

    #[test]
    fn a_started_build_says_site_context_commit_and_links_its_build() {
        let facts = facts(
            "build.started",
            &build_payload("build.started", production_build()),
        );
        assert_eq!(
            facts,
            Facts {
                site: "blog".into(),
                context: "production".into(),
                commit: Some("0123456 Fix the header".into()),
                outcome: "Build #7 started".into(),
                success: None,
                link: Some("http://deploy.example.com/builds/7".into()),
                build_link: Some("http://deploy.example.com/builds/7".into()),
            }
        );
    }

    #[test]
    fn a_succeeded_preview_links_its_deploy_and_its_build_log() {
        let mut build = production_build();
        build["context"] = json!("deploy-preview");
        build["pr_number"] = json!(12);
        build["deploy_id"] = json!("d1");
        let mut payload = build_payload("build.succeeded", build);
        payload["data"]["deploy"] = json!({ "id": "d1", "permalink": "http://d1--blog.localhost:8080/" });
        let facts = facts("build.succeeded", &payload);
        assert_eq!(facts.context, "deploy preview #12");
        assert_eq!(facts.outcome, "Build #7 succeeded");
        assert_eq!(facts.success, Some(true));
        assert_eq!(facts.link.as_deref(), Some("http://d1--blog.localhost:8080/"));

        let slack = slack_message(&facts);
        assert_eq!(
            slack["text"],
            "blog: Build #7 succeeded (deploy preview #12) <http://d1--blog.localhost:8080/|open>"
        );
        let attachment = &slack["attachments"][0];
        assert_eq!(attachment["color"], "good");
        assert_eq!(attachment["title_link"], "http://d1--blog.localhost:8080/");
        let fields: Vec<(String, String)> = attachment["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["title"].as_str().unwrap().into(),
                    f["value"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            fields,
            [
                ("Site".into(), "blog".into()),
                ("Context".into(), "deploy preview #12".into()),
                ("Commit".into(), "0123456 Fix the header".into()),
                ("Outcome".into(), "Build #7 succeeded".into()),
                (
                    "Build log".into(),
                    "<http://deploy.example.com/builds/7|build log>".into()
                ),
            ]
        );

        assert_eq!(
            email_subject(&facts),
            "[blog] Build #7 succeeded (deploy preview #12)"
        );
        assert_eq!(
            email_text(&facts),
            "Build #7 succeeded.\n\n\
             Site:      blog\n\
             Context:   deploy preview #12\n\
             Commit:    0123456 Fix the header\n\
             Outcome:   Build #7 succeeded\n\
             Link:      http://d1--blog.localhost:8080/\n\
             Build log: http://deploy.example.com/builds/7\n\
             \nSent by jamstack: this address is on a notification hook of the site.\n"
        );
        let html = email_html(&facts);
        assert!(
            html.contains("<a href=\"http://d1--blog.localhost:8080/\">"),
            "{html}"
        );
    }

    #[test]
    fn a_failed_branch_build_says_why_in_red() {
        let mut build = production_build();
        build["context"] = json!("branch-deploy");
        build["branch"] = json!("feature/menu");
        build["error"] = json!("the build command exited with 2\nmore detail");
        build["exit_code"] = json!(2);
        let facts = facts("build.failed", &build_payload("build.failed", build));
        assert_eq!(facts.context, "branch deploy of feature/menu");
        assert_eq!(facts.outcome, "Build #7 failed: the build command exited with 2");
        assert_eq!(slack_message(&facts)["attachments"][0]["color"], "danger");
        assert_eq!(
            email_subject(&facts),
            "[blog] Build #7 failed: the build command exited with 2 (branch deploy of feature/menu)"
        );

        // Without an error text, the exit code says it.
        let mut build = production_build();
        build["exit_code"] = json!(2);
        let facts = super::facts("build.failed", &build_payload("build.failed", build));
        assert_eq!(facts.outcome, "Build #7 failed: exit code 2");
    }

    #[test]
    fn every_deploy_event_names_its_change_and_the_deploy_commit() {
        for (event, outcome, success) in [
            ("deploy.published", "Deploy d0c published", Some(true)),
            ("deploy.rolled_back", "Rolled back to deploy d0c", None),
            (
                "deploy.locked",
                "Publishing locked: new builds no longer go live",
                None,
            ),
            (
                "deploy.unlocked",
                "Publishing unlocked: new builds go live again",
                None,
            ),
        ] {
            let facts = facts(event, &deploy_payload(event));
            assert_eq!(facts.outcome, outcome, "{event}");
            assert_eq!(facts.success, success, "{event}");
            assert_eq!(facts.context, "production", "{event}");
            assert_eq!(
                facts.commit.as_deref(),
                Some("fedcba9 Write the about page"),
                "{event}"
            );
            assert_eq!(facts.link.as_deref(), Some("http://d0c--blog.localhost:8080/"));
            assert_eq!(email_subject(&facts), format!("[blog] {outcome} (production)"));
            let text = email_text(&facts);
            assert!(
                text.contains("Commit:    fedcba9 Write the about page\n"),
                "{text}"
            );
            assert!(!text.contains("Build log:"), "no build, no build log: {text}");
            let slack = slack_message(&facts);
            assert_eq!(
                slack["text"],
                format!("blog: {outcome} (production) <http://d0c--blog.localhost:8080/|open>")
            );
        }
        // A lock without a deploy still names the site and links it.
        let mut payload = deploy_payload("deploy.locked");
        payload["data"]["deploy"] = Value::Null;
        let facts = facts("deploy.locked", &payload);
        assert_eq!(facts.commit, None);
        assert_eq!(facts.link.as_deref(), Some("http://blog.localhost:8080/"));
    }

    #[test]
    fn a_commit_message_cannot_ping_a_channel_or_inject_markup() {
        let mut build = production_build();
        build["commit_message"] = json!(format!("<!channel> <b>hi</b> & {}", "x".repeat(200)));
        let facts = facts("build.started", &build_payload("build.started", build));
        let commit = facts.commit.clone().unwrap();
        assert!(commit.ends_with('…'), "cut: {commit}");
        assert_eq!(commit.chars().count(), 8 + MAX_COMMIT_TITLE + 1);

        let slack = slack_message(&facts).to_string();
        assert!(!slack.contains("<!channel>"), "{slack}");
        assert!(
            slack.contains("&lt;!channel&gt; &lt;b&gt;hi&lt;/b&gt; &amp;"),
            "{slack}"
        );
        let html = email_html(&facts);
        assert!(!html.contains("<b>hi</b>"), "{html}");
        assert!(html.contains("&lt;b&gt;hi&lt;/b&gt;"), "{html}");
    }
}
