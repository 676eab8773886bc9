-- Invitations to a team, by link. The link carries a random token; only
-- its SHA-256 is kept (as for API tokens), so the table cannot be read
-- back into links. An invitation addressed to a GitHub login or an e-mail
-- may be accepted only by a user whose linked identity matches, and is
-- claimed at that person's sign-in. One use: `accepted_at` is set by a
-- single conditional UPDATE, so two people racing cannot both join.
CREATE TABLE team_invitations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    team_id      INTEGER NOT NULL REFERENCES teams (id),
    role         TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    token_hash   TEXT    NOT NULL UNIQUE,
    github_login TEXT,
    email        TEXT,
    invited_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    accepted_by  INTEGER REFERENCES users (id),
    accepted_at  INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX team_invitations_team ON team_invitations (team_id);
