//! `jamstack`: the command-line client of a jamstack controller.
//!
//! It talks to the controller's REST API only ([`client`]), never to its
//! database or blob store, so it works from anywhere the API is reachable
//! and can do nothing a token could not. Commands live by resource in
//! [`commands`]; every failure is a [`error::CliError`] carrying the exit
//! code scripts rely on ([`args::EXIT_CODES`]).

mod args;
mod client;
mod commands;
mod config;
mod error;
mod output;

use args::{Cli, Command};
use clap::{CommandFactory, Parser};
use client::{Api, normalize_base_url};
use error::{CliError, CliResult, Exit};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::from(Exit::Error as u8);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error.message);
            std::process::ExitCode::from(error.exit as u8)
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    let global = cli.global;
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "jamstack", &mut std::io::stdout());
            Ok(())
        }
        Command::Login => {
            let path = config::default_config_path()?;
            commands::login::run(global.url, global.token, &path).await
        }
        Command::Sites(command) => commands::sites::run(&connect(&global)?, global.json, command).await,
        Command::Builds(command) => commands::builds::run(&connect(&global)?, global.json, command).await,
        Command::Deploys(command) => commands::deploys::run(&connect(&global)?, global.json, command).await,
        Command::BuildHooks(command) => {
            commands::build_hooks::run(&connect(&global)?, global.json, command).await
        }
        Command::Domains(command) => commands::domains::run(&connect(&global)?, global.json, command).await,
        Command::Schedules(command) => {
            commands::schedules::run(&connect(&global)?, global.json, command).await
        }
        Command::Notifications(command) => {
            commands::notifications::run(&connect(&global)?, global.json, command).await
        }
        Command::Certificates(command) => {
            commands::certificates::run(&connect(&global)?, global.json, command).await
        }
        Command::Teams(command) => commands::teams::run(&connect(&global)?, global.json, command).await,
        Command::Account(command) => commands::account::run(&connect(&global)?, global.json, command).await,
        Command::Deploy(args) => commands::deploy_dir::run(&connect(&global)?, global.json, args).await,
    }
}

/// The API client for the URL and token given on the command line or in the
/// environment, else the saved login.
fn connect(global: &args::GlobalArgs) -> CliResult<Api> {
    let saved = match (&global.url, &global.token) {
        (Some(_), Some(_)) => config::SavedLogin::default(),
        _ => config::load(&config::default_config_path()?)?,
    };
    let url = global.url.clone().or(saved.url).ok_or_else(|| {
        CliError::usage(
            "no controller URL: run `jamstack login --url https://ci.example.com`, or pass --url or set JAMSTACK_URL",
        )
    })?;
    let token = global.token.clone().or(saved.token).ok_or_else(|| {
        CliError::new(
            Exit::NotAuthorised,
            "no API token: run `jamstack login`, or pass --token or set JAMSTACK_TOKEN",
        )
    })?;
    Ok(Api::new(normalize_base_url(&url)?, token))
}
