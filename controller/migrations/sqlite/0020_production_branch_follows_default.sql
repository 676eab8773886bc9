-- 1 when the site was connected without naming its production branch: the
-- branch is then the repository's default branch, as GitHub's deliveries
-- name it (`repository.default_branch`), and follows it when renamed.
-- Naming another branch in the site's settings sets it to 0.
ALTER TABLE sites ADD COLUMN production_branch_follows_default INTEGER NOT NULL DEFAULT 0;
