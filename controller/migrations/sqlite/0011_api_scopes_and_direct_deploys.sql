-- What an API token may do: a space-separated set of scopes (`read`,
-- `builds`, `deploys`, `sites`, `admin`). Tokens made before scopes existed
-- were as good as the admin token; they keep every scope but `admin`
-- (tokens, runners, garbage collection, deliveries), which must now be
-- granted on purpose. The admin token itself has every scope whatever
-- this column says. `last_used_at` is refreshed at most once a minute.
ALTER TABLE tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN last_used_at INTEGER;
UPDATE tokens SET scopes = 'read builds deploys sites' WHERE kind = 'api';

-- A deploy made directly through the API (no build) may carry a title
-- that says what it is.
ALTER TABLE deploys ADD COLUMN title TEXT;
