//! The append-only history: every change to a ticket is one event, carrying every figure a later fold
//! needs (a dispatch with its sign-for clock, the units a whistle called in, re-timed clocks).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::deadline::{AcknowledgeClock, ResolveClock, ReviewClock};
use crate::ids::{Actor, TicketId, UnitCode};
use crate::intake::Intake;
use crate::ladder::{ClockKind, Level, Satisfaction, Status};

/// One recorded change: when, by whom, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub change: Change,
    /// The ticket's status once this event applied (recorded for consoles and streams; the fold does
    /// not need it).
    pub status_after: Status,
}

/// What happened. Every figure a later fold needs (deadlines above all) is carried here, so replay
/// never recomputes anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Change {
    Created {
        id: TicketId,
        intake: Box<Intake>,
        level: Level,
        policy_version: i64,
        resolve: Option<ResolveClock>,
        review: Option<ReviewClock>,
        case_owner: Option<String>,
    },
    DispatchedTo {
        unit: UnitCode,
        reason: String,
        acknowledge: AcknowledgeClock,
    },
    Acknowledged {
        unit: UnitCode,
    },
    ReturnedByUnit {
        unit: UnitCode,
        reason: String,
    },
    SuspendedClock {
        reason: String,
        resolve: Option<ResolveClock>,
    },
    ResumedClock {
        reason: String,
        resolve: Option<ResolveClock>,
    },
    ExtensionRequested {
        days: u32,
        reason: String,
    },
    ExtensionApproved {
        days: u32,
        reason: String,
        resolve: Option<ResolveClock>,
    },
    ExtensionRejected {
        days: u32,
        reason: String,
    },
    WhistleBlown {
        reason: String,
        called: Vec<CoHandler>,
    },
    ReportedIn {
        unit: UnitCode,
    },
    Urged {
        reason: String,
    },
    Supervised {
        reason: String,
    },
    /// Yellow card: the warning share of a clock's time has passed.
    Warning {
        clock: ClockKind,
        unit: Option<UnitCode>,
        due_at: DateTime<Utc>,
    },
    /// Red card: a deadline passed. `due_at` is the instant it was due; the event's `at` when it fired.
    Breached {
        clock: ClockKind,
        unit: Option<UnitCode>,
        due_at: DateTime<Utc>,
    },
    /// Climbed the ladder, by the scheduler (from the breach instant) or by hand (from now).
    Escalated {
        from: Level,
        to: Level,
        reason: String,
        case_owner: Option<String>,
        resolve: Option<ResolveClock>,
        review: Option<ReviewClock>,
        /// The owner unit of the new tier, when it takes over the lead.
        dispatch: Option<Dispatch>,
    },
    Reclassified {
        from: Level,
        to: Level,
        reason: String,
        case_owner: Option<String>,
        resolve: Option<ResolveClock>,
        review: Option<ReviewClock>,
    },
    ResolvedByUnit {
        resolution: String,
        callback_due_at: DateTime<Utc>,
    },
    CallbackRecorded {
        satisfaction: Satisfaction,
        matter_solved: bool,
        comment: String,
    },
    Reopened {
        resolve: Option<ResolveClock>,
        review: Option<ReviewClock>,
    },
    MergedInto {
        into: TicketId,
        reason: String,
    },
    CancelledBy {
        reason: String,
    },
    ClosedTicket {
        reason: String,
    },
    NoteAdded {
        text: String,
        /// At MAJOR_RISK a progress note is the case owner's review; the next one falls due then.
        review: Option<ReviewClock>,
    },
    /// A MAJOR_RISK review was missed: a supervision alert to the district.
    ReviewMissed {
        due_at: DateTime<Utc>,
        next: ReviewClock,
    },
    /// A calendar change, or a re-timing under a newer policy on purpose, moved running deadlines: each
    /// clock given is the clock from now on (`None`: unchanged). `reason` names the change.
    Retimed {
        reason: String,
        resolve: Option<ResolveClock>,
        acknowledge: Option<AcknowledgeClock>,
        report_in: Vec<ReportInClock>,
        /// Set when the ticket is from now on judged under this policy version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy_version: Option<i64>,
    },
}

/// A called unit's report-in clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportInClock {
    pub unit: UnitCode,
    pub clock: AcknowledgeClock,
}

/// A unit called in by a whistle (吹哨), and whether it has reported in (报到).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoHandler {
    pub unit: UnitCode,
    pub called_at: DateTime<Utc>,
    pub report_in: AcknowledgeClock,
    pub reported_in_at: Option<DateTime<Utc>>,
}

/// A unit taking the lead, with its sign-for clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatch {
    pub unit: UnitCode,
    pub acknowledge: AcknowledgeClock,
}

impl Change {
    /// The event's kind as the API names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Created { .. } => "CREATED",
            Change::DispatchedTo { .. } => "DISPATCHED_TO",
            Change::Acknowledged { .. } => "ACKNOWLEDGED",
            Change::ReturnedByUnit { .. } => "RETURNED_BY_UNIT",
            Change::SuspendedClock { .. } => "SUSPENDED_CLOCK",
            Change::ResumedClock { .. } => "RESUMED_CLOCK",
            Change::ExtensionRequested { .. } => "EXTENSION_REQUESTED",
            Change::ExtensionApproved { .. } => "EXTENSION_APPROVED",
            Change::ExtensionRejected { .. } => "EXTENSION_REJECTED",
            Change::WhistleBlown { .. } => "WHISTLE_BLOWN",
            Change::ReportedIn { .. } => "REPORTED_IN",
            Change::Urged { .. } => "URGED",
            Change::Supervised { .. } => "SUPERVISED",
            Change::Warning { .. } => "WARNING",
            Change::Breached { .. } => "BREACHED",
            Change::Escalated { .. } => "ESCALATED",
            Change::Reclassified { .. } => "RECLASSIFIED",
            Change::ResolvedByUnit { .. } => "RESOLVED_BY_UNIT",
            Change::CallbackRecorded { .. } => "CALLBACK_RECORDED",
            Change::Reopened { .. } => "REOPENED",
            Change::MergedInto { .. } => "MERGED_INTO",
            Change::CancelledBy { .. } => "CANCELLED_BY",
            Change::ClosedTicket { .. } => "CLOSED_TICKET",
            Change::NoteAdded { .. } => "NOTE_ADDED",
            Change::ReviewMissed { .. } => "REVIEW_MISSED",
            Change::Retimed { .. } => "RETIMED",
        }
    }
}
