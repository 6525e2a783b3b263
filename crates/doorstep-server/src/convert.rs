//! Wire ↔ domain, at the edge: every request field is validated here and named in its error; domain
//! values become wire messages here. Nothing else in the server touches generated types' fields.

use chrono::{DateTime, TimeZone, Utc};
use doorstep_domain as d;
use doorstep_proto::v1 as w;
use doorstep_store::StoredEvent;
use prost_types::Timestamp;

use doorstep_engine::access::{CallerView, mask_name, mask_phone};
use doorstep_engine::engine::Explanation;
use doorstep_engine::error::Error;

pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn opt_timestamp(t: Option<DateTime<Utc>>) -> Option<Timestamp> {
    t.map(timestamp)
}

/// An instant from the wire; `None` when unset.
pub fn instant(field: &'static str, t: Option<&Timestamp>) -> Result<Option<DateTime<Utc>>, Error> {
    let Some(t) = t else { return Ok(None) };
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(Error::invalid(
            field,
            format!("nanos {} out of range", t.nanos),
        ));
    }
    Utc.timestamp_opt(t.seconds, t.nanos as u32)
        .single()
        .filter(|t| (1970..=9999).contains(&chrono::Datelike::year(t)))
        .map(Some)
        .ok_or_else(|| {
            Error::invalid(
                field,
                format!("{} seconds is not a usable instant", t.seconds),
            )
        })
}

pub fn ticket_id(field: &'static str, id: &str) -> Result<d::TicketId, Error> {
    Ok(d::TicketId::parse_as(field, id.trim())?)
}

pub fn unit(field: &'static str, code: &str) -> Result<d::UnitCode, Error> {
    Ok(d::UnitCode::parse_as(field, code.trim())?)
}

pub fn node(field: &'static str, code: &str) -> Result<d::NodeCode, Error> {
    Ok(d::NodeCode::parse_as(field, code.trim())?)
}

/// An optional node: empty means none.
pub fn opt_node(field: &'static str, code: &str) -> Result<Option<d::NodeCode>, Error> {
    match code.trim() {
        "" => Ok(None),
        code => node(field, code).map(Some),
    }
}

pub fn level(field: &'static str, value: i32) -> Result<d::Level, Error> {
    match w::Level::try_from(value) {
        Ok(w::Level::Routine) => Ok(d::Level::Routine),
        Ok(w::Level::Difficult) => Ok(d::Level::Difficult),
        Ok(w::Level::Hard) => Ok(d::Level::Hard),
        Ok(w::Level::MajorRisk) => Ok(d::Level::MajorRisk),
        Ok(w::Level::Unspecified) => Err(Error::invalid(field, "is required")),
        Err(_) => Err(Error::invalid(field, format!("{value} is not a level"))),
    }
}

pub fn opt_level(field: &'static str, value: i32) -> Result<Option<d::Level>, Error> {
    match value {
        0 => Ok(None),
        v => level(field, v).map(Some),
    }
}

pub fn wire_level(l: d::Level) -> w::Level {
    match l {
        d::Level::Routine => w::Level::Routine,
        d::Level::Difficult => w::Level::Difficult,
        d::Level::Hard => w::Level::Hard,
        d::Level::MajorRisk => w::Level::MajorRisk,
    }
}

pub fn status(field: &'static str, value: i32) -> Result<d::Status, Error> {
    let s = match w::Status::try_from(value) {
        Ok(w::Status::New) => d::Status::New,
        Ok(w::Status::Returned) => d::Status::Returned,
        Ok(w::Status::Dispatched) => d::Status::Dispatched,
        Ok(w::Status::InProgress) => d::Status::InProgress,
        Ok(w::Status::Suspended) => d::Status::Suspended,
        Ok(w::Status::Resolved) => d::Status::Resolved,
        Ok(w::Status::Closed) => d::Status::Closed,
        Ok(w::Status::Merged) => d::Status::Merged,
        Ok(w::Status::Cancelled) => d::Status::Cancelled,
        Ok(w::Status::Unspecified) | Err(_) => {
            return Err(Error::invalid(field, format!("{value} is not a status")));
        }
    };
    Ok(s)
}

pub fn wire_status(s: d::Status) -> w::Status {
    match s {
        d::Status::New => w::Status::New,
        d::Status::Returned => w::Status::Returned,
        d::Status::Dispatched => w::Status::Dispatched,
        d::Status::InProgress => w::Status::InProgress,
        d::Status::Suspended => w::Status::Suspended,
        d::Status::Resolved => w::Status::Resolved,
        d::Status::Closed => w::Status::Closed,
        d::Status::Merged => w::Status::Merged,
        d::Status::Cancelled => w::Status::Cancelled,
    }
}

pub fn channel(field: &'static str, value: i32) -> Result<d::Channel, Error> {
    let c = match w::Channel::try_from(value) {
        Ok(w::Channel::Hotline12345) => d::Channel::Hotline12345,
        Ok(w::Channel::Web) => d::Channel::Web,
        Ok(w::Channel::MobileApp) => d::Channel::MobileApp,
        Ok(w::Channel::Wechat) => d::Channel::Wechat,
        Ok(w::Channel::WalkIn) => d::Channel::WalkIn,
        Ok(w::Channel::GridPatrol) => d::Channel::GridPatrol,
        Ok(w::Channel::Other) => d::Channel::Other,
        Ok(w::Channel::Unspecified) => return Err(Error::invalid(field, "is required")),
        Err(_) => {
            return Err(Error::invalid(field, format!("{value} is not a channel")));
        }
    };
    Ok(c)
}

fn wire_channel(c: d::Channel) -> w::Channel {
    match c {
        d::Channel::Hotline12345 => w::Channel::Hotline12345,
        d::Channel::Web => w::Channel::Web,
        d::Channel::MobileApp => w::Channel::MobileApp,
        d::Channel::Wechat => w::Channel::Wechat,
        d::Channel::WalkIn => w::Channel::WalkIn,
        d::Channel::GridPatrol => w::Channel::GridPatrol,
        d::Channel::Other => w::Channel::Other,
    }
}

pub fn satisfaction(field: &'static str, value: i32) -> Result<d::Satisfaction, Error> {
    match w::Satisfaction::try_from(value) {
        Ok(w::Satisfaction::Satisfied) => Ok(d::Satisfaction::Satisfied),
        Ok(w::Satisfaction::BasicallySatisfied) => Ok(d::Satisfaction::BasicallySatisfied),
        Ok(w::Satisfaction::Dissatisfied) => Ok(d::Satisfaction::Dissatisfied),
        Ok(w::Satisfaction::NoAnswer) => Ok(d::Satisfaction::NoAnswer),
        Ok(w::Satisfaction::Unspecified) => Err(Error::invalid(field, "is required")),
        Err(_) => Err(Error::invalid(
            field,
            format!("{value} is not a satisfaction"),
        )),
    }
}

fn wire_satisfaction(s: d::Satisfaction) -> w::Satisfaction {
    match s {
        d::Satisfaction::Satisfied => w::Satisfaction::Satisfied,
        d::Satisfaction::BasicallySatisfied => w::Satisfaction::BasicallySatisfied,
        d::Satisfaction::Dissatisfied => w::Satisfaction::Dissatisfied,
        d::Satisfaction::NoAnswer => w::Satisfaction::NoAnswer,
    }
}

pub fn wire_clock(c: d::ClockKind) -> w::Clock {
    match c {
        d::ClockKind::Acknowledge => w::Clock::Acknowledge,
        d::ClockKind::Resolve => w::Clock::Resolve,
        d::ClockKind::Review => w::Clock::Review,
        d::ClockKind::ReportIn => w::Clock::ReportIn,
        d::ClockKind::Callback => w::Clock::Callback,
    }
}

/// Intake's request, parsed.
pub fn intake(req: w::CreateTicketRequest) -> Result<(d::Intake, Option<d::Level>), Error> {
    let source = channel("source", req.source)?;
    if req.external_ref.trim().is_empty() {
        return Err(Error::invalid("external_ref", "is required"));
    }
    let category = d::Category::parse_as("category", req.category.trim())?;
    let node = node("node", &req.node)?;
    let caller = req.caller.unwrap_or_default();
    let intake = d::Intake {
        source,
        external_ref: req.external_ref,
        caller: d::Caller {
            name: caller.name,
            phone: caller.phone,
            confidential: caller.confidential,
        },
        category,
        content: req.content,
        address: req.address,
        node,
        occurred_at: instant("occurred_at", req.occurred_at.as_ref())?,
        attachment_urls: req.attachment_urls,
    };
    Ok((intake, opt_level("level_hint", req.level_hint)?))
}

/// A ticket with its caller as `view` allows (see `doorstep_engine::access::caller_view`); its content
/// and address as the engine redacted them for that view (`Engine::redacted`).
pub fn ticket(t: &d::Ticket, now: DateTime<Utc>, view: CallerView) -> w::Ticket {
    let caller = &t.intake.caller;
    let (name, phone) = match view {
        CallerView::Full => (caller.name.clone(), caller.phone.clone()),
        CallerView::Masked => (mask_name(&caller.name), mask_phone(&caller.phone)),
        CallerView::Hidden => (String::new(), String::new()),
    };
    let running = matches!(
        t.status,
        d::Status::New | d::Status::Returned | d::Status::Dispatched | d::Status::InProgress
    );
    w::Ticket {
        id: t.id.to_string(),
        source: wire_channel(t.intake.source) as i32,
        external_ref: t.intake.external_ref.clone(),
        caller: Some(w::Caller {
            name,
            phone,
            confidential: caller.confidential,
        }),
        category: t.intake.category.to_string(),
        content: t.intake.content.clone(),
        address: t.intake.address.clone(),
        node: t.intake.node.to_string(),
        level: wire_level(t.level) as i32,
        status: wire_status(t.status) as i32,
        lead_unit: t
            .lead_unit
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        co_handlers: t
            .co_handlers
            .iter()
            .map(|c| w::CoHandler {
                unit: c.unit.to_string(),
                called_at: Some(timestamp(c.called_at)),
                report_in_due_at: Some(timestamp(c.report_in.due_at)),
                reported_in_at: opt_timestamp(c.reported_in_at),
            })
            .collect(),
        case_owner: t.case_owner.clone().unwrap_or_default(),
        occurred_at: opt_timestamp(t.intake.occurred_at),
        created_at: Some(timestamp(t.created_at)),
        updated_at: Some(timestamp(t.updated_at)),
        acknowledge_due_at: t.acknowledge.as_ref().map(|a| timestamp(a.due_at)),
        resolve_due_at: opt_timestamp(t.resolve_due_at()),
        warn_at: t
            .resolve
            .as_ref()
            .filter(|_| running)
            .map(|r| timestamp(r.warn_at)),
        overdue: t.is_overdue(now),
        escalations: t.escalations as i32,
        extensions: t.extensions as i32,
        satisfaction: t.satisfaction.map_or(0, |s| wire_satisfaction(s) as i32),
        merged_into: t
            .merged_into
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        attachment_urls: t.intake.attachment_urls.clone(),
        policy_version: t.policy_version,
        version: t.version,
        breached: t.is_breached(),
    }
}

/// An event as consoles and exports see it (its free text already as the engine redacted it for the
/// principal).
pub fn event(e: &StoredEvent) -> w::Event {
    let mut out = w::Event {
        seq: e.seq,
        ticket_id: e.ticket_id.to_string(),
        at: Some(timestamp(e.event.at)),
        actor: e.event.actor.to_string(),
        status_after: wire_status(e.event.status_after) as i32,
        ..Default::default()
    };
    use d::Change as C;
    use w::EventKind as K;
    let kind = match &e.event.change {
        C::Created { level, .. } => {
            out.level_to = wire_level(*level) as i32;
            K::Created
        }
        C::DispatchedTo {
            unit,
            reason,
            acknowledge,
        } => {
            out.unit = unit.to_string();
            out.reason = reason.clone();
            out.clock = w::Clock::Acknowledge as i32;
            out.due_at = Some(timestamp(acknowledge.due_at));
            K::DispatchedTo
        }
        C::Acknowledged { unit } => {
            out.unit = unit.to_string();
            K::Acknowledged
        }
        C::ReturnedByUnit { unit, reason } => {
            out.unit = unit.to_string();
            out.reason = reason.clone();
            K::ReturnedByUnit
        }
        C::SuspendedClock { reason, .. } => {
            out.reason = reason.clone();
            K::SuspendedClock
        }
        C::ResumedClock { reason, resolve } => {
            out.reason = reason.clone();
            resolve_due(&mut out, resolve.as_ref());
            K::ResumedClock
        }
        C::ExtensionRequested { days, reason } => {
            out.reason = reason.clone();
            out.text = format!("{days} working days");
            K::ExtensionRequested
        }
        C::ExtensionApproved {
            days,
            reason,
            resolve,
        } => {
            out.reason = reason.clone();
            out.text = format!("{days} working days");
            resolve_due(&mut out, resolve.as_ref());
            K::ExtensionApproved
        }
        C::ExtensionRejected { days, reason } => {
            out.reason = reason.clone();
            out.text = format!("{days} working days");
            K::ExtensionRejected
        }
        C::WhistleBlown { reason, called } => {
            out.reason = reason.clone();
            out.text = called
                .iter()
                .map(|c| c.unit.as_str())
                .collect::<Vec<_>>()
                .join(",");
            out.clock = w::Clock::ReportIn as i32;
            out.due_at = called.first().map(|c| timestamp(c.report_in.due_at));
            K::WhistleBlown
        }
        C::ReportedIn { unit } => {
            out.unit = unit.to_string();
            K::ReportedIn
        }
        C::Urged { reason } => {
            out.reason = reason.clone();
            K::Urged
        }
        C::Supervised { reason } => {
            out.reason = reason.clone();
            K::Supervised
        }
        C::Warning {
            clock,
            unit,
            due_at,
        } => {
            out.clock = wire_clock(*clock) as i32;
            out.unit = unit.as_ref().map(ToString::to_string).unwrap_or_default();
            out.due_at = Some(timestamp(*due_at));
            K::Warning
        }
        C::Breached {
            clock,
            unit,
            due_at,
        } => {
            out.clock = wire_clock(*clock) as i32;
            out.unit = unit.as_ref().map(ToString::to_string).unwrap_or_default();
            out.due_at = Some(timestamp(*due_at));
            K::Breached
        }
        C::Escalated {
            from,
            to,
            reason,
            resolve,
            dispatch,
            ..
        } => {
            out.level_from = wire_level(*from) as i32;
            out.level_to = wire_level(*to) as i32;
            out.reason = reason.clone();
            out.unit = dispatch
                .as_ref()
                .map(|d| d.unit.to_string())
                .unwrap_or_default();
            resolve_due(&mut out, resolve.as_ref());
            K::Escalated
        }
        C::Reclassified {
            from,
            to,
            reason,
            resolve,
            ..
        } => {
            out.level_from = wire_level(*from) as i32;
            out.level_to = wire_level(*to) as i32;
            out.reason = reason.clone();
            resolve_due(&mut out, resolve.as_ref());
            K::Reclassified
        }
        C::ResolvedByUnit { resolution, .. } => {
            out.text = resolution.clone();
            K::ResolvedByUnit
        }
        C::CallbackRecorded {
            satisfaction,
            matter_solved,
            comment,
        } => {
            out.satisfaction = wire_satisfaction(*satisfaction) as i32;
            out.text = comment.clone();
            out.reason = if *matter_solved {
                "matter solved"
            } else {
                "matter not solved"
            }
            .into();
            K::CallbackRecorded
        }
        C::Reopened { resolve, .. } => {
            resolve_due(&mut out, resolve.as_ref());
            K::Reopened
        }
        C::MergedInto { into, reason } => {
            out.text = into.to_string();
            out.reason = reason.clone();
            K::MergedInto
        }
        C::CancelledBy { reason } => {
            out.reason = reason.clone();
            K::CancelledBy
        }
        C::ClosedTicket { reason } => {
            out.reason = reason.clone();
            K::ClosedTicket
        }
        C::NoteAdded { text, .. } => {
            out.text = text.clone();
            K::NoteAdded
        }
        C::ReviewMissed { due_at, .. } => {
            out.clock = w::Clock::Review as i32;
            out.due_at = Some(timestamp(*due_at));
            K::ReviewMissed
        }
        C::Retimed {
            reason, resolve, ..
        } => {
            out.reason = reason.clone();
            resolve_due(&mut out, resolve.as_ref());
            K::Retimed
        }
    };
    out.kind = kind as i32;
    out
}

fn resolve_due(out: &mut w::Event, resolve: Option<&d::ResolveClock>) {
    if let Some(r) = resolve {
        out.clock = w::Clock::Resolve as i32;
        out.due_at = Some(timestamp(r.due_at));
    }
}

pub fn explanation(e: &Explanation) -> w::DeadlineExplanation {
    w::DeadlineExplanation {
        clock: wire_clock(e.clock) as i32,
        due_at: Some(timestamp(e.due_at)),
        started_at: Some(timestamp(e.started_at)),
        rule: e.rule.clone(),
        paused_seconds: e.paused_seconds,
        extensions: e.extensions as i32,
        calendar_fallback: e.calendar_fallback,
    }
}

/// A page token: the store's cursor, opaque to clients.
pub fn page_token(cursor: Option<i64>) -> String {
    cursor.map(|c| format!("c{c}")).unwrap_or_default()
}

pub fn parse_page_token(token: &str) -> Result<Option<i64>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .strip_prefix('c')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .map(Some)
        .ok_or_else(|| Error::invalid("page_token", "is not a token this server issued"))
}

pub fn node_kind(k: d::NodeKind) -> w::NodeKind {
    match k {
        d::NodeKind::District => w::NodeKind::District,
        d::NodeKind::StreetOffice => w::NodeKind::StreetOffice,
        d::NodeKind::Community => w::NodeKind::Community,
        d::NodeKind::Compound => w::NodeKind::Compound,
        d::NodeKind::Grid => w::NodeKind::Grid,
        d::NodeKind::Building => w::NodeKind::Building,
    }
}

pub fn wire_node(n: &d::Node) -> w::Node {
    w::Node {
        code: n.code.to_string(),
        name: n.name.clone(),
        kind: node_kind(n.kind) as i32,
        parent: n
            .parent
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        board: Some(w::ResponsibilityBoard {
            people: n
                .board
                .iter()
                .map(|p| w::Person {
                    name: p.name.clone(),
                    role: p.role.clone(),
                    phone: p.phone.clone(),
                })
                .collect(),
        }),
    }
}

pub fn wire_unit(u: &d::Unit) -> w::Unit {
    w::Unit {
        code: u.code.to_string(),
        name: u.name.clone(),
        node: u.node.to_string(),
        department: u.department,
        supervisor: u
            .supervisor
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

pub fn wire_catalogue(e: &d::CatalogueEntry) -> w::CatalogueEntry {
    w::CatalogueEntry {
        category: e.category.to_string(),
        name: e.name.clone(),
        default_level: wire_level(e.default_level) as i32,
        lead_unit: e
            .lead_unit
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        node: e.node.as_ref().map(ToString::to_string).unwrap_or_default(),
    }
}

/// A calendar year from the wire: the notice and its days, each date within the year or next to it.
pub fn calendar_year(
    y: w::CalendarYear,
) -> Result<(d::calendar::Notice, Vec<d::calendar::SpecialDay>), Error> {
    if !(1900..=9999).contains(&y.year) {
        return Err(Error::invalid(
            "year",
            format!("{} is out of range", y.year),
        ));
    }
    let source = y.source.trim().to_owned();
    if source.is_empty() {
        return Err(Error::invalid(
            "source",
            "name the notice these days come from",
        ));
    }
    if y.days.len() > 366 {
        return Err(Error::invalid(
            "days",
            format!("{} entries, at most 366", y.days.len()),
        ));
    }
    let mut days = Vec::with_capacity(y.days.len());
    for day in y.days {
        let date =
            chrono::NaiveDate::parse_from_str(day.date.trim(), "%Y-%m-%d").map_err(|_| {
                Error::invalid(
                    "days.date",
                    format!("{:?} is not a date (YYYY-MM-DD)", day.date),
                )
            })?;
        let name = d::ids::required_text("days.name", &day.name, 100)?;
        days.push(d::calendar::SpecialDay {
            date,
            off: day.off,
            name,
            notice: y.year,
        });
    }
    Ok((
        d::calendar::Notice {
            year: y.year,
            source,
        },
        days,
    ))
}

pub fn wire_calendar_year(
    notice: &d::calendar::Notice,
    days: &[d::calendar::SpecialDay],
) -> w::CalendarYear {
    w::CalendarYear {
        year: notice.year,
        source: notice.source.clone(),
        days: days
            .iter()
            .map(|day| w::CalendarDay {
                date: day.date.format("%Y-%m-%d").to_string(),
                off: day.off,
                name: day.name.clone(),
            })
            .collect(),
    }
}
