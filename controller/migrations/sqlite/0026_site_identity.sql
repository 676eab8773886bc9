-- How a site's `Role` rules verify the visitor's `nf_jwt` token: one key
-- per site. `kind` is `hs256` (`value`: the shared secret, sealed),
-- `public_key` (`value`: an RS256 or ES256 public key, PEM) or `jwks_url`
-- (`value`: where the keys are fetched from).

CREATE TABLE site_identity (
    site_id INTEGER PRIMARY KEY REFERENCES sites (id),
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
