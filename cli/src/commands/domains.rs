//! `jamstack domains …`: add, list, verify, remove a site's custom domains.

use crate::args::DomainsCommand;
use crate::client::Api;
use crate::error::CliResult;
use crate::output::{ago, print_json, print_table, text};
use jamstack_proto::routes;
use serde_json::{Value, json};

pub async fn run(api: &Api, json: bool, command: DomainsCommand) -> CliResult {
    match command {
        DomainsCommand::Add {
            site,
            hostname,
            primary,
        } => {
            let domain = api
                .post(
                    &routes::api::site_domains(&site),
                    &json!({ "hostname": hostname, "primary": primary }),
                )
                .await?;
            if json {
                print_json(&domain);
            } else {
                println!(
                    "Added {} to {site} ({})",
                    text(&domain, "hostname"),
                    state(&domain)
                );
                explain(&domain);
            }
        }
        DomainsCommand::List { site } => {
            let domains = api.get(&routes::api::site_domains(&site)).await?;
            if json {
                print_json(&domains);
            } else {
                let domains = domains.as_array().cloned().unwrap_or_default();
                print_table(
                    [
                        "DOMAIN",
                        "PRIMARY",
                        "STATE",
                        "TXT RECORD TO ADD",
                        "LAST CHECKED",
                        "CERTIFICATE",
                    ],
                    &domains,
                    |d| {
                        [
                            text(d, "hostname"),
                            if d["primary"] == true { "yes" } else { "-" }.to_owned(),
                            state(d),
                            if d["verified_at"].is_null() {
                                txt_record(d)
                            } else {
                                "-".to_owned()
                            },
                            ago(d, "last_checked_at"),
                            certificate(d),
                        ]
                    },
                );
                for domain in &domains {
                    if let Some(error) = domain["last_error"].as_str() {
                        println!("{}: {error}", text(domain, "hostname"));
                    }
                    explain_certificate(domain);
                }
            }
        }
        DomainsCommand::Verify { site, hostname } => {
            let domain = api
                .post(&routes::api::site_domain_verify(&site, &hostname), &json!({}))
                .await?;
            if json {
                print_json(&domain);
            } else {
                println!("{}: {}", text(&domain, "hostname"), state(&domain));
                if let Some(error) = domain["last_error"].as_str() {
                    println!("{error}");
                }
            }
        }
        DomainsCommand::Remove { site, hostname } => {
            api.delete(&routes::api::site_domain(&site, &hostname)).await?;
            if !json {
                println!("Removed {hostname} from {site}; it serves nothing from now on");
            }
        }
    }
    Ok(())
}

/// The state in words.
fn state(domain: &Value) -> String {
    text(domain, "state").replace('_', " ")
}

/// The certificate's state in words, with its expiry once it has one;
/// `-` when the controller gets no certificates by ACME.
fn certificate(domain: &Value) -> String {
    let certificate = &domain["certificate"];
    if certificate.is_null() {
        return "-".to_owned();
    }
    let state = text(certificate, "state").replace('_', " ");
    match certificate["not_after"].as_i64() {
        Some(_) => format!(
            "{state}, expires {}",
            crate::output::date(certificate, "not_after")
        ),
        None => state,
    }
}

/// Why the certificate failed, and what to do about it whenever
/// something is to be done (a domain waiting for DNS gets none yet).
fn explain_certificate(domain: &Value) {
    let certificate = &domain["certificate"];
    let hostname = text(domain, "hostname");
    let step = certificate["next_step"].as_str();
    if certificate["state"] == "failed" {
        println!(
            "{hostname}: the certificate could not be issued: {} ({})",
            text(certificate, "error"),
            text(certificate, "error_type")
        );
        if let Some(step) = step {
            println!("  what to do: {step}");
        }
    } else if let Some(step) = step {
        println!("{hostname}: no certificate yet: {step}");
    }
}

/// `NAME = VALUE` of the TXT record that proves the domain.
fn txt_record(domain: &Value) -> String {
    format!(
        "{} = {}",
        text(&domain["txt_record"], "name"),
        text(&domain["txt_record"], "value")
    )
}

/// What to do next, when there is something to do.
fn explain(domain: &Value) {
    if let Some(step) = domain["next_step"].as_str() {
        println!("To prove you control it: {step}");
    }
}
