-- People, teams and roles. A team owns sites; a user is a member of a
-- team with one role (owner, admin, developer, viewer). A user signs in
-- with a local password (an argon2id PHC string; NULL when the user signs
-- in some other way).
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    login         TEXT    NOT NULL UNIQUE,
    password_hash TEXT,
    created_at    INTEGER NOT NULL
);

-- `awaiting_first_admin` marks the team an existing installation's sites
-- were moved to: its owner is the first person who signs in with the admin
-- token, and claiming it clears the mark in the same statement, so two
-- sign-ins racing cannot both become its owner.
CREATE TABLE teams (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    name                 TEXT    NOT NULL UNIQUE,
    awaiting_first_admin INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL
);

CREATE TABLE memberships (
    team_id    INTEGER NOT NULL REFERENCES teams (id),
    user_id    INTEGER NOT NULL REFERENCES users (id),
    role       TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- The first team holds every site made before teams existed.
INSERT INTO teams (name, awaiting_first_admin, created_at)
    SELECT 'default', 1, COALESCE(MIN(created_at), 0) FROM sites;

ALTER TABLE sites ADD COLUMN team_id INTEGER REFERENCES teams (id);
UPDATE sites SET team_id = (SELECT MIN(id) FROM teams);
CREATE INDEX sites_team ON sites (team_id);

-- An API token belongs to a user on one team (it dies with that
-- membership, and may do no more than the member's role), or to a team
-- alone, for automation (`user_id` NULL). Tokens made before teams keep
-- their scopes as tokens of the first team.
ALTER TABLE tokens ADD COLUMN team_id INTEGER REFERENCES teams (id);
ALTER TABLE tokens ADD COLUMN user_id INTEGER REFERENCES users (id);
UPDATE tokens SET team_id = (SELECT MIN(id) FROM teams) WHERE kind = 'api';

-- A dashboard session of a user (NULL: signed in with the admin token or
-- the installation's dashboard password), listed and revoked per user.
ALTER TABLE sessions ADD COLUMN user_id INTEGER REFERENCES users (id);
CREATE INDEX sessions_user ON sessions (user_id);

-- The audit log: who changed what, when and from where. Rows are only
-- added (and removed by age, after the retention the operator sets); no
-- statement updates one. `actor` is `admin` (the admin token or its
-- dashboard session), `token:<id>` or `user:<id>`; `action` is the API
-- operation's id; `target` the path it was called on (a variable's name at
-- most, never a value or a body).
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    site    TEXT,
    team_id INTEGER,
    target  TEXT    NOT NULL,
    ip      TEXT,
    status  INTEGER NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_site ON audit_log (site, id);
