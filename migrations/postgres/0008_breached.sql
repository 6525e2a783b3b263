-- Red cards (超期): a ticket shows one while a deadline of it was breached (a BREACHED event, or a
-- missed MAJOR_RISK review) and it is not resolved, closed, cancelled or merged (Ticket::is_breached).

-- The column breached_only lists filter on: 1 while the ticket shows a red card, written with every
-- ticket row. The partial index holds only those tickets, in registration order (the list's order).
ALTER TABLE tickets ADD COLUMN breached INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tickets_breached ON tickets (reg, node_path) WHERE breached = 1;

-- Existing tickets: the fact goes into the stored ticket (Ticket::deadline_breached, which replaying
-- their histories gives), and the column follows from it and the status.
UPDATE tickets SET ticket = jsonb_set(ticket, '{deadline_breached}', 'true')
WHERE id IN (SELECT ticket_id FROM events WHERE kind IN ('BREACHED', 'REVIEW_MISSED'));
UPDATE tickets SET breached = 1
WHERE (ticket->>'deadline_breached')::boolean
  AND status IN ('NEW', 'RETURNED', 'DISPATCHED', 'IN_PROGRESS', 'SUSPENDED');

-- Reporting: whether the ticket breached, and the `since` of its open report_breached row.
ALTER TABLE report_facts ADD COLUMN breached INTEGER NOT NULL DEFAULT 0;
ALTER TABLE report_facts ADD COLUMN red_since BIGINT;

-- When a ticket showed a red card: from `since` (the breach, or the reopening of a ticket that
-- breached before) until `ends` (its resolution, closing, cancelling or merging; NULL while it shows).
CREATE TABLE report_breached (
    ticket_id TEXT    COLLATE "C" NOT NULL REFERENCES tickets (id),
    since     BIGINT  NOT NULL,
    ends      BIGINT,
    node_path TEXT    COLLATE "C" NOT NULL,
    level     TEXT    NOT NULL,
    category  TEXT    COLLATE "C" NOT NULL,
    PRIMARY KEY (ticket_id, since)
);
CREATE INDEX report_breached_ends ON report_breached (ends) WHERE ends IS NOT NULL;
CREATE INDEX report_breached_open ON report_breached (since) WHERE ends IS NULL;

-- The reporting rows of tickets that breached are rebuilt from their histories when the store next
-- opens (a ticket without rows is rebuilt, see report_state.backfilled); the others hold no red card.
DELETE FROM report_facts
WHERE ticket_id IN (SELECT ticket_id FROM events WHERE kind IN ('BREACHED', 'REVIEW_MISSED'));
UPDATE report_state SET backfilled = 0;
