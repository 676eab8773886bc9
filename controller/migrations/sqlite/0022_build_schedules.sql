-- Scheduled builds: a cron expression read in an IANA time zone, per site.
-- `next_run_at` is the tick the schedule waits for; a controller claims a
-- tick by moving it on (`UPDATE ... WHERE next_run_at = <the tick>`), so
-- controllers sharing the database build each tick once, and a schedule
-- that fell behind while every controller was down builds once, then moves
-- to the next tick after now.

CREATE TABLE build_schedules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id     INTEGER NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    cron        TEXT    NOT NULL,               -- as given, 5 or 6 fields (seconds first)
    time_zone   TEXT    NOT NULL DEFAULT 'UTC', -- IANA name, e.g. Europe/Paris
    branch      TEXT,                           -- NULL: the site's production branch
    title       TEXT,                           -- the reason its builds show; NULL: made from cron and zone
    next_run_at INTEGER NOT NULL,               -- the next tick, Unix milliseconds
    last_run_at INTEGER,                        -- the last tick claimed
    created_at  INTEGER NOT NULL
);
CREATE INDEX build_schedules_site ON build_schedules (site_id);
CREATE INDEX build_schedules_next_run ON build_schedules (next_run_at);
