-- Node moves and intake ownership.
--
-- A district that moves a node (a community to another street office) moves the stored paths of its
-- tickets with it, in the import's transaction: the event log keeps its history unchanged but for the
-- path, which says where the ticket is now and is what subtree reads select on. Every other column
-- of an event stays append-only.
DROP TRIGGER events_append_only_update;
CREATE TRIGGER events_append_only_update
BEFORE UPDATE OF seq, ticket_id, at, actor, kind, payload, commit_at, resolve_due ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only (only node_path follows a node move)');
END;

-- Intake reads back the tickets filed under its principal name, so an intake token's name is its
-- own. Intake tokens that shared their name with another token are renamed NAME#ID: the tickets
-- filed under the shared name belong to none of them any more (a dispatcher still reads them).
UPDATE api_tokens SET name = name || '#' || id
WHERE role = 'intake'
  AND name IN (SELECT name FROM api_tokens GROUP BY name HAVING COUNT(*) > 1);
CREATE UNIQUE INDEX api_tokens_intake_name ON api_tokens (name) WHERE role = 'intake';
