//! The main path of a ticket: dispatched to a lead unit, signed for (or returned), worked with units
//! called in by a whistle, resolved, and closed by the resident's callback or by hand.

use std::collections::BTreeSet;

use super::{ActionError, Decision, MAX_WHISTLE_UNITS, optional_reason, reason};
use crate::event::{Change, CoHandler};
use crate::ids::{InvalidField, MAX_TEXT_CHARS, UnitCode, optional_text, required_text};
use crate::ladder::{Satisfaction, Status};
use crate::ticket::Ticket;

impl Ticket {
    /// 派单: to a unit other than the current lead, with its sign-for clock from now.
    pub(super) fn dispatch(
        &self,
        unit: &UnitCode,
        reason: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if !matches!(
            d.status,
            Status::New | Status::Returned | Status::Dispatched
        ) {
            return Err(d.not_allowed());
        }
        if self.lead_unit.as_ref() == Some(unit) {
            return Err(d.refused(format!("it is already dispatched to {unit}")));
        }
        Ok(vec![Change::DispatchedTo {
            unit: unit.clone(),
            reason: optional_reason(reason)?,
            acknowledge: d.reckoner.start_acknowledge(self.level, d.now),
        }])
    }

    /// 签收, by the lead unit.
    pub(super) fn sign_for(
        &self,
        unit: &UnitCode,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if d.status != Status::Dispatched {
            return Err(d.not_allowed());
        }
        self.require_lead(unit).map_err(|r| d.refused(r))?;
        Ok(vec![Change::Acknowledged { unit: unit.clone() }])
    }

    /// 退单, by the lead unit.
    pub(super) fn return_by_unit(
        &self,
        unit: &UnitCode,
        text: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if !matches!(d.status, Status::Dispatched | Status::InProgress) {
            return Err(d.not_allowed());
        }
        let text = reason(text)?;
        self.require_lead(unit).map_err(|r| d.refused(r))?;
        Ok(vec![Change::ReturnedByUnit {
            unit: unit.clone(),
            reason: text,
        }])
    }

    /// 吹哨: units other than the lead, each not already waiting to report in, with their report-in
    /// clocks from now.
    pub(super) fn whistle(
        &self,
        units: &[UnitCode],
        reason: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if d.status != Status::InProgress {
            return Err(d.not_allowed());
        }
        if units.is_empty() {
            return Err(InvalidField::new("units", "name at least one unit to call in").into());
        }
        if units.len() > MAX_WHISTLE_UNITS {
            return Err(InvalidField::new(
                "units",
                format!("{} units, at most {MAX_WHISTLE_UNITS} at once", units.len()),
            )
            .into());
        }
        let mut seen = BTreeSet::new();
        for unit in units {
            if !seen.insert(unit) {
                return Err(InvalidField::new("units", format!("{unit} is named twice")).into());
            }
            if self.lead_unit.as_ref() == Some(unit) {
                return Err(d.refused(format!("{unit} is the lead unit")));
            }
            if self
                .co_handlers
                .iter()
                .any(|c| &c.unit == unit && c.reported_in_at.is_none())
            {
                return Err(d.refused(format!(
                    "{unit} is already called in and has not reported in"
                )));
            }
        }
        Ok(vec![Change::WhistleBlown {
            reason: optional_reason(reason)?,
            called: units
                .iter()
                .map(|unit| CoHandler {
                    unit: unit.clone(),
                    called_at: d.now,
                    report_in: d.reckoner.start_report_in(d.now),
                    reported_in_at: None,
                })
                .collect(),
        }])
    }

    /// 报到, by a unit called in and not yet reported.
    pub(super) fn report_in(
        &self,
        unit: &UnitCode,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if !d.status.is_open() {
            return Err(d.not_allowed());
        }
        if !self
            .co_handlers
            .iter()
            .any(|c| &c.unit == unit && c.reported_in_at.is_none())
        {
            return Err(d.refused(format!("{unit} is not called in, or already reported in")));
        }
        Ok(vec![Change::ReportedIn { unit: unit.clone() }])
    }

    /// 办结: the reply, and the callback window from now.
    pub(super) fn resolve_by_unit(
        &self,
        resolution: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if d.status != Status::InProgress {
            return Err(d.not_allowed());
        }
        Ok(vec![Change::ResolvedByUnit {
            resolution: required_text("resolution", resolution, MAX_TEXT_CHARS)?,
            callback_due_at: d.reckoner.callback_due(d.now),
        }])
    }

    /// 回访: satisfied closes the ticket, dissatisfied reopens it with a fresh clock, no answer leaves
    /// it to the callback window.
    pub(super) fn record_callback(
        &self,
        satisfaction: Satisfaction,
        matter_solved: bool,
        comment: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if d.status != Status::Resolved {
            return Err(d.not_allowed());
        }
        let mut changes = vec![Change::CallbackRecorded {
            satisfaction,
            matter_solved,
            comment: optional_text("comment", comment, MAX_TEXT_CHARS)?,
        }];
        match satisfaction {
            Satisfaction::Satisfied | Satisfaction::BasicallySatisfied => {
                changes.push(Change::ClosedTicket {
                    reason: format!("callback: {satisfaction}"),
                });
            }
            Satisfaction::Dissatisfied => changes.push(Change::Reopened {
                resolve: d.reckoner.start_resolve(self.level, d.now),
                review: d.reckoner.next_review(self.level, d.now),
            }),
            // The callback window keeps running; the ticket closes when it passes.
            Satisfaction::NoAnswer => {}
        }
        Ok(changes)
    }

    /// Closing a resolved ticket by hand.
    pub(super) fn close(
        &self,
        text: &str,
        d: &Decision<'_, '_>,
    ) -> Result<Vec<Change>, ActionError> {
        if d.status != Status::Resolved {
            return Err(d.not_allowed());
        }
        Ok(vec![Change::ClosedTicket {
            reason: reason(text)?,
        }])
    }

    fn require_lead(&self, unit: &UnitCode) -> Result<(), String> {
        match &self.lead_unit {
            Some(lead) if lead == unit => Ok(()),
            Some(lead) => Err(format!("{unit} is not the lead unit ({lead} is)")),
            None => Err("it has no lead unit".into()),
        }
    }
}
