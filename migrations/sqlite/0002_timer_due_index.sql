-- The scheduler's wake-up reads the earliest timers and their leases: with the lease in the due-time
-- index it never visits the table, so its cost does not grow with the number of open tickets.
DROP INDEX timers_due_at;
CREATE INDEX timers_due_at ON timers (due_at, lease_until);
