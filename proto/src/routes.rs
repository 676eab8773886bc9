//! Every path a client of the controller calls, written once: the runner
//! protocol ([`runner`]), and the REST API routes the CLI calls ([`api`]).
//!
//! Each route has a pattern, the string the controller's router registers
//! (axum's `{name}` placeholders, which OpenAPI uses too), and, where it
//! takes parameters, a function that fills them in for a client. The
//! functions are made from the patterns, so the two cannot drift apart: a
//! renamed route changes the server and every client at once.

/// Fills the `{name}` placeholder of `pattern` with `value`.
fn fill(pattern: &str, name: &str, value: impl std::fmt::Display) -> String {
    pattern.replace(&format!("{{{name}}}"), &value.to_string())
}

/// The runner protocol (see the crate's documentation for the flow).
pub mod runner {
    use super::fill;

    pub const REGISTER: &str = "/runner/v1/register";
    pub const CONNECT: &str = "/runner/v1/connect";
    pub const LEASE: &str = "/runner/v1/jobs/lease";
    pub const HEARTBEAT: &str = "/runner/v1/jobs/{job}/heartbeat";
    pub const COMMIT: &str = "/runner/v1/jobs/{job}/commit";
    pub const LOG: &str = "/runner/v1/jobs/{job}/log";
    pub const DEPLOY: &str = "/runner/v1/jobs/{job}/deploy";
    pub const FINALIZE: &str = "/runner/v1/jobs/{job}/deploy/finalize";
    pub const COMPLETE: &str = "/runner/v1/jobs/{job}/complete";
    pub const HAND_BACK: &str = "/runner/v1/jobs/{job}/hand-back";
    pub const BLOB: &str = "/runner/v1/blobs/{sha256}";
    /// Many small blobs in one body (`crate::blob_bundle`).
    pub const BLOB_BUNDLES: &str = "/runner/v1/blob-bundles";

    pub fn register() -> &'static str {
        REGISTER
    }

    pub fn connect() -> &'static str {
        CONNECT
    }

    pub fn lease() -> &'static str {
        LEASE
    }

    /// The heartbeat, held open up to `wait_seconds` unless the build is
    /// cancelled meanwhile.
    pub fn heartbeat(job_id: i64, wait_seconds: u64) -> String {
        format!("{}?wait_seconds={wait_seconds}", fill(HEARTBEAT, "job", job_id))
    }

    pub fn commit(job_id: i64) -> String {
        fill(COMMIT, "job", job_id)
    }

    /// Appends log bytes at byte `offset` of the attempt's log.
    pub fn job_log(job_id: i64, offset: u64) -> String {
        format!("{}?offset={offset}", fill(LOG, "job", job_id))
    }

    pub fn deploy(job_id: i64) -> String {
        fill(DEPLOY, "job", job_id)
    }

    pub fn finalize(job_id: i64) -> String {
        fill(FINALIZE, "job", job_id)
    }

    pub fn complete(job_id: i64) -> String {
        fill(COMPLETE, "job", job_id)
    }

    pub fn hand_back(job_id: i64) -> String {
        fill(HAND_BACK, "job", job_id)
    }

    pub fn blob(sha256: &str) -> String {
        fill(BLOB, "sha256", sha256)
    }
}

/// The REST API routes a client in this workspace (the CLI) calls. The
/// controller declares each with its OpenAPI documentation; its other
/// routes are written there alone.
pub mod api {
    use super::fill;

    /// Where the REST API lives; every pattern below starts with it.
    pub const PREFIX: &str = "/api/v1";

    pub const SITES: &str = "/api/v1/sites";
    pub const SITE: &str = "/api/v1/sites/{site}";
    pub const SITE_BUILD_SETTINGS: &str = "/api/v1/sites/{site}/build-settings";
    pub const SITE_BUILD_PATHS: &str = "/api/v1/sites/{site}/build-paths";
    pub const SITE_PROTECTION: &str = "/api/v1/sites/{site}/protection";
    pub const SITE_HTTPS: &str = "/api/v1/sites/{site}/https";
    pub const CERTIFICATES: &str = "/api/v1/certificates";
    pub const CERTIFICATE: &str = "/api/v1/certificates/{hostname}";
    pub const SITE_SHARE_LINKS: &str = "/api/v1/sites/{site}/share-links";
    pub const SITE_IDENTITY: &str = "/api/v1/sites/{site}/identity";
    pub const SITE_ENV: &str = "/api/v1/sites/{site}/env";
    pub const SITE_ENV_VAR: &str = "/api/v1/sites/{site}/env/{name}";
    pub const SITE_BUILD_HOOKS: &str = "/api/v1/sites/{site}/build-hooks";
    pub const SITE_BUILD_HOOK: &str = "/api/v1/sites/{site}/build-hooks/{id}";
    pub const SITE_DOMAINS: &str = "/api/v1/sites/{site}/domains";
    pub const SITE_DOMAIN: &str = "/api/v1/sites/{site}/domains/{hostname}";
    pub const SITE_DOMAIN_VERIFY: &str = "/api/v1/sites/{site}/domains/{hostname}/verify";
    pub const SITE_SCHEDULES: &str = "/api/v1/sites/{site}/schedules";
    pub const SITE_SCHEDULE: &str = "/api/v1/sites/{site}/schedules/{id}";
    pub const SITE_NOTIFICATIONS: &str = "/api/v1/sites/{site}/notifications";
    pub const SITE_NOTIFICATION: &str = "/api/v1/sites/{site}/notifications/{id}";
    pub const SITE_NOTIFICATION_DELIVERIES: &str = "/api/v1/sites/{site}/notifications/{id}/deliveries";
    pub const SITE_LOCK: &str = "/api/v1/sites/{site}/lock";
    pub const TEAM_SETTINGS: &str = "/api/v1/teams/{team}/settings";
    pub const TEAM_INVITATIONS: &str = "/api/v1/teams/{team}/invitations";
    pub const TEAM_INVITATION: &str = "/api/v1/teams/{team}/invitations/{id}";
    pub const SITE_UNLOCK: &str = "/api/v1/sites/{site}/unlock";
    pub const SITE_BUILDS: &str = "/api/v1/sites/{site}/builds";
    pub const SITE_DEPLOYS: &str = "/api/v1/sites/{site}/deploys";
    pub const DEPLOY_DIFF: &str = "/api/v1/sites/{site}/deploys/{deploy}/diff";
    pub const DEPLOY_PUBLISH: &str = "/api/v1/sites/{site}/deploys/{deploy}/publish";
    pub const DEPLOY_FINALIZE: &str = "/api/v1/sites/{site}/deploys/{deploy}/finalize";
    pub const BUILD: &str = "/api/v1/builds/{id}";
    pub const BUILD_LOG: &str = "/api/v1/builds/{id}/log";
    pub const BUILD_LOG_STREAM: &str = "/api/v1/builds/{id}/log/stream";
    pub const BUILD_CANCEL: &str = "/api/v1/builds/{id}/cancel";
    pub const BUILD_RETRY: &str = "/api/v1/builds/{id}/retry";
    pub const BLOB: &str = "/api/v1/blobs/{sha256}";
    /// Many small blobs in one body (`crate::blob_bundle`).
    pub const BLOB_BUNDLES: &str = "/api/v1/blob-bundles";
    pub const MY_SESSIONS: &str = "/api/v1/users/me/sessions";
    pub const MY_SESSION: &str = "/api/v1/users/me/sessions/{session}";
    pub const MY_PASSWORD: &str = "/api/v1/users/me/password";
    pub const MEMBER_PASSWORD: &str = "/api/v1/teams/{team}/members/{login}/password";
    pub const MEMBER_SESSIONS: &str = "/api/v1/teams/{team}/members/{login}/sessions";

    pub fn my_sessions() -> &'static str {
        MY_SESSIONS
    }

    pub fn my_session(session: i64) -> String {
        fill(MY_SESSION, "session", session)
    }

    pub fn my_password() -> &'static str {
        MY_PASSWORD
    }

    pub fn member_password(team: &str, login: &str) -> String {
        fill(&fill(MEMBER_PASSWORD, "team", team), "login", login)
    }

    pub fn member_sessions(team: &str, login: &str) -> String {
        fill(&fill(MEMBER_SESSIONS, "team", team), "login", login)
    }

    pub fn sites() -> &'static str {
        SITES
    }

    pub fn site(site: &str) -> String {
        fill(SITE, "site", site)
    }

    pub fn site_build_settings(site: &str) -> String {
        fill(SITE_BUILD_SETTINGS, "site", site)
    }

    pub fn site_build_paths(site: &str) -> String {
        fill(SITE_BUILD_PATHS, "site", site)
    }

    pub fn site_protection(site: &str) -> String {
        fill(SITE_PROTECTION, "site", site)
    }

    pub fn site_https(site: &str) -> String {
        fill(SITE_HTTPS, "site", site)
    }

    pub fn certificates() -> &'static str {
        CERTIFICATES
    }

    pub fn certificate(hostname: &str) -> String {
        fill(CERTIFICATE, "hostname", hostname)
    }

    pub fn site_identity(site: &str) -> String {
        fill(SITE_IDENTITY, "site", site)
    }

    pub fn site_share_links(site: &str) -> String {
        fill(SITE_SHARE_LINKS, "site", site)
    }

    pub fn site_env(site: &str) -> String {
        fill(SITE_ENV, "site", site)
    }

    pub fn site_env_var(site: &str, name: &str) -> String {
        fill(&fill(SITE_ENV_VAR, "site", site), "name", name)
    }

    pub fn site_build_hooks(site: &str) -> String {
        fill(SITE_BUILD_HOOKS, "site", site)
    }

    pub fn site_build_hook(site: &str, id: i64) -> String {
        fill(&fill(SITE_BUILD_HOOK, "site", site), "id", id)
    }

    pub fn site_domains(site: &str) -> String {
        fill(SITE_DOMAINS, "site", site)
    }

    pub fn site_domain(site: &str, hostname: &str) -> String {
        fill(&fill(SITE_DOMAIN, "site", site), "hostname", hostname)
    }

    pub fn site_domain_verify(site: &str, hostname: &str) -> String {
        fill(&fill(SITE_DOMAIN_VERIFY, "site", site), "hostname", hostname)
    }

    pub fn team_settings(team: &str) -> String {
        fill(TEAM_SETTINGS, "team", team)
    }

    pub fn team_invitations(team: &str) -> String {
        fill(TEAM_INVITATIONS, "team", team)
    }

    pub fn team_invitation(team: &str, id: i64) -> String {
        fill(&fill(TEAM_INVITATION, "team", team), "id", id)
    }

    pub fn site_schedules(site: &str) -> String {
        fill(SITE_SCHEDULES, "site", site)
    }

    pub fn site_schedule(site: &str, id: i64) -> String {
        fill(&fill(SITE_SCHEDULE, "site", site), "id", id)
    }

    pub fn site_notifications(site: &str) -> String {
        fill(SITE_NOTIFICATIONS, "site", site)
    }

    pub fn site_notification(site: &str, id: i64) -> String {
        fill(&fill(SITE_NOTIFICATION, "site", site), "id", id)
    }

    pub fn site_notification_deliveries(site: &str, id: i64) -> String {
        fill(&fill(SITE_NOTIFICATION_DELIVERIES, "site", site), "id", id)
    }

    pub fn site_lock(site: &str) -> String {
        fill(SITE_LOCK, "site", site)
    }

    pub fn site_unlock(site: &str) -> String {
        fill(SITE_UNLOCK, "site", site)
    }

    pub fn site_builds(site: &str) -> String {
        fill(SITE_BUILDS, "site", site)
    }

    pub fn site_deploys(site: &str) -> String {
        fill(SITE_DEPLOYS, "site", site)
    }

    fn deploy_path(pattern: &str, site: &str, deploy: &str) -> String {
        fill(&fill(pattern, "site", site), "deploy", deploy)
    }

    pub fn deploy_diff(site: &str, deploy: &str) -> String {
        deploy_path(DEPLOY_DIFF, site, deploy)
    }

    pub fn deploy_publish(site: &str, deploy: &str) -> String {
        deploy_path(DEPLOY_PUBLISH, site, deploy)
    }

    pub fn deploy_finalize(site: &str, deploy: &str) -> String {
        deploy_path(DEPLOY_FINALIZE, site, deploy)
    }

    pub fn build(id: i64) -> String {
        fill(BUILD, "id", id)
    }

    pub fn build_log(id: i64) -> String {
        fill(BUILD_LOG, "id", id)
    }

    pub fn build_log_stream(id: i64) -> String {
        fill(BUILD_LOG_STREAM, "id", id)
    }

    pub fn build_cancel(id: i64) -> String {
        fill(BUILD_CANCEL, "id", id)
    }

    pub fn build_retry(id: i64) -> String {
        fill(BUILD_RETRY, "id", id)
    }

    pub fn blob(sha256: &str) -> String {
        fill(BLOB, "sha256", sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::{api, runner};

    /// A client's path must be one the router matches: the pattern with
    /// each placeholder replaced by one path segment, plus any query.
    fn matches(pattern: &str, path: &str) -> bool {
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        let (pattern, path): (Vec<_>, Vec<_>) = (pattern.split('/').collect(), path.split('/').collect());
        pattern.len() == path.len()
            && pattern.iter().zip(&path).all(|(p, s)| {
                if p.starts_with('{') && p.ends_with('}') {
                    !s.is_empty() && !s.contains('{')
                } else {
                    p == s
                }
            })
    }

    #[test]
    fn every_runner_path_a_client_calls_is_one_the_controller_registers() {
        let sha = "a".repeat(64);
        for (pattern, path) in [
            (runner::REGISTER, runner::register().to_owned()),
            (runner::CONNECT, runner::connect().to_owned()),
            (runner::LEASE, runner::lease().to_owned()),
            (runner::HEARTBEAT, runner::heartbeat(7, 20)),
            (runner::COMMIT, runner::commit(7)),
            (runner::LOG, runner::job_log(7, 1024)),
            (runner::DEPLOY, runner::deploy(7)),
            (runner::FINALIZE, runner::finalize(7)),
            (runner::COMPLETE, runner::complete(7)),
            (runner::HAND_BACK, runner::hand_back(7)),
            (runner::BLOB, runner::blob(&sha)),
            (runner::BLOB_BUNDLES, runner::BLOB_BUNDLES.to_owned()),
        ] {
            assert!(matches(pattern, &path), "{path} does not match {pattern}");
        }
        assert_eq!(
            runner::heartbeat(7, 20),
            "/runner/v1/jobs/7/heartbeat?wait_seconds=20"
        );
        assert_eq!(runner::job_log(7, 1024), "/runner/v1/jobs/7/log?offset=1024");
        assert_eq!(runner::blob("ab"), "/runner/v1/blobs/ab");
    }

    #[test]
    fn every_api_path_the_cli_calls_is_one_the_controller_registers() {
        let (site, deploy) = ("blog", "d1");
        for (pattern, path) in [
            (api::SITES, api::sites().to_owned()),
            (api::SITE, api::site(site)),
            (api::SITE_BUILD_SETTINGS, api::site_build_settings(site)),
            (api::SITE_BUILD_PATHS, api::site_build_paths(site)),
            (api::SITE_PROTECTION, api::site_protection(site)),
            (api::SITE_SHARE_LINKS, api::site_share_links(site)),
            (api::SITE_IDENTITY, api::site_identity(site)),
            (api::SITE_ENV, api::site_env(site)),
            (api::SITE_ENV_VAR, api::site_env_var(site, "HUGO_ENV")),
            (api::SITE_BUILD_HOOKS, api::site_build_hooks(site)),
            (api::SITE_BUILD_HOOK, api::site_build_hook(site, 3)),
            (api::SITE_DOMAINS, api::site_domains(site)),
            (api::SITE_DOMAIN, api::site_domain(site, "www.example.com")),
            (
                api::SITE_DOMAIN_VERIFY,
                api::site_domain_verify(site, "example.com"),
            ),
            (api::SITE_SCHEDULES, api::site_schedules(site)),
            (api::SITE_SCHEDULE, api::site_schedule(site, 4)),
            (api::SITE_NOTIFICATIONS, api::site_notifications(site)),
            (api::SITE_NOTIFICATION, api::site_notification(site, 3)),
            (
                api::SITE_NOTIFICATION_DELIVERIES,
                api::site_notification_deliveries(site, 3),
            ),
            (api::SITE_LOCK, api::site_lock(site)),
            (api::TEAM_SETTINGS, api::team_settings("web")),
            (api::TEAM_INVITATIONS, api::team_invitations("web")),
            (api::TEAM_INVITATION, api::team_invitation("web", 5)),
            (api::SITE_UNLOCK, api::site_unlock(site)),
            (api::SITE_BUILDS, api::site_builds(site)),
            (api::SITE_DEPLOYS, api::site_deploys(site)),
            (api::DEPLOY_DIFF, api::deploy_diff(site, deploy)),
            (api::DEPLOY_PUBLISH, api::deploy_publish(site, deploy)),
            (api::DEPLOY_FINALIZE, api::deploy_finalize(site, deploy)),
            (api::BUILD, api::build(7)),
            (api::BUILD_LOG, api::build_log(7)),
            (api::BUILD_LOG_STREAM, api::build_log_stream(7)),
            (api::BUILD_CANCEL, api::build_cancel(7)),
            (api::BUILD_RETRY, api::build_retry(7)),
            (api::BLOB, api::blob("ab")),
            (api::BLOB_BUNDLES, api::BLOB_BUNDLES.to_owned()),
        ] {
            assert!(pattern.starts_with(api::PREFIX), "{pattern}");
            assert!(matches(pattern, &path), "{path} does not match {pattern}");
        }
        assert_eq!(api::site_env_var("blog", "KEY"), "/api/v1/sites/blog/env/KEY");
        assert_eq!(
            api::deploy_diff("blog", "d1"),
            "/api/v1/sites/blog/deploys/d1/diff"
        );
    }
}
