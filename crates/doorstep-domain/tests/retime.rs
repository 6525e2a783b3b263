//! A calendar change moves the running deadlines it touches, and only those.

mod common;

use common::{World, at, local, unit};
use doorstep_domain::calendar::{Calendar, Notice, SpecialDay};
use doorstep_domain::{Change, Command, Level, Ticket, replay};

/// A 2027 notice (hypothetical dates: the real one is not published yet): New Year's Day and the
/// following Monday off.
fn with_2027(calendar: &Calendar) -> Calendar {
    let mut next = calendar.clone();
    let day = |date: &str| SpecialDay {
        date: date.parse().unwrap(),
        off: true,
        name: "元旦".into(),
        notice: 2027,
    };
    next.put_notice(
        Notice {
            year: 2027,
            source: "国务院办公厅关于2027年部分节假日安排的通知（测试）".into(),
        },
        vec![day("2027-01-01"), day("2027-01-04")],
    )
    .unwrap();
    next
}

fn retimed(world: &World, ticket: &Ticket, previous: &Calendar) -> (Ticket, Vec<Change>) {
    let (next, events) = ticket.retime(
        previous,
        "calendar 2027",
        &world.ctx(at("2026-12-30T15:00:00+08:00")),
    );
    next.check_invariants().unwrap();
    (next, events.into_iter().map(|e| e.change).collect())
}

#[test]
fn a_deadline_reckoned_on_the_fallback_moves_when_the_notice_arrives() {
    let before = World::new();
    assert!(!before.calendar.covers(2027));
    // DIFFICULT: 3 working days after Wednesday 30 December: 31 Dec, then (Monday to Friday assumed)
    // 1 and 4 January.
    let (ticket, mut history) = before.register(Level::Difficult, at("2026-12-30T10:00:00+08:00"));
    let r = ticket.resolve.clone().unwrap();
    assert_eq!(local(r.due_at), "2027-01-05T00:00:00+08:00");
    assert!(r.fallback_years.contains(&2027));

    let mut after = World::new();
    after.calendar = with_2027(&before.calendar);
    let (next, changes) = retimed(&after, &ticket, &before.calendar);
    assert_eq!(changes.len(), 1, "{changes:?}");
    let Change::Retimed {
        resolve: Some(moved),
        acknowledge: None,
        ..
    } = &changes[0]
    else {
        panic!("{changes:?}");
    };
    // Now 31 Dec, 5 and 6 January.
    assert_eq!(local(moved.due_at), "2027-01-07T00:00:00+08:00");
    assert!(
        moved.fallback_years.is_empty(),
        "{:?}",
        moved.fallback_years
    );
    assert!(moved.warn_at > r.warn_at && moved.warn_at < moved.due_at);
    assert_eq!(next.resolve.as_ref(), Some(moved));
    assert_eq!(
        next.timers().iter().map(|t| t.due_at).max(),
        Some(moved.due_at)
    );

    // The fold agrees, and a second pass with the same change moves nothing.
    let (_, events) = ticket.retime(
        &before.calendar,
        "calendar 2027",
        &after.ctx(at("2026-12-30T15:00:00+08:00")),
    );
    history.extend(events);
    assert_eq!(replay(&history).unwrap(), next);
    let (_, again) = retimed(&after, &next, &after.calendar);
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn clocks_the_change_does_not_touch_stay() {
    let before = World::new();
    let mut after = World::new();
    after.calendar = with_2027(&before.calendar);
    // ROUTINE runs on clock hours.
    let (routine, _) = before.register(Level::Routine, at("2026-12-31T10:00:00+08:00"));
    assert!(retimed(&after, &routine, &before.calendar).1.is_empty());
    // A deadline before the changed days.
    let (early, _) = before.register(Level::Difficult, at("2026-12-01T10:00:00+08:00"));
    assert!(retimed(&after, &early, &before.calendar).1.is_empty());
    // A resolved ticket's clock is history.
    let (hard, mut history) = before.register(Level::Hard, at("2026-12-28T10:00:00+08:00"));
    let workers = "lixia/jiefanglu/jiefangqiao/yard-129/workers";
    let hard = before.run(
        &hard,
        &mut history,
        Command::Dispatch {
            unit: unit(workers),
            reason: String::new(),
        },
        at("2026-12-28T10:05:00+08:00"),
    );
    let hard = before.run(
        &hard,
        &mut history,
        Command::Acknowledge {
            unit: unit(workers),
        },
        at("2026-12-28T10:10:00+08:00"),
    );
    let resolved = before.run(
        &hard,
        &mut history,
        Command::Resolve {
            resolution: "修好了".into(),
        },
        at("2026-12-29T10:00:00+08:00"),
    );
    assert!(retimed(&after, &resolved, &before.calendar).1.is_empty());
    // The same ticket still open does move, and a suspended one too, keeping its pause.
    assert_eq!(retimed(&after, &hard, &before.calendar).1.len(), 1);
    let suspended = before.run(
        &hard,
        &mut history,
        Command::Suspend {
            reason: "等待业主配合".into(),
        },
        at("2026-12-29T11:00:00+08:00"),
    );
    let (next, changes) = retimed(&after, &suspended, &before.calendar);
    assert_eq!(changes.len(), 1);
    assert!(next.resolve.as_ref().unwrap().paused_since.is_some());
}

#[test]
fn a_dispatch_sign_for_clock_on_working_days_moves_too() {
    use doorstep_domain::Policy;
    // A policy whose sign-for limit is one working day.
    let policy = Policy::from_toml("acknowledge_within = \"1 working days\"\n").unwrap();
    let before = World::with_policy(policy.clone());
    let mut after = World::with_policy(policy);
    after.calendar = with_2027(&before.calendar);
    let (ticket, mut history) = before.register(Level::Difficult, at("2026-12-31T10:00:00+08:00"));
    let workers = "lixia/jiefanglu/jiefangqiao/yard-129/workers";
    let dispatched = before.run(
        &ticket,
        &mut history,
        Command::Dispatch {
            unit: unit(workers),
            reason: String::new(),
        },
        at("2026-12-31T10:05:00+08:00"),
    );
    let old = dispatched.acknowledge.clone().unwrap();
    assert_eq!(local(old.due_at), "2027-01-02T00:00:00+08:00");
    let (next, changes) = retimed(&after, &dispatched, &before.calendar);
    let Change::Retimed {
        acknowledge: Some(moved),
        ..
    } = &changes[0]
    else {
        panic!("{changes:?}");
    };
    assert_eq!(local(moved.due_at), "2027-01-06T00:00:00+08:00");
    assert_eq!(next.acknowledge.as_ref(), Some(moved));
}

#[test]
fn a_ticket_retimed_on_purpose_takes_the_new_policys_limits() {
    use doorstep_domain::Policy;
    let old = World::new();
    // Monday 2 November 2026: 3 working days → end of Thursday 5 November.
    let (ticket, mut history) = old.register(Level::Difficult, at("2026-11-02T10:00:00+08:00"));
    assert_eq!(
        local(ticket.resolve.as_ref().unwrap().due_at),
        "2026-11-06T00:00:00+08:00"
    );
    let workers = "lixia/jiefanglu/jiefangqiao/yard-129/workers";
    let ticket = old.run(
        &ticket,
        &mut history,
        Command::Dispatch {
            unit: unit(workers),
            reason: String::new(),
        },
        at("2026-11-02T10:05:00+08:00"),
    );
    let newer = World::with_policy(
        Policy::from_toml("acknowledge_within = \"4h\"\n[levels.difficult]\nresolve_within = \"5 working days\"\n")
            .unwrap(),
    );
    let now = at("2026-11-02T11:00:00+08:00");
    let (next, events) = ticket.retime_to_policy(2, "re-timed on purpose", &newer.ctx(now));
    next.check_invariants().unwrap();
    assert_eq!(events.len(), 1);
    let Change::Retimed {
        resolve: Some(resolve),
        acknowledge: Some(acknowledge),
        policy_version: Some(2),
        ..
    } = &events[0].change
    else {
        panic!("{events:?}");
    };
    // The clocks keep their starts and take the new limits.
    assert_eq!(resolve.started_at, at("2026-11-02T10:00:00+08:00"));
    assert_eq!(local(resolve.due_at), "2026-11-10T00:00:00+08:00");
    assert_eq!(local(acknowledge.due_at), "2026-11-02T14:05:00+08:00");
    assert_eq!(next.policy_version, 2);
    history.extend(events);
    assert_eq!(replay(&history).unwrap(), next);
    // Already under it: nothing more.
    assert!(
        next.retime_to_policy(2, "again", &newer.ctx(now))
            .1
            .is_empty()
    );
}
