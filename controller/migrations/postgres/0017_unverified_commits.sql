-- A commit picked by hand with a token that may build but not change the
-- site is not known to be the site's code. 1 until a runner reports it
-- reachable from the build's branch; until then the build gets no secret
-- variables and its deploy is never published to production.
ALTER TABLE builds ADD COLUMN commit_unverified BIGINT NOT NULL DEFAULT 0;
