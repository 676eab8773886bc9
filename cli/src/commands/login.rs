//! `jamstack login`: checks a token against the controller, then saves the
//! URL and token for later commands.

use crate::client::{Api, normalize_base_url};
use crate::config::{self, SavedLogin};
use crate::error::{CliError, CliResult};
use jamstack_proto::routes;
use std::io::{BufRead, IsTerminal};
use std::path::Path;

pub async fn run(url: Option<String>, token: Option<String>, config_path: &Path) -> CliResult {
    let saved = config::load(config_path)?;
    let url = url.or(saved.url).ok_or_else(|| {
        CliError::usage("which controller? Give its URL: `jamstack login --url https://ci.example.com`")
    })?;
    let url = normalize_base_url(&url)?;
    let token = match token {
        Some(token) => token,
        None => read_token()?,
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(CliError::usage(
            "the token is empty; paste the admin token the controller printed on first start, or an API token",
        ));
    }
    let api = Api::new(url.clone(), token.clone());
    let check = api.request(
        reqwest::Method::GET,
        &format!("{}?per_page=1", routes::api::sites()),
    );
    let answer = check.send().await.map_err(|e| api.unreachable(e))?;
    if answer.status() == reqwest::StatusCode::FORBIDDEN {
        // The controller knows the token; it only may not read sites.
        eprintln!("The token is valid but may not read sites (it lacks the `read` scope); saving it anyway");
    } else if !answer.status().is_success() {
        return Err(crate::client::refusal(answer).await);
    }
    config::save(
        config_path,
        &SavedLogin {
            url: Some(url.clone()),
            token: Some(token),
        },
    )?;
    println!("Logged in to {url}; saved to {}", config_path.display());
    Ok(())
}

/// The token, asked for without echo at a terminal, or read as the first
/// line of stdin when it is piped in (`echo $TOKEN | jamstack login`).
fn read_token() -> CliResult<String> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("API token: ")
            .map_err(|e| CliError::error(format!("reading the token: {e}")));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line)
}
