//! Re-timing running deadlines after a calendar change, through the timer index: only tickets with a
//! timer due on or after the first day the change touches are read, never every open ticket.

use chrono::{Duration, NaiveDate, TimeZone};
use doorstep_domain::calendar::Calendar;
use doorstep_domain::{Actor, Context, TicketId};
use doorstep_store::{Commit, StoreError};

use super::Engine;
use crate::error::ApiError;

/// What a re-timing did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retimed {
    /// Tickets read because a timer of theirs falls on or after the first changed day.
    pub examined: u64,
    /// Tickets whose deadlines moved (one RETIMED event each).
    pub retimed: u64,
}

/// Tickets read per page of the index.
const PAGE: u32 = 500;
/// How often a ticket that a concurrent command changed is re-read.
const ATTEMPTS: usize = 5;

/// The first date whose reckoning differs between the two calendars in what the notice for `year`
/// declares: a date it declares differently, or the year's first day when the year gained (or lost)
/// its notice, since the Monday–Friday fallback is recorded in every clock that relied on it.
fn first_changed_day(previous: &Calendar, next: &Calendar, year: i32) -> Option<NaiveDate> {
    let start_of_year = NaiveDate::from_ymd_opt(year, 1, 1)?;
    if previous.covers(year) != next.covers(year) {
        let earliest_declared = next
            .days_of_notice(year)
            .iter()
            .chain(previous.days_of_notice(year).iter())
            .map(|d| d.date)
            .min();
        return Some(earliest_declared.map_or(start_of_year, |d| d.min(start_of_year)));
    }
    let mut dates: Vec<NaiveDate> = previous
        .days_of_notice(year)
        .iter()
        .chain(next.days_of_notice(year).iter())
        .map(|d| d.date)
        .collect();
    dates.sort();
    dates.into_iter().find(|d| previous.day(*d) != next.day(*d))
}

impl Engine {
    /// Moves the running deadlines that the change from `previous` to `next` (the notice for `year`)
    /// affects. A deadline before the first changed day cannot be affected (the working days counted
    /// to reach it all lie before it), so the timer index on due time finds every candidate.
    pub async fn retime(
        &self,
        previous: &Calendar,
        next: &Calendar,
        year: i32,
    ) -> Result<Retimed, ApiError> {
        let mut done = Retimed::default();
        let Some(first) = first_changed_day(previous, next, year) else {
            return Ok(done);
        };
        let zone = self.policy(0).await?.time_zone;
        // Local midnight of the first changed day, less a day for policy versions in another zone.
        let from = zone
            .from_local_datetime(&first.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|| first.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
            - Duration::days(1);
        let reason = match next.notice(year) {
            Some(notice) => format!("calendar {year}: {}", notice.source),
            None => format!("calendar {year} withdrawn: Monday to Friday assumed"),
        };
        let mut after: Option<TicketId> = None;
        loop {
            let page = self
                .store
                .tickets_with_timers_from(from, after.as_ref(), PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.clone());
            for id in &page {
                done.examined += 1;
                if self.retime_one(id, previous, &reason).await? {
                    done.retimed += 1;
                }
            }
        }
        if done.retimed > 0 {
            self.timers_changed.notify_one();
        }
        Ok(done)
    }

    /// Re-times one ticket; `true` when its deadlines moved.
    async fn retime_one(
        &self,
        id: &TicketId,
        previous: &Calendar,
        reason: &str,
    ) -> Result<bool, ApiError> {
        for _ in 0..ATTEMPTS {
            let Some(ticket) = self.store.get_ticket(id).await? else {
                return Ok(false);
            };
            let shared = self.shared();
            let policy = self.policy(ticket.policy_version).await?;
            let actor = Actor::scheduler();
            let ctx = Context {
                now: self.clock.now(),
                actor: &actor,
                policy: &policy,
                calendar: &shared.calendar,
            };
            let (next, events) = ticket.retime(previous, reason, &ctx);
            if events.is_empty() {
                return Ok(false);
            }
            match self
                .store
                .commit(Commit {
                    ticket: &next,
                    expected_version: ticket.version,
                    events: &events,
                })
                .await
            {
                Ok(stored) => {
                    self.published(&stored);
                    return Ok(true);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Aborted(format!(
            "ticket {id} kept changing while its deadlines were re-timed"
        )))
    }
}
