//! Due timers: claimed for a scheduler under a lease, and fired through the domain one at a time
//! ([`Engine::fire`]) or a claimed batch at once ([`Engine::fire_batch`], one store transaction for
//! the lot).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use doorstep_domain::{Actor, Command, Context, Event, Policy, Threshold, Ticket, TicketId, Timer};
use doorstep_store::{Commit, DueTimer, StoreError, StoredEvent};

use super::{Engine, Shared, case_owner};
use crate::error::Error;

/// What firing one timer did.
#[derive(Debug, Clone, PartialEq)]
pub enum Fired {
    /// The events recorded (a warning, a breach and its escalation, a missed review, a closing).
    Recorded(Vec<StoredEvent>),
    /// The clock moved on since the timer was armed (resolved, suspended, extended, re-dispatched) or
    /// the ticket is gone: nothing to do.
    Stale,
}

/// How often firing or re-timing re-reads a ticket that a concurrent command changed under it.
const FIRE_ATTEMPTS: usize = 5;

/// A claimed batch decided in memory, waiting for its commit ([`Engine::decide_batch`]).
#[derive(Debug)]
pub struct DecidedBatch {
    /// Per timer, in batch order: its answer when it needs no commit (stale, or failed).
    answers: Vec<Option<Result<Fired, Error>>>,
    decided: Vec<Decided>,
}

/// A decision of a batch, waiting for its commit.
#[derive(Debug)]
struct Decided {
    /// Its place in the batch.
    index: usize,
    before_version: i64,
    /// The ticket's clocks reckoned on the calendar fallback before the firing.
    fallback_before: crate::observe::FallbackClocks,
    next: Ticket,
    events: Vec<Event>,
}

impl Engine {
    /// Claims up to `limit` timers due at `now`, earliest first, for the scheduler `owner` until
    /// `lease_until`; timers under another scheduler's live lease are skipped (see
    /// [`Store::claim_due_timers`](doorstep_store::Store::claim_due_timers)).
    pub async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        owner: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<DueTimer>, Error> {
        Ok(self
            .store
            .claim_due_timers(now, limit, owner, lease_until)
            .await?)
    }

    /// Removes a claimed timer that firing found stale, unless it was re-armed since the claim.
    /// `true` when removed.
    pub async fn drop_stale_timer(&self, claimed: &DueTimer, owner: &str) -> Result<bool, Error> {
        Ok(self.store.drop_claimed_timer(claimed, owner).await?)
    }

    /// The earliest instant a timer can be claimed at (its due instant, or the end of its lease);
    /// `None` when no timer is armed.
    pub async fn next_timer_due(&self) -> Result<Option<DateTime<Utc>>, Error> {
        Ok(self.store.next_timer_due().await?)
    }

    /// Fires one due timer through the domain, which re-checks the ticket's current state, and commits
    /// the result. A breach escalates one rung from the breach instant; exactly once, because the commit
    /// is checked against the version the decision was made on (a concurrent scheduler or command makes
    /// this one re-read and find the clock already moved).
    #[tracing::instrument(name = "engine.fire", level = "debug", skip_all, fields(ticket = %ticket_id))]
    pub async fn fire(&self, ticket_id: &TicketId, timer: &Timer) -> Result<Fired, Error> {
        let recorded = self
            .decide_and_commit(ticket_id, |ticket, shared, policy| {
                self.decide_timer(shared, policy, ticket, timer)
            })
            .await
            .map_err(|e| match e {
                Error::Conflict(_) => Error::Conflict(format!(
                    "ticket {ticket_id} kept changing while a timer fired; it will be retried"
                )),
                e => e,
            })?;
        Ok(recorded.map_or(Fired::Stale, Fired::Recorded))
    }

    /// Reads a ticket, decides on it with its own policy version, and commits the events, re-reading
    /// when a concurrent command moved the ticket on in between. `None` when the ticket is gone or
    /// the decision records nothing. The one loop behind timer firing and re-timing.
    pub(super) async fn decide_and_commit(
        &self,
        id: &TicketId,
        decide: impl Fn(&Ticket, &Shared, &Policy) -> Result<Option<(Ticket, Vec<Event>)>, Error>,
    ) -> Result<Option<Vec<StoredEvent>>, Error> {
        for _ in 0..FIRE_ATTEMPTS {
            let Some(ticket) = self.store.get_ticket(id).await? else {
                return Ok(None);
            };
            let shared = self.shared();
            let policy = self.policy(ticket.policy_version).await?;
            let Some((next, events)) = decide(&ticket, &shared, &policy)? else {
                return Ok(None);
            };
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
                    crate::observe::committed(&crate::observe::fallback_clocks(&ticket), &next);
                    return Ok(Some(stored));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict(format!(
            "ticket {id} kept changing while it was being updated"
        )))
    }

    /// Fires a claimed batch in its order: reads the batch's tickets at once, decides each timer on the
    /// ticket as the timers before it in the batch left it, and commits every decision in one store
    /// call (each standing alone). A decision that lost a race with a concurrent command is fired
    /// again on its own through [`Engine::fire`]. One answer per timer, in order.
    #[tracing::instrument(name = "engine.fire_batch", level = "debug", skip_all, fields(timers = due.len()))]
    pub async fn fire_batch(&self, due: &[DueTimer]) -> Vec<Result<Fired, Error>> {
        let decided = self.decide_batch(due).await;
        self.commit_batch(due, decided).await
    }

    /// The first half of [`Engine::fire_batch`]: reads the batch's tickets and decides every timer,
    /// writing nothing. The scheduler decides the next batch this way while the current one commits.
    #[tracing::instrument(name = "engine.decide_batch", level = "debug", skip_all, fields(timers = due.len()))]
    pub async fn decide_batch(&self, due: &[DueTimer]) -> DecidedBatch {
        let mut ids: Vec<TicketId> = due.iter().map(|d| d.ticket_id.clone()).collect();
        ids.sort();
        ids.dedup();
        let mut tickets: HashMap<TicketId, Ticket> = match self.store.get_tickets(&ids).await {
            Ok(found) => found.into_iter().map(|t| (t.id.clone(), t)).collect(),
            Err(e) => {
                let e = Error::from(e);
                return DecidedBatch {
                    answers: due.iter().map(|_| Some(Err(e.clone()))).collect(),
                    decided: Vec::new(),
                };
            }
        };
        let shared = self.shared();
        let mut answers: Vec<Option<Result<Fired, Error>>> = due.iter().map(|_| None).collect();
        let mut decided = Vec::new();
        for (index, d) in due.iter().enumerate() {
            let Some(ticket) = tickets.get(&d.ticket_id) else {
                answers[index] = Some(Ok(Fired::Stale));
                continue;
            };
            let decision = match self.policy(ticket.policy_version).await {
                Ok(policy) => self.decide_timer(&shared, &policy, ticket, &d.timer),
                Err(e) => Err(e),
            };
            match decision {
                Ok(Some((next, events))) => {
                    let before_version = ticket.version;
                    let fallback_before = crate::observe::fallback_clocks(ticket);
                    tickets.insert(d.ticket_id.clone(), next.clone());
                    decided.push(Decided {
                        index,
                        before_version,
                        fallback_before,
                        next,
                        events,
                    });
                }
                Ok(None) => answers[index] = Some(Ok(Fired::Stale)),
                Err(e) => answers[index] = Some(Err(e)),
            }
        }
        DecidedBatch { answers, decided }
    }

    /// The second half of [`Engine::fire_batch`]: commits a decided batch, then fires one at a time
    /// whatever lost a race. `due` is the batch `decided` was decided from.
    #[tracing::instrument(name = "engine.commit_batch", level = "debug", skip_all, fields(timers = due.len()))]
    pub async fn commit_batch(
        &self,
        due: &[DueTimer],
        decided: DecidedBatch,
    ) -> Vec<Result<Fired, Error>> {
        let DecidedBatch {
            mut answers,
            decided,
        } = decided;
        let commits: Vec<Commit<'_>> = decided
            .iter()
            .map(|d| Commit {
                ticket: &d.next,
                expected_version: d.before_version,
                events: &d.events,
            })
            .collect();
        match self.store.commit_all(&commits).await {
            Ok(results) => {
                for (d, result) in decided.iter().zip(results) {
                    answers[d.index] = match result {
                        Ok(stored) => {
                            self.published(&stored);
                            crate::observe::committed(&d.fallback_before, &d.next);
                            Some(Ok(Fired::Recorded(stored)))
                        }
                        // Raced by a command: left for the one-at-a-time path below.
                        Err(StoreError::Conflict { .. }) => None,
                        // Its part of the batch failed (on PostgreSQL a run of the batch is one
                        // transaction): also left for the one-at-a-time path, which re-reads.
                        Err(e) => {
                            tracing::warn!(error = %e, "a batched commit failed; firing its timer on its own");
                            None
                        }
                    };
                }
            }
            // The batch wrote nothing: each timer goes the one-at-a-time way below.
            Err(e) => tracing::warn!(error = %e, "batched firing failed; firing one at a time"),
        }
        let mut out = Vec::with_capacity(due.len());
        for (d, answer) in due.iter().zip(answers) {
            out.push(match answer {
                Some(answer) => answer,
                None => self.fire(&d.ticket_id, &d.timer).await,
            });
        }
        out
    }

    /// The domain's decision on a timer of `ticket`; `None` when there is nothing to do.
    fn decide_timer(
        &self,
        shared: &Shared,
        policy: &Policy,
        ticket: &Ticket,
        timer: &Timer,
    ) -> Result<Option<(Ticket, Vec<Event>)>, Error> {
        let district = &shared.district;
        let command = match timer.threshold {
            Threshold::Warning => Command::FireWarning {
                clock: timer.clock,
                unit: timer.unit.clone(),
                due_at: timer.due_at,
            },
            Threshold::Breach => Command::FireBreach {
                clock: timer.clock,
                unit: timer.unit.clone(),
                due_at: timer.due_at,
                owner_unit: ticket.level.next().and_then(|to| {
                    district
                        .owner_unit(&ticket.intake.node, policy.level(to).owner)
                        .map(|u| u.code.clone())
                }),
                case_owner: Some(case_owner(district)),
                supervisor: ticket
                    .lead_unit
                    .as_ref()
                    .and_then(|lead| district.jurisdiction.unit(lead))
                    .and_then(|lead| lead.supervisor.clone()),
            },
        };
        let actor = Actor::scheduler();
        let ctx = Context {
            now: self.clock.now(),
            actor: &actor,
            policy,
            calendar: &shared.calendar,
        };
        let (next, events) = ticket.handle(&command, &ctx)?;
        Ok((!events.is_empty()).then_some((next, events)))
    }
}
