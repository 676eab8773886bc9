-- Pull-request numbers, and the hostname aliases of non-production deploys:
-- `deploy-preview-<pr>--<site>` and `<branch>--<site>` each point at one
-- deploy, moved (like the production pointer) by a single write.

ALTER TABLE builds ADD COLUMN pr_number BIGINT;
ALTER TABLE deploys ADD COLUMN pr_number BIGINT;

CREATE TABLE site_aliases (
    site_id    BIGINT NOT NULL REFERENCES sites (id),
    alias      TEXT    NOT NULL,
    deploy_id  TEXT    NOT NULL REFERENCES deploys (id),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (site_id, alias)
);
