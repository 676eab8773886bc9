-- Pull-request numbers, and the hostname aliases of non-production deploys:
-- `deploy-preview-<pr>--<site>` and `<branch>--<site>` each point at one
-- deploy, moved (like the production pointer) by a single write.

ALTER TABLE builds ADD COLUMN pr_number INTEGER;
ALTER TABLE deploys ADD COLUMN pr_number INTEGER;

CREATE TABLE site_aliases (
    site_id    INTEGER NOT NULL REFERENCES sites (id),
    alias      TEXT    NOT NULL,
    deploy_id  TEXT    NOT NULL REFERENCES deploys (id),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (site_id, alias)
);
