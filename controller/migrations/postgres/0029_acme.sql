-- ACME (RFC 8555): the account at each CA, and one row per hostname that
-- should have a certificate, saying how far it got.
--
-- The account's credentials (its private key) are sealed with the
-- controller's key (secrets.rs); one account per directory URL, shared by
-- every controller on this database.
--
-- A controller works on a hostname only while it holds it: it claims the
-- row with one conditional UPDATE (held_until in the past), so of several
-- controllers exactly one places an order for a name at a time. A crashed
-- holder's claim runs out and another takes the name over.

CREATE TABLE acme_accounts (
    directory_url      TEXT    PRIMARY KEY,
    credentials_sealed TEXT    NOT NULL, -- instant-acme's credentials, JSON, sealed
    contact_email      TEXT,
    created_at         BIGINT  NOT NULL
);

CREATE TABLE acme_orders (
    hostname        TEXT    PRIMARY KEY,      -- an exact name, or *.<domain>
    challenge       TEXT    NOT NULL,         -- http-01 | tls-alpn-01 | dns-01
    state           TEXT    NOT NULL,         -- waiting | issuing | active | failed
    last_error_type TEXT,                     -- the ACME problem type, or `client`
    last_error      TEXT,                     -- the problem's detail
    attempts        BIGINT  NOT NULL DEFAULT 0, -- failures since the last success
    next_attempt_at BIGINT  NOT NULL,         -- due then: first try, renewal, or retry
    held_by         TEXT,                     -- the controller working on it
    held_until      BIGINT  NOT NULL DEFAULT 0,
    not_before      BIGINT,                   -- of the certificate last issued
    not_after       BIGINT, 
    renew_at        BIGINT, 
    issued_at       BIGINT, 
    updated_at      BIGINT  NOT NULL
);
CREATE INDEX acme_orders_due ON acme_orders (next_attempt_at);
