//! What the engine tells the operator beyond its log lines: the names of the gauges it samples
//! ([`Engine::sample_gauges`](crate::Engine::sample_gauges)), and deadlines reckoned on the
//! calendar's Monday–Friday fallback (a year without a notice), counted, and warned of once per year.

use std::collections::BTreeSet;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use doorstep_domain::Ticket;

/// Armed timers due now and not yet fired.
pub const DUE_TIMERS: &str = "doorstep_sla_due_timers";
/// Open tickets (not resolved, not terminal), by level.
pub const TICKETS_OPEN: &str = "doorstep_tickets_open";
/// Events appended to the log and not yet folded into the reporting rows.
pub const PROJECTOR_LAG: &str = "doorstep_report_projector_lag_events";
/// The database pool's connections, by state (`idle`, `busy`).
pub const DB_POOL: &str = "doorstep_db_pool_connections";
/// Deadlines committed that were reckoned, in part, on the Monday–Friday fallback.
pub const CALENDAR_FALLBACK: &str = "doorstep_calendar_fallback_total";

/// The running clocks of a ticket reckoned on the fallback: due instant and the years concerned.
pub(crate) type FallbackClocks = Vec<(DateTime<Utc>, BTreeSet<i32>)>;

pub(crate) fn fallback_clocks(ticket: &Ticket) -> FallbackClocks {
    let resolve = ticket.resolve.iter().map(|c| (c.due_at, &c.fallback_years));
    let acknowledge = ticket
        .acknowledge
        .iter()
        .map(|c| (c.due_at, &c.fallback_years));
    let report_in = ticket
        .co_handlers
        .iter()
        .map(|c| (c.report_in.due_at, &c.report_in.fallback_years));
    let review = ticket.review.iter().map(|c| (c.due_at, &c.fallback_years));
    resolve
        .chain(acknowledge)
        .chain(report_in)
        .chain(review)
        .filter(|(_, years)| !years.is_empty())
        .map(|(due, years)| (due, years.clone()))
        .collect()
}

/// Years already warned of by this process.
static WARNED: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// A commit took the ticket from clocks `before` to `after`: counts each deadline newly reckoned on
/// the fallback, and warns once per year.
pub(crate) fn committed(before: &FallbackClocks, after: &Ticket) {
    let after = fallback_clocks(after);
    let new: Vec<_> = after.iter().filter(|c| !before.contains(c)).collect();
    if new.is_empty() {
        return;
    }
    metrics::counter!(CALENDAR_FALLBACK).increment(new.len() as u64);
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    for year in new.iter().flat_map(|(_, years)| years) {
        if warned.insert(*year) {
            tracing::warn!(
                year,
                "a deadline was reckoned on the Monday-Friday fallback: the calendar has no notice \
                 for {year} (load it with `doorstep calendar put`; deadlines are re-timed then)"
            );
        }
    }
}
