-- Outgoing notifications: per-site webhooks called on deploy events, and
-- the outbox of their deliveries. A delivery is written in the same
-- moment its event is handled and sent by whichever controller claims it
-- first (claimed_until), so a restart loses none and, with several
-- controllers, each is sent once.

CREATE TABLE notification_hooks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id       INTEGER NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    url           TEXT    NOT NULL,
    events        TEXT    NOT NULL,          -- comma-separated event names, sorted
    secret_sealed TEXT    NOT NULL,          -- sealed with the controller's secret key
    created_at    INTEGER NOT NULL
);
CREATE INDEX notification_hooks_site ON notification_hooks (site_id);

CREATE TABLE notification_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    hook_id         INTEGER NOT NULL REFERENCES notification_hooks (id) ON DELETE CASCADE,
    delivery_id     TEXT    NOT NULL UNIQUE, -- sent as X-Jamstack-Delivery, the same on every attempt
    event           TEXT    NOT NULL,
    payload         TEXT    NOT NULL,        -- the JSON body, fixed when the event happened
    state           TEXT    NOT NULL,        -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER NOT NULL DEFAULT 0,
    last_status     INTEGER,                 -- the receiver's last HTTP status
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (state, next_attempt_at);
CREATE INDEX notification_deliveries_hook ON notification_deliveries (hook_id, id);
