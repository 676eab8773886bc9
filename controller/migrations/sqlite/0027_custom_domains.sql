-- Custom domains: hostnames outside the platform's own domain that serve a
-- site's production deploy. A hostname belongs to one site in the whole
-- installation (stored normalised: lowercase ASCII, IDNA applied, no
-- trailing dot). Nothing is served or certified for it until it is
-- verified: by a TXT record `_jamstack-challenge.<hostname>` holding
-- `verification_token` (`verified_by = 'dns'`), or by an admin adding it
-- (`verified_by = 'admin'`). A site with domains has exactly one primary;
-- the others answer with a permanent redirect to it.

CREATE TABLE domains (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id            INTEGER NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    hostname           TEXT    NOT NULL UNIQUE,
    is_primary         INTEGER NOT NULL DEFAULT 0,
    verification_token TEXT    NOT NULL,
    verified_at        INTEGER,
    verified_by        TEXT,               -- 'dns' or 'admin'; NULL until verified
    last_checked_at    INTEGER,
    last_error         TEXT,               -- why the last check failed, for the user
    check_attempts     INTEGER NOT NULL DEFAULT 0,
    next_check_at      INTEGER,            -- NULL: no background check due (verified, or given up)
    created_at         INTEGER NOT NULL
);
CREATE INDEX domains_site ON domains (site_id);
CREATE UNIQUE INDEX domains_one_primary_per_site ON domains (site_id) WHERE is_primary = 1;
CREATE INDEX domains_next_check ON domains (next_check_at);
