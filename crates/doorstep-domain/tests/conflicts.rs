//! Which events recorded after the version a caller read conflict with its action: the scheduler's
//! alerts never do, a re-timing only for the actions that answer to a clock it moved, anything else
//! always.

mod common;

use common::{World, at, unit};
use doorstep_domain::{
    Actor, Change, ClockKind, Command, Event, Level, ReportInClock, Satisfaction, Status, Ticket,
    TicketId,
};

const LEAD: &str = "lixia/jiefanglu/jiefangqiao/yard-129/workers";
const CALLED: &str = "lixia/jiefanglu/jiefangqiao/property";
const OTHER: &str = "lixia/jiefanglu/jiefangqiao/water";

/// Every action a person can send, one of each kind.
fn person_actions() -> Vec<Command> {
    vec![
        Command::Dispatch {
            unit: unit(OTHER),
            reason: "wrong unit".into(),
        },
        Command::Acknowledge { unit: unit(LEAD) },
        Command::Return {
            unit: unit(LEAD),
            reason: "not ours".into(),
        },
        Command::Suspend {
            reason: "waiting for parts".into(),
        },
        Command::Resume { reason: "".into() },
        Command::RequestExtension {
            days: 2,
            reason: "parts".into(),
        },
        Command::DecideExtension {
            approve: true,
            reason: "".into(),
        },
        Command::Whistle {
            units: vec![unit(OTHER)],
            reason: "".into(),
        },
        Command::ReportIn { unit: unit(CALLED) },
        Command::Urge {
            reason: "hurry".into(),
        },
        Command::Supervise {
            reason: "watch it".into(),
        },
        Command::Escalate {
            reason: "too hard".into(),
            owner_unit: None,
            case_owner: None,
        },
        Command::Reclassify {
            level: Level::Hard,
            reason: "bigger".into(),
            case_owner: None,
        },
        Command::Resolve {
            resolution: "fixed".into(),
        },
        Command::RecordCallback {
            satisfaction: Satisfaction::Satisfied,
            matter_solved: true,
            comment: "".into(),
        },
        Command::Merge {
            into: TicketId::parse("t-2").unwrap(),
            reason: "".into(),
        },
        Command::Cancel {
            reason: "withdrawn".into(),
        },
        Command::Close {
            reason: "done".into(),
        },
        Command::AddNote {
            text: "called the resident".into(),
        },
    ]
}

/// A DIFFICULT ticket dispatched to the workers, who signed for it and called a unit in: it has a
/// resolve and a report-in clock, and had a sign-for clock (kept in `acknowledge`, as a re-timing
/// while it ran would record it).
fn worked_ticket(w: &World) -> Ticket {
    let now = at("2026-12-30T10:00:00+08:00");
    let (t, mut history) = w.register(Level::Difficult, now);
    let t = w.run(
        &t,
        &mut history,
        Command::Dispatch {
            unit: unit(LEAD),
            reason: "".into(),
        },
        now,
    );
    let acknowledge = t.acknowledge.clone();
    let t = w.run(
        &t,
        &mut history,
        Command::Acknowledge { unit: unit(LEAD) },
        now,
    );
    let mut t = w.run(
        &t,
        &mut history,
        Command::Whistle {
            units: vec![unit(CALLED)],
            reason: "".into(),
        },
        now,
    );
    t.acknowledge = acknowledge;
    t
}

fn by(actor: Actor, change: Change) -> Event {
    Event {
        at: at("2026-12-30T12:00:00+08:00"),
        actor,
        change,
        status_after: Status::InProgress,
    }
}

fn scheduler(change: Change) -> Event {
    by(Actor::scheduler(), change)
}

fn retimed(t: &Ticket, resolve: bool, acknowledge: bool, report_in: bool) -> Change {
    Change::Retimed {
        reason: "calendar 2027".into(),
        resolve: resolve.then(|| t.resolve.clone().unwrap()),
        acknowledge: acknowledge.then(|| t.acknowledge.clone().unwrap()),
        report_in: if report_in {
            t.co_handlers
                .iter()
                .map(|c| ReportInClock {
                    unit: c.unit.clone(),
                    clock: c.report_in.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
        policy_version: None,
    }
}

/// The actions among `person_actions` that conflict with `event`, by name.
fn conflicting(event: &Event) -> Vec<&'static str> {
    person_actions()
        .iter()
        .filter(|c| c.conflicts_with(event))
        .map(Command::action)
        .collect()
}

#[test]
fn the_schedulers_alerts_conflict_with_no_action() {
    let w = World::new();
    let t = worked_ticket(&w);
    let resolve = t.resolve.clone().unwrap();
    let warnings = [
        Change::Warning {
            clock: ClockKind::Resolve,
            unit: None,
            due_at: resolve.warn_at,
        },
        Change::Warning {
            clock: ClockKind::Acknowledge,
            unit: Some(unit(LEAD)),
            due_at: t.acknowledge.as_ref().unwrap().warn_at,
        },
        Change::ReviewMissed {
            due_at: resolve.due_at,
            next: doorstep_domain::ReviewClock {
                every: resolve.limit,
                due_at: resolve.due_at,
                fallback_years: Default::default(),
            },
        },
    ];
    for change in warnings {
        let event = scheduler(change);
        assert!(conflicting(&event).is_empty(), "{event:?}");
    }
}

#[test]
fn a_calendar_retiming_conflicts_only_with_the_actions_answering_to_a_clock_it_moved() {
    let w = World::new();
    let t = worked_ticket(&w);
    assert_eq!(
        conflicting(&scheduler(retimed(&t, true, false, false))),
        [
            "suspend",
            "resume",
            "request an extension for",
            "decide an extension of",
            "resolve"
        ]
    );
    assert_eq!(
        conflicting(&scheduler(retimed(&t, false, true, false))),
        ["acknowledge", "return"]
    );
    // Only the unit whose report-in clock moved.
    assert_eq!(
        conflicting(&scheduler(retimed(&t, false, false, true))),
        ["report in to"]
    );
    let other_unit = Command::ReportIn { unit: unit(OTHER) };
    assert!(!other_unit.conflicts_with(&scheduler(retimed(&t, false, false, true))));
    assert_eq!(
        conflicting(&scheduler(retimed(&t, true, true, true))).len(),
        8
    );
}

#[test]
fn a_retiming_under_another_policy_conflicts_with_every_action() {
    let w = World::new();
    let t = worked_ticket(&w);
    let Change::Retimed {
        reason,
        resolve,
        acknowledge,
        report_in,
        ..
    } = retimed(&t, false, false, false)
    else {
        unreachable!()
    };
    let event = scheduler(Change::Retimed {
        reason,
        resolve,
        acknowledge,
        report_in,
        policy_version: Some(2),
    });
    assert_eq!(conflicting(&event).len(), person_actions().len());
}

#[test]
fn breaches_escalations_and_closes_by_the_scheduler_conflict_with_every_action() {
    let w = World::new();
    let t = worked_ticket(&w);
    let resolve = t.resolve.clone().unwrap();
    let changes = [
        Change::Breached {
            clock: ClockKind::Resolve,
            unit: None,
            due_at: resolve.due_at,
        },
        Change::Breached {
            clock: ClockKind::ReportIn,
            unit: Some(unit(CALLED)),
            due_at: t.co_handlers[0].report_in.due_at,
        },
        Change::Escalated {
            from: Level::Difficult,
            to: Level::Hard,
            reason: "resolve deadline passed".into(),
            case_owner: None,
            resolve: Some(resolve.clone()),
            review: None,
            dispatch: None,
        },
        Change::DispatchedTo {
            unit: unit(OTHER),
            reason: "not signed for".into(),
            acknowledge: t.acknowledge.clone().unwrap(),
        },
        Change::ClosedTicket {
            reason: "no callback within the callback window".into(),
        },
    ];
    for change in changes {
        let event = scheduler(change);
        assert_eq!(
            conflicting(&event).len(),
            person_actions().len(),
            "{event:?}"
        );
    }
}

#[test]
fn anything_a_person_recorded_conflicts_with_every_action_even_an_alert() {
    let w = World::new();
    let t = worked_ticket(&w);
    let person = Actor::new("dispatcher-2");
    let changes = [
        Change::Urged {
            reason: "hurry".into(),
        },
        Change::NoteAdded {
            text: "called".into(),
            review: None,
        },
        // Not something a person's action records, but the actor decides, not the kind.
        Change::Warning {
            clock: ClockKind::Resolve,
            unit: None,
            due_at: t.resolve.as_ref().unwrap().warn_at,
        },
        retimed(&t, false, false, false),
    ];
    for change in changes {
        let event = by(person.clone(), change);
        assert_eq!(
            conflicting(&event).len(),
            person_actions().len(),
            "{event:?}"
        );
    }
}
