-- Notifications: one row per delivery (a webhook request or an SMS to one board member), recorded by
-- a projector with a cursor over the event log (doorstep-notify), then attempted until a 2xx answer,
-- retried with backoff, and set aside as failed after a day. The body is stored as sent, so every
-- retry sends the same bytes.
CREATE TABLE deliveries (
    -- Stable across retries: "<seq>-<rule>" (an SMS adds "-<recipient index>").
    id          TEXT COLLATE "C" PRIMARY KEY,
    -- The rule's name ([[notify.webhook]] or [[notify.sms]]) and which kind it is.
    rule        TEXT COLLATE "C" NOT NULL,
    channel     TEXT    NOT NULL,
    ticket_id   TEXT COLLATE "C" NOT NULL,
    seq         BIGINT  NOT NULL,
    kind        TEXT    NOT NULL,
    -- The request body exactly as sent.
    body        TEXT    NOT NULL,
    -- 'pending', 'done' or 'failed'.
    status      TEXT    NOT NULL,
    attempts    BIGINT  NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL,
    -- When the next attempt is due (pending only).
    next_at     BIGINT  NOT NULL,
    -- Past this instant a failing delivery is set aside as failed.
    expires_at  BIGINT  NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    -- The last attempt's answer: an HTTP status or what went wrong (never a phone number).
    last_error  TEXT,
    done_at     BIGINT
);
CREATE INDEX deliveries_due ON deliveries (status, next_at, seq);
-- Per rule and ticket, deliveries go in event order: a claim skips one while an earlier is pending.
CREATE INDEX deliveries_order ON deliveries (rule, ticket_id, seq);

-- The last seq the projector has considered.
CREATE TABLE delivery_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    recorded BIGINT  NOT NULL
);
-- Notifications start with the events committed after this migration.
INSERT INTO delivery_state (id, recorded) VALUES (1, (SELECT COALESCE(MAX(seq), 0) FROM events));
