//! The engine behind the API: intake, actions and reads in domain terms, each write one store commit.
//! Wire types never come in here; the services convert at the edge.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use doorstep_domain::calendar::{Calendar, Notice, SpecialDay};
use doorstep_domain::policy::DEFAULT_POLICY_TOML;
use doorstep_domain::{
    Actor, Channel, Clock, Command, Context, District, Event, Intake, Level, NodeCode, Policy,
    Registration, Ticket, TicketId, UnitCode, register,
};
use doorstep_store::{
    Commit, Created, NewTicket, PolicyVersion, Store, StoredEvent, TicketPage, TicketQuery,
};
use tokio::sync::{Notify, watch};

use crate::auth::Principal;
use crate::error::Error;

mod config;
mod feed;
mod firing;
mod gauges;
mod retiming;

use config::Shared;
pub use config::{CONFIG_POLL, Reloaded};

/// How long after a calendar change its deadlines are moved a second time: every process has
/// loaded the change by then (it checks every [`CONFIG_POLL`]), so no clock is armed under the old
/// calendar afterwards.
pub const RETIME_SETTLE: std::time::Duration = std::time::Duration::from_secs(3);
pub use feed::{CATCH_UP_BATCH, FEED_BATCH, FEED_HOLDS, FEED_POLL, Watch};
pub use firing::{DecidedBatch, Fired};
pub use retiming::Retimed;

/// An action on a ticket as the API asks for it. Everything the domain needs beyond the caller's words
/// (owner units up the tree, the district's case owner, the catalogue's lead unit) the engine adds.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Dispatch to the dispatch catalogue's lead unit for the ticket's category and place.
    DispatchByCatalogue { reason: String },
    /// Any other action; context fields left `None` are filled in by the engine.
    Command(Command),
}

/// Why a deadline is what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub clock: doorstep_domain::ClockKind,
    pub due_at: chrono::DateTime<chrono::Utc>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub rule: String,
    pub paused_seconds: i64,
    pub extensions: u32,
    pub calendar_fallback: bool,
}

/// A console's ticket query, before it is scoped to the caller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListRequest {
    pub node: Option<NodeCode>,
    pub query: TicketQuery,
    pub overdue_only: bool,
}

/// The engine: shared by every service and the scheduler.
#[derive(Debug)]
pub struct Engine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    shared: RwLock<Arc<Shared>>,
    /// Held while the configuration is reloaded, so reloads take turns.
    reloading: tokio::sync::Mutex<()>,
    /// The highest event seq committed by this process: watch streams wait on it.
    last_seq: watch::Sender<i64>,
    /// Woken whenever a commit may have armed an earlier timer.
    timers_changed: Arc<Notify>,
    /// The one reader of the committed log that every watch takes its events from.
    feed: Arc<feed::Feed>,
}

impl Engine {
    /// Loads the district, calendar and policy from the store, seeding what a new database lacks: the
    /// built-in official calendar years it does not have yet, and the built-in policy as version 1.
    pub async fn open(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Result<Engine, Error> {
        let calendar = store.load_calendar().await?;
        let official = Calendar::official();
        for notice in official.notices() {
            if !calendar.covers(notice.year) {
                let days = official.days_of_notice(notice.year);
                store.put_calendar_notice(notice, &days).await?;
            }
        }
        if store.policy(0).await?.is_none() {
            store.put_policy(DEFAULT_POLICY_TOML, clock.now()).await?;
        }
        let shared = Shared::load(store.as_ref(), &BTreeMap::new()).await?;
        let last = store.last_seq().await?;
        let engine = Engine {
            store,
            clock,
            shared: RwLock::new(Arc::new(shared)),
            reloading: tokio::sync::Mutex::new(()),
            last_seq: watch::channel(last).0,
            timers_changed: Arc::new(Notify::new()),
            feed: Arc::new(feed::Feed::new(last)),
        };
        engine.finish_pending_retimings().await?;
        Ok(engine)
    }

    /// The store, for the engine's own modules; callers outside go through the engine's methods.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Notified when a commit may have armed an earlier timer (the scheduler listens).
    pub fn timers_changed(&self) -> Arc<Notify> {
        Arc::clone(&self.timers_changed)
    }

    /// The last committed seq, for watch streams to wait on.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.last_seq.subscribe()
    }

    fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn replace(&self, change: impl FnOnce(&Shared) -> Shared) {
        let mut guard = self.shared.write().unwrap_or_else(|e| e.into_inner());
        let next = change(&guard);
        *guard = Arc::new(next);
    }

    pub fn district(&self) -> Arc<District> {
        Arc::clone(&self.shared().district)
    }

    pub fn calendar(&self) -> Arc<Calendar> {
        Arc::clone(&self.shared().calendar)
    }

    /// Tells watchers and the scheduler that `events` were committed.
    pub fn published(&self, events: &[StoredEvent]) {
        if let Some(last) = events.iter().map(|e| e.seq).max() {
            self.last_seq.send_if_modified(|seen| {
                let newer = last > *seen;
                if newer {
                    *seen = last;
                }
                newer
            });
        }
        self.timers_changed.notify_one();
    }

    /// A policy version, from memory or the store.
    pub async fn policy(&self, version: i64) -> Result<Arc<Policy>, Error> {
        let shared = self.shared();
        let version = if version == 0 {
            shared.current_policy
        } else {
            version
        };
        if let Some(policy) = shared.policies.get(&version) {
            return Ok(Arc::clone(policy));
        }
        let stored = self
            .store
            .policy(version)
            .await?
            .ok_or_else(|| Error::NotFound(format!("policy version {version}")))?;
        let policy = Arc::new(
            Policy::from_toml(&stored.toml)
                .map_err(|e| Error::Internal(format!("stored policy {version}: {e}")))?,
        );
        let cached = Arc::clone(&policy);
        self.replace(|s| s.with_policy(version, cached));
        Ok(policy)
    }

    /// The node path of a node of the district, or an error naming the field.
    fn node_path(
        &self,
        district: &District,
        field: &'static str,
        node: &NodeCode,
    ) -> Result<String, Error> {
        district
            .jurisdiction
            .node_path(node)
            .ok_or_else(|| Error::invalid(field, format!("unknown jurisdiction node {node}")))
    }

    /// A unit a ticket is handed to (dispatched or called in) must have the ticket's place in its
    /// jurisdiction: a unit of another street office could not even see it, and the ticket would sit
    /// until it breached. District departments (at the district's root) reach everywhere.
    fn require_unit_reaching(
        district: &District,
        field: &'static str,
        unit: &UnitCode,
        ticket: &Ticket,
    ) -> Result<(), Error> {
        let tree = &district.jurisdiction;
        let found = tree
            .unit(unit)
            .ok_or_else(|| Error::invalid(field, format!("unknown unit {unit}")))?;
        let (Some(unit_path), Some(place)) = (
            tree.node_path(&found.node),
            tree.node_path(&ticket.intake.node),
        ) else {
            return Ok(());
        };
        if place.starts_with(&unit_path) {
            Ok(())
        } else {
            Err(Error::invalid(
                field,
                format!(
                    "unit {unit} works in {}, which does not include the ticket's place {}: \
                     choose a unit of that place or above it",
                    found.node, ticket.intake.node
                ),
            ))
        }
    }

    /// Intake: registers a ticket (idempotent on source and external reference) and dispatches it
    /// through the dispatch catalogue. Returns the ticket and whether it is new. A reference already
    /// registered for a different request is refused ([`Error::AlreadyExists`]); when concurrent
    /// requests race for one reference, the store's key picks the one registered and every other is
    /// compared with it.
    #[tracing::instrument(name = "engine.create_ticket", skip_all)]
    pub async fn create_ticket(
        &self,
        principal: &Principal,
        intake: Intake,
        level_hint: Option<Level>,
    ) -> Result<(Ticket, bool), Error> {
        let intake = intake.validated()?;
        let shared = self.shared();
        let district = &shared.district;
        let node_path = self.node_path(district, "node", &intake.node)?;
        if !principal.reaches(&node_path) {
            return Err(Error::Forbidden(format!(
                "node {} is outside your jurisdiction",
                intake.node
            )));
        }
        let route = district
            .route(&intake.category, &intake.node)
            .ok_or_else(|| {
                Error::invalid(
                    "category",
                    format!(
                        "{} is not in the dispatch catalogue for {}",
                        intake.category, intake.node
                    ),
                )
            })?;
        if let Some(existing) = self
            .store
            .ticket_by_ref(intake.source, &intake.external_ref)
            .await?
        {
            return self.existing_for(principal, existing, &intake).await;
        }
        let level = level_hint.unwrap_or(route.entry.default_level);
        let policy = self.policy(shared.current_policy).await?;
        let actor = Actor::new(principal.name.clone());
        let ctx = Context {
            now: self.clock.now(),
            actor: &actor,
            policy: &policy,
            calendar: &shared.calendar,
        };
        let id = TicketId::parse(uuid::Uuid::now_v7().to_string())?;
        let created = register(
            Registration {
                id,
                intake,
                level,
                policy_version: shared.current_policy,
                case_owner: Some(case_owner(district)),
            },
            &ctx,
        )?;
        let mut ticket =
            Ticket::from_created(&created).map_err(|e| Error::Internal(e.to_string()))?;
        let mut events = vec![created];
        {
            let (next, dispatched) = ticket.handle(
                &Command::Dispatch {
                    unit: route.lead_unit.code.clone(),
                    reason: format!("dispatch catalogue: {}", route.entry.category),
                },
                &ctx,
            )?;
            ticket = next;
            events.extend(dispatched);
        }
        match self
            .store
            .create_ticket(NewTicket {
                ticket: &ticket,
                events: &events,
                node_path: &node_path,
            })
            .await?
        {
            Created::New(stored) => {
                self.published(&stored);
                crate::observe::committed(&Vec::new(), &ticket);
                tracing::info!(ticket = %ticket.id, level = %ticket.level, node = %ticket.intake.node, "ticket registered");
                Ok((ticket, true))
            }
            // Another request registered the reference first: this one is compared with it.
            Created::Existing(existing) => {
                self.existing_for(principal, *existing, &ticket.intake)
                    .await
            }
        }
    }

    /// Reads a ticket the principal may see; out of scope reads as not found (no existence leak).
    #[tracing::instrument(name = "engine.get_ticket", skip_all, fields(ticket = %id))]
    pub async fn get_ticket(&self, principal: &Principal, id: &TicketId) -> Result<Ticket, Error> {
        let ticket = self
            .store
            .get_ticket(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("ticket {id}")))?;
        if !self.may_see(principal, &ticket).await? {
            return Err(Error::NotFound(format!("ticket {id}")));
        }
        Ok(ticket)
    }

    pub(crate) async fn ticket_path(&self, ticket: &Ticket) -> Result<String, Error> {
        if let Some(path) = self.district().jurisdiction.node_path(&ticket.intake.node) {
            return Ok(path);
        }
        Ok(self.store.node_path(&ticket.id).await?.unwrap_or_default())
    }

    /// A ticket with its whole history and the reasons for its deadlines.
    #[tracing::instrument(name = "engine.timeline", skip_all, fields(ticket = %id))]
    pub async fn timeline(
        &self,
        principal: &Principal,
        id: &TicketId,
    ) -> Result<(Ticket, Vec<StoredEvent>, Vec<Explanation>), Error> {
        let ticket = self.get_ticket(principal, id).await?;
        let history = Self::redact_history(principal, &ticket, self.store.history(id).await?);
        let explanations = explain(&ticket);
        Ok((ticket, history, explanations))
    }

    /// One action on one ticket: validated, decided by the domain on the ticket as it is now, and
    /// committed unless another writer got there first.
    ///
    /// `version` is the version the caller last read. When the ticket moved on since, the action
    /// still goes ahead if everything recorded since came from the scheduler and changed nothing the
    /// action depends on (see [`Command::conflicts_with`]); otherwise it is a conflict. A commit that
    /// loses a race is tried once more on the ticket as it then is, under the same rule: the other
    /// writer is most often the scheduler firing a timer, which must not abort a person's action. A
    /// second lost race is a conflict: the ticket is busy, and the caller had better read it again.
    #[tracing::instrument(name = "engine.act", skip_all, fields(ticket = %id))]
    pub async fn act(
        &self,
        principal: &Principal,
        id: &TicketId,
        version: i64,
        action: Action,
    ) -> Result<Ticket, Error> {
        if let Some(next) = self.act_once(principal, id, version, &action).await? {
            return Ok(next);
        }
        self.act_once(principal, id, version, &action)
            .await?
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "ticket {id} changed while the action was being recorded: reload it and try again"
                ))
            })
    }

    /// One attempt at [`Engine::act`]: the ticket after the action, or `None` when another writer
    /// committed between this read and this commit.
    async fn act_once(
        &self,
        principal: &Principal,
        id: &TicketId,
        version: i64,
        action: &Action,
    ) -> Result<Option<Ticket>, Error> {
        let ticket = self.ticket_for_action(principal, id).await?;
        if let Action::Command(command) = action {
            Self::check_acting_unit(principal, command, &ticket)?;
        }
        let shared = self.shared();
        let district = &shared.district;
        let policy = self.policy(ticket.policy_version).await?;
        let command = match action.clone() {
            Action::DispatchByCatalogue { reason } => {
                let route = district.route(&ticket.intake.category, &ticket.intake.node);
                let unit = route.map(|r| r.lead_unit.code.clone()).ok_or_else(|| {
                    Error::invalid(
                        "lead_unit",
                        format!(
                            "the dispatch catalogue names no lead unit for {} at {}; name one",
                            ticket.intake.category, ticket.intake.node
                        ),
                    )
                })?;
                Command::Dispatch { unit, reason }
            }
            Action::Command(command) => self.with_context(command, &ticket, district, &policy)?,
        };
        if let Action::Command(asked) = action {
            // After the reach check: a unit that cannot reach the ticket at all is named as such.
            self.check_targets(principal, asked)?;
        }
        if version != ticket.version {
            self.check_recorded_since(&ticket, version, &command)
                .await?;
        }
        let actor = Actor::new(principal.name.clone());
        let ctx = Context {
            now: self.clock.now(),
            actor: &actor,
            policy: &policy,
            calendar: &shared.calendar,
        };
        let (next, events) = ticket.handle(&command, &ctx)?;
        match self.commit(&ticket, &next, &events).await {
            Ok(()) => Ok(Some(next)),
            Err(Error::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// For an action sent with `version` while the ticket is at a later one: a conflict unless
    /// nothing recorded in between conflicts with `command`.
    async fn check_recorded_since(
        &self,
        ticket: &Ticket,
        version: i64,
        command: &Command,
    ) -> Result<(), Error> {
        let stale = || {
            Error::Conflict(format!(
                "ticket {} is at version {}, not {version}: reload it and try again",
                ticket.id, ticket.version
            ))
        };
        let (Ok(from), Ok(to)) = (usize::try_from(version), usize::try_from(ticket.version)) else {
            return Err(stale());
        };
        if from == 0 || from > to {
            return Err(stale());
        }
        let history = self.store.history(&ticket.id).await?;
        // Every event bumps the version by one: the event at index i produced version i + 1.
        let since = history.get(from..to).ok_or_else(stale)?;
        if since.iter().any(|e| command.conflicts_with(&e.event)) {
            return Err(stale());
        }
        tracing::debug!(
            ticket = %ticket.id,
            read = version,
            current = ticket.version,
            action = command.action(),
            "stale action goes ahead: nothing recorded since it was read conflicts with it"
        );
        Ok(())
    }

    /// Persists an action's events; the reply goes out only after this returns.
    #[tracing::instrument(name = "engine.commit", level = "debug", skip_all, fields(ticket = %after.id))]
    pub async fn commit(
        &self,
        before: &Ticket,
        after: &Ticket,
        events: &[Event],
    ) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        let stored = self
            .store
            .commit(Commit {
                ticket: after,
                expected_version: before.version,
                events,
            })
            .await?;
        self.published(&stored);
        crate::observe::committed(&crate::observe::fallback_clocks(before), after);
        Ok(())
    }

    /// Checks the units an action names and fills in what the district knows.
    fn with_context(
        &self,
        command: Command,
        ticket: &Ticket,
        district: &District,
        policy: &Policy,
    ) -> Result<Command, Error> {
        Ok(match command {
            Command::Dispatch { unit, reason } => {
                Self::require_unit_reaching(district, "lead_unit", &unit, ticket)?;
                Command::Dispatch { unit, reason }
            }
            Command::Whistle { units, reason } => {
                for unit in &units {
                    Self::require_unit_reaching(district, "units", unit, ticket)?;
                }
                Command::Whistle { units, reason }
            }
            Command::Escalate { reason, .. } => {
                let owner_unit = ticket.level.next().and_then(|to| {
                    district
                        .owner_unit(&ticket.intake.node, policy.level(to).owner)
                        .map(|u| u.code.clone())
                });
                Command::Escalate {
                    reason,
                    owner_unit,
                    case_owner: Some(case_owner(district)),
                }
            }
            Command::Reclassify { level, reason, .. } => Command::Reclassify {
                level,
                reason,
                case_owner: Some(case_owner(district)),
            },
            Command::Merge { into, reason } => Command::Merge { into, reason },
            other => other,
        })
    }

    /// A console's list, scoped to the principal.
    #[tracing::instrument(name = "engine.list_tickets", skip_all)]
    pub async fn list_tickets(
        &self,
        principal: &Principal,
        request: ListRequest,
    ) -> Result<TicketPage, Error> {
        let district = self.district();
        let requested = match &request.node {
            Some(node) => Some(self.node_path(&district, "node", node)?),
            None => None,
        };
        let mut query = request.query;
        query.subtree = principal.narrow(requested)?;
        if let Some(own) = &principal.unit {
            // A handling unit lists its own tickets; another unit's queue is not there for it.
            match &query.unit {
                Some(asked) if asked != own => {
                    return Err(Error::NotFound(format!("unit {asked}")));
                }
                _ => query.unit = Some(own.clone()),
            }
        }
        if request.overdue_only {
            query.overdue_at = Some(self.clock.now());
        }
        if principal.role == crate::Role::Intake {
            // A hotline integration finds what it filed by its own work-order number, and nothing
            // else: no queue browsing, and only the tickets it registered.
            if query.external_ref.is_none() {
                return Err(Error::Forbidden(
                    "intake looks tickets up by their work-order number: set external_ref".into(),
                ));
            }
            let mut page = self.store.list_tickets(&query).await?;
            let mut own = Vec::with_capacity(page.tickets.len());
            for ticket in page.tickets {
                if self.may_see(principal, &ticket).await? {
                    own.push(ticket);
                }
            }
            page.tickets = own;
            return Ok(page);
        }
        Ok(self.store.list_tickets(&query).await?)
    }

    /// The subtree path a watch or export covers, scoped to the principal.
    pub fn subtree(
        &self,
        principal: &Principal,
        node: Option<&NodeCode>,
    ) -> Result<Option<String>, Error> {
        let district = self.district();
        let requested = match node {
            Some(node) => Some(self.node_path(&district, "node", node)?),
            None => None,
        };
        principal.narrow(requested)
    }

    pub async fn events_after(
        &self,
        subtree: Option<&str>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, Error> {
        Ok(self.store.events_after(subtree, after_seq, limit).await?)
    }

    /// One round trip to the database, for readiness probes.
    pub async fn ping(&self) -> Result<(), Error> {
        Ok(self.store.ping().await?)
    }

    /// The seq of the last event committed to the store, by this process or another (0 for none).
    pub async fn last_seq(&self) -> Result<i64, Error> {
        Ok(self.store.last_seq().await?)
    }

    /// Validates and stores a whole district, then serves it.
    pub async fn import_district(&self, toml: &str) -> Result<doorstep_store::ImportCounts, Error> {
        let district =
            District::from_toml(toml).map_err(|e| Error::invalid("toml", e.to_string()))?;
        let counts = self.store.import_district(&district).await?;
        self.reload_after_change().await;
        Ok(counts)
    }

    /// Replaces one year's official calendar data, and moves the running deadlines the change affects
    /// (found through the timer index; see [`Engine::retime`]).
    ///
    /// Other processes use the new calendar within [`CONFIG_POLL`] and a reload; until then they may
    /// still arm a clock under the old one. So the deadlines are moved twice: at once, and again
    /// [`RETIME_SETTLE`] later, when every process has the change; the second pass moves only what the
    /// first could not see, and the change stays recorded as pending (finished by the next start after
    /// a crash) until both are done.
    pub async fn put_calendar_notice(
        &self,
        notice: Notice,
        days: Vec<SpecialDay>,
    ) -> Result<Retimed, Error> {
        let year = notice.year;
        let before = self.calendar();
        let mut calendar = (*before).clone();
        calendar
            .put_notice(notice.clone(), days.clone())
            .map_err(|e| Error::invalid("days", e.to_string()))?;
        self.store.put_calendar_notice(&notice, &days).await?;
        self.reload_after_change().await;
        tracing::info!(year, days = days.len(), "calendar year replaced");
        let mut retimed = self.retime_calendar_year(year, &before).await?;
        tokio::time::sleep(RETIME_SETTLE).await;
        let late = self.retime_calendar_year(year, &before).await?;
        // The second pass reads the same tickets again, and any armed since.
        retimed.examined = retimed.examined.max(late.examined);
        retimed.retimed += late.retimed;
        self.store.retiming_done(year).await?;
        tracing::info!(
            year,
            examined = retimed.examined,
            retimed = retimed.retimed,
            late = late.retimed,
            "open deadlines re-timed for the calendar change"
        );
        Ok(retimed)
    }

    /// Re-times for a change of `year` from what `before` declared for it to the calendar in use now
    /// (other years as they are now: another process may have changed one meanwhile).
    async fn retime_calendar_year(&self, year: i32, before: &Calendar) -> Result<Retimed, Error> {
        let calendar = self.calendar();
        let previous = retiming::with_year_as(&calendar, year, before)
            .map_err(|e| Error::Internal(format!("calendar {year} before its change: {e}")))?;
        self.retime(&previous, &calendar, year).await
    }

    /// After this process changed the configuration: in use here at once. If the reload fails the
    /// change is stored all the same, and the follower loads it at its next look.
    async fn reload_after_change(&self) {
        if let Err(e) = self.reload_config().await {
            tracing::warn!(error = %e, "cannot reload the configuration just changed; retrying within a second");
        }
    }

    /// Stores a new policy version; new tickets are judged under it, open ones keep theirs.
    pub async fn put_policy(&self, toml: &str) -> Result<PolicyVersion, Error> {
        let policy = Policy::from_toml(toml).map_err(|e| Error::invalid("toml", e.to_string()))?;
        let stored = self.store.put_policy(toml, self.clock.now()).await?;
        let version = stored.version;
        self.replace(|s| s.with_policy(version, Arc::new(policy)));
        self.reload_after_change().await;
        tracing::info!(version, "policy version stored");
        Ok(stored)
    }

    pub async fn policy_version(&self, version: i64) -> Result<PolicyVersion, Error> {
        let version = if version == 0 {
            self.shared().current_policy
        } else {
            version
        };
        self.store
            .policy(version)
            .await?
            .ok_or_else(|| Error::NotFound(format!("policy version {version}")))
    }

    /// Looks up an existing ticket by its source reference (for intake retries).
    pub async fn ticket_by_ref(
        &self,
        source: Channel,
        external_ref: &str,
    ) -> Result<Option<Ticket>, Error> {
        Ok(self.store.ticket_by_ref(source, external_ref).await?)
    }
}

/// The district's named case owner for MAJOR_RISK tickets. A district without one on its board still
/// takes the ticket: it is filed under the district office, flagged for a supervisor to name one.
fn case_owner(district: &District) -> String {
    district
        .case_owner()
        .unwrap_or_else(|| "unassigned: the district board names no case owner".to_owned())
}

/// Why each running clock's deadline is what it is.
pub fn explain(ticket: &Ticket) -> Vec<Explanation> {
    use doorstep_domain::ClockKind;
    let mut out = Vec::new();
    if let Some(r) = &ticket.resolve {
        out.push(Explanation {
            clock: ClockKind::Resolve,
            due_at: r.due_at,
            started_at: r.started_at,
            rule: r.rule(),
            paused_seconds: r.paused_seconds,
            extensions: ticket.extensions,
            calendar_fallback: !r.fallback_years.is_empty(),
        });
    }
    if let Some(a) = &ticket.acknowledge {
        out.push(Explanation {
            clock: ClockKind::Acknowledge,
            due_at: a.due_at,
            started_at: a.started_at,
            rule: format!(
                "sign-for by {} within {} of dispatch",
                ticket
                    .lead_unit
                    .as_ref()
                    .map_or("the lead unit", |u| u.as_str()),
                a.limit
            ),
            paused_seconds: 0,
            extensions: 0,
            calendar_fallback: !a.fallback_years.is_empty(),
        });
    }
    for c in ticket
        .co_handlers
        .iter()
        .filter(|c| c.reported_in_at.is_none())
    {
        out.push(Explanation {
            clock: ClockKind::ReportIn,
            due_at: c.report_in.due_at,
            started_at: c.called_at,
            rule: format!(
                "{} reports in within {} of the whistle",
                c.unit, c.report_in.limit
            ),
            paused_seconds: 0,
            extensions: 0,
            calendar_fallback: !c.report_in.fallback_years.is_empty(),
        });
    }
    if let (Level::MajorRisk, Some(review)) = (ticket.level, &ticket.review) {
        out.push(Explanation {
            clock: ClockKind::Review,
            due_at: review.due_at,
            started_at: ticket.updated_at,
            rule: format!(
                "MAJOR_RISK: the case owner reviews progress every {}",
                review.every
            ),
            paused_seconds: 0,
            extensions: 0,
            calendar_fallback: !review.fallback_years.is_empty(),
        });
    }
    if let (doorstep_domain::Status::Resolved, Some(due), Some(resolved)) =
        (ticket.status, ticket.callback_due_at, ticket.resolved_at)
    {
        out.push(Explanation {
            clock: ClockKind::Callback,
            due_at: due,
            started_at: resolved,
            rule: "closes unless a callback comes within the callback window".into(),
            paused_seconds: 0,
            extensions: 0,
            calendar_fallback: false,
        });
    }
    out
}
