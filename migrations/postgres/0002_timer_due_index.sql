-- The scheduler's wake-up reads the earliest timers and their leases: with the lease in the due-time
-- index (an index-only scan) its cost does not grow with the number of open tickets.
DROP INDEX timers_due_at;
CREATE INDEX timers_due_at ON timers (due_at) INCLUDE (lease_until);
