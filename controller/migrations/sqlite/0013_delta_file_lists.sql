-- A deploy may store its file list as a delta against a base deploy of the
-- same site: only the paths added or changed since the base, and removal
-- rows (sha256 NULL) for the paths the base has and the deploy does not.
-- A deploy without a base stores every file, as before. chain_depth counts
-- the deltas between a deploy and the full list at the bottom of its chain
-- (0 for a full list), so recording a manifest can bound it.
ALTER TABLE deploys ADD COLUMN base_deploy_id TEXT REFERENCES deploys (id);
ALTER TABLE deploys ADD COLUMN chain_depth INTEGER NOT NULL DEFAULT 0;
-- Removing a deploy finds the deploys based on it.
CREATE INDEX deploys_base ON deploys (base_deploy_id);

-- SQLite cannot drop a NOT NULL constraint: the table is made again.
CREATE TABLE deploy_files_with_removals (
    deploy_id TEXT    NOT NULL REFERENCES deploys (id),
    path      TEXT    NOT NULL,
    sha256    TEXT,                -- NULL: the path is removed relative to the base
    size      INTEGER NOT NULL,
    mode      INTEGER NOT NULL,
    PRIMARY KEY (deploy_id, path)
);
INSERT INTO deploy_files_with_removals (deploy_id, path, sha256, size, mode)
    SELECT deploy_id, path, sha256, size, mode FROM deploy_files;
DROP TABLE deploy_files;
ALTER TABLE deploy_files_with_removals RENAME TO deploy_files;
CREATE INDEX deploy_files_sha256 ON deploy_files (sha256);
