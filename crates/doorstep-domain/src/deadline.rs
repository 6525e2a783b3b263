//! Deadline arithmetic on both clocks: clock hours and working days.
//!
//! A clock's figures are computed here once, when something happens, and carried in the events; replaying a
//! history never consults the policy or the calendar again, so a later calendar update cannot rewrite the
//! past.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use doorstep_calendar::{Calendar, Reckoned, WorkingTime};
use serde::{Deserialize, Serialize};

use crate::ladder::Level;
use crate::policy::{Limit, Policy};

/// The resolve clock of a ticket at one level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveClock {
    pub level: Level,
    /// The level's allowed time, as the policy said when the clock started.
    pub limit: Limit,
    /// When this level's clock started: registration, the breach instant of the level below, a
    /// reclassification or a reopening callback.
    pub started_at: DateTime<Utc>,
    /// The deadline. While suspended: the deadline as it stood when the clock stopped.
    pub due_at: DateTime<Utc>,
    /// The warning (yellow card) instant.
    pub warn_at: DateTime<Utc>,
    /// Time the clock stood still, in the limit's own units (working-day seconds for working-day limits).
    pub paused_seconds: i64,
    /// Set while suspended.
    pub paused_since: Option<DateTime<Utc>>,
    /// Working days added by approved extensions.
    pub extension_days: u32,
    /// Years whose calendar data was missing, so Monday–Friday was assumed (empty: fully official).
    pub fallback_years: BTreeSet<i32>,
    pub warned: bool,
    pub breached: bool,
}

impl ResolveClock {
    /// Why the deadline is what it is, in words a dispatcher can check.
    pub fn rule(&self) -> String {
        let mut rule = match self.limit {
            Limit::WorkingDays(n) => format!(
                "{}: {} working day{} after the local day of the start, ending 24:00 local",
                self.level,
                n,
                if n == 1 { "" } else { "s" }
            ),
            Limit::Clock { .. } => format!(
                "{}: {} of clock time from the start",
                self.level, self.limit
            ),
        };
        if self.paused_seconds > 0 {
            let unit = match self.limit {
                Limit::WorkingDays(_) => " of working-day time",
                Limit::Clock { .. } => "",
            };
            rule.push_str(&format!(", plus {}s{unit} suspended", self.paused_seconds));
        }
        if self.extension_days > 0 {
            rule.push_str(&format!(
                ", extended by {} working day{}",
                self.extension_days,
                if self.extension_days == 1 { "" } else { "s" }
            ));
        }
        if !self.fallback_years.is_empty() {
            let years: Vec<String> = self.fallback_years.iter().map(i32::to_string).collect();
            rule.push_str(&format!(
                "; no official calendar for {}, Monday to Friday assumed",
                years.join(", ")
            ));
        }
        rule
    }
}

/// The sign-for clock of a dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcknowledgeClock {
    pub limit: Limit,
    pub started_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub warn_at: DateTime<Utc>,
    pub fallback_years: BTreeSet<i32>,
    pub warned: bool,
    pub breached: bool,
}

/// The MAJOR_RISK progress review cadence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewClock {
    pub every: Limit,
    pub due_at: DateTime<Utc>,
    pub fallback_years: BTreeSet<i32>,
}

/// Deadline arithmetic under one policy and one calendar.
#[derive(Debug)]
pub struct Reckoner<'a> {
    policy: &'a Policy,
    time: WorkingTime<'a>,
}

impl<'a> Reckoner<'a> {
    pub fn new(policy: &'a Policy, calendar: &'a Calendar) -> Self {
        Reckoner {
            policy,
            time: WorkingTime::new(calendar, policy.time_zone),
        }
    }

    pub fn policy(&self) -> &'a Policy {
        self.policy
    }

    /// `start` plus an allowed time.
    pub fn add(&self, start: DateTime<Utc>, limit: Limit) -> Reckoned<DateTime<Utc>> {
        match limit {
            Limit::Clock { seconds } => plain(start + Duration::seconds(seconds as i64)),
            Limit::WorkingDays(n) => self.time.end_of_nth_working_day_after(start, n),
        }
    }

    /// The time in `[a, b)` in a limit's own units: every second for clock limits, working-day seconds
    /// for working-day limits.
    pub fn measure(&self, limit: Limit, a: DateTime<Utc>, b: DateTime<Utc>) -> Reckoned<i64> {
        match limit {
            Limit::Clock { .. } => plain((b - a).num_seconds().max(0)),
            Limit::WorkingDays(_) => self.time.working_seconds_between(a, b),
        }
    }

    /// `t` moved later by `seconds` in a limit's own units.
    pub fn advance(&self, limit: Limit, t: DateTime<Utc>, seconds: i64) -> Reckoned<DateTime<Utc>> {
        match limit {
            Limit::Clock { .. } => plain(t + Duration::seconds(seconds.max(0))),
            Limit::WorkingDays(_) => self.time.advance_working_seconds(t, seconds),
        }
    }

    /// A fresh resolve clock for `level` starting at `start`, or `None` where the policy sets no resolve
    /// deadline for the level.
    pub fn start_resolve(&self, level: Level, start: DateTime<Utc>) -> Option<ResolveClock> {
        let limit = self.policy.level(level).resolve_within?;
        let due = self.add(start, limit);
        let mut clock = ResolveClock {
            level,
            limit,
            started_at: start,
            due_at: due.value,
            warn_at: due.value,
            paused_seconds: 0,
            paused_since: None,
            extension_days: 0,
            fallback_years: due.fallback_years,
            warned: false,
            breached: false,
        };
        self.rewarn(&mut clock);
        Some(clock)
    }

    /// Stops the clock at `at`.
    pub fn pause(&self, clock: &ResolveClock, at: DateTime<Utc>) -> ResolveClock {
        ResolveClock {
            paused_since: Some(at),
            ..clock.clone()
        }
    }

    /// Restarts a stopped clock at `at`, adding the time it stood still to the deadline (in the
    /// limit's units: working-day time moves a working-day deadline forward over working days only).
    pub fn resume(&self, clock: &ResolveClock, at: DateTime<Utc>) -> ResolveClock {
        let Some(since) = clock.paused_since else {
            return clock.clone();
        };
        let paused = self.measure(clock.limit, since, at);
        let due = self.advance(clock.limit, clock.due_at, paused.value);
        let mut next = ResolveClock {
            due_at: due.value,
            paused_seconds: clock.paused_seconds + paused.value,
            paused_since: None,
            ..clock.clone()
        };
        next.fallback_years.extend(paused.fallback_years);
        next.fallback_years.extend(due.fallback_years);
        self.rewarn(&mut next);
        next
    }

    /// An approved extension: the deadline moves to the end of the N-th working day after the local
    /// day of the current deadline (for every level, clock-hour levels included).
    pub fn extend(&self, clock: &ResolveClock, days: u32) -> ResolveClock {
        let due = self.add(clock.due_at, Limit::WorkingDays(days));
        let mut next = ResolveClock {
            due_at: due.value,
            extension_days: clock.extension_days + days,
            ..clock.clone()
        };
        next.fallback_years.extend(due.fallback_years);
        self.rewarn(&mut next);
        next
    }

    /// The clock reckoned afresh from its start under this reckoner's calendar: the deadline of the
    /// limit, moved by the time already suspended (as it was measured when it happened), then by the
    /// approved extensions. What a calendar change means for a clock still running.
    pub fn recompute_resolve(&self, clock: &ResolveClock) -> ResolveClock {
        let due = self.add(clock.started_at, clock.limit);
        let mut fallback_years = due.fallback_years;
        let mut at = due.value;
        if clock.paused_seconds > 0 {
            let moved = self.advance(clock.limit, at, clock.paused_seconds);
            fallback_years.extend(moved.fallback_years);
            at = moved.value;
        }
        if clock.extension_days > 0 {
            let moved = self.add(at, Limit::WorkingDays(clock.extension_days));
            fallback_years.extend(moved.fallback_years);
            at = moved.value;
        }
        let mut next = ResolveClock {
            due_at: at,
            fallback_years,
            ..clock.clone()
        };
        self.rewarn(&mut next);
        next
    }

    /// A sign-for or report-in clock reckoned afresh from its start (see [`Self::recompute_resolve`]).
    pub fn recompute_acknowledge(&self, clock: &AcknowledgeClock) -> AcknowledgeClock {
        AcknowledgeClock {
            warned: clock.warned,
            breached: clock.breached,
            ..self.acknowledge_with(clock.limit, clock.started_at)
        }
    }

    /// The warning comes when the warning share of the time the unit actually has (start to deadline,
    /// less the time suspended) has been used.
    fn rewarn(&self, clock: &mut ResolveClock) {
        let span = self.measure(clock.limit, clock.started_at, clock.due_at);
        let allowed = (span.value - clock.paused_seconds).max(0);
        let used = (allowed as f64 * self.policy.warning_share).round() as i64;
        let warn = self.advance(clock.limit, clock.started_at, used + clock.paused_seconds);
        clock.warn_at = warn.value.min(clock.due_at);
        clock.fallback_years.extend(span.fallback_years);
        clock.fallback_years.extend(warn.fallback_years);
    }

    /// The sign-for clock of a dispatch at `level` made at `start`.
    pub fn start_acknowledge(&self, level: Level, start: DateTime<Utc>) -> AcknowledgeClock {
        self.acknowledge_with(self.policy.acknowledge_limit(level), start)
    }

    /// A whistled unit's report-in clock.
    pub fn start_report_in(&self, start: DateTime<Utc>) -> AcknowledgeClock {
        self.acknowledge_with(self.policy.acknowledge_within, start)
    }

    fn acknowledge_with(&self, limit: Limit, start: DateTime<Utc>) -> AcknowledgeClock {
        let due = self.add(start, limit);
        let span = self.measure(limit, start, due.value);
        let used = (span.value as f64 * self.policy.warning_share).round() as i64;
        let warn = self.advance(limit, start, used);
        let mut fallback_years = due.fallback_years;
        fallback_years.extend(span.fallback_years);
        fallback_years.extend(warn.fallback_years);
        AcknowledgeClock {
            limit,
            started_at: start,
            due_at: due.value,
            warn_at: warn.value.min(due.value),
            fallback_years,
            warned: false,
            breached: false,
        }
    }

    /// The next MAJOR_RISK review after `from`, if the level has a cadence.
    pub fn next_review(&self, level: Level, from: DateTime<Utc>) -> Option<ReviewClock> {
        let every = self.policy.level(level).review_every?;
        let due = self.add(from, every);
        Some(ReviewClock {
            every,
            due_at: due.value,
            fallback_years: due.fallback_years,
        })
    }

    /// When a resolved ticket with no callback closes.
    pub fn callback_due(&self, resolved_at: DateTime<Utc>) -> DateTime<Utc> {
        self.add(resolved_at, self.policy.callback_window).value
    }
}

fn plain<T>(value: T) -> Reckoned<T> {
    Reckoned {
        value,
        fallback_years: BTreeSet::new(),
    }
}
