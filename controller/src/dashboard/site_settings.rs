//! A site's settings page: scheduling (branch, runner labels, builds at
//! once), build limits and timeout, the build network (public internet
//! only, or off; allowed private hosts), and environment variables, whose
//! secret values are write-only: once set, the page says "secret, set" and
//! never sends the value back, not even in a form that failed.
//!
//! Every form is checked with the API's own rules (`api::site_settings`,
//! `api::sites`) and a mistake comes back as the page with the message in
//! the form's card and what was typed kept (secret values excepted).
//! Build hooks are listed, made (their URL shown once, on the answer to
//! the form) and revoked here too, and so are build schedules, with their
//! next run, and notification hooks (signed webhooks, Slack-compatible
//! chat, e-mail), made by the API's rules. Which hostnames ask for the
//! site's password is chosen here, and the password set (write-only, like
//! secret variables). Custom domains are added (waiting for their TXT
//! record: a dashboard session is not the admin token), verified on demand
//! and removed, each shown with its state and the record to add. The key
//! `Role` rules verify visitors' tokens with is set here too (an HS256
//! secret is write-only).

use super::{Chrome, PageResult, Session, ago, render, see_other};
use crate::api::build_hooks::{MakeError, NewHook, make_hook};
use crate::api::find_site;
use crate::api::identity::{IdentityBody, store_identity, validate_identity};
use crate::api::notifications as notification_hooks;
use crate::api::protection::{ProtectionBody, store_protection, validate_protection};
use crate::api::site_settings::{
    BuildPathsBody, BuildSettingsBody, validate_env_var, validate_limits, validate_paths,
    validate_private_hosts,
};
use crate::api::sites::validate_repo_url;
use crate::config::Config;
use crate::db::{
    Access, ContextAccess, Database, IdentityKey, SchedulingSettings, Site, SiteLimits, SiteNetwork,
};
use crate::deploys::Deploys;
use crate::domains::{AddedBy, DomainError, DomainState, Domains, challenge_name};
use crate::schedules::{AddError, NewSchedule, ScheduleView, Schedules};
use crate::secrets::SecretBox;
use crate::urls::Urls;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use std::sync::Arc;

/// The limits form's fields as typed: empty means the runner's default.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct LimitsForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub timeout_seconds: String,
    #[serde(default)]
    pub memory_mib: String,
    #[serde(default)]
    pub cpus: String,
    #[serde(default)]
    pub pids: String,
}

impl LimitsForm {
    fn of(limits: &SiteLimits) -> Self {
        let text = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        LimitsForm {
            csrf: String::new(),
            timeout_seconds: text(limits.timeout_seconds),
            memory_mib: text(limits.memory_mib),
            cpus: limits
                .cpu_millis
                .map(|m| (m as f64 / 1000.0).to_string())
                .unwrap_or_default(),
            pids: text(limits.pids),
        }
    }

    /// The limits typed, checked as the API checks them.
    fn parse(&self) -> Result<SiteLimits, String> {
        fn number<T: std::str::FromStr>(label: &str, text: &str) -> Result<Option<T>, String> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.parse().map(Some).map_err(|_| {
                format!("{label} must be a number, not `{text}`; leave it empty for the runner's default")
            })
        }
        validate_limits(&BuildSettingsBody {
            timeout_seconds: number("the timeout (timeout_seconds)", &self.timeout_seconds)?,
            memory_mib: number("memory (memory_mib)", &self.memory_mib)?,
            cpus: number("CPUs (cpus)", &self.cpus)?,
            pids: number("processes (pids)", &self.pids)?,
        })
    }
}

/// An environment variable as the page lists it.
pub struct EnvRow {
    pub name: String,
    /// `None` for a secret: its value is never shown.
    pub value: Option<String>,
    pub updated: String,
}

/// A build hook as the page lists it (never its URL).
pub struct HookRow {
    pub id: i64,
    pub name: String,
    pub branch: String,
    pub title: String,
    pub made: String,
    pub used: String,
}

/// A custom domain as the page lists it.
pub struct DomainRow {
    pub hostname: String,
    pub primary: bool,
    /// `waiting_for_dns`, `verified`, ... (a class and a word).
    pub state: &'static str,
    pub verified: bool,
    pub txt_name: String,
    pub txt_value: String,
    pub last_error: Option<String>,
    /// The certificate by ACME, once the controller keeps one for it.
    pub certificate: Option<CertificateRow>,
}

/// Where a domain's certificate stands, as the page shows it.
pub struct CertificateRow {
    /// `issuing`, `active`, `renewal_due`, `failed`, ... (a class and a word).
    pub state: &'static str,
    /// When it expires, e.g. `2027-03-01 12:00 UTC`.
    pub expires: Option<String>,
    /// After a failure: what the ACME server said, and what to do.
    pub error: Option<String>,
    pub next_step: Option<String>,
}

/// A build schedule as the page lists it.
pub struct ScheduleRow {
    pub id: i64,
    pub cron: String,
    pub time_zone: String,
    pub branch: String,
    pub title: String,
    /// The next run in the schedule's zone, and in UTC.
    pub next_local: String,
    pub next_utc: String,
    pub last: String,
}

/// What the schedule form keeps when it comes back with a mistake.
#[derive(Debug, Default, Clone)]
pub struct ScheduleFields {
    pub cron: String,
    pub time_zone: String,
    pub branch: String,
    pub title: String,
}

/// A notification hook as the page lists it (a chat URL by its host only).
pub struct NotificationRow {
    pub id: i64,
    pub kind: &'static str,
    pub target: String,
    pub events: String,
    pub made: String,
}

/// What the notification form keeps when it comes back with a mistake.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct NotificationForm {
    #[serde(default)]
    pub csrf: String,
    /// `webhook`, `slack` or `email`.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub url: String,
    /// Addresses, separated by commas, spaces or lines.
    #[serde(default)]
    pub emails: String,
    /// Events, separated by commas or spaces; empty for all.
    #[serde(default)]
    pub events: String,
}

/// What the variable form keeps when it comes back with a mistake.
#[derive(Debug, Default, Clone)]
pub struct EnvFields {
    pub name: String,
    pub value: String,
    pub secret: bool,
}

#[derive(Template)]
#[template(path = "dashboard/site_settings.html")]
struct SettingsPage {
    chrome: Chrome,
    site: Site,
    labels: String,
    limits: LimitsForm,
    cache_generation: i64,
    /// The build network's form: whether it is off, and the allowed
    /// private hosts, one per line.
    network_off: bool,
    private_hosts: String,
    network_error: Option<String>,
    /// The protection form: which hostnames ask for the password, and
    /// whether the site has one (never the password itself).
    protection: ContextAccess,
    password_set: bool,
    protection_error: Option<String>,
    /// The HTTPS form: redirect and HSTS.
    https: crate::db::SiteTransport,
    https_error: Option<String>,
    /// The token key form: `hs256`, `public_key`, `jwks_url` or empty,
    /// and the key or URL (never a secret).
    identity_kind: String,
    identity_value: String,
    identity_error: Option<String>,
    /// The monorepo form: the site's base and its watch paths, one per line.
    base: String,
    watch_paths: String,
    paths_error: Option<String>,
    env: Vec<EnvRow>,
    env_form: EnvFields,
    build_hooks: Vec<HookRow>,
    /// A hook just made, by name, and its URL: shown this once.
    new_hook: Option<(String, String)>,
    build_hook_error: Option<String>,
    schedules: Vec<ScheduleRow>,
    schedule_form: ScheduleFields,
    schedule_error: Option<String>,
    notifications: Vec<NotificationRow>,
    notification_form: NotificationForm,
    /// A webhook's secret just made: shown this once.
    new_notification_secret: Option<String>,
    notification_error: Option<String>,
    domains: Vec<DomainRow>,
    domain_error: Option<String>,
    /// The hostname typed into the add form, kept when it was refused.
    domain_typed: String,
    notice: Option<String>,
    scheduling_error: Option<String>,
    limits_error: Option<String>,
    env_error: Option<String>,
    repository_error: Option<String>,
}

impl SettingsPage {
    async fn load(db: &Database, session: &Session, site: Site) -> PageResult<Self> {
        let notifications = db
            .notification_hooks(site.id)
            .await?
            .into_iter()
            .map(|hook| NotificationRow {
                id: hook.id,
                kind: hook.kind.as_str(),
                target: hook.shown_url.unwrap_or_else(|| hook.emails.join(", ")),
                events: if hook.events.len() == crate::notifications::EVENTS.len() {
                    "all".to_owned()
                } else {
                    hook.events.join(", ")
                },
                made: ago(hook.created_at),
            })
            .collect();
        let mut domains = Vec::new();
        for domain in db.domains_of_site(site.id).await? {
            let certificate = db.acme_order(&domain.hostname).await?.map(|order| {
                let status = crate::acme::service::CertificateStatus::of(
                    domain.is_verified(),
                    Some(&order),
                    crate::db::now_millis(),
                );
                CertificateRow {
                    state: status.state,
                    expires: status.not_after.and_then(|at| {
                        chrono::DateTime::from_timestamp_millis(at)
                            .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
                    }),
                    error: status.error,
                    next_step: status.next_step,
                }
            });
            domains.push(DomainRow {
                state: DomainState::of(&domain).as_str(),
                verified: domain.is_verified(),
                txt_name: challenge_name(&domain.hostname),
                txt_value: domain.verification_token,
                last_error: domain.last_error,
                primary: domain.is_primary,
                hostname: domain.hostname,
                certificate,
            });
        }
        let settings = db.site_build_settings(site.id).await?;
        let protection = db.site_protection(site.id).await?;
        let https = db.site_transport(site.id).await?;
        let (identity_kind, identity_value) = match db.site_identity(site.id).await? {
            None => (String::new(), String::new()),
            Some(IdentityKey::SealedSecret(_)) => ("hs256".to_owned(), String::new()),
            Some(IdentityKey::PublicKey(pem)) => ("public_key".to_owned(), pem),
            Some(IdentityKey::JwksUrl(url)) => ("jwks_url".to_owned(), url),
        };
        let env = db
            .site_env_vars(site.id)
            .await?
            .into_iter()
            .map(|var| EnvRow {
                value: (!var.secret).then_some(var.value),
                name: var.name,
                updated: ago(var.updated_at),
            })
            .collect();
        let build_hooks = db
            .build_hooks(site.id)
            .await?
            .into_iter()
            .map(|hook| HookRow {
                id: hook.id,
                branch: hook
                    .trigger_branch
                    .unwrap_or_else(|| format!("{} (production)", site.production_branch)),
                title: hook.trigger_title.unwrap_or_default(),
                made: ago(hook.created_at),
                used: hook.last_used_at.map_or_else(|| "never".to_owned(), ago),
                name: hook.name,
            })
            .collect();
        let schedules = db
            .build_schedules(site.id)
            .await?
            .into_iter()
            .map(|schedule| {
                let view = ScheduleView::of(schedule);
                ScheduleRow {
                    id: view.id,
                    branch: view
                        .branch
                        .unwrap_or_else(|| format!("{} (production)", site.production_branch)),
                    title: view.title.unwrap_or_default(),
                    last: view.last_run_at.map_or_else(|| "never".to_owned(), ago),
                    next_local: view.next_run_local,
                    next_utc: view.next_run_utc,
                    cron: view.cron,
                    time_zone: view.time_zone,
                }
            })
            .collect();
        Ok(SettingsPage {
            chrome: Chrome::new(session, "sites"),
            labels: site.required_labels.join(", "),
            site,
            limits: LimitsForm::of(&settings.limits),
            cache_generation: settings.cache_generation,
            network_off: settings.network.mode == jamstack_proto::BuildNetwork::Off,
            private_hosts: settings.network.private_hosts.join("\n"),
            network_error: None,
            protection: protection.access,
            password_set: protection.password_hash.is_some(),
            protection_error: None,
            https,
            https_error: None,
            identity_kind,
            identity_value,
            identity_error: None,
            base: settings.paths.base.clone(),
            watch_paths: settings.paths.watch_paths.join("\n"),
            paths_error: None,
            env,
            env_form: EnvFields::default(),
            build_hooks,
            new_hook: None,
            build_hook_error: None,
            schedules,
            schedule_form: ScheduleFields::default(),
            schedule_error: None,
            notifications,
            notification_form: NotificationForm::default(),
            new_notification_secret: None,
            notification_error: None,
            domains,
            domain_error: None,
            domain_typed: String::new(),
            notice: None,
            scheduling_error: None,
            limits_error: None,
            env_error: None,
            repository_error: None,
        })
    }

    /// The page again, with a form's mistake: 422.
    fn refused(self) -> PageResult {
        Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&self)).into_response())
    }
}

#[derive(Debug, Deserialize)]
pub struct SettingsQuery {
    pub notice: Option<String>,
    /// The variable a notice is about.
    pub name: Option<String>,
}

fn notice_text(query: &SettingsQuery) -> Option<String> {
    let name = query.name.as_deref().unwrap_or("the variable");
    Some(match query.notice.as_deref()? {
        "saved" => "Settings saved.".to_owned(),
        "limits" => "Build limits saved; they apply from the next build.".to_owned(),
        "network" => "Build network saved; it applies from the next build.".to_owned(),
        "paths" => "Base and watch paths saved; they apply from the next build.".to_owned(),
        "protection" => {
            "Protection saved; the site's hostnames ask for the password from now on as chosen.".to_owned()
        }
        "https" => "HTTPS settings saved; the site's hostnames answer by them from now on.".to_owned(),
        "identity" => "Token key saved; `Role` rules verify visitors' tokens with it from now on.".to_owned(),
        "env-set" => format!("{name} set; builds from now on see it."),
        "env-deleted" => format!("{name} deleted."),
        "hook-revoked" => "Build hook revoked; its URL answers 404 from now on.".to_owned(),
        "schedule-added" => "Schedule added; the list shows its next run.".to_owned(),
        "schedule-removed" => "Schedule removed; it builds no more.".to_owned(),
        "notification-added" => "Notification hook added; it is sent the next event it asked for.".to_owned(),
        "notification-removed" => "Notification hook removed, with its delivery log.".to_owned(),
        "domain-added" => {
            "Domain added; add the TXT record shown to prove you control it, then verify.".to_owned()
        }
        "domain-checked" => "Domain checked; its state is below.".to_owned(),
        "domain-removed" => "Domain removed; it serves nothing from now on.".to_owned(),
        _ => return None,
    })
}

pub async fn show(
    State(db): State<Database>,
    session: Session,
    Path(name): Path<String>,
    Query(query): Query<SettingsQuery>,
) -> PageResult {
    let site = find_site(&db, &name).await?;
    let mut page = SettingsPage::load(&db, &session, site).await?;
    page.notice = notice_text(&query);
    Ok(render(&page))
}

#[derive(Debug, Default, Deserialize)]
pub struct SchedulingForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub production_branch: String,
    #[serde(default)]
    pub required_labels: String,
    #[serde(default)]
    pub max_concurrent_builds: String,
    /// A checkbox: present when ticked.
    pub cancel_superseded: Option<String>,
}

pub async fn save_scheduling(
    State(db): State<Database>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<SchedulingForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    let problem = |message: String, page: SettingsPage| {
        SettingsPage {
            labels: form.required_labels.clone(),
            scheduling_error: Some(message),
            ..page
        }
        .refused()
    };
    let branch = form.production_branch.trim();
    if branch.is_empty() {
        let page = SettingsPage::load(&db, &session, site).await?;
        return problem(
            "the production branch is empty; name the branch that publishes the site".to_owned(),
            page,
        );
    }
    let max = match form.max_concurrent_builds.trim().parse::<i64>() {
        Ok(n) if (0..=1000).contains(&n) => n,
        _ => {
            let page = SettingsPage::load(&db, &session, site).await?;
            return problem(
                format!(
                    "builds at once must be a number from 0 (no limit) to 1000, not `{}`",
                    form.max_concurrent_builds.trim()
                ),
                page,
            );
        }
    };
    let labels: Vec<String> = form
        .required_labels
        .split([',', ' '])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    db.update_scheduling(
        site.id,
        &SchedulingSettings {
            production_branch: Some(branch.to_owned()),
            required_labels: Some(labels),
            max_concurrent_builds: Some(max),
            cancel_superseded: Some(form.cancel_superseded.is_some()),
        },
    )
    .await?;
    Ok(see_other(format!("/sites/{name}/settings?notice=saved")))
}

#[derive(Debug, Default, Deserialize)]
pub struct RepositoryForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub repo_url: String,
}

/// Connects a repository to a site made for direct deploys: its builds
/// work from then on.
pub async fn connect_repository(
    State(db): State<Database>,
    State(config): State<Arc<Config>>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<RepositoryForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    let repo_url = form.repo_url.trim();
    let refused = if repo_url.is_empty() {
        Some("the repository URL is empty; give the URL runners clone from".to_owned())
    } else {
        validate_repo_url(repo_url, config.allow_local_repositories).err()
    };
    if let Some(message) = refused {
        let page = SettingsPage::load(&db, &session, site).await?;
        return SettingsPage {
            repository_error: Some(message),
            ..page
        }
        .refused();
    }
    db.connect_repository(site.id, repo_url, None, false).await?;
    tracing::info!(site = %name, repo_url, "repository connected from the dashboard");
    Ok(see_other(format!("/sites/{name}/settings?notice=saved")))
}

pub async fn save_limits(
    State(db): State<Database>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<LimitsForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    let limits = match form.parse() {
        Ok(limits) => limits,
        Err(message) => {
            let page = SettingsPage::load(&db, &session, site).await?;
            return SettingsPage {
                limits: form,
                limits_error: Some(message),
                ..page
            }
            .refused();
        }
    };
    db.set_site_limits(site.id, &limits).await?;
    tracing::info!(site = %site.name, "build limits changed from the dashboard");
    Ok(see_other(format!("/sites/{name}/settings?notice=limits")))
}

#[derive(Debug, Default, Deserialize)]
pub struct NetworkForm {
    #[serde(default)]
    pub csrf: String,
    /// A checkbox: present when ticked.
    pub network_off: Option<String>,
    /// One per line (commas and spaces also part them).
    #[serde(default)]
    pub private_hosts: String,
}

/// What the site's builds may reach, checked with the API's rules.
pub async fn save_network(
    State(db): State<Database>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<NetworkForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    let hosts: Vec<String> = form
        .private_hosts
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    let private_hosts = match validate_private_hosts(&hosts) {
        Ok(hosts) => hosts,
        Err(message) => {
            let page = SettingsPage::load(&db, &session, site).await?;
            return SettingsPage {
                network_off: form.network_off.is_some(),
                private_hosts: form.private_hosts,
                network_error: Some(message),
                ..page
            }
            .refused();
        }
    };
    let mode = if form.network_off.is_some() {
        jamstack_proto::BuildNetwork::Off
    } else {
        jamstack_proto::BuildNetwork::Public
    };
    db.set_site_network(site.id, &SiteNetwork { mode, private_hosts })
        .await?;
    tracing::info!(site = %site.name, network = mode.as_str(), "build network changed from the dashboard");
    Ok(see_other(format!(
        "/sites/{name}/settings?notice=network#network"
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct ProtectionForm {
    #[serde(default)]
    pub csrf: String,
    pub production: Option<String>,
    pub previews: Option<String>,
    pub branch_deploys: Option<String>,
    pub permalinks: Option<String>,
    /// Empty keeps the password the site has.
    #[serde(default)]
    pub password: String,
}

/// Which hostnames ask for the site's password, and a new password,
/// checked with the API's rules. The password is never sent back, not
/// even on a refused form.
pub async fn save_protection(
    State(db): State<Database>,
    State(deploys): State<Deploys>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<ProtectionForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    let access_of = |checked: &Option<String>| {
        if checked.is_some() {
            Access::Password
        } else {
            Access::Public
        }
    };
    let body = ProtectionBody {
        production: Some(access_of(&form.production)),
        previews: Some(access_of(&form.previews)),
        branch_deploys: Some(access_of(&form.branch_deploys)),
        permalinks: Some(access_of(&form.permalinks)),
        password: (!form.password.is_empty()).then_some(form.password),
    };
    let current = db.site_protection(site.id).await?;
    let access = match validate_protection(&body, &current) {
        Ok(access) => access,
        Err(message) => {
            let page = SettingsPage::load(&db, &session, site).await?;
            return SettingsPage {
                protection: ContextAccess {
                    production: access_of(&form.production),
                    previews: access_of(&form.previews),
                    branch_deploys: access_of(&form.branch_deploys),
                    permalinks: access_of(&form.permalinks),
                },
                protection_error: Some(message),
                ..page
            }
            .refused();
        }
    };
    store_protection(&db, &deploys, &site, &access, body.password).await?;
    Ok(see_other(format!(
        "/sites/{name}/settings?notice=protection#protection"
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct HttpsForm {
    #[serde(default)]
    pub csrf: String,
    pub https_redirect: Option<String>,
    #[serde(default)]
    pub hsts_max_age_seconds: String,
    pub hsts_include_subdomains: Option<String>,
    pub hsts_preload: Option<String>,
}

/// Whether plain HTTP redirects to HTTPS and the HSTS header, checked with
/// the API's rules.
pub async fn save_https(
    State(db): State<Database>,
    State(deploys): State<Deploys>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<HttpsForm>,
) -> PageResult {
    use crate::api::site_https::{SiteHttpsBody, store_https, validate_https};
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    let max_age = form.hsts_max_age_seconds.trim();
    let parsed_max_age = if max_age.is_empty() {
        Ok(0)
    } else {
        max_age
            .parse::<i64>()
            .map_err(|_| format!("`{max_age}` is not a number of seconds; give 0 for no HSTS header"))
    };
    let body = SiteHttpsBody {
        https_redirect: Some(form.https_redirect.is_some()),
        hsts_max_age_seconds: parsed_max_age.as_ref().ok().copied(),
        hsts_include_subdomains: Some(form.hsts_include_subdomains.is_some()),
        hsts_preload: Some(form.hsts_preload.is_some()),
    };
    let current = db.site_transport(site.id).await?;
    let wanted = parsed_max_age.and_then(|_| validate_https(&body, &current));
    match wanted {
        Ok(wanted) => {
            store_https(&db, &deploys, &site, &wanted).await?;
            Ok(see_other(format!("/sites/{name}/settings?notice=https#https")))
        }
        Err(message) => {
            let page = SettingsPage::load(&db, &session, site).await?;
            SettingsPage {
                https_error: Some(message),
                ..page
            }
            .refused()
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct IdentityForm {
    #[serde(default)]
    pub csrf: String,
    /// `hs256`, `public_key` or `jwks_url`.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub value: String,
}

/// Sets the key `Role` rules verify tokens with, by the API's rules.
pub async fn save_identity(
    State(db): State<Database>,
    State(secrets): State<Arc<SecretBox>>,
    State(config): State<Arc<Config>>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<IdentityForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    let value = Some(form.value.trim().to_owned());
    let body = match form.kind.as_str() {
        "hs256" => IdentityBody {
            hs256_secret: value,
            ..IdentityBody::default()
        },
        "public_key" => IdentityBody {
            public_key_pem: value,
            ..IdentityBody::default()
        },
        "jwks_url" => IdentityBody {
            jwks_url: value,
            ..IdentityBody::default()
        },
        _ => IdentityBody::default(),
    };
    match validate_identity(&body, config.proxy.allow_private_targets) {
        Ok(key) => {
            store_identity(&db, &secrets, site.id, key).await?;
            Ok(see_other(format!(
                "/sites/{name}/settings?notice=identity#identity"
            )))
        }
        Err(message) => {
            let page = SettingsPage::load(&db, &session, site).await?;
            SettingsPage {
                identity_kind: form.kind.clone(),
                // A secret typed is never sent back.
                identity_value: if form.kind == "hs256" {
                    String::new()
                } else {
                    form.value
                },
                identity_error: Some(message),
                ..page
            }
            .refused()
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct PathsForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub base: String,
    /// One glob per line.
    #[serde(default)]
    pub watch_paths: String,
}

/// Where the site lives in its repository and which changes build it,
/// checked with the API's rules.
pub async fn save_paths(
    State(db): State<Database>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<PathsForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    let body = BuildPathsBody {
        base: form.base.clone(),
        watch_paths: form
            .watch_paths
            .lines()
            .map(str::trim)
            .filter(|glob| !glob.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    let paths = match validate_paths(&body) {
        Ok(paths) => paths,
        Err(message) => {
            let page = SettingsPage::load(&db, &session, site).await?;
            return SettingsPage {
                base: form.base,
                watch_paths: form.watch_paths,
                paths_error: Some(message),
                ..page
            }
            .refused();
        }
    };
    db.set_site_paths(site.id, &paths).await?;
    tracing::info!(site = %site.name, base = %paths.base, "base and watch paths changed from the dashboard");
    Ok(see_other(format!("/sites/{name}/settings?notice=paths#paths")))
}

#[derive(Debug, Default, Deserialize)]
pub struct EnvForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
    /// A checkbox: present when ticked.
    pub secret: Option<String>,
}

/// Adds a variable, or replaces the one of that name.
pub async fn set_env(
    State(db): State<Database>,
    State(secrets): State<Arc<SecretBox>>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<EnvForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    let var = form.name.trim();
    let secret = form.secret.is_some();
    if let Err(message) = validate_env_var(var, &form.value) {
        let page = SettingsPage::load(&db, &session, site).await?;
        return SettingsPage {
            env_form: EnvFields {
                name: var.to_owned(),
                // A secret typed once is not sent back, even to its author.
                value: if secret { String::new() } else { form.value },
                secret,
            },
            env_error: Some(message),
            ..page
        }
        .refused();
    }
    crate::api::site_settings::store_env_var(&db, &secrets, site.id, var, &form.value, secret).await?;
    tracing::info!(site = %site.name, variable = var, secret, "environment variable set from the dashboard");
    Ok(see_other(format!(
        "/sites/{name}/settings?notice=env-set&name={var}#env"
    )))
}

pub async fn delete_env(
    State(db): State<Database>,
    session: Session,
    Path((name, var)): Path<(String, String)>,
    Form(form): Form<super::CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    if !db.delete_site_env_var(site.id, &var).await? {
        let page = SettingsPage::load(&db, &session, site).await?;
        return SettingsPage {
            env_error: Some(format!(
                "{var} is not set on this site (deleted already?); the list below is current"
            )),
            ..page
        }
        .refused();
    }
    tracing::info!(site = %site.name, variable = %var, "environment variable deleted from the dashboard");
    Ok(see_other(format!(
        "/sites/{name}/settings?notice=env-deleted&name={var}#env"
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct BuildHookForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub trigger_branch: String,
    #[serde(default)]
    pub trigger_title: String,
}

/// Makes a build hook, checked with the API's rules; the page that answers
/// shows its URL, the only time it is shown.
pub async fn create_build_hook(
    State(db): State<Database>,
    State(urls): State<Urls>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<BuildHookForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    let asked = NewHook {
        name: form.name,
        trigger_branch: Some(form.trigger_branch),
        trigger_title: Some(form.trigger_title),
    };
    match make_hook(&db, &urls, site.id, &asked).await {
        Ok(made) => {
            tracing::info!(site = %site.name, hook = made.hook.id, "build hook made from the dashboard");
            let page = SettingsPage::load(&db, &session, site).await?;
            // Answered directly, not redirected: the URL is shown this once.
            Ok(render(&SettingsPage {
                new_hook: Some((made.hook.name, made.url)),
                ..page
            }))
        }
        Err(MakeError::Invalid(message)) => {
            let page = SettingsPage::load(&db, &session, site).await?;
            SettingsPage {
                build_hook_error: Some(message),
                ..page
            }
            .refused()
        }
        Err(MakeError::Failed(e)) => Err(e.into()),
    }
}

pub async fn revoke_build_hook(
    State(db): State<Database>,
    session: Session,
    Path((name, id)): Path<(String, i64)>,
    Form(form): Form<super::CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    if !db.delete_build_hook(site.id, id).await? {
        let page = SettingsPage::load(&db, &session, site).await?;
        return SettingsPage {
            build_hook_error: Some(format!(
                "this site has no build hook {id} (revoked already?); the list below is current"
            )),
            ..page
        }
        .refused();
    }
    tracing::info!(site = %site.name, hook = id, "build hook revoked from the dashboard");
    Ok(see_other(format!(
        "/sites/{name}/settings?notice=hook-revoked#build-hooks"
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct ScheduleForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub cron: String,
    #[serde(default)]
    pub time_zone: String,
    #[serde(default)]
    pub branch: String,
    #[serde(default)]
    pub title: String,
}

/// Adds a build schedule, checked with the API's rules; a mistake comes
/// back naming the field, with what was typed kept.
pub async fn add_schedule(
    State(db): State<Database>,
    State(schedules): State<Schedules>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<ScheduleForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    let asked = NewSchedule {
        cron: form.cron.clone(),
        time_zone: Some(form.time_zone.clone()),
        branch: Some(form.branch.clone()),
        title: Some(form.title.clone()),
    };
    match schedules.add(site.id, &asked).await {
        Ok(made) => {
            tracing::info!(site = %site.name, schedule = made.id, "build schedule made from the dashboard");
            Ok(see_other(format!(
                "/sites/{name}/settings?notice=schedule-added#schedules"
            )))
        }
        Err(AddError::Invalid(message)) => {
            let page = SettingsPage::load(&db, &session, site).await?;
            SettingsPage {
                schedule_error: Some(message),
                schedule_form: ScheduleFields {
                    cron: form.cron,
                    time_zone: form.time_zone,
                    branch: form.branch,
                    title: form.title,
                },
                ..page
            }
            .refused()
        }
        Err(AddError::Failed(e)) => Err(e.into()),
    }
}

pub async fn remove_schedule(
    State(db): State<Database>,
    State(schedules): State<Schedules>,
    session: Session,
    Path((name, id)): Path<(String, i64)>,
    Form(form): Form<super::CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    if schedules.remove(site.id, id).await?.is_none() {
        let page = SettingsPage::load(&db, &session, site).await?;
        return SettingsPage {
            schedule_error: Some(format!(
                "this site has no schedule {id} (removed already?); the list below is current"
            )),
            ..page
        }
        .refused();
    }
    tracing::info!(site = %site.name, schedule = id, "build schedule removed from the dashboard");
    Ok(see_other(format!(
        "/sites/{name}/settings?notice=schedule-removed#schedules"
    )))
}

/// Adds a notification hook by the API's rules; a webhook's made secret is
/// shown on the page that answers, the only time it is shown.
pub async fn add_notification(
    State(db): State<Database>,
    State(config): State<Arc<Config>>,
    State(secrets): State<Arc<SecretBox>>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<NotificationForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|word| !word.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let kind = crate::db::NotificationKind::parse(form.kind.trim());
    let email = kind == Some(crate::db::NotificationKind::Email);
    let asked = notification_hooks::NewHook {
        kind,
        url: (!email).then(|| form.url.clone()),
        emails: email.then(|| words(&form.emails)),
        events: Some(words(&form.events)).filter(|events| !events.is_empty()),
        secret: None,
    };
    let refused = |message: String, page: SettingsPage| {
        SettingsPage {
            notification_error: Some(message),
            notification_form: NotificationForm {
                csrf: String::new(),
                ..form.clone()
            },
            ..page
        }
        .refused()
    };
    if kind.is_none() {
        let page = SettingsPage::load(&db, &session, site).await?;
        return refused("pick a kind: webhook, slack or email".to_owned(), page);
    }
    match notification_hooks::make_hook(&db, &config, &secrets, &site, asked).await {
        Ok(made) => {
            let Some(secret) = made.secret else {
                return Ok(see_other(format!(
                    "/sites/{name}/settings?notice=notification-added#notifications"
                )));
            };
            let page = SettingsPage::load(&db, &session, site).await?;
            // Answered directly, not redirected: the secret is shown this once.
            Ok(render(&SettingsPage {
                new_notification_secret: Some(secret),
                ..page
            }))
        }
        Err(notification_hooks::MakeError::Invalid(message)) => {
            let page = SettingsPage::load(&db, &session, site).await?;
            refused(message, page)
        }
        Err(notification_hooks::MakeError::Failed(e)) => Err(e.into()),
    }
}

pub async fn remove_notification(
    State(db): State<Database>,
    session: Session,
    Path((name, id)): Path<(String, i64)>,
    Form(form): Form<super::CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    if !db.delete_notification_hook(site.id, id).await? {
        let page = SettingsPage::load(&db, &session, site).await?;
        return SettingsPage {
            notification_error: Some(format!(
                "this site has no notification hook {id} (removed already?); the list below is current"
            )),
            ..page
        }
        .refused();
    }
    tracing::info!(site = %site.name, hook = id, "notification hook removed from the dashboard");
    Ok(see_other(format!(
        "/sites/{name}/settings?notice=notification-removed#notifications"
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct DomainForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub hostname: String,
    /// A checkbox: present when ticked.
    pub primary: Option<String>,
}

/// The page again with a domain's mistake, or the error page for a fault.
async fn domain_refused(
    db: &Database,
    session: &Session,
    site: Site,
    error: DomainError,
    typed: String,
) -> PageResult {
    let message = match error {
        DomainError::Invalid(message) | DomainError::Conflict(message) | DomainError::NotFound(message) => {
            message
        }
        DomainError::Internal(error) => return Err(error.into()),
    };
    let page = SettingsPage::load(db, session, site).await?;
    SettingsPage {
        domain_error: Some(message),
        domain_typed: typed,
        ..page
    }
    .refused()
}

/// Adds a custom domain; it waits for its TXT record, as one added with a
/// site token does.
pub async fn add_domain(
    State(db): State<Database>,
    State(domains): State<Domains>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<DomainForm>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    match domains
        .add(
            &site,
            &form.hostname,
            form.primary.is_some(),
            AddedBy::SiteManager,
        )
        .await
    {
        Ok(_) => Ok(see_other(format!(
            "/sites/{name}/settings?notice=domain-added#domains"
        ))),
        Err(error) => domain_refused(&db, &session, site, error, form.hostname).await,
    }
}

/// Looks up a domain's TXT record now.
pub async fn verify_domain(
    State(db): State<Database>,
    State(domains): State<Domains>,
    session: Session,
    Path((name, hostname)): Path<(String, String)>,
    Form(form): Form<super::CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    match domains.verify(&site, &hostname).await {
        Ok(_) => Ok(see_other(format!(
            "/sites/{name}/settings?notice=domain-checked#domains"
        ))),
        Err(error) => domain_refused(&db, &session, site, error, String::new()).await,
    }
}

pub async fn remove_domain(
    State(db): State<Database>,
    State(domains): State<Domains>,
    session: Session,
    Path((name, hostname)): Path<(String, String)>,
    Form(form): Form<super::CsrfOnly>,
) -> PageResult {
    session.verify(&form.csrf)?;
    let site = find_site(&db, &name).await?;
    match domains.remove(&site, &hostname).await {
        Ok(_) => Ok(see_other(format!(
            "/sites/{name}/settings?notice=domain-removed#domains"
        ))),
        Err(error) => domain_refused(&db, &session, site, error, String::new()).await,
    }
}
