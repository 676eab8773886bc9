//! `jamstack deploys …`: list, publish, rollback, lock, unlock, diff.

use crate::args::DeploysCommand;
use crate::client::Api;
use crate::error::{CliError, CliResult, Exit};
use crate::output::{ago, bytes, print_json, print_table, short_sha, text};
use jamstack_proto::routes;
use serde_json::{Value, json};

pub async fn run(api: &Api, json: bool, command: DeploysCommand) -> CliResult {
    match command {
        DeploysCommand::List { site, limit } => {
            let deploys = api.list(&routes::api::site_deploys(&site), Some(limit)).await?;
            if json {
                print_json(&Value::Array(deploys));
            } else {
                print_table(
                    [
                        "ID", "STATE", "LIVE", "CONTEXT", "BRANCH", "COMMIT", "FILES", "SIZE", "CREATED",
                    ],
                    &deploys,
                    |d| {
                        [
                            text(d, "id"),
                            text(d, "state"),
                            if d.get("published").and_then(Value::as_bool) == Some(true) {
                                "live".to_owned()
                            } else {
                                String::new()
                            },
                            text(d, "context"),
                            text(d, "branch"),
                            short_sha(d, "commit_sha"),
                            text(d, "file_count"),
                            d.get("total_size")
                                .and_then(Value::as_u64)
                                .map_or_else(|| "-".to_owned(), bytes),
                            ago(d, "created_at"),
                        ]
                    },
                );
            }
        }
        DeploysCommand::Publish { site, deploy } => {
            let published = publish(api, &site, &deploy).await?;
            report_published(json, &site, &published);
        }
        DeploysCommand::Rollback { site, deploy } => {
            let deploy = match deploy {
                Some(deploy) => deploy,
                None => {
                    let live = api.get(&routes::api::site(&site)).await?;
                    let deploys = api.list(&routes::api::site_deploys(&site), Some(500)).await?;
                    let live_id = live.get("published_deploy_id").and_then(Value::as_str);
                    previous_production_deploy(&deploys, live_id)
                        .map_err(|why| CliError::new(Exit::NotFound, format!("{site}: {why}")))?
                }
            };
            let published = publish(api, &site, &deploy).await?;
            if json {
                print_json(&published);
            } else {
                println!("Rolled {site} back to deploy {}", text(&published, "id"));
            }
        }
        DeploysCommand::Lock { site } => {
            let view = api.post(&routes::api::site_lock(&site), &json!({})).await?;
            if json {
                print_json(&view);
            } else {
                println!(
                    "Locked publishing of {site}: production stays on {} until you publish a deploy \
                     or run `jamstack deploys unlock {site}`",
                    text(&view, "published_deploy_id")
                );
            }
        }
        DeploysCommand::Unlock { site } => {
            let view = api.post(&routes::api::site_unlock(&site), &json!({})).await?;
            if json {
                print_json(&view);
            } else {
                println!("Unlocked publishing of {site}: the next production build goes live");
            }
        }
        DeploysCommand::Diff {
            site,
            deploy,
            against,
        } => {
            let mut path = routes::api::deploy_diff(&site, &deploy);
            if let Some(against) = against {
                path.push_str(&format!("?against={against}"));
            }
            let diff = api.get(&path).await?;
            if json {
                print_json(&diff);
            } else {
                print_diff(&diff);
            }
        }
    }
    Ok(())
}

async fn publish(api: &Api, site: &str, deploy: &str) -> CliResult<Value> {
    api.post(&routes::api::deploy_publish(site, deploy), &json!({}))
        .await
}

fn report_published(json: bool, site: &str, deploy: &Value) {
    if json {
        print_json(deploy);
    } else {
        println!("Published deploy {} of {site}", text(deploy, "id"));
    }
}

/// The production deploy to roll back to: the newest ready one older than
/// the deploy live now. `deploys` are newest first, as the API lists them.
pub fn previous_production_deploy(deploys: &[Value], live: Option<&str>) -> Result<String, String> {
    let live = live.ok_or("nothing is published yet, so there is nothing to roll back from")?;
    let position = deploys
        .iter()
        .position(|d| d.get("id").and_then(Value::as_str) == Some(live))
        .ok_or_else(|| format!("the live deploy {live} is not among the site's deploys"))?;
    deploys[position + 1..]
        .iter()
        .find(|d| {
            d.get("state").and_then(Value::as_str) == Some("ready")
                && d.get("context").and_then(Value::as_str) == Some("production")
        })
        .and_then(|d| d.get("id").and_then(Value::as_str))
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "no ready production deploy is older than the live one ({live}); \
                 name the deploy to publish: `jamstack deploys rollback <site> <deploy>`"
            )
        })
}

fn print_diff(diff: &Value) {
    let against = diff
        .get("against")
        .and_then(Value::as_str)
        .unwrap_or("nothing (no deploy is published)");
    println!("Deploy {} against {against}:", text(diff, "deploy"));
    let list = |field: &str| {
        diff.get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let size = |file: &Value, field: &str| {
        file.get(field)
            .and_then(Value::as_u64)
            .map_or_else(String::new, bytes)
    };
    let (added, changed, removed) = (list("added"), list("changed"), list("removed"));
    for file in &added {
        println!("  + {}  ({})", text(file, "path"), size(file, "size"));
    }
    for file in &changed {
        println!(
            "  ~ {}  ({} -> {})",
            text(file, "path"),
            size(file, "previous_size"),
            size(file, "size")
        );
    }
    for file in &removed {
        println!("  - {}  ({})", text(file, "path"), size(file, "size"));
    }
    println!(
        "{} added, {} changed, {} removed",
        added.len(),
        changed.len(),
        removed.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(id: &str, state: &str, context: &str) -> Value {
        json!({"id": id, "state": state, "context": context})
    }

    #[test]
    fn rollback_picks_the_ready_production_deploy_before_the_live_one() {
        let deploys = [
            deploy("d5", "ready", "production"),
            deploy("d4", "ready", "production"),
            deploy("d3", "ready", "deploy-preview"),
            deploy("d2", "failed", "production"),
            deploy("d1", "ready", "production"),
        ];
        assert_eq!(previous_production_deploy(&deploys, Some("d5")).unwrap(), "d4");
        assert_eq!(previous_production_deploy(&deploys, Some("d4")).unwrap(), "d1");
        assert!(previous_production_deploy(&deploys, Some("d1")).is_err());
        assert!(previous_production_deploy(&deploys, None).is_err());
        assert!(previous_production_deploy(&deploys, Some("gone")).is_err());
    }
}
