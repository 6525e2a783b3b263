-- Node moves and intake ownership.
--
-- A district that moves a node (a community to another street office) moves the stored paths of its
-- tickets with it, in the import's transaction (the event log's node_path included: it says where the
-- ticket is now and is what subtree reads select on). Nothing to change here for that: this backend
-- enforces the event log's append-only rule in the store, not with triggers.

-- Intake reads back the tickets filed under its principal name, so an intake token's name is its
-- own. Intake tokens that shared their name with another token are renamed NAME#ID: the tickets
-- filed under the shared name belong to none of them any more (a dispatcher still reads them).
UPDATE api_tokens SET name = name || '#' || id
WHERE role = 'intake'
  AND name IN (SELECT name FROM api_tokens GROUP BY name HAVING COUNT(*) > 1);
CREATE UNIQUE INDEX api_tokens_intake_name ON api_tokens (name) WHERE role = 'intake';
