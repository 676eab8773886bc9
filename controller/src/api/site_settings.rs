//! A site's build settings: limits and timeout, the build network, where
//! the site lives in a monorepo and which changes build it, environment
//! variables (secret ones are never shown again) and "clear
//! cache".

use super::find_site;
use crate::auth::{CanManageSites, CanRead};
use crate::db::{Database, Site, SiteEnvVar, SiteLimits, SiteNetwork, SitePaths};
use crate::error::{AppResult, bad_request, not_found};
use crate::secrets::SecretBox;
use crate::state::Installation;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jamstack_proto::{BuildNetwork, ErrorBody};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Limits and timeout as the API takes and shows them. A field left out (or
/// `null`) takes the runner's default; runners cap every limit at their own
/// maximum.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildSettingsBody {
    pub timeout_seconds: Option<i64>,
    pub memory_mib: Option<i64>,
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BuildSettingsView {
    pub timeout_seconds: Option<i64>,
    pub memory_mib: Option<i64>,
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
    pub cache: CacheView,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CacheView {
    /// Runners name the cache's Docker volumes after this key.
    pub key: String,
    pub generation: i64,
}

/// The longest a build may be allowed to run: one day.
pub const MAX_TIMEOUT_SECONDS: i64 = 24 * 60 * 60;

/// Checks limits and turns them into what is stored.
pub fn validate_limits(body: &BuildSettingsBody) -> Result<SiteLimits, String> {
    fn in_range(field: &str, value: Option<i64>, min: i64, max: i64, unit: &str) -> Result<(), String> {
        match value {
            Some(v) if v < min || v > max => Err(format!(
                "{field} is {v}; it must be between {min} and {max}{unit}, or null for the runner's default"
            )),
            _ => Ok(()),
        }
    }
    in_range(
        "timeout_seconds",
        body.timeout_seconds,
        1,
        MAX_TIMEOUT_SECONDS,
        " (one day)",
    )?;
    in_range("memory_mib", body.memory_mib, 16, 1024 * 1024, "")?;
    in_range("pids", body.pids, 8, 1_000_000, "")?;
    let cpu_millis = match body.cpus {
        None => None,
        Some(cpus) if cpus.is_finite() && (0.01..=1024.0).contains(&cpus) => {
            Some((cpus * 1000.0).round() as i64)
        }
        Some(cpus) => {
            return Err(format!(
                "cpus is {cpus}; it must be between 0.01 and 1024, or null for the runner's default"
            ));
        }
    };
    Ok(SiteLimits {
        timeout_seconds: body.timeout_seconds,
        memory_mib: body.memory_mib,
        cpu_millis,
        pids: body.pids,
    })
}

async fn settings_view(
    db: &Database,
    installation: &Installation,
    site_id: i64,
) -> AppResult<BuildSettingsView> {
    let settings = db.site_build_settings(site_id).await?;
    let limits = settings.limits;
    Ok(BuildSettingsView {
        timeout_seconds: limits.timeout_seconds,
        memory_mib: limits.memory_mib,
        cpus: limits.cpu_millis.map(|m| m as f64 / 1000.0),
        pids: limits.pids,
        cache: CacheView {
            key: installation.cache_key(site_id),
            generation: settings.cache_generation,
        },
    })
}

#[utoipa::path(
    get,
    operation_id = "show_build_settings",
    path = jamstack_proto::routes::api::SITE_BUILD_SETTINGS,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "Limits, timeout and cache", body = BuildSettingsView),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn show(
    State(db): State<Database>,
    State(installation): State<Installation>,
    _: CanRead,
    Path(name): Path<String>,
) -> AppResult<Json<BuildSettingsView>> {
    let site = find_site(&db, &name).await?;
    Ok(Json(settings_view(&db, &installation, site.id).await?))
}

/// Replaces the site's limits and timeout.
#[utoipa::path(
    put,
    operation_id = "update_build_settings",
    path = jamstack_proto::routes::api::SITE_BUILD_SETTINGS,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    request_body = BuildSettingsBody,
    responses(
        (status = 200, description = "The new settings", body = BuildSettingsView),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn update(
    State(db): State<Database>,
    State(installation): State<Installation>,
    _: CanManageSites,
    Path(name): Path<String>,
    Json(body): Json<BuildSettingsBody>,
) -> AppResult<Json<BuildSettingsView>> {
    let site = find_site(&db, &name).await?;
    let limits = validate_limits(&body).map_err(bad_request)?;
    db.set_site_limits(site.id, &limits).await?;
    Ok(Json(settings_view(&db, &installation, site.id).await?))
}

/// What a site's builds may reach over the network, as the API takes and
/// shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildNetworkBody {
    /// `public`: the public internet only; the runner's host, private
    /// networks and link-local addresses (cloud metadata) are refused.
    /// `off`: no network at all, not even DNS.
    pub network: BuildNetwork,
    /// Private hosts builds may reach all the same (a package mirror): IPv4
    /// or IPv6 addresses, CIDR blocks of at most 65536 addresses, or host
    /// names, which runners resolve when a build starts.
    #[serde(default)]
    pub private_hosts: Vec<String>,
}

/// The most private hosts a site may list.
pub const MAX_PRIVATE_HOSTS: usize = 32;

/// Checks a site's allowed private hosts and returns them as stored:
/// trimmed, in order, without repeats.
pub fn validate_private_hosts(hosts: &[String]) -> Result<Vec<String>, String> {
    use std::net::IpAddr;
    if hosts.len() > MAX_PRIVATE_HOSTS {
        return Err(format!(
            "private_hosts lists {} hosts; the limit is {MAX_PRIVATE_HOSTS}: name the hosts themselves \
             or use CIDR blocks",
            hosts.len()
        ));
    }
    let mut kept: Vec<String> = Vec::new();
    for host in hosts {
        let host = host.trim();
        let address = match host.parse::<ipnet::IpNet>() {
            Ok(net) => Some((net.network(), net.prefix_len(), net.max_prefix_len())),
            Err(_) => host.parse::<IpAddr>().ok().map(|ip| {
                let bits = if ip.is_ipv4() { 32 } else { 128 };
                (ip, bits, bits)
            }),
        };
        match address {
            Some((ip, prefix, max)) => {
                // Loopback is the runner's own (builds never reach it), and
                // link-local holds cloud metadata, the host's credentials:
                // no site opens those. A block wider than a /16 (IPv4) is
                // no longer a named host.
                let link_local_or_loopback = match ip {
                    IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
                    IpAddr::V6(v6) => {
                        v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
                    }
                };
                if link_local_or_loopback {
                    return Err(format!(
                        "private_hosts: `{host}` is a loopback, link-local (cloud metadata) or unspecified \
                         address, which builds may never reach; name the private host they need instead"
                    ));
                }
                if max - prefix > 16 {
                    return Err(format!(
                        "private_hosts: `{host}` opens more than 65536 addresses; name the hosts builds need, \
                         or a block of /{} or narrower",
                        max - 16
                    ));
                }
            }
            None => {
                let valid_name = !host.is_empty()
                    && host.len() <= 253
                    && host.split('.').all(|label| {
                        !label.is_empty()
                            && label.len() <= 63
                            && !label.starts_with('-')
                            && !label.ends_with('-')
                            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                if !valid_name {
                    return Err(format!(
                        "private_hosts: `{host}` is not an IP address, a CIDR block (10.1.2.0/24) or a host name \
                         (mirror.internal)"
                    ));
                }
                if host.eq_ignore_ascii_case("localhost") {
                    return Err(
                        "private_hosts: `localhost` is the runner's own loopback, which builds never reach"
                            .to_owned(),
                    );
                }
            }
        }
        if !kept.iter().any(|k| k == host) {
            kept.push(host.to_owned());
        }
    }
    Ok(kept)
}

fn network_view(network: SiteNetwork) -> BuildNetworkBody {
    BuildNetworkBody {
        network: network.mode,
        private_hosts: network.private_hosts,
    }
}

#[utoipa::path(
    get,
    operation_id = "show_build_network",
    path = "/api/v1/sites/{site}/build-network",
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "What the site's builds may reach", body = BuildNetworkBody),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn show_network(
    State(db): State<Database>,
    _: CanRead,
    Path(name): Path<String>,
) -> AppResult<Json<BuildNetworkBody>> {
    let site = find_site(&db, &name).await?;
    let settings = db.site_build_settings(site.id).await?;
    Ok(Json(network_view(settings.network)))
}

/// Replaces what the site's builds may reach over the network: the public
/// internet only (and the private hosts listed), or nothing at all.
#[utoipa::path(
    put,
    operation_id = "update_build_network",
    path = "/api/v1/sites/{site}/build-network",
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    request_body = BuildNetworkBody,
    responses(
        (status = 200, description = "The new setting", body = BuildNetworkBody),
        (status = 400, description = "A private host that is not an address, block or name, or may never be opened", body = ErrorBody),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn update_network(
    State(db): State<Database>,
    _: CanManageSites,
    Path(name): Path<String>,
    Json(body): Json<BuildNetworkBody>,
) -> AppResult<Json<BuildNetworkBody>> {
    let site = find_site(&db, &name).await?;
    let network = SiteNetwork {
        mode: body.network,
        private_hosts: validate_private_hosts(&body.private_hosts).map_err(bad_request)?,
    };
    db.set_site_network(site.id, &network).await?;
    let settings = db.site_build_settings(site.id).await?;
    Ok(Json(network_view(settings.network)))
}

/// Where a site lives in its repository and which changes build it, as the
/// API takes and shows it.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildPathsBody {
    /// The folder of the repository the site lives in (`sites/blog` in a
    /// monorepo), relative to its root; empty for the root. Runners read
    /// `jamstack.toml` there, and builds run there unless it sets `base`.
    #[serde(default)]
    pub base: String,
    /// Globs relative to the repository root (`sites/blog/**`,
    /// `shared/*.css`): a push that changes no file matching one is
    /// recorded as a skipped build. Empty: `base/**` when a base is set,
    /// else every push builds. `watch` in `jamstack.toml` takes precedence.
    #[serde(default)]
    pub watch_paths: Vec<String>,
}

/// The most watch paths a site may list, and the longest one.
pub const MAX_WATCH_PATHS: usize = 64;
pub const MAX_PATH_LENGTH: usize = 512;

/// Checks a site's base and watch paths and returns them as stored: base
/// without `./` or slashes at either end, globs trimmed, in order, without
/// repeats. The globs' syntax is the runner's to check, when it builds.
pub fn validate_paths(body: &BuildPathsBody) -> Result<SitePaths, String> {
    fn check(what: &str, path: &str) -> Result<(), String> {
        if path.len() > MAX_PATH_LENGTH {
            return Err(format!("{what} `{path}` is longer than {MAX_PATH_LENGTH} bytes"));
        }
        if path.contains('\\') {
            return Err(format!(
                "{what} `{path}` contains a backslash; separate folders with `/`"
            ));
        }
        if path.chars().any(char::is_control) {
            return Err(format!("{what} {path:?} contains a control character"));
        }
        if path.starts_with('/') {
            return Err(format!(
                "{what} `{path}` is an absolute path; write it relative to the repository root, like `{}`",
                path.trim_start_matches('/')
            ));
        }
        if path.split('/').any(|part| part == "..") {
            return Err(format!(
                "{what} `{path}` climbs out with `..`; write it relative to the repository root"
            ));
        }
        Ok(())
    }
    let base = body.base.trim();
    check("base", base)?;
    let base = base
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/");
    if body.watch_paths.len() > MAX_WATCH_PATHS {
        return Err(format!(
            "watch_paths lists {} globs; the limit is {MAX_WATCH_PATHS}: use wider globs such as `sites/blog/**`",
            body.watch_paths.len()
        ));
    }
    let mut watch_paths: Vec<String> = Vec::new();
    for glob in &body.watch_paths {
        let glob = glob.trim();
        if glob.is_empty() {
            return Err("watch_paths holds an empty glob; remove it".to_owned());
        }
        check("watch path", glob)?;
        if !watch_paths.iter().any(|kept| kept == glob) {
            watch_paths.push(glob.to_owned());
        }
    }
    Ok(SitePaths { base, watch_paths })
}

fn paths_view(paths: SitePaths) -> BuildPathsBody {
    BuildPathsBody {
        base: paths.base,
        watch_paths: paths.watch_paths,
    }
}

#[utoipa::path(
    get,
    operation_id = "show_build_paths",
    path = jamstack_proto::routes::api::SITE_BUILD_PATHS,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "Where the site lives in its repository and which changes build it", body = BuildPathsBody),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn show_paths(
    State(db): State<Database>,
    _: CanRead,
    Path(name): Path<String>,
) -> AppResult<Json<BuildPathsBody>> {
    let site = find_site(&db, &name).await?;
    let settings = db.site_build_settings(site.id).await?;
    Ok(Json(paths_view(settings.paths)))
}

/// Replaces where the site lives in its repository (its base) and the
/// globs of the files whose changes build it.
#[utoipa::path(
    put,
    operation_id = "update_build_paths",
    path = jamstack_proto::routes::api::SITE_BUILD_PATHS,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    request_body = BuildPathsBody,
    responses(
        (status = 200, description = "The new setting", body = BuildPathsBody),
        (status = 400, description = "An absolute path, one that climbs out with `..`, or too many globs", body = ErrorBody),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn update_paths(
    State(db): State<Database>,
    _: CanManageSites,
    Path(name): Path<String>,
    Json(body): Json<BuildPathsBody>,
) -> AppResult<Json<BuildPathsBody>> {
    let site = find_site(&db, &name).await?;
    let paths = validate_paths(&body).map_err(bad_request)?;
    db.set_site_paths(site.id, &paths).await?;
    let settings = db.site_build_settings(site.id).await?;
    Ok(Json(paths_view(settings.paths)))
}

/// Empties the site's build cache: the next builds start with a new, empty
/// generation and runners remove the old one.
#[utoipa::path(
    post,
    operation_id = "clear_build_cache",
    path = "/api/v1/sites/{site}/cache/clear",
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "The settings with the new cache generation", body = BuildSettingsView),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn clear_cache(
    State(db): State<Database>,
    State(installation): State<Installation>,
    _: CanManageSites,
    Path(name): Path<String>,
) -> AppResult<Json<BuildSettingsView>> {
    let site = find_site(&db, &name).await?;
    clear_build_cache(&db, &site).await?;
    Ok(Json(settings_view(&db, &installation, site.id).await?))
}

/// Moves the site's cache on to a new, empty generation (the API's and the
/// dashboard's "clear cache"); returns the new generation.
pub async fn clear_build_cache(db: &Database, site: &Site) -> AppResult<i64> {
    let generation = db.bump_cache_generation(site.id).await?;
    tracing::info!(site = %site.name, generation, "build cache cleared");
    Ok(generation)
}

/// An environment variable as the API shows it: a secret's value is never
/// shown again once set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnvVarView {
    pub name: String,
    pub value: Option<String>,
    pub secret: bool,
    pub updated_at: i64,
}

fn env_view(var: SiteEnvVar) -> EnvVarView {
    EnvVarView {
        value: (!var.secret).then_some(var.value),
        name: var.name,
        secret: var.secret,
        updated_at: var.updated_at,
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetEnvVar {
    pub value: String,
    /// Masked in build logs and withheld from untrusted builds.
    #[serde(default)]
    pub secret: bool,
}

/// The longest value an environment variable may have.
pub const MAX_ENV_VALUE: usize = 64 * 1024;

/// Names as shells take them: letters, digits and `_`, not starting with a
/// digit (the same rule as `[build.environment]` in jamstack.toml).
pub fn validate_env_var(name: &str, value: &str) -> Result<(), String> {
    let valid_name = !name.is_empty()
        && name.len() <= 256
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid_name {
        return Err(format!(
            "`{name}` is not a valid variable name: use letters, digits and `_`, not starting with a digit"
        ));
    }
    if value.len() > MAX_ENV_VALUE {
        return Err(format!(
            "the value of {name} is {} bytes; the limit is {MAX_ENV_VALUE}",
            value.len()
        ));
    }
    if value.contains('\0') {
        return Err(format!(
            "the value of {name} contains a NUL byte, which environment variables cannot hold"
        ));
    }
    Ok(())
}

#[utoipa::path(
    get,
    operation_id = "list_env_vars",
    path = jamstack_proto::routes::api::SITE_ENV,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name")),
    responses(
        (status = 200, description = "The variables; secret values are never shown", body = Vec<EnvVarView>),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["read"])),
    extensions(("x-permission" = json!("site.read")))
)]
pub async fn list_env(
    State(db): State<Database>,
    _: CanRead,
    Path(name): Path<String>,
) -> AppResult<Json<Vec<EnvVarView>>> {
    let site = find_site(&db, &name).await?;
    let vars = db.site_env_vars(site.id).await?;
    Ok(Json(vars.into_iter().map(env_view).collect()))
}

#[utoipa::path(
    put,
    operation_id = "set_env_var",
    path = jamstack_proto::routes::api::SITE_ENV_VAR,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name"), ("name" = String, Path, description = "The variable's name")),
    request_body = SetEnvVar,
    responses(
        (status = 200, description = "The variable as stored", body = EnvVarView),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn set_env(
    State(db): State<Database>,
    State(secrets): State<Arc<SecretBox>>,
    _: CanManageSites,
    Path((site_name, var)): Path<(String, String)>,
    Json(body): Json<SetEnvVar>,
) -> AppResult<Json<EnvVarView>> {
    let site = find_site(&db, &site_name).await?;
    validate_env_var(&var, &body.value).map_err(bad_request)?;
    store_env_var(&db, &secrets, site.id, &var, &body.value, body.secret).await?;
    let stored = db
        .site_env_vars(site.id)
        .await?
        .into_iter()
        .find(|v| v.name == var)
        .ok_or_else(|| not_found("the variable vanished"))?;
    Ok(Json(env_view(stored)))
}

/// Stores a site variable; a secret one sealed with the controller's key
/// (`secrets.rs`), so a copy of the database alone does not reveal it. The
/// API and the dashboard both store variables here.
pub async fn store_env_var(
    db: &Database,
    secrets: &SecretBox,
    site_id: i64,
    name: &str,
    value: &str,
    secret: bool,
) -> AppResult<()> {
    let stored = if secret {
        secrets.seal(&crate::secrets::env_var_purpose(site_id, name), value)
    } else {
        value.to_owned()
    };
    db.set_site_env_var(site_id, name, &stored, secret).await?;
    Ok(())
}

#[utoipa::path(
    delete,
    operation_id = "delete_env_var",
    path = jamstack_proto::routes::api::SITE_ENV_VAR,
    tag = "sites",
    params(("site" = String, Path, description = "The site's name"), ("name" = String, Path, description = "The variable's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such site, build or deploy", body = ErrorBody),
    ),
    security(("token" = ["sites"])),
    extensions(("x-permission" = json!("site.admin")))
)]
pub async fn delete_env(
    State(db): State<Database>,
    _: CanManageSites,
    Path((site_name, var)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let site = find_site(&db, &site_name).await?;
    if db.delete_site_env_var(site.id, &var).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(format!(
            "site `{site_name}` has no variable {var}; list them with GET /api/v1/sites/{site_name}/env"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_their_range_are_refused_naming_the_field() {
        let ok = BuildSettingsBody {
            timeout_seconds: Some(600),
            memory_mib: Some(512),
            cpus: Some(1.5),
            pids: Some(128),
        };
        let limits = validate_limits(&ok).unwrap();
        assert_eq!(limits.cpu_millis, Some(1500));
        for (body, field) in [
            (
                BuildSettingsBody {
                    timeout_seconds: Some(0),
                    ..Default::default()
                },
                "timeout_seconds",
            ),
            (
                BuildSettingsBody {
                    memory_mib: Some(1),
                    ..Default::default()
                },
                "memory_mib",
            ),
            (
                BuildSettingsBody {
                    cpus: Some(f64::NAN),
                    ..Default::default()
                },
                "cpus",
            ),
            (
                BuildSettingsBody {
                    pids: Some(-5),
                    ..Default::default()
                },
                "pids",
            ),
        ] {
            let error = validate_limits(&body).unwrap_err();
            assert!(error.starts_with(field), "{error}");
        }
    }

    #[test]
    fn paths_are_relative_to_the_repository_root_and_stay_inside_it() {
        let paths = validate_paths(&BuildPathsBody {
            base: " ./sites/blog/ ".into(),
            watch_paths: vec![
                "sites/blog/**".into(),
                " shared/*.css".into(),
                "sites/blog/**".into(),
            ],
        })
        .unwrap();
        assert_eq!(paths.base, "sites/blog");
        assert_eq!(paths.watch_paths, ["sites/blog/**", "shared/*.css"]);
        for (base, glob, says) in [
            ("/sites/blog", "x", "absolute path"),
            ("sites/../..", "x", "`..`"),
            ("", "/etc/**", "absolute path"),
            ("", "../other/**", "`..`"),
            ("", "sites\\blog", "backslash"),
            ("", " ", "empty glob"),
        ] {
            let error = validate_paths(&BuildPathsBody {
                base: base.into(),
                watch_paths: vec![glob.into()],
            })
            .unwrap_err();
            assert!(error.contains(says), "{base} {glob}: {error}");
        }
    }

    #[test]
    fn private_hosts_are_addresses_narrow_blocks_or_names_and_never_loopback_or_metadata() {
        let kept = validate_private_hosts(&[
            " 10.213.0.2 ".to_owned(),
            "10.1.0.0/16".to_owned(),
            "fd00::1".to_owned(),
            "mirror.internal".to_owned(),
            "10.213.0.2".to_owned(),
        ])
        .unwrap();
        assert_eq!(kept, ["10.213.0.2", "10.1.0.0/16", "fd00::1", "mirror.internal"]);
        for bad in [
            "169.254.169.254",
            "127.0.0.1",
            "localhost",
            "fe80::1",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "mirror internal",
            "-bad.example",
            "",
        ] {
            let error = validate_private_hosts(&[bad.to_owned()]).unwrap_err();
            assert!(error.starts_with("private_hosts"), "{bad}: {error}");
        }
        let many: Vec<String> = (0..=MAX_PRIVATE_HOSTS).map(|i| format!("10.0.0.{i}")).collect();
        assert!(validate_private_hosts(&many).is_err());
    }

    #[test]
    fn variable_names_follow_shell_rules() {
        assert!(validate_env_var("API_KEY", "x").is_ok());
        assert!(validate_env_var("_private2", "x").is_ok());
        for bad in ["", "2FAST", "WITH-DASH", "A B", "É"] {
            assert!(validate_env_var(bad, "x").is_err(), "{bad}");
        }
        assert!(validate_env_var("NUL", "a\0b").is_err());
        assert!(validate_env_var("BIG", &"x".repeat(MAX_ENV_VALUE + 1)).is_err());
    }
}
