//! `jamstack notifications …`: add, list, remove, deliveries.

use crate::args::{NotificationKind, NotificationsCommand};
use crate::client::Api;
use crate::error::{CliError, CliResult};
use crate::output::{ago, print_json, print_table, text};
use jamstack_proto::routes;
use serde_json::{Value, json};

pub async fn run(api: &Api, json: bool, command: NotificationsCommand) -> CliResult {
    match command {
        NotificationsCommand::Add {
            site,
            kind,
            to,
            events,
            secret,
        } => {
            let mut body = json!({ "kind": kind.as_str() });
            match (kind, to.as_slice()) {
                (NotificationKind::Email, _) => body["emails"] = json!(to),
                (_, [url]) => body["url"] = json!(url),
                _ => {
                    return Err(CliError::usage(format!(
                        "a {} hook sends to one URL: give --to once",
                        kind.as_str()
                    )));
                }
            }
            if !events.is_empty() {
                body["events"] = json!(events);
            }
            if let Some(secret) = secret {
                body["secret"] = json!(secret);
            }
            let hook = api.post(&routes::api::site_notifications(&site), &body).await?;
            if json {
                print_json(&hook);
            } else {
                println!(
                    "Added {} notification hook {} of {site} to {}",
                    kind.as_str(),
                    text(&hook, "id"),
                    target(&hook)
                );
                if let Some(secret) = hook.get("secret").and_then(Value::as_str) {
                    println!("Its signing secret (shown only now, keep it secret):");
                    println!("{secret}");
                }
            }
        }
        NotificationsCommand::List { site } => {
            let hooks = api.list(&routes::api::site_notifications(&site), None).await?;
            if json {
                print_json(&Value::Array(hooks));
            } else {
                print_table(["ID", "KIND", "TO", "EVENTS", "CREATED"], &hooks, |h| {
                    [
                        text(h, "id"),
                        text(h, "kind"),
                        target(h),
                        joined(h, "events"),
                        ago(h, "created_at"),
                    ]
                });
            }
        }
        NotificationsCommand::Remove { site, id } => {
            api.delete(&routes::api::site_notification(&site, id)).await?;
            if !json {
                println!("Removed notification hook {id} of {site}");
            }
        }
        NotificationsCommand::Deliveries { site, id } => {
            let deliveries = api
                .list(&routes::api::site_notification_deliveries(&site, id), None)
                .await?;
            if json {
                print_json(&Value::Array(deliveries));
            } else {
                print_table(
                    ["EVENT", "STATE", "ATTEMPTS", "STATUS", "ERROR", "CREATED"],
                    &deliveries,
                    |d| {
                        [
                            text(d, "event"),
                            text(d, "state"),
                            text(d, "attempts"),
                            text(d, "last_status"),
                            text(d, "last_error"),
                            ago(d, "created_at"),
                        ]
                    },
                );
            }
        }
    }
    Ok(())
}

/// Where a hook sends: its URL (a chat URL's host only), or its addresses.
fn target(hook: &Value) -> String {
    match hook.get("url").and_then(Value::as_str) {
        Some(url) => url.to_owned(),
        None => joined(hook, "emails"),
    }
}

fn joined(value: &Value, field: &str) -> String {
    match value.get(field).and_then(Value::as_array) {
        Some(items) if !items.is_empty() => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        _ => "-".to_owned(),
    }
}
