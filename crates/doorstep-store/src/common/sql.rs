//! SQL both backends run, and per backend (`sqlite`, `postgres`) the statements where their dialects
//! differ: PostgreSQL keeps JSON as JSONB, cast on the way in and out, claims timers with
//! `FOR UPDATE SKIP LOCKED` and takes seqs from a counter row; SQLite has one writer.

/// A timer armed anew, or re-armed at another instant (which ends any lease on it).
pub(crate) const UPSERT_TIMER: &str = "INSERT INTO timers (ticket_id, clock, unit, threshold, \
    due_at, due_exact) VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (ticket_id, clock, unit, threshold) DO UPDATE SET due_at = excluded.due_at, \
    due_exact = excluded.due_exact, lease_owner = NULL, lease_until = NULL";

/// The same, after a multi-row VALUES.
pub(crate) const ON_TIMER_CONFLICT: &str = "ON CONFLICT (ticket_id, clock, unit, threshold) DO \
    UPDATE SET due_at = excluded.due_at, due_exact = excluded.due_exact, lease_owner = NULL, \
    lease_until = NULL";

/// The earliest timers by due time, with their leases (see `codec::next_claimable`).
pub(crate) const NEXT_TIMERS: &str =
    "SELECT due_at, lease_until FROM timers ORDER BY due_at LIMIT $1";

/// A claimed timer, only if nothing re-armed it since the claim.
pub(crate) const DROP_CLAIMED_TIMER: &str = "DELETE FROM timers WHERE ticket_id = $1 AND clock = $2 \
    AND unit = $3 AND threshold = $4 AND due_exact = $5 AND lease_owner = $6";

pub(crate) const TICKETS_WITH_TIMERS_FROM: &str = "SELECT DISTINCT ticket_id FROM timers \
    WHERE due_at >= $1 AND ticket_id > $2 ORDER BY ticket_id LIMIT $3";

// An import that finds a row as it would write it leaves it untouched.

pub(crate) const UPSERT_NODE: &str = "INSERT INTO nodes (code, name, kind, parent, node_path) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code) DO UPDATE SET name = excluded.name, \
    kind = excluded.kind, parent = excluded.parent, node_path = excluded.node_path \
    WHERE (nodes.name, nodes.kind, nodes.parent, nodes.node_path) IS DISTINCT FROM \
    (excluded.name, excluded.kind, excluded.parent, excluded.node_path)";

pub(crate) const UPSERT_PERSON: &str = "INSERT INTO people (node, position, name, role, phone) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (node, position) DO UPDATE SET name = excluded.name, \
    role = excluded.role, phone = excluded.phone \
    WHERE (people.name, people.role, people.phone) IS DISTINCT FROM \
    (excluded.name, excluded.role, excluded.phone)";

pub(crate) const UPSERT_UNIT: &str = "INSERT INTO units (code, name, node, department, supervisor) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code) DO UPDATE SET name = excluded.name, \
    node = excluded.node, department = excluded.department, supervisor = excluded.supervisor \
    WHERE (units.name, units.node, units.department, units.supervisor) IS DISTINCT FROM \
    (excluded.name, excluded.node, excluded.department, excluded.supervisor)";

pub(crate) const UPSERT_CATALOGUE: &str = "INSERT INTO catalogue (category, node, position, name, \
    default_level, lead_unit) VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (category, node) DO UPDATE SET position = excluded.position, \
    name = excluded.name, default_level = excluded.default_level, lead_unit = excluded.lead_unit \
    WHERE (catalogue.position, catalogue.name, catalogue.default_level, catalogue.lead_unit) \
    IS DISTINCT FROM (excluded.position, excluded.name, excluded.default_level, excluded.lead_unit)";

pub(crate) const LOAD_NODES: &str = "SELECT code, name, kind, parent FROM nodes ORDER BY node_path";
pub(crate) const LOAD_UNITS: &str =
    "SELECT code, name, node, department, supervisor FROM units ORDER BY code";
pub(crate) const LOAD_PEOPLE: &str =
    "SELECT node, name, role, phone FROM people ORDER BY node, position";
pub(crate) const LOAD_CATALOGUE: &str = "SELECT category, node, name, default_level, lead_unit \
    FROM catalogue ORDER BY position, category, node";

pub(crate) const UPSERT_NOTICE: &str = "INSERT INTO calendar_notices (year, source) VALUES ($1, $2) \
    ON CONFLICT (year) DO UPDATE SET source = excluded.source";

/// No row written when the date belongs to another notice.
pub(crate) const UPSERT_DAY: &str = "INSERT INTO calendar_days (day, off, name, notice) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (day) DO UPDATE SET off = excluded.off, \
    name = excluded.name WHERE calendar_days.notice = excluded.notice";

/// What one year's notice declares, for the record of a pending re-timing.
pub(crate) const NOTICE_OF_YEAR: &str = "SELECT year, source FROM calendar_notices WHERE year = $1";
pub(crate) const DAYS_OF_NOTICE: &str =
    "SELECT day, off, name, notice FROM calendar_days WHERE notice = $1 ORDER BY day";

/// A re-timing already pending for the year keeps its `previous`: the deadlines were reckoned under
/// that one.
pub(crate) const RECORD_RETIMING: &str = "INSERT INTO calendar_retimings (year, previous) \
    VALUES ($1, $2) ON CONFLICT (year) DO NOTHING";
pub(crate) const PENDING_RETIMINGS: &str =
    "SELECT year, previous FROM calendar_retimings ORDER BY year";
pub(crate) const RETIMING_DONE: &str = "DELETE FROM calendar_retimings WHERE year = $1";

/// In the transaction of every change to the district, the calendar or the policy.
pub(crate) const BUMP_CONFIG_VERSION: &str =
    "UPDATE config_version SET version = version + 1 WHERE id = 1";
pub(crate) const CONFIG_VERSION: &str = "SELECT version FROM config_version WHERE id = 1";

pub(crate) const LOAD_NOTICES: &str = "SELECT year, source FROM calendar_notices ORDER BY year";
pub(crate) const LOAD_DAYS: &str = "SELECT day, off, name, notice FROM calendar_days ORDER BY day";

pub(crate) const INSERT_POLICY: &str = "INSERT INTO policies (version, toml, created_at) \
    SELECT COALESCE(MAX(version), 0) + 1, $1, $2 FROM policies RETURNING version";
pub(crate) const LATEST_POLICY: &str =
    "SELECT version, toml, created_at FROM policies ORDER BY version DESC LIMIT 1";
pub(crate) const POLICY: &str = "SELECT version, toml, created_at FROM policies WHERE version = $1";

/// Events appended that the reporting rows do not include yet.
pub(crate) const REPORTS_BEHIND: &str = "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events) - projected \
    FROM report_state WHERE id = 1";

/// Armed timers due at $1 (ms), through the due-time index.
pub(crate) const COUNT_DUE_TIMERS: &str =
    "SELECT CAST(COUNT(*) AS BIGINT) FROM timers WHERE due_at <= $1";
/// Open tickets per level (the statuses of `Status::is_open`), through the status index.
pub(crate) const OPEN_TICKETS_BY_LEVEL: &str = "SELECT level, CAST(COUNT(*) AS BIGINT) FROM tickets \
    WHERE status IN ('NEW', 'RETURNED', 'DISPATCHED', 'IN_PROGRESS', 'SUSPENDED') GROUP BY level";
pub(crate) const NODE_PATH: &str = "SELECT node_path FROM tickets WHERE id = $1";
/// The highest seq written so far.
pub(crate) const LAST_SEQ: &str = "SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM events";
/// A board shrank: its people beyond the new length.
pub(crate) const DELETE_PEOPLE_BEYOND: &str =
    "DELETE FROM people WHERE node = $1 AND position >= $2";
pub(crate) const DELETE_DAYS_OF_NOTICE: &str = "DELETE FROM calendar_days WHERE notice = $1";

/// The statements only SQLite runs, and its spellings of the shared ones.
pub(crate) mod sqlite {
    /// A read snapshot (WAL: the transaction reads one snapshot from its first read on).
    pub(crate) const SNAPSHOT: &str = "BEGIN";
    /// A ticket's JSON as text.
    pub(crate) const TICKET_JSON: &str = "t.ticket";
    pub(crate) const TICKET_BY_ID: &str = "SELECT ticket FROM tickets WHERE id = $1";
    pub(crate) const TICKET_BY_REF: &str = "SELECT t.ticket FROM intake_keys k \
        JOIN tickets t ON t.id = k.ticket_id WHERE k.source = $1 AND k.external_ref = $2";
    pub(crate) const HISTORY: &str =
        "SELECT seq, ticket_id, payload FROM events WHERE ticket_id = $1 ORDER BY seq";
    pub(crate) const AUDIT_LOG: &str = "SELECT id, at, principal, token_id, ticket_id, what \
        FROM audit_log WHERE ($1 IS NULL OR ticket_id = $1) AND ($2 IS NULL OR principal = $2) \
        AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4";
    pub(crate) const EVENTS_AFTER: &str = "SELECT seq, ticket_id, payload FROM events \
        WHERE seq > $1 ORDER BY seq LIMIT $2";
    pub(crate) const EVENTS_AFTER_IN_SUBTREE: &str = "SELECT seq, ticket_id, payload FROM events \
        WHERE seq > $1 AND node_path >= $3 AND node_path < $4 ORDER BY seq LIMIT $2";
    pub(crate) const EVENTS_WITH_PATHS_AFTER: &str = "SELECT seq, ticket_id, payload, node_path \
        FROM events WHERE seq > $1 ORDER BY seq LIMIT $2";

    /// Registration order is the seq the ticket's CREATED event is about to get (one writer).
    pub(crate) const INSERT_TICKET: &str = "INSERT INTO tickets (id, reg, source, external_ref, \
        node, node_path, level, status, lead_unit, resolve_due_at, created_at, updated_at, version, \
        policy_version, ticket, breached) VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM events), \
        $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING reg";

    /// Many tickets at once, each with its registration order given (the seq its CREATED event gets),
    /// followed by VALUES rows of 16 parameters.
    pub(crate) const INSERT_TICKETS: &str = "INSERT INTO tickets (id, reg, source, external_ref, \
        node, node_path, level, status, lead_unit, resolve_due_at, created_at, updated_at, version, \
        policy_version, ticket, breached) VALUES";

    /// The optimistic-concurrency check of many commits at once, `{head} VALUES-rows {tail}` with 10
    /// parameters a row: a ticket not at its expected version is left alone and returns nothing. Each
    /// updated ticket returns its node path, the next seq (SQLite has one writer, and nothing is appended
    /// during the statement), and its units and armed timers as stored, as JSON.
    pub(crate) const UPDATE_TICKETS: (&str, &str) = (
        "WITH v (id, expected, level, status, lead_unit, resolve_due_at, updated_at, version, ticket, \
        breached) AS (VALUES",
        ") UPDATE tickets SET level = v.level, status = v.status, lead_unit = v.lead_unit, \
        resolve_due_at = v.resolve_due_at, updated_at = v.updated_at, version = v.version, \
        ticket = v.ticket, breached = v.breached FROM v WHERE tickets.id = v.id AND tickets.version = v.expected \
        RETURNING tickets.id, tickets.node_path, (SELECT COALESCE(MAX(seq), 0) + 1 FROM events), \
        (SELECT json_group_array(unit) FROM \
            (SELECT unit FROM ticket_units WHERE ticket_id = tickets.id ORDER BY unit)), \
        (SELECT json_group_array(json_array(clock, unit, threshold, due_at, due_exact)) \
            FROM timers WHERE ticket_id = tickets.id)",
    );

    pub(crate) const CLAIM: &str = "UPDATE timers SET lease_owner = $3, lease_until = $4 \
        WHERE (ticket_id, clock, unit, threshold) IN ( \
            SELECT ticket_id, clock, unit, threshold FROM timers \
            WHERE due_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
            ORDER BY due_at LIMIT $2) \
        RETURNING ticket_id, clock, unit, threshold, due_exact, due_at";
}

/// The statements only PostgreSQL runs, and its spellings of the shared ones.
pub(crate) mod postgres {
    /// A read snapshot.
    pub(crate) const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
    /// A ticket's JSON as text.
    pub(crate) const TICKET_JSON: &str = "t.ticket::text";
    pub(crate) const TICKET_BY_ID: &str = "SELECT ticket::text FROM tickets WHERE id = $1";
    pub(crate) const TICKET_BY_REF: &str = "SELECT t.ticket::text FROM intake_keys k \
        JOIN tickets t ON t.id = k.ticket_id WHERE k.source = $1 AND k.external_ref = $2";
    pub(crate) const HISTORY: &str =
        "SELECT seq, ticket_id, payload::text FROM events WHERE ticket_id = $1 ORDER BY seq";
    pub(crate) const AUDIT_LOG: &str = "SELECT id, at, principal, token_id, ticket_id, what \
        FROM audit_log WHERE ($1::text IS NULL OR ticket_id = $1) \
        AND ($2::text IS NULL OR principal = $2) AND ($3::text IS NULL OR id > $3) \
        ORDER BY id LIMIT $4";
    pub(crate) const TICKETS_BY_IDS: &str = "SELECT ticket::text FROM tickets WHERE id = ANY($1)";
    pub(crate) const EVENTS_AFTER: &str = "SELECT seq, ticket_id, payload::text FROM events \
        WHERE seq > $1 ORDER BY seq LIMIT $2";
    pub(crate) const EVENTS_AFTER_IN_SUBTREE: &str = "SELECT seq, ticket_id, payload::text \
        FROM events WHERE seq > $1 AND node_path >= $3 AND node_path < $4 ORDER BY seq LIMIT $2";
    pub(crate) const EVENTS_WITH_PATHS_AFTER: &str = "SELECT seq, ticket_id, payload::text, \
        node_path FROM events WHERE seq > $1 ORDER BY seq LIMIT $2";

    pub(crate) const INSERT_TICKET: &str = "INSERT INTO tickets (id, reg, source, external_ref, \
        node, node_path, level, status, lead_unit, resolve_due_at, created_at, updated_at, version, \
        policy_version, ticket, breached) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
        $13, $14, $15::jsonb, $16)";

    /// Skips rows another scheduler is claiming right now. The CTE is MATERIALIZED so the locking scan
    /// runs exactly once: as a plain `IN (subquery)` the planner may re-run it per row (it did, once the
    /// table was analyzed), claiming past the limit. Its rows are locked, and re-checked as locked (a
    /// locking read re-evaluates its condition on the newest version), so the update joins them by key
    /// alone: repeating the due condition there let the planner, whose statistics had not seen a burst
    /// of newly due timers, scan every due timer once per claimed row (1–2 s a claim at 1,000,000 open).
    pub(crate) const CLAIM: &str = "WITH due AS MATERIALIZED ( \
            SELECT ticket_id, clock, unit, threshold FROM timers \
            WHERE due_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
            ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
        UPDATE timers t SET lease_owner = $3, lease_until = $4 FROM due \
        WHERE t.ticket_id = due.ticket_id AND t.clock = due.clock AND t.unit = due.unit \
        AND t.threshold = due.threshold \
        RETURNING t.ticket_id, t.clock, t.unit, t.threshold, t.due_exact, t.due_at";
}
