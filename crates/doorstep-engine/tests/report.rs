#![allow(unreachable_pub)]
//! The SLA report against a brute-force recomputation from the event history, on both backends.
//!
//! A year and two months of random ticket lives under a manual clock (intake, dispatch, sign-for on
//! time or late, returns, suspensions, extensions, escalations by hand and by the breach timers,
//! resolutions, callbacks, merges, cancellations), then every figure of several reports is checked
//! against figures recomputed here from `events_after`, written independently of the store's rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use doorstep_domain::{
    Caller, Category, Change, Channel, Clock as _, ClockKind, Command, Event, Intake, Level,
    ManualClock, NodeCode, Satisfaction, Status, TicketId, UnitCode, replay,
};
use doorstep_engine::{
    Action, Engine, Error, PeriodStep, Principal, ReportBy, SlaReportRequest, SlaRow,
};
use doorstep_store::Store;
use doorstep_store::testing::{TestDatabase, TestDb};

const LIXIA: &str = include_str!("../../../deploy/examples/lixia.toml");

const NODES: &[&str] = &[
    "lixia/jiefanglu/jiefangqiao/yard-129",
    "lixia/jiefanglu/jiefangqiao/yard-129/b1",
    "lixia/jiefanglu/jiefangqiao/south",
    "lixia/jiefanglu/jiefangqiao/shops",
    "lixia/jiefanglu/jiefangqiao",
    "lixia/qianfoshan/lishanmingjun/phase-1",
    "lixia/qianfoshan/lishanmingjun/phase-2",
    "lixia/zhiyuan/jilian/refinery-dorm",
    "lixia/zhiyuan/jilian/gongyenan-88",
    "lixia/jianzhuxincun/hepingxincun/east",
    "lixia/jianzhuxincun/hepingxincun/west",
    "lixia/dianliuxincun/dianliu-1/area-1",
    "lixia",
];
const CATEGORIES: &[&str] = &[
    "lighting.stairwell",
    "sanitation.garbage",
    "greening.pruning",
    "water.supply",
    "power.outage",
    "noise.disturbance",
];

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn local() -> FixedOffset {
    // Asia/Shanghai has kept +08:00 all year since 1991.
    FixedOffset::east_opt(8 * 3600).unwrap()
}

fn local_day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    local()
        .with_ymd_and_hms(y, m, d, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

struct World {
    clock: Arc<ManualClock>,
    engine: Engine,
    /// The store the engine was opened on.
    store: Arc<dyn Store>,
    principal: Principal,
    rng: Rng,
    open: Vec<TicketId>,
    all: Vec<TicketId>,
    filed: u64,
}

impl World {
    async fn new(db: &TestDatabase, start: DateTime<Utc>, seed: u64) -> World {
        World::on(Arc::clone(&db.store), start, seed).await
    }

    async fn on(store: Arc<dyn Store>, start: DateTime<Utc>, seed: u64) -> World {
        let clock = Arc::new(ManualClock::new(start));
        let engine = Engine::open(Arc::clone(&store), clock.clone())
            .await
            .unwrap();
        engine.import_district(LIXIA).await.unwrap();
        World {
            clock,
            engine,
            store,
            principal: Principal::local(),
            rng: Rng(seed),
            open: Vec::new(),
            all: Vec::new(),
            filed: 0,
        }
    }

    async fn file(&mut self) {
        self.filed += 1;
        let level = if self.rng.chance(20) {
            Some(*self.rng.pick(&[
                Level::Routine,
                Level::Difficult,
                Level::Hard,
                Level::MajorRisk,
            ]))
        } else {
            None
        };
        let intake = Intake {
            source: Channel::Hotline12345,
            external_ref: format!("SD-{}", self.filed),
            caller: Caller {
                name: "张女士".into(),
                phone: "13800000000".into(),
                confidential: false,
            },
            category: Category::parse(*self.rng.pick(CATEGORIES)).unwrap(),
            content: "随机工单".into(),
            address: String::new(),
            node: NodeCode::parse(*self.rng.pick(NODES)).unwrap(),
            occurred_at: None,
            attachment_urls: vec![],
        };
        let (ticket, created) = self
            .engine
            .create_ticket(&self.principal, intake, level)
            .await
            .unwrap();
        assert!(created);
        self.open.push(ticket.id.clone());
        self.all.push(ticket.id);
    }

    async fn act(&mut self, id: &TicketId, action: Action) {
        let version = self
            .engine
            .get_ticket(&self.principal, id)
            .await
            .unwrap()
            .version;
        match self.engine.act(&self.principal, id, version, action).await {
            Ok(_) | Err(Error::NotApplicable(_)) | Err(Error::Invalid { .. }) => {}
            Err(e) => panic!("{id}: {e}"),
        }
    }

    /// One random step in a random open ticket's life.
    async fn step(&mut self, index: usize) {
        let id = self.open[index].clone();
        let ticket = self.engine.get_ticket(&self.principal, &id).await.unwrap();
        if ticket.status.is_terminal() {
            self.open.swap_remove(index);
            return;
        }
        let reason = || "随机".to_owned();
        let r = self.rng.below(100);
        let command = if ticket.pending_extension.is_some() && r < 50 {
            Command::DecideExtension {
                approve: self.rng.chance(60),
                reason: reason(),
            }
        } else {
            match ticket.status {
                Status::New | Status::Returned => {
                    let action = if r < 60 {
                        Action::DispatchByCatalogue { reason: reason() }
                    } else {
                        Action::Command(Command::Dispatch {
                            unit: UnitCode::parse("community/jiefangqiao").unwrap(),
                            reason: reason(),
                        })
                    };
                    return self.act(&id, action).await;
                }
                Status::Dispatched => {
                    let unit = ticket.lead_unit.clone().unwrap();
                    match r {
                        0..60 => Command::Acknowledge { unit },
                        60..70 => Command::Return {
                            unit,
                            reason: reason(),
                        },
                        70..75 => Command::Cancel { reason: reason() },
                        _ => return,
                    }
                }
                Status::InProgress => match r {
                    0..35 => Command::Resolve {
                        resolution: "已处理".into(),
                    },
                    35..45 => Command::Suspend { reason: reason() },
                    45..50 => Command::Escalate {
                        reason: reason(),
                        owner_unit: None,
                        case_owner: None,
                    },
                    50..55 => Command::Urge { reason: reason() },
                    55..59 => {
                        let into = self.rng.pick(&self.all).clone();
                        if into == id {
                            return;
                        }
                        Command::Merge {
                            into,
                            reason: "重复".into(),
                        }
                    }
                    59..62 => Command::Cancel { reason: reason() },
                    62..67 => Command::RequestExtension {
                        days: 1 + self.rng.below(3) as u32,
                        reason: reason(),
                    },
                    67..70 => Command::Reclassify {
                        level: *self
                            .rng
                            .pick(&[Level::Routine, Level::Difficult, Level::Hard]),
                        reason: reason(),
                        case_owner: None,
                    },
                    _ => return,
                },
                Status::Suspended if r < 50 => Command::Resume { reason: reason() },
                Status::Resolved => match r {
                    0..55 => Command::RecordCallback {
                        satisfaction: *self.rng.pick(&[
                            Satisfaction::Satisfied,
                            Satisfaction::Satisfied,
                            Satisfaction::BasicallySatisfied,
                            Satisfaction::Dissatisfied,
                            Satisfaction::NoAnswer,
                        ]),
                        matter_solved: self.rng.chance(80),
                        comment: String::new(),
                    },
                    55..65 => Command::Close { reason: reason() },
                    _ => return,
                },
                _ => return,
            }
        };
        self.act(&id, Action::Command(command)).await;
    }

    /// What the scheduler does: fire every due timer through the engine until none is left.
    async fn fire_due(&self) {
        let now = self.clock.now();
        loop {
            let due = self
                .store
                .claim_due_timers(now, 256, "test", now + Duration::minutes(1))
                .await
                .unwrap();
            if due.is_empty() {
                return;
            }
            for d in due {
                self.engine.fire(&d.ticket_id, &d.timer).await.unwrap();
            }
        }
    }

    /// Random lives from `start` to `end`.
    async fn simulate(&mut self, end: DateTime<Utc>) {
        while self.clock.now() < end {
            let step = Duration::minutes(30 + self.rng.below(9 * 60) as i64);
            self.clock.set((self.clock.now() + step).min(end));
            // The scheduler is down now and then: tickets stay overdue until it is back.
            // ... and down for the last two days, so that some tickets are overdue now.
            if self.rng.chance(60) && self.clock.now() < end - Duration::days(2) {
                self.fire_due().await;
            }
            if self.rng.chance(55) {
                self.file().await;
            }
            // Enough hands that the open tickets stay a working set, not a growing pile; none in
            // the last three days (a holiday), so that some tickets are overdue now.
            let hands = if self.clock.now() < end - Duration::days(3) {
                1 + self.rng.below(3) + self.open.len() as u64 / 6
            } else {
                0
            };
            for _ in 0..hands {
                if self.open.is_empty() {
                    break;
                }
                let i = self.rng.below(self.open.len() as u64) as usize;
                self.step(i).await;
            }
        }
    }
}

/// One ticket's history, as the brute force reads it.
struct History {
    node_path: String,
    events: Vec<Event>,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

impl History {
    fn created(&self) -> (i64, Level, String) {
        match &self.events[0].change {
            Change::Created { intake, level, .. } => (
                ms(self.events[0].at),
                *level,
                intake.category.as_str().to_owned(),
            ),
            other => panic!("first event is {}", other.kind()),
        }
    }

    fn is_dispatch(e: &Event) -> Option<DateTime<Utc>> {
        match &e.change {
            Change::DispatchedTo { acknowledge, .. } => Some(acknowledge.due_at),
            Change::Escalated {
                dispatch: Some(d), ..
            } => Some(d.acknowledge.due_at),
            _ => None,
        }
    }

    /// (first dispatch instant, signed for on time).
    fn first_dispatch(&self) -> Option<(i64, bool)> {
        let i = self
            .events
            .iter()
            .position(|e| Self::is_dispatch(e).is_some())?;
        let due = Self::is_dispatch(&self.events[i]).unwrap();
        let next = self.events[i + 1..].iter().find(|e| {
            matches!(
                e.change,
                Change::Acknowledged { .. } | Change::ReturnedByUnit { .. }
            ) || Self::is_dispatch(e).is_some()
        });
        let on_time = next
            .is_some_and(|e| matches!(e.change, Change::Acknowledged { .. }) && ms(e.at) < ms(due));
        Some((ms(self.events[i].at), on_time))
    }

    /// (first resolution instant, no RESOLVE breach before it).
    fn first_resolution(&self) -> Option<(i64, bool)> {
        let i = self
            .events
            .iter()
            .position(|e| matches!(e.change, Change::ResolvedByUnit { .. }))?;
        let breached = self.events[..i].iter().any(|e| {
            matches!(
                e.change,
                Change::Breached {
                    clock: ClockKind::Resolve,
                    ..
                }
            )
        });
        Some((ms(self.events[i].at), !breached))
    }

    fn merged_at(&self) -> Option<i64> {
        self.events
            .iter()
            .find(|e| matches!(e.change, Change::MergedInto { .. }))
            .map(|e| ms(e.at))
    }

    fn overdue_at(&self, t: DateTime<Utc>) -> bool {
        let upto: Vec<Event> = self
            .events
            .iter()
            .take_while(|e| ms(e.at) <= ms(t))
            .cloned()
            .collect();
        !upto.is_empty() && replay(&upto).unwrap().is_overdue(t)
    }

    fn breached_at(&self, t: DateTime<Utc>) -> bool {
        let upto: Vec<Event> = self
            .events
            .iter()
            .take_while(|e| ms(e.at) <= ms(t))
            .cloned()
            .collect();
        !upto.is_empty() && replay(&upto).unwrap().is_breached()
    }
}

/// The expected figures of one row over a set of tickets.
fn expected(
    key: &str,
    tickets: &[&History],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> SlaRow {
    let (f, t) = (ms(from), ms(to));
    let within = |x: i64| f <= x && x < t;
    let mut row = SlaRow {
        key: key.to_owned(),
        received: 0,
        resolved: 0,
        resolved_on_time: 0,
        overdue_now: 0,
        breached_now: 0,
        escalations: 0,
        dispatched: 0,
        acknowledged_on_time: 0,
        callbacks: 0,
        callbacks_satisfied: 0,
        callbacks_solved: 0,
        repeat_requests: 0,
        on_time_rate: 0.0,
        acknowledge_rate: 0.0,
        resolution_rate: 0.0,
        satisfaction_rate: 0.0,
        resolve_seconds_mean: 0.0,
        resolve_seconds_p50: 0.0,
        resolve_seconds_p90: 0.0,
        received_year_before: 0,
        received_change: 0.0,
    };
    let shift = |x: DateTime<Utc>| {
        let l = x.with_timezone(&local());
        let d = l.date_naive();
        let d = NaiveDate::from_ymd_opt(d.year() - 1, d.month(), d.day())
            .unwrap_or_else(|| NaiveDate::from_ymd_opt(d.year() - 1, d.month(), 28).unwrap());
        ms(local()
            .from_local_datetime(&d.and_time(l.time()))
            .unwrap()
            .with_timezone(&Utc))
    };
    let (yf, yt) = (shift(from), shift(to));
    let mut durations = Vec::new();
    for h in tickets {
        let (created, _, _) = h.created();
        if within(created) {
            row.received += 1;
        }
        if yf <= created && created < yt {
            row.received_year_before += 1;
        }
        if let Some((at, on_time)) = h.first_resolution()
            && within(at)
        {
            row.resolved += 1;
            row.resolved_on_time += i64::from(on_time);
            durations.push(at - created);
        }
        if let Some((at, on_time)) = h.first_dispatch()
            && within(at)
        {
            row.dispatched += 1;
            row.acknowledged_on_time += i64::from(on_time);
        }
        if h.merged_at().is_some_and(within) {
            row.repeat_requests += 1;
        }
        for e in &h.events {
            if !within(ms(e.at)) {
                continue;
            }
            match &e.change {
                Change::Escalated { .. } => row.escalations += 1,
                Change::CallbackRecorded {
                    satisfaction,
                    matter_solved,
                    ..
                } if *satisfaction != Satisfaction::NoAnswer => {
                    row.callbacks += 1;
                    row.callbacks_satisfied += i64::from(matches!(
                        satisfaction,
                        Satisfaction::Satisfied | Satisfaction::BasicallySatisfied
                    ));
                    row.callbacks_solved += i64::from(*matter_solved);
                }
                _ => {}
            }
        }
        if h.overdue_at(to.min(now)) {
            row.overdue_now += 1;
        }
        if h.breached_at(to.min(now)) {
            row.breached_now += 1;
        }
    }
    let rate = |n: i64, d: i64| {
        if d == 0 {
            f64::NAN
        } else {
            n as f64 / d as f64
        }
    };
    row.on_time_rate = rate(row.resolved_on_time, row.resolved);
    row.acknowledge_rate = rate(row.acknowledged_on_time, row.dispatched);
    row.resolution_rate = rate(row.callbacks_solved, row.callbacks);
    row.satisfaction_rate = rate(row.callbacks_satisfied, row.callbacks);
    row.received_change = rate(
        row.received - row.received_year_before,
        row.received_year_before,
    );
    durations.sort_unstable();
    let n = durations.len();
    let nearest_rank = |p: usize| {
        if n == 0 {
            f64::NAN
        } else {
            durations[(p * n).div_ceil(100) - 1] as f64 / 1000.0
        }
    };
    row.resolve_seconds_mean = if n == 0 {
        f64::NAN
    } else {
        durations.iter().sum::<i64>() as f64 / n as f64 / 1000.0
    };
    row.resolve_seconds_p50 = nearest_rank(50);
    row.resolve_seconds_p90 = nearest_rank(90);
    row
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

fn assert_rows(what: &str, got: &[SlaRow], want: &[SlaRow]) {
    let keys = |rows: &[SlaRow]| rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(got), keys(want), "{what}: row keys");
    for (g, w) in got.iter().zip(want) {
        let ints = |r: &SlaRow| {
            [
                r.received,
                r.resolved,
                r.resolved_on_time,
                r.overdue_now,
                r.breached_now,
                r.escalations,
                r.dispatched,
                r.acknowledged_on_time,
                r.callbacks,
                r.callbacks_satisfied,
                r.callbacks_solved,
                r.repeat_requests,
                r.received_year_before,
            ]
        };
        let floats = |r: &SlaRow| {
            [
                r.on_time_rate,
                r.acknowledge_rate,
                r.resolution_rate,
                r.satisfaction_rate,
                r.resolve_seconds_mean,
                r.resolve_seconds_p50,
                r.resolve_seconds_p90,
                r.received_change,
            ]
        };
        assert_eq!(ints(g), ints(w), "{what}, row {}: counts", w.key);
        for (i, (a, b)) in floats(g).iter().zip(floats(w)).enumerate() {
            assert!(
                same(*a, b),
                "{what}, row {}: float #{i}: got {a}, want {b}",
                w.key
            );
        }
    }
}

doorstep_store::both_backends!(
    every_figure_matches_the_history,
    bad_requests_name_the_field,
    rows_are_backfilled_for_a_database_from_before_reporting,
);

/// The reports worth comparing: whole, per child, per level, per day.
async fn sample_reports(engine: &Engine, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<SlaRow> {
    let mut rows = Vec::new();
    for by in [
        ReportBy::Whole,
        ReportBy::ChildNode,
        ReportBy::Level,
        ReportBy::Category,
        ReportBy::Period(PeriodStep::Day),
    ] {
        let request = SlaReportRequest {
            node: NodeCode::parse("lixia").unwrap(),
            from,
            to,
            by,
        };
        rows.extend(
            engine
                .sla_report(&Principal::local(), &request)
                .await
                .unwrap()
                .rows,
        );
    }
    rows
}

async fn rows_are_backfilled_for_a_database_from_before_reporting(db: TestDb) {
    let (from, to) = (local_day(2026, 10, 1), local_day(2026, 11, 10));
    let mut w = World::on(db.open().await, from + Duration::hours(8), 11).await;
    w.simulate(to - Duration::days(5)).await;
    let before = sample_reports(&w.engine, from, to).await;
    assert!(before[0].received > 50 && before[0].resolved > 0);
    // An open ticket, so that it takes a note.
    let tickets = w.open.clone();
    let now = w.clock.now();
    drop(w);

    // As a database migrated before 0003 would be once 0003 ran: no rows, not backfilled yet.
    for sql in [
        "DELETE FROM report_marks",
        "DELETE FROM report_overdue",
        "DELETE FROM report_facts",
        "UPDATE report_state SET backfilled = 0",
    ] {
        db.execute(sql).await;
    }
    let mut w = World::on(db.open().await, now, 12).await;
    assert_rows(
        "backfilled",
        &sample_reports(&w.engine, from, to).await,
        &before,
    );

    // A ticket that lost its rows afterwards gets them back whole on its next commit.
    for table in ["report_marks", "report_overdue", "report_facts"] {
        db.execute(&format!(
            "DELETE FROM {table} WHERE ticket_id = '{}'",
            tickets[0]
        ))
        .await;
    }
    w.act(
        &tickets[0],
        Action::Command(Command::AddNote {
            text: "随访".into(),
        }),
    )
    .await;
    assert_rows(
        "rebuilt",
        &sample_reports(&w.engine, from, to).await,
        &before,
    );
}

async fn histories(engine: &Engine, store: &dyn Store) -> Vec<History> {
    let mut by_ticket: BTreeMap<TicketId, Vec<(i64, Event)>> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = store.events_after(None, after, 5000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in page {
            by_ticket
                .entry(e.ticket_id)
                .or_default()
                .push((e.seq, e.event));
        }
    }
    let district = engine.district();
    by_ticket
        .into_values()
        .map(|mut events| {
            events.sort_by_key(|(seq, _)| *seq);
            let events: Vec<Event> = events.into_iter().map(|(_, e)| e).collect();
            let node = match &events[0].change {
                Change::Created { intake, .. } => intake.node.clone(),
                _ => unreachable!(),
            };
            History {
                node_path: district.jurisdiction.node_path(&node).unwrap(),
                events,
            }
        })
        .collect()
}

async fn every_figure_matches_the_history(db: TestDatabase) {
    let start = local_day(2025, 10, 1) + Duration::hours(8);
    let end = local()
        .with_ymd_and_hms(2026, 11, 29, 17, 40, 0)
        .unwrap()
        .with_timezone(&Utc);
    let mut w = World::new(&db, start, 0x5eed_2026_1129).await;
    w.simulate(end).await;
    let now = w.clock.now();
    let all = histories(&w.engine, &*w.store).await;
    assert!(all.len() >= 1000, "{} tickets", all.len());
    let kinds: std::collections::BTreeSet<&str> = all
        .iter()
        .flat_map(|h| h.events.iter().map(|e| e.change.kind()))
        .collect();
    for kind in [
        "ACKNOWLEDGED",
        "BREACHED",
        "ESCALATED",
        "RESOLVED_BY_UNIT",
        "CALLBACK_RECORDED",
        "MERGED_INTO",
        "CANCELLED_BY",
        "RETURNED_BY_UNIT",
        "SUSPENDED_CLOCK",
        "EXTENSION_APPROVED",
    ] {
        assert!(kinds.contains(kind), "the simulation never produced {kind}");
    }
    let district = w.engine.district();
    let path_of = |code: &str| {
        district
            .jurisdiction
            .node_path(&NodeCode::parse(code).unwrap())
            .unwrap()
    };
    let under = |root: &str| -> Vec<&History> {
        let p = path_of(root);
        all.iter().filter(|h| h.node_path.starts_with(&p)).collect()
    };
    let report = |node: &str, from, to, by| {
        let request = SlaReportRequest {
            node: NodeCode::parse(node).unwrap(),
            from,
            to,
            by,
        };
        let engine = &w.engine;
        async move {
            engine
                .sla_report(&Principal::local(), &request)
                .await
                .unwrap()
        }
    };

    // The district, November 2026 (the window reaches past now).
    let (nov, dec) = (local_day(2026, 11, 1), local_day(2026, 12, 1));
    let got = report("lixia", nov, dec, ReportBy::Whole).await;
    assert_eq!(got.as_of, now);
    let want = [expected("lixia", &under("lixia"), nov, dec, now)];
    assert!(want[0].received > 0 && want[0].resolved > 0 && want[0].callbacks > 0);
    assert!(
        want[0].overdue_now > 0
            && want[0].breached_now > 0
            && want[0].escalations > 0
            && want[0].repeat_requests > 0,
        "{:?}",
        want[0]
    );
    assert!(want[0].received_year_before > 0);
    assert_rows("district November", &got.rows, &want);

    // Per street office, October 2026 (overdue at the end of October).
    let oct = local_day(2026, 10, 1);
    let got = report("lixia", oct, nov, ReportBy::ChildNode).await;
    let mut children: Vec<&str> = district
        .jurisdiction
        .nodes()
        .filter(|n| n.parent.as_ref().map(|p| p.as_str()) == Some("lixia"))
        .map(|n| n.code.as_str())
        .collect();
    children.sort_unstable();
    let mut want = Vec::new();
    let own: Vec<&History> = all
        .iter()
        .filter(|h| h.node_path == path_of("lixia"))
        .collect();
    if !own.is_empty() {
        want.push(expected("lixia", &own, oct, nov, now));
    }
    for child in &children {
        want.push(expected(child, &under(child), oct, nov, now));
    }
    assert_rows("street offices October", &got.rows, &want);

    // One street office by level, mid-September to mid-November.
    let (f, t) = (local_day(2026, 9, 15), local_day(2026, 11, 15));
    let got = report("lixia/jiefanglu", f, t, ReportBy::Level).await;
    let tickets = under("lixia/jiefanglu");
    let want: Vec<SlaRow> = [
        Level::Routine,
        Level::Difficult,
        Level::Hard,
        Level::MajorRisk,
    ]
    .iter()
    .map(|level| {
        let of: Vec<&History> = tickets
            .iter()
            .copied()
            .filter(|h| h.created().1 == *level)
            .collect();
        expected(level.as_str(), &of, f, t, now)
    })
    .collect();
    assert_rows("jiefanglu by level", &got.rows, &want);

    // The district by category over 2026 so far.
    let (f, t) = (local_day(2026, 1, 1), local_day(2027, 1, 1));
    let got = report("lixia", f, t, ReportBy::Category).await;
    let tickets = under("lixia");
    let mut categories: Vec<String> = tickets.iter().map(|h| h.created().2).collect();
    categories.sort();
    categories.dedup();
    let want: Vec<SlaRow> = categories
        .iter()
        .map(|c| {
            let of: Vec<&History> = tickets
                .iter()
                .copied()
                .filter(|h| &h.created().2 == c)
                .collect();
            expected(c, &of, f, t, now)
        })
        .filter(|r| {
            r.received
                + r.resolved
                + r.dispatched
                + r.escalations
                + r.callbacks
                + r.repeat_requests
                + r.overdue_now
                + r.breached_now
                + r.received_year_before
                > 0
        })
        .collect();
    assert_rows("district by category", &got.rows, &want);

    // Periods: ISO weeks of October and November (clipped), months of the whole run, days of a week.
    let periods = [
        (PeriodStep::Week, "lixia/zhiyuan", oct, dec),
        (PeriodStep::Month, "lixia", local_day(2025, 10, 1), dec),
        (
            PeriodStep::Day,
            "lixia",
            local_day(2026, 11, 20),
            local_day(2026, 11, 27),
        ),
    ];
    for (step, node, from, to) in periods {
        let got = report(node, from, to, ReportBy::Period(step)).await;
        let tickets = under(node);
        let mut want = Vec::new();
        let mut day = from.with_timezone(&local()).date_naive();
        day = match step {
            PeriodStep::Week => {
                day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday()))
            }
            PeriodStep::Month => day.with_day(1).unwrap(),
            _ => day,
        };
        loop {
            let begins = local_day(day.year(), day.month(), day.day());
            if begins >= to {
                break;
            }
            let next = match step {
                PeriodStep::Day => day + chrono::Days::new(1),
                PeriodStep::Week => day + chrono::Days::new(7),
                _ => day + chrono::Months::new(1),
            };
            let ends = local_day(next.year(), next.month(), next.day());
            want.push(expected(
                &day.format("%Y-%m-%d").to_string(),
                &tickets,
                begins.max(from),
                ends.min(to),
                now,
            ));
            day = next;
        }
        assert_rows(&format!("{step:?} periods of {node}"), &got.rows, &want);
    }
}

async fn bad_requests_name_the_field(db: TestDatabase) {
    let w = World::new(&db, local_day(2026, 11, 1), 7).await;
    let ask = |node: &str, from, to| SlaReportRequest {
        node: NodeCode::parse(node).unwrap(),
        from,
        to,
        by: ReportBy::Whole,
    };
    let (a, b) = (local_day(2026, 11, 1), local_day(2026, 11, 2));
    let e = w
        .engine
        .sla_report(&w.principal, &ask("lixia", b, a))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid { field, .. } if field == "to"),
        "{e}"
    );
    let e = w
        .engine
        .sla_report(&w.principal, &ask("nowhere", a, b))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::NotFound(what) if what.contains("nowhere")),
        "{e}"
    );
    // Outside the caller's jurisdiction reads as not found.
    let district = w.engine.district();
    let scoped = Principal {
        name: "jiefanglu".into(),
        role: doorstep_engine::access::Role::Reporter,
        scope: Some(NodeCode::parse("lixia/jiefanglu").unwrap()),
        scope_path: district
            .jurisdiction
            .node_path(&NodeCode::parse("lixia/jiefanglu").unwrap()),
        unit: None,
        token: None,
    };
    let e = w
        .engine
        .sla_report(&scoped, &ask("lixia/zhiyuan", a, b))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    assert!(
        w.engine
            .sla_report(&scoped, &ask("lixia/jiefanglu", a, b))
            .await
            .is_ok()
    );
    // Too many period steps.
    let mut request = ask("lixia", local_day(2020, 1, 1), local_day(2026, 1, 1));
    request.by = ReportBy::Period(PeriodStep::Day);
    let e = w
        .engine
        .sla_report(&w.principal, &request)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid { field, .. } if field == "period"),
        "{e}"
    );
}
