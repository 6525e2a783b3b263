#![allow(unreachable_pub)]
//! The scheduler under a manual clock: weeks of SLA time in seconds, on both backends.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use doorstep_domain::{
    Caller, Category, Channel, ClockKind, Command, Intake, Level, ManualClock, NodeCode, Status,
    TicketId, UnitCode,
};
use doorstep_engine::{Action, Engine, Principal};
use doorstep_sla::{Scheduler, SchedulerConfig};
use doorstep_store::testing::TestDatabase;

const LIXIA: &str = include_str!("../../../deploy/examples/lixia.toml");
const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
const WORKERS: &str = "lixia/jiefanglu/jiefangqiao/yard-129/workers";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::<FixedOffset>::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

struct World {
    clock: Arc<ManualClock>,
    engine: Arc<Engine>,
    scheduler: Scheduler,
    principal: Principal,
    db: TestDatabase,
}

impl World {
    async fn new(db: TestDatabase, start: DateTime<Utc>) -> World {
        let clock = Arc::new(ManualClock::new(start));
        let engine = Arc::new(
            Engine::open(Arc::clone(&db.store), clock.clone())
                .await
                .unwrap(),
        );
        engine.import_district(LIXIA).await.unwrap();
        let scheduler = Scheduler::new(Arc::clone(&engine), config("test-scheduler"));
        World {
            clock,
            engine,
            scheduler,
            principal: Principal::local(),
            db,
        }
    }

    async fn file(&self, reference: &str, category: &str, level: Option<Level>) -> TicketId {
        let (t, created) = self
            .engine
            .create_ticket(
                &self.principal,
                Intake {
                    source: Channel::Hotline12345,
                    external_ref: reference.into(),
                    caller: Caller::default(),
                    category: Category::parse(category).unwrap(),
                    content: "楼道灯不亮".into(),
                    address: String::new(),
                    node: NodeCode::parse(YARD).unwrap(),
                    occurred_at: None,
                    attachment_urls: vec![],
                },
                level,
            )
            .await
            .unwrap();
        assert!(created);
        t.id
    }

    async fn act(&self, id: &TicketId, command: Command) {
        let t = self.engine.get_ticket(&self.principal, id).await.unwrap();
        self.engine
            .act(&self.principal, id, t.version, Action::Command(command))
            .await
            .unwrap();
    }

    /// Moves the clock and runs one scheduler round.
    async fn advance_to(&self, t: DateTime<Utc>) -> doorstep_sla::Round {
        self.clock.set(t);
        self.scheduler.tick().await.unwrap()
    }

    async fn kinds(&self, id: &TicketId) -> Vec<&'static str> {
        let (_, history, _) = self.engine.timeline(&self.principal, id).await.unwrap();
        history.iter().map(|e| e.event.change.kind()).collect()
    }
}

fn config(owner: &str) -> SchedulerConfig {
    SchedulerConfig {
        owner: owner.into(),
        batch: 64,
        ..SchedulerConfig::default()
    }
}

doorstep_store::both_backends!(
    a_routine_ticket_climbs_the_whole_ladder_on_time,
    a_suspended_or_resolved_ticket_is_not_escalated,
    downtime_is_caught_up_in_due_order_with_the_true_due_instant,
    an_overdue_sign_for_goes_to_the_supervisor,
    a_scheduler_that_dies_after_claiming_loses_nothing,
    racing_schedulers_escalate_each_breach_exactly_once,
    a_calendar_change_retimes_only_the_deadlines_it_touches,
    a_calendar_change_cut_short_by_a_crash_is_retimed_on_the_next_start,
    open_tickets_are_retimed_under_a_new_policy_only_on_purpose,
    an_idle_scheduler_folds_the_log_into_the_reporting_rows,
    a_change_made_through_one_process_is_used_by_another,
    a_pending_retiming_finished_by_two_processes_at_once_retimes_each_ticket_once,
    a_clock_armed_under_the_old_calendar_by_another_process_is_moved_too,
);

async fn a_clock_armed_under_the_old_calendar_by_another_process_is_moved_too(db: TestDatabase) {
    use doorstep_domain::calendar::{Notice, SpecialDay};
    let w = World::new(db, at("2026-12-30T10:00:00+08:00")).await;
    // Another process that has not loaded the change yet (no follower runs here).
    let other = second_process(&w).await;
    let day = |date: &str| SpecialDay {
        date: date.parse().unwrap(),
        off: true,
        name: "元旦".into(),
        notice: 2027,
    };
    // Filed before the change: its re-timing shows that the first pass is done.
    let early = w
        .file("SD-EARLY", "lighting.stairwell", Some(Level::Difficult))
        .await;
    let engine = Arc::clone(&w.engine);
    let change = tokio::spawn(async move {
        engine
            .put_calendar_notice(
                Notice {
                    year: 2027,
                    source: "国务院办公厅关于2027年部分节假日安排的通知（测试）".into(),
                },
                vec![day("2027-01-01"), day("2027-01-04")],
            )
            .await
            .unwrap()
    });
    // Filed through the other process after the first pass (waited for, not slept for: a loaded
    // machine may not have run it yet after any fixed time), under its old calendar.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while w.kinds(&early).await.last() != Some(&"RETIMED") {
        assert!(
            std::time::Instant::now() < give_up,
            "the first pass within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        !change.is_finished(),
        "the change waits for the second pass"
    );
    let (late, _) = other
        .create_ticket(
            &w.principal,
            Intake {
                source: Channel::Hotline12345,
                external_ref: "SD-LATE".into(),
                caller: Caller::default(),
                category: Category::parse("lighting.stairwell").unwrap(),
                content: "楼道灯不亮".into(),
                address: String::new(),
                node: NodeCode::parse(YARD).unwrap(),
                occurred_at: None,
                attachment_urls: vec![],
            },
            Some(Level::Difficult),
        )
        .await
        .unwrap();
    assert_eq!(
        late.resolve.as_ref().unwrap().due_at,
        at("2027-01-05T00:00:00+08:00"),
        "reckoned under the old calendar"
    );
    change.await.unwrap();
    let t = w.engine.get_ticket(&w.principal, &late.id).await.unwrap();
    assert_eq!(
        t.resolve.as_ref().unwrap().due_at,
        at("2027-01-07T00:00:00+08:00")
    );
    assert_eq!(w.kinds(&late.id).await.last(), Some(&"RETIMED"));
    assert!(w.db.store.pending_retimings().await.unwrap().is_empty());
}

/// Another process on the same database: its own store connections, its own engine.
async fn second_process(w: &World) -> Arc<Engine> {
    Arc::new(
        Engine::open(w.db.connect_again().await, w.clock.clone())
            .await
            .unwrap(),
    )
}

async fn a_change_made_through_one_process_is_used_by_another(db: TestDatabase) {
    use doorstep_domain::calendar::{Notice, SpecialDay};
    let w = World::new(db, at("2026-12-30T10:00:00+08:00")).await;
    let other = second_process(&w).await;
    assert_eq!(other.reload_config().await.unwrap(), None, "nothing moved");
    let intake = |reference: &str, node: &str| Intake {
        source: Channel::Hotline12345,
        external_ref: reference.into(),
        caller: Caller::default(),
        category: Category::parse("lighting.stairwell").unwrap(),
        content: "楼道灯不亮".into(),
        address: String::new(),
        node: NodeCode::parse(node).unwrap(),
        occurred_at: None,
        attachment_urls: vec![],
    };

    // A policy published through the first process: the second files under it once it reloads.
    let v2 = w
        .engine
        .put_policy("[levels.routine]\nresolve_within = \"2h\"\n")
        .await
        .unwrap();
    let (before, _) = other
        .create_ticket(&w.principal, intake("CFG-1", YARD), None)
        .await
        .unwrap();
    assert_eq!(before.policy_version, 1, "not reloaded yet");
    let reloaded = other
        .reload_config()
        .await
        .unwrap()
        .expect("the version moved");
    assert_eq!(reloaded.policy, Some(v2.version));
    assert!(!reloaded.district && !reloaded.calendar);
    let (after, _) = other
        .create_ticket(&w.principal, intake("CFG-2", YARD), None)
        .await
        .unwrap();
    assert_eq!(after.policy_version, v2.version);
    assert_eq!(
        after.resolve.as_ref().unwrap().due_at,
        at("2026-12-30T12:00:00+08:00")
    );
    // The ticket filed before keeps the version it was registered with, in either process.
    let old = w.engine.get_ticket(&w.principal, &before.id).await.unwrap();
    assert_eq!(old.policy_version, 1);
    assert_eq!(
        old.resolve.as_ref().unwrap().due_at,
        at("2026-12-31T10:00:00+08:00")
    );

    // A building imported through the first process is a node the second knows once it reloads.
    let b9 = format!("{YARD}/b9");
    let grown = format!(
        "{LIXIA}\n[[building]]\ncode = \"{b9}\"\nname = \"9号楼\"\ncompound = \"{YARD}\"\n"
    );
    w.engine.import_district(&grown).await.unwrap();
    let unknown = other
        .create_ticket(&w.principal, intake("CFG-3", &b9), None)
        .await
        .unwrap_err();
    assert!(
        unknown.to_string().contains("unknown jurisdiction node"),
        "{unknown}"
    );
    let reloaded = other
        .reload_config()
        .await
        .unwrap()
        .expect("the version moved");
    assert!(reloaded.district && reloaded.policy.is_none());
    other
        .create_ticket(&w.principal, intake("CFG-3", &b9), None)
        .await
        .unwrap();

    // A calendar year stored through the first process is the second's calendar once it reloads,
    // and the re-timing it caused is not done again there.
    let day = |date: &str| SpecialDay {
        date: date.parse().unwrap(),
        off: true,
        name: "元旦".into(),
        notice: 2027,
    };
    assert!(!other.calendar().covers(2027));
    w.engine
        .put_calendar_notice(
            Notice {
                year: 2027,
                source: "国务院办公厅关于2027年部分节假日安排的通知（测试）".into(),
            },
            vec![day("2027-01-01"), day("2027-01-04")],
        )
        .await
        .unwrap();
    let reloaded = other
        .reload_config()
        .await
        .unwrap()
        .expect("the version moved");
    assert!(reloaded.calendar && !reloaded.district);
    assert!(other.calendar().covers(2027));
    assert_eq!(other.calendar(), w.engine.calendar());
    // The first process reloaded its own changes already.
    assert_eq!(w.engine.reload_config().await.unwrap(), None);

    // The follower does the same on its own, within a second or two.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(other.config_follower(stopped));
    let v3 = w.engine.put_policy("").await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while other.policy_version(0).await.unwrap().version != v3.version {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the follower reloads the new policy");
    stop.send(true).unwrap();
    follower.await.unwrap();
}

async fn a_pending_retiming_finished_by_two_processes_at_once_retimes_each_ticket_once(
    db: TestDatabase,
) {
    use doorstep_domain::calendar::{Notice, SpecialDay};
    let w = World::new(db, at("2026-12-30T10:00:00+08:00")).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            w.file(
                &format!("SD-BOTH-{i}"),
                "lighting.stairwell",
                Some(Level::Difficult),
            )
            .await,
        );
    }
    let day = |date: &str| SpecialDay {
        date: date.parse().unwrap(),
        off: true,
        name: "元旦".into(),
        notice: 2027,
    };
    // Stored by a process that died before re-timing anything.
    w.db.store
        .put_calendar_notice(
            &Notice {
                year: 2027,
                source: "国务院办公厅关于2027年部分节假日安排的通知（测试）".into(),
            },
            &[day("2027-01-01"), day("2027-01-04")],
        )
        .await
        .unwrap();
    // Two processes start at once; both find the re-timing pending.
    let (a, b) = tokio::join!(second_process(&w), second_process(&w));
    for id in &ids {
        let kinds = w.kinds(id).await;
        assert_eq!(
            kinds.iter().filter(|k| **k == "RETIMED").count(),
            1,
            "{id}: {kinds:?}"
        );
        let t = a.get_ticket(&w.principal, id).await.unwrap();
        assert_eq!(
            t.resolve.as_ref().unwrap().due_at,
            at("2027-01-07T00:00:00+08:00")
        );
    }
    // Re-timing the same change once more, as a third process would, records nothing.
    let previous = doorstep_domain::calendar::Calendar::official();
    let again = b.retime(&previous, &b.calendar(), 2027).await.unwrap();
    assert_eq!(again.retimed, 0, "{again:?}");
}

async fn an_idle_scheduler_folds_the_log_into_the_reporting_rows(db: TestDatabase) {
    let w = World::new(db, at("2026-03-02T10:00:00+08:00")).await;
    let store = &w.db.store;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(w.file(&format!("SD-{i}"), "lighting.stairwell", None).await);
    }
    // The warnings and the breaches, fired by rounds: commits leave the reporting rows behind.
    let round = w.advance_to(at("2026-03-03T10:10:00+08:00")).await;
    assert!(round.fired >= 60, "{round:?}");
    let mut escalated = 0;
    for id in &ids {
        escalated += w
            .kinds(id)
            .await
            .iter()
            .filter(|k| **k == "ESCALATED")
            .count() as i64;
    }
    assert!(escalated >= 30);
    let behind = store.reports_behind().await.unwrap();
    assert!(behind >= 30 * 4, "{behind} events behind");

    // Running with nothing due, the scheduler folds them, a step of 7 events at a time.
    let scheduler = Scheduler::new(
        Arc::clone(&w.engine),
        SchedulerConfig {
            report_step: 7,
            ..config("idle")
        },
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(async move { scheduler.run(stopped).await });
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.reports_behind().await.unwrap() > 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "the log was not folded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    running.await.unwrap();
    assert_eq!(
        store.project_reports(1000).await.unwrap(),
        0,
        "nothing left"
    );

    let counts = store
        .report_counts(&doorstep_store::ReportQuery {
            // The yard the tickets were filed in.
            subtree: store.node_path(&ids[0]).await.unwrap().unwrap(),
            group: doorstep_store::ReportGroup::Whole,
            from: at("2026-03-01T00:00:00+08:00"),
            to: at("2026-03-05T00:00:00+08:00"),
            overdue_at: at("2026-03-03T10:10:00+08:00"),
            year_before_from: at("2025-03-01T00:00:00+08:00"),
            year_before_to: at("2025-03-05T00:00:00+08:00"),
        })
        .await
        .unwrap();
    assert_eq!(counts[0].received, 30);
    assert_eq!(counts[0].escalations, escalated);
}

async fn a_routine_ticket_climbs_the_whole_ladder_on_time(db: TestDatabase) {
    // Monday 2 March 2026, 10:00 in Jinan.
    let w = World::new(db, at("2026-03-02T10:00:00+08:00")).await;
    let id = w.file("SD-1", "lighting.stairwell", None).await;
    w.act(
        &id,
        Command::Acknowledge {
            unit: UnitCode::parse(WORKERS).unwrap(),
        },
    )
    .await;
    // Nothing is due yet.
    assert_eq!(w.advance_to(at("2026-03-02T20:00:00+08:00")).await.fired, 0);
    // 75% of 24 h: the yellow card.
    let round = w.advance_to(at("2026-03-03T04:00:00+08:00")).await;
    assert_eq!(round.fired, 1);
    assert_eq!(w.kinds(&id).await.last(), Some(&"WARNING"));
    // The red card at 24 h, fired 10 minutes late: DIFFICULT from the breach instant.
    w.advance_to(at("2026-03-03T10:10:00+08:00")).await;
    let t = w.engine.get_ticket(&w.principal, &id).await.unwrap();
    assert_eq!(t.level, Level::Difficult);
    let r = t.resolve.as_ref().unwrap();
    assert_eq!(r.started_at, at("2026-03-03T10:00:00+08:00"));
    assert_eq!(r.due_at, at("2026-03-07T00:00:00+08:00"));
    assert_eq!(
        t.lead_unit.as_ref().map(UnitCode::as_str),
        Some("community/jiefangqiao")
    );
    // Weeks of SLA time: let every clock run out, the community and street office never signing for it.
    let mut now = at("2026-03-03T10:10:00+08:00");
    for _ in 0..200 {
        now += Duration::hours(6);
        w.advance_to(now).await;
    }
    let t = w.engine.get_ticket(&w.principal, &id).await.unwrap();
    assert_eq!(t.level, Level::MajorRisk);
    assert_eq!(t.escalations, 3);
    assert!(t.case_owner.is_some());
    let kinds = w.kinds(&id).await;
    assert_eq!(
        kinds.iter().filter(|k| **k == "ESCALATED").count(),
        3,
        "{kinds:?}"
    );
    assert!(
        kinds.iter().filter(|k| **k == "REVIEW_MISSED").count() >= 10,
        "a supervision alert at each missed review"
    );
    // Each breach was recorded with the instant it was due.
    let (_, history, _) = w.engine.timeline(&w.principal, &id).await.unwrap();
    for e in &history {
        if let doorstep_domain::Change::Breached { due_at, .. } = e.event.change {
            assert!(e.event.at >= due_at);
        }
    }
}

async fn a_suspended_or_resolved_ticket_is_not_escalated(db: TestDatabase) {
    let w = World::new(db, at("2026-03-02T10:00:00+08:00")).await;
    let suspended = w.file("SD-S", "lighting.stairwell", None).await;
    let resolved = w.file("SD-R", "lighting.stairwell", None).await;
    for id in [&suspended, &resolved] {
        w.act(
            id,
            Command::Acknowledge {
                unit: UnitCode::parse(WORKERS).unwrap(),
            },
        )
        .await;
    }
    w.act(
        &suspended,
        Command::Suspend {
            reason: "resident abroad".into(),
        },
    )
    .await;
    w.act(
        &resolved,
        Command::Resolve {
            resolution: "fixed".into(),
        },
    )
    .await;
    w.advance_to(at("2026-03-04T10:00:00+08:00")).await;
    for id in [&suspended, &resolved] {
        let t = w.engine.get_ticket(&w.principal, id).await.unwrap();
        assert_eq!(t.level, Level::Routine);
        assert!(!w.kinds(id).await.contains(&"ESCALATED"));
    }
}

async fn downtime_is_caught_up_in_due_order_with_the_true_due_instant(db: TestDatabase) {
    let start = at("2026-03-02T10:00:00+08:00");
    let w = World::new(db, start).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        w.clock.set(start + Duration::minutes(37 * i));
        ids.push(
            w.file(&format!("SD-C{i}"), "lighting.stairwell", None)
                .await,
        );
    }
    // The scheduler was down for three days.
    let round = w.advance_to(at("2026-03-05T12:00:00+08:00")).await;
    assert!(round.fired >= 80, "{round:?}");
    let events = w.engine.events_after(None, 0, 100_000).await.unwrap();
    let breaches: Vec<(DateTime<Utc>, DateTime<Utc>)> = events
        .iter()
        .filter_map(|e| match (&e.event.change, e.event.at) {
            (
                doorstep_domain::Change::Breached {
                    clock: ClockKind::Resolve,
                    due_at,
                    ..
                },
                at,
            ) => Some((*due_at, at)),
            _ => None,
        })
        .collect();
    assert_eq!(
        breaches.len(),
        40,
        "each ticket's ROUTINE deadline breached once"
    );
    let dues: Vec<DateTime<Utc>> = breaches.iter().map(|(due, _)| *due).collect();
    let mut sorted = dues.clone();
    sorted.sort();
    assert_eq!(dues, sorted, "fired in due order");
    for (i, (due, fired)) in breaches.iter().enumerate() {
        assert_eq!(
            *due,
            start + Duration::minutes(37 * i as i64) + Duration::hours(24)
        );
        assert_eq!(*fired, at("2026-03-05T12:00:00+08:00"));
    }
}

async fn an_overdue_sign_for_goes_to_the_supervisor(db: TestDatabase) {
    let w = World::new(db, at("2026-03-02T10:00:00+08:00")).await;
    let id = w.file("SD-A", "lighting.stairwell", None).await;
    w.advance_to(at("2026-03-02T12:00:01+08:00")).await;
    let t = w.engine.get_ticket(&w.principal, &id).await.unwrap();
    assert_eq!(t.status, Status::Dispatched);
    assert_eq!(
        t.lead_unit.as_ref().map(UnitCode::as_str),
        Some("community/jiefangqiao")
    );
    let kinds = w.kinds(&id).await;
    assert!(kinds.ends_with(&["BREACHED", "DISPATCHED_TO"]), "{kinds:?}");
}

async fn a_scheduler_that_dies_after_claiming_loses_nothing(db: TestDatabase) {
    let w = World::new(db, at("2026-03-02T10:00:00+08:00")).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            w.file(&format!("SD-D{i}"), "lighting.stairwell", None)
                .await,
        );
    }
    let breach = at("2026-03-03T10:00:01+08:00");
    w.clock.set(breach);
    // A scheduler claims every due timer and dies before committing anything.
    let claimed =
        w.db.store
            .claim_due_timers(
                breach,
                1000,
                "dead-scheduler",
                breach + Duration::seconds(30),
            )
            .await
            .unwrap();
    assert!(claimed.len() >= 20, "ack and resolve timers of ten tickets");
    // While its lease lasts, nobody fires them twice.
    assert_eq!(w.scheduler.tick().await.unwrap().claimed, 0);
    // After the lease, another scheduler takes over: everything fires, once.
    w.advance_to(breach + Duration::seconds(31)).await;
    for id in &ids {
        let kinds = w.kinds(id).await;
        assert_eq!(
            kinds.iter().filter(|k| **k == "ESCALATED").count(),
            1,
            "{kinds:?}"
        );
    }
    assert_eq!(w.advance_to(breach + Duration::seconds(62)).await.fired, 0);
}

async fn racing_schedulers_escalate_each_breach_exactly_once(db: TestDatabase) {
    let start = at("2026-03-02T10:00:00+08:00");
    let w = World::new(db, start).await;
    let n = 300;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            w.file(&format!("SD-X{i}"), "lighting.stairwell", None)
                .await,
        );
    }
    // Three schedulers, each with its own engine and its own connections to the one database.
    let mut racers = Vec::new();
    for k in 0..3 {
        let store = w.db.connect_again().await;
        let engine = Arc::new(Engine::open(store, w.clock.clone()).await.unwrap());
        racers.push(Scheduler::new(engine, config(&format!("racer-{k}"))));
    }
    w.clock.set(start + Duration::hours(25));
    let rounds = futures_join(racers).await;
    let fired: usize = rounds.iter().map(|r| r.fired).sum();
    assert!(fired >= n, "{rounds:?}");
    let events = w.engine.events_after(None, 0, 1_000_000).await.unwrap();
    let mut escalations: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events {
        if matches!(e.event.change, doorstep_domain::Change::Escalated { .. }) {
            *escalations.entry(e.ticket_id.to_string()).or_default() += 1;
        }
    }
    assert_eq!(escalations.len(), n);
    assert!(
        escalations.values().all(|c| *c == 1),
        "each breach escalated exactly once"
    );
}

async fn futures_join(racers: Vec<Scheduler>) -> Vec<doorstep_sla::Round> {
    let handles: Vec<_> = racers
        .into_iter()
        .map(|s| tokio::spawn(async move { s.tick().await.unwrap() }))
        .collect();
    let mut rounds = Vec::new();
    for h in handles {
        rounds.push(h.await.unwrap());
    }
    rounds
}

async fn a_calendar_change_retimes_only_the_deadlines_it_touches(db: TestDatabase) {
    use doorstep_domain::calendar::{Notice, SpecialDay};
    let w = World::new(db, at("2026-12-01T10:00:00+08:00")).await;
    // Due in early December: before anything the 2027 notice declares.
    let early = w
        .file("SD-EARLY", "lighting.stairwell", Some(Level::Difficult))
        .await;
    w.clock.set(at("2026-12-30T10:00:00+08:00"));
    // 3 working days reckoned with Monday to Friday assumed for 2027: 31 Dec, 1 and 4 Jan.
    let moved = w
        .file("SD-MOVED", "lighting.stairwell", Some(Level::Difficult))
        .await;
    // Clock hours: due on 31 December whatever the calendar says.
    let routine = w.file("SD-ROUTINE", "lighting.stairwell", None).await;
    for id in [&early, &moved, &routine] {
        let t = w.engine.get_ticket(&w.principal, id).await.unwrap();
        w.act(
            id,
            Command::Acknowledge {
                unit: t.lead_unit.clone().unwrap(),
            },
        )
        .await;
    }
    let before = w.engine.get_ticket(&w.principal, &moved).await.unwrap();
    assert_eq!(
        before.resolve.as_ref().unwrap().due_at,
        at("2027-01-05T00:00:00+08:00")
    );

    let day = |date: &str| SpecialDay {
        date: date.parse().unwrap(),
        off: true,
        name: "元旦".into(),
        notice: 2027,
    };
    let retimed = w
        .engine
        .put_calendar_notice(
            Notice {
                year: 2027,
                source: "国务院办公厅关于2027年部分节假日安排的通知（测试）".into(),
            },
            vec![day("2027-01-01"), day("2027-01-04")],
        )
        .await
        .unwrap();
    // Found through the timer index: the early ticket's timers lie before the change, unread.
    assert_eq!(retimed.examined, 2);
    assert_eq!(retimed.retimed, 1);
    assert_eq!(w.kinds(&moved).await.last(), Some(&"RETIMED"));
    assert_ne!(w.kinds(&early).await.last(), Some(&"RETIMED"));
    assert_ne!(w.kinds(&routine).await.last(), Some(&"RETIMED"));
    let after = w.engine.get_ticket(&w.principal, &moved).await.unwrap();
    let r = after.resolve.as_ref().unwrap();
    assert_eq!(r.due_at, at("2027-01-07T00:00:00+08:00"));
    assert!(r.fallback_years.is_empty());
    // Its policy version is untouched: only the calendar moved it.
    assert_eq!(after.policy_version, before.policy_version);

    // The old deadline passes quietly; the new one escalates, from the new instant.
    w.advance_to(at("2027-01-05T00:00:01+08:00")).await;
    let t = w.engine.get_ticket(&w.principal, &moved).await.unwrap();
    assert_eq!(t.level, Level::Difficult);
    w.advance_to(at("2027-01-07T00:00:01+08:00")).await;
    let t = w.engine.get_ticket(&w.principal, &moved).await.unwrap();
    assert_eq!(t.level, Level::Hard);
    assert_eq!(
        t.resolve.as_ref().unwrap().started_at,
        at("2027-01-07T00:00:00+08:00")
    );
}

async fn a_calendar_change_cut_short_by_a_crash_is_retimed_on_the_next_start(db: TestDatabase) {
    use doorstep_domain::calendar::{Notice, SpecialDay};
    let w = World::new(db, at("2026-12-30T10:00:00+08:00")).await;
    // 3 working days reckoned with Monday to Friday assumed for 2027: due at the start of 5 January.
    let id = w
        .file("SD-CRASH", "lighting.stairwell", Some(Level::Difficult))
        .await;
    let t = w.engine.get_ticket(&w.principal, &id).await.unwrap();
    w.act(
        &id,
        Command::Acknowledge {
            unit: t.lead_unit.clone().unwrap(),
        },
    )
    .await;
    let day = |date: &str| SpecialDay {
        date: date.parse().unwrap(),
        off: true,
        name: "元旦".into(),
        notice: 2027,
    };
    // The notice is stored, and the process dies before it re-times anything.
    let store = Arc::clone(&w.db.store);
    store
        .put_calendar_notice(
            &Notice {
                year: 2027,
                source: "国务院办公厅关于2027年部分节假日安排的通知（测试）".into(),
            },
            &[day("2027-01-01"), day("2027-01-04")],
        )
        .await
        .unwrap();
    let pending = store.pending_retimings().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].0, 2027);
    assert!(!pending[0].1.covers(2027), "2027 had no notice before");
    let stale = w.engine.get_ticket(&w.principal, &id).await.unwrap();
    assert_eq!(
        stale.resolve.as_ref().unwrap().due_at,
        at("2027-01-05T00:00:00+08:00")
    );

    // The next start finishes the re-timing before anything fires, and only once.
    let restarted = Engine::open(Arc::clone(&store), w.clock.clone())
        .await
        .unwrap();
    let t = restarted.get_ticket(&w.principal, &id).await.unwrap();
    assert_eq!(
        t.resolve.as_ref().unwrap().due_at,
        at("2027-01-07T00:00:00+08:00")
    );
    assert_eq!(w.kinds(&id).await.last(), Some(&"RETIMED"));
    assert!(store.pending_retimings().await.unwrap().is_empty());
    Engine::open(Arc::clone(&store), w.clock.clone())
        .await
        .unwrap();
    let retimed = w.kinds(&id).await;
    assert_eq!(retimed.iter().filter(|k| **k == "RETIMED").count(), 1);
}

async fn open_tickets_are_retimed_under_a_new_policy_only_on_purpose(db: TestDatabase) {
    // Monday 2 November 2026: DIFFICULT is 3 working days, to the end of Thursday.
    let w = World::new(db, at("2026-11-02T10:00:00+08:00")).await;
    let open = w
        .file("SD-OPEN", "lighting.stairwell", Some(Level::Difficult))
        .await;
    let cancelled = w
        .file("SD-GONE", "lighting.stairwell", Some(Level::Difficult))
        .await;
    w.act(
        &cancelled,
        Command::Cancel {
            reason: "duplicate call".into(),
        },
    )
    .await;
    let v2 = w
        .engine
        .put_policy("[levels.difficult]\nresolve_within = \"5 working days\"\n")
        .await
        .unwrap();
    // A new policy alone changes no open ticket.
    let t = w.engine.get_ticket(&w.principal, &open).await.unwrap();
    assert_eq!(t.policy_version, 1);
    assert_eq!(
        t.resolve.as_ref().unwrap().due_at,
        at("2026-11-06T00:00:00+08:00")
    );

    let done = w.engine.retime_to_policy(v2.version, None).await.unwrap();
    assert_eq!(
        (done.examined, done.retimed),
        (1, 1),
        "the cancelled ticket is not read"
    );
    let t = w.engine.get_ticket(&w.principal, &open).await.unwrap();
    assert_eq!(t.policy_version, v2.version);
    assert_eq!(
        t.resolve.as_ref().unwrap().due_at,
        at("2026-11-10T00:00:00+08:00")
    );
    assert_eq!(w.kinds(&open).await.last(), Some(&"RETIMED"));
    // Again: nothing to do.
    let again = w.engine.retime_to_policy(v2.version, None).await.unwrap();
    assert_eq!(again.retimed, 0);
    // The old deadline passes quietly; the scheduler keeps to the new one.
    w.advance_to(at("2026-11-06T00:00:01+08:00")).await;
    let t = w.engine.get_ticket(&w.principal, &open).await.unwrap();
    assert_eq!(t.level, Level::Difficult);
    w.advance_to(at("2026-11-10T00:00:01+08:00")).await;
    let t = w.engine.get_ticket(&w.principal, &open).await.unwrap();
    assert_eq!(t.level, Level::Hard);
    // An unknown version or node says so.
    assert!(w.engine.retime_to_policy(99, None).await.is_err());
    let nowhere = NodeCode::parse("lixia/nowhere").unwrap();
    assert!(
        w.engine
            .retime_to_policy(v2.version, Some(&nowhere))
            .await
            .is_err()
    );
}
