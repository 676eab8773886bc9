-- Dashboard sign-in sessions. Only the SHA-256 of the session cookie is
-- stored; a session ends at `expires_at` or when its owner signs out.
-- API tokens made from the dashboard live in `tokens` with kind 'api'.

CREATE TABLE sessions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
