//! `jamstack sites …`: list, show, create, update, settings, env, protect,
//! share-link, identity.

use crate::args::{
    CreateSiteArgs, EnvCommand, IdentityArgs, ProtectArgs, ShareLinkArgs, SitesCommand, UpdateSiteArgs,
};
use crate::client::Api;
use crate::error::{CliError, CliResult};
use crate::output::{ago, print_fields, print_json, print_table, text};
use jamstack_proto::routes;
use serde_json::{Map, Value, json};

pub async fn run(api: &Api, json: bool, command: SitesCommand) -> CliResult {
    match command {
        SitesCommand::List => {
            let sites = api.list(routes::api::sites(), None).await?;
            if json {
                print_json(&Value::Array(sites));
            } else {
                print_table(
                    ["NAME", "URL", "REPOSITORY", "BRANCH", "PUBLISHED", "LOCKED"],
                    &sites,
                    |s| {
                        [
                            text(s, "name"),
                            text(s, "url"),
                            repository(s),
                            text(s, "production_branch"),
                            text(s, "published_deploy_id"),
                            yes_no(s, "publish_locked"),
                        ]
                    },
                );
            }
        }
        SitesCommand::Show { site } => {
            let site = api.get(&routes::api::site(&site)).await?;
            if json {
                print_json(&site);
            } else {
                print_site(&site);
            }
        }
        SitesCommand::Create(args) => create(api, json, args).await?,
        SitesCommand::Update(args) => update(api, json, args).await?,
        SitesCommand::Settings { site, set } => settings(api, json, &site, &set).await?,
        SitesCommand::Env { site, command } => env(api, json, &site, command).await?,
        SitesCommand::Protect(args) => protect(api, json, args).await?,
        SitesCommand::ShareLink(args) => share_link(api, json, args).await?,
        SitesCommand::Https(args) => https(api, json, args).await?,
        SitesCommand::Identity(args) => identity(api, json, args).await?,
    }
    Ok(())
}

fn repository(site: &Value) -> String {
    site.get("github_repo")
        .and_then(Value::as_str)
        .map_or_else(|| text(site, "repo_url"), str::to_owned)
}

fn yes_no(value: &Value, field: &str) -> String {
    match value.get(field).and_then(Value::as_bool) {
        Some(true) => "yes".to_owned(),
        Some(false) => "no".to_owned(),
        None => "-".to_owned(),
    }
}

pub fn print_site(site: &Value) {
    print_fields(&[
        ("name", text(site, "name")),
        ("url", text(site, "url")),
        ("repository", text(site, "repo_url")),
        ("github repository", text(site, "github_repo")),
        ("production branch", text(site, "production_branch")),
        ("published deploy", text(site, "published_deploy_id")),
        ("publishing locked", yes_no(site, "publish_locked")),
        ("branch deploys", yes_no(site, "branch_deploys")),
        ("deploy previews", yes_no(site, "deploy_previews")),
        ("created", ago(site, "created_at")),
    ]);
}

async fn create(api: &Api, json: bool, args: CreateSiteArgs) -> CliResult {
    let mut body = json!({
        "name": args.name,
        "branch_deploys": args.branch_deploys,
        "deploy_previews": !args.no_deploy_previews,
    });
    if let Some(branch) = args.production_branch {
        body["production_branch"] = json!(branch);
    }
    if let Some(url) = args.repo_url {
        body["repo_url"] = json!(url);
    }
    if let Some(repo) = args.github_repo {
        body["github_repo"] = json!(repo);
    }
    if let Some(id) = args.github_installation_id {
        body["github_installation_id"] = json!(id);
    }
    if let Some(variable) = args.github_token_env {
        let token = std::env::var(&variable).map_err(|_| {
            CliError::usage(format!(
                "--github-token-env names {variable}, which is not set; export the token in it first"
            ))
        })?;
        body["github_token"] = json!(token);
    }
    let site = api.post(routes::api::sites(), &body).await?;
    if json {
        print_json(&site);
        return Ok(());
    }
    println!("Created site {} at {}", text(&site, "name"), text(&site, "url"));
    if site.get("repo_url").is_none_or(Value::is_null) {
        let name = text(&site, "name");
        println!(
            "It has no repository: deploy a folder with `jamstack deploy <dir> --site {name} --prod`, \
             or connect one with `jamstack sites update {name} --repo-url <url>`"
        );
    }
    if let Some(hook) = site.get("github_webhook") {
        match hook.get("error").and_then(Value::as_str) {
            Some(error) => eprintln!("The repository's webhook is not registered: {error}"),
            None => println!("Registered the repository's webhook ({})", text(hook, "url")),
        }
    }
    Ok(())
}

async fn update(api: &Api, json: bool, args: UpdateSiteArgs) -> CliResult {
    let mut body = Map::new();
    if let Some(url) = args.repo_url {
        body.insert("repo_url".to_owned(), json!(url));
    }
    if let Some(repo) = args.github_repo {
        body.insert("github_repo".to_owned(), json!(repo));
    }
    if let Some(branch) = args.production_branch {
        body.insert("production_branch".to_owned(), json!(branch));
    }
    if body.is_empty() {
        return Err(CliError::usage(
            "nothing to change: give --repo-url, --github-repo or --production-branch",
        ));
    }
    let site = api
        .patch(&routes::api::site(&args.site), &Value::Object(body))
        .await?;
    if json {
        print_json(&site);
    } else {
        print_site(&site);
    }
    Ok(())
}

/// Which API resource a setting lives in, and how its value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SettingKind {
    SiteText,
    SiteBool,
    SiteInteger,
    SiteOptionalInteger,
    SiteList,
    LimitInteger,
    LimitNumber,
    PathText,
    PathList,
}

const SETTINGS: &[(&str, SettingKind)] = &[
    ("production_branch", SettingKind::SiteText),
    ("branch_deploys", SettingKind::SiteBool),
    ("deploy_previews", SettingKind::SiteBool),
    ("cancel_superseded", SettingKind::SiteBool),
    ("max_concurrent_builds", SettingKind::SiteInteger),
    ("github_installation_id", SettingKind::SiteOptionalInteger),
    ("required_labels", SettingKind::SiteList),
    ("timeout_seconds", SettingKind::LimitInteger),
    ("memory_mib", SettingKind::LimitInteger),
    ("pids", SettingKind::LimitInteger),
    ("cpus", SettingKind::LimitNumber),
    ("base", SettingKind::PathText),
    ("watch_paths", SettingKind::PathList),
];

/// The site changes and build-limit changes `--set` asks for.
#[derive(Debug, Default, PartialEq)]
pub struct SettingChanges {
    pub site: Map<String, Value>,
    pub limits: Map<String, Value>,
    /// Changes to where the site lives in its repository.
    pub paths: Map<String, Value>,
}

/// Reads `key=value` pairs into the API bodies they change.
pub fn parse_settings(pairs: &[String]) -> CliResult<SettingChanges> {
    let mut changes = SettingChanges::default();
    for pair in pairs {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            CliError::usage(format!(
                "--set {pair}: write it as key=value, e.g. --set production_branch=main"
            ))
        })?;
        let key = key.trim();
        let value = value.trim();
        let Some(&(_, kind)) = SETTINGS.iter().find(|(name, _)| *name == key) else {
            let known: Vec<_> = SETTINGS.iter().map(|(name, _)| *name).collect();
            return Err(CliError::usage(format!(
                "--set {pair}: there is no setting `{key}`; the settings are {}",
                known.join(", ")
            )));
        };
        let bad = |expected: &str| CliError::usage(format!("--set {pair}: {key} takes {expected}"));
        let parsed = match kind {
            SettingKind::SiteText | SettingKind::PathText => json!(value),
            SettingKind::SiteBool => match value {
                "true" | "yes" | "on" => json!(true),
                "false" | "no" | "off" => json!(false),
                _ => return Err(bad("true or false")),
            },
            SettingKind::SiteInteger => json!(value.parse::<i64>().map_err(|_| bad("a whole number"))?),
            SettingKind::SiteOptionalInteger | SettingKind::LimitInteger
                if matches!(value, "default" | "none" | "null") =>
            {
                Value::Null
            }
            SettingKind::SiteOptionalInteger | SettingKind::LimitInteger => json!(
                value
                    .parse::<i64>()
                    .map_err(|_| bad("a whole number, or `default`"))?
            ),
            SettingKind::LimitNumber if matches!(value, "default" | "none" | "null") => Value::Null,
            SettingKind::LimitNumber => json!(
                value
                    .parse::<f64>()
                    .map_err(|_| bad("a number such as 1.5, or `default`"))?
            ),
            SettingKind::SiteList | SettingKind::PathList => json!(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
            ),
        };
        let target = match kind {
            SettingKind::LimitInteger | SettingKind::LimitNumber => &mut changes.limits,
            SettingKind::PathText | SettingKind::PathList => &mut changes.paths,
            _ => &mut changes.site,
        };
        target.insert(key.to_owned(), parsed);
    }
    Ok(changes)
}

async fn settings(api: &Api, json: bool, site: &str, set: &[String]) -> CliResult {
    let changes = parse_settings(set)?;
    let limits_path = routes::api::site_build_settings(site);
    let site_path = routes::api::site(site);
    let site_view = if changes.site.is_empty() {
        api.get(&site_path).await?
    } else {
        api.patch(&site_path, &Value::Object(changes.site)).await?
    };
    let mut limits = api.get(&limits_path).await?;
    if !changes.limits.is_empty() {
        // The API replaces every limit at once: send the ones kept too.
        let mut body = Map::new();
        for field in ["timeout_seconds", "memory_mib", "cpus", "pids"] {
            let value = changes
                .limits
                .get(field)
                .cloned()
                .unwrap_or_else(|| limits.get(field).cloned().unwrap_or(Value::Null));
            body.insert(field.to_owned(), value);
        }
        limits = api.put(&limits_path, &Value::Object(body)).await?;
    }
    let paths_path = routes::api::site_build_paths(site);
    let mut paths = api.get(&paths_path).await?;
    if !changes.paths.is_empty() {
        // The API replaces both at once: send the one kept too.
        let mut body = Map::new();
        for field in ["base", "watch_paths"] {
            let value = changes
                .paths
                .get(field)
                .cloned()
                .unwrap_or_else(|| paths.get(field).cloned().unwrap_or(Value::Null));
            body.insert(field.to_owned(), value);
        }
        paths = api.put(&paths_path, &Value::Object(body)).await?;
    }
    if json {
        print_json(&json!({"site": site_view, "build_settings": limits, "build_paths": paths}));
        return Ok(());
    }
    let default = |field: &str| match limits.get(field) {
        None | Some(Value::Null) => "runner's default".to_owned(),
        Some(_) => text(&limits, field),
    };
    print_fields(&[
        ("production_branch", text(&site_view, "production_branch")),
        ("branch_deploys", text(&site_view, "branch_deploys")),
        ("deploy_previews", text(&site_view, "deploy_previews")),
        ("cancel_superseded", text(&site_view, "cancel_superseded")),
        ("max_concurrent_builds", text(&site_view, "max_concurrent_builds")),
        (
            "github_installation_id",
            text(&site_view, "github_installation_id"),
        ),
        ("required_labels", text(&site_view, "required_labels")),
        ("timeout_seconds", default("timeout_seconds")),
        ("memory_mib", default("memory_mib")),
        ("cpus", default("cpus")),
        ("pids", default("pids")),
        ("base", text(&paths, "base")),
        ("watch_paths", text(&paths, "watch_paths")),
    ]);
    Ok(())
}

async fn env(api: &Api, json: bool, site: &str, command: EnvCommand) -> CliResult {
    match command {
        EnvCommand::List => {
            let vars = api.list(&routes::api::site_env(site), None).await?;
            if json {
                print_json(&Value::Array(vars));
            } else {
                print_table(["NAME", "VALUE", "SECRET"], &vars, |v| {
                    let secret = v.get("secret").and_then(Value::as_bool) == Some(true);
                    [
                        text(v, "name"),
                        if secret {
                            "(hidden)".to_owned()
                        } else {
                            text(v, "value")
                        },
                        if secret { "yes" } else { "no" }.to_owned(),
                    ]
                });
            }
        }
        EnvCommand::Set { name, value, secret } => {
            let value = if value == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
                text.trim_end_matches(['\n', '\r']).to_owned()
            } else {
                value
            };
            let var = api
                .put(
                    &routes::api::site_env_var(site, &name),
                    &json!({"value": value, "secret": secret}),
                )
                .await?;
            if json {
                print_json(&var);
            } else {
                let kind = if secret { "secret variable" } else { "variable" };
                println!("Set {kind} {name} on {site}; the next build uses it");
            }
        }
        EnvCommand::Unset { name } => {
            api.delete(&routes::api::site_env_var(site, &name)).await?;
            if json {
                print_json(&json!({"removed": name}));
            } else {
                println!("Removed {name} from {site}");
            }
        }
    }
    Ok(())
}

async fn protect(api: &Api, json: bool, args: ProtectArgs) -> CliResult {
    let path = routes::api::site_protection(&args.site);
    let mut body = Map::new();
    for (field, access) in [
        ("production", args.production.or(args.all)),
        ("previews", args.previews.or(args.all)),
        ("branch_deploys", args.branch_deploys.or(args.all)),
        ("permalinks", args.permalinks.or(args.all)),
    ] {
        if let Some(access) = access {
            body.insert(field.to_owned(), json!(access.as_str()));
        }
    }
    let password = if let Some(variable) = &args.password_env {
        Some(std::env::var(variable).map_err(|_| {
            CliError::usage(format!(
                "--password-env names {variable}, which is not set; export the password in it first"
            ))
        })?)
    } else if args.password_stdin {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        Some(text.trim_end_matches(['\n', '\r']).to_owned())
    } else {
        None
    };
    if let Some(password) = password {
        body.insert("password".to_owned(), json!(password));
    }
    let protection = if body.is_empty() {
        api.get(&path).await?
    } else {
        api.put(&path, &Value::Object(body)).await?
    };
    if json {
        print_json(&protection);
        return Ok(());
    }
    print_fields(&[
        ("Production", text(&protection, "production")),
        ("Previews", text(&protection, "previews")),
        ("Branch deploys", text(&protection, "branch_deploys")),
        ("Permalinks", text(&protection, "permalinks")),
        ("Password", yes_no(&protection, "password_set")),
    ]);
    Ok(())
}

async fn identity(api: &Api, json: bool, args: IdentityArgs) -> CliResult {
    let path = routes::api::site_identity(&args.site);
    if args.remove {
        api.delete(&path).await?;
        if !json {
            println!("Removed; `Role` rules of {} match nobody now.", args.site);
        }
        return Ok(());
    }
    let body = if let Some(variable) = &args.hs256_secret_env {
        let secret = std::env::var(variable).map_err(|_| {
            CliError::usage(format!(
                "--hs256-secret-env names {variable}, which is not set; export the secret in it first"
            ))
        })?;
        Some(json!({"hs256_secret": secret}))
    } else if let Some(file) = &args.public_key_file {
        let pem = std::fs::read_to_string(file)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
        Some(json!({"public_key_pem": pem}))
    } else {
        args.jwks_url.as_ref().map(|url| json!({"jwks_url": url}))
    };
    let key = match body {
        Some(body) => api.put(&path, &body).await?,
        None => api.get(&path).await?,
    };
    if json {
        print_json(&key);
        return Ok(());
    }
    print_fields(&[
        ("Kind", text(&key, "kind")),
        ("JWKS URL", text(&key, "jwks_url")),
        ("Public key", text(&key, "public_key_pem")),
    ]);
    Ok(())
}

async fn share_link(api: &Api, json: bool, args: ShareLinkArgs) -> CliResult {
    let mut body = json!({"expires_in_seconds": args.expires_in});
    if let Some(alias) = args.alias {
        body["alias"] = json!(alias);
    }
    if let Some(deploy) = args.deploy {
        body["deploy_id"] = json!(deploy);
    }
    let link = api
        .post(&routes::api::site_share_links(&args.site), &body)
        .await?;
    if json {
        print_json(&link);
    } else {
        println!("{}", text(&link, "url"));
    }
    Ok(())
}

async fn https(api: &Api, json: bool, args: crate::args::HttpsArgs) -> CliResult {
    let path = routes::api::site_https(&args.site);
    let mut body = Map::new();
    if let Some(redirect) = args.redirect {
        body.insert("https_redirect".to_owned(), json!(redirect));
    }
    if let Some(max_age) = args.hsts_max_age {
        body.insert("hsts_max_age_seconds".to_owned(), json!(max_age));
    }
    if let Some(include) = args.hsts_include_subdomains {
        body.insert("hsts_include_subdomains".to_owned(), json!(include));
    }
    if let Some(preload) = args.hsts_preload {
        body.insert("hsts_preload".to_owned(), json!(preload));
    }
    let settings = if body.is_empty() {
        api.get(&path).await?
    } else {
        api.put(&path, &Value::Object(body)).await?
    };
    if json {
        print_json(&settings);
    } else {
        print_fields(&[
            ("redirect HTTP to HTTPS", yes_no(&settings, "https_redirect")),
            ("HSTS max-age (seconds)", text(&settings, "hsts_max_age_seconds")),
            (
                "HSTS includeSubDomains",
                yes_no(&settings, "hsts_include_subdomains"),
            ),
            ("HSTS preload", yes_no(&settings, "hsts_preload")),
        ]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn settings_go_to_the_resource_that_holds_them() {
        let changes = parse_settings(&pairs(&[
            "production_branch=trunk",
            "branch_deploys=yes",
            "required_labels=gpu, big",
            "timeout_seconds=600",
            "cpus=1.5",
            "memory_mib=default",
            "base=sites/blog",
            "watch_paths=sites/blog/**, shared/**",
        ]))
        .unwrap();
        assert_eq!(
            Value::Object(changes.site),
            json!({"production_branch": "trunk", "branch_deploys": true, "required_labels": ["gpu", "big"]})
        );
        assert_eq!(
            Value::Object(changes.limits),
            json!({"timeout_seconds": 600, "cpus": 1.5, "memory_mib": null})
        );
        assert_eq!(
            Value::Object(changes.paths),
            json!({"base": "sites/blog", "watch_paths": ["sites/blog/**", "shared/**"]})
        );
    }

    #[test]
    fn a_wrong_setting_says_what_is_expected() {
        let error = parse_settings(&pairs(&["colour=blue"])).unwrap_err();
        assert!(error.message.contains("production_branch"), "{error}");
        let error = parse_settings(&pairs(&["timeout_seconds=soon"])).unwrap_err();
        assert!(error.message.contains("a whole number"), "{error}");
        let error = parse_settings(&pairs(&["branch_deploys"])).unwrap_err();
        assert!(error.message.contains("key=value"), "{error}");
        assert_eq!(error.exit, crate::error::Exit::Usage);
    }
}
