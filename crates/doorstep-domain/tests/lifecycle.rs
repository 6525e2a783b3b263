//! The lifecycle of docs/LADDER.md, action by action, with the deadlines each one sets.

mod common;

use common::{World, at, local, unit};
use doorstep_domain::{
    ActionError, Change, ClockKind, Command, Level, Policy, Satisfaction, Status, Threshold,
    TicketId, replay,
};

fn dispatch(code: &str) -> Command {
    Command::Dispatch {
        unit: unit(code),
        reason: String::new(),
    }
}

fn ack(code: &str) -> Command {
    Command::Acknowledge { unit: unit(code) }
}

#[test]
fn a_routine_ticket_from_intake_to_close() {
    let w = World::new();
    let t0 = at("2026-03-02T10:00:00+08:00");
    let (t, mut h) = w.register(Level::Routine, t0);
    assert_eq!(t.status, Status::New);
    let r = t.resolve.clone().unwrap();
    assert_eq!(local(r.due_at), "2026-03-03T10:00:00+08:00");
    assert_eq!(
        local(r.warn_at),
        "2026-03-03T04:00:00+08:00",
        "75% of 24 clock hours"
    );

    let t = w.run(
        &t,
        &mut h,
        dispatch("yard-129/workers"),
        at("2026-03-02T10:05:00+08:00"),
    );
    assert_eq!(t.status, Status::Dispatched);
    assert_eq!(
        local(t.acknowledge.as_ref().unwrap().due_at),
        "2026-03-02T12:05:00+08:00"
    );

    let err = t.decide(&ack("dept/greening"), &w.ctx(t0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot acknowledge this ticket (DISPATCHED): dept/greening is not the lead unit (yard-129/workers is)"
    );
    let t = w.run(
        &t,
        &mut h,
        ack("yard-129/workers"),
        at("2026-03-02T10:30:00+08:00"),
    );
    assert_eq!(t.status, Status::InProgress);
    assert!(t.acknowledge.is_none());

    let t = w.run(
        &t,
        &mut h,
        Command::Resolve {
            resolution: "更换了漏水管段".into(),
        },
        at("2026-03-02T16:00:00+08:00"),
    );
    assert_eq!(t.status, Status::Resolved);
    assert_eq!(
        local(t.callback_due_at.unwrap()),
        "2026-03-06T00:00:00+08:00",
        "3 working days after Monday end Thursday 24:00"
    );
    assert_eq!(t.resolve_due_at(), None);

    let t = w.run(
        &t,
        &mut h,
        Command::RecordCallback {
            satisfaction: Satisfaction::Satisfied,
            matter_solved: true,
            comment: String::new(),
        },
        at("2026-03-03T09:00:00+08:00"),
    );
    assert_eq!(t.status, Status::Closed);
    assert!(t.timers().is_empty());
    let kinds: Vec<&str> = h.iter().map(|e| e.change.kind()).collect();
    assert_eq!(
        kinds,
        [
            "CREATED",
            "DISPATCHED_TO",
            "ACKNOWLEDGED",
            "RESOLVED_BY_UNIT",
            "CALLBACK_RECORDED",
            "CLOSED_TICKET"
        ]
    );
    assert_eq!(t.version, h.len() as i64);
    assert_eq!(replay(&h).unwrap(), t);
}

#[test]
fn illegal_actions_name_the_current_status() {
    let w = World::new();
    let now = at("2026-03-02T10:00:00+08:00");
    let (t, _) = w.register(Level::Routine, now);
    let refuse = |c: Command| t.decide(&c, &w.ctx(now)).unwrap_err();
    let err = refuse(Command::Resolve {
        resolution: "done".into(),
    });
    assert_eq!(
        err,
        ActionError::NotAllowed {
            action: "resolve",
            status: Status::New
        }
    );
    assert_eq!(err.to_string(), "cannot resolve a ticket that is NEW");
    assert_eq!(refuse(ack("a")).status(), Some(Status::New));
    assert_eq!(
        refuse(Command::Close { reason: "x".into() }).to_string(),
        "cannot close a ticket that is NEW"
    );
    assert_eq!(
        refuse(Command::Cancel {
            reason: "  ".into()
        })
        .to_string(),
        "reason: is required"
    );
    assert_eq!(
        refuse(Command::Merge {
            into: TicketId::parse("t-1").unwrap(),
            reason: String::new()
        })
        .to_string(),
        "into_id: a ticket cannot be merged into itself"
    );
    assert_eq!(
        refuse(Command::Reclassify {
            level: Level::MajorRisk,
            reason: "gas smell in the stairwell".into(),
            case_owner: None
        })
        .to_string(),
        "cannot reclassify this ticket (NEW): MAJOR_RISK needs a named case owner (case_owner)"
    );
}

#[test]
fn suspending_a_clock_hour_ticket_adds_the_paused_time() {
    let w = World::new();
    let (t, mut h) = w.register(Level::Routine, at("2026-03-02T10:00:00+08:00"));
    let t = w.run(&t, &mut h, dispatch("u"), at("2026-03-02T10:00:00+08:00"));
    let t = w.run(&t, &mut h, ack("u"), at("2026-03-02T10:10:00+08:00"));
    let t = w.run(
        &t,
        &mut h,
        Command::Suspend {
            reason: "resident away until evening".into(),
        },
        at("2026-03-02T12:00:00+08:00"),
    );
    assert_eq!(
        t.resolve_due_at(),
        None,
        "no deadline shown while the clock stands still"
    );
    assert!(t.timers().is_empty());
    let t = w.run(
        &t,
        &mut h,
        Command::Resume {
            reason: String::new(),
        },
        at("2026-03-02T17:30:00+08:00"),
    );
    let r = t.resolve.as_ref().unwrap();
    assert_eq!(
        local(r.due_at),
        "2026-03-03T15:30:00+08:00",
        "24h + 5h30m paused"
    );
    assert_eq!(r.paused_seconds, 5 * 3600 + 1800);
    assert_eq!(
        local(r.warn_at),
        "2026-03-03T09:30:00+08:00",
        "75% of the 24h actually available"
    );
    assert_eq!(replay(&h).unwrap(), t);
}

#[test]
fn a_weekend_pause_moves_a_working_day_deadline_by_its_working_hours() {
    // docs/LADDER.md: paused Friday 17:00 → Monday 09:00 over a weekend: 16 hours of working-day time
    // move the deadline 16 working-day hours later.
    let w = World::new();
    let (t, mut h) = w.register(Level::Difficult, at("2026-03-04T11:00:00+08:00")); // Wednesday
    let due = t.resolve.as_ref().unwrap().due_at;
    assert_eq!(
        local(due),
        "2026-03-10T00:00:00+08:00",
        "Thu, Fri, Mon: ends Monday 24:00"
    );
    let t = w.run(
        &t,
        &mut h,
        dispatch("community/jfq"),
        at("2026-03-04T11:00:00+08:00"),
    );
    let t = w.run(
        &t,
        &mut h,
        ack("community/jfq"),
        at("2026-03-04T12:00:00+08:00"),
    );
    let t = w.run(
        &t,
        &mut h,
        Command::Suspend {
            reason: "waiting for the resident".into(),
        },
        at("2026-03-06T17:00:00+08:00"),
    );
    let t = w.run(
        &t,
        &mut h,
        Command::Resume {
            reason: String::new(),
        },
        at("2026-03-09T09:00:00+08:00"),
    );
    let r = t.resolve.as_ref().unwrap();
    assert_eq!(r.paused_seconds, 16 * 3600);
    assert_eq!(local(r.due_at), "2026-03-10T16:00:00+08:00");
    assert!(
        r.rule().contains("57600s of working-day time suspended"),
        "{}",
        r.rule()
    );
}

#[test]
fn an_approved_extension_counts_working_days_from_the_deadline() {
    let w = World::new();
    // A Friday before the National Day week: the deadline lands in the holiday arithmetic.
    let (t, mut h) = w.register(Level::Difficult, at("2026-09-25T09:00:00+08:00"));
    assert_eq!(
        local(t.resolve.as_ref().unwrap().due_at),
        "2026-10-01T00:00:00+08:00",
        "Mon 28, Tue 29, Wed 30 after the Mid-Autumn Friday"
    );
    let t = w.run(&t, &mut h, dispatch("c"), at("2026-09-25T09:00:00+08:00"));
    let t = w.run(&t, &mut h, ack("c"), at("2026-09-25T09:30:00+08:00"));
    let t = w.run(
        &t,
        &mut h,
        Command::RequestExtension {
            days: 2,
            reason: "parts on order".into(),
        },
        at("2026-09-28T10:00:00+08:00"),
    );
    assert_eq!(
        local(t.resolve.as_ref().unwrap().due_at),
        "2026-10-01T00:00:00+08:00",
        "nothing moves before approval"
    );
    let err = t
        .decide(
            &Command::RequestExtension {
                days: 1,
                reason: "again".into(),
            },
            &w.ctx(at("2026-09-28T11:00:00+08:00")),
        )
        .unwrap_err();
    assert!(err.to_string().contains("already requested"), "{err}");
    let t = w.run(
        &t,
        &mut h,
        Command::DecideExtension {
            approve: true,
            reason: String::new(),
        },
        at("2026-09-28T15:00:00+08:00"),
    );
    // Deadline day is Wed 30; Oct 1-7 are off, Oct 8 and 9 are the two working days.
    assert_eq!(
        local(t.resolve.as_ref().unwrap().due_at),
        "2026-10-10T00:00:00+08:00"
    );
    assert_eq!(t.extensions, 1);
    assert_eq!(replay(&h).unwrap(), t);
}

#[test]
fn the_scheduler_escalates_from_the_breach_instant_exactly_once() {
    let w = World::new();
    let (t, mut h) = w.register(Level::Routine, at("2026-03-02T10:00:00+08:00"));
    let t = w.run(
        &t,
        &mut h,
        dispatch("yard/workers"),
        at("2026-03-02T10:00:00+08:00"),
    );
    let t = w.run(
        &t,
        &mut h,
        ack("yard/workers"),
        at("2026-03-02T10:05:00+08:00"),
    );
    let timers = t.timers();
    let breach = timers
        .iter()
        .find(|x| x.clock == ClockKind::Resolve && x.threshold == Threshold::Breach)
        .unwrap()
        .clone();
    let fire = Command::FireBreach {
        clock: ClockKind::Resolve,
        unit: None,
        due_at: breach.due_at,
        owner_unit: Some(unit("community/jfq")),
        case_owner: None,
        supervisor: None,
    };
    // Too early: nothing.
    assert!(
        t.decide(&fire, &w.ctx(at("2026-03-03T09:59:59+08:00")))
            .unwrap()
            .is_empty()
    );
    // Three hours late: the new level's clock still runs from the breach instant.
    let late = at("2026-03-03T13:00:00+08:00");
    let t = w.run(&t, &mut h, fire.clone(), late);
    assert_eq!(t.level, Level::Difficult);
    assert_eq!(t.escalations, 1);
    let r = t.resolve.as_ref().unwrap();
    assert_eq!(local(r.started_at), "2026-03-03T10:00:00+08:00");
    assert_eq!(
        local(r.due_at),
        "2026-03-07T00:00:00+08:00",
        "3 working days after Tuesday"
    );
    assert_eq!(
        t.lead_unit,
        Some(unit("community/jfq")),
        "the community takes the lead"
    );
    assert_eq!(t.status, Status::Dispatched);
    // A second firing of the same breach does nothing.
    assert!(t.decide(&fire, &w.ctx(late)).unwrap().is_empty());
    let kinds: Vec<&str> = h.iter().map(|e| e.change.kind()).collect();
    assert_eq!(kinds[kinds.len() - 2..], ["BREACHED", "ESCALATED"]);
    match &h[h.len() - 2].change {
        Change::Breached { due_at, .. } => assert_eq!(*due_at, breach.due_at),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h[h.len() - 2].at,
        late,
        "recorded with the instant it fired"
    );
}

#[test]
fn hard_breach_reaches_major_risk_under_a_case_owner_with_reviews() {
    let w = World::new();
    let (t, mut h) = w.register(Level::Hard, at("2026-03-02T10:00:00+08:00"));
    let due = t.resolve.as_ref().unwrap().due_at;
    assert_eq!(local(due), "2026-03-12T00:00:00+08:00");
    let fire = |case_owner: Option<&str>| Command::FireBreach {
        clock: ClockKind::Resolve,
        unit: None,
        due_at: due,
        owner_unit: None,
        case_owner: case_owner.map(str::to_owned),
        supervisor: None,
    };
    let err = t.decide(&fire(None), &w.ctx(due)).unwrap_err();
    assert!(err.to_string().contains("case owner"), "{err}");
    let t = w.run(&t, &mut h, fire(Some("副区长 王某")), due);
    assert_eq!(t.level, Level::MajorRisk);
    assert_eq!(t.case_owner.as_deref(), Some("副区长 王某"));
    assert!(
        t.resolve.is_none(),
        "MAJOR_RISK is managed by review cadence by default"
    );
    let review = t.review.clone().unwrap();
    assert_eq!(
        local(review.due_at),
        "2026-03-14T00:00:00+08:00",
        "1 working day after Thu 12 00:00"
    );
    // A missed review raises an alert and the next review falls due a cadence later.
    let t = w.run(
        &t,
        &mut h,
        Command::FireBreach {
            clock: ClockKind::Review,
            unit: None,
            due_at: review.due_at,
            owner_unit: None,
            case_owner: None,
            supervisor: None,
        },
        at("2026-03-14T00:00:01+08:00"),
    );
    assert_eq!(
        local(t.review.as_ref().unwrap().due_at),
        "2026-03-17T00:00:00+08:00",
        "Sat 14 → Mon 16 24:00"
    );
    // It climbs no further.
    let err = t
        .decide(
            &Command::Escalate {
                reason: "more".into(),
                owner_unit: None,
                case_owner: None,
            },
            &w.ctx(at("2026-03-14T00:00:00+08:00")),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("MAJOR_RISK is the top of the ladder"),
        "{err}"
    );
    // A progress note is the case owner's review: the cadence restarts from it.
    let t = w.run(
        &t,
        &mut h,
        Command::AddNote {
            text: "现场排查完成".into(),
        },
        at("2026-03-16T10:00:00+08:00"),
    );
    assert_eq!(
        local(t.review.as_ref().unwrap().due_at),
        "2026-03-18T00:00:00+08:00"
    );
    assert_eq!(replay(&h).unwrap(), t);
}

#[test]
fn an_overdue_sign_for_goes_to_the_supervisor() {
    let w = World::new();
    let (t, mut h) = w.register(Level::Routine, at("2026-03-02T10:00:00+08:00"));
    let t = w.run(
        &t,
        &mut h,
        dispatch("yard/workers"),
        at("2026-03-02T10:00:00+08:00"),
    );
    let a = t.acknowledge.clone().unwrap();
    assert_eq!(local(a.warn_at), "2026-03-02T11:30:00+08:00");
    let t = w.run(
        &t,
        &mut h,
        Command::FireWarning {
            clock: ClockKind::Acknowledge,
            unit: None,
            due_at: a.warn_at,
        },
        a.warn_at,
    );
    assert!(t.acknowledge.as_ref().unwrap().warned);
    let t = w.run(
        &t,
        &mut h,
        Command::FireBreach {
            clock: ClockKind::Acknowledge,
            unit: None,
            due_at: a.due_at,
            owner_unit: None,
            case_owner: None,
            supervisor: Some(unit("community/jfq")),
        },
        at("2026-03-02T12:00:30+08:00"),
    );
    assert_eq!(t.lead_unit, Some(unit("community/jfq")));
    assert_eq!(t.status, Status::Dispatched);
    assert_eq!(
        local(t.acknowledge.as_ref().unwrap().due_at),
        "2026-03-02T14:00:00+08:00",
        "the supervisor's sign-for clock runs from the breach instant"
    );
}

#[test]
fn a_stale_warning_does_nothing_after_the_clock_moved() {
    let w = World::new();
    let (t, mut h) = w.register(Level::Routine, at("2026-03-02T10:00:00+08:00"));
    let t = w.run(&t, &mut h, dispatch("u"), at("2026-03-02T10:00:00+08:00"));
    let t = w.run(&t, &mut h, ack("u"), at("2026-03-02T10:00:00+08:00"));
    let old_warn = t.resolve.as_ref().unwrap().warn_at;
    let t = w.run(
        &t,
        &mut h,
        Command::Suspend { reason: "r".into() },
        at("2026-03-02T11:00:00+08:00"),
    );
    let t = w.run(
        &t,
        &mut h,
        Command::Resume {
            reason: String::new(),
        },
        at("2026-03-02T13:00:00+08:00"),
    );
    let fire = Command::FireWarning {
        clock: ClockKind::Resolve,
        unit: None,
        due_at: old_warn,
    };
    assert!(t.decide(&fire, &w.ctx(old_warn)).unwrap().is_empty());
}

#[test]
fn an_unsatisfied_callback_reopens_with_a_new_deadline_from_the_callback() {
    let w = World::new();
    let (t, mut h) = w.register(Level::Difficult, at("2026-03-02T10:00:00+08:00"));
    let t = w.run(&t, &mut h, dispatch("c"), at("2026-03-02T10:00:00+08:00"));
    let t = w.run(&t, &mut h, ack("c"), at("2026-03-02T10:00:00+08:00"));
    let t = w.run(
        &t,
        &mut h,
        Command::Resolve {
            resolution: "done".into(),
        },
        at("2026-03-03T10:00:00+08:00"),
    );
    let noanswer = Command::RecordCallback {
        satisfaction: Satisfaction::NoAnswer,
        matter_solved: false,
        comment: String::new(),
    };
    let t = w.run(&t, &mut h, noanswer, at("2026-03-03T11:00:00+08:00"));
    assert_eq!(
        t.status,
        Status::Resolved,
        "the callback window keeps running"
    );
    let t = w.run(
        &t,
        &mut h,
        Command::RecordCallback {
            satisfaction: Satisfaction::Dissatisfied,
            matter_solved: false,
            comment: "还在漏".into(),
        },
        at("2026-03-04T15:00:00+08:00"),
    );
    assert_eq!(t.status, Status::InProgress);
    assert_eq!(t.lead_unit, Some(unit("c")));
    assert_eq!(
        local(t.resolve.as_ref().unwrap().due_at),
        "2026-03-10T00:00:00+08:00"
    );
    assert_eq!(t.satisfaction, Some(Satisfaction::Dissatisfied));
    assert_eq!(replay(&h).unwrap(), t);
}

#[test]
fn a_resolved_ticket_without_callback_closes_when_the_window_passes() {
    let w = World::new();
    let (t, mut h) = w.register(Level::Routine, at("2026-03-02T10:00:00+08:00"));
    let t = w.run(&t, &mut h, dispatch("c"), at("2026-03-02T10:00:00+08:00"));
    let t = w.run(&t, &mut h, ack("c"), at("2026-03-02T10:00:00+08:00"));
    let t = w.run(
        &t,
        &mut h,
        Command::Resolve {
            resolution: "done".into(),
        },
        at("2026-03-02T12:00:00+08:00"),
    );
    let due = t.callback_due_at.unwrap();
    let t = w.run(
        &t,
        &mut h,
        Command::FireBreach {
            clock: ClockKind::Callback,
            unit: None,
            due_at: due,
            owner_unit: None,
            case_owner: None,
            supervisor: None,
        },
        due,
    );
    assert_eq!(t.status, Status::Closed);
}

#[test]
fn whistled_units_report_in_or_breach() {
    let w = World::new();
    let (t, mut h) = w.register(Level::Hard, at("2026-03-02T10:00:00+08:00"));
    let t = w.run(
        &t,
        &mut h,
        dispatch("street/jfl"),
        at("2026-03-02T10:00:00+08:00"),
    );
    let t = w.run(
        &t,
        &mut h,
        ack("street/jfl"),
        at("2026-03-02T10:00:00+08:00"),
    );
    let whistle = Command::Whistle {
        units: vec![unit("dept/greening"), unit("dept/emergency")],
        reason: "fallen tree on the power line".into(),
    };
    let t = w.run(&t, &mut h, whistle.clone(), at("2026-03-02T11:00:00+08:00"));
    assert_eq!(t.co_handlers.len(), 2);
    assert!(
        t.decide(&whistle, &w.ctx(at("2026-03-02T11:01:00+08:00")))
            .is_err(),
        "already called in"
    );
    let t = w.run(
        &t,
        &mut h,
        Command::ReportIn {
            unit: unit("dept/greening"),
        },
        at("2026-03-02T11:30:00+08:00"),
    );
    let pending: Vec<_> = t
        .timers()
        .into_iter()
        .filter(|x| x.clock == ClockKind::ReportIn)
        .collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].unit, Some(unit("dept/emergency")));
    assert_eq!(local(pending[0].due_at), "2026-03-02T13:00:00+08:00");
    let t = w.run(
        &t,
        &mut h,
        Command::FireBreach {
            clock: ClockKind::ReportIn,
            unit: Some(unit("dept/emergency")),
            due_at: pending[0].due_at,
            owner_unit: None,
            case_owner: None,
            supervisor: None,
        },
        at("2026-03-02T13:00:00+08:00"),
    );
    assert!(t.timers().iter().all(|x| x.clock != ClockKind::ReportIn));
    assert_eq!(replay(&h).unwrap(), t);
}

#[test]
fn merged_and_cancelled_tickets_are_terminal_and_arm_nothing() {
    let w = World::new();
    let now = at("2026-03-02T10:00:00+08:00");
    let (t, mut h) = w.register(Level::Routine, now);
    let merged = w.run(
        &t,
        &mut h,
        Command::Merge {
            into: TicketId::parse("t-0").unwrap(),
            reason: "same leak, reported yesterday".into(),
        },
        now,
    );
    assert_eq!(merged.status, Status::Merged);
    assert!(merged.timers().is_empty());
    assert_eq!(
        merged
            .decide(&dispatch("u"), &w.ctx(now))
            .unwrap_err()
            .to_string(),
        "cannot dispatch a ticket that is MERGED"
    );
    let (t, mut h) = w.register(Level::Routine, now);
    let cancelled = w.run(
        &t,
        &mut h,
        Command::Cancel {
            reason: "withdrawn by caller".into(),
        },
        now,
    );
    assert_eq!(cancelled.status, Status::Cancelled);
    assert!(cancelled.timers().is_empty());
}

#[test]
fn returned_tickets_go_back_to_the_dispatcher() {
    let w = World::new();
    let now = at("2026-03-02T10:00:00+08:00");
    let (t, mut h) = w.register(Level::Routine, now);
    let t = w.run(&t, &mut h, dispatch("dept/water"), now);
    assert!(
        t.decide(
            &Command::Return {
                unit: unit("dept/water"),
                reason: String::new()
            },
            &w.ctx(now)
        )
        .is_err()
    );
    let t = w.run(
        &t,
        &mut h,
        Command::Return {
            unit: unit("dept/water"),
            reason: "secondary supply belongs to the property company".into(),
        },
        now,
    );
    assert_eq!(t.status, Status::Returned);
    assert_eq!(t.lead_unit, None);
    let t = w.run(&t, &mut h, dispatch("yard/property"), now);
    assert_eq!(t.status, Status::Dispatched);
    assert_eq!(replay(&h).unwrap(), t);
}

#[test]
fn reclassifying_restarts_the_clock_from_now() {
    let w = World::new();
    let (t, mut h) = w.register(Level::Routine, at("2026-03-02T10:00:00+08:00"));
    let t = w.run(
        &t,
        &mut h,
        Command::Reclassify {
            level: Level::Hard,
            reason: "needs the street office and two departments".into(),
            case_owner: None,
        },
        at("2026-03-02T15:00:00+08:00"),
    );
    assert_eq!(t.level, Level::Hard);
    assert_eq!(t.escalations, 0);
    let r = t.resolve.as_ref().unwrap();
    assert_eq!(local(r.started_at), "2026-03-02T15:00:00+08:00");
    assert_eq!(local(r.due_at), "2026-03-12T00:00:00+08:00");
}

#[test]
fn demo_policies_in_seconds_work_through_the_ladder() {
    let policy = Policy::from_toml(
        "[levels.routine]\nresolve_within = \"20s\"\n[levels.difficult]\nresolve_within = \"30s\"\n[levels.hard]\nresolve_within = \"40s\"\n",
    )
    .unwrap();
    let w = World::with_policy(policy);
    let t0 = at("2026-03-02T10:00:00+08:00");
    let (mut t, mut h) = w.register(Level::Routine, t0);
    let mut levels = vec![t.level];
    while let Some(r) = t.resolve.clone() {
        let fire = Command::FireBreach {
            clock: ClockKind::Resolve,
            unit: None,
            due_at: r.due_at,
            owner_unit: None,
            case_owner: Some("区长".into()),
            supervisor: None,
        };
        t = w.run(&t, &mut h, fire, r.due_at);
        levels.push(t.level);
    }
    assert_eq!(levels, Level::ALL);
    assert_eq!(
        local(t.updated_at),
        "2026-03-02T10:01:30+08:00",
        "20s + 30s + 40s"
    );
}

#[test]
fn a_breach_shows_a_red_card_at_the_next_level_until_resolved_and_again_when_reopened() {
    let w = World::new();
    let (t, mut h) = w.register(Level::Routine, at("2026-03-02T10:00:00+08:00"));
    assert!(!t.is_breached());
    let t = w.run(
        &t,
        &mut h,
        dispatch("yard/workers"),
        at("2026-03-02T10:00:00+08:00"),
    );
    let t = w.run(
        &t,
        &mut h,
        ack("yard/workers"),
        at("2026-03-02T10:05:00+08:00"),
    );
    let due = t.resolve_due_at().unwrap();
    assert!(!t.is_breached());
    let late = at("2026-03-03T13:00:00+08:00");
    assert!(t.is_overdue(late));
    let t = w.run(
        &t,
        &mut h,
        Command::FireBreach {
            clock: ClockKind::Resolve,
            unit: None,
            due_at: due,
            owner_unit: Some(unit("community/jfq")),
            case_owner: None,
            supervisor: None,
        },
        late,
    );
    assert_eq!(t.level, Level::Difficult);
    assert!(
        !t.is_overdue(late),
        "the new level's clock runs: not overdue"
    );
    assert!(t.is_breached(), "but the breach shows at the next level");
    assert_eq!(replay(&h).unwrap(), t);

    let t = w.run(&t, &mut h, ack("community/jfq"), late);
    assert!(t.is_breached());
    let t = w.run(
        &t,
        &mut h,
        Command::Resolve {
            resolution: "fixed".into(),
        },
        at("2026-03-03T14:00:00+08:00"),
    );
    assert!(t.deadline_breached, "the fact is kept");
    assert!(!t.is_breached(), "a resolved ticket shows no red card");
    let t = w.run(
        &t,
        &mut h,
        Command::RecordCallback {
            satisfaction: Satisfaction::Dissatisfied,
            matter_solved: false,
            comment: String::new(),
        },
        at("2026-03-03T15:00:00+08:00"),
    );
    assert_eq!(t.status, Status::InProgress);
    assert!(t.is_breached(), "reopened: the earlier breach shows again");
    assert_eq!(replay(&h).unwrap(), t);
}

#[test]
fn a_missed_major_risk_review_shows_a_red_card() {
    let w = World::new();
    let (t, mut h) = w.register(Level::MajorRisk, at("2026-03-02T10:00:00+08:00"));
    let review = t.review.clone().unwrap();
    assert!(!t.is_breached());
    let t = w.run(
        &t,
        &mut h,
        Command::FireBreach {
            clock: ClockKind::Review,
            unit: None,
            due_at: review.due_at,
            owner_unit: None,
            case_owner: None,
            supervisor: None,
        },
        review.due_at,
    );
    assert_eq!(h.last().unwrap().change.kind(), "REVIEW_MISSED");
    assert!(t.is_breached());
    assert!(
        !t.is_overdue(review.due_at),
        "MAJOR_RISK has no resolve clock"
    );
    let t = w.run(
        &t,
        &mut h,
        Command::Cancel {
            reason: "duplicate".into(),
        },
        review.due_at,
    );
    assert!(!t.is_breached(), "a cancelled ticket shows no red card");
    assert_eq!(replay(&h).unwrap(), t);
}
