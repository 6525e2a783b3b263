//! The lifecycle as a state machine: every action of LADDER.md validates against the ticket's current
//! state and yields events, or a typed error that names the state.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use doorstep_calendar::Calendar;

use crate::deadline::{AcknowledgeClock, Reckoner, ResolveClock};
use crate::event::{Change, Dispatch, Event, ReportInClock};
use crate::ids::{
    Actor, InvalidField, MAX_TEXT_CHARS, TicketId, UnitCode, optional_text, required_text,
};
use crate::ladder::{ClockKind, Level, Satisfaction, Status};
use crate::policy::Policy;
use crate::ticket::{CoHandler, Intake, Ticket};

/// The most units one whistle may call in.
pub const MAX_WHISTLE_UNITS: usize = 20;
/// The longest name of a case owner.
pub const MAX_NAME_CHARS: usize = 100;

/// Everything a decision depends on besides the ticket: who, when, and under which rules.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub now: DateTime<Utc>,
    pub actor: &'a Actor,
    pub policy: &'a Policy,
    pub calendar: &'a Calendar,
}

impl<'a> Context<'a> {
    fn reckoner(&self) -> Reckoner<'a> {
        Reckoner::new(self.policy, self.calendar)
    }
}

/// An action on an existing ticket.
/// Which sign-for clock re-timing is looking at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignFor {
    /// The lead unit's acknowledge clock.
    Lead,
    /// A called unit's report-in clock.
    ReportIn,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Dispatch {
        unit: UnitCode,
        reason: String,
    },
    /// 签收, by the lead unit.
    Acknowledge {
        unit: UnitCode,
    },
    /// 退单: the lead unit says it is not theirs.
    Return {
        unit: UnitCode,
        reason: String,
    },
    /// 挂起: the resolve clock stops.
    Suspend {
        reason: String,
    },
    Resume {
        reason: String,
    },
    /// 延期申请: N more working days.
    RequestExtension {
        days: u32,
        reason: String,
    },
    /// A supervisor's decision on the pending extension.
    DecideExtension {
        approve: bool,
        reason: String,
    },
    /// 吹哨: call units in as co-handlers.
    Whistle {
        units: Vec<UnitCode>,
        reason: String,
    },
    /// 报到: a called unit reports in.
    ReportIn {
        unit: UnitCode,
    },
    /// 催办.
    Urge {
        reason: String,
    },
    /// 督办.
    Supervise {
        reason: String,
    },
    /// By hand, one rung up, the new level's clock from now. `owner_unit` takes the lead if given;
    /// `case_owner` is required when the new level is MAJOR_RISK.
    Escalate {
        reason: String,
        owner_unit: Option<UnitCode>,
        case_owner: Option<String>,
    },
    /// A dispatcher moves the ticket to another level; the deadline is recomputed from now.
    Reclassify {
        level: Level,
        reason: String,
        case_owner: Option<String>,
    },
    /// 办结 reply.
    Resolve {
        resolution: String,
    },
    /// 回访.
    RecordCallback {
        satisfaction: Satisfaction,
        matter_solved: bool,
        comment: String,
    },
    /// 并单: a duplicate of another ticket.
    Merge {
        into: TicketId,
        reason: String,
    },
    Cancel {
        reason: String,
    },
    /// Closing a resolved ticket by hand.
    Close {
        reason: String,
    },
    AddNote {
        text: String,
    },
    /// The scheduler: a warning threshold came due. Does nothing if the clock moved on since.
    FireWarning {
        clock: ClockKind,
        unit: Option<UnitCode>,
        due_at: DateTime<Utc>,
    },
    /// The scheduler: a deadline came due. Does nothing if the clock moved on since. A resolve breach
    /// escalates one rung from the breach instant (`owner_unit` and `case_owner` as for `Escalate`);
    /// an acknowledge breach re-dispatches to `supervisor`.
    FireBreach {
        clock: ClockKind,
        unit: Option<UnitCode>,
        due_at: DateTime<Utc>,
        owner_unit: Option<UnitCode>,
        case_owner: Option<String>,
        supervisor: Option<UnitCode>,
    },
}

impl Command {
    /// The action's name, as error messages say it.
    pub fn action(&self) -> &'static str {
        match self {
            Command::Dispatch { .. } => "dispatch",
            Command::Acknowledge { .. } => "acknowledge",
            Command::Return { .. } => "return",
            Command::Suspend { .. } => "suspend",
            Command::Resume { .. } => "resume",
            Command::RequestExtension { .. } => "request an extension for",
            Command::DecideExtension { .. } => "decide an extension of",
            Command::Whistle { .. } => "whistle",
            Command::ReportIn { .. } => "report in to",
            Command::Urge { .. } => "urge",
            Command::Supervise { .. } => "supervise",
            Command::Escalate { .. } => "escalate",
            Command::Reclassify { .. } => "reclassify",
            Command::Resolve { .. } => "resolve",
            Command::RecordCallback { .. } => "record a callback for",
            Command::Merge { .. } => "merge",
            Command::Cancel { .. } => "cancel",
            Command::Close { .. } => "close",
            Command::AddNote { .. } => "add a note to",
            Command::FireWarning { .. } => "warn",
            Command::FireBreach { .. } => "breach",
        }
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// A field of the action is malformed.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// The action does not apply in the ticket's current status.
    #[error("cannot {action} a ticket that is {status}")]
    NotAllowed {
        action: &'static str,
        status: Status,
    },
    /// The status allows the action, but something else about the ticket does not.
    #[error("cannot {action} this ticket ({status}): {reason}")]
    Refused {
        action: &'static str,
        status: Status,
        reason: String,
    },
}

impl ActionError {
    /// The ticket's status named in the error, if the error is about the ticket's state.
    pub fn status(&self) -> Option<Status> {
        match self {
            ActionError::Invalid(_) => None,
            ActionError::NotAllowed { status, .. } | ActionError::Refused { status, .. } => {
                Some(*status)
            }
        }
    }
}

/// What intake decided about a new ticket.
#[derive(Debug, Clone)]
pub struct Registration {
    pub id: TicketId,
    pub intake: Intake,
    pub level: Level,
    pub policy_version: i64,
    /// Required when `level` is MAJOR_RISK.
    pub case_owner: Option<String>,
}

/// Registers a ticket: the CREATED event that starts its history, with the level's clock started now.
pub fn register(registration: Registration, ctx: &Context<'_>) -> Result<Event, ActionError> {
    let intake = registration.intake.validated()?;
    let case_owner = case_owner_for(registration.level, registration.case_owner.as_deref())
        .map_err(|reason| ActionError::Refused {
            action: "register",
            status: Status::New,
            reason,
        })?;
    let reckoner = ctx.reckoner();
    Ok(Event {
        at: ctx.now,
        actor: ctx.actor.clone(),
        status_after: Status::New,
        change: Change::Created {
            id: registration.id,
            intake: Box::new(intake),
            level: registration.level,
            policy_version: registration.policy_version,
            resolve: reckoner.start_resolve(registration.level, ctx.now),
            review: reckoner.next_review(registration.level, ctx.now),
            case_owner,
        },
    })
}

/// MAJOR_RISK needs a named case owner; other levels carry none.
fn case_owner_for(level: Level, name: Option<&str>) -> Result<Option<String>, String> {
    if level != Level::MajorRisk {
        return Ok(None);
    }
    let name = optional_text("case_owner", name.unwrap_or(""), MAX_NAME_CHARS)
        .map_err(|e| e.to_string())?;
    if name.is_empty() {
        return Err("MAJOR_RISK needs a named case owner (case_owner)".into());
    }
    Ok(Some(name))
}

fn reason(value: &str) -> Result<String, ActionError> {
    Ok(required_text("reason", value, MAX_TEXT_CHARS)?)
}

fn optional_reason(value: &str) -> Result<String, ActionError> {
    Ok(optional_text("reason", value, MAX_TEXT_CHARS)?)
}

impl Ticket {
    /// Decides an action: the events it records, or why it is refused. The ticket itself is not
    /// changed; apply the events (or reload) to see the result. Scheduler commands whose clock moved
    /// on since their timer was armed yield no events.
    pub fn decide(&self, command: &Command, ctx: &Context<'_>) -> Result<Vec<Change>, ActionError> {
        let action = command.action();
        let status = self.status;
        let not_allowed = || ActionError::NotAllowed { action, status };
        let refused = |reason: String| ActionError::Refused {
            action,
            status,
            reason,
        };
        let reckoner = ctx.reckoner();
        let now = ctx.now;
        let changes = match command {
            Command::Dispatch { unit, reason } => {
                if !matches!(status, Status::New | Status::Returned | Status::Dispatched) {
                    return Err(not_allowed());
                }
                if self.lead_unit.as_ref() == Some(unit) {
                    return Err(refused(format!("it is already dispatched to {unit}")));
                }
                vec![Change::DispatchedTo {
                    unit: unit.clone(),
                    reason: optional_reason(reason)?,
                    acknowledge: reckoner.start_acknowledge(self.level, now),
                }]
            }
            Command::Acknowledge { unit } => {
                if status != Status::Dispatched {
                    return Err(not_allowed());
                }
                self.require_lead(unit).map_err(refused)?;
                vec![Change::Acknowledged { unit: unit.clone() }]
            }
            Command::Return { unit, reason: text } => {
                if !matches!(status, Status::Dispatched | Status::InProgress) {
                    return Err(not_allowed());
                }
                let text = reason(text)?;
                self.require_lead(unit).map_err(refused)?;
                vec![Change::ReturnedByUnit {
                    unit: unit.clone(),
                    reason: text,
                }]
            }
            Command::Suspend { reason: text } => {
                if status != Status::InProgress {
                    return Err(not_allowed());
                }
                vec![Change::SuspendedClock {
                    reason: reason(text)?,
                    resolve: self.resolve.as_ref().map(|r| reckoner.pause(r, now)),
                }]
            }
            Command::Resume { reason } => {
                if status != Status::Suspended {
                    return Err(not_allowed());
                }
                vec![Change::ResumedClock {
                    reason: optional_reason(reason)?,
                    resolve: self.resolve.as_ref().map(|r| reckoner.resume(r, now)),
                }]
            }
            Command::RequestExtension { days, reason: text } => {
                if !matches!(status, Status::InProgress | Status::Suspended) {
                    return Err(not_allowed());
                }
                let text = reason(text)?;
                let max = ctx.policy.max_extension_days;
                if *days == 0 || *days > max {
                    return Err(InvalidField::new(
                        "extra_working_days",
                        format!("{days} must be between 1 and {max}"),
                    )
                    .into());
                }
                let Some(resolve) = &self.resolve else {
                    return Err(refused(format!(
                        "{} has no resolve deadline to extend",
                        self.level
                    )));
                };
                if self.extension_requested {
                    return Err(refused(
                        "an extension was already requested at this level".into(),
                    ));
                }
                if resolve.paused_since.is_none() && now >= resolve.due_at {
                    return Err(refused(format!(
                        "the deadline {} has passed; an extension must be asked for before it",
                        resolve.due_at.to_rfc3339()
                    )));
                }
                vec![Change::ExtensionRequested {
                    days: *days,
                    reason: text,
                }]
            }
            Command::DecideExtension {
                approve,
                reason: text,
            } => {
                let Some(pending) = &self.pending_extension else {
                    return Err(refused("no extension request is pending".into()));
                };
                let days = pending.days;
                match (approve, &self.resolve) {
                    (true, Some(resolve)) => vec![Change::ExtensionApproved {
                        days,
                        reason: optional_reason(text)?,
                        resolve: Some(reckoner.extend(resolve, days)),
                    }],
                    (true, None) => {
                        return Err(refused("there is no resolve deadline to extend".into()));
                    }
                    (false, _) => vec![Change::ExtensionRejected {
                        days,
                        reason: reason(text)?,
                    }],
                }
            }
            Command::Whistle { units, reason } => {
                if status != Status::InProgress {
                    return Err(not_allowed());
                }
                if units.is_empty() {
                    return Err(
                        InvalidField::new("units", "name at least one unit to call in").into(),
                    );
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
                        return Err(
                            InvalidField::new("units", format!("{unit} is named twice")).into()
                        );
                    }
                    if self.lead_unit.as_ref() == Some(unit) {
                        return Err(refused(format!("{unit} is the lead unit")));
                    }
                    if self
                        .co_handlers
                        .iter()
                        .any(|c| &c.unit == unit && c.reported_in_at.is_none())
                    {
                        return Err(refused(format!(
                            "{unit} is already called in and has not reported in"
                        )));
                    }
                }
                vec![Change::WhistleBlown {
                    reason: optional_reason(reason)?,
                    called: units
                        .iter()
                        .map(|unit| CoHandler {
                            unit: unit.clone(),
                            called_at: now,
                            report_in: reckoner.start_report_in(now),
                            reported_in_at: None,
                        })
                        .collect(),
                }]
            }
            Command::ReportIn { unit } => {
                if !status.is_open() {
                    return Err(not_allowed());
                }
                if !self
                    .co_handlers
                    .iter()
                    .any(|c| &c.unit == unit && c.reported_in_at.is_none())
                {
                    return Err(refused(format!(
                        "{unit} is not called in, or already reported in"
                    )));
                }
                vec![Change::ReportedIn { unit: unit.clone() }]
            }
            Command::Urge { reason: text } => {
                if !status.is_open() {
                    return Err(not_allowed());
                }
                vec![Change::Urged {
                    reason: reason(text)?,
                }]
            }
            Command::Supervise { reason: text } => {
                if !status.is_open() {
                    return Err(not_allowed());
                }
                vec![Change::Supervised {
                    reason: reason(text)?,
                }]
            }
            Command::Escalate {
                reason: text,
                owner_unit,
                case_owner,
            } => {
                if !matches!(
                    status,
                    Status::New | Status::Returned | Status::Dispatched | Status::InProgress
                ) {
                    return Err(not_allowed());
                }
                let text = reason(text)?;
                vec![
                    self.escalation(text, now, now, owner_unit, case_owner.as_deref(), ctx)
                        .map_err(refused)?,
                ]
            }
            Command::Reclassify {
                level,
                reason: text,
                case_owner,
            } => {
                if !matches!(
                    status,
                    Status::New | Status::Returned | Status::Dispatched | Status::InProgress
                ) {
                    return Err(not_allowed());
                }
                let text = reason(text)?;
                if *level == self.level {
                    return Err(refused(format!("it is already {level}")));
                }
                vec![Change::Reclassified {
                    from: self.level,
                    to: *level,
                    reason: text,
                    case_owner: case_owner_for(*level, case_owner.as_deref()).map_err(refused)?,
                    resolve: reckoner.start_resolve(*level, now),
                    review: reckoner.next_review(*level, now),
                }]
            }
            Command::Resolve { resolution } => {
                if status != Status::InProgress {
                    return Err(not_allowed());
                }
                vec![Change::ResolvedByUnit {
                    resolution: required_text("resolution", resolution, MAX_TEXT_CHARS)?,
                    callback_due_at: reckoner.callback_due(now),
                }]
            }
            Command::RecordCallback {
                satisfaction,
                matter_solved,
                comment,
            } => {
                if status != Status::Resolved {
                    return Err(not_allowed());
                }
                let mut changes = vec![Change::CallbackRecorded {
                    satisfaction: *satisfaction,
                    matter_solved: *matter_solved,
                    comment: optional_text("comment", comment, MAX_TEXT_CHARS)?,
                }];
                match satisfaction {
                    Satisfaction::Satisfied | Satisfaction::BasicallySatisfied => {
                        changes.push(Change::ClosedTicket {
                            reason: format!("callback: {satisfaction}"),
                        });
                    }
                    Satisfaction::Dissatisfied => changes.push(Change::Reopened {
                        resolve: reckoner.start_resolve(self.level, now),
                        review: reckoner.next_review(self.level, now),
                    }),
                    // The callback window keeps running; the ticket closes when it passes.
                    Satisfaction::NoAnswer => {}
                }
                changes
            }
            Command::Merge { into, reason } => {
                if !status.is_open() {
                    return Err(not_allowed());
                }
                if into == &self.id {
                    return Err(InvalidField::new(
                        "into_id",
                        "a ticket cannot be merged into itself",
                    )
                    .into());
                }
                vec![Change::MergedInto {
                    into: into.clone(),
                    reason: optional_reason(reason)?,
                }]
            }
            Command::Cancel { reason: text } => {
                if !status.is_open() {
                    return Err(not_allowed());
                }
                vec![Change::CancelledBy {
                    reason: reason(text)?,
                }]
            }
            Command::Close { reason: text } => {
                if status != Status::Resolved {
                    return Err(not_allowed());
                }
                vec![Change::ClosedTicket {
                    reason: reason(text)?,
                }]
            }
            Command::AddNote { text } => {
                let text = required_text("text", text, MAX_TEXT_CHARS)?;
                let review = match (self.level, status.is_open()) {
                    (Level::MajorRisk, true) => reckoner.next_review(self.level, now),
                    _ => None,
                };
                vec![Change::NoteAdded { text, review }]
            }
            Command::FireWarning {
                clock,
                unit,
                due_at,
            } => self.fire_warning(*clock, unit.as_ref(), *due_at, now),
            Command::FireBreach {
                clock,
                unit,
                due_at,
                owner_unit,
                case_owner,
                supervisor,
            } => {
                if *due_at > now {
                    return Ok(Vec::new());
                }
                match clock {
                    ClockKind::Resolve => {
                        let running = matches!(
                            status,
                            Status::New
                                | Status::Returned
                                | Status::Dispatched
                                | Status::InProgress
                        );
                        match &self.resolve {
                            Some(r) if running && !r.breached && r.due_at == *due_at => {}
                            _ => return Ok(Vec::new()),
                        }
                        let breach = Change::Breached {
                            clock: ClockKind::Resolve,
                            unit: None,
                            due_at: *due_at,
                        };
                        if self.level.next().is_none() {
                            return Ok(vec![breach]);
                        }
                        let why = format!("resolve deadline {} passed", due_at.to_rfc3339());
                        let escalation = self
                            .escalation(why, *due_at, now, owner_unit, case_owner.as_deref(), ctx)
                            .map_err(refused)?;
                        vec![breach, escalation]
                    }
                    ClockKind::Acknowledge => {
                        match &self.acknowledge {
                            Some(a)
                                if status == Status::Dispatched
                                    && !a.breached
                                    && a.due_at == *due_at => {}
                            _ => return Ok(Vec::new()),
                        }
                        let mut changes = vec![Change::Breached {
                            clock: ClockKind::Acknowledge,
                            unit: self.lead_unit.clone(),
                            due_at: *due_at,
                        }];
                        if let Some(supervisor) = supervisor
                            .as_ref()
                            .filter(|s| self.lead_unit.as_ref() != Some(*s))
                        {
                            changes.push(Change::DispatchedTo {
                                unit: supervisor.clone(),
                                reason: format!(
                                    "{} did not sign for it by {}",
                                    self.lead_unit
                                        .as_ref()
                                        .map_or("the lead unit", UnitCode::as_str),
                                    due_at.to_rfc3339()
                                ),
                                acknowledge: reckoner.start_acknowledge(self.level, *due_at),
                            });
                        }
                        changes
                    }
                    ClockKind::ReportIn => {
                        let called = self.co_handlers.iter().find(|c| {
                            Some(&c.unit) == unit.as_ref()
                                && c.reported_in_at.is_none()
                                && !c.report_in.breached
                                && c.report_in.due_at == *due_at
                        });
                        match called {
                            Some(c) if status.is_open() => vec![Change::Breached {
                                clock: ClockKind::ReportIn,
                                unit: Some(c.unit.clone()),
                                due_at: *due_at,
                            }],
                            _ => return Ok(Vec::new()),
                        }
                    }
                    ClockKind::Review => match &self.review {
                        Some(review)
                            if self.level == Level::MajorRisk
                                && status.is_open()
                                && review.due_at == *due_at =>
                        {
                            let next = reckoner.add(*due_at, review.every);
                            vec![Change::ReviewMissed {
                                due_at: *due_at,
                                next: crate::deadline::ReviewClock {
                                    every: review.every,
                                    due_at: next.value,
                                    fallback_years: next.fallback_years,
                                },
                            }]
                        }
                        _ => return Ok(Vec::new()),
                    },
                    ClockKind::Callback => {
                        if status != Status::Resolved || self.callback_due_at != Some(*due_at) {
                            return Ok(Vec::new());
                        }
                        vec![Change::ClosedTicket {
                            reason: "no callback within the callback window".into(),
                        }]
                    }
                }
            }
        };
        Ok(changes)
    }

    /// Decides and stamps: the events an action records, ready to append.
    pub fn act(&self, command: &Command, ctx: &Context<'_>) -> Result<Vec<Event>, ActionError> {
        Ok(self.handle(command, ctx)?.1)
    }

    /// Acts and applies: the ticket after the action, with the events recorded.
    pub fn handle(
        &self,
        command: &Command,
        ctx: &Context<'_>,
    ) -> Result<(Ticket, Vec<Event>), ActionError> {
        let changes = self.decide(command, ctx)?;
        Ok(self.record(changes, ctx))
    }

    /// What a calendar change means for this ticket: each running clock with a deadline still ahead of
    /// it (resolve, sign-for, report-in) is reckoned afresh from its start under `ctx`'s calendar and
    /// under `previous`; where the two differ (in deadline, warning or the years Monday to Friday was
    /// assumed for), the clock moves to the new reckoning. Comparing two
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
                let moved = (new.due_at, new.warn_at, &new.fallback_years)
                    != (old.due_at, old.warn_at, &old.fallback_years);
                moved.then_some(new)
            },
            |a, _| {
                let (new, old) = (
                    after.recompute_acknowledge(a),
                    before.recompute_acknowledge(a),
                );
                let moved = (new.due_at, new.warn_at, &new.fallback_years)
                    != (old.due_at, old.warn_at, &old.fallback_years);
                moved.then_some(new)
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

    /// Applies decided changes as events at `ctx.now`.
    fn record(&self, changes: Vec<Change>, ctx: &Context<'_>) -> (Ticket, Vec<Event>) {
        let mut next = self.clone();
        let mut events = Vec::with_capacity(changes.len());
        for change in changes {
            let mut event = Event {
                at: ctx.now,
                actor: ctx.actor.clone(),
                change,
                status_after: next.status,
            };
            next.apply(&event);
            event.status_after = next.status;
            events.push(event);
        }
        (next, events)
    }

    fn require_lead(&self, unit: &UnitCode) -> Result<(), String> {
        match &self.lead_unit {
            Some(lead) if lead == unit => Ok(()),
            Some(lead) => Err(format!("{unit} is not the lead unit ({lead} is)")),
            None => Err("it has no lead unit".into()),
        }
    }

    /// One rung up. The new level's clock starts at `start` (the breach instant for the scheduler, now
    /// by hand: a late scheduler gives no extra time).
    fn escalation(
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

    fn fire_warning(
        &self,
        clock: ClockKind,
        unit: Option<&UnitCode>,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<Change> {
        if due_at > now {
            return Vec::new();
        }
        let current = match clock {
            ClockKind::Resolve => self.resolve.as_ref().is_some_and(|r| {
                matches!(
                    self.status,
                    Status::New | Status::Returned | Status::Dispatched | Status::InProgress
                ) && !r.warned
                    && !r.breached
                    && r.warn_at == due_at
            }),
            ClockKind::Acknowledge => self.acknowledge.as_ref().is_some_and(|a| {
                self.status == Status::Dispatched && !a.warned && !a.breached && a.warn_at == due_at
            }),
            ClockKind::ReportIn | ClockKind::Review | ClockKind::Callback => false,
        };
        if !current {
            return Vec::new();
        }
        let unit = match clock {
            ClockKind::Acknowledge => self.lead_unit.clone(),
            _ => unit.cloned(),
        };
        vec![Change::Warning {
            clock,
            unit,
            due_at,
        }]
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.action())
    }
}
