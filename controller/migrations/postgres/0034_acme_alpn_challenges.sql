-- Answers to ACME TLS-ALPN-01 challenges: the self-signed certificate (DER,
-- base64) every controller's TLS listener offers to a ClientHello for
-- `hostname` asking ALPN `acme-tls/1`, whichever controller the CA reaches.
-- The key is sealed like certificate keys. Kept until the order ends, or
-- `expires_at` should the controller placing it stop first.

CREATE TABLE acme_alpn_challenges (
    hostname TEXT PRIMARY KEY,
    certificate_der TEXT NOT NULL,
    key_sealed TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
