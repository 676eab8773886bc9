-- Build hooks: named URLs (`POST /hooks/build/<id>`) that start a build of a
-- site, for a headless CMS that can POST but not sign. The id in the URL is
-- the only credential, so only its SHA-256 is kept, as with tokens.

CREATE TABLE build_hooks (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id        INTEGER NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    url_id_hash    TEXT    NOT NULL UNIQUE,  -- SHA-256 (hex) of the id in the hook's URL
    trigger_branch TEXT,                     -- NULL: the site's production branch
    trigger_title  TEXT,                     -- the reason its builds show
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER
);
CREATE INDEX build_hooks_site ON build_hooks (site_id);

-- Why a build was asked for, beyond its trigger: a build hook's title, and
-- the body its caller POSTed (text, bounded by the endpoint).
ALTER TABLE builds ADD COLUMN trigger_title TEXT;
ALTER TABLE builds ADD COLUMN trigger_payload TEXT;
