-- What serving like a CDN and collecting garbage need. Additive only.

-- The key a blob's bytes are stored under. Each upload writes a key of its
-- own (`<sha256>.<random>`), so a sweep that removes an unreferenced blob
-- deletes exactly the bytes of the row it removed, never those a concurrent
-- upload of the same content has just written. NULL: stored under the hash
-- itself (blobs recorded before this migration).
ALTER TABLE blobs ADD COLUMN storage_key TEXT;

-- Precompressed variants, made once at deploy time: one row per blob and
-- encoding ('br', 'gzip'). `variant_sha256` names the compressed bytes (a
-- blob of their own); NULL records that compressing did not pay.
CREATE TABLE blob_variants (
    sha256         TEXT    NOT NULL,
    encoding       TEXT    NOT NULL,
    variant_sha256 TEXT,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (sha256, encoding)
);
CREATE INDEX blob_variants_variant ON blob_variants (variant_sha256);

-- A deploy's redirect and header rules as checked JSON: `config_rules` from
-- jamstack.toml (sent with the manifest), `rules` everything the edge
-- applies (`_redirects` and `_headers` first), written at finalize.
CREATE TABLE deploy_rules (
    deploy_id    TEXT PRIMARY KEY REFERENCES deploys (id),
    config_rules TEXT NOT NULL,
    rules        TEXT
);

-- Garbage collection looks blobs up by hash; retention ranks deploys per
-- site and context.
CREATE INDEX deploy_files_sha256 ON deploy_files (sha256);
CREATE INDEX deploys_site_context ON deploys (site_id, context, created_at);
