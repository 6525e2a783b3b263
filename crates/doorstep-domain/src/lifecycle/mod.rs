//! The lifecycle as a state machine: every action of docs/LADDER.md validates against the ticket's
//! current state and yields events, or a typed error that names the state.
//!
//! [`Ticket::decide`] hands each command to the rule for it, grouped by subject:
//! - `work`: the main path, from dispatch through sign-for, whistle and report-in to resolution,
//!   callback and close;
//! - `side_paths`: everything off that path: the clock stopped and extended, the ladder climbed or
//!   changed by hand, urging, supervision, notes, merge and cancel;
//! - `timers`: what a fired warning or deadline does;
//! - `retime`: running clocks moved by a calendar change or a newer policy;
//! - `conflicts`: which events recorded since a caller read the ticket conflict with its action.

mod conflicts;
mod retime;
mod side_paths;
mod timers;
mod work;

use std::fmt;

use chrono::{DateTime, Utc};
use doorstep_calendar::Calendar;

use crate::deadline::Reckoner;
use crate::event::{Change, Event};
use crate::ids::{
    Actor, InvalidField, MAX_TEXT_CHARS, TicketId, UnitCode, optional_text, required_text,
};
use crate::intake::Intake;
use crate::ladder::{ClockKind, Level, Satisfaction, Status};
use crate::policy::Policy;
use crate::ticket::Ticket;

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

/// One decision under way: what a refusal names (the action and the ticket's status), and the context
/// the rules read.
struct Decision<'c, 'a> {
    action: &'static str,
    status: Status,
    now: DateTime<Utc>,
    reckoner: Reckoner<'a>,
    ctx: &'c Context<'a>,
}

impl Decision<'_, '_> {
    /// The action does not apply in the ticket's status.
    fn not_allowed(&self) -> ActionError {
        ActionError::NotAllowed {
            action: self.action,
            status: self.status,
        }
    }

    /// The status allows the action, but `reason` does not.
    fn refused(&self, reason: String) -> ActionError {
        ActionError::Refused {
            action: self.action,
            status: self.status,
            reason,
        }
    }
}

impl Ticket {
    /// Decides an action: the events it records, or why it is refused. The ticket itself is not
    /// changed; apply the events (or reload) to see the result. Scheduler commands whose clock moved
    /// on since their timer was armed yield no events.
    pub fn decide(&self, command: &Command, ctx: &Context<'_>) -> Result<Vec<Change>, ActionError> {
        let d = &Decision {
            action: command.action(),
            status: self.status,
            now: ctx.now,
            reckoner: ctx.reckoner(),
            ctx,
        };
        match command {
            Command::Dispatch { unit, reason } => self.dispatch(unit, reason, d),
            Command::Acknowledge { unit } => self.sign_for(unit, d),
            Command::Return { unit, reason } => self.return_by_unit(unit, reason, d),
            Command::Whistle { units, reason } => self.whistle(units, reason, d),
            Command::ReportIn { unit } => self.report_in(unit, d),
            Command::Resolve { resolution } => self.resolve_by_unit(resolution, d),
            Command::RecordCallback {
                satisfaction,
                matter_solved,
                comment,
            } => self.record_callback(*satisfaction, *matter_solved, comment, d),
            Command::Close { reason } => self.close(reason, d),
            Command::Suspend { reason } => self.suspend(reason, d),
            Command::Resume { reason } => self.resume(reason, d),
            Command::RequestExtension { days, reason } => self.request_extension(*days, reason, d),
            Command::DecideExtension { approve, reason } => {
                self.decide_extension(*approve, reason, d)
            }
            Command::Escalate {
                reason,
                owner_unit,
                case_owner,
            } => self.escalate(reason, owner_unit, case_owner.as_deref(), d),
            Command::Reclassify {
                level,
                reason,
                case_owner,
            } => self.reclassify(*level, reason, case_owner.as_deref(), d),
            Command::Urge { reason } => self.urge(reason, d),
            Command::Supervise { reason } => self.supervise(reason, d),
            Command::AddNote { text } => self.add_note(text, d),
            Command::Merge { into, reason } => self.merge(into, reason, d),
            Command::Cancel { reason } => self.cancel(reason, d),
            Command::FireWarning {
                clock,
                unit,
                due_at,
            } => Ok(self.fire_warning(*clock, unit.as_ref(), *due_at, d.now)),
            Command::FireBreach {
                clock,
                unit,
                due_at,
                owner_unit,
                case_owner,
                supervisor,
            } => self.fire_breach(
                *clock,
                unit.as_ref(),
                *due_at,
                owner_unit,
                case_owner.as_deref(),
                supervisor.as_ref(),
                d,
            ),
        }
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
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.action())
    }
}
