//! The SLA scheduler: escalates every ticket the moment it goes overdue, exactly once.
//!
//! Timers live in the store, one row per clock and threshold, indexed by due time; the scheduler reaches
//! them only through the engine. It claims the due ones in batches under a lease
//! ([`Engine::claim_due_timers`]; several schedulers on one PostgreSQL never fire the same timer at
//! once) and fires the batch through the engine ([`Engine::fire_batch`]): every timer is
//! decided by the domain, which re-checks the ticket's current state (a timer for a ticket already
//! resolved, suspended or extended does nothing, and is removed), and the batch commits at once, in due
//! order, a statement per table for all its tickets. The next batch is claimed before the current one
//! commits and decided while it commits. A breach escalates from the breach instant, and every commit
//! is checked against the ticket's version, so a breach escalates once however many schedulers race.
//!
//! Commits leave the reporting rows behind the event log; while nothing is due, the scheduler folds the
//! log into them a step at a time ([`Engine::catch_up_reports`], [`SchedulerConfig::report_step`]), so
//! a burst of escalations writes only what dispatch needs and the figures catch up after it.
//!
//! Between rounds it sleeps until the earliest due timer, waking early when a command in this process
//! arms an earlier one (the engine's notification) and at least every [`SchedulerConfig::poll`], which
//! is how it sees timers armed by other processes: a short bounded poll rather than LISTEN/NOTIFY, so the
//! same code runs on PostgreSQL-compatible distributed engines that lack notifications.
//!
//! Metrics (to the `metrics` facade; nothing without a recorder): [`LATENESS`], [`FIRED`].
//!
//! The crate is this one file: the [`Scheduler`] ([`Scheduler::tick`], a round; [`Scheduler::run`],
//! rounds until shutdown), its [`SchedulerConfig`], and the [`Round`] it reports.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use doorstep_domain::TicketId;
use doorstep_engine::engine::Fired;
use doorstep_engine::{Engine, Error};
use doorstep_store::DueTimer;
use tokio::sync::watch;

/// From a timer's due instant to the commit of its firing, in seconds.
pub const LATENESS: &str = "doorstep_sla_lateness_seconds";
/// Events the scheduler recorded, by kind (`WARNED`, `BREACHED`, `ESCALATED`, ...).
pub const FIRED: &str = "doorstep_sla_fired_total";

/// How a scheduler claims and waits.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// This scheduler's name in leases (unique per process).
    pub owner: String,
    /// Timers claimed per round trip.
    pub batch: u32,
    /// How long a claimed timer stays reserved for this scheduler: if it dies between claim and commit,
    /// another takes the timer over after this.
    pub lease: Duration,
    /// The longest sleep between rounds: the bound on how late a timer armed by another process is seen.
    pub poll: Duration,
    /// Events folded into the reporting rows per step while nothing is due
    /// ([`Engine::catch_up_reports`]): a timer falling due meanwhile waits for at most one step (about
    /// 20 ms for 1,000 events).
    pub report_step: u32,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            owner: format!("sla-{}", std::process::id()),
            batch: 500,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            report_step: 1000,
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub claimed: usize,
    /// Timers whose firing recorded events.
    pub fired: usize,
    /// Timers whose clock had moved on: nothing to do.
    pub stale: usize,
    /// Timers whose firing failed; they come back when their lease runs out.
    pub failed: usize,
}

impl Round {
    fn add(&mut self, other: Round) {
        self.claimed += other.claimed;
        self.fired += other.fired;
        self.stale += other.stale;
        self.failed += other.failed;
    }
}

/// The SLA scheduler over one engine.
#[derive(Debug, Clone)]
pub struct Scheduler {
    engine: Arc<Engine>,
    config: SchedulerConfig,
}

impl Scheduler {
    pub fn new(engine: Arc<Engine>, config: SchedulerConfig) -> Self {
        Scheduler { engine, config }
    }

    /// Fires everything due at the engine's clock, in due order, batch after batch until nothing due
    /// is left unclaimed (including timers that firing itself armed already overdue, such as the
    /// supervisor's sign-for clock after an overdue sign-for during downtime).
    ///
    /// Batches overlap: the next batch is claimed before the current one commits (the claim reaches
    /// the store first), and decided while it commits, unless it shares a ticket with it, whose commit
    /// it must see. Commits stay one after the other, in claim order.
    #[tracing::instrument(name = "sla.tick", level = "debug", skip_all)]
    pub async fn tick(&self) -> Result<Round, Error> {
        let mut total = Round::default();
        let mut due = self.claim().await?;
        let mut decided = self.engine.decide_batch(&due).await;
        while !due.is_empty() {
            let firing: HashSet<&TicketId> = due.iter().map(|d| &d.ticket_id).collect();
            let next = async {
                let next = self.claim().await?;
                let disjoint = next.iter().all(|d| !firing.contains(&d.ticket_id));
                let decided = match disjoint {
                    true => Some(self.engine.decide_batch(&next).await),
                    false => None,
                };
                Ok::<_, Error>((next, decided))
            };
            let commit = async {
                // Let the claim reach the store before this task encodes the commit.
                tokio::task::yield_now().await;
                self.engine.commit_batch(&due, decided).await
            };
            let (next, answers) = tokio::join!(biased; next, commit);
            total.add(self.settle(&due, answers).await);
            let (mut next, mut next_decided) = next?;
            if next.is_empty() {
                // Claimed before this commit: look again for timers the commit armed already due.
                next = self.claim().await?;
                next_decided = None;
            }
            decided = match next_decided {
                Some(decided) => decided,
                None => self.engine.decide_batch(&next).await,
            };
            due = next;
        }
        Ok(total)
    }

    /// Claims the next batch due at the engine's clock.
    async fn claim(&self) -> Result<Vec<DueTimer>, Error> {
        let now = self.engine.now();
        let lease_until = now
            + chrono::Duration::from_std(self.config.lease)
                .unwrap_or(chrono::Duration::seconds(30));
        self.engine
            .claim_due_timers(now, self.config.batch, &self.config.owner, lease_until)
            .await
    }

    /// Accounts for a fired batch (see [`Engine::fire_batch`]). A timer the domain found nothing to do
    /// for is removed, unless something re-armed it since the claim.
    async fn settle(&self, due: &[DueTimer], answers: Vec<Result<Fired, Error>>) -> Round {
        let mut round = Round {
            claimed: due.len(),
            ..Round::default()
        };
        let committed = self.engine.now();
        for (timer, answer) in due.iter().zip(answers) {
            match answer {
                Ok(Fired::Recorded(events)) => {
                    round.fired += 1;
                    let late = (committed - timer.timer.due_at).num_milliseconds();
                    metrics::histogram!(LATENESS).record(late.max(0) as f64 / 1000.0);
                    for e in &events {
                        metrics::counter!(FIRED, "kind" => e.event.change.kind()).increment(1);
                        tracing::debug!(
                            ticket = %e.ticket_id,
                            kind = e.event.change.kind(),
                            clock = %timer.timer.clock,
                            due_at = %timer.timer.due_at,
                            late_ms = (e.event.at - timer.timer.due_at).num_milliseconds(),
                            "timer fired"
                        );
                    }
                }
                Ok(Fired::Stale) => {
                    round.stale += 1;
                    if let Err(e) = self
                        .engine
                        .drop_stale_timer(timer, &self.config.owner)
                        .await
                    {
                        tracing::warn!(ticket = %timer.ticket_id, error = %e, "cannot remove a timer with nothing to do; it comes back when its lease runs out");
                    }
                }
                Err(e) => {
                    round.failed += 1;
                    tracing::warn!(ticket = %timer.ticket_id, clock = %timer.timer.clock, error = %e, "timer firing failed; it will be retried when its lease runs out");
                }
            }
        }
        if round.fired > 0 || round.failed > 0 {
            tracing::info!(
                claimed = round.claimed,
                fired = round.fired,
                stale = round.stale,
                failed = round.failed,
                "sla round"
            );
        }
        round
    }

    /// Runs until `shutdown` turns true: a round, then a sleep until the earliest due timer, an earlier
    /// one armed in this process, the poll bound, or shutdown.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let wake = self.engine.timers_changed();
        tracing::info!(owner = %self.config.owner, "sla scheduler started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Register interest before looking, so a timer armed meanwhile still wakes us.
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut sleep = match self.tick().await {
                Ok(_) => self.until_next_due().await,
                Err(e) => {
                    tracing::error!(error = %e, "sla round failed; retrying shortly");
                    self.config.poll
                }
            };
            if !sleep.is_zero() && self.project_reports().await {
                // More of the log to fold: look at the timers and go on.
                sleep = Duration::ZERO;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        tracing::info!(owner = %self.config.owner, "sla scheduler stopped");
    }

    /// Nothing is due: folds one step of the event log into the reporting rows (commits leave them
    /// behind). `true` when more is left.
    async fn project_reports(&self) -> bool {
        let step = self.config.report_step.max(1);
        match self.engine.catch_up_reports(step).await {
            Ok(taken) => taken == u64::from(step),
            Err(e) => {
                tracing::error!(error = %e, "cannot bring the reporting rows up to date; reports catch up themselves");
                false
            }
        }
    }

    async fn until_next_due(&self) -> Duration {
        match self.engine.next_timer_due().await {
            // Due already but not claimable: another scheduler holds its lease, or its firing failed.
            // Look again soon rather than spin.
            Ok(Some(due)) if due <= self.engine.now() => RETRY.min(self.config.poll),
            Ok(Some(due)) => until(self.engine.now(), due).min(self.config.poll),
            Ok(None) => self.config.poll,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the next due timer");
                self.config.poll
            }
        }
    }
}

/// How soon to look again at a due timer someone else holds.
const RETRY: Duration = Duration::from_millis(100);

fn until(now: DateTime<Utc>, due: DateTime<Utc>) -> Duration {
    (due - now).to_std().unwrap_or(Duration::ZERO)
}
