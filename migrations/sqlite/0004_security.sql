-- Security (issue 6): API tokens, stored only as a SHA-256 hash, and the append-only audit log of every
-- read of unmasked personal data. Instants are epoch milliseconds, as everywhere else.

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    -- The principal's name: the actor recorded on the events it causes (tokens may share one).
    name        TEXT NOT NULL,
    -- Lowercase hex SHA-256 of the whole token as issued; the token itself is never stored.
    hash        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    -- The jurisdiction node whose subtree the token reaches.
    scope       TEXT NOT NULL,
    -- For the handling-unit role: the unit the token speaks for.
    unit        TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);

CREATE TABLE audit_log (
    -- A UUIDv7: time-ordered, so it is also the cursor.
    id         TEXT PRIMARY KEY,
    at         INTEGER NOT NULL,
    principal  TEXT NOT NULL,
    token_id   TEXT,
    ticket_id  TEXT NOT NULL,
    what       TEXT NOT NULL
);

CREATE INDEX audit_log_ticket ON audit_log (ticket_id, id);
CREATE INDEX audit_log_principal ON audit_log (principal, id);

-- Append-only: the database refuses to change or remove an entry.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
