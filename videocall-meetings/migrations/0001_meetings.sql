-- Meetings, participants, users and login sessions. One schema for PostgreSQL and SQLite: only
-- TEXT and BIGINT columns (times are Unix milliseconds, flags 0/1), which both read alike
-- through sqlx's Any driver.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    -- 'guest' (signed cookie, no provider) or 'oidc'.
    provider TEXT NOT NULL CHECK (provider IN ('guest', 'oidc')),
    -- The provider's subject (`sub`); a guest's own id.
    subject TEXT NOT NULL,
    email TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (provider, subject)
);

CREATE TABLE login_sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX login_sessions_by_user ON login_sessions (user_id);

CREATE TABLE meetings (
    id TEXT PRIMARY KEY,
    -- NULL for a meeting created by a plain join to an unknown id (open meetings allowed).
    owner_id TEXT REFERENCES users (id),
    state TEXT NOT NULL CHECK (state IN ('idle', 'active', 'ended')),
    access TEXT NOT NULL CHECK (access IN ('open', 'protected')),
    waiting_room BIGINT NOT NULL,
    e2ee_required BIGINT NOT NULL,
    max_participants BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT,
    -- Touched by every change: the first statement of each write transaction, so that it takes
    -- the meeting's lock (row lock on PostgreSQL, the write lock on SQLite) before reading.
    updated_at BIGINT NOT NULL
);
CREATE INDEX meetings_by_owner ON meetings (owner_id);

CREATE TABLE participants (
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    user_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('host', 'attendee', 'observer')),
    status TEXT NOT NULL CHECK (status IN ('waiting', 'admitted', 'rejected', 'left')),
    joined_at BIGINT NOT NULL,
    admitted_at BIGINT,
    left_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (meeting_id, user_id)
);
CREATE INDEX participants_by_status ON participants (meeting_id, status);
