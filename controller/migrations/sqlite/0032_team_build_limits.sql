-- A team's own limit on builds running at once across all its sites
-- (0: none), set by its owners; the lease claim enforces it.
ALTER TABLE teams ADD COLUMN max_concurrent_builds INTEGER NOT NULL DEFAULT 0;
