//! Property tests: random histories stay legal and replay to the same state; deadlines behave.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{World, unit};
use doorstep_domain::calendar::WorkingTime;
use doorstep_domain::{
    Command, Event, Level, Limit, Reckoner, Satisfaction, Threshold, Ticket, TicketId, replay,
};
use proptest::prelude::*;

fn instant(seconds: i64) -> DateTime<Utc> {
    // 2024-01-01T00:00:00+08:00 plus up to three years.
    Utc.timestamp_opt(1_704_038_400 + seconds, 0).unwrap()
}

const THREE_YEARS: i64 = 3 * 365 * 24 * 3600;
const UNITS: [&str; 3] = ["yard/workers", "community/jfq", "dept/greening"];

fn level(n: u8) -> Level {
    Level::ALL[n as usize % 4]
}

/// Turns a random draw into an action on the ticket as it stands; some are meant to be refused.
fn command(t: &Ticket, op: u8, arg: u8) -> Command {
    let some_unit = unit(UNITS[arg as usize % 3]);
    let lead_or_other = match (arg % 4, &t.lead_unit) {
        (0, _) | (_, None) => some_unit.clone(),
        (_, Some(lead)) => lead.clone(),
    };
    let case_owner = (!arg.is_multiple_of(5)).then(|| "副区长".to_owned());
    let reason = if arg.is_multiple_of(7) {
        String::new()
    } else {
        "because".to_owned()
    };
    match op % 19 {
        0 => Command::Dispatch {
            unit: some_unit,
            reason,
        },
        1 => Command::Acknowledge {
            unit: lead_or_other,
        },
        2 => Command::Return {
            unit: lead_or_other,
            reason,
        },
        3 => Command::Suspend { reason },
        4 => Command::Resume { reason },
        5 => Command::RequestExtension {
            days: u32::from(arg % 12),
            reason,
        },
        6 => Command::DecideExtension {
            approve: arg.is_multiple_of(2),
            reason,
        },
        7 => Command::Whistle {
            units: UNITS[..1 + arg as usize % 3]
                .iter()
                .map(|u| unit(u))
                .collect(),
            reason,
        },
        8 => Command::ReportIn { unit: some_unit },
        9 => Command::Urge { reason },
        10 => Command::Supervise { reason },
        11 => Command::Escalate {
            reason,
            owner_unit: Some(some_unit),
            case_owner,
        },
        12 => Command::Reclassify {
            level: level(arg),
            reason,
            case_owner,
        },
        13 => Command::Resolve { resolution: reason },
        14 => Command::RecordCallback {
            satisfaction: Satisfaction::ALL[arg as usize % 4],
            matter_solved: arg.is_multiple_of(2),
            comment: String::new(),
        },
        15 => Command::Merge {
            into: TicketId::parse(if arg.is_multiple_of(9) { "t-1" } else { "t-0" }).unwrap(),
            reason,
        },
        16 => Command::Cancel { reason },
        17 => Command::Close { reason },
        _ => Command::AddNote { text: reason },
    }
}

/// What the scheduler would do with the earliest armed timer.
fn fire_earliest(t: &Ticket) -> Option<(Command, DateTime<Utc>)> {
    let timer = t.timers().into_iter().min_by_key(|x| x.due_at)?;
    let command = match timer.threshold {
        Threshold::Warning => Command::FireWarning {
            clock: timer.clock,
            unit: timer.unit,
            due_at: timer.due_at,
        },
        Threshold::Breach => Command::FireBreach {
            clock: timer.clock,
            unit: timer.unit,
            due_at: timer.due_at,
            owner_unit: Some(unit("community/jfq")),
            case_owner: Some("副区长".into()),
            supervisor: Some(unit("street/jfl")),
        },
    };
    Some((command, timer.due_at))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_histories_stay_legal_and_replay_to_the_same_state(
        start in 0..THREE_YEARS,
        first_level in any::<u8>(),
        steps in prop::collection::vec((any::<u8>(), 0u32..4320, any::<u8>(), any::<bool>()), 0..60),
    ) {
        let w = World::new();
        let mut now = instant(start);
        let (mut t, mut history) = w.register(level(first_level), now);
        t.check_invariants().map_err(TestCaseError::fail)?;
        for (op, minutes, arg, fire) in steps {
            now += Duration::minutes(i64::from(minutes));
            let (command, when) = match fire.then(|| fire_earliest(&t)).flatten() {
                Some((command, due)) => (command, now.max(due)),
                None => (command(&t, op, arg), now),
            };
            now = when;
            match t.handle(&command, &w.ctx(now)) {
                Ok((next, events)) => {
                    prop_assert_eq!(next.version, t.version + events.len() as i64);
                    if let Some(last) = events.last() {
                        prop_assert_eq!(last.status_after, next.status);
                    }
                    next.check_invariants().map_err(TestCaseError::fail)?;
                    history.extend(events);
                    t = next;
                }
                Err(err) => {
                    // A refusal names the state it refused in, when it is about the state.
                    if let Some(status) = err.status() {
                        prop_assert_eq!(status, t.status);
                        prop_assert!(err.to_string().contains(status.as_str()));
                    }
                }
            }
        }
        prop_assert_eq!(&replay(&history).unwrap(), &t);
        // The history survives the trip through the store's encoding.
        let json = serde_json::to_string(&history).unwrap();
        let decoded: Vec<Event> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&replay(&decoded).unwrap(), &t);
        // The report's red-card interval is open exactly while the ticket shows its red card.
        let log: Vec<(i64, Event)> = (1..).zip(history.iter().cloned()).collect();
        let (facts, _, _, _) = doorstep_domain::sla_facts::fold_with_red_cards(&log).unwrap();
        prop_assert_eq!(facts.red_since.is_some(), t.is_breached());
        prop_assert_eq!(facts.breached, t.deadline_breached);
    }

    #[test]
    fn a_pause_of_d_moves_the_deadline_by_d_in_the_levels_units(
        lvl in 0u8..3,
        start in 0..THREE_YEARS,
        before in 0i64..(10 * 24 * 3600),
        paused in 0i64..(12 * 24 * 3600),
    ) {
        let w = World::new();
        let level = level(lvl);
        let t0 = instant(start);
        let (t, mut h) = w.register(level, t0);
        let t = w.run(&t, &mut h, Command::Dispatch { unit: unit("u"), reason: String::new() }, t0);
        let t = w.run(&t, &mut h, Command::Acknowledge { unit: unit("u") }, t0);
        let old_due = t.resolve.as_ref().unwrap().due_at;
        let t1 = t0 + Duration::seconds(before);
        let t2 = t1 + Duration::seconds(paused);
        let t = w.run(&t, &mut h, Command::Suspend { reason: "waiting".into() }, t1);
        let t = w.run(&t, &mut h, Command::Resume { reason: String::new() }, t2);
        let new_due = t.resolve.as_ref().unwrap().due_at;
        match w.policy.level(level).resolve_within.unwrap() {
            Limit::Clock { .. } => prop_assert_eq!(new_due - old_due, t2 - t1),
            Limit::WorkingDays(_) => {
                let time = WorkingTime::new(&w.calendar, w.policy.time_zone);
                prop_assert_eq!(
                    time.working_seconds_between(old_due, new_due).value,
                    time.working_seconds_between(t1, t2).value
                );
            }
        }
        prop_assert!(new_due >= old_due);
    }

    #[test]
    fn resolve_deadlines_are_never_before_their_start_and_monotonic(
        lvl in 0u8..3,
        a in 0..THREE_YEARS,
        gap in 0i64..(20 * 24 * 3600),
    ) {
        let w = World::new();
        let reckoner = Reckoner::new(&w.policy, &w.calendar);
        let level = level(lvl);
        let (t1, t2) = (instant(a), instant(a + gap));
        let d1 = reckoner.start_resolve(level, t1).unwrap();
        let d2 = reckoner.start_resolve(level, t2).unwrap();
        prop_assert!(d1.due_at >= t1);
        prop_assert!(d1.started_at <= d1.warn_at && d1.warn_at <= d1.due_at);
        prop_assert!(d1.due_at <= d2.due_at);
    }
}
