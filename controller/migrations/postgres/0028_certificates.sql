-- Certificates the TLS listener serves, shared by every controller on this
-- database. `hostname` is an exact name or a wildcard one label deep
-- (`*.example.com`). The private key is sealed with the controller's key
-- (secrets.rs), never stored in clear. `source` is `uploaded` (brought by
-- an administrator) or `acme` (issued by the ACME client).

CREATE TABLE certificates (
    hostname TEXT PRIMARY KEY,
    chain_pem TEXT NOT NULL,
    key_sealed TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    source TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Answers to ACME HTTP-01 challenges, served on the plain HTTP listener at
-- /.well-known/acme-challenge/{token} for any hostname until they expire.

CREATE TABLE acme_http_challenges (
    token TEXT PRIMARY KEY,
    key_authorization TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- How a site's hostnames answer over HTTP and HTTPS: whether plain HTTP is
-- redirected to HTTPS (when the controller has an HTTPS listener), and the
-- Strict-Transport-Security header sent over TLS (none while max-age is 0).

CREATE TABLE site_transport (
    site_id BIGINT PRIMARY KEY REFERENCES sites (id),
    https_redirect BIGINT NOT NULL DEFAULT 1,
    hsts_max_age_seconds BIGINT NOT NULL DEFAULT 0,
    hsts_include_subdomains BIGINT NOT NULL DEFAULT 0,
    hsts_preload BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
