//! What an SLA report counts about one ticket, as a fold of its events: the reporting definitions.
//!
//! - **Acknowledged on time**: the lead unit signed for the ticket's *first* dispatch before that
//!   dispatch's sign-for deadline. A second dispatch before the sign-for, or a return, means the first
//!   dispatch was not signed for: not on time.
//! - **Resolved on time**: the *first* resolution came before any breach of the resolve deadline.
//!   A breach after the first resolution (the ticket reopened) does not change it.
//! - **Resolve time**: created → first resolution.
//! - **Counted events** ([`Mark`]): every escalation, and every callback the resident answered (not
//!   [`Satisfaction::NoAnswer`]).
//! - **Overdue**: the intervals during which the ticket's running resolve deadline had passed, as
//!   operations on those intervals ([`OverdueOp`]), so that "overdue at T" holds for any past T.
//! - **Breached** (red card, 超期): the intervals during which the ticket showed a red card
//!   ([`Ticket::is_breached`]: a deadline was breached, and the ticket was not resolved, closed,
//!   cancelled or merged), as the same operations, so that "breached at T" holds for any past T.
//!
//! Instants are compared at millisecond precision, as a store keeps them: every instant taken in is
//! truncated to the millisecond first.

use chrono::{DateTime, Utc};

use crate::event::{Change, Event};
use crate::ladder::{ClockKind, Satisfaction};
use crate::ticket::Ticket;

/// One ticket's reporting facts, as folded so far. Instants in here are whole milliseconds: every
/// instant taken in is truncated to the millisecond (as the store did with epoch millis), so
/// comparisons happen at millisecond precision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaFacts {
    pub created_at: DateTime<Utc>,
    pub first_dispatch_at: Option<DateTime<Utc>>,
    pub ack_on_time: bool,
    /// The first dispatch's sign-for deadline, while that dispatch waits to be signed for.
    pub ack_pending_due: Option<DateTime<Utc>>,
    pub first_resolved_at: Option<DateTime<Utc>>,
    pub resolved_on_time: bool,
    /// created -> first resolution, in milliseconds
    pub resolve_ms: Option<i64>,
    /// The resolve deadline was breached before the first resolution.
    pub resolve_breached: bool,
    pub merged_at: Option<DateTime<Utc>>,
    /// the running resolve deadline as last folded
    pub due_now: Option<DateTime<Utc>>,
    /// start of the open overdue interval
    pub open_since: Option<DateTime<Utc>>,
    /// A deadline was breached (BREACHED or REVIEW_MISSED), at any time.
    pub breached: bool,
    /// start of the open red-card interval
    pub red_since: Option<DateTime<Utc>>,
}

/// What a counted event counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    Escalation,
    /// A callback the resident answered.
    Callback,
}

/// An event counted in the window it falls in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The event's place in the log.
    pub seq: i64,
    pub kind: MarkKind,
    pub at: DateTime<Utc>,
    /// For a callback: the resident was satisfied or basically satisfied.
    pub satisfied: bool,
    /// For a callback: the resident says the matter is solved.
    pub solved: bool,
}

/// A change to a ticket's overdue intervals (at most one open at a time: the one of the running resolve
/// deadline), or to its red-card intervals (at most one open: the one since the breach, or the
/// reopening).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverdueOp {
    /// The open interval ends here (it was overdue for a while).
    Close { ends: DateTime<Utc> },
    /// The open interval never became overdue: delete it.
    Drop,
    /// A new running deadline: overdue from `since` on.
    Open { since: DateTime<Utc> },
}

/// Truncates an instant to the whole millisecond.
pub fn to_millisecond(t: DateTime<Utc>) -> DateTime<Utc> {
    // Rounds down, as `timestamp_millis` does, so the truncated instant has the same epoch millis.
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

impl SlaFacts {
    /// The facts right after a CREATED event; None for any other event.
    pub fn created(event: &Event) -> Option<SlaFacts> {
        let Change::Created { .. } = &event.change else {
            return None;
        };
        Some(SlaFacts {
            created_at: to_millisecond(event.at),
            first_dispatch_at: None,
            ack_on_time: false,
            ack_pending_due: None,
            first_resolved_at: None,
            resolved_on_time: false,
            resolve_ms: None,
            resolve_breached: false,
            merged_at: None,
            due_now: None,
            open_since: None,
            breached: false,
            red_since: None,
        })
    }

    /// A unit took the lead at `at`, to sign for by `due`.
    fn dispatched(&mut self, at: DateTime<Utc>, due: DateTime<Utc>) {
        if self.first_dispatch_at.is_none() {
            self.first_dispatch_at = Some(at);
            self.ack_pending_due = Some(to_millisecond(due));
        } else {
            // Another dispatch before the first was signed for: the first one was not.
            self.ack_pending_due = None;
        }
    }

    /// Folds one event (seq = its place in the log); counted events are pushed to `marks`.
    pub fn apply(&mut self, seq: i64, event: &Event, marks: &mut Vec<Mark>) {
        let at = to_millisecond(event.at);
        match &event.change {
            Change::DispatchedTo { acknowledge, .. } => self.dispatched(at, acknowledge.due_at),
            Change::Escalated { dispatch, .. } => {
                if let Some(d) = dispatch {
                    self.dispatched(at, d.acknowledge.due_at);
                }
                marks.push(Mark {
                    seq,
                    kind: MarkKind::Escalation,
                    at,
                    satisfied: false,
                    solved: false,
                });
            }
            Change::Acknowledged { .. } => {
                if let Some(due) = self.ack_pending_due.take() {
                    self.ack_on_time = at < due;
                }
            }
            Change::ReturnedByUnit { .. } => self.ack_pending_due = None,
            Change::Breached {
                clock: ClockKind::Resolve,
                ..
            } if self.first_resolved_at.is_none() => self.resolve_breached = true,
            Change::ResolvedByUnit { .. } if self.first_resolved_at.is_none() => {
                self.first_resolved_at = Some(at);
                self.resolved_on_time = !self.resolve_breached;
                self.resolve_ms = Some((at - self.created_at).num_milliseconds());
            }
            Change::CallbackRecorded {
                satisfaction,
                matter_solved,
                ..
            } if *satisfaction != Satisfaction::NoAnswer => marks.push(Mark {
                seq,
                kind: MarkKind::Callback,
                at,
                satisfied: satisfaction.is_satisfied(),
                solved: *matter_solved,
            }),
            Change::MergedInto { .. } if self.merged_at.is_none() => self.merged_at = Some(at),
            _ => {}
        }
    }

    /// The ticket's running resolve deadline is `due` from instant `at` on.
    pub fn deadline(
        &mut self,
        at: DateTime<Utc>,
        due: Option<DateTime<Utc>>,
        ops: &mut Vec<OverdueOp>,
    ) {
        let at = to_millisecond(at);
        let due = due.map(to_millisecond);
        if self.due_now == due {
            return;
        }
        if let Some(since) = self.open_since.take() {
            ops.push(if since < at {
                OverdueOp::Close { ends: at }
            } else {
                OverdueOp::Drop
            });
        }
        if let Some(due) = due {
            let since = due.max(at);
            self.open_since = Some(since);
            ops.push(OverdueOp::Open { since });
        }
        self.due_now = due;
    }
}

impl SlaFacts {
    /// Folds one event into the red-card interval: one opens when a breach is recorded on an open
    /// ticket, or when a ticket that breached before is reopened; it ends when the ticket is resolved,
    /// closed, cancelled or merged. Follows [`Ticket::is_breached`] (the event's `status_after` is the
    /// ticket's status after it).
    pub fn red_card(&mut self, event: &Event, ops: &mut Vec<OverdueOp>) {
        let at = to_millisecond(event.at);
        if matches!(
            event.change,
            Change::Breached { .. } | Change::ReviewMissed { .. }
        ) {
            self.breached = true;
        }
        let shows = self.breached && event.status_after.is_open();
        match (self.red_since, shows) {
            (None, true) => {
                self.red_since = Some(at);
                ops.push(OverdueOp::Open { since: at });
            }
            (Some(since), false) => {
                self.red_since = None;
                ops.push(if since < at {
                    OverdueOp::Close { ends: at }
                } else {
                    OverdueOp::Drop
                });
            }
            _ => {}
        }
    }
}

/// Every fact of one ticket from its whole history ((seq, event) in order); None if it does not start
/// with CREATED.
pub fn fold(events: &[(i64, Event)]) -> Option<(SlaFacts, Vec<Mark>, Vec<OverdueOp>)> {
    fold_with_red_cards(events).map(|(facts, marks, ops, _)| (facts, marks, ops))
}

/// [`fold`], with the operations on the ticket's red-card intervals as well.
#[allow(clippy::type_complexity)]
pub fn fold_with_red_cards(
    events: &[(i64, Event)],
) -> Option<(SlaFacts, Vec<Mark>, Vec<OverdueOp>, Vec<OverdueOp>)> {
    let ((_, first), _) = events.split_first()?;
    let mut facts = SlaFacts::created(first)?;
    let mut ticket = Ticket::from_created(first).ok()?;
    let mut marks = Vec::new();
    let mut ops = Vec::new();
    let mut red = Vec::new();
    for (i, (seq, event)) in events.iter().enumerate() {
        if i > 0 {
            ticket.apply(event);
        }
        facts.apply(*seq, event, &mut marks);
        facts.deadline(event.at, ticket.resolve_due_at(), &mut ops);
        facts.red_card(event, &mut red);
    }
    Some((facts, marks, ops, red))
}
