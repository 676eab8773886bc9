-- A deploy may store its file list as a delta against a base deploy of the
-- same site: only the paths added or changed since the base, and removal
-- rows (sha256 NULL) for the paths the base has and the deploy does not.
-- A deploy without a base stores every file, as before. chain_depth counts
-- the deltas between a deploy and the full list at the bottom of its chain
-- (0 for a full list), so recording a manifest can bound it.
ALTER TABLE deploys ADD COLUMN base_deploy_id TEXT REFERENCES deploys (id);
ALTER TABLE deploys ADD COLUMN chain_depth BIGINT NOT NULL DEFAULT 0;
-- Removing a deploy finds the deploys based on it.
CREATE INDEX deploys_base ON deploys (base_deploy_id);

-- NULL: the path is removed relative to the base.
ALTER TABLE deploy_files ALTER COLUMN sha256 DROP NOT NULL;
