//! The side paths off the main one: the resolve clock stopped and extended, the ladder climbed or the
//! level changed by hand, urging and supervision, notes, and the ways a ticket ends unresolved (merged
//! into another, cancelled).

use chrono::{DateTime, Utc};

use super::{ActionError, Context, Decision, case_owner_for, optional_reason, reason};
use crate::event::{Change, Dispatch};
use crate::ids::{InvalidField, MAX_TEXT_CHARS, TicketId, UnitCode, required_text};
use crate::ladder::{Level, Status};
use crate::ticket::Ticket;

impl Ticket {
    /// 挂起: the resolve clock stops.
    pub(super) fn suspend(
        &self,
        text: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if d.status != Status::InProgress {
            return Err(d.not_allowed());
        }
        Ok(vec![Change::SuspendedClock {
            reason: reason(text)?,
            resolve: self.resolve.as_ref().map(|r| d.reckoner.pause(r, d.now)),
        }])
    }

    pub(super) fn resume(
        &self,
        reason: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if d.status != Status::Suspended {
            return Err(d.not_allowed());
        }
        Ok(vec![Change::ResumedClock {
            reason: optional_reason(reason)?,
            resolve: self.resolve.as_ref().map(|r| d.reckoner.resume(r, d.now)),
        }])
    }

    /// 延期申请: once per resolve clock, before its deadline passes.
    pub(super) fn request_extension(
        &self,
        days: u32,
        text: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if !matches!(d.status, Status::InProgress | Status::Suspended) {
            return Err(d.not_allowed());
        }
        let text = reason(text)?;
        let max = d.ctx.policy.max_extension_days;
        if days == 0 || days > max {
            return Err(InvalidField::new(
                "extra_working_days",
                format!("{days} must be between 1 and {max}"),
            )
            .into());
        }
        let Some(resolve) = &self.resolve else {
            return Err(d.refused(format!("{} has no resolve deadline to extend", self.level)));
        };
        if self.extension_requested {
            return Err(d.refused("an extension was already requested at this level".into()));
        }
        if resolve.paused_since.is_none() && d.now >= resolve.due_at {
            return Err(d.refused(format!(
                "the deadline {} has passed; an extension must be asked for before it",
                resolve.due_at.to_rfc3339()
            )));
        }
        Ok(vec![Change::ExtensionRequested { days, reason: text }])
    }

    /// A supervisor's decision on the pending extension.
    pub(super) fn decide_extension(
        &self,
        approve: bool,
        text: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        let Some(pending) = &self.pending_extension else {
            return Err(d.refused("no extension request is pending".into()));
        };
        let days = pending.days;
        match (approve, &self.resolve) {
            (true, Some(resolve)) => Ok(vec![Change::ExtensionApproved {
                days,
                reason: optional_reason(text)?,
                resolve: Some(d.reckoner.extend(resolve, days)),
            }]),
            (true, None) => Err(d.refused("there is no resolve deadline to extend".into())),
            (false, _) => Ok(vec![Change::ExtensionRejected {
                days,
                reason: reason(text)?,
            }]),
        }
    }

    /// By hand: one rung up, the new level's clock from now.
    pub(super) fn escalate(
        &self,
        text: &str,
        owner_unit: &Option<UnitCode>,
        case_owner: Option<&str>,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if !matches!(
            d.status,
            Status::New | Status::Returned | Status::Dispatched | Status::InProgress
        ) {
            return Err(d.not_allowed());
        }
        let text = reason(text)?;
        Ok(vec![
            self.escalation(text, d.now, d.now, owner_unit, case_owner, d.ctx)
                .map_err(|r| d.refused(r))?,
        ])
    }

    /// To another level, its clock from now.
    pub(super) fn reclassify(
        &self,
        level: Level,
        text: &str,
        case_owner: Option<&str>,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if !matches!(
            d.status,
            Status::New | Status::Returned | Status::Dispatched | Status::InProgress
        ) {
            return Err(d.not_allowed());
        }
        let text = reason(text)?;
        if level == self.level {
            return Err(d.refused(format!("it is already {level}")));
        }
        Ok(vec![Change::Reclassified {
            from: self.level,
            to: level,
            reason: text,
            case_owner: case_owner_for(level, case_owner).map_err(|r| d.refused(r))?,
            resolve: d.reckoner.start_resolve(level, d.now),
            review: d.reckoner.next_review(level, d.now),
        }])
    }

    /// 催办.
    pub(super) fn urge(
        &self,
        text: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if !d.status.is_open() {
            return Err(d.not_allowed());
        }
        Ok(vec![Change::Urged {
            reason: reason(text)?,
        }])
    }

    /// 督办.
    pub(super) fn supervise(
        &self,
        text: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if !d.status.is_open() {
            return Err(d.not_allowed());
        }
        Ok(vec![Change::Supervised {
            reason: reason(text)?,
        }])
    }

    /// A note, in any status. On an open MAJOR_RISK ticket it is the case owner's review, so the next
    /// review falls due from now.
    pub(super) fn add_note(
        &self,
        text: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        let text = required_text("text", text, MAX_TEXT_CHARS)?;
        let review = match (self.level, d.status.is_open()) {
            (Level::MajorRisk, true) => d.reckoner.next_review(self.level, d.now),
            _ => None,
        };
        Ok(vec![Change::NoteAdded { text, review }])
    }

    /// 并单: a duplicate of another ticket.
    pub(super) fn merge(
        &self,
        into: &TicketId,
        reason: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if !d.status.is_open() {
            return Err(d.not_allowed());
        }
        if into == &self.id {
            return Err(
                InvalidField::new("into_id", "a ticket cannot be merged into itself").into(),
            );
        }
        Ok(vec![Change::MergedInto {
            into: into.clone(),
            reason: optional_reason(reason)?,
        }])
    }

    pub(super) fn cancel(
        &self,
        text: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if !d.status.is_open() {
            return Err(d.not_allowed());
        }
        Ok(vec![Change::CancelledBy {
            reason: reason(text)?,
        }])
    }

    /// One rung up. The new level's clock starts at `start` (the breach instant for the scheduler, now
    /// by hand: a late scheduler gives no extra time).
    pub(super) fn escalation(
        &self,
        reason: String,
        start: DateTime<Utc>,
        now: DateTime<Utc>,
        owner_unit: &Option<UnitCode>,
        case_owner: Option<&str>,
        ctx: &Context<'_>,
    ) -> Result<Change, String> {
        let Some(to) = self.level.next() else {
            return Err(format!("{} is the top of the ladder", self.level));
        };
        let case_owner = case_owner_for(to, case_owner)?;
        let reckoner = ctx.reckoner();
        let dispatch = match (owner_unit, &self.lead_unit) {
            (Some(owner), Some(lead)) if owner != lead => Some(Dispatch {
                unit: owner.clone(),
                acknowledge: reckoner.start_acknowledge(to, start.min(now)),
            }),
            _ => None,
        };
        Ok(Change::Escalated {
            from: self.level,
            to,
            reason,
            case_owner,
            resolve: reckoner.start_resolve(to, start),
            review: reckoner.next_review(to, start),
            dispatch,
        })
    }
}
