//! `jamstack teams …`: a team's settings, and the rules that make people
//! members when they sign in through GitHub or an OpenID Connect provider.

use crate::args::TeamsCommand;
use crate::client::Api;
use crate::error::{CliError, CliResult};
use crate::output::{print_json, text};
use jamstack_proto::routes;
use serde_json::{Value, json};

pub async fn run(api: &Api, json: bool, command: TeamsCommand) -> CliResult {
    match command {
        TeamsCommand::Settings {
            team,
            max_concurrent_builds,
            auto_join,
            no_auto_join,
        } => {
            let path = routes::api::team_settings(&team);
            let rules = if no_auto_join {
                Some(Vec::new())
            } else if auto_join.is_empty() {
                None
            } else {
                Some(
                    auto_join
                        .iter()
                        .map(|rule| parse_rule(rule))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            };
            let settings = match (max_concurrent_builds, rules) {
                (None, None) => api.get(&path).await?,
                (limit, rules) => {
                    // A change names the limit; keep the one in force when
                    // only the rules change.
                    let limit = match limit {
                        Some(limit) => json!(limit),
                        None => api.get(&path).await?["max_concurrent_builds"].clone(),
                    };
                    let mut change = json!({ "max_concurrent_builds": limit });
                    if let Some(rules) = rules {
                        change["auto_memberships"] = Value::Array(rules);
                    }
                    api.put(&path, &change).await?
                }
            };
            if json {
                print_json(&settings);
            } else {
                print_settings(&team, &settings);
            }
        }
    }
    Ok(())
}

/// `SOURCE=ROLE` as the API takes a rule; the controller checks both.
fn parse_rule(rule: &str) -> Result<Value, CliError> {
    match rule.rsplit_once('=') {
        Some((source, role)) if !source.trim().is_empty() && !role.trim().is_empty() => {
            Ok(json!({ "source": source.trim(), "role": role.trim() }))
        }
        _ => Err(CliError::usage(format!(
            "--auto-join `{rule}` is not SOURCE=ROLE; give e.g. --auto-join oidc-group:web=developer"
        ))),
    }
}

fn print_settings(team: &str, settings: &Value) {
    let limit = text(settings, "max_concurrent_builds");
    let shown = if limit == "0" {
        "no limit".to_owned()
    } else {
        limit
    };
    println!("{team}: max_concurrent_builds {shown}");
    let rules = settings["auto_memberships"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if rules.is_empty() {
        println!("{team}: no automatic memberships");
    }
    for rule in rules {
        println!(
            "{team}: auto-join {} as {}",
            text(&rule, "source"),
            text(&rule, "role")
        );
    }
}
