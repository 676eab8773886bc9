//! `jamstack certificates …`: upload, list, remove (admin token).

use crate::args::CertificatesCommand;
use crate::client::Api;
use crate::error::{CliError, CliResult};
use crate::output::{date, print_json, print_table, text};
use jamstack_proto::routes;
use serde_json::json;

/// Reads a PEM file named on the command line, saying which flag named it.
fn read_pem(flag: &str, path: &std::path::Path) -> CliResult<String> {
    std::fs::read_to_string(path).map_err(|e| CliError::usage(format!("{flag} {}: {e}", path.display())))
}

pub async fn run(api: &Api, json: bool, command: CertificatesCommand) -> CliResult {
    match command {
        CertificatesCommand::Upload { hostname, cert, key } => {
            let body = json!({
                "certificate_pem": read_pem("--cert", &cert)?,
                "key_pem": read_pem("--key", &key)?,
            });
            let stored = api.put(&routes::api::certificate(&hostname), &body).await?;
            if json {
                print_json(&stored);
            } else {
                println!(
                    "Stored the certificate of {} (covers {}; expires {}); every controller serves it within seconds",
                    text(&stored, "hostname"),
                    text(&stored, "names"),
                    date(&stored, "not_after"),
                );
            }
        }
        CertificatesCommand::List => {
            let certificates = api.get(routes::api::certificates()).await?;
            let items = certificates.as_array().cloned().unwrap_or_default();
            if json {
                print_json(&certificates);
            } else {
                print_table(["HOSTNAME", "SOURCE", "NAMES", "EXPIRES"], &items, |c| {
                    [
                        text(c, "hostname"),
                        text(c, "source"),
                        text(c, "names"),
                        date(c, "not_after"),
                    ]
                });
            }
        }
        CertificatesCommand::Remove { hostname } => {
            let removed = api.delete(&routes::api::certificate(&hostname)).await?;
            if json {
                print_json(&removed);
            } else {
                println!("Removed the certificate of {hostname}");
            }
        }
    }
    Ok(())
}
