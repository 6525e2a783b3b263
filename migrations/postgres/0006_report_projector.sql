-- Reporting rows are written behind the event log by a projector (doorstep-store src/report.rs), no
-- longer inside every commit: an escalation burst commits without them, and the rows catch up when the
-- scheduler is idle or before any report counts.
--
-- What the projector needs from a commit besides its events: on the last event a commit appended, the
-- commit's instant and the ticket's running resolve deadline after it (epoch ms; NULL: none). Both
-- NULL on every other event.
ALTER TABLE events ADD COLUMN commit_at BIGINT;
ALTER TABLE events ADD COLUMN resolve_due BIGINT;

-- The last seq whose event the reporting rows include. Until this migration every commit wrote its
-- rows itself, so every event so far is included.
ALTER TABLE report_state ADD COLUMN projected BIGINT NOT NULL DEFAULT 0;
UPDATE report_state SET projected = (SELECT COALESCE(MAX(seq), 0) FROM events);
