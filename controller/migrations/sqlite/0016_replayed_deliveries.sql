-- A captured webhook delivery replayed under a new delivery id carries the
-- same signed body (the sender cannot sign another without the secret):
-- a claimed delivery keeps '<source>:<SHA-256 of its body>', and a second
-- claim of the same body under another id is a duplicate. NULL for
-- deliveries not claimed (refused, duplicates), which may repeat.
ALTER TABLE webhook_deliveries ADD COLUMN body_key TEXT;
CREATE UNIQUE INDEX webhook_deliveries_body ON webhook_deliveries (body_key);

-- A push of a commit a branch already built is told apart by reading the
-- branch's newest build and its newest build of that commit.
CREATE INDEX builds_branch_history ON builds (site_id, branch, id);
CREATE INDEX builds_branch_commit ON builds (site_id, branch, commit_sha, id);
