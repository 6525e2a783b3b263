-- doorstep on SQLite: the initial schema. Times are epoch milliseconds (INTEGER), codes are TEXT,
-- tickets and events keep their full domain value as JSON (TEXT).

-- The current state of each ticket: a projection of its events, plus the columns consoles filter on.
CREATE TABLE tickets (
    id             TEXT    PRIMARY KEY,
    -- Registration order: the seq of the ticket's CREATED event. The pagination cursor.
    reg            INTEGER NOT NULL UNIQUE,
    source         TEXT    NOT NULL,
    external_ref   TEXT    NOT NULL,
    node           TEXT    NOT NULL,
    -- The node's path, `|district|street|community|compound|`: a subtree is a prefix range.
    node_path      TEXT    NOT NULL,
    level          TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    lead_unit      TEXT,
    -- Set only while the resolve clock runs (Ticket::resolve_due_at).
    resolve_due_at INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    policy_version INTEGER NOT NULL,
    ticket         TEXT    NOT NULL
) STRICT;
CREATE INDEX tickets_node_path ON tickets (node_path, reg);
CREATE INDEX tickets_status ON tickets (status, reg);
CREATE INDEX tickets_resolve_due_at ON tickets (resolve_due_at) WHERE resolve_due_at IS NOT NULL;

-- The units working on a ticket (lead and co-handlers), for the console's unit filter.
CREATE TABLE ticket_units (
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    unit      TEXT NOT NULL,
    PRIMARY KEY (unit, ticket_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX ticket_units_ticket ON ticket_units (ticket_id);

-- The append-only history. Never updated, never deleted.
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,
    ticket_id TEXT    NOT NULL REFERENCES tickets (id),
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    node_path TEXT    NOT NULL,
    -- The whole doorstep_domain::Event.
    payload   TEXT    NOT NULL
) STRICT;
CREATE INDEX events_ticket ON events (ticket_id, seq);
CREATE INDEX events_node_path ON events (node_path, seq);

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

-- Armed clock thresholds: exactly Ticket::timers() of each ticket.
CREATE TABLE timers (
    ticket_id   TEXT    NOT NULL REFERENCES tickets (id),
    clock       TEXT    NOT NULL,
    -- The called unit of a report-in clock; '' for none.
    unit        TEXT    NOT NULL,
    threshold   TEXT    NOT NULL,
    -- Rounded up to the millisecond, so a timer is never claimed before it is due.
    due_at      INTEGER NOT NULL,
    -- The exact instant (RFC 3339, nanoseconds), handed back to the domain unchanged.
    due_exact   TEXT    NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    PRIMARY KEY (ticket_id, clock, unit, threshold)
) STRICT, WITHOUT ROWID;
CREATE INDEX timers_due_at ON timers (due_at);

-- Intake idempotency: one ticket per (source channel, external reference).
CREATE TABLE intake_keys (
    source       TEXT NOT NULL,
    external_ref TEXT NOT NULL,
    ticket_id    TEXT NOT NULL UNIQUE,
    PRIMARY KEY (source, external_ref)
) STRICT, WITHOUT ROWID;

-- The jurisdiction tree.
CREATE TABLE nodes (
    code      TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    parent    TEXT,
    node_path TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE units (
    code       TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    node       TEXT    NOT NULL REFERENCES nodes (code),
    department INTEGER NOT NULL,
    supervisor TEXT
) STRICT, WITHOUT ROWID;

-- Responsibility boards: the people published for each node, in board order.
CREATE TABLE people (
    node     TEXT    NOT NULL REFERENCES nodes (code),
    position INTEGER NOT NULL,
    name     TEXT    NOT NULL,
    role     TEXT    NOT NULL,
    phone    TEXT    NOT NULL,
    PRIMARY KEY (node, position)
) STRICT, WITHOUT ROWID;

-- The dispatch catalogue. `node` is '' for an entry that applies everywhere.
CREATE TABLE catalogue (
    category      TEXT    NOT NULL,
    node          TEXT    NOT NULL,
    position      INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    default_level TEXT    NOT NULL,
    lead_unit     TEXT,
    PRIMARY KEY (category, node)
) STRICT, WITHOUT ROWID;

-- The working-day calendar: the State Council notices and the dates they declare.
CREATE TABLE calendar_notices (
    year   INTEGER PRIMARY KEY,
    source TEXT    NOT NULL
) STRICT;

CREATE TABLE calendar_days (
    day    TEXT    PRIMARY KEY,
    off    INTEGER NOT NULL,
    name   TEXT    NOT NULL,
    notice INTEGER NOT NULL REFERENCES calendar_notices (year)
) STRICT, WITHOUT ROWID;

-- Every accepted policy, by version; tickets keep the version they were judged under.
CREATE TABLE policies (
    version    INTEGER PRIMARY KEY,
    toml       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
