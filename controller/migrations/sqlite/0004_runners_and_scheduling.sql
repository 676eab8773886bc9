-- Registered runners (only token hashes are stored), the labels a job
-- needs, and the scheduling settings of a site.

CREATE TABLE runners (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    labels       TEXT    NOT NULL DEFAULT '',   -- comma-separated, sorted
    slots        INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER,
    revoked_at   INTEGER
);

ALTER TABLE jobs ADD COLUMN required_labels TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN runner_id INTEGER;
ALTER TABLE jobs ADD COLUMN leased_at INTEGER;

ALTER TABLE sites ADD COLUMN required_labels TEXT NOT NULL DEFAULT '';
ALTER TABLE sites ADD COLUMN max_concurrent_builds INTEGER NOT NULL DEFAULT 1;
ALTER TABLE sites ADD COLUMN cancel_superseded INTEGER NOT NULL DEFAULT 0;

-- Per-attempt log bookkeeping: who ran it and how it ended.
CREATE TABLE attempts (
    build_id    INTEGER NOT NULL REFERENCES builds (id),
    attempt     INTEGER NOT NULL,
    runner_name TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    outcome     TEXT,                            -- NULL while running; 'lost' when the lease expired
    PRIMARY KEY (build_id, attempt)
);

-- Superseding looks up a site's builds by context and branch.
CREATE INDEX builds_branch ON builds (site_id, context, branch);
