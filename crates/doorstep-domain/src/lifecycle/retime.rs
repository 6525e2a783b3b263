//! Re-timing: the running clocks of an open ticket moved by a calendar change, or by judging the
//! ticket under a newer policy on purpose.

use doorstep_calendar::Calendar;

use super::Context;
use crate::deadline::{AcknowledgeClock, Reckoner, ResolveClock};
use crate::event::{Change, Event, ReportInClock};
use crate::ladder::Status;
use crate::ticket::Ticket;

/// Which sign-for clock re-timing is looking at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignFor {
    /// The lead unit's acknowledge clock.
    Lead,
    /// A called unit's report-in clock.
    ReportIn,
}

/// Whether a calendar change moves a clock: the two reckonings differ, and the clock is not already
/// where the new one puts it (a re-timing that ran before, in this process or another, moved it), so
/// re-timing the same change again records nothing.
fn moved<K: PartialEq>(new: K, old: K, stored: K) -> bool {
    new != old && new != stored
}

impl Ticket {
    /// What a calendar change means for this ticket: each running clock with a deadline still ahead of
    /// it (resolve, sign-for, report-in) is reckoned afresh from its start under `ctx`'s calendar and
    /// under `previous`; where the two differ (in deadline, warning or the years Monday to Friday was
    /// assumed for) and the clock is not already at the new reckoning, it moves there. Comparing two
    /// reckonings, rather than the new one with the stored deadline, means a change never moves a
    /// clock it does not touch (clock-hour limits, deadlines before the changed days). A clock already
    /// breached is history and stays. No events when nothing moves. The policy in `ctx` must be the
    /// ticket's own version.
    pub fn retime(
        &self,
        previous: &Calendar,
        reason: &str,
        ctx: &Context<'_>,
    ) -> (Ticket, Vec<Event>) {
        if !self.status.is_open() {
            return (self.clone(), Vec::new());
        }
        let before = Reckoner::new(ctx.policy, previous);
        let after = ctx.reckoner();
        // Each clock reckoned under both calendars: `Some(new)` where the two differ.
        let (resolve, acknowledge, report_in) = self.running_clocks(
            |r| {
                let (new, old) = (after.recompute_resolve(r), before.recompute_resolve(r));
                let key = |c: &ResolveClock| (c.due_at, c.warn_at, c.fallback_years.clone());
                moved(key(&new), key(&old), key(r)).then_some(new)
            },
            |a, _| {
                let (new, old) = (
                    after.recompute_acknowledge(a),
                    before.recompute_acknowledge(a),
                );
                let key = |c: &AcknowledgeClock| (c.due_at, c.warn_at, c.fallback_years.clone());
                moved(key(&new), key(&old), key(a)).then_some(new)
            },
        );
        if resolve.is_none() && acknowledge.is_none() && report_in.is_empty() {
            return (self.clone(), Vec::new());
        }
        self.record(
            vec![Change::Retimed {
                reason: reason.to_owned(),
                resolve,
                acknowledge,
                report_in,
                policy_version: None,
            }],
            ctx,
        )
    }

    /// Re-times an open ticket under another policy, on purpose (a ticket otherwise keeps the policy
    /// version it was registered under): each running clock keeps its start, suspended time and
    /// extensions and takes the new policy's limit for it; the ticket is judged under `policy_version`
    /// (`ctx.policy`) from now on. A breached clock is history and stays; a level the new policy gives
    /// no resolve limit keeps its clock. No events for a closed ticket or one already under it.
    pub fn retime_to_policy(
        &self,
        policy_version: i64,
        reason: &str,
        ctx: &Context<'_>,
    ) -> (Ticket, Vec<Event>) {
        if !self.status.is_open() || self.policy_version == policy_version {
            return (self.clone(), Vec::new());
        }
        let reckoner = ctx.reckoner();
        let policy = ctx.policy;
        // Each clock with the new policy's limit for it: `Some(new)` where its deadline moves.
        let (resolve, acknowledge, report_in) = self.running_clocks(
            |r| {
                let limit = policy.level(r.level).resolve_within?;
                let next = reckoner.recompute_resolve(&ResolveClock { limit, ..r.clone() });
                ((r.due_at, r.warn_at) != (next.due_at, next.warn_at)).then_some(next)
            },
            |a, clock| {
                let limit = match clock {
                    SignFor::Lead => policy.acknowledge_limit(self.level),
                    SignFor::ReportIn => policy.acknowledge_within,
                };
                let next = reckoner.recompute_acknowledge(&AcknowledgeClock { limit, ..a.clone() });
                ((a.due_at, a.warn_at) != (next.due_at, next.warn_at)).then_some(next)
            },
        );
        self.record(
            vec![Change::Retimed {
                reason: reason.to_owned(),
                resolve,
                acknowledge,
                report_in,
                policy_version: Some(policy_version),
            }],
            ctx,
        )
    }

    /// The clocks still running (not breached) that re-timing may move: the resolve clock, the lead's
    /// sign-for clock while dispatched, and each called unit's report-in clock until it reports in.
    /// Each goes through `resolve` or `acknowledge`, which return the clock moved, or `None` where it
    /// stays.
    fn running_clocks(
        &self,
        resolve: impl Fn(&ResolveClock) -> Option<ResolveClock>,
        acknowledge: impl Fn(&AcknowledgeClock, SignFor) -> Option<AcknowledgeClock>,
    ) -> (
        Option<ResolveClock>,
        Option<AcknowledgeClock>,
        Vec<ReportInClock>,
    ) {
        let moved_resolve = self
            .resolve
            .as_ref()
            .filter(|r| !r.breached)
            .and_then(&resolve);
        let moved_acknowledge = self
            .acknowledge
            .as_ref()
            .filter(|a| self.status == Status::Dispatched && !a.breached)
            .and_then(|a| acknowledge(a, SignFor::Lead));
        let report_in = self
            .co_handlers
            .iter()
            .filter(|c| c.reported_in_at.is_none() && !c.report_in.breached)
            .filter_map(|c| {
                acknowledge(&c.report_in, SignFor::ReportIn).map(|clock| ReportInClock {
                    unit: c.unit.clone(),
                    clock,
                })
            })
            .collect();
        (moved_resolve, moved_acknowledge, report_in)
    }
}
