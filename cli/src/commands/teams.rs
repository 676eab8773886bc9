//! `jamstack teams …`: a team's settings and its invitations.

use crate::args::TeamsCommand;
use crate::client::Api;
use crate::error::CliResult;
use crate::output::{date, print_json, print_table, text};
use jamstack_proto::routes;
use serde_json::json;

pub async fn run(api: &Api, json: bool, command: TeamsCommand) -> CliResult {
    match command {
        TeamsCommand::Settings {
            team,
            max_concurrent_builds,
        } => {
            let path = routes::api::team_settings(&team);
            let settings = match max_concurrent_builds {
                Some(limit) => api.put(&path, &json!({ "max_concurrent_builds": limit })).await?,
                None => api.get(&path).await?,
            };
            if json {
                print_json(&settings);
            } else {
                let limit = text(&settings, "max_concurrent_builds");
                let shown = if limit == "0" {
                    "no limit".to_owned()
                } else {
                    limit
                };
                println!("{team}: max_concurrent_builds {shown}");
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
