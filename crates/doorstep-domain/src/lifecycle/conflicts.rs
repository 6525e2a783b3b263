//! Which events recorded after the version a caller read conflict with the action it sends. The
//! scheduler's yellow cards and review alerts, and a re-timing of clocks the action does not answer
//! to, change nothing the action depends on: it may go ahead on the ticket as it is now. Anything
//! else (a person's action, a breach, an escalation, a re-dispatch, a close) may change the answer,
//! so the caller must read the ticket again.

use super::Command;
use crate::event::{Change, Event};
use crate::ids::{Actor, UnitCode};
use crate::ladder::ClockKind;

impl Command {
    /// Whether `event`, recorded after the version the caller read, conflicts with this action: it
    /// does unless the scheduler recorded it and the action does not depend on what it changed.
    pub fn conflicts_with(&self, event: &Event) -> bool {
        event.actor.as_str() != Actor::SCHEDULER || self.depends_on(&event.change)
    }

    /// Whether the action depends on what `change` changed. A warning or a missed review only
    /// records an alert; a calendar re-timing moves the clocks it names, which matter only to an
    /// action that answers to one of them. A re-timing under another policy changes the rules
    /// every action is judged under, and every other change may change the ticket's state.
    pub fn depends_on(&self, change: &Change) -> bool {
        match change {
            Change::Warning { .. } | Change::ReviewMissed { .. } => false,
            Change::Retimed {
                resolve,
                acknowledge,
                report_in,
                policy_version,
                ..
            } => {
                policy_version.is_some()
                    || (resolve.is_some() && self.answers_to(ClockKind::Resolve, None))
                    || (acknowledge.is_some() && self.answers_to(ClockKind::Acknowledge, None))
                    || report_in
                        .iter()
                        .any(|c| self.answers_to(ClockKind::ReportIn, Some(&c.unit)))
            }
            _ => true,
        }
    }

    /// Whether the action answers to a clock (for a report-in clock, `unit`'s): it reads the
    /// deadline, pauses, resumes or extends the clock, or meets the deadline and is judged on time
    /// against it. Actions that start a fresh clock from now (dispatch, escalate, reclassify, a
    /// dissatisfied callback) or end the ticket do not answer to the clock they replace.
    pub fn answers_to(&self, clock: ClockKind, unit: Option<&UnitCode>) -> bool {
        match self {
            Command::Suspend { .. }
            | Command::Resume { .. }
            | Command::RequestExtension { .. }
            | Command::DecideExtension { .. }
            | Command::Resolve { .. } => clock == ClockKind::Resolve,
            Command::Acknowledge { .. } | Command::Return { .. } => clock == ClockKind::Acknowledge,
            Command::ReportIn { unit: own } => clock == ClockKind::ReportIn && unit == Some(own),
            // The scheduler's own commands fire a clock; they never act on a stale version.
            Command::FireWarning { .. } | Command::FireBreach { .. } => true,
            Command::Dispatch { .. }
            | Command::Whistle { .. }
            | Command::Urge { .. }
            | Command::Supervise { .. }
            | Command::Escalate { .. }
            | Command::Reclassify { .. }
            | Command::RecordCallback { .. }
            | Command::Merge { .. }
            | Command::Cancel { .. }
            | Command::Close { .. }
            | Command::AddNote { .. } => false,
        }
    }
}
