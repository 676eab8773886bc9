-- Per-site build settings kept on the controller and handed to runners with
-- each lease: limits (capped by the runner's maxima), the timeout, the build
-- cache's generation ("clear cache" moves it on) and environment variables,
-- some of them secret.

CREATE TABLE site_build_settings (
    site_id          INTEGER PRIMARY KEY REFERENCES sites (id),
    timeout_seconds  INTEGER,             -- NULL: the runner's default
    memory_mib       INTEGER,
    cpu_millis       INTEGER,             -- thousandths of a CPU
    pids             INTEGER,
    cache_generation INTEGER NOT NULL DEFAULT 0,
    updated_at       INTEGER NOT NULL
);

-- Secret values are kept so builds can use them; the API never shows them.
CREATE TABLE site_env_vars (
    site_id    INTEGER NOT NULL REFERENCES sites (id),
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    secret     INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (site_id, name)
);
