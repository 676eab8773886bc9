//! `jamstack schedules …`: add, list, remove.

use crate::args::SchedulesCommand;
use crate::client::Api;
use crate::error::CliResult;
use crate::output::{ago, print_json, print_table, text};
use jamstack_proto::routes;
use serde_json::{Value, json};

pub async fn run(api: &Api, json: bool, command: SchedulesCommand) -> CliResult {
    match command {
        SchedulesCommand::Add {
            site,
            cron,
            time_zone,
            branch,
            title,
        } => {
            let mut body = json!({ "cron": cron });
            for (field, value) in [("time_zone", time_zone), ("branch", branch), ("title", title)] {
                if let Some(value) = value {
                    body[field] = json!(value);
                }
            }
            let schedule = api.post(&routes::api::site_schedules(&site), &body).await?;
            if json {
                print_json(&schedule);
            } else {
                println!(
                    "Made schedule {} of {site} ({} {}); next run {} ({})",
                    text(&schedule, "id"),
                    text(&schedule, "cron"),
                    text(&schedule, "time_zone"),
                    text(&schedule, "next_run_local"),
                    text(&schedule, "next_run_utc"),
                );
            }
        }
        SchedulesCommand::List { site } => {
            let schedules = api.list(&routes::api::site_schedules(&site), None).await?;
            if json {
                print_json(&Value::Array(schedules));
            } else {
                print_table(
                    [
                        "ID",
                        "CRON",
                        "TIME ZONE",
                        "BRANCH",
                        "TITLE",
                        "NEXT RUN",
                        "NEXT RUN (UTC)",
                        "LAST RUN",
                    ],
                    &schedules,
                    |s| {
                        [
                            text(s, "id"),
                            text(s, "cron"),
                            text(s, "time_zone"),
                            match s.get("branch").and_then(Value::as_str) {
                                Some(branch) => branch.to_owned(),
                                None => "(production)".to_owned(),
                            },
                            text(s, "title"),
                            text(s, "next_run_local"),
                            text(s, "next_run_utc"),
                            ago(s, "last_run_at"),
                        ]
                    },
                );
            }
        }
        SchedulesCommand::Remove { site, id } => {
            let removed = api.delete(&routes::api::site_schedule(&site, id)).await?;
            if json {
                print_json(&removed);
            } else {
                println!("Removed schedule {id} of {site}");
            }
        }
    }
    Ok(())
}
