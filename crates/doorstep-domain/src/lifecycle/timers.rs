//! What a fired timer does. The scheduler fires what the ticket armed ([`Ticket::timers`]); a timer
//! whose clock has moved on since (signed for, resolved, re-timed, already fired) yields no events, so
//! a late or repeated firing is harmless.

use chrono::{DateTime, Utc};

use super::{ActionError, Decision};
use crate::deadline::ReviewClock;
use crate::event::Change;
use crate::ids::UnitCode;
use crate::ladder::{ClockKind, Level, Status};
use crate::ticket::Ticket;

impl Ticket {
    /// Yellow card: the warning share of the resolve or sign-for clock has passed.
    pub(super) fn fire_warning(
        &self,
        clock: ClockKind,
        unit: Option<&UnitCode>,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<Change> {
        if due_at > now {
            return Vec::new();
        }
        let current = match clock {
            ClockKind::Resolve => self.resolve.as_ref().is_some_and(|r| {
                matches!(
                    self.status,
                    Status::New | Status::Returned | Status::Dispatched | Status::InProgress
                ) && !r.warned
                    && !r.breached
                    && r.warn_at == due_at
            }),
            ClockKind::Acknowledge => self.acknowledge.as_ref().is_some_and(|a| {
                self.status == Status::Dispatched && !a.warned && !a.breached && a.warn_at == due_at
            }),
            ClockKind::ReportIn | ClockKind::Review | ClockKind::Callback => false,
        };
        if !current {
            return Vec::new();
        }
        let unit = match clock {
            ClockKind::Acknowledge => self.lead_unit.clone(),
            _ => unit.cloned(),
        };
        vec![Change::Warning {
            clock,
            unit,
            due_at,
        }]
    }

    /// Red card: a deadline came due. A resolve breach escalates one rung from the breach instant;
    /// a sign-for breach re-dispatches to `supervisor`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fire_breach(
        &self,
        clock: ClockKind,
        unit: Option<&UnitCode>,
        due_at: DateTime<Utc>,
        owner_unit: &Option<UnitCode>,
        case_owner: Option<&str>,
        supervisor: Option<&UnitCode>,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if due_at > d.now {
            return Ok(Vec::new());
        }
        match clock {
            ClockKind::Resolve => self.resolve_breached(due_at, owner_unit, case_owner, d),
            ClockKind::Acknowledge => Ok(self.sign_for_breached(due_at, supervisor, d)),
            ClockKind::ReportIn => Ok(self.report_in_breached(unit, due_at, d)),
            ClockKind::Review => Ok(self.review_missed(due_at, d)),
            ClockKind::Callback => Ok(self.callback_window_passed(due_at, d)),
        }
    }

    /// The resolve deadline passed while the clock was running: the breach, and one rung up unless
    /// the ticket is at the top.
    fn resolve_breached(
        &self,
        due_at: DateTime<Utc>,
        owner_unit: &Option<UnitCode>,
        case_owner: Option<&str>,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        let running = matches!(
            d.status,
            Status::New | Status::Returned | Status::Dispatched | Status::InProgress
        );
        match &self.resolve {
            Some(r) if running && !r.breached && r.due_at == due_at => {}
            _ => return Ok(Vec::new()),
        }
        let breach = Change::Breached {
            clock: ClockKind::Resolve,
            unit: None,
            due_at,
        };
        if self.level.next().is_none() {
            return Ok(vec![breach]);
        }
        let why = format!("resolve deadline {} passed", due_at.to_rfc3339());
        let escalation = self
            .escalation(why, due_at, d.now, owner_unit, case_owner, d.ctx)
            .map_err(|r| d.refused(r))?;
        Ok(vec![breach, escalation])
    }

    /// The lead unit did not sign for the dispatch in time: the breach, and the ticket goes to
    /// `supervisor` (unless that is the lead unit itself), whose clock starts at the breach instant.
    fn sign_for_breached(
        &self,
        due_at: DateTime<Utc>,
        supervisor: Option<&UnitCode>,
        d: &Decision<'_, '_>,
    ) -> Vec<Change> {
        match &self.acknowledge {
            Some(a) if d.status == Status::Dispatched && !a.breached && a.due_at == due_at => {}
            _ => return Vec::new(),
        }
        let mut changes = vec![Change::Breached {
            clock: ClockKind::Acknowledge,
            unit: self.lead_unit.clone(),
            due_at,
        }];
        if let Some(supervisor) = supervisor.filter(|s| self.lead_unit.as_ref() != Some(*s)) {
            changes.push(Change::DispatchedTo {
                unit: supervisor.clone(),
                reason: format!(
                    "{} did not sign for it by {}",
                    self.lead_unit
                        .as_ref()
                        .map_or("the lead unit", UnitCode::as_str),
                    due_at.to_rfc3339()
                ),
                acknowledge: d.reckoner.start_acknowledge(self.level, due_at),
            });
        }
        changes
    }

    /// A called unit did not report in by its deadline.
    fn report_in_breached(
        &self,
        unit: Option<&UnitCode>,
        due_at: DateTime<Utc>,
        d: &Decision<'_, '_>,
    ) -> Vec<Change> {
        let called = self.co_handlers.iter().find(|c| {
            Some(&c.unit) == unit
                && c.reported_in_at.is_none()
                && !c.report_in.breached
                && c.report_in.due_at == due_at
        });
        match called {
            Some(c) if d.status.is_open() => vec![Change::Breached {
                clock: ClockKind::ReportIn,
                unit: Some(c.unit.clone()),
                due_at,
            }],
            _ => Vec::new(),
        }
    }

    /// A MAJOR_RISK review fell due with no progress note: the alert, and the next review one cadence
    /// on from the missed one.
    fn review_missed(&self, due_at: DateTime<Utc>, d: &Decision<'_, '_>) -> Vec<Change> {
        match &self.review {
            Some(review)
                if self.level == Level::MajorRisk
                    && d.status.is_open()
                    && review.due_at == due_at =>
            {
                let next = d.reckoner.add(due_at, review.every);
                vec![Change::ReviewMissed {
                    due_at,
                    next: ReviewClock {
                        every: review.every,
                        due_at: next.value,
                        fallback_years: next.fallback_years,
                    },
                }]
            }
            _ => Vec::new(),
        }
    }

    /// No callback was recorded within the callback window: the resolved ticket closes.
    fn callback_window_passed(&self, due_at: DateTime<Utc>, d: &Decision<'_, '_>) -> Vec<Change> {
        if d.status != Status::Resolved || self.callback_due_at != Some(due_at) {
            return Vec::new();
        }
        vec![Change::ClosedTicket {
            reason: "no callback within the callback window".into(),
        }]
    }
}
