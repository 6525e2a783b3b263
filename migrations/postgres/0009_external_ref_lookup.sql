-- Look-up by the source system's own number (ListTickets' external_ref, with or without a source):
-- the intake key (source, external_ref) leads with the source, so a number alone needs its own index.
CREATE INDEX tickets_external_ref ON tickets (external_ref, source);
