-- Per-site build settings kept on the controller and handed to runners with
-- each lease: limits (capped by the runner's maxima), the timeout, the build
-- cache's generation ("clear cache" moves it on) and environment variables,
-- some of them secret.

CREATE TABLE site_build_settings (
    site_id          BIGINT PRIMARY KEY REFERENCES sites (id),
    timeout_seconds  BIGINT,             -- NULL: the runner's default
    memory_mib       BIGINT,
    cpu_millis       BIGINT,             -- thousandths of a CPU
    pids             BIGINT,
    cache_generation BIGINT NOT NULL DEFAULT 0,
    updated_at       BIGINT NOT NULL
);

-- Secret values are kept so builds can use them; the API never shows them.
CREATE TABLE site_env_vars (
    site_id    BIGINT NOT NULL REFERENCES sites (id),
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    secret     BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (site_id, name)
);
