-- Sign-in through someone else: GitHub (OAuth) or an OpenID Connect
-- provider. An identity is the provider's stable id for a person (GitHub's
-- numeric user id; an OIDC issuer's `sub`), linked to one user. `login`
-- and `email` are what the provider said at the last sign-in (the e-mail
-- only when the provider said it was verified); invitations addressed to a
-- GitHub login or an e-mail are claimed through them.
CREATE TABLE user_identities (
    provider     TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    user_id      BIGINT NOT NULL REFERENCES users (id),
    login        TEXT,
    email        TEXT,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);

-- Automatic membership: whoever signs in belonging to `source` (a GitHub
-- organization `github-org:<org>`, a GitHub team
-- `github-team:<org>/<team-slug>`, or an OIDC group `oidc-group:<name>`)
-- becomes a member of the team with `role`.
CREATE TABLE team_auto_memberships (
    team_id    BIGINT NOT NULL REFERENCES teams (id),
    source     TEXT    NOT NULL,
    role       TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, source)
);

-- The automatic-membership source that made a membership, NULL for one an
-- owner made. Such a membership ends at the next sign-in that no longer
-- shows the source (the person left the organization or group); one an
-- owner made is never touched by sign-in.
ALTER TABLE memberships ADD COLUMN via TEXT;
