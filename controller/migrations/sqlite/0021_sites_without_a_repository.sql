-- no-transaction
-- A site made only for direct deploys (`jamstack deploy`) has no repository
-- until one is connected: repo_url becomes nullable. SQLite cannot drop a
-- NOT NULL constraint, so the table is made again. Foreign keys are off
-- while it is (dropping `sites` would otherwise delete, or refuse, the rows
-- of every table naming it), which PRAGMA foreign_keys cannot do inside a
-- transaction: hence this migration opens its own.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE sites_with_optional_repository (
    id                              INTEGER PRIMARY KEY AUTOINCREMENT,
    name                            TEXT    NOT NULL UNIQUE,
    repo_url                        TEXT,             -- NULL: direct deploys only
    github_repo                     TEXT,             -- 'owner/name', matches webhooks
    production_branch               TEXT    NOT NULL,
    published_deploy_id             TEXT,
    publish_locked                  INTEGER NOT NULL DEFAULT 0,
    created_at                      INTEGER NOT NULL,
    required_labels                 TEXT    NOT NULL DEFAULT '',
    max_concurrent_builds           INTEGER NOT NULL DEFAULT 1,
    cancel_superseded               INTEGER NOT NULL DEFAULT 0,
    branch_deploys                  INTEGER NOT NULL DEFAULT 0,
    deploy_previews                 INTEGER NOT NULL DEFAULT 1,
    github_installation_id          INTEGER,
    github_token_sealed             TEXT,
    github_hook_id                  INTEGER,
    generic_webhook_secret_sealed   TEXT,
    production_branch_follows_default INTEGER NOT NULL DEFAULT 0
);
INSERT INTO sites_with_optional_repository (
    id, name, repo_url, github_repo, production_branch, published_deploy_id, publish_locked,
    created_at, required_labels, max_concurrent_builds, cancel_superseded, branch_deploys,
    deploy_previews, github_installation_id, github_token_sealed, github_hook_id,
    generic_webhook_secret_sealed, production_branch_follows_default)
SELECT
    id, name, repo_url, github_repo, production_branch, published_deploy_id, publish_locked,
    created_at, required_labels, max_concurrent_builds, cancel_superseded, branch_deploys,
    deploy_previews, github_installation_id, github_token_sealed, github_hook_id,
    generic_webhook_secret_sealed, production_branch_follows_default
FROM sites;
-- Ids of removed sites are not given out again.
UPDATE sqlite_sequence SET seq = (SELECT seq FROM sqlite_sequence WHERE name = 'sites')
    WHERE name = 'sites_with_optional_repository';
DROP TABLE sites;
ALTER TABLE sites_with_optional_repository RENAME TO sites;
CREATE INDEX sites_github_repo ON sites (github_repo);
COMMIT;
PRAGMA foreign_keys = ON;
