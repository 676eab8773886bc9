-- Monorepos: `base` is the folder of the repository a site lives in (its
-- jamstack.toml is read there; empty for the root), `watch_paths` lists, one
-- per line, globs relative to the repository root whose changes build the
-- site. A push that changes nothing under them is recorded as skipped.

ALTER TABLE site_build_settings ADD COLUMN base TEXT NOT NULL DEFAULT '';
ALTER TABLE site_build_settings ADD COLUMN watch_paths TEXT NOT NULL DEFAULT '';
