-- doorstep on PostgreSQL: the initial schema. Times are epoch milliseconds (BIGINT), tickets and
-- events keep their full domain value as JSONB. Only features that PostgreSQL-compatible distributed
-- engines also offer: no sequences (seq and registration order come from the event_seq counter row),
-- no triggers, no LISTEN/NOTIFY. Node paths compare bytewise (COLLATE "C") so a subtree is one
-- btree range.

-- The engine-wide event counter. Every transaction that appends events takes this row's lock
-- (UPDATE ... RETURNING) just before committing, so seqs become visible in increasing order.
CREATE TABLE event_seq (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last BIGINT  NOT NULL
);
INSERT INTO event_seq (id, last) VALUES (1, 0);

-- The current state of each ticket: a projection of its events, plus the columns consoles filter on.
CREATE TABLE tickets (
    id             TEXT    COLLATE "C" PRIMARY KEY,
    -- Registration order: the seq of the ticket's CREATED event. The pagination cursor.
    reg            BIGINT  NOT NULL UNIQUE,
    source         TEXT    NOT NULL,
    external_ref   TEXT    NOT NULL,
    node           TEXT    COLLATE "C" NOT NULL,
    -- The node's path, `|district|street|community|compound|`: a subtree is a prefix range.
    node_path      TEXT    COLLATE "C" NOT NULL,
    level          TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    lead_unit      TEXT    COLLATE "C",
    -- Set only while the resolve clock runs (Ticket::resolve_due_at).
    resolve_due_at BIGINT,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    version        BIGINT  NOT NULL,
    policy_version BIGINT  NOT NULL,
    ticket         JSONB   NOT NULL
);
CREATE INDEX tickets_node_path ON tickets (node_path, reg);
CREATE INDEX tickets_status ON tickets (status, reg);
CREATE INDEX tickets_resolve_due_at ON tickets (resolve_due_at) WHERE resolve_due_at IS NOT NULL;

-- The units working on a ticket (lead and co-handlers), for the console's unit filter.
CREATE TABLE ticket_units (
    ticket_id TEXT COLLATE "C" NOT NULL REFERENCES tickets (id),
    unit      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (unit, ticket_id)
);
CREATE INDEX ticket_units_ticket ON ticket_units (ticket_id);

-- The append-only history. Never updated, never deleted.
CREATE TABLE events (
    seq       BIGINT PRIMARY KEY,
    ticket_id TEXT   COLLATE "C" NOT NULL REFERENCES tickets (id),
    at        BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    kind      TEXT   NOT NULL,
    node_path TEXT   COLLATE "C" NOT NULL,
    -- The whole doorstep_domain::Event.
    payload   JSONB  NOT NULL
);
CREATE INDEX events_ticket ON events (ticket_id, seq);
CREATE INDEX events_node_path ON events (node_path, seq);

-- Armed clock thresholds: exactly Ticket::timers() of each ticket.
CREATE TABLE timers (
    ticket_id   TEXT   COLLATE "C" NOT NULL REFERENCES tickets (id),
    clock       TEXT   NOT NULL,
    -- The called unit of a report-in clock; '' for none.
    unit        TEXT   COLLATE "C" NOT NULL,
    threshold   TEXT   NOT NULL,
    -- Rounded up to the millisecond, so a timer is never claimed before it is due.
    due_at      BIGINT NOT NULL,
    -- The exact instant (RFC 3339, nanoseconds), handed back to the domain unchanged.
    due_exact   TEXT   NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    PRIMARY KEY (ticket_id, clock, unit, threshold)
);
CREATE INDEX timers_due_at ON timers (due_at);

-- Intake idempotency: one ticket per (source channel, external reference).
CREATE TABLE intake_keys (
    source       TEXT NOT NULL,
    external_ref TEXT NOT NULL,
    ticket_id    TEXT COLLATE "C" NOT NULL UNIQUE,
    PRIMARY KEY (source, external_ref)
);

-- The jurisdiction tree.
CREATE TABLE nodes (
    code      TEXT COLLATE "C" PRIMARY KEY,
    name      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    parent    TEXT COLLATE "C",
    node_path TEXT COLLATE "C" NOT NULL
);

CREATE TABLE units (
    code       TEXT    COLLATE "C" PRIMARY KEY,
    name       TEXT    NOT NULL,
    node       TEXT    COLLATE "C" NOT NULL REFERENCES nodes (code),
    department BOOLEAN NOT NULL,
    supervisor TEXT    COLLATE "C"
);

-- Responsibility boards: the people published for each node, in board order.
CREATE TABLE people (
    node     TEXT    COLLATE "C" NOT NULL REFERENCES nodes (code),
    position INTEGER NOT NULL,
    name     TEXT    NOT NULL,
    role     TEXT    NOT NULL,
    phone    TEXT    NOT NULL,
    PRIMARY KEY (node, position)
);

-- The dispatch catalogue. `node` is '' for an entry that applies everywhere.
CREATE TABLE catalogue (
    category      TEXT    COLLATE "C" NOT NULL,
    node          TEXT    COLLATE "C" NOT NULL,
    position      INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    default_level TEXT    NOT NULL,
    lead_unit     TEXT    COLLATE "C",
    PRIMARY KEY (category, node)
);

-- The working-day calendar: the State Council notices and the dates they declare.
CREATE TABLE calendar_notices (
    year   INTEGER PRIMARY KEY,
    source TEXT    NOT NULL
);

CREATE TABLE calendar_days (
    day    TEXT    PRIMARY KEY,
    off    BOOLEAN NOT NULL,
    name   TEXT    NOT NULL,
    notice INTEGER NOT NULL REFERENCES calendar_notices (year)
);

-- Every accepted policy, by version; tickets keep the version they were judged under.
CREATE TABLE policies (
    version    BIGINT PRIMARY KEY,
    toml       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
