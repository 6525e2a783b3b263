-- Security (issue 6): API tokens, stored only as a SHA-256 hash, and the append-only audit log of every
-- read of unmasked personal data. Instants are epoch milliseconds, as everywhere else. No triggers (see
-- the store's portability note): the store offers no update or delete of the audit log; operators who
-- want the database to enforce it revoke UPDATE and DELETE on audit_log from the service's role.

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    unit        TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

CREATE TABLE audit_log (
    id         TEXT PRIMARY KEY,
    at         BIGINT NOT NULL,
    principal  TEXT NOT NULL,
    token_id   TEXT,
    ticket_id  TEXT NOT NULL,
    what       TEXT NOT NULL
);

CREATE INDEX audit_log_ticket ON audit_log (ticket_id, id);
CREATE INDEX audit_log_principal ON audit_log (principal, id);
