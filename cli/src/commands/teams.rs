//! `jamstack teams …`: a team's settings, its invitations, and the rules
//! that make people members when they sign in through GitHub or an OpenID
//! Connect provider.

use crate::args::TeamsCommand;
use crate::client::Api;
use crate::error::{CliError, CliResult};
use crate::output::{date, print_json, print_table, text};
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
        TeamsCommand::Invite {
            team,
            role,
            github_login,
            email,
            expires_in_days,
        } => {
            let body = json!({
                "role": role,
                "github_login": github_login,
                "email": email,
                "expires_in_days": expires_in_days,
            });
            let made = api.post(&routes::api::team_invitations(&team), &body).await?;
            if json {
                print_json(&made);
            } else {
                println!(
                    "Invitation {} to {team} as {}, until {}. Send this link (it is shown once):",
                    text(&made, "id"),
                    text(&made, "role"),
                    date(&made, "expires_at"),
                );
                println!("{}", text(&made, "link"));
            }
        }
        TeamsCommand::Invitations { team } => {
            let pending = api.get(&routes::api::team_invitations(&team)).await?;
            if json {
                print_json(&pending);
            } else {
                let items = pending.as_array().cloned().unwrap_or_default();
                print_table(["ID", "ROLE", "FOR", "EXPIRES"], &items, |i| {
                    let for_whom = match (text(i, "github_login"), text(i, "email")) {
                        (login, _) if login != "-" => format!("GitHub {login}"),
                        (_, email) if email != "-" => email,
                        _ => "anyone with the link".to_owned(),
                    };
                    [text(i, "id"), text(i, "role"), for_whom, date(i, "expires_at")]
                });
            }
        }
        TeamsCommand::RevokeInvitation { team, id } => {
            api.delete(&routes::api::team_invitation(&team, id)).await?;
            if !json {
                println!("Invitation {id} to {team} revoked.");
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
