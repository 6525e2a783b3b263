//! The SLA report: every figure of `report.proto`'s `SlaRow`, over a subtree and a window, scoped to
//! the caller. The store counts; this file settles windows, groups, period steps in the district's
//! time zone, rates and the year-before comparison.
//!
//! Definitions settled here (the proto comments and the README say the same):
//! - tickets are grouped by what they were received as: the level and category at registration, and
//!   the node they were filed under; an event counted in a window (an escalation, a callback) counts
//!   in the row of its ticket;
//! - a PERIOD row is its own window: the step (local day, ISO week from Monday, month or year, in the
//!   policy's time zone) clipped to `[from, to)`; its `overdue_now` and `breached_now` are taken at
//!   min(step end, now) and its year-before figure over that clipped step shifted back one calendar
//!   year;
//! - "shifted back one calendar year" is done on local date and time (29 February becomes 28 February);
//! - the first dispatch is the first DISPATCHED_TO, or the first ESCALATED that hands the lead to the
//!   new tier; it is acknowledged on time when its own ACKNOWLEDGED comes, before any return or other
//!   dispatch, strictly before its acknowledge deadline;
//! - p50/p90 are nearest-rank percentiles (the smallest value with at least 50%/90% of values at or
//!   below it), in seconds at millisecond precision.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};
use doorstep_domain::{Level, NodeCode};
use doorstep_store::{ReportCounts, ReportGroup, ReportQuery};

use crate::auth::Principal;
use crate::engine::Engine;
use crate::error::Error;

/// A report request, parsed at the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaReportRequest {
    pub node: NodeCode,
    /// Inclusive.
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
    pub by: ReportBy,
}

/// How the report's rows are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportBy {
    /// One row for the whole node, keyed by its code.
    Whole,
    ChildNode,
    Level,
    Category,
    Period(PeriodStep),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodStep {
    Day,
    /// ISO weeks: Monday to Sunday.
    Week,
    Month,
    Year,
}

/// The most rows a PERIOD report may have.
pub const MAX_PERIOD_STEPS: usize = 1000;

/// One row of the report; rates and percentiles are NaN when there is nothing to divide.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaRow {
    pub key: String,
    pub received: i64,
    pub resolved: i64,
    pub resolved_on_time: i64,
    pub overdue_now: i64,
    pub escalations: i64,
    pub dispatched: i64,
    pub acknowledged_on_time: i64,
    pub callbacks: i64,
    pub callbacks_satisfied: i64,
    pub callbacks_solved: i64,
    pub repeat_requests: i64,
    pub on_time_rate: f64,
    pub acknowledge_rate: f64,
    pub resolution_rate: f64,
    pub satisfaction_rate: f64,
    pub resolve_seconds_mean: f64,
    pub resolve_seconds_p50: f64,
    pub resolve_seconds_p90: f64,
    pub received_year_before: i64,
    pub received_change: f64,
    /// Showing a red card at the instant `overdue_now` is taken at.
    pub breached_now: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlaReport {
    pub rows: Vec<SlaRow>,
    pub as_of: DateTime<Utc>,
}

/// `n / d`, NaN when `d` is 0.
pub fn ratio(n: i64, d: i64) -> f64 {
    if d == 0 {
        f64::NAN
    } else {
        n as f64 / d as f64
    }
}

impl SlaRow {
    /// The row of `key` from the store's counts.
    pub fn from_counts(key: String, c: &ReportCounts) -> SlaRow {
        let seconds = |ms: Option<f64>| ms.map_or(f64::NAN, |ms| ms / 1000.0);
        SlaRow {
            key,
            received: c.received,
            resolved: c.resolved,
            resolved_on_time: c.resolved_on_time,
            overdue_now: c.overdue,
            breached_now: c.breached,
            escalations: c.escalations,
            dispatched: c.dispatched,
            acknowledged_on_time: c.acknowledged_on_time,
            callbacks: c.callbacks,
            callbacks_satisfied: c.callbacks_satisfied,
            callbacks_solved: c.callbacks_solved,
            repeat_requests: c.repeat_requests,
            on_time_rate: ratio(c.resolved_on_time, c.resolved),
            acknowledge_rate: ratio(c.acknowledged_on_time, c.dispatched),
            resolution_rate: ratio(c.callbacks_solved, c.callbacks),
            satisfaction_rate: ratio(c.callbacks_satisfied, c.callbacks),
            resolve_seconds_mean: if c.resolved == 0 {
                f64::NAN
            } else {
                seconds(c.resolve_ms_mean)
            },
            resolve_seconds_p50: seconds(c.resolve_ms_p50.map(|ms| ms as f64)),
            resolve_seconds_p90: seconds(c.resolve_ms_p90.map(|ms| ms as f64)),
            received_year_before: c.received_year_before,
            received_change: ratio(c.received - c.received_year_before, c.received_year_before),
        }
    }
}

/// `t` one calendar year earlier in local time `tz` (29 February → 28 February).
pub fn year_before<Z: TimeZone>(t: DateTime<Utc>, tz: &Z) -> DateTime<Utc> {
    let local = t.with_timezone(tz).naive_local();
    let date = local.date();
    let shifted = date
        .with_year(date.year() - 1)
        .or_else(|| NaiveDate::from_ymd_opt(date.year() - 1, date.month(), 28))
        .unwrap_or(date);
    to_utc(shifted.and_time(local.time()), tz)
}

/// A local wall-clock time as an instant (the earlier one in a fold, just after a gap).
fn to_utc<Z: TimeZone>(local: NaiveDateTime, tz: &Z) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.with_timezone(&Utc);
        }
        probe += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&local)
}

/// The local midnight starting `date`.
pub fn local_midnight<Z: TimeZone>(date: NaiveDate, tz: &Z) -> DateTime<Utc> {
    to_utc(date.and_hms_opt(0, 0, 0).unwrap_or_default(), tz)
}

/// The first local date of the period step holding local date `d`.
pub fn step_start(step: PeriodStep, d: NaiveDate) -> NaiveDate {
    match step {
        PeriodStep::Day => d,
        PeriodStep::Week => d - Days::new(u64::from(d.weekday().num_days_from_monday())),
        PeriodStep::Month => d.with_day(1).unwrap_or(d),
        PeriodStep::Year => NaiveDate::from_ymd_opt(d.year(), 1, 1).unwrap_or(d),
    }
}

/// The first local date of the step after the one starting at `start`.
pub fn next_step(step: PeriodStep, start: NaiveDate) -> NaiveDate {
    match step {
        PeriodStep::Day => start + Days::new(1),
        PeriodStep::Week => start + Days::new(7),
        PeriodStep::Month => start + Months::new(1),
        PeriodStep::Year => start + Months::new(12),
    }
}

/// One period step: its key (the local date it starts) and its window clipped to the report's.
pub type Step = (String, DateTime<Utc>, DateTime<Utc>);

/// The period steps covering `[from, to)`.
pub fn period_steps<Z: TimeZone>(
    step: PeriodStep,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: &Z,
) -> Result<Vec<Step>, Error> {
    let mut steps = Vec::new();
    let mut start = step_start(step, from.with_timezone(tz).date_naive());
    loop {
        let begins = local_midnight(start, tz);
        if begins >= to {
            break;
        }
        let next = next_step(step, start);
        let ends = local_midnight(next, tz);
        if steps.len() == MAX_PERIOD_STEPS {
            return Err(Error::invalid(
                "period",
                format!(
                    "the window has more than {MAX_PERIOD_STEPS} steps of this period; choose a \
                     longer period or a shorter window"
                ),
            ));
        }
        steps.push((
            start.format("%Y-%m-%d").to_string(),
            begins.max(from),
            ends.min(to),
        ));
        start = next;
    }
    Ok(steps)
}

/// The last segment of a node path: the node's code.
fn code_of_path(path: &str) -> &str {
    path.trim_end_matches('|')
        .rsplit('|')
        .next()
        .unwrap_or(path)
}

impl Engine {
    /// The SLA report of a subtree the principal reaches (outside it: not found, as for tickets).
    pub async fn sla_report(
        &self,
        principal: &Principal,
        request: &SlaReportRequest,
    ) -> Result<SlaReport, Error> {
        if request.from >= request.to {
            return Err(Error::invalid(
                "to",
                format!(
                    "{} is not after from ({})",
                    request.to.to_rfc3339(),
                    request.from.to_rfc3339()
                ),
            ));
        }
        let district = self.district();
        let path = district
            .jurisdiction
            .node_path(&request.node)
            .ok_or_else(|| Error::NotFound(format!("node {}", request.node)))?;
        if !principal.reaches(&path) {
            return Err(Error::NotFound(format!("node {}", request.node)));
        }
        let tz = self.policy(0).await?.time_zone;
        let now = self.now();
        let window = |group, from: DateTime<Utc>, to: DateTime<Utc>| ReportQuery {
            subtree: path.clone(),
            group,
            from,
            to,
            overdue_at: to.min(now),
            year_before_from: year_before(from, &tz),
            year_before_to: year_before(to, &tz),
        };
        let store = self.store();
        let rows = match request.by {
            ReportBy::Period(step) => {
                let mut rows = Vec::new();
                for (key, from, to) in period_steps(step, request.from, request.to, &tz)? {
                    let counts = store
                        .report_counts(&window(ReportGroup::Whole, from, to))
                        .await?;
                    let counts = counts.into_iter().next().unwrap_or_default();
                    rows.push(SlaRow::from_counts(key, &counts));
                }
                rows
            }
            ReportBy::Whole => {
                let counts = store
                    .report_counts(&window(ReportGroup::Whole, request.from, request.to))
                    .await?;
                let counts = counts.into_iter().next().unwrap_or_default();
                vec![SlaRow::from_counts(
                    request.node.as_str().to_owned(),
                    &counts,
                )]
            }
            ReportBy::Level => {
                let counts = store
                    .report_counts(&window(ReportGroup::Level, request.from, request.to))
                    .await?;
                [
                    Level::Routine,
                    Level::Difficult,
                    Level::Hard,
                    Level::MajorRisk,
                ]
                .iter()
                .map(|level| {
                    let c = counts
                        .iter()
                        .find(|c| c.key == level.as_str())
                        .cloned()
                        .unwrap_or_default();
                    SlaRow::from_counts(level.as_str().to_owned(), &c)
                })
                .collect()
            }
            ReportBy::Category => store
                .report_counts(&window(ReportGroup::Category, request.from, request.to))
                .await?
                .iter()
                .map(|c| SlaRow::from_counts(c.key.clone(), c))
                .collect(),
            ReportBy::ChildNode => {
                let counts = store
                    .report_counts(&window(ReportGroup::ChildNode, request.from, request.to))
                    .await?;
                let mut children: Vec<&str> = district
                    .jurisdiction
                    .nodes()
                    .filter(|n| n.parent.as_ref() == Some(&request.node))
                    .map(|n| n.code.as_str())
                    .collect();
                children.sort_unstable();
                let mut rows: Vec<SlaRow> = Vec::new();
                // Tickets filed at the node itself come first, under its own code.
                if let Some(own) = counts.iter().find(|c| c.key == path) {
                    rows.push(SlaRow::from_counts(request.node.as_str().to_owned(), own));
                }
                for child in children {
                    let c = counts
                        .iter()
                        .find(|c| c.key != path && code_of_path(&c.key) == child)
                        .cloned()
                        .unwrap_or_default();
                    rows.push(SlaRow::from_counts(child.to_owned(), &c));
                }
                rows
            }
        };
        Ok(SlaReport { rows, as_of: now })
    }

    /// Folds at most `step` more events of the log into the reporting rows, which commits leave
    /// behind; the number of events taken (fewer than `step`: caught up). The scheduler calls it
    /// while nothing is due; a report catches up by itself first.
    pub async fn catch_up_reports(&self, step: u32) -> Result<u64, Error> {
        Ok(self.store().project_reports(step).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_year_back_is_taken_on_local_dates() {
        let tz = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        let t = Utc.with_ymd_and_hms(2028, 2, 28, 16, 0, 0).unwrap(); // 2028-02-29 00:00 local
        assert_eq!(
            year_before(t, &tz),
            Utc.with_ymd_and_hms(2027, 2, 27, 16, 0, 0).unwrap()
        );
        let t = Utc.with_ymd_and_hms(2026, 10, 31, 16, 0, 0).unwrap();
        assert_eq!(
            year_before(t, &tz),
            Utc.with_ymd_and_hms(2025, 10, 31, 16, 0, 0).unwrap()
        );
    }

    #[test]
    fn weeks_are_iso_weeks_in_local_time_clipped_to_the_window() {
        let tz = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        // 2026-11-01 00:00 local is a Sunday.
        let from = Utc.with_ymd_and_hms(2026, 10, 31, 16, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap();
        let steps = period_steps(PeriodStep::Week, from, to, &tz).unwrap();
        let keys: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            keys,
            [
                "2026-10-26",
                "2026-11-02",
                "2026-11-09",
                "2026-11-16",
                "2026-11-23",
                "2026-11-30"
            ]
        );
        assert_eq!(steps[0].1, from);
        assert_eq!(
            steps[0].2,
            Utc.with_ymd_and_hms(2026, 11, 1, 16, 0, 0).unwrap()
        );
        assert_eq!(steps[5].2, to);
        let months = period_steps(PeriodStep::Month, from, to, &tz).unwrap();
        assert_eq!(months.len(), 1);
        assert_eq!(months[0].0, "2026-11-01");
    }

    #[test]
    fn nothing_to_divide_is_nan() {
        assert!(ratio(0, 0).is_nan());
        assert_eq!(ratio(1, 4), 0.25);
    }
}
