-- Timestamps are Unix milliseconds (INTEGER) so the same queries run on
-- SQLite and PostgreSQL through sqlx's Any driver.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Admin and runner tokens. Only the SHA-256 of a token is stored.
CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,          -- 'admin' | 'runner'
    name       TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE sites (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL UNIQUE,
    repo_url            TEXT    NOT NULL,
    github_repo         TEXT,             -- 'owner/name', matches webhooks
    production_branch   TEXT    NOT NULL,
    published_deploy_id TEXT,
    publish_locked      INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL
);
CREATE INDEX sites_github_repo ON sites (github_repo);

CREATE TABLE builds (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id        INTEGER NOT NULL REFERENCES sites (id),
    context        TEXT    NOT NULL,
    branch         TEXT    NOT NULL,
    commit_sha     TEXT    NOT NULL,
    commit_message TEXT,
    author         TEXT,
    trigger        TEXT    NOT NULL,      -- 'webhook' | 'api' | 'demo'
    state          TEXT    NOT NULL,      -- queued | running | succeeded | failed | cancelled
    exit_code      INTEGER,
    error          TEXT,
    deploy_id      TEXT,
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER
);
CREATE INDEX builds_site ON builds (site_id, id);

-- The unit a runner leases. One build has one job; each lease of it is an
-- attempt with its own log.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    build_id         INTEGER NOT NULL UNIQUE REFERENCES builds (id),
    state            TEXT    NOT NULL,    -- queued | leased | done
    attempt          INTEGER NOT NULL DEFAULT 0,
    lease_id         TEXT,
    runner_name      TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
);
CREATE INDEX jobs_state ON jobs (state, id);

-- Build logs, appended by byte offset per attempt.
CREATE TABLE log_chunks (
    build_id    INTEGER NOT NULL REFERENCES builds (id),
    attempt     INTEGER NOT NULL,
    byte_offset INTEGER NOT NULL,
    data        BLOB    NOT NULL,
    PRIMARY KEY (build_id, attempt, byte_offset)
);

-- Content-addressed blobs held by the blob store.
CREATE TABLE blobs (
    sha256     TEXT    PRIMARY KEY,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE deploys (
    id          TEXT    PRIMARY KEY,
    site_id     INTEGER NOT NULL REFERENCES sites (id),
    build_id    INTEGER REFERENCES builds (id),
    context     TEXT    NOT NULL,
    branch      TEXT    NOT NULL,
    commit_sha  TEXT    NOT NULL,
    state       TEXT    NOT NULL,         -- uploading | ready
    file_count  INTEGER NOT NULL,
    total_size  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    ready_at    INTEGER
);
CREATE INDEX deploys_site ON deploys (site_id, created_at);

CREATE TABLE deploy_files (
    deploy_id TEXT    NOT NULL REFERENCES deploys (id),
    path      TEXT    NOT NULL,
    sha256    TEXT    NOT NULL,
    size      INTEGER NOT NULL,
    mode      INTEGER NOT NULL,
    PRIMARY KEY (deploy_id, path)
);
