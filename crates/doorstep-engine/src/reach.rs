//! Which tickets a principal reaches, what it sees of their callers (the caller fields, and the free
//! text and address that may name them), and the audit log of every read of unmasked personal data.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use doorstep_domain::event::Change;
use doorstep_domain::{Caller, Command, Intake, NodeKind, Ticket, TicketId};
use doorstep_store::{AuditEntry, AuditQuery, StoredEvent};

use crate::access::{CallerView, Role, Rpc, caller_view, mask_name, mask_phone, mask_text};
use crate::auth::Principal;
use crate::engine::Engine;
use crate::error::Error;

impl Engine {
    /// The principal reaches the ticket: within its subtree, and for a handling unit a ticket it
    /// leads or co-handles, for intake a ticket it registered.
    pub async fn may_see(&self, principal: &Principal, ticket: &Ticket) -> Result<bool, Error> {
        if !principal.reaches(&self.ticket_path(ticket).await?) {
            return Ok(false);
        }
        Ok(match principal.role {
            Role::Unit => principal.unit.as_ref().is_some_and(|unit| {
                ticket.lead_unit.as_ref() == Some(unit)
                    || ticket.co_handlers.iter().any(|c| &c.unit == unit)
            }),
            Role::Intake => self.registered_by(ticket).await? == principal.name,
            _ => true,
        })
    }

    /// Intake's source and external reference name a ticket already registered: answered only to a
    /// principal that reaches it, and only when `asked` is the request that ticket was registered
    /// with (a retry); a request that asks for something else is refused, naming the ticket and the
    /// differing fields but none of their values.
    pub(crate) async fn existing_for(
        &self,
        principal: &Principal,
        existing: Ticket,
        asked: &Intake,
    ) -> Result<(Ticket, bool), Error> {
        if !self.may_see(principal, &existing).await? {
            return Err(Error::Forbidden(
                "this source and external_ref were registered by another principal".into(),
            ));
        }
        let differs = existing.intake.differences(asked);
        if !differs.is_empty() {
            tracing::info!(
                ticket = %existing.id,
                source = %asked.source,
                differs = %differs.join(", "),
                "intake refused: the external reference is registered for another request"
            );
            return Err(Error::AlreadyExists(format!(
                "source {} and external_ref {:?} are registered already, as ticket {}, for a \
                 request that differs in {}: file a different request under its own external_ref",
                asked.source,
                asked.external_ref,
                existing.id,
                differs.join(", ")
            )));
        }
        Ok((existing, false))
    }

    /// The actor of the ticket's CREATED event.
    async fn registered_by(&self, ticket: &Ticket) -> Result<String, Error> {
        let history = self.store().history(&ticket.id).await?;
        Ok(history
            .first()
            .map(|e| e.event.actor.to_string())
            .unwrap_or_default())
    }

    /// The ticket an action is asked on. Out of reach, it is forbidden, and so is a ticket that
    /// does not exist for a principal that does not reach everything (no existence leak either way).
    pub async fn ticket_for_action(
        &self,
        principal: &Principal,
        id: &TicketId,
    ) -> Result<Ticket, Error> {
        let denied = || {
            Error::Forbidden(format!(
                "ticket {id} is not among the tickets {} may act on",
                principal.name
            ))
        };
        match self.store().get_ticket(id).await? {
            Some(ticket) if self.may_see(principal, &ticket).await? => Ok(ticket),
            Some(_) => Err(denied()),
            None if principal.reaches_everything() => Err(Error::NotFound(format!("ticket {id}"))),
            None => Err(denied()),
        }
    }

    /// A handling unit's token acts for its own unit only: the unit an action names must be its
    /// own, and the lead unit's acts (resolving, asking for more time, calling in others) are the lead
    /// unit's alone: a unit called in by a whistle reports in and helps; it does not close the ticket.
    pub(crate) fn check_acting_unit(
        principal: &Principal,
        command: &Command,
        ticket: &Ticket,
    ) -> Result<(), Error> {
        let (Role::Unit, Some(own)) = (&principal.role, &principal.unit) else {
            return Ok(());
        };
        let named = match command {
            Command::Acknowledge { unit }
            | Command::Return { unit, .. }
            | Command::ReportIn { unit } => Some(unit),
            _ => None,
        };
        if let Some(named) = named
            && named != own
        {
            return Err(Error::Forbidden(format!(
                "this token speaks for unit {own}, not {named}"
            )));
        }
        let lead_only = match command {
            Command::Resolve { .. } => Some("resolve the ticket"),
            Command::RequestExtension { .. } => Some("ask for an extension"),
            Command::Whistle { .. } => Some("call in other units"),
            _ => None,
        };
        if let Some(what) = lead_only
            && ticket.lead_unit.as_ref() != Some(own)
        {
            return Err(Error::Forbidden(format!(
                "only the lead unit ({}) may {what}; unit {own} was called in to help",
                ticket
                    .lead_unit
                    .as_ref()
                    .map_or("none yet", |lead| lead.as_str())
            )));
        }
        Ok(())
    }

    /// The units a scoped principal hands a ticket to (dispatch, whistle) are units of its own
    /// jurisdiction, or district departments (the units that exist to be called in, 吹哨报到): a street
    /// office does not hand its residents' tickets, callers and all, to another street office's units
    /// or to the district's own offices. A handling unit is not held to this (it calls in whoever
    /// reaches the ticket); a district-wide principal reaches every unit.
    pub(crate) fn check_targets(
        &self,
        principal: &Principal,
        command: &Command,
    ) -> Result<(), Error> {
        let (Some(scope), Some(scope_path)) = (&principal.scope, &principal.scope_path) else {
            return Ok(());
        };
        if principal.role == Role::Unit {
            return Ok(());
        }
        let (field, targets) = match command {
            Command::Dispatch { unit, .. } => ("lead_unit", std::slice::from_ref(unit)),
            Command::Whistle { units, .. } => ("units", units.as_slice()),
            _ => return Ok(()),
        };
        let district = self.district();
        let tree = &district.jurisdiction;
        for target in targets {
            // An unknown unit is refused, naming the field, by the reach check that follows.
            let Some(unit) = tree.unit(target) else {
                continue;
            };
            let within = tree
                .node_path(&unit.node)
                .is_some_and(|path| path.starts_with(scope_path.as_str()));
            if !within && !unit.department {
                return Err(Error::Forbidden(format!(
                    "{field}: unit {target} works in {}, outside {scope}, the jurisdiction of {}: \
                     hand the ticket to a unit of {scope} or to a district department",
                    unit.node, principal.name
                )));
            }
        }
        Ok(())
    }

    /// The events of a watch or export the principal may see: for a handling unit, only those of
    /// tickets it leads or co-handles now; their free text as the principal reads it
    /// ([`redacted_event`]).
    pub async fn visible_events(
        &self,
        principal: &Principal,
        events: Vec<StoredEvent>,
    ) -> Result<Vec<StoredEvent>, Error> {
        if principal.role != Role::Unit {
            return self.redact_events(principal, events).await;
        }
        let mut seen: std::collections::HashMap<TicketId, bool> = Default::default();
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            let visible = match seen.get(&event.ticket_id) {
                Some(v) => *v,
                None => {
                    let v = match self.store().get_ticket(&event.ticket_id).await? {
                        Some(t) => self.may_see(principal, &t).await?,
                        None => false,
                    };
                    seen.insert(event.ticket_id.clone(), v);
                    v
                }
            };
            if visible {
                out.push(event);
            }
        }
        self.redact_events(principal, out).await
    }

    /// How the principal sees each ticket's caller; every unmasked view of a name or phone is appended
    /// to the audit log first (if that fails, nothing is shown).
    pub async fn disclose(
        &self,
        principal: &Principal,
        rpc: Rpc,
        tickets: &[&Ticket],
    ) -> Result<Vec<CallerView>, Error> {
        let now = self.now();
        let mut entries = Vec::new();
        let views = tickets
            .iter()
            .map(|t| {
                let caller = &t.intake.caller;
                let view = caller_view(principal, caller.confidential);
                if view == CallerView::Full && !(caller.name.is_empty() && caller.phone.is_empty())
                {
                    entries.push(AuditEntry {
                        id: uuid::Uuid::now_v7().to_string(),
                        at: now,
                        principal: principal.name.clone(),
                        token_id: principal.token.as_ref().map(|t| t.id.clone()),
                        ticket_id: t.id.to_string(),
                        what: format!("caller name and phone via {}", rpc.name()),
                    });
                }
                view
            })
            .collect();
        if !entries.is_empty() {
            self.store().append_audit(&entries).await?;
        }
        Ok(views)
    }

    /// How the principal sees the caller of the ticket its own intake request was answered with. A
    /// reply that shows back the name and phone the request carried (as intake trims them) discloses
    /// nothing the caller did not send, so it is not audited. Intake refuses a request whose
    /// reference names a ticket filed with another caller, so any other caller is a fault; it would
    /// still be disclosed only through [`Engine::disclose`], audited as usual.
    pub async fn disclose_to_sender(
        &self,
        principal: &Principal,
        rpc: Rpc,
        ticket: &Ticket,
        sent: &Caller,
    ) -> Result<CallerView, Error> {
        let stored = &ticket.intake.caller;
        if stored.name == sent.name.trim() && stored.phone == sent.phone.trim() {
            return Ok(caller_view(principal, stored.confidential));
        }
        let mut views = self.disclose(principal, rpc, &[ticket]).await?;
        views
            .pop()
            .ok_or_else(|| Error::Internal("no caller view for the ticket".into()))
    }

    /// A ticket as a principal that sees its caller as `view` reads it. Seen masked (supervisors,
    /// reporters): the content with the caller's name and phone-like numbers masked ([`mask_text`]),
    /// and the address only to street level ([`Engine::street_level`]). Hidden (a handling unit on a
    /// confidential ticket): the content masked so, and the address too, but kept otherwise: the
    /// unit has to find the place.
    pub fn redacted<'t>(&self, ticket: &'t Ticket, view: CallerView) -> Cow<'t, Ticket> {
        if view == CallerView::Full {
            return Cow::Borrowed(ticket);
        }
        let mut shown = ticket.clone();
        let name = &ticket.intake.caller.name;
        shown.intake.content = mask_text(&ticket.intake.content, name);
        shown.intake.address = match view {
            CallerView::Masked => self.street_level(ticket),
            _ => mask_text(&ticket.intake.address, name),
        };
        Cow::Owned(shown)
    }

    /// The address as a principal that sees callers masked reads it: the names of the ticket's street
    /// office and community in the jurisdiction tree (`解放路街道 解放桥社区`), never the compound, the
    /// building or the house number. A ticket filed higher up gives the names down to its node (the
    /// district's name for one filed at the district).
    pub fn street_level(&self, ticket: &Ticket) -> String {
        let district = self.district();
        let chain = district.jurisdiction.ancestry(&ticket.intake.node);
        let names: Vec<&str> = chain
            .iter()
            .rev()
            .filter(|n| matches!(n.kind, NodeKind::StreetOffice | NodeKind::Community))
            .map(|n| n.name.as_str())
            .collect();
        if names.is_empty() {
            return chain.last().map(|n| n.name.clone()).unwrap_or_default();
        }
        names.join(" ")
    }

    /// A ticket's history as the principal reads it (see [`redacted_event`]).
    pub(crate) fn redact_history(
        principal: &Principal,
        ticket: &Ticket,
        history: Vec<StoredEvent>,
    ) -> Vec<StoredEvent> {
        let view = caller_view(principal, ticket.intake.caller.confidential);
        if view == CallerView::Full {
            return history;
        }
        history
            .into_iter()
            .map(|e| redacted_event(view, &ticket.intake.caller, &e).unwrap_or(e))
            .collect()
    }

    /// Events of many tickets as the principal reads them (see [`redacted_event`]); the tickets are
    /// read only for a principal that does not see every caller.
    pub(crate) async fn redact_events(
        &self,
        principal: &Principal,
        events: Vec<StoredEvent>,
    ) -> Result<Vec<StoredEvent>, Error> {
        if sees_every_caller(principal) || events.is_empty() {
            return Ok(events);
        }
        let tickets = self.tickets_of(events.iter()).await?;
        Ok(events
            .into_iter()
            .map(|e| redacted_event_for(principal, tickets.get(&e.ticket_id), &e).unwrap_or(e))
            .collect())
    }

    /// The tickets the events are of, by id.
    pub(crate) async fn tickets_of(
        &self,
        events: impl Iterator<Item = &StoredEvent>,
    ) -> Result<HashMap<TicketId, Ticket>, Error> {
        let mut ids: Vec<TicketId> = events.map(|e| e.ticket_id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let tickets = self.store().get_tickets(&ids).await?;
        Ok(tickets.into_iter().map(|t| (t.id.clone(), t)).collect())
    }

    /// The audit log, oldest first.
    pub async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, Error> {
        Ok(self.store().audit_log(query).await?)
    }
}

/// The principal sees every caller as given (so every free text too).
pub(crate) fn sees_every_caller(principal: &Principal) -> bool {
    caller_view(principal, false) == CallerView::Full
        && caller_view(principal, true) == CallerView::Full
}

/// [`redacted_event`] for the principal, on the event's ticket (`None`: not found, so no caller name
/// is known; numbers are masked all the same).
pub(crate) fn redacted_event_for(
    principal: &Principal,
    ticket: Option<&Ticket>,
    event: &StoredEvent,
) -> Option<StoredEvent> {
    let nobody = Caller {
        name: String::new(),
        phone: String::new(),
        confidential: true,
    };
    let caller = ticket.map_or(&nobody, |t| &t.intake.caller);
    redacted_event(caller_view(principal, caller.confidential), caller, event)
}

/// The same for events shared by every watch of a feed batch: only those that change are copied.
pub(crate) fn redact_shared(
    principal: &Principal,
    tickets: &HashMap<TicketId, Ticket>,
    events: Vec<Arc<StoredEvent>>,
) -> Vec<Arc<StoredEvent>> {
    if sees_every_caller(principal) {
        return events;
    }
    events
        .into_iter()
        .map(|e| redacted_event_for(principal, tickets.get(&e.ticket_id), &e).map_or(e, Arc::new))
        .collect()
}

/// An event as a principal that sees its ticket's caller as `view` reads it: `None` when it reads
/// it as recorded (`Full`). Otherwise every free text the event carries (reasons, notes, the
/// resolution, the callback comment) is masked by [`mask_text`], and a registration's request as
/// the ticket's caller fields and content are (the address in it is masked the same way).
pub(crate) fn redacted_event(
    view: CallerView,
    caller: &Caller,
    event: &StoredEvent,
) -> Option<StoredEvent> {
    if view == CallerView::Full {
        return None;
    }
    let mut shown = event.clone();
    let mask = |text: &mut String| *text = mask_text(text, &caller.name);
    match &mut shown.event.change {
        Change::Created { intake, .. } => {
            let c = &mut intake.caller;
            (c.name, c.phone) = match view {
                CallerView::Hidden => (String::new(), String::new()),
                _ => (mask_name(&c.name), mask_phone(&c.phone)),
            };
            mask(&mut intake.content);
            mask(&mut intake.address);
        }
        Change::DispatchedTo { reason, .. }
        | Change::ReturnedByUnit { reason, .. }
        | Change::SuspendedClock { reason, .. }
        | Change::ResumedClock { reason, .. }
        | Change::ExtensionRequested { reason, .. }
        | Change::ExtensionApproved { reason, .. }
        | Change::ExtensionRejected { reason, .. }
        | Change::WhistleBlown { reason, .. }
        | Change::Urged { reason }
        | Change::Supervised { reason }
        | Change::Escalated { reason, .. }
        | Change::Reclassified { reason, .. }
        | Change::MergedInto { reason, .. }
        | Change::CancelledBy { reason }
        | Change::ClosedTicket { reason }
        | Change::Retimed { reason, .. } => mask(reason),
        Change::ResolvedByUnit { resolution, .. } => mask(resolution),
        Change::CallbackRecorded { comment, .. } => mask(comment),
        Change::NoteAdded { text, .. } => mask(text),
        // No free text.
        Change::Acknowledged { .. }
        | Change::ReportedIn { .. }
        | Change::Warning { .. }
        | Change::Breached { .. }
        | Change::Reopened { .. }
        | Change::ReviewMissed { .. } => {}
    }
    Some(shown)
}
