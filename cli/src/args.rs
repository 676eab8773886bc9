//! The command line, as clap parses it.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error (the controller refused the request, or it could not be reached)
  2  usage error (unknown command or option, bad value, no controller URL)
  3  not found (unknown site, build or deploy)
  4  not authorised (no token, bad token, or a token without the scope needed)
  5  the build failed or was cancelled (`builds logs --follow`, `builds trigger --wait`)

The controller's URL and token come from --url/--token, then JAMSTACK_URL/JAMSTACK_TOKEN,
then the file `jamstack login` saves ($JAMSTACK_CONFIG, or $XDG_CONFIG_HOME/jamstack/config.toml).";

/// The command-line client of a jamstack controller: sites, builds,
/// deploys, and deploying a local folder.
#[derive(Debug, Parser)]
#[command(name = "jamstack", version, after_long_help = EXIT_CODES, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The controller's URL, e.g. https://ci.example.com
    #[arg(long, global = true, env = "JAMSTACK_URL")]
    pub url: Option<String>,
    /// An API token (the admin token or one made on the dashboard)
    #[arg(long, global = true, env = "JAMSTACK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of tables, for scripts
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a token against the controller and save the URL and token
    Login,
    /// Sites: list, show, create, settings, environment variables
    #[command(subcommand)]
    Sites(SitesCommand),
    /// Builds: trigger, list, show, logs, cancel, retry
    #[command(subcommand)]
    Builds(BuildsCommand),
    /// Deploys: list, publish, rollback, lock, unlock, diff
    #[command(subcommand)]
    Deploys(DeploysCommand),
    /// Build hooks: URLs a CMS POSTs to to rebuild a site
    #[command(subcommand)]
    BuildHooks(BuildHooksCommand),
    /// Custom domains: add, list (with the TXT record to add), verify, remove
    #[command(subcommand)]
    Domains(DomainsCommand),
    /// Scheduled builds: cron expressions in a time zone
    #[command(subcommand)]
    Schedules(SchedulesCommand),
    /// Notifications: signed webhooks, Slack-compatible chat messages and e-mails on build and deploy events
    #[command(subcommand)]
    Notifications(NotificationsCommand),
    /// TLS certificates the controller's HTTPS listener serves: upload, list, remove (admin token)
    #[command(subcommand)]
    Certificates(CertificatesCommand),
    /// Teams: settings and invitations (owners)
    #[command(subcommand)]
    Teams(TeamsCommand),
    /// Your account: dashboard sessions (list, end) and your password; a member's, for a team owner
    #[command(subcommand)]
    Account(AccountCommand),
    /// Deploy a local folder directly, uploading only files the controller lacks
    Deploy(DeployArgs),
    /// Print a shell completion script (e.g. `jamstack completions bash > /etc/bash_completion.d/jamstack`)
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// List your live dashboard sessions (needs a member's token)
    Sessions,
    /// End one of your dashboard sessions at once
    EndSession { id: i64 },
    /// Change your password: stdin holds the current one, then the new one, a line each
    SetPassword,
    /// List a member's dashboard sessions (a team owner, or the admin token)
    MemberSessions { team: String, login: String },
    /// End every dashboard session of a member (a team owner, or the admin token)
    EndMemberSessions { team: String, login: String },
    /// Set a member's password, read from the first line of stdin (a team owner, or the admin token)
    SetMemberPassword { team: String, login: String },
}

#[derive(Debug, Subcommand)]
pub enum SitesCommand {
    /// List sites
    List,
    /// Show one site
    Show { site: String },
    /// Create a site, connected to a repository or (without one) for direct deploys
    Create(CreateSiteArgs),
    /// Connect a repository to a site (one made for direct deploys, or another repository)
    Update(UpdateSiteArgs),
    /// Show a site's settings, or change them with --set key=value
    Settings {
        site: String,
        /// A setting to change, e.g. --set production_branch=main --set timeout_seconds=600
        /// (`default` resets a build limit to the runner's default; `base` and
        /// `watch_paths=a/**,b/**` place a site in a monorepo)
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// A site's environment variables
    Env {
        site: String,
        #[command(subcommand)]
        command: EnvCommand,
    },
    /// Show which hostnames ask for the site's password, or change them
    Protect(ProtectArgs),
    /// Make a link that lets whoever opens it see a protected hostname until it expires
    ShareLink(ShareLinkArgs),
    /// Show whether plain HTTP redirects to HTTPS and the HSTS header, or change them
    Https(HttpsArgs),
    /// Show or set the key `Role` rules verify visitors' `nf_jwt` tokens with
    Identity(IdentityArgs),
}

#[derive(Debug, Args)]
pub struct HttpsArgs {
    /// The site's name
    pub site: String,
    /// Redirect plain HTTP to HTTPS (308), when the controller has an HTTPS listener
    #[arg(long)]
    pub redirect: Option<bool>,
    /// Strict-Transport-Security max-age in seconds, sent over HTTPS only; 0 sends none
    #[arg(long)]
    pub hsts_max_age: Option<i64>,
    /// Add `includeSubDomains` to the HSTS header
    #[arg(long)]
    pub hsts_include_subdomains: Option<bool>,
    /// Add `preload` to the HSTS header (needs include-subdomains and a max-age of a year)
    #[arg(long)]
    pub hsts_preload: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum CertificatesCommand {
    /// Store the certificate and key of a hostname (`www.example.com` or `*.example.com`), replacing any earlier one
    Upload {
        hostname: String,
        /// The certificate in PEM, followed by its intermediates
        #[arg(long = "cert")]
        cert: std::path::PathBuf,
        /// The private key in PEM
        #[arg(long)]
        key: std::path::PathBuf,
    },
    /// List stored certificates with the names they cover and when they expire
    List,
    /// Remove the certificate of a hostname
    Remove { hostname: String },
}

#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// The site's name
    pub site: String,
    /// An HS256 secret, read from this variable (kept out of the shell's history)
    #[arg(long, value_name = "VARIABLE", conflicts_with_all = ["public_key_file", "jwks_url", "remove"])]
    pub hs256_secret_env: Option<String>,
    /// An RS256 or ES256 public key, from this PEM file
    #[arg(long, value_name = "FILE", conflicts_with_all = ["jwks_url", "remove"])]
    pub public_key_file: Option<std::path::PathBuf>,
    /// The identity provider's key set (JWKS) URL
    #[arg(long, value_name = "URL", conflicts_with = "remove")]
    pub jwks_url: Option<String>,
    /// Remove the key (`Role` rules then match nobody)
    #[arg(long)]
    pub remove: bool,
}

/// `public` or `password`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Access {
    Public,
    Password,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Password => "password",
        }
    }
}

#[derive(Debug, Args)]
pub struct ProtectArgs {
    /// The site's name
    pub site: String,
    /// The production hostname (`<site>.<domain>`)
    #[arg(long)]
    pub production: Option<Access>,
    /// Deploy previews (`deploy-preview-<n>--<site>`)
    #[arg(long)]
    pub previews: Option<Access>,
    /// Branch deploys (`<branch>--<site>`)
    #[arg(long)]
    pub branch_deploys: Option<Access>,
    /// Permalinks (`<deploy-id>--<site>`)
    #[arg(long)]
    pub permalinks: Option<Access>,
    /// Every hostname of the site at once
    #[arg(long, conflicts_with_all = ["production", "previews", "branch_deploys", "permalinks"])]
    pub all: Option<Access>,
    /// A new password, read from this variable (kept out of the shell's
    /// history); it signs out everyone signed in with the old one
    #[arg(long, value_name = "VARIABLE", conflicts_with = "password_stdin")]
    pub password_env: Option<String>,
    /// A new password, read from stdin
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct ShareLinkArgs {
    /// The site's name
    pub site: String,
    /// A preview or branch hostname (`deploy-preview-12`, `staging`); the production hostname without it
    #[arg(long, conflicts_with = "deploy")]
    pub alias: Option<String>,
    /// A deploy, for its permalink
    #[arg(long)]
    pub deploy: Option<String>,
    /// How long the link lets in, in seconds (at most 30 days)
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    pub expires_in: u64,
}

#[derive(Debug, Args)]
pub struct CreateSiteArgs {
    /// The site's name (it becomes part of its hostnames)
    pub name: String,
    /// Where runners clone from (defaults to the GitHub repository's URL;
    /// without either, the site takes direct deploys only, `jamstack deploy`)
    #[arg(long)]
    pub repo_url: Option<String>,
    /// `owner/name` on GitHub; its pushes and pull requests build the site
    #[arg(long)]
    pub github_repo: Option<String>,
    /// The branch whose builds go live; without it, the GitHub repository's
    /// default branch, as its deliveries name it
    #[arg(long)]
    pub production_branch: Option<String>,
    /// Build pushes to other branches as branch deploys
    #[arg(long)]
    pub branch_deploys: bool,
    /// Do not build deploy previews of pull requests
    #[arg(long)]
    pub no_deploy_previews: bool,
    /// The GitHub App installation that reaches the repository
    #[arg(long)]
    pub github_installation_id: Option<i64>,
    /// A GitHub access token for the repository, read from this variable
    /// (kept out of the shell's history)
    #[arg(long, value_name = "VARIABLE")]
    pub github_token_env: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpdateSiteArgs {
    /// The site's name
    pub site: String,
    /// Where runners clone from (defaults to the GitHub repository's URL)
    #[arg(long)]
    pub repo_url: Option<String>,
    /// `owner/name` on GitHub; its pushes and pull requests build the site
    #[arg(long)]
    pub github_repo: Option<String>,
    /// The branch whose builds go live
    #[arg(long)]
    pub production_branch: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the variables (secret values are never shown)
    List,
    /// Set a variable; VALUE `-` reads it from stdin
    Set {
        name: String,
        value: String,
        /// Mask it in build logs and withhold it from untrusted builds
        #[arg(long)]
        secret: bool,
    },
    /// Remove a variable
    Unset { name: String },
}

#[derive(Debug, Subcommand)]
pub enum BuildsCommand {
    /// Queue a build of a site
    Trigger {
        site: String,
        /// The branch to build (defaults to the production branch)
        #[arg(long)]
        branch: Option<String>,
        /// The exact commit to build, a full 40-hex id (defaults to the branch's head)
        #[arg(long)]
        sha: Option<String>,
        /// Follow the build's log until it ends; exit 5 if it fails or is cancelled
        #[arg(long)]
        wait: bool,
    },
    /// List a site's builds, newest first
    List {
        site: String,
        /// At most this many
        #[arg(long, default_value_t = 30)]
        limit: usize,
    },
    /// Show one build
    Show { id: i64 },
    /// Print a build's log
    Logs {
        id: i64,
        /// Stream the log until the build ends; exit 5 if it fails or is cancelled
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a queued or running build
    Cancel { id: i64 },
    /// Build the same site, commit and context again
    Retry { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum DeploysCommand {
    /// List a site's deploys, newest first
    List {
        site: String,
        /// At most this many
        #[arg(long, default_value_t = 30)]
        limit: usize,
    },
    /// Put a ready deploy live on the site's production hostname
    Publish { site: String, deploy: String },
    /// Publish an earlier deploy: the given one, or the production deploy
    /// before the one live now
    Rollback { site: String, deploy: Option<String> },
    /// Keep production on its current deploy: builds go on but do not publish
    Lock { site: String },
    /// Let production builds publish again
    Unlock { site: String },
    /// The files a deploy adds, changes and removes against another
    /// (by default, the published deploy)
    Diff {
        site: String,
        deploy: String,
        #[arg(long)]
        against: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BuildHooksCommand {
    /// Make a build hook and print its URL (shown this once: keep it secret)
    Create {
        site: String,
        /// What calls it, e.g. `cms`
        name: String,
        /// The branch its builds build (defaults to the production branch)
        #[arg(long)]
        branch: Option<String>,
        /// The reason its builds show, e.g. "content changed"
        #[arg(long)]
        title: Option<String>,
    },
    /// List a site's build hooks (never their URLs)
    List { site: String },
    /// Revoke a build hook: its URL answers 404 from then on
    Revoke {
        site: String,
        /// The hook's id, as `list` shows it
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// Add a domain to a site; it serves the site once a TXT record proves
    /// you control it (at once when added with the admin token)
    Add {
        site: String,
        /// e.g. www.example.com
        hostname: String,
        /// Make it the site's primary domain (the others redirect to it);
        /// also switches the primary to a domain the site has already
        #[arg(long)]
        primary: bool,
    },
    /// List a site's domains, their state, and the TXT record each needs
    List { site: String },
    /// Look up a domain's TXT record now
    Verify { site: String, hostname: String },
    /// Remove a domain: it stops serving at once
    Remove { site: String, hostname: String },
}

#[derive(Debug, Subcommand)]
pub enum TeamsCommand {
    /// Show a team's settings, or change them (its owners)
    Settings {
        team: String,
        /// Builds the team's sites may run at once, all together; 0 for no limit
        #[arg(long)]
        max_concurrent_builds: Option<i64>,
        /// Make people members on signing in: SOURCE=ROLE, e.g. oidc-group:web=developer or
        /// github-org:acme=viewer; repeat for more. The team's rules become exactly these
        #[arg(long, value_name = "SOURCE=ROLE", conflicts_with = "no_auto_join")]
        auto_join: Vec<String>,
        /// Remove every automatic-membership rule (memberships they made end at next sign-in)
        #[arg(long)]
        no_auto_join: bool,
    },
    /// Invite someone to a team: prints a link that lets one person join (shown once)
    Invite {
        team: String,
        /// The role they get: owner, admin, developer or viewer
        #[arg(long)]
        role: String,
        /// Only this GitHub user may accept it (accepted when they sign in with GitHub)
        #[arg(long, conflicts_with = "email")]
        github_login: Option<String>,
        /// Only a person whose sign-in verified this e-mail may accept it
        #[arg(long)]
        email: Option<String>,
        /// Days until the link stops working, 1 to 30 (default 7)
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
    /// List a team's pending invitations
    Invitations { team: String },
    /// Revoke a pending invitation: its link stops working at once
    RevokeInvitation { team: String, id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Build a site on a schedule, e.g. --cron "0 6 * * *" --time-zone Europe/Paris
    Add {
        #[arg(long)]
        site: String,
        /// Five fields (minute hour day-of-month month day-of-week), or six with seconds first
        #[arg(long)]
        cron: String,
        /// The IANA time zone the expression is read in (defaults to UTC)
        #[arg(long)]
        time_zone: Option<String>,
        /// The branch its builds build (defaults to the production branch)
        #[arg(long)]
        branch: Option<String>,
        /// The reason its builds show (defaults to "Scheduled build (<cron> <zone>)")
        #[arg(long)]
        title: Option<String>,
    },
    /// List a site's schedules with their next run
    List {
        #[arg(long)]
        site: String,
    },
    /// Remove a schedule: it builds no more
    Remove {
        #[arg(long)]
        site: String,
        /// The schedule's id, as `list` shows it
        id: i64,
    },
}

/// What a notification hook sends (`--kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NotificationKind {
    /// Signed JSON POSTed to the --to URL (checked with the secret printed once)
    Webhook,
    /// A message POSTed to the --to URL, a Slack-compatible incoming webhook
    /// (Slack, Mattermost, Rocket.Chat, Discord's …/slack URL)
    Slack,
    /// An e-mail to each --to address, through the controller's SMTP server
    Email,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Webhook => "webhook",
            NotificationKind::Slack => "slack",
            NotificationKind::Email => "email",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// Add a hook: `--kind slack --to URL`, `--kind email --to a@example.com`, or a signed webhook `--to URL`
    Add {
        site: String,
        #[arg(long, value_enum, default_value_t = NotificationKind::Webhook)]
        kind: NotificationKind,
        /// Where it sends: the URL a webhook or chat message is POSTed
        /// to, or an address an e-mail goes to (repeat for more, up to 20).
        /// (`--url` is the controller's.)
        #[arg(long = "to", value_name = "URL|ADDRESS", required = true)]
        to: Vec<String>,
        /// An event to send (repeat for more); every event when left out
        #[arg(long = "event", value_name = "EVENT")]
        events: Vec<String>,
        /// A webhook's signing secret (16 to 256 characters); made and
        /// printed once when left out
        #[arg(long)]
        secret: Option<String>,
    },
    /// List a site's hooks (a chat URL shows only its host)
    List { site: String },
    /// Remove a hook and its delivery log
    Remove {
        site: String,
        /// The hook's id, as `list` shows it
        id: i64,
    },
    /// A hook's latest deliveries, newest first, with why they failed
    Deliveries {
        site: String,
        /// The hook's id, as `list` shows it
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The folder to deploy (its files, not the folder itself)
    pub dir: PathBuf,
    /// The site to deploy to
    #[arg(long)]
    pub site: String,
    /// Publish it on the site's production hostname
    #[arg(long, conflicts_with = "draft")]
    pub prod: bool,
    /// Do not publish: reachable only at its permalink (the default)
    #[arg(long)]
    pub draft: bool,
    /// The branch the files were built from (defaults to the production branch)
    #[arg(long)]
    pub branch: Option<String>,
    /// What this deploy is, in a few words
    #[arg(long, short = 'm')]
    pub title: Option<String>,
}
