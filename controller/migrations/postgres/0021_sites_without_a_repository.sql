-- A site made only for direct deploys (`jamstack deploy`) has no repository
-- until one is connected.
ALTER TABLE sites ALTER COLUMN repo_url DROP NOT NULL;
