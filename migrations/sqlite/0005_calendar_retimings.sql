-- Calendar changes whose re-timing of open deadlines has not finished. Written in the transaction that
-- stores the notice and deleted once every affected deadline has moved, so a process that dies in
-- between re-times on its next start. `previous` is what the year's notice declared before the change,
-- as calendar TOML (empty when the year had no notice).
CREATE TABLE calendar_retimings (
    year     INTEGER PRIMARY KEY,
    previous TEXT    NOT NULL
) STRICT;
