//! The ticket: what intake registered, and its current state as a fold over its events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::deadline::{AcknowledgeClock, ResolveClock, ReviewClock};
use crate::event::{Change, CoHandler, Dispatch, Event};
use crate::ids::{TicketId, UnitCode};
use crate::intake::Intake;
use crate::ladder::{ClockKind, Level, Satisfaction, Status};

/// An extension asked for and not yet decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingExtension {
    pub days: u32,
    pub reason: String,
    pub requested_at: DateTime<Utc>,
}

/// A ticket as it stands: the fold of its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: TicketId,
    pub intake: Intake,
    pub level: Level,
    pub status: Status,
    pub lead_unit: Option<UnitCode>,
    pub co_handlers: Vec<CoHandler>,
    /// The district's named case owner (包案领导), set at MAJOR_RISK.
    pub case_owner: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set while waiting for the lead unit to sign for a dispatch.
    pub acknowledge: Option<AcknowledgeClock>,
    /// The current level's resolve clock (kept after resolution, for the record).
    pub resolve: Option<ResolveClock>,
    /// The MAJOR_RISK review cadence.
    pub review: Option<ReviewClock>,
    pub pending_extension: Option<PendingExtension>,
    /// An extension was already asked for on the current resolve clock (one request per clock).
    pub extension_requested: bool,
    pub escalations: u32,
    pub extensions: u32,
    pub urges: u32,
    pub supervisions: u32,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    /// When a resolved ticket with no callback closes.
    pub callback_due_at: Option<DateTime<Utc>>,
    pub satisfaction: Option<Satisfaction>,
    pub matter_solved: Option<bool>,
    pub merged_into: Option<TicketId>,
    /// A deadline of this ticket was breached at some point: a BREACHED event (resolve, sign-for or
    /// report-in clock) or a missed MAJOR_RISK review. Kept for good: an escalation starts a fresh
    /// clock but does not undo the overrun (超期), and a reopened ticket shows it again
    /// ([`Ticket::is_breached`]).
    #[serde(default)]
    pub deadline_breached: bool,
    pub policy_version: i64,
    /// Bumped by every recorded event: the optimistic concurrency token.
    pub version: i64,
}

/// Why a history could not be folded into a ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("a ticket's history is empty")]
    Empty,
    #[error("a ticket's history must start with CREATED, not {0}")]
    NotCreatedFirst(&'static str),
    #[error("event {index} is a second CREATED")]
    CreatedTwice { index: usize },
}

/// One threshold of one clock, armed for the SLA scheduler.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timer {
    pub clock: ClockKind,
    /// For report-in clocks: the called unit.
    pub unit: Option<UnitCode>,
    pub threshold: Threshold,
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Threshold {
    /// Yellow card.
    Warning,
    /// Red card: breach.
    Breach,
}

impl Ticket {
    /// The ticket a CREATED event describes.
    pub fn from_created(event: &Event) -> Result<Ticket, ReplayError> {
        let Change::Created {
            id,
            intake,
            level,
            policy_version,
            resolve,
            review,
            case_owner,
        } = &event.change
        else {
            return Err(ReplayError::NotCreatedFirst(event.change.kind()));
        };
        Ok(Ticket {
            id: id.clone(),
            intake: (**intake).clone(),
            level: *level,
            status: Status::New,
            lead_unit: None,
            co_handlers: Vec::new(),
            case_owner: case_owner.clone(),
            created_at: event.at,
            updated_at: event.at,
            acknowledge: None,
            resolve: resolve.clone(),
            review: review.clone(),
            pending_extension: None,
            extension_requested: false,
            escalations: 0,
            extensions: 0,
            urges: 0,
            supervisions: 0,
            resolved_at: None,
            resolution: None,
            callback_due_at: None,
            satisfaction: None,
            matter_solved: None,
            merged_into: None,
            deadline_breached: false,
            policy_version: *policy_version,
            version: 1,
        })
    }

    /// Folds one more event into the ticket. Events are facts already decided by
    /// [`Ticket::decide`](crate::lifecycle); applying never fails and never consults policy or calendar.
    pub fn apply(&mut self, event: &Event) {
        self.version += 1;
        self.updated_at = event.at;
        match &event.change {
            // A second CREATED is refused by `replay`; applied directly it only bumps the version.
            Change::Created { .. } => {}
            Change::DispatchedTo {
                unit, acknowledge, ..
            } => {
                self.status = Status::Dispatched;
                self.lead_unit = Some(unit.clone());
                self.acknowledge = Some(acknowledge.clone());
            }
            Change::Acknowledged { .. } => {
                self.status = Status::InProgress;
                self.acknowledge = None;
            }
            Change::ReturnedByUnit { .. } => {
                self.status = Status::Returned;
                self.lead_unit = None;
                self.acknowledge = None;
            }
            Change::SuspendedClock { resolve, .. } => {
                self.status = Status::Suspended;
                self.resolve = resolve.clone();
            }
            Change::ResumedClock { resolve, .. } => {
                self.status = Status::InProgress;
                self.resolve = resolve.clone();
            }
            Change::ExtensionRequested { days, reason } => {
                self.pending_extension = Some(PendingExtension {
                    days: *days,
                    reason: reason.clone(),
                    requested_at: event.at,
                });
                self.extension_requested = true;
            }
            Change::ExtensionApproved { resolve, .. } => {
                self.pending_extension = None;
                self.extensions += 1;
                self.resolve = resolve.clone();
            }
            Change::ExtensionRejected { .. } => self.pending_extension = None,
            Change::WhistleBlown { called, .. } => self.co_handlers.extend(called.iter().cloned()),
            Change::ReportedIn { unit } => {
                if let Some(c) = self.co_handlers.iter_mut().find(|c| &c.unit == unit) {
                    c.reported_in_at = Some(event.at);
                }
            }
            Change::Urged { .. } => self.urges += 1,
            Change::Supervised { .. } => self.supervisions += 1,
            Change::Warning { clock, unit, .. } => match clock {
                ClockKind::Resolve => {
                    if let Some(r) = &mut self.resolve {
                        r.warned = true;
                    }
                }
                ClockKind::Acknowledge => {
                    if let Some(a) = &mut self.acknowledge {
                        a.warned = true;
                    }
                }
                ClockKind::ReportIn => {
                    if let Some(c) = self.co_handler_mut(unit.as_ref()) {
                        c.report_in.warned = true;
                    }
                }
                ClockKind::Review | ClockKind::Callback => {}
            },
            Change::Breached { clock, unit, .. } => {
                self.deadline_breached = true;
                match clock {
                    ClockKind::Resolve => {
                        if let Some(r) = &mut self.resolve {
                            r.breached = true;
                        }
                    }
                    ClockKind::Acknowledge => {
                        if let Some(a) = &mut self.acknowledge {
                            a.breached = true;
                        }
                    }
                    ClockKind::ReportIn => {
                        if let Some(c) = self.co_handler_mut(unit.as_ref()) {
                            c.report_in.breached = true;
                        }
                    }
                    ClockKind::Review | ClockKind::Callback => {}
                }
            }
            Change::Escalated {
                to,
                case_owner,
                resolve,
                review,
                dispatch,
                ..
            } => {
                self.escalations += 1;
                self.enter_level(*to, case_owner, resolve, review);
                if let Some(Dispatch { unit, acknowledge }) = dispatch {
                    self.status = Status::Dispatched;
                    self.lead_unit = Some(unit.clone());
                    self.acknowledge = Some(acknowledge.clone());
                }
            }
            Change::Reclassified {
                to,
                case_owner,
                resolve,
                review,
                ..
            } => self.enter_level(*to, case_owner, resolve, review),
            Change::ResolvedByUnit {
                resolution,
                callback_due_at,
            } => {
                self.status = Status::Resolved;
                self.resolved_at = Some(event.at);
                self.resolution = Some(resolution.clone());
                self.callback_due_at = Some(*callback_due_at);
                self.pending_extension = None;
                self.acknowledge = None;
            }
            Change::CallbackRecorded {
                satisfaction,
                matter_solved,
                ..
            } => {
                self.satisfaction = Some(*satisfaction);
                self.matter_solved = Some(*matter_solved);
            }
            Change::Reopened { resolve, review } => {
                self.status = Status::InProgress;
                self.callback_due_at = None;
                self.resolve = resolve.clone();
                self.review = review.clone();
                self.extension_requested = false;
            }
            Change::MergedInto { into, .. } => {
                self.status = Status::Merged;
                self.merged_into = Some(into.clone());
                self.finish();
            }
            Change::CancelledBy { .. } => {
                self.status = Status::Cancelled;
                self.finish();
            }
            Change::ClosedTicket { .. } => {
                self.status = Status::Closed;
                self.finish();
            }
            Change::NoteAdded { review, .. } => {
                if review.is_some() {
                    self.review = review.clone();
                }
            }
            Change::ReviewMissed { next, .. } => {
                self.deadline_breached = true;
                self.review = Some(next.clone());
            }
            Change::Retimed {
                resolve,
                acknowledge,
                report_in,
                policy_version,
                ..
            } => {
                if let Some(v) = policy_version {
                    self.policy_version = *v;
                }
                if let Some(r) = resolve {
                    self.resolve = Some(r.clone());
                }
                if let Some(a) = acknowledge {
                    self.acknowledge = Some(a.clone());
                }
                for moved in report_in {
                    if let Some(c) = self.co_handler_mut(Some(&moved.unit)) {
                        c.report_in = moved.clock.clone();
                    }
                }
            }
        }
    }

    fn co_handler_mut(&mut self, unit: Option<&UnitCode>) -> Option<&mut CoHandler> {
        let unit = unit?;
        self.co_handlers.iter_mut().find(|c| &c.unit == unit)
    }

    fn enter_level(
        &mut self,
        level: Level,
        case_owner: &Option<String>,
        resolve: &Option<ResolveClock>,
        review: &Option<ReviewClock>,
    ) {
        self.level = level;
        self.case_owner = case_owner.clone();
        self.resolve = resolve.clone();
        self.review = review.clone();
        self.pending_extension = None;
        self.extension_requested = false;
    }

    fn finish(&mut self) {
        self.acknowledge = None;
        self.pending_extension = None;
        self.callback_due_at = None;
    }

    /// The resolve deadline as a console shows it: unset while suspended or once resolved.
    pub fn resolve_due_at(&self) -> Option<DateTime<Utc>> {
        match self.status {
            Status::New | Status::Returned | Status::Dispatched | Status::InProgress => {
                self.resolve.as_ref().map(|r| r.due_at)
            }
            _ => None,
        }
    }

    /// Past its resolve deadline at `now` and still being worked on.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.resolve_due_at().is_some_and(|due| due <= now)
    }

    /// Shows a red card (超期): a deadline was breached and the ticket is still being worked on (not
    /// resolved, closed, cancelled or merged). Unlike [`Ticket::is_overdue`] it does not depend on the
    /// running clock: a ticket that breached and escalated keeps it at the next level, and a ticket
    /// reopened after resolution shows its earlier breach again.
    pub fn is_breached(&self) -> bool {
        self.deadline_breached && self.status.is_open()
    }

    /// Every clock threshold still to fire, derived from the state: the store keeps exactly these armed.
    pub fn timers(&self) -> Vec<Timer> {
        let mut timers = Vec::new();
        let mut arm = |clock, unit: Option<&UnitCode>, threshold, due_at| {
            timers.push(Timer {
                clock,
                unit: unit.cloned(),
                threshold,
                due_at,
            })
        };
        let running = matches!(
            self.status,
            Status::New | Status::Returned | Status::Dispatched | Status::InProgress
        );
        if let (true, Some(r)) = (running, &self.resolve) {
            if !r.warned && !r.breached && r.warn_at < r.due_at {
                arm(ClockKind::Resolve, None, Threshold::Warning, r.warn_at);
            }
            if !r.breached {
                arm(ClockKind::Resolve, None, Threshold::Breach, r.due_at);
            }
        }
        if let (Status::Dispatched, Some(a)) = (self.status, &self.acknowledge) {
            if !a.warned && !a.breached && a.warn_at < a.due_at {
                arm(
                    ClockKind::Acknowledge,
                    self.lead_unit.as_ref(),
                    Threshold::Warning,
                    a.warn_at,
                );
            }
            if !a.breached {
                arm(
                    ClockKind::Acknowledge,
                    self.lead_unit.as_ref(),
                    Threshold::Breach,
                    a.due_at,
                );
            }
        }
        if self.status.is_open() {
            for c in &self.co_handlers {
                if c.reported_in_at.is_none() && !c.report_in.breached {
                    arm(
                        ClockKind::ReportIn,
                        Some(&c.unit),
                        Threshold::Breach,
                        c.report_in.due_at,
                    );
                }
            }
            if let (Level::MajorRisk, Some(review)) = (self.level, &self.review) {
                arm(ClockKind::Review, None, Threshold::Breach, review.due_at);
            }
        }
        if let (Status::Resolved, Some(due)) = (self.status, self.callback_due_at) {
            arm(ClockKind::Callback, None, Threshold::Breach, due);
        }
        timers.sort();
        timers
    }

    /// The rules every reachable state obeys; a violation names the rule.
    pub fn check_invariants(&self) -> Result<(), String> {
        let fail = |rule: &str| Err(format!("{} in status {}: {rule}", self.id, self.status));
        match self.status {
            Status::New | Status::Returned if self.lead_unit.is_some() => {
                return fail("no lead unit before dispatch");
            }
            Status::Dispatched if self.lead_unit.is_none() || self.acknowledge.is_none() => {
                return fail("a dispatched ticket has a lead unit and a sign-for clock");
            }
            Status::InProgress | Status::Suspended if self.lead_unit.is_none() => {
                return fail("a ticket in progress has a lead unit");
            }
            _ => {}
        }
        if self.status != Status::Dispatched && self.acknowledge.is_some() {
            return fail("only a dispatched ticket waits for a sign-for");
        }
        let paused = self
            .resolve
            .as_ref()
            .is_some_and(|r| r.paused_since.is_some());
        let running = matches!(
            self.status,
            Status::New | Status::Returned | Status::Dispatched | Status::InProgress
        );
        // A ticket merged or cancelled while suspended keeps its stopped clock, for the record.
        if (running && paused)
            || (self.status == Status::Suspended && self.resolve.is_some() && !paused)
        {
            return fail("the resolve clock stands still exactly while suspended");
        }
        if let Some(r) = &self.resolve {
            if r.level != self.level {
                return fail("the resolve clock belongs to the ticket's level");
            }
            if r.due_at < r.started_at || r.warn_at > r.due_at {
                return fail("start <= warning <= deadline");
            }
        } else if self.level != Level::MajorRisk {
            return fail("every level below MAJOR_RISK has a resolve clock");
        }
        if self.level == Level::MajorRisk && self.case_owner.is_none() {
            return fail("a MAJOR_RISK ticket has a named case owner");
        }
        if (self.status == Status::Merged) != self.merged_into.is_some() {
            return fail("merged exactly when merged into another ticket");
        }
        if self.pending_extension.is_some() && !self.status.is_open() {
            return fail("an extension is pending only on an open ticket");
        }
        if self.status == Status::Resolved
            && (self.resolved_at.is_none() || self.callback_due_at.is_none())
        {
            return fail("a resolved ticket has a resolution time and a callback deadline");
        }
        if self.status.is_terminal() && !self.timers().is_empty() {
            return fail("a finished ticket arms no timers");
        }
        Ok(())
    }
}

/// Folds a whole history into the ticket it describes: `replay(events) == state`, always.
pub fn replay(events: &[Event]) -> Result<Ticket, ReplayError> {
    let (first, rest) = events.split_first().ok_or(ReplayError::Empty)?;
    let mut ticket = Ticket::from_created(first)?;
    for (index, event) in rest.iter().enumerate() {
        if matches!(event.change, Change::Created { .. }) {
            return Err(ReplayError::CreatedTwice { index: index + 1 });
        }
        ticket.apply(event);
    }
    Ok(ticket)
}
