-- The version of the district, the calendar and the policy: one row, bumped in the transaction of every
-- change to any of them. Every process (service replicas, standalone schedulers) reads it about once a
-- second and reloads its copy when it moved, so a change made through one process is used by all.
CREATE TABLE config_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT  NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);
