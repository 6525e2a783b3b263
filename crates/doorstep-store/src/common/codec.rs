//! What both backends write, computed once outside any transaction: times as epoch milliseconds,
//! domain values as JSON, and a command's rows ready to bind.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use doorstep_domain::{ClockKind, Event, Threshold, Ticket, TicketId, Timer, UnitCode};

use crate::{Result, StoreError, StoredEvent};

/// An instant as epoch milliseconds, rounded down.
pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// An instant as epoch milliseconds, rounded up: a timer stored so is never claimed early.
pub(crate) fn millis_ceil(t: DateTime<Utc>) -> i64 {
    let floor = t.timestamp_millis();
    if t.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        floor
    } else {
        floor + 1
    }
}

pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Database(format!("stored time {ms} is out of range")))
}

pub(crate) fn exact(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub(crate) fn from_exact(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Database(format!("stored time {text:?}: {e}")))
}

/// A name the domain can parse back (levels, statuses, clocks, ...).
pub(crate) fn parse_name<T: std::str::FromStr>(text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| StoreError::Database(format!("stored value: {e}")))
}

pub(crate) fn threshold_name(t: Threshold) -> &'static str {
    match t {
        Threshold::Warning => "WARNING",
        Threshold::Breach => "BREACH",
    }
}

fn parse_threshold(text: &str) -> Result<Threshold> {
    match text {
        "WARNING" => Ok(Threshold::Warning),
        "BREACH" => Ok(Threshold::Breach),
        other => Err(StoreError::Database(format!(
            "stored threshold {other:?} is unknown"
        ))),
    }
}

pub(crate) fn ticket_id(text: String) -> Result<TicketId> {
    TicketId::parse(text).map_err(|e| StoreError::Database(format!("stored ticket id: {e}")))
}

pub(crate) fn ticket_from_json(json: &str) -> Result<Ticket> {
    Ok(serde_json::from_str(json)?)
}

pub(crate) fn event_from_json(seq: i64, ticket_id: String, json: &str) -> Result<StoredEvent> {
    Ok(StoredEvent {
        seq,
        ticket_id: self::ticket_id(ticket_id)?,
        event: serde_json::from_str(json)?,
    })
}

/// A timer row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimerRow {
    pub(crate) clock: &'static str,
    /// '' for none.
    pub(crate) unit: String,
    pub(crate) threshold: &'static str,
    pub(crate) due_at: i64,
    pub(crate) due_exact: String,
}

impl TimerRow {
    pub(crate) fn new(timer: &Timer) -> TimerRow {
        TimerRow {
            clock: timer.clock.as_str(),
            unit: timer
                .unit
                .as_ref()
                .map(|u| u.as_str().to_owned())
                .unwrap_or_default(),
            threshold: threshold_name(timer.threshold),
            due_at: millis_ceil(timer.due_at),
            due_exact: exact(timer.due_at),
        }
    }
}

pub(crate) fn timer_from_row(
    clock: &str,
    unit: &str,
    threshold: &str,
    due_exact: &str,
) -> Result<Timer> {
    Ok(Timer {
        clock: parse_name::<ClockKind>(clock)?,
        unit: if unit.is_empty() {
            None
        } else {
            Some(
                UnitCode::parse(unit)
                    .map_err(|e| StoreError::Database(format!("stored timer unit: {e}")))?,
            )
        },
        threshold: parse_threshold(threshold)?,
        due_at: from_exact(due_exact)?,
    })
}

/// An event row, before its seq is assigned.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub(crate) at: i64,
    pub(crate) actor: String,
    pub(crate) kind: &'static str,
    pub(crate) payload: String,
}

/// The projection row of a ticket, with the rows that hang off it.
#[derive(Debug, Clone)]
pub(crate) struct TicketRow {
    pub(crate) id: String,
    pub(crate) source: &'static str,
    pub(crate) external_ref: String,
    pub(crate) node: String,
    pub(crate) level: &'static str,
    pub(crate) status: &'static str,
    pub(crate) lead_unit: Option<String>,
    pub(crate) resolve_due_at: Option<i64>,
    /// 1 while the ticket shows a red card ([`Ticket::is_breached`]), else 0.
    pub(crate) breached: i32,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) version: i64,
    pub(crate) policy_version: i64,
    pub(crate) json: String,
    /// Lead unit and co-handlers, deduplicated.
    pub(crate) units: Vec<String>,
    pub(crate) timers: Vec<TimerRow>,
}

impl TicketRow {
    pub(crate) fn new(ticket: &Ticket) -> Result<TicketRow> {
        let mut units: Vec<String> = ticket
            .lead_unit
            .iter()
            .chain(ticket.co_handlers.iter().map(|c| &c.unit))
            .map(|u| u.as_str().to_owned())
            .collect();
        units.sort();
        units.dedup();
        Ok(TicketRow {
            id: ticket.id.as_str().to_owned(),
            source: ticket.intake.source.as_str(),
            external_ref: ticket.intake.external_ref.clone(),
            node: ticket.intake.node.as_str().to_owned(),
            level: ticket.level.as_str(),
            status: ticket.status.as_str(),
            lead_unit: ticket.lead_unit.as_ref().map(|u| u.as_str().to_owned()),
            resolve_due_at: ticket.resolve_due_at().map(millis),
            breached: i32::from(ticket.is_breached()),
            created_at: millis(ticket.created_at),
            updated_at: millis(ticket.updated_at),
            version: ticket.version,
            policy_version: ticket.policy_version,
            json: serde_json::to_string(ticket)?,
            units,
            timers: ticket.timers().iter().map(TimerRow::new).collect(),
        })
    }
}

pub(crate) fn event_rows(events: &[Event]) -> Result<Vec<EventRow>> {
    events
        .iter()
        .map(|e| {
            Ok(EventRow {
                at: millis(e.at),
                actor: e.actor.as_str().to_owned(),
                kind: e.change.kind(),
                payload: serde_json::to_string(e)?,
            })
        })
        .collect()
}

/// A ticket to register, with its rows built (owned, to wait in the intake queue).
#[derive(Debug, Clone)]
pub(crate) struct NewRows {
    pub(crate) id: TicketId,
    pub(crate) row: TicketRow,
    pub(crate) events: Vec<Event>,
    pub(crate) event_rows: Vec<EventRow>,
    pub(crate) node_path: String,
}

impl NewRows {
    /// Checks the ticket follows from its events (see [`check_new`]) and builds its rows.
    pub(crate) fn new(new: &crate::NewTicket<'_>) -> Result<NewRows> {
        check_new(new)?;
        Ok(NewRows {
            id: new.ticket.id.clone(),
            row: TicketRow::new(new.ticket)?,
            events: new.events.to_vec(),
            event_rows: event_rows(new.events)?,
            node_path: new.node_path.to_owned(),
        })
    }
}

/// The events as stored, numbered from `first_seq`.
pub(crate) fn stored(ticket_id: &TicketId, first_seq: i64, events: &[Event]) -> Vec<StoredEvent> {
    events
        .iter()
        .zip(first_seq..)
        .map(|(event, seq)| StoredEvent {
            seq,
            ticket_id: ticket_id.clone(),
            event: event.clone(),
        })
        .collect()
}

/// The half-open range of node paths in the subtree whose root has path `root`:
/// `[root, root with its last '|' replaced by '}')`. `|` is 0x7C and `}` 0x7D, and codes never
/// contain either, so the range holds exactly the paths that start with `root`.
pub(crate) fn subtree_range(root: &str) -> Result<(String, String)> {
    let Some(stem) = root.strip_suffix('|') else {
        return Err(StoreError::Config(format!(
            "subtree {root:?} is not a node path (it must end with '|')"
        )));
    };
    Ok((root.to_owned(), format!("{stem}}}")))
}

/// Clamps a page size: 0 means the default.
pub(crate) fn page_limit(limit: u32, default: u32, max: u32) -> i64 {
    i64::from(if limit == 0 { default } else { limit.min(max) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_round_up_to_the_millisecond_and_keep_the_exact_instant() {
        let t = Utc.timestamp_opt(1_700_000_000, 1_500_001).unwrap();
        assert_eq!(millis(t), 1_700_000_000_001);
        assert_eq!(millis_ceil(t), 1_700_000_000_002);
        assert_eq!(from_exact(&exact(t)).unwrap(), t);
        let whole = Utc.timestamp_opt(1_700_000_000, 3_000_000).unwrap();
        assert_eq!(millis_ceil(whole), millis(whole));
    }

    #[test]
    fn a_subtree_is_a_prefix_range() {
        let (lo, hi) = subtree_range("|a|a/b|").unwrap();
        for inside in ["|a|a/b|", "|a|a/b|a/b/c|"] {
            assert!(lo.as_str() <= inside && inside < hi.as_str(), "{inside}");
        }
        for outside in ["|a|", "|a|a/bc|", "|a|a/b/|", "|a|a/c|"] {
            assert!(
                !(lo.as_str() <= outside && outside < hi.as_str()),
                "{outside}"
            );
        }
        assert!(subtree_range("|a").is_err());
    }
}

/// A bind value of a query built at run time.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// `list_tickets` as SQL: `SELECT reg, <ticket> FROM tickets ... ORDER BY reg LIMIT n + 1` (one
/// more than the page, to know whether another follows).
#[derive(Debug)]
pub(crate) struct ListSql {
    pub(crate) sql: String,
    pub(crate) args: Vec<Arg>,
    pub(crate) limit: i64,
}

pub(crate) const DEFAULT_PAGE: u32 = 100;
pub(crate) const MAX_PAGE: u32 = 1000;

pub(crate) fn list_sql(query: &crate::TicketQuery, ticket_column: &str) -> Result<ListSql> {
    use std::fmt::Write as _;

    let mut sql = format!("SELECT reg, {ticket_column} FROM tickets t WHERE TRUE");
    let mut args = Vec::new();
    let arg = |args: &mut Vec<Arg>, value: Arg| {
        args.push(value);
        format!("${}", args.len())
    };
    if let Some(root) = &query.subtree {
        let (lo, hi) = subtree_range(root)?;
        let lo = arg(&mut args, Arg::Text(lo));
        let hi = arg(&mut args, Arg::Text(hi));
        let _ = write!(sql, " AND t.node_path >= {lo} AND t.node_path < {hi}");
    }
    if !query.statuses.is_empty() {
        let list: Vec<String> = query
            .statuses
            .iter()
            .map(|s| arg(&mut args, Arg::Text(s.as_str().to_owned())))
            .collect();
        let _ = write!(sql, " AND t.status IN ({})", list.join(", "));
    }
    if !query.levels.is_empty() {
        let list: Vec<String> = query
            .levels
            .iter()
            .map(|l| arg(&mut args, Arg::Text(l.as_str().to_owned())))
            .collect();
        let _ = write!(sql, " AND t.level IN ({})", list.join(", "));
    }
    if let Some(unit) = &query.unit {
        let unit = arg(&mut args, Arg::Text(unit.as_str().to_owned()));
        let _ = write!(
            sql,
            " AND EXISTS (SELECT 1 FROM ticket_units u WHERE u.unit = {unit} AND u.ticket_id = t.id)"
        );
    }
    if let Some(external_ref) = &query.external_ref {
        let external_ref = arg(&mut args, Arg::Text(external_ref.clone()));
        let _ = write!(sql, " AND t.external_ref = {external_ref}");
    }
    if let Some(source) = query.source {
        let source = arg(&mut args, Arg::Text(source.as_str().to_owned()));
        let _ = write!(sql, " AND t.source = {source}");
    }
    if let Some(now) = query.overdue_at {
        let now = arg(&mut args, Arg::Int(millis(now)));
        let _ = write!(sql, " AND t.resolve_due_at <= {now}");
    }
    if query.breached_only {
        // A literal, so that the partial index `tickets_breached` serves it.
        sql.push_str(" AND t.breached = 1");
    }
    if let Some(before) = query.due_before {
        let before = arg(&mut args, Arg::Int(millis(before)));
        let _ = write!(sql, " AND t.resolve_due_at < {before}");
    }
    if let Some(after) = query.after {
        let after = arg(&mut args, Arg::Int(after));
        let _ = write!(sql, " AND t.reg > {after}");
    }
    let limit = page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE);
    let fetch = arg(&mut args, Arg::Int(limit + 1));
    let _ = write!(sql, " ORDER BY t.reg LIMIT {fetch}");
    Ok(ListSql { sql, args, limit })
}

/// A page from the rows of [`list_sql`].
pub(crate) fn page(rows: Vec<(i64, String)>, limit: i64) -> Result<crate::TicketPage> {
    let more = rows.len() as i64 > limit;
    let mut tickets = Vec::with_capacity(rows.len());
    let mut last = None;
    for (reg, json) in rows.into_iter().take(limit as usize) {
        tickets.push(ticket_from_json(&json)?);
        last = Some(reg);
    }
    Ok(crate::TicketPage {
        tickets,
        next: if more { last } else { None },
    })
}

/// What a commit changes in a ticket's timers: rows to delete (by key) and rows to write. A timer
/// armed before and after at the same instant is left alone, lease included.
pub(crate) fn timer_changes<'a>(
    existing: &'a [TimerRow],
    desired: &'a [TimerRow],
) -> (Vec<&'a TimerRow>, Vec<&'a TimerRow>) {
    let same_key = |a: &TimerRow, b: &TimerRow| {
        a.clock == b.clock && a.unit == b.unit && a.threshold == b.threshold
    };
    let removed = existing
        .iter()
        .filter(|e| !desired.iter().any(|d| same_key(e, d)))
        .collect();
    let written = desired
        .iter()
        .filter(|d| !existing.iter().any(|e| e == *d))
        .collect();
    (removed, written)
}

/// A timer row read back for [`timer_changes`].
pub(crate) fn timer_row(
    clock: &str,
    unit: String,
    threshold: &str,
    due_at: i64,
    due_exact: String,
) -> Result<TimerRow> {
    let clock = parse_name::<ClockKind>(clock)?.as_str();
    let threshold = threshold_name(parse_threshold(threshold)?);
    Ok(TimerRow {
        clock,
        unit,
        threshold,
        due_at,
        due_exact,
    })
}

/// The calendar from its stored notices `(year, source)` and days `(YYYY-MM-DD, off, name, notice)`.
pub(crate) fn calendar_from_rows(
    notices: Vec<(i32, String)>,
    days: Vec<(String, bool, String, i32)>,
) -> Result<doorstep_domain::calendar::Calendar> {
    use doorstep_domain::calendar::{Calendar, Notice, SpecialDay};

    let mut calendar = Calendar::default();
    let mut by_notice: std::collections::BTreeMap<i32, Vec<SpecialDay>> = Default::default();
    for (day, off, name, notice) in days {
        let date = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
            .map_err(|e| StoreError::Database(format!("stored calendar day {day:?}: {e}")))?;
        by_notice.entry(notice).or_default().push(SpecialDay {
            date,
            off,
            name,
            notice,
        });
    }
    for (year, source) in notices {
        let days = by_notice.remove(&year).unwrap_or_default();
        calendar
            .put_notice(Notice { year, source }, days)
            .map_err(|e| StoreError::Database(format!("stored calendar {year}: {e}")))?;
    }
    Ok(calendar)
}

/// The calendar TOML of what one year's notice declared (rows as [`calendar_from_rows`] takes them).
pub(crate) fn previous_notice(
    notices: Vec<(i32, String)>,
    days: Vec<(String, bool, String, i32)>,
) -> Result<String> {
    Ok(calendar_from_rows(notices, days)?.to_toml_string())
}

/// Pending re-timings as stored: `(year, previous)`.
pub(crate) fn pending_retimings(
    rows: Vec<(i32, String)>,
) -> Result<Vec<(i32, doorstep_domain::calendar::Calendar)>> {
    rows.into_iter()
        .map(|(year, previous)| {
            let calendar =
                doorstep_domain::calendar::Calendar::from_toml_str(&previous).map_err(|e| {
                    StoreError::Database(format!("pending re-timing of calendar {year}: {e}"))
                })?;
            Ok((year, calendar))
        })
        .collect()
}

pub(crate) fn day_text(date: chrono::NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// A new ticket must be the fold of its events: CREATED first, one version per event.
pub(crate) fn check_new(new: &crate::NewTicket<'_>) -> Result<()> {
    let first_is_created = new
        .events
        .first()
        .is_some_and(|e| matches!(e.change, doorstep_domain::Change::Created { .. }));
    if !first_is_created || new.ticket.version != new.events.len() as i64 {
        return Err(StoreError::Config(format!(
            "ticket {} at version {} does not follow from its {} event(s) starting with CREATED",
            new.ticket.id,
            new.ticket.version,
            new.events.len()
        )));
    }
    subtree_range(new.node_path)?;
    Ok(())
}

/// A commit's ticket must be `expected_version` plus one version per event.
pub(crate) fn check_commit(commit: &crate::Commit<'_>) -> Result<()> {
    if commit.ticket.version != commit.expected_version + commit.events.len() as i64 {
        return Err(StoreError::Config(format!(
            "ticket {} at version {} does not follow from version {} and {} event(s)",
            commit.ticket.id,
            commit.ticket.version,
            commit.expected_version,
            commit.events.len()
        )));
    }
    Ok(())
}

pub(crate) const DEFAULT_EVENTS: u32 = 1000;
pub(crate) const MAX_EVENTS: u32 = 10_000;
pub(crate) const DEFAULT_CLAIM: u32 = 100;
pub(crate) const MAX_CLAIM: u32 = 10_000;
/// How many of the earliest timers `next_timer_due` looks at.
pub(crate) const NEXT_TIMER_SCAN: i64 = 64;

/// When the earliest timer can be claimed, from the first timers by due time `(due_at,
/// lease_until)`: a leased timer counts from its lease's end. Every timer beyond the scanned ones is
/// due no earlier than the last scanned, so the answer is exact.
pub(crate) fn next_claimable(rows: &[(i64, Option<i64>)]) -> Result<Option<DateTime<Utc>>> {
    let mut best = rows
        .iter()
        .map(|(due, lease)| lease.map_or(*due, |l| l.max(*due)))
        .min();
    if rows.len() as i64 >= NEXT_TIMER_SCAN
        && let Some((last_due, _)) = rows.last()
    {
        best = best.map(|b| b.min(*last_due));
    }
    best.map(from_millis).transpose()
}

/// Claimed rows `(ticket_id, clock, unit, threshold, due_exact, due_at)`, earliest first.
pub(crate) fn due_timers(
    mut rows: Vec<(String, String, String, String, String, i64)>,
) -> Result<Vec<crate::DueTimer>> {
    rows.sort_by(|a, b| (a.5, &a.0, &a.1, &a.2, &a.3).cmp(&(b.5, &b.0, &b.1, &b.2, &b.3)));
    rows.into_iter()
        .map(|(id, clock, unit, threshold, exact, _)| {
            Ok(crate::DueTimer {
                ticket_id: ticket_id(id)?,
                timer: timer_from_row(&clock, &unit, &threshold, &exact)?,
            })
        })
        .collect()
}

/// Each day must cite the notice it is stored under.
pub(crate) fn check_notice(
    notice: &doorstep_domain::calendar::Notice,
    days: &[doorstep_domain::calendar::SpecialDay],
) -> Result<()> {
    match days.iter().find(|d| d.notice != notice.year) {
        Some(d) => Err(StoreError::Config(format!(
            "calendar day {} cites notice {}, not {}",
            d.date, d.notice, notice.year
        ))),
        None => Ok(()),
    }
}

pub(crate) fn declared_elsewhere(
    day: &doorstep_domain::calendar::SpecialDay,
    year: i32,
) -> StoreError {
    StoreError::AlreadyExists(format!(
        "calendar day {} (declared by another notice than {year})",
        day.date
    ))
}

/// Bound parameters per statement: under SQLite's limit (32,766) and PostgreSQL's (65,535).
pub(crate) const MAX_PARAMS: usize = 30_000;

/// Rows of a multi-row statement with `columns` parameters a row.
pub(crate) fn rows_per_statement(columns: usize) -> usize {
    MAX_PARAMS / columns
}

/// `$1, $2, ..., $n`.
pub(crate) fn params(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(?, ?), (?, ?)` for `rows` rows of `columns` parameters each, for SQLite. Anonymous parameters
/// matter in long statements: sqlx-sqlite looks each numbered parameter's name up in a list, which
/// makes binding `$1 … $n` quadratic in `n` (at 4,500 parameters that was most of a commit).
pub(crate) fn anonymous_values(rows: usize, columns: usize) -> String {
    let row = format!("({})", anonymous_params(columns));
    vec![row; rows].join(", ")
}

/// `?, ?, ..., ?`: `n` anonymous parameters, for SQLite (see [`anonymous_values`]).
pub(crate) fn anonymous_params(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `($1, $2), ($3, $4)` for `rows` rows of `columns` parameters each: one statement for many rows.
pub(crate) fn values(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
