-- doorstep on PostgreSQL: reporting. Rows kept up to date by every create and commit, in the same
-- transaction, from the events being appended (doorstep-store src/report.rs). Times are epoch ms;
-- flags are INTEGER 0/1 so that SUM gives a BIGINT. Existing tickets are backfilled from their
-- histories when the store opens (report_state.backfilled).

-- One row per ticket: the instants the report's windows select on, and what happened there.
CREATE TABLE report_facts (
    ticket_id         TEXT    COLLATE "C" PRIMARY KEY REFERENCES tickets (id),
    node_path         TEXT    COLLATE "C" NOT NULL,
    -- The level and category the ticket was received at (rows are grouped by these).
    level             TEXT    NOT NULL,
    category          TEXT    COLLATE "C" NOT NULL,
    created_at        BIGINT  NOT NULL,
    first_dispatch_at BIGINT,
    -- 1 when the first dispatch was signed for before its acknowledge deadline.
    ack_on_time       INTEGER NOT NULL,
    -- The first dispatch's acknowledge deadline while it waits to be signed for.
    ack_pending_due   BIGINT,
    first_resolved_at BIGINT,
    -- 1 when no RESOLVE-clock breach came before the first resolution.
    resolved_on_time  INTEGER NOT NULL,
    -- first_resolved_at - created_at.
    resolve_ms        BIGINT,
    -- A RESOLVE-clock breach was recorded (before the first resolution, once that exists).
    resolve_breached  INTEGER NOT NULL,
    merged_at         BIGINT,
    -- The running resolve deadline (Ticket::resolve_due_at) after the last commit.
    due_now           BIGINT,
    -- The `since` of this ticket's open report_overdue row, if any.
    open_since        BIGINT
);
CREATE INDEX report_facts_created ON report_facts (created_at, node_path, level, category);
CREATE INDEX report_facts_resolved ON report_facts (first_resolved_at, node_path, resolved_on_time, resolve_ms, level, category)
    WHERE first_resolved_at IS NOT NULL;
CREATE INDEX report_facts_dispatched ON report_facts (first_dispatch_at, node_path, ack_on_time, level, category)
    WHERE first_dispatch_at IS NOT NULL;
CREATE INDEX report_facts_merged ON report_facts (merged_at, node_path) WHERE merged_at IS NOT NULL;

-- Events counted per window: ESCALATED (kind 1) and answered CALLBACK_RECORDED (kind 2), by seq.
CREATE TABLE report_marks (
    seq       BIGINT  PRIMARY KEY,
    ticket_id TEXT    COLLATE "C" NOT NULL REFERENCES tickets (id),
    node_path TEXT    COLLATE "C" NOT NULL,
    level     TEXT    NOT NULL,
    category  TEXT    COLLATE "C" NOT NULL,
    kind      INTEGER NOT NULL,
    at        BIGINT  NOT NULL,
    satisfied INTEGER NOT NULL,
    solved    INTEGER NOT NULL
);
CREATE INDEX report_marks_at ON report_marks (at, node_path, kind, satisfied, solved, level, category);
CREATE INDEX report_marks_ticket ON report_marks (ticket_id);

-- When a ticket was overdue: from `since` (its running resolve deadline, or the commit that set a
-- deadline already passed) until `ends` (the commit that stopped or moved that deadline; NULL while it
-- still runs). Segments of a deadline that never passed are deleted when they end.
CREATE TABLE report_overdue (
    ticket_id TEXT    COLLATE "C" NOT NULL REFERENCES tickets (id),
    since     BIGINT  NOT NULL,
    ends      BIGINT,
    node_path TEXT    COLLATE "C" NOT NULL,
    level     TEXT    NOT NULL,
    category  TEXT    COLLATE "C" NOT NULL,
    PRIMARY KEY (ticket_id, since)
);
CREATE INDEX report_overdue_ends ON report_overdue (ends) WHERE ends IS NOT NULL;
CREATE INDEX report_overdue_open ON report_overdue (since) WHERE ends IS NULL;

-- 0 until the rows above were built for the tickets that existed before this migration.
CREATE TABLE report_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    backfilled INTEGER NOT NULL
);
INSERT INTO report_state (id, backfilled) VALUES (1, 0);
