//! `jamstack build-hooks …`: create, list, revoke.

use crate::args::BuildHooksCommand;
use crate::client::Api;
use crate::error::CliResult;
use crate::output::{ago, print_json, print_table, text};
use jamstack_proto::routes;
use serde_json::{Value, json};

pub async fn run(api: &Api, json: bool, command: BuildHooksCommand) -> CliResult {
    match command {
        BuildHooksCommand::Create {
            site,
            name,
            branch,
            title,
        } => {
            let mut body = json!({ "name": name });
            if let Some(branch) = branch {
                body["trigger_branch"] = json!(branch);
            }
            if let Some(title) = title {
                body["trigger_title"] = json!(title);
            }
            let hook = api.post(&routes::api::site_build_hooks(&site), &body).await?;
            if json {
                print_json(&hook);
            } else {
                println!(
                    "Made build hook {} ({}) of {site}; POST to this URL to build it \
                     (shown only now, keep it secret):",
                    text(&hook, "id"),
                    text(&hook, "name")
                );
                println!("{}", text(&hook, "url"));
            }
        }
        BuildHooksCommand::List { site } => {
            let hooks = api.list(&routes::api::site_build_hooks(&site), None).await?;
            if json {
                print_json(&Value::Array(hooks));
            } else {
                print_table(
                    ["ID", "NAME", "BRANCH", "TITLE", "CREATED", "LAST USED"],
                    &hooks,
                    |h| {
                        [
                            text(h, "id"),
                            text(h, "name"),
                            match h.get("trigger_branch").and_then(Value::as_str) {
                                Some(branch) => branch.to_owned(),
                                None => "(production)".to_owned(),
                            },
                            text(h, "trigger_title"),
                            ago(h, "created_at"),
                            ago(h, "last_used_at"),
                        ]
                    },
                );
            }
        }
        BuildHooksCommand::Revoke { site, id } => {
            api.delete(&routes::api::site_build_hook(&site, id)).await?;
            if !json {
                println!("Revoked build hook {id} of {site}");
            }
        }
    }
    Ok(())
}
