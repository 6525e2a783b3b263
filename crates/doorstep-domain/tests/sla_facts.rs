//! The reporting definitions: what a ticket's history means for an SLA report, on histories made by
//! real commands.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{World, at, unit};
use doorstep_domain::sla_facts::{fold, to_millisecond};
use doorstep_domain::{
    ClockKind, Command, Event, Level, Mark, MarkKind, OverdueOp, Satisfaction, SlaFacts, Ticket,
    TicketId,
};

/// A ticket and its history, moved on by commands.
struct Story {
    world: World,
    ticket: Ticket,
    history: Vec<Event>,
}

impl Story {
    fn new(level: Level, now: DateTime<Utc>) -> Story {
        let world = World::new();
        let (ticket, history) = world.register(level, now);
        Story {
            world,
            ticket,
            history,
        }
    }

    fn run(&mut self, command: Command, now: DateTime<Utc>) -> &mut Story {
        self.ticket = self
            .world
            .run(&self.ticket, &mut self.history, command, now);
        self
    }

    /// The history with seq 1, 2, … as a log would number it.
    fn log(&self) -> Vec<(i64, Event)> {
        (1..).zip(self.history.iter().cloned()).collect()
    }

    fn fold(&self) -> (SlaFacts, Vec<Mark>, Vec<OverdueOp>) {
        fold(&self.log()).unwrap()
    }

    fn facts(&self) -> SlaFacts {
        self.fold().0
    }

    /// The seq of the last event of `kind`.
    fn seq_of(&self, kind: &str) -> i64 {
        self.log()
            .iter()
            .rev()
            .find(|(_, e)| e.change.kind() == kind)
            .map(|(seq, _)| *seq)
            .unwrap()
    }

    fn sign_for_due(&self) -> DateTime<Utc> {
        self.ticket.acknowledge.as_ref().unwrap().due_at
    }

    fn resolve_due(&self) -> DateTime<Utc> {
        self.ticket.resolve_due_at().unwrap()
    }
}

const T0: &str = "2026-03-02T10:00:00+08:00";

fn dispatch(code: &str) -> Command {
    Command::Dispatch {
        unit: unit(code),
        reason: String::new(),
    }
}

fn ack(code: &str) -> Command {
    Command::Acknowledge { unit: unit(code) }
}

fn resolve() -> Command {
    Command::Resolve {
        resolution: "fixed".into(),
    }
}

fn callback(satisfaction: Satisfaction, matter_solved: bool) -> Command {
    Command::RecordCallback {
        satisfaction,
        matter_solved,
        comment: String::new(),
    }
}

fn breach(due_at: DateTime<Utc>) -> Command {
    Command::FireBreach {
        clock: ClockKind::Resolve,
        unit: None,
        due_at,
        owner_unit: None,
        case_owner: None,
        supervisor: None,
    }
}

/// Dispatched at T0 + 5 min to `yard/workers`.
fn dispatched() -> Story {
    let mut s = Story::new(Level::Routine, at(T0));
    s.run(dispatch("yard/workers"), at("2026-03-02T10:05:00+08:00"));
    s
}

/// Dispatched, signed for at T0 + 30 min.
fn in_progress() -> Story {
    let mut s = dispatched();
    s.run(ack("yard/workers"), at("2026-03-02T10:30:00+08:00"));
    s
}

#[test]
fn a_fresh_ticket_has_only_its_creation_and_its_running_deadline() {
    let s = Story::new(Level::Routine, at(T0));
    let created = SlaFacts::created(&s.history[0]).unwrap();
    let (facts, marks, ops) = s.fold();
    assert_eq!(facts.created_at, at(T0));
    assert_eq!(facts.first_dispatch_at, None);
    assert!(!facts.ack_on_time && !facts.resolved_on_time && !facts.resolve_breached);
    assert_eq!(facts.due_now, Some(s.resolve_due()));
    assert_eq!(facts.open_since, Some(s.resolve_due()));
    assert_eq!(
        SlaFacts {
            due_now: facts.due_now,
            open_since: facts.open_since,
            ..created
        },
        facts
    );
    assert!(marks.is_empty());
    assert_eq!(
        ops,
        [OverdueOp::Open {
            since: s.resolve_due()
        }]
    );
}

#[test]
fn only_a_history_that_starts_with_created_folds() {
    let s = in_progress();
    assert!(fold(&[]).is_none());
    assert!(fold(&s.log()[1..]).is_none());
    assert!(SlaFacts::created(&s.history[1]).is_none());
}

#[test]
fn signed_for_before_the_first_dispatchs_deadline_is_on_time() {
    let s = in_progress();
    let facts = s.facts();
    assert_eq!(
        facts.first_dispatch_at,
        Some(at("2026-03-02T10:05:00+08:00"))
    );
    assert!(facts.ack_on_time);
    assert_eq!(facts.ack_pending_due, None, "signed for: nothing pending");

    // Still waiting: the first dispatch's deadline is pending.
    let s = dispatched();
    let facts = s.facts();
    assert!(!facts.ack_on_time);
    assert_eq!(facts.ack_pending_due, Some(s.sign_for_due()));
}

#[test]
fn signed_for_at_or_after_the_deadline_is_not_on_time() {
    for late in [Duration::zero(), Duration::minutes(1)] {
        let mut s = dispatched();
        let due = s.sign_for_due();
        s.run(ack("yard/workers"), due + late);
        let facts = s.facts();
        assert!(!facts.ack_on_time, "signed for {late} after the deadline");
        assert_eq!(facts.ack_pending_due, None);
    }
}

#[test]
fn a_second_dispatch_before_sign_for_means_not_on_time() {
    let mut s = dispatched();
    s.run(dispatch("community/jfq"), at("2026-03-02T10:10:00+08:00"))
        .run(ack("community/jfq"), at("2026-03-02T10:11:00+08:00"));
    let facts = s.facts();
    assert_eq!(
        facts.first_dispatch_at,
        Some(at("2026-03-02T10:05:00+08:00")),
        "the first dispatch is the one that counts"
    );
    assert!(!facts.ack_on_time);
}

#[test]
fn a_return_clears_the_pending_sign_for() {
    let mut s = dispatched();
    s.run(
        Command::Return {
            unit: unit("yard/workers"),
            reason: "not ours".into(),
        },
        at("2026-03-02T10:06:00+08:00"),
    );
    assert_eq!(s.facts().ack_pending_due, None);
    s.run(dispatch("community/jfq"), at("2026-03-02T10:07:00+08:00"))
        .run(ack("community/jfq"), at("2026-03-02T10:08:00+08:00"));
    let facts = s.facts();
    assert!(
        !facts.ack_on_time,
        "the first dispatch was never signed for"
    );
    assert_eq!(facts.ack_pending_due, None);
}

#[test]
fn an_escalation_that_hands_over_the_lead_is_a_dispatch() {
    let mut s = Story::new(Level::Routine, at(T0));
    s.run(
        Command::Escalate {
            reason: "too big".into(),
            owner_unit: Some(unit("community/jfq")),
            case_owner: None,
        },
        at("2026-03-02T10:05:00+08:00"),
    );
    // With no lead unit yet, the escalation hands over nothing.
    assert_eq!(s.facts().first_dispatch_at, None);
    s.run(dispatch("yard/workers"), at("2026-03-02T10:06:00+08:00"))
        .run(
            Command::Escalate {
                reason: "bigger still".into(),
                owner_unit: Some(unit("street/jfl")),
                case_owner: None,
            },
            at("2026-03-02T10:07:00+08:00"),
        )
        .run(ack("street/jfl"), at("2026-03-02T10:08:00+08:00"));
    let (facts, marks, _) = s.fold();
    assert_eq!(
        facts.first_dispatch_at,
        Some(at("2026-03-02T10:06:00+08:00"))
    );
    assert!(!facts.ack_on_time, "handed over before the first sign-for");
    let escalations: Vec<_> = marks
        .iter()
        .filter(|m| m.kind == MarkKind::Escalation)
        .map(|m| (m.seq, m.at))
        .collect();
    assert_eq!(
        escalations,
        [
            (2, at("2026-03-02T10:05:00+08:00")),
            (4, at("2026-03-02T10:07:00+08:00"))
        ]
    );
}

#[test]
fn resolved_on_time_is_the_first_resolution_with_no_breach_before_it() {
    let mut s = in_progress();
    let resolved = at("2026-03-02T16:00:00+08:00");
    s.run(resolve(), resolved);
    let facts = s.facts();
    assert_eq!(facts.first_resolved_at, Some(resolved));
    assert!(facts.resolved_on_time);
    assert!(!facts.resolve_breached);
    assert_eq!(facts.resolve_ms, Some(6 * 3600 * 1000));

    // Reopened, breached and resolved again: the first resolution stands.
    s.run(
        callback(Satisfaction::Dissatisfied, false),
        at("2026-03-02T17:00:00+08:00"),
    );
    let due = s.resolve_due();
    s.run(breach(due), due)
        .run(resolve(), due + Duration::hours(1));
    let facts = s.facts();
    assert_eq!(facts.first_resolved_at, Some(resolved));
    assert!(facts.resolved_on_time);
    assert!(
        !facts.resolve_breached,
        "a breach after the first resolution does not count"
    );
    assert_eq!(facts.resolve_ms, Some(6 * 3600 * 1000));
}

#[test]
fn a_breach_before_resolution_means_resolved_late() {
    let mut s = in_progress();
    let due = s.resolve_due();
    let fired = due + Duration::minutes(3);
    s.run(breach(due), fired);
    let facts = s.facts();
    assert!(facts.resolve_breached);
    assert_eq!(facts.first_resolved_at, None);

    let resolved = fired + Duration::hours(2);
    s.run(resolve(), resolved);
    let (facts, marks, _) = s.fold();
    assert!(facts.resolve_breached);
    assert!(!facts.resolved_on_time);
    assert_eq!(facts.first_resolved_at, Some(resolved));
    assert_eq!(
        facts.resolve_ms,
        Some((resolved - at(T0)).num_milliseconds())
    );
    // The breach escalated ROUTINE to DIFFICULT: one escalation, counted at the firing.
    assert_eq!(
        marks,
        [Mark {
            seq: s.seq_of("ESCALATED"),
            kind: MarkKind::Escalation,
            at: fired,
            satisfied: false,
            solved: false,
        }]
    );
}

#[test]
fn callbacks_count_only_when_answered() {
    let mut s = in_progress();
    s.run(resolve(), at("2026-03-02T16:00:00+08:00")).run(
        callback(Satisfaction::NoAnswer, false),
        at("2026-03-03T09:00:00+08:00"),
    );
    assert!(s.fold().1.is_empty(), "no answer is no callback");
    s.run(
        callback(Satisfaction::Dissatisfied, false),
        at("2026-03-03T10:00:00+08:00"),
    );
    let dissatisfied = s.seq_of("CALLBACK_RECORDED");
    s.run(resolve(), at("2026-03-03T15:00:00+08:00")).run(
        callback(Satisfaction::BasicallySatisfied, true),
        at("2026-03-04T09:00:00+08:00"),
    );
    let satisfied = s.seq_of("CALLBACK_RECORDED");
    let marks = s.fold().1;
    assert_eq!(
        marks,
        [
            Mark {
                seq: dissatisfied,
                kind: MarkKind::Callback,
                at: at("2026-03-03T10:00:00+08:00"),
                satisfied: false,
                solved: false,
            },
            Mark {
                seq: satisfied,
                kind: MarkKind::Callback,
                at: at("2026-03-04T09:00:00+08:00"),
                satisfied: true,
                solved: true,
            },
        ]
    );
}

#[test]
fn a_merge_is_recorded_when_it_happens() {
    let mut s = dispatched();
    let merged = at("2026-03-02T11:00:00+08:00");
    s.run(
        Command::Merge {
            into: TicketId::parse("t-0").unwrap(),
            reason: String::new(),
        },
        merged,
    );
    let (facts, _, ops) = s.fold();
    assert_eq!(facts.merged_at, Some(merged));
    assert_eq!(
        facts.due_now, None,
        "a merged ticket has no running deadline"
    );
    assert_eq!(
        ops.last(),
        Some(&OverdueOp::Drop),
        "merged before its deadline: it was never overdue"
    );
}

#[test]
fn overdue_intervals_open_close_and_drop_with_the_running_deadline() {
    let mut s = in_progress();
    let first_due = s.resolve_due();
    // Suspended before the deadline: the interval never became overdue.
    s.run(
        Command::Suspend {
            reason: "waiting for parts".into(),
        },
        at("2026-03-02T12:00:00+08:00"),
    );
    assert_eq!(s.facts().open_since, None);
    s.run(
        Command::Resume {
            reason: String::new(),
        },
        at("2026-03-02T14:00:00+08:00"),
    );
    let second_due = s.resolve_due();
    assert_eq!(second_due, first_due + Duration::hours(2));
    // Resolved an hour after the deadline: overdue from the deadline until the resolution.
    let resolved = second_due + Duration::hours(1);
    s.run(resolve(), resolved);
    let (facts, _, ops) = s.fold();
    assert_eq!(
        ops,
        [
            OverdueOp::Open { since: first_due },
            OverdueOp::Drop,
            OverdueOp::Open { since: second_due },
            OverdueOp::Close { ends: resolved },
        ]
    );
    assert_eq!((facts.due_now, facts.open_since), (None, None));
}

#[test]
fn a_deadline_already_passed_is_overdue_from_the_moment_it_runs() {
    let s = Story::new(Level::Routine, at(T0));
    let mut facts = SlaFacts::created(&s.history[0]).unwrap();
    let mut ops = Vec::new();
    let now = at(T0);
    facts.deadline(now, Some(now - Duration::hours(1)), &mut ops);
    // The same deadline again changes nothing.
    facts.deadline(
        now + Duration::hours(1),
        Some(now - Duration::hours(1)),
        &mut ops,
    );
    facts.deadline(now + Duration::hours(2), None, &mut ops);
    assert_eq!(
        ops,
        [
            OverdueOp::Open { since: now },
            OverdueOp::Close {
                ends: now + Duration::hours(2)
            },
        ]
    );
}

#[test]
fn instants_are_taken_in_whole_milliseconds() {
    let fine = Duration::nanoseconds(123_456_789);
    let mut s = Story::new(Level::Routine, at(T0) + fine);
    s.run(
        dispatch("yard/workers"),
        at("2026-03-02T10:05:00+08:00") + fine,
    )
    .run(ack("yard/workers"), at("2026-03-02T10:30:00+08:00") + fine)
    .run(
        resolve(),
        at("2026-03-02T16:00:00+08:00") + Duration::nanoseconds(999_999),
    );
    let facts = s.facts();
    let ms = Duration::milliseconds(123);
    assert_eq!(facts.created_at, at(T0) + ms);
    assert_eq!(
        facts.first_dispatch_at,
        Some(at("2026-03-02T10:05:00+08:00") + ms)
    );
    assert_eq!(
        facts.first_resolved_at,
        Some(at("2026-03-02T16:00:00+08:00"))
    );
    assert_eq!(facts.resolve_ms, Some(6 * 3600 * 1000 - 123));
    assert_eq!(facts.due_now, None);

    assert_eq!(to_millisecond(at(T0) + fine), at(T0) + ms);
    let before_epoch = DateTime::<Utc>::UNIX_EPOCH - Duration::nanoseconds(1);
    assert_eq!(
        to_millisecond(before_epoch),
        DateTime::<Utc>::UNIX_EPOCH - Duration::milliseconds(1),
        "rounded down, as epoch milliseconds are"
    );
}

#[test]
fn a_red_card_shows_from_the_breach_until_resolution_and_again_once_reopened() {
    let mut s = in_progress();
    let due = s.resolve_due();
    let fired = due + Duration::minutes(3);
    s.run(breach(due), fired);
    let red = |s: &Story| doorstep_domain::sla_facts::fold_with_red_cards(&s.log()).unwrap();
    let (facts, _, _, ops) = red(&s);
    assert!(facts.breached);
    assert_eq!(facts.red_since, Some(fired));
    assert_eq!(ops, [OverdueOp::Open { since: fired }]);

    let resolved = fired + Duration::hours(2);
    s.run(resolve(), resolved);
    let reopened = resolved + Duration::hours(1);
    s.run(callback(Satisfaction::Dissatisfied, false), reopened);
    let (facts, _, _, ops) = red(&s);
    assert_eq!(facts.red_since, Some(reopened));
    assert_eq!(
        ops,
        [
            OverdueOp::Open { since: fired },
            OverdueOp::Close { ends: resolved },
            OverdueOp::Open { since: reopened },
        ]
    );
    assert_eq!(fold(&s.log()).unwrap().0, facts);
}
