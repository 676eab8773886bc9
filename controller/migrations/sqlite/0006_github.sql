-- Connecting repositories: per-site build settings and GitHub credentials,
-- every webhook delivery with its outcome, the repositories GitHub App
-- installations reach, and what was reported back to GitHub.

-- Whether pushes to branches other than the production branch build
-- branch deploys (off, as on Netlify), and whether pull requests build
-- deploy previews (on).
ALTER TABLE sites ADD COLUMN branch_deploys INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sites ADD COLUMN deploy_previews INTEGER NOT NULL DEFAULT 1;
-- The GitHub App installation that reaches the repository, when given at
-- connect time; otherwise it is looked up in github_installation_repos.
ALTER TABLE sites ADD COLUMN github_installation_id INTEGER;
-- A personal access token for GitHub's API, sealed (encrypted and
-- authenticated) with the controller's secret key; never stored in clear.
ALTER TABLE sites ADD COLUMN github_token_sealed TEXT;
-- The repository webhook registered with that token.
ALTER TABLE sites ADD COLUMN github_hook_id INTEGER;
-- The secret of the site's generic signed webhook, sealed like the token.
ALTER TABLE sites ADD COLUMN generic_webhook_secret_sealed TEXT;

-- Pull requests from forks run code nobody with access to the repository
-- wrote: runners keep such builds apart (caches, secrets).
ALTER TABLE builds ADD COLUMN from_fork INTEGER NOT NULL DEFAULT 0;
-- Why a build in state 'skipped' built nothing.
ALTER TABLE builds ADD COLUMN skip_reason TEXT;

-- Every webhook delivery, authenticated or not, with what was done.
-- dedupe_key is '<source>:<delivery id>' for authenticated deliveries only
-- (NULL otherwise, so an unsigned request can never claim a delivery id);
-- its uniqueness is what handles a redelivery once.
CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT    NOT NULL,          -- 'github' | 'generic'
    delivery_id TEXT,
    dedupe_key  TEXT    UNIQUE,
    event       TEXT    NOT NULL,
    action      TEXT,
    repository  TEXT,
    outcome     TEXT    NOT NULL,          -- processing | queued | skipped | ignored | recorded | duplicate | rejected | failed
    message     TEXT    NOT NULL,
    build_ids   TEXT    NOT NULL DEFAULT '',  -- comma-separated
    received_at INTEGER NOT NULL,
    handled_at  INTEGER
);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);

-- GitHub App installations and the repositories each one reaches, kept by
-- installation and installation_repositories events (and learnt from any
-- delivery that names an installation).
CREATE TABLE github_installations (
    id         INTEGER PRIMARY KEY,        -- GitHub's installation id
    account    TEXT    NOT NULL,
    suspended  INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

CREATE TABLE github_installation_repos (
    installation_id INTEGER NOT NULL,
    full_name       TEXT    NOT NULL,      -- 'owner/name' as GitHub spells it
    PRIMARY KEY (installation_id, full_name)
);

-- What has been reported to GitHub for a build, so every report is sent
-- once, and so a restarted controller can catch up on what it missed.
CREATE TABLE github_build_reports (
    build_id         INTEGER PRIMARY KEY REFERENCES builds (id),
    status_sent      TEXT,                 -- '<state>:<description>' of the last commit status
    deployment_id    INTEGER,              -- GitHub's id of this build's deployment
    environment      TEXT,
    deployment_state TEXT,
    comment_sent     TEXT,                 -- the build state last written in the PR comment
    build_state      TEXT,                 -- the build state whose report is complete
    updated_at       INTEGER NOT NULL
);

-- The one pull-request comment per site and pull request, edited in place.
CREATE TABLE github_pr_comments (
    site_id    INTEGER NOT NULL REFERENCES sites (id),
    pr_number  INTEGER NOT NULL,
    comment_id INTEGER NOT NULL,
    PRIMARY KEY (site_id, pr_number)
);

-- Hostnames taken down on purpose (a closed pull request, a deleted
-- branch). A build that was already running when that happened still
-- finishes as a deploy, but must not bring the hostname back; a new build
-- for the same pull request or branch does.
CREATE TABLE retired_aliases (
    site_id    INTEGER NOT NULL REFERENCES sites (id),
    alias      TEXT    NOT NULL,
    retired_at INTEGER NOT NULL,
    PRIMARY KEY (site_id, alias)
);
