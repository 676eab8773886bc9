//! `jamstack teams …`: a team's settings.

use crate::args::TeamsCommand;
use crate::client::Api;
use crate::error::CliResult;
use crate::output::{print_json, text};
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
    }
    Ok(())
}
