-- Protected sites: each kind of hostname a site has (its production
-- hostname, deploy previews, branch deploys, permalinks) is `public` or
-- `password`. One password per site, stored as an argon2 hash;
-- `password_generation` moves on whenever the password changes, so every
-- access cookie signed for an older generation stops opening the site.

CREATE TABLE site_protection (
    site_id BIGINT PRIMARY KEY REFERENCES sites (id),
    production TEXT NOT NULL DEFAULT 'public',
    previews TEXT NOT NULL DEFAULT 'public',
    branch_deploys TEXT NOT NULL DEFAULT 'public',
    permalinks TEXT NOT NULL DEFAULT 'public',
    password_hash TEXT,
    password_generation BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
