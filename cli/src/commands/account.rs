//! `jamstack account …`: your dashboard sessions and password, and a
//! team owner's view of a member's.

use crate::args::AccountCommand;
use crate::client::Api;
use crate::error::{CliError, CliResult};
use crate::output::{ago, print_json, print_table, text};
use jamstack_proto::routes;
use serde_json::{Value, json};
use std::io::BufRead;

/// The next line of stdin, without its line ending; `what` names it in
/// the error when stdin ends first.
fn read_line(lines: &mut impl Iterator<Item = std::io::Result<String>>, what: &str) -> CliResult<String> {
    match lines.next() {
        Some(line) => Ok(line?.trim_end_matches(['\r', '\n']).to_owned()),
        None => Err(CliError::usage(format!(
            "stdin ended before {what}; pipe it in, a line each"
        ))),
    }
}

fn print_sessions(json: bool, sessions: &Value) {
    if json {
        print_json(sessions);
        return;
    }
    let rows = sessions.as_array().cloned().unwrap_or_default();
    print_table(["ID", "OPENED"], &rows, |s| [text(s, "id"), ago(s, "created_at")]);
}

pub async fn run(api: &Api, json: bool, command: AccountCommand) -> CliResult {
    match command {
        AccountCommand::Sessions => {
            let sessions = api.get(routes::api::my_sessions()).await?;
            print_sessions(json, &sessions);
        }
        AccountCommand::EndSession { id } => {
            api.delete(&routes::api::my_session(id)).await?;
            if !json {
                println!("Ended session {id}");
            }
        }
        AccountCommand::SetPassword => {
            let stdin = std::io::stdin();
            let mut lines = stdin.lock().lines();
            let current = read_line(&mut lines, "the current password")?;
            let password = read_line(&mut lines, "the new password")?;
            api.put(
                routes::api::my_password(),
                &json!({ "current_password": current, "password": password }),
            )
            .await?;
            if !json {
                println!("Changed your password; every dashboard session of yours has ended");
            }
        }
        AccountCommand::MemberSessions { team, login } => {
            let sessions = api.get(&routes::api::member_sessions(&team, &login)).await?;
            print_sessions(json, &sessions);
        }
        AccountCommand::EndMemberSessions { team, login } => {
            api.delete(&routes::api::member_sessions(&team, &login)).await?;
            if !json {
                println!("Ended every dashboard session of {login}");
            }
        }
        AccountCommand::SetMemberPassword { team, login } => {
            let stdin = std::io::stdin();
            let mut lines = stdin.lock().lines();
            let password = read_line(&mut lines, "the new password")?;
            api.put(
                &routes::api::member_password(&team, &login),
                &json!({ "password": password }),
            )
            .await?;
            if !json {
                println!("Set the password of {login}; their dashboard sessions have ended");
            }
        }
    }
    Ok(())
}
