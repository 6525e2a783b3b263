#![allow(unreachable_pub)]
//! An action sent with the version last read, after the scheduler recorded something: it goes ahead
//! when the scheduler only raised an alert or moved a clock the action does not answer to, and is a
//! conflict after a breach that escalated, a person's action, or a re-timing of its own clock. Under
//! a manual clock, on both backends.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use doorstep_domain::{
    Caller, Category, Channel, Command, Intake, Level, ManualClock, NodeCode, Status, Ticket,
    TicketId, UnitCode,
};
use doorstep_engine::{Action, Engine, Error, ErrorKind, Principal};
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

fn workers() -> UnitCode {
    UnitCode::parse(WORKERS).unwrap()
}

fn urge(reason: &str) -> Command {
    Command::Urge {
        reason: reason.into(),
    }
}

struct World {
    clock: Arc<ManualClock>,
    engine: Arc<Engine>,
    scheduler: Scheduler,
    principal: Principal,
    _db: TestDatabase,
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
        let scheduler = Scheduler::new(
            Arc::clone(&engine),
            SchedulerConfig {
                owner: "test-scheduler".into(),
                batch: 64,
                ..SchedulerConfig::default()
            },
        );
        World {
            clock,
            engine,
            scheduler,
            principal: Principal::local(),
            _db: db,
        }
    }

    async fn file(&self, reference: &str, level: Option<Level>) -> TicketId {
        let (t, created) = self
            .engine
            .create_ticket(
                &self.principal,
                Intake {
                    source: Channel::Hotline12345,
                    external_ref: reference.into(),
                    caller: Caller::default(),
                    category: Category::parse("lighting.stairwell").unwrap(),
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

    /// The ticket as a console reads it.
    async fn read(&self, id: &TicketId) -> Ticket {
        self.engine.get_ticket(&self.principal, id).await.unwrap()
    }

    /// The action, sent with `version`.
    async fn act(&self, id: &TicketId, version: i64, command: Command) -> Result<Ticket, Error> {
        self.engine
            .act(&self.principal, id, version, Action::Command(command))
            .await
    }

    /// Moves the clock and runs one scheduler round; returns the kinds it recorded on `id`.
    async fn advance_to(&self, id: &TicketId, t: DateTime<Utc>) -> Vec<&'static str> {
        let before = self.kinds(id).await.len();
        self.clock.set(t);
        self.scheduler.tick().await.unwrap();
        self.kinds(id).await.split_off(before)
    }

    async fn kinds(&self, id: &TicketId) -> Vec<&'static str> {
        let (_, history, _) = self.engine.timeline(&self.principal, id).await.unwrap();
        history.iter().map(|e| e.event.change.kind()).collect()
    }
}

/// A conflict, answered ABORTED on the wire, telling the caller to read the ticket again.
#[track_caller]
fn assert_conflict(answer: Result<Ticket, Error>) {
    match answer {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
            assert!(e.to_string().contains("reload it"), "{e}");
        }
        Ok(t) => panic!("went ahead at version {}", t.version),
    }
}

doorstep_store::both_backends!(
    a_yellow_card_does_not_abort_a_sign_for_read_before_it,
    review_alerts_do_not_abort_a_note_read_before_them,
    a_breach_that_escalated_aborts_an_action_read_before_it,
    a_persons_action_in_between_aborts_even_after_a_yellow_card,
    a_calendar_retiming_aborts_only_actions_answering_to_the_clock_it_moved,
    a_version_the_ticket_never_had_is_a_conflict,
    sign_fors_racing_the_schedulers_yellow_cards_all_go_ahead,
);

async fn a_yellow_card_does_not_abort_a_sign_for_read_before_it(db: TestDatabase) {
    // Monday 2 March 2026, 10:00 in Jinan: dispatched to the workers, 2 h to sign for it.
    let w = World::new(db, at("2026-03-02T10:00:00+08:00")).await;
    let id = w.file("SD-W", None).await;
    let read = w.read(&id).await;
    assert_eq!(read.status, Status::Dispatched);
    // 75% of 2 h: the yellow card on the sign-for clock.
    assert_eq!(
        w.advance_to(&id, at("2026-03-02T11:40:00+08:00")).await,
        ["WARNING"]
    );
    let signed = w
        .act(&id, read.version, Command::Acknowledge { unit: workers() })
        .await
        .expect("the warning changed nothing the sign-for depends on");
    assert_eq!(signed.status, Status::InProgress);
    assert_eq!(signed.version, read.version + 2);
    // Decided on the ticket as it is: the sign-for was in time, so no breach follows.
    assert!(
        w.advance_to(&id, at("2026-03-02T12:10:00+08:00"))
            .await
            .is_empty()
    );
}

async fn review_alerts_do_not_abort_a_note_read_before_them(db: TestDatabase) {
    let w = World::new(db, at("2026-03-02T10:00:00+08:00")).await;
    let id = w.file("SD-M", Some(Level::MajorRisk)).await;
    let read = w.read(&id).await;
    // MAJOR_RISK: 30 min to sign for it, the yellow card at 22.5 min.
    assert_eq!(
        w.advance_to(&id, at("2026-03-02T10:25:00+08:00")).await,
        ["WARNING"]
    );
    w.act(&id, read.version, Command::Acknowledge { unit: workers() })
        .await
        .expect("the warning changed nothing the sign-for depends on");
    let read = w.read(&id).await;
    // The case owner's review was due by the end of the next working day (Tuesday), and the one
    // after it by the end of the working day after that (Thursday).
    assert_eq!(
        w.advance_to(&id, at("2026-03-04T01:00:00+08:00")).await,
        ["REVIEW_MISSED"]
    );
    assert_eq!(
        w.advance_to(&id, at("2026-03-06T01:00:00+08:00")).await,
        ["REVIEW_MISSED"]
    );
    let noted = w
        .act(
            &id,
            read.version,
            Command::AddNote {
                text: "现场已处置，继续监测".into(),
            },
        )
        .await
        .expect("review alerts change nothing a note depends on");
    assert_eq!(noted.version, read.version + 3);
    // The note is the review: the next one falls due by the end of the next working day (Monday).
    assert_eq!(
        noted.review.as_ref().unwrap().due_at,
        at("2026-03-10T00:00:00+08:00")
    );
}

async fn a_breach_that_escalated_aborts_an_action_read_before_it(db: TestDatabase) {
    let w = World::new(db, at("2026-03-02T10:00:00+08:00")).await;
    let id = w.file("SD-B", None).await;
    let read = w.read(&id).await;
    w.act(&id, read.version, Command::Acknowledge { unit: workers() })
        .await
        .unwrap();
    let read = w.read(&id).await;
    // 75% of 24 h: the yellow card on the resolve clock; an urge read before it goes ahead.
    assert_eq!(
        w.advance_to(&id, at("2026-03-03T04:10:00+08:00")).await,
        ["WARNING"]
    );
    let urged = w.act(&id, read.version, urge("快点")).await.unwrap();
    // The red card at 24 h: DIFFICULT, with the community leading.
    let kinds = w.advance_to(&id, at("2026-03-03T10:10:00+08:00")).await;
    assert_eq!(&kinds[..2], ["BREACHED", "ESCALATED"], "{kinds:?}");
    let now = w.read(&id).await;
    assert_eq!(now.level, Level::Difficult);
    assert_conflict(w.act(&id, urged.version, urge("再催")).await);
    assert_conflict(
        w.act(
            &id,
            urged.version,
            Command::Resolve {
                resolution: "已修好".into(),
            },
        )
        .await,
    );
    assert_eq!(w.read(&id).await.version, now.version, "nothing recorded");
    // Read again, it goes ahead.
    w.act(&id, now.version, urge("再催")).await.unwrap();
}

async fn a_persons_action_in_between_aborts_even_after_a_yellow_card(db: TestDatabase) {
    let w = World::new(db, at("2026-03-02T10:00:00+08:00")).await;
    let id = w.file("SD-P", None).await;
    let read = w.read(&id).await;
    assert_eq!(
        w.advance_to(&id, at("2026-03-02T11:40:00+08:00")).await,
        ["WARNING"]
    );
    // One dispatcher urges on the version read before the warning; the second, on the same version,
    // did not see that urge.
    let urged = w.act(&id, read.version, urge("催办")).await.unwrap();
    assert_conflict(w.act(&id, read.version, urge("催办")).await);
    assert_conflict(
        w.act(&id, read.version, Command::Acknowledge { unit: workers() })
            .await,
    );
    // A person's action alone, with nothing from the scheduler, conflicts as well.
    let noted = w
        .act(
            &id,
            urged.version,
            Command::AddNote {
                text: "已电话联系".into(),
            },
        )
        .await
        .unwrap();
    assert_conflict(w.act(&id, urged.version, urge("再催")).await);
    assert_eq!(w.read(&id).await.version, noted.version, "nothing recorded");
}

async fn a_calendar_retiming_aborts_only_actions_answering_to_the_clock_it_moved(db: TestDatabase) {
    use doorstep_domain::calendar::{Notice, SpecialDay};
    // DIFFICULT, filed on Wednesday 30 December: its 3 working days run into 2027, a year the
    // calendar does not declare yet.
    let w = World::new(db, at("2026-12-30T10:00:00+08:00")).await;
    let id = w.file("SD-C", Some(Level::Difficult)).await;
    let read = w.read(&id).await;
    w.act(&id, read.version, Command::Acknowledge { unit: workers() })
        .await
        .unwrap();
    let read = w.read(&id).await;
    let day = |date: &str| SpecialDay {
        date: date.parse().unwrap(),
        off: true,
        name: "元旦".into(),
        notice: 2027,
    };
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
    assert_eq!(w.kinds(&id).await.last(), Some(&"RETIMED"));
    let moved = w.read(&id).await;
    assert_ne!(
        moved.resolve.as_ref().unwrap().due_at,
        read.resolve.as_ref().unwrap().due_at
    );
    // Asked for against the deadline as it was read: the caller must see the new one first.
    assert_conflict(
        w.act(
            &id,
            read.version,
            Command::RequestExtension {
                days: 2,
                reason: "等待配件".into(),
            },
        )
        .await,
    );
    assert_conflict(
        w.act(
            &id,
            read.version,
            Command::Suspend {
                reason: "居民外出".into(),
            },
        )
        .await,
    );
    assert_eq!(w.read(&id).await.version, moved.version, "nothing recorded");
    // An urge does not answer to the resolve clock: it goes ahead on the version read before.
    let urged = w.act(&id, read.version, urge("催办")).await.unwrap();
    assert_eq!(urged.version, moved.version + 1);
    // Read again, the extension goes ahead.
    w.act(
        &id,
        urged.version,
        Command::RequestExtension {
            days: 2,
            reason: "等待配件".into(),
        },
    )
    .await
    .unwrap();
}

async fn a_version_the_ticket_never_had_is_a_conflict(db: TestDatabase) {
    let w = World::new(db, at("2026-03-02T10:00:00+08:00")).await;
    let id = w.file("SD-V", None).await;
    let read = w.read(&id).await;
    for version in [0, -1, read.version + 1, i64::MAX] {
        assert_conflict(w.act(&id, version, urge("催办")).await);
    }
    assert_eq!(w.read(&id).await.version, read.version);
}

async fn sign_fors_racing_the_schedulers_yellow_cards_all_go_ahead(db: TestDatabase) {
    let w = World::new(db, at("2026-03-02T10:00:00+08:00")).await;
    let mut read = Vec::new();
    for i in 0..20 {
        let id = w.file(&format!("SD-R{i}"), None).await;
        read.push(w.read(&id).await);
    }
    // The yellow cards are due; the units sign for their tickets while the scheduler fires them.
    // A sign-for whose commit loses the race to a warning is decided again on the warned ticket.
    w.clock.set(at("2026-03-02T11:40:00+08:00"));
    let sign_fors: Vec<_> = read
        .into_iter()
        .map(|t| {
            let engine = Arc::clone(&w.engine);
            let principal = w.principal.clone();
            tokio::spawn(async move {
                let command = Command::Acknowledge { unit: workers() };
                engine
                    .act(&principal, &t.id, t.version, Action::Command(command))
                    .await
            })
        })
        .collect();
    w.scheduler.tick().await.unwrap();
    for sign_for in sign_fors {
        let signed = sign_for
            .await
            .unwrap()
            .expect("a yellow card aborts no sign-for");
        assert_eq!(signed.status, Status::InProgress);
    }
}
