//! Re-timing running deadlines: after a calendar change, through the timer index (only tickets with a
//! timer due on or after the first day the change touches are read, never every open ticket); and
//! under a newer policy, on purpose, for the open tickets of a subtree.

use chrono::{Duration, NaiveDate, TimeZone};
use doorstep_domain::calendar::Calendar;
use doorstep_domain::{Actor, Context, NodeCode, Policy, Status, TicketId};
use doorstep_store::TicketQuery;

use super::Engine;
use crate::error::Error;

/// What a re-timing did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retimed {
    /// Tickets read: for a calendar change, those with a timer on or after the first changed day; on
    /// purpose, the open tickets of the subtree.
    pub examined: u64,
    /// Tickets whose deadlines moved (one RETIMED event each).
    pub retimed: u64,
}

/// Tickets read per page of the index.
const PAGE: u32 = 500;

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

/// `calendar` with what `before` declares for `year` in place of its own notice for that year.
pub(super) fn with_year_as(
    calendar: &Calendar,
    year: i32,
    before: &Calendar,
) -> Result<Calendar, doorstep_domain::calendar::CalendarError> {
    let mut previous = Calendar::default();
    for notice in calendar.notices().filter(|n| n.year != year) {
        previous.put_notice(notice.clone(), calendar.days_of_notice(notice.year))?;
    }
    if let Some(notice) = before.notice(year) {
        previous.put_notice(notice.clone(), before.days_of_notice(year))?;
    }
    Ok(previous)
}

impl Engine {
    /// Re-times for every calendar change stored but not re-timed to the end: the process stopped in
    /// between (the store records the change and what the year declared before in one transaction),
    /// or [`Engine::open`] seeded a built-in year. Runs when the engine opens, before any timer fires.
    pub(super) async fn finish_pending_retimings(&self) -> Result<(), Error> {
        for (year, before) in self.store.pending_retimings().await? {
            let current = self.calendar();
            let previous = with_year_as(&current, year, &before)
                .map_err(|e| Error::Internal(format!("calendar {year} before its change: {e}")))?;
            let retimed = self.retime(&previous, &current, year).await?;
            self.store.retiming_done(year).await?;
            tracing::info!(
                year,
                examined = retimed.examined,
                retimed = retimed.retimed,
                "open deadlines re-timed for a calendar change left pending"
            );
        }
        Ok(())
    }

    /// Moves the running deadlines that the change from `previous` to `next` (the notice for `year`)
    /// affects. A deadline before the first changed day cannot be affected (the working days counted
    /// to reach it all lie before it), so the timer index on due time finds every candidate.
    pub async fn retime(
        &self,
        previous: &Calendar,
        next: &Calendar,
        year: i32,
    ) -> Result<Retimed, Error> {
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
                if self
                    .retime_one(id, &Retiming::Calendar { previous }, &reason)
                    .await?
                {
                    done.retimed += 1;
                }
            }
        }
        if done.retimed > 0 {
            self.timers_changed.notify_one();
        }
        Ok(done)
    }

    /// Re-times every open ticket in `node`'s subtree (everywhere for `None`) under policy `version`,
    /// on purpose: a policy change otherwise applies to new tickets only. Each ticket keeps its clocks'
    /// starts, suspended time and extensions and takes the new limits (see
    /// [`Ticket::retime_to_policy`](doorstep_domain::Ticket::retime_to_policy)).
    pub async fn retime_to_policy(
        &self,
        version: i64,
        node: Option<&NodeCode>,
    ) -> Result<Retimed, Error> {
        let policy = self.policy(version).await?;
        let version = self.policy_version(version).await?.version;
        let subtree = match node {
            Some(node) => Some(
                self.subtree(&crate::Principal::local(), Some(node))?
                    .ok_or_else(|| {
                        Error::invalid("node", format!("unknown jurisdiction node {node}"))
                    })?,
            ),
            None => None,
        };
        let reason = format!("re-timed on purpose under policy version {version}");
        let how = Retiming::Policy {
            version,
            policy: &policy,
        };
        let mut done = Retimed::default();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_tickets(&TicketQuery {
                    subtree: subtree.clone(),
                    statuses: OPEN.to_vec(),
                    after,
                    limit: PAGE,
                    ..TicketQuery::default()
                })
                .await?;
            for ticket in &page.tickets {
                done.examined += 1;
                if self.retime_one(&ticket.id, &how, &reason).await? {
                    done.retimed += 1;
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        if done.retimed > 0 {
            self.timers_changed.notify_one();
        }
        Ok(done)
    }

    /// Re-times one ticket; `true` when it changed.
    async fn retime_one(
        &self,
        id: &TicketId,
        how: &Retiming<'_>,
        reason: &str,
    ) -> Result<bool, Error> {
        let recorded = self
            .decide_and_commit(id, |ticket, shared, own| {
                let actor = Actor::scheduler();
                let ctx = |policy| Context {
                    now: self.clock.now(),
                    actor: &actor,
                    policy,
                    calendar: &shared.calendar,
                };
                let (next, events) = match how {
                    Retiming::Calendar { previous } => ticket.retime(previous, reason, &ctx(own)),
                    Retiming::Policy { version, policy } => {
                        ticket.retime_to_policy(*version, reason, &ctx(policy))
                    }
                };
                Ok((!events.is_empty()).then_some((next, events)))
            })
            .await?;
        Ok(recorded.is_some())
    }
}

/// What a re-timing follows.
enum Retiming<'a> {
    /// A calendar change from `previous` to the engine's calendar.
    Calendar { previous: &'a Calendar },
    /// Another policy version, on purpose.
    Policy { version: i64, policy: &'a Policy },
}

/// The statuses whose clocks can run.
const OPEN: [Status; 5] = [
    Status::New,
    Status::Returned,
    Status::Dispatched,
    Status::InProgress,
    Status::Suspended,
];
