//! The conformance cases. Each takes an empty database of its own and must pass on every backend.
//! Tickets are made by the real domain (register, then commands), as the engine makes them.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use doorstep_domain::calendar::{Calendar, Notice, SpecialDay};
use doorstep_domain::{
    Actor, Caller, CatalogueEntry, Category, Channel, Command, Context, District, Event, Intake,
    Jurisdiction, Level, Node, NodeCode, NodeKind, Person, Policy, Registration, Status, Ticket,
    TicketId, Unit, UnitCode, register,
};
use doorstep_store::testing::{Backend, TestDb};
use doorstep_store::{
    Commit, Created, NewTicket, Store, StoreError, StoredEvent, TicketQuery, migrate,
};

// ---- the world the tickets live in ----

const Y1: &str = "lx/s1/c1/y1";
const Y2: &str = "lx/s1/c1/y2";
const Y3: &str = "lx/s2/c2/y3";
const C1: &str = "lx/s1/c1";
const S1: &str = "lx/s1";
const S2: &str = "lx/s2";

/// Monday 2026-11-02, 10:00 in Jinan.
fn t0() -> DateTime<Utc> {
    DateTime::<FixedOffset>::parse_from_rfc3339("2026-11-02T10:00:00+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

fn hours(h: i64) -> Duration {
    Duration::hours(h)
}

fn unit(code: &str) -> UnitCode {
    UnitCode::parse(code).unwrap()
}

fn node_code(code: &str) -> NodeCode {
    NodeCode::parse(code).unwrap()
}

fn person(name: &str, role: &str) -> Person {
    Person {
        name: name.into(),
        role: role.into(),
        phone: "0531-0000".into(),
    }
}

fn district() -> District {
    let node = |code: &str, kind, parent: Option<&str>, board: Vec<Person>| Node {
        code: node_code(code),
        name: format!("{code} 名"),
        kind,
        parent: parent.map(node_code),
        board,
    };
    let office = |code: &str, at: &str, supervisor: Option<&str>| Unit {
        code: unit(code),
        name: format!("{code} office"),
        node: node_code(at),
        department: false,
        supervisor: supervisor.map(unit),
    };
    let department = |code: &str| Unit {
        code: unit(code),
        name: format!("{code} 部门"),
        node: node_code("lx"),
        department: true,
        supervisor: Some(unit("lx/office")),
    };
    let jurisdiction = Jurisdiction::new(
        vec![
            node(
                "lx",
                NodeKind::District,
                None,
                vec![person("王某", "case owner")],
            ),
            node(S1, NodeKind::StreetOffice, Some("lx"), vec![]),
            node(S2, NodeKind::StreetOffice, Some("lx"), vec![]),
            node(C1, NodeKind::Community, Some(S1), vec![]),
            node("lx/s2/c2", NodeKind::Community, Some(S2), vec![]),
            node(
                Y1,
                NodeKind::Compound,
                Some(C1),
                vec![
                    person("张书记", "party branch secretary"),
                    person("李某", "assigned community worker"),
                    person("赵某", "property manager"),
                ],
            ),
            node(Y2, NodeKind::Compound, Some(C1), vec![]),
            node(
                Y3,
                NodeKind::Compound,
                Some("lx/s2/c2"),
                vec![person("孙某", "community police")],
            ),
            node("lx/s1/c1/y1/b1", NodeKind::Building, Some(Y1), vec![]),
        ],
        vec![
            office("lx/office", "lx", None),
            office("lx/s1/office", S1, Some("lx/office")),
            office("lx/s2/office", S2, Some("lx/office")),
            office("lx/s1/c1/office", C1, Some("lx/s1/office")),
            office("lx/s2/c2/office", "lx/s2/c2", Some("lx/s2/office")),
            office("lx/s1/c1/y1/workers", Y1, Some("lx/s1/c1/office")),
            office("lx/s1/c1/y2/workers", Y2, Some("lx/s1/c1/office")),
            office("lx/s2/c2/y3/workers", Y3, Some("lx/s2/c2/office")),
            department("dept/greening"),
            department("dept/water"),
        ],
    )
    .unwrap();
    District {
        jurisdiction,
        catalogue: vec![
            CatalogueEntry {
                category: Category::parse("water.supply").unwrap(),
                name: "二次供水".into(),
                default_level: Level::Routine,
                lead_unit: Some(unit("dept/water")),
                node: None,
            },
            CatalogueEntry {
                category: Category::parse("lighting.stairwell").unwrap(),
                name: "楼道照明".into(),
                default_level: Level::Routine,
                lead_unit: None,
                node: None,
            },
            CatalogueEntry {
                category: Category::parse("lighting.stairwell").unwrap(),
                name: "楼道照明（解放桥）".into(),
                default_level: Level::Difficult,
                lead_unit: Some(unit("lx/s1/c1/office")),
                node: Some(node_code(C1)),
            },
        ],
    }
}

/// The domain's rules and the district, shared by every task of a case.
struct World {
    policy: Policy,
    calendar: Calendar,
    actor: Actor,
    district: District,
}

impl World {
    fn new() -> Arc<World> {
        Arc::new(World {
            policy: Policy::builtin(),
            calendar: Calendar::official(),
            actor: Actor::new("dispatcher-1"),
            district: district(),
        })
    }

    fn ctx(&self, now: DateTime<Utc>) -> Context<'_> {
        Context {
            now,
            actor: &self.actor,
            policy: &self.policy,
            calendar: &self.calendar,
        }
    }

    fn path(&self, node: &str) -> String {
        self.district
            .jurisdiction
            .node_path(&node_code(node))
            .unwrap()
    }

    /// A registered ticket and its CREATED event.
    fn register(
        &self,
        id: &str,
        external_ref: &str,
        node: &str,
        level: Level,
        now: DateTime<Utc>,
    ) -> (Ticket, Vec<Event>) {
        let event = register(
            Registration {
                id: TicketId::parse(id).unwrap(),
                intake: Intake {
                    source: Channel::Hotline12345,
                    external_ref: external_ref.into(),
                    caller: Caller {
                        name: "张女士".into(),
                        phone: "13800000000".into(),
                        confidential: false,
                    },
                    category: Category::parse("water.supply").unwrap(),
                    content: "楼道漏水".into(),
                    address: "解放路129号院3号楼".into(),
                    node: node_code(node),
                    occurred_at: None,
                    attachment_urls: vec![],
                },
                level,
                policy_version: 1,
                case_owner: (level == Level::MajorRisk).then(|| "王某".to_owned()),
            },
            &self.ctx(now),
        )
        .unwrap();
        (Ticket::from_created(&event).unwrap(), vec![event])
    }

    fn act(&self, ticket: &Ticket, command: Command, now: DateTime<Utc>) -> (Ticket, Vec<Event>) {
        let (next, events) = ticket
            .handle(&command, &self.ctx(now))
            .unwrap_or_else(|e| panic!("{command} at {now}: {e}"));
        next.check_invariants().unwrap();
        (next, events)
    }
}

fn dispatch(to: &str) -> Command {
    Command::Dispatch {
        unit: unit(to),
        reason: String::new(),
    }
}

fn urge(reason: &str) -> Command {
    Command::Urge {
        reason: reason.into(),
    }
}

/// Registers a ticket in the store, dispatched to `lead` when given; returns it as stored.
async fn file(
    store: &dyn Store,
    world: &World,
    id: &str,
    node: &str,
    level: Level,
    lead: Option<&str>,
    now: DateTime<Utc>,
) -> Ticket {
    let (mut ticket, mut events) = world.register(id, &format!("REF-{id}"), node, level, now);
    if let Some(lead) = lead {
        let (next, more) = world.act(&ticket, dispatch(lead), now);
        ticket = next;
        events.extend(more);
    }
    let created = store
        .create_ticket(NewTicket {
            ticket: &ticket,
            events: &events,
            node_path: &world.path(node),
        })
        .await
        .unwrap();
    assert!(matches!(created, Created::New(_)), "{created:?}");
    ticket
}

/// Runs a command and commits it; returns the ticket after it.
async fn run(
    store: &dyn Store,
    world: &World,
    ticket: &Ticket,
    command: Command,
    now: DateTime<Utc>,
) -> Ticket {
    let (next, events) = world.act(ticket, command, now);
    store
        .commit(Commit {
            ticket: &next,
            expected_version: ticket.version,
            events: &events,
        })
        .await
        .unwrap();
    next
}

fn assert_increasing(events: &[StoredEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].seq < pair[1].seq,
            "{} then {}",
            pair[0].seq,
            pair[1].seq
        );
    }
}

fn ids(tickets: &[Ticket]) -> Vec<String> {
    tickets.iter().map(|t| t.id.to_string()).collect()
}

// ---- the cases ----

pub(crate) async fn tickets_are_created_read_and_historied(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    assert_eq!(store.last_seq().await.unwrap(), 0);
    assert_eq!(
        store
            .get_ticket(&TicketId::parse("none").unwrap())
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .history(&TicketId::parse("none").unwrap())
            .await
            .unwrap()
            .is_empty()
    );

    let (ticket, mut events) = world.register("t-1", "SD-1", Y1, Level::Routine, t0());
    let (ticket, more) = world.act(&ticket, dispatch("lx/s1/c1/y1/workers"), t0());
    events.extend(more);
    let path = world.path(Y1);
    let Created::New(stored) = store
        .create_ticket(NewTicket {
            ticket: &ticket,
            events: &events,
            node_path: &path,
        })
        .await
        .unwrap()
    else {
        panic!("a new ticket")
    };
    assert_eq!(stored.len(), 2);
    assert_increasing(&stored);
    assert!(stored.iter().all(|s| s.ticket_id == ticket.id));
    assert_eq!(
        stored.iter().map(|s| &s.event).collect::<Vec<_>>(),
        events.iter().collect::<Vec<_>>()
    );

    assert_eq!(
        store.get_ticket(&ticket.id).await.unwrap(),
        Some(ticket.clone())
    );
    assert_eq!(
        store
            .ticket_by_ref(Channel::Hotline12345, "SD-1")
            .await
            .unwrap(),
        Some(ticket.clone())
    );
    assert_eq!(
        store.ticket_by_ref(Channel::Web, "SD-1").await.unwrap(),
        None
    );
    assert_eq!(store.history(&ticket.id).await.unwrap(), stored);
    assert_eq!(store.node_path(&ticket.id).await.unwrap(), Some(path));
    assert_eq!(store.last_seq().await.unwrap(), stored[1].seq);

    let (acknowledged, ack_events) = world.act(
        &ticket,
        Command::Acknowledge {
            unit: unit("lx/s1/c1/y1/workers"),
        },
        t0() + hours(1),
    );
    let committed = store
        .commit(Commit {
            ticket: &acknowledged,
            expected_version: ticket.version,
            events: &ack_events,
        })
        .await
        .unwrap();
    assert_eq!(committed.len(), 1);
    assert!(committed[0].seq > stored[1].seq);
    let history = store.history(&ticket.id).await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[2], committed[0]);
    assert_increasing(&history);

    let other = file(
        &*store,
        &world,
        "t-2",
        Y3,
        Level::Hard,
        None,
        t0() + hours(2),
    )
    .await;
    let other_history = store.history(&other.id).await.unwrap();
    assert!(other_history[0].seq > committed[0].seq);
    assert_eq!(store.history(&ticket.id).await.unwrap(), history);

    // A committed ticket survives closing and reopening the database.
    drop(store);
    let reopened = db.open().await;
    assert_eq!(
        reopened.get_ticket(&ticket.id).await.unwrap(),
        Some(acknowledged)
    );
    assert_eq!(reopened.history(&ticket.id).await.unwrap(), history);
    assert_eq!(reopened.last_seq().await.unwrap(), other_history[0].seq);
}

pub(crate) async fn intake_is_idempotent_under_concurrent_duplicates(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        let world = world.clone();
        tasks.push(tokio::spawn(async move {
            let (ticket, events) =
                world.register(&format!("dup-{i}"), "SAME-REF", Y1, Level::Routine, t0());
            store
                .create_ticket(NewTicket {
                    ticket: &ticket,
                    events: &events,
                    node_path: &world.path(Y1),
                })
                .await
                .unwrap()
        }));
    }
    let mut winners = Vec::new();
    let mut existing = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Created::New(events) => winners.push(events[0].ticket_id.clone()),
            Created::Existing(ticket) => existing.push(*ticket),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one registration wins");
    let winner = &winners[0];
    let stored = store.get_ticket(winner).await.unwrap().unwrap();
    assert_eq!(existing.len(), 15);
    assert!(existing.iter().all(|t| *t == stored));
    assert_eq!(
        store
            .ticket_by_ref(Channel::Hotline12345, "SAME-REF")
            .await
            .unwrap(),
        Some(stored.clone())
    );
    for i in 0..16 {
        let id = TicketId::parse(format!("dup-{i}")).unwrap();
        if &id != winner {
            assert_eq!(store.get_ticket(&id).await.unwrap(), None);
        }
    }
    assert_eq!(
        store.last_seq().await.unwrap(),
        store.history(winner).await.unwrap()[0].seq
    );

    // Later retries too.
    let (again, events) = world.register("dup-late", "SAME-REF", Y1, Level::Routine, t0());
    let created = store
        .create_ticket(NewTicket {
            ticket: &again,
            events: &events,
            node_path: &world.path(Y1),
        })
        .await
        .unwrap();
    assert_eq!(created, Created::Existing(Box::new(stored)));

    // The same id under another reference is not a retry.
    let (clash, events) = world.register(winner.as_str(), "OTHER-REF", Y1, Level::Routine, t0());
    let err = store
        .create_ticket(NewTicket {
            ticket: &clash,
            events: &events,
            node_path: &world.path(Y1),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    assert_eq!(
        store
            .ticket_by_ref(Channel::Hotline12345, "OTHER-REF")
            .await
            .unwrap(),
        None
    );
}

pub(crate) async fn a_stale_version_conflicts_and_writes_nothing(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let ticket = file(
        &*store,
        &world,
        "t-1",
        Y1,
        Level::Routine,
        Some("lx/s1/c1/y1/workers"),
        t0(),
    )
    .await;
    let acknowledged = run(
        &*store,
        &world,
        &ticket,
        Command::Acknowledge {
            unit: unit("lx/s1/c1/y1/workers"),
        },
        t0() + hours(1),
    )
    .await;
    let history = store.history(&ticket.id).await.unwrap();
    let last = store.last_seq().await.unwrap();

    // Decided on the version before the acknowledgement.
    let (stale, events) = world.act(&ticket, urge("faster"), t0() + hours(2));
    let err = store
        .commit(Commit {
            ticket: &stale,
            expected_version: ticket.version,
            events: &events,
        })
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict {
            id,
            expected,
            actual,
        } => {
            assert_eq!(id, ticket.id);
            assert_eq!(expected, ticket.version);
            assert_eq!(actual, acknowledged.version);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.history(&ticket.id).await.unwrap(), history);
    assert_eq!(store.last_seq().await.unwrap(), last);
    assert_eq!(
        store.get_ticket(&ticket.id).await.unwrap(),
        Some(acknowledged.clone())
    );
    let armed = store
        .claim_due_timers(t0() + hours(24 * 30), 100, "check", t0() + hours(24 * 31))
        .await
        .unwrap();
    assert_eq!(
        armed.into_iter().map(|d| d.timer).collect::<Vec<_>>(),
        acknowledged.timers(),
        "the stale commit armed nothing"
    );

    // A ticket that was never registered.
    let (ghost, _) = world.register("ghost", "REF-ghost", Y1, Level::Routine, t0());
    let (ghost_next, events2) = world.act(&ghost, urge("x"), t0());
    let err = store
        .commit(Commit {
            ticket: &ghost_next,
            expected_version: ghost.version,
            events: &events2,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

pub(crate) async fn concurrent_commits_each_get_their_own_result(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let mut tickets = Vec::new();
    for i in 0..8 {
        tickets.push(
            file(
                &*store,
                &world,
                &format!("t-{i}"),
                Y2,
                Level::Routine,
                None,
                t0(),
            )
            .await,
        );
    }
    // Two commits race from the same version of every ticket: one wins, the other conflicts, and
    // neither disturbs the commits of the other tickets.
    let mut tasks = Vec::new();
    for ticket in &tickets {
        for attempt in 0..2 {
            let store = store.clone();
            let world = world.clone();
            let ticket = ticket.clone();
            tasks.push(tokio::spawn(async move {
                let (next, events) = world.act(&ticket, urge(&format!("urge {attempt}")), t0());
                let result = store
                    .commit(Commit {
                        ticket: &next,
                        expected_version: ticket.version,
                        events: &events,
                    })
                    .await;
                (ticket.id.clone(), next, result)
            }));
        }
    }
    let mut won: std::collections::BTreeMap<TicketId, Ticket> = Default::default();
    let mut conflicts = 0;
    for task in tasks {
        let (id, next, result) = task.await.unwrap();
        match result {
            Ok(events) => {
                assert_eq!(events.len(), 1);
                assert!(
                    won.insert(id, next).is_none(),
                    "two commits won the same version"
                );
            }
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(won.len(), 8);
    assert_eq!(conflicts, 8);
    for (id, next) in won {
        assert_eq!(store.get_ticket(&id).await.unwrap(), Some(next));
        assert_eq!(store.history(&id).await.unwrap().len(), 2);
    }
}

pub(crate) async fn timers_follow_commits_and_are_claimed_under_leases(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    assert_eq!(store.next_timer_due().await.unwrap(), None);
    let workers = "lx/s1/c1/y1/workers";
    let ticket = file(
        &*store,
        &world,
        "t-1",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    let armed = ticket.timers();
    assert_eq!(
        armed.len(),
        4,
        "acknowledge and resolve, warning and breach: {armed:?}"
    );
    let mut by_due = armed.clone();
    by_due.sort_by_key(|t| t.due_at);
    let first = by_due[0].clone();
    assert_eq!(store.next_timer_due().await.unwrap(), Some(first.due_at));

    assert!(
        store
            .claim_due_timers(t0(), 10, "a", t0() + hours(1))
            .await
            .unwrap()
            .is_empty()
    );
    let now = first.due_at;
    let lease_end = now + Duration::seconds(60);
    let claimed = store
        .claim_due_timers(now, 10, "a", lease_end)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].ticket_id, ticket.id);
    assert_eq!(claimed[0].timer, first, "the exact timer comes back");

    // Leased: nobody else gets it until the lease ends.
    assert!(
        store
            .claim_due_timers(now, 10, "b", now + hours(1))
            .await
            .unwrap()
            .is_empty()
    );
    let before_end = lease_end - Duration::seconds(1);
    assert!(
        store
            .claim_due_timers(before_end, 10, "b", now + hours(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_timer_due().await.unwrap(), Some(lease_end));

    // A commit that leaves the timer armed as it was keeps the lease.
    let ticket = run(&*store, &world, &ticket, urge("hurry"), now).await;
    assert_eq!(ticket.timers(), armed);
    assert!(
        store
            .claim_due_timers(before_end, 10, "c", now + hours(1))
            .await
            .unwrap()
            .is_empty()
    );

    let reclaimed = store
        .claim_due_timers(lease_end, 10, "b", lease_end + hours(1))
        .await
        .unwrap();
    assert_eq!(
        reclaimed.iter().map(|d| &d.timer).collect::<Vec<_>>(),
        vec![&first]
    );

    // Signing for disarms the acknowledge clock; the resolve clock stays.
    let ticket = run(
        &*store,
        &world,
        &ticket,
        Command::Acknowledge {
            unit: unit(workers),
        },
        now + Duration::seconds(1),
    )
    .await;
    let far = t0() + hours(24 * 30);
    let all = store
        .claim_due_timers(far, 100, "x", far + hours(1))
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|d| d.timer.clone()).collect::<Vec<_>>(),
        ticket.timers()
    );
    assert!(
        all.windows(2)
            .all(|p| p[0].timer.due_at <= p[1].timer.due_at),
        "earliest first"
    );

    // Resolving arms only the callback clock; cancelling disarms everything.
    let ticket = run(
        &*store,
        &world,
        &ticket,
        Command::Resolve {
            resolution: "fixed".into(),
        },
        now + hours(2),
    )
    .await;
    assert_eq!(ticket.timers().len(), 1);
    let due = ticket.timers()[0].due_at;
    assert_eq!(
        store.next_timer_due().await.unwrap(),
        Some(due),
        "re-armed, so no lease"
    );
    let more = store
        .claim_due_timers(far, 100, "x", far + hours(1))
        .await
        .unwrap();
    assert_eq!(
        more.iter().map(|d| d.timer.clone()).collect::<Vec<_>>(),
        ticket.timers()
    );

    // The limit takes the earliest.
    let t2 = file(
        &*store,
        &world,
        "t-2",
        Y2,
        Level::Routine,
        Some("lx/s1/c1/y2/workers"),
        t0() + hours(1),
    )
    .await;
    let t3 = file(
        &*store,
        &world,
        "t-3",
        Y3,
        Level::Routine,
        Some("lx/s2/c2/y3/workers"),
        t0() + hours(2),
    )
    .await;
    let _ = run(
        &*store,
        &world,
        &ticket,
        Command::Close {
            reason: "done".into(),
        },
        now + hours(3),
    )
    .await;
    let two = store
        .claim_due_timers(far, 2, "y", far + hours(1))
        .await
        .unwrap();
    let mut expected: Vec<(DateTime<Utc>, TicketId)> = t2
        .timers()
        .into_iter()
        .map(|t| (t.due_at, t2.id.clone()))
        .chain(t3.timers().into_iter().map(|t| (t.due_at, t3.id.clone())))
        .collect();
    expected.sort();
    assert_eq!(
        two.iter()
            .map(|d| (d.timer.due_at, d.ticket_id.clone()))
            .collect::<Vec<_>>(),
        expected[..2].to_vec()
    );
    for t in [&t2, &t3] {
        let _ = run(
            &*store,
            &world,
            t,
            Command::Cancel {
                reason: "withdrawn".into(),
            },
            now + hours(4),
        )
        .await;
    }
    assert_eq!(store.next_timer_due().await.unwrap(), None);
    assert!(
        store
            .claim_due_timers(far, 100, "z", far + hours(1))
            .await
            .unwrap()
            .is_empty()
    );
}

/// What a console filter means, written out on the tickets themselves.
fn expected(all: &[(Ticket, String)], query: &TicketQuery) -> Vec<String> {
    all.iter()
        .filter(|(t, path)| {
            query
                .subtree
                .as_ref()
                .is_none_or(|root| path.starts_with(root.as_str()))
                && (query.statuses.is_empty() || query.statuses.contains(&t.status))
                && (query.levels.is_empty() || query.levels.contains(&t.level))
                && query.unit.as_ref().is_none_or(|u| {
                    t.lead_unit.as_ref() == Some(u) || t.co_handlers.iter().any(|c| &c.unit == u)
                })
                && query.overdue_at.is_none_or(|now| t.is_overdue(now))
                && query
                    .due_before
                    .is_none_or(|before| t.resolve_due_at().is_some_and(|due| due < before))
        })
        .map(|(t, _)| t.id.to_string())
        .collect()
}

pub(crate) async fn lists_filter_by_subtree_status_level_unit_and_deadline(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let s = &*store;
    let w = &*world;
    let mut all = Vec::new();
    // Registered in this order, so listed in this order.
    let a = file(
        s,
        w,
        "a",
        Y1,
        Level::Routine,
        Some("lx/s1/c1/y1/workers"),
        t0(),
    )
    .await;
    all.push((a, world.path(Y1)));
    let b = file(s, w, "b", Y2, Level::Difficult, None, t0()).await;
    all.push((b, world.path(Y2)));
    let c = file(
        s,
        w,
        "c",
        Y3,
        Level::Routine,
        Some("lx/s2/c2/y3/workers"),
        t0(),
    )
    .await;
    let c = run(
        s,
        w,
        &c,
        Command::Acknowledge {
            unit: unit("lx/s2/c2/y3/workers"),
        },
        t0(),
    )
    .await;
    let c = run(
        s,
        w,
        &c,
        Command::Whistle {
            units: vec![unit("dept/greening")],
            reason: "trees".into(),
        },
        t0(),
    )
    .await;
    all.push((c, world.path(Y3)));
    let d = file(s, w, "d", Y1, Level::Hard, Some("dept/water"), t0()).await;
    let d = run(
        s,
        w,
        &d,
        Command::Acknowledge {
            unit: unit("dept/water"),
        },
        t0(),
    )
    .await;
    let d = run(
        s,
        w,
        &d,
        Command::Resolve {
            resolution: "pipe fixed".into(),
        },
        t0(),
    )
    .await;
    all.push((d, world.path(Y1)));
    let e = file(
        s,
        w,
        "e",
        Y3,
        Level::Routine,
        Some("dept/greening"),
        t0() - hours(48),
    )
    .await;
    all.push((e, world.path(Y3)));
    let f = file(s, w, "f", C1, Level::Difficult, None, t0()).await;
    let f = run(
        s,
        w,
        &f,
        Command::Cancel {
            reason: "withdrawn".into(),
        },
        t0(),
    )
    .await;
    all.push((f, world.path(C1)));
    let g = file(
        s,
        w,
        "g",
        "lx/s1/c1/y1/b1",
        Level::MajorRisk,
        Some("lx/office"),
        t0(),
    )
    .await;
    all.push((g, world.path("lx/s1/c1/y1/b1")));

    let query = |f: &dyn Fn(&mut TicketQuery)| {
        let mut q = TicketQuery {
            limit: 100,
            ..TicketQuery::default()
        };
        f(&mut q);
        q
    };
    let queries = vec![
        query(&|_| {}),
        query(&|q| q.subtree = Some(world.path(S1))),
        query(&|q| q.subtree = Some(world.path(S2))),
        query(&|q| q.subtree = Some(world.path(C1))),
        query(&|q| q.subtree = Some(world.path(Y1))),
        query(&|q| q.subtree = Some(world.path("lx"))),
        query(&|q| q.statuses = vec![Status::Dispatched]),
        query(&|q| q.statuses = vec![Status::InProgress, Status::Resolved]),
        query(&|q| q.levels = vec![Level::Routine]),
        query(&|q| q.levels = vec![Level::Difficult, Level::Hard, Level::MajorRisk]),
        query(&|q| q.unit = Some(unit("lx/s1/c1/y1/workers"))),
        query(&|q| q.unit = Some(unit("dept/greening"))),
        query(&|q| q.unit = Some(unit("dept/water"))),
        query(&|q| q.overdue_at = Some(t0())),
        query(&|q| q.overdue_at = Some(t0() + hours(30))),
        query(&|q| q.due_before = Some(t0() + hours(12))),
        query(&|q| q.due_before = Some(t0() + hours(24 * 30))),
        query(&|q| {
            q.subtree = Some(world.path(S2));
            q.levels = vec![Level::Routine];
            q.unit = Some(unit("dept/greening"));
        }),
        query(&|q| {
            q.subtree = Some(world.path(S1));
            q.statuses = vec![Status::New, Status::Dispatched, Status::Cancelled];
        }),
    ];
    for q in &queries {
        let page = store.list_tickets(q).await.unwrap();
        assert_eq!(ids(&page.tickets), expected(&all, q), "{q:?}");
        assert_eq!(page.next, None);
    }
    // Sanity of the model itself: the filters select something and not everything.
    assert_eq!(expected(&all, &queries[11]), vec!["c", "e"]);
    assert_eq!(expected(&all, &queries[13]), vec!["e"]);

    // Pages of 3 over 7 tickets.
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_tickets(&TicketQuery {
                after,
                limit: 3,
                ..TicketQuery::default()
            })
            .await
            .unwrap();
        pages += 1;
        seen.extend(ids(&page.tickets));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected(&all, &queries[0]));
    let err = store
        .list_tickets(&TicketQuery {
            subtree: Some("|lx".into()),
            ..TicketQuery::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
}

pub(crate) async fn pages_stay_stable_while_tickets_arrive(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    for i in 0..10 {
        file(
            &*store,
            &world,
            &format!("old-{i:02}"),
            Y1,
            Level::Routine,
            None,
            t0(),
        )
        .await;
    }
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            let world = world.clone();
            tokio::spawn(async move {
                for i in 0..8 {
                    file(
                        &*store,
                        &world,
                        &format!("new-{w}-{i}"),
                        Y2,
                        Level::Routine,
                        None,
                        t0(),
                    )
                    .await;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut seen: Vec<TicketId> = Vec::new();
    let mut after = None;
    let mut writers_done = false;
    loop {
        let page = store
            .list_tickets(&TicketQuery {
                after,
                limit: 3,
                ..TicketQuery::default()
            })
            .await
            .unwrap();
        seen.extend(page.tickets.iter().map(|t| t.id.clone()));
        if let Some(next) = page.next {
            after = Some(next);
            continue;
        }
        if let Some(last) = page.tickets.last() {
            after = Some(store.history(&last.id).await.unwrap()[0].seq);
        }
        if writers_done {
            break;
        }
        // Every writer finished: one more pass from the cursor picks up the rest.
        writers_done = writers.iter().all(|w| w.is_finished());
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no ticket twice");
    assert_eq!(seen.len(), 10 + 32, "no ticket missed");
    assert!(seen[..10].iter().all(|id| id.as_str().starts_with("old-")));
    let mut regs = Vec::new();
    for id in &seen {
        regs.push(store.history(id).await.unwrap()[0].seq);
    }
    assert!(
        regs.windows(2).all(|p| p[0] < p[1]),
        "in registration order"
    );
}

pub(crate) async fn events_after_follows_seq_order_and_subtrees(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let s = &*store;
    let w = &*world;
    let a = file(
        s,
        w,
        "a",
        Y1,
        Level::Routine,
        Some("lx/s1/c1/y1/workers"),
        t0(),
    )
    .await;
    let b = file(
        s,
        w,
        "b",
        Y3,
        Level::Routine,
        Some("lx/s2/c2/y3/workers"),
        t0(),
    )
    .await;
    let c = file(s, w, "c", C1, Level::Difficult, None, t0()).await;
    let _ = run(s, w, &a, urge("one"), t0()).await;
    let _ = run(s, w, &b, urge("two"), t0()).await;
    let _ = run(s, w, &c, urge("three"), t0()).await;

    let mut everything = Vec::new();
    for t in [&a, &b, &c] {
        everything.extend(store.history(&t.id).await.unwrap());
    }
    everything.sort_by_key(|e| e.seq);
    assert_eq!(everything.len(), 8);
    assert_eq!(store.events_after(None, 0, 100).await.unwrap(), everything);
    assert_eq!(
        store.events_after(None, 0, 0).await.unwrap(),
        everything,
        "0 = the default page"
    );
    assert_eq!(
        store.events_after(None, 0, 3).await.unwrap(),
        everything[..3].to_vec()
    );
    let middle = everything[4].seq;
    assert_eq!(
        store.events_after(None, middle, 100).await.unwrap(),
        everything[5..].to_vec()
    );
    let within = |root: &str, after: i64| {
        let root = world.path(root);
        let store = store.clone();
        let everything = everything.clone();
        async move {
            (
                store.events_after(Some(&root), after, 100).await.unwrap(),
                everything,
            )
        }
    };
    let in_ticket = |events: &[StoredEvent], tickets: &[&Ticket]| {
        events
            .iter()
            .filter(|e| tickets.iter().any(|t| t.id == e.ticket_id))
            .cloned()
            .collect::<Vec<_>>()
    };
    let (got, all) = within(S1, 0).await;
    assert_eq!(got, in_ticket(&all, &[&a, &c]));
    let (got, all) = within(C1, 0).await;
    assert_eq!(got, in_ticket(&all, &[&a, &c]));
    let (got, all) = within(Y1, 0).await;
    assert_eq!(got, in_ticket(&all, &[&a]));
    let (got, all) = within(S2, 0).await;
    assert_eq!(got, in_ticket(&all, &[&b]));
    let (got, all) = within(S1, middle).await;
    assert_eq!(
        got,
        in_ticket(&all, &[&a, &c])
            .into_iter()
            .filter(|e| e.seq > middle)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        store
            .events_after(Some(&world.path(Y2)), 0, 100)
            .await
            .unwrap(),
        vec![]
    );
    assert!(store.events_after(Some("|lx|lx/s1"), 0, 100).await.is_err());
}

pub(crate) async fn a_watcher_never_misses_an_event_under_concurrent_writers(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            let world = world.clone();
            tokio::spawn(async move {
                let node = if w % 2 == 0 { Y1 } else { Y3 };
                let mut ticket = file(
                    &*store,
                    &world,
                    &format!("w-{w}"),
                    node,
                    Level::Routine,
                    None,
                    t0(),
                )
                .await;
                for i in 0..12 {
                    ticket = run(&*store, &world, &ticket, urge(&format!("{i}")), t0()).await;
                }
            })
        })
        .collect();
    // Like a live watch: resume after the last seq seen, over and over.
    let mut seen: Vec<StoredEvent> = Vec::new();
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        let after = seen.last().map_or(0, |e| e.seq);
        let batch = store.events_after(None, after, 7).await.unwrap();
        let caught_up = batch.is_empty();
        seen.extend(batch);
        if done && caught_up {
            break;
        }
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    let everything = store.events_after(None, 0, 10_000).await.unwrap();
    assert_eq!(everything.len(), 8 * 13);
    assert_increasing(&everything);
    assert_eq!(seen, everything, "the watcher saw every event, in order");
}

pub(crate) async fn district_import_is_idempotent(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.load_district().await.unwrap(), District::default());
    let district = district();
    let counts = store.import_district(&district).await.unwrap();
    assert_eq!(
        (
            counts.nodes,
            counts.units,
            counts.people,
            counts.catalogue_entries
        ),
        (9, 10, 5, 3)
    );
    assert_eq!(store.load_district().await.unwrap(), district);

    let again = store.import_district(&district).await.unwrap();
    assert_eq!(again, counts);
    assert_eq!(store.load_district().await.unwrap(), district);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM people").await, 5);

    // An edited district: a shorter board, a renamed unit, another default level.
    let mut edited = district.clone();
    let mut nodes: Vec<Node> = edited.jurisdiction.nodes().cloned().collect();
    let units: Vec<Unit> = edited
        .jurisdiction
        .units()
        .cloned()
        .map(|mut u| {
            if u.code.as_str() == "dept/water" {
                u.name = "供水公司".into();
            }
            u
        })
        .collect();
    for n in &mut nodes {
        if n.code.as_str() == Y1 {
            n.board.truncate(1);
        }
    }
    edited.jurisdiction = Jurisdiction::new(nodes, units).unwrap();
    edited.catalogue[0].default_level = Level::Difficult;
    store.import_district(&edited).await.unwrap();
    assert_eq!(store.load_district().await.unwrap(), edited);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM people").await, 3);

    // A second handle on the same database sees it too.
    assert_eq!(db.open().await.load_district().await.unwrap(), edited);
}

pub(crate) async fn calendar_notices_round_trip(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.load_calendar().await.unwrap(), Calendar::default());
    let official = Calendar::official();
    for notice in official.notices() {
        store
            .put_calendar_notice(notice, &official.days_of_notice(notice.year))
            .await
            .unwrap();
    }
    assert_eq!(store.load_calendar().await.unwrap(), official);

    // Replacing a year drops what it declared before.
    let notice_2026 = official.notice(2026).unwrap().clone();
    let mut days = official.days_of_notice(2026);
    let dropped = days.remove(0);
    let revised = Notice {
        source: format!("{} (revised)", notice_2026.source),
        ..notice_2026.clone()
    };
    store.put_calendar_notice(&revised, &days).await.unwrap();
    let mut expected = official.clone();
    expected.put_notice(revised.clone(), days.clone()).unwrap();
    let loaded = store.load_calendar().await.unwrap();
    assert_eq!(loaded, expected);
    assert!(!loaded.days_of_notice(2026).contains(&dropped));

    // A date another notice declares is refused, and nothing of the refused notice is stored.
    let claimed = SpecialDay {
        notice: 2027,
        ..days[0].clone()
    };
    let err = store
        .put_calendar_notice(
            &Notice {
                year: 2027,
                source: "国务院办公厅关于2027年部分节假日安排的通知".into(),
            },
            &[claimed],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    assert_eq!(store.load_calendar().await.unwrap(), expected);
}

pub(crate) async fn policies_are_versioned(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.policy(0).await.unwrap(), None);
    let first = store
        .put_policy("warning_share = 0.75\n", t0())
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(first.created_at, t0());
    let second = store
        .put_policy("warning_share = 0.8\n", t0() + Duration::milliseconds(1500))
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    assert_eq!(store.policy(0).await.unwrap(), Some(second.clone()));
    assert_eq!(store.policy(1).await.unwrap(), Some(first));
    assert_eq!(store.policy(2).await.unwrap(), Some(second));
    assert_eq!(store.policy(3).await.unwrap(), None);

    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put_policy(&format!("# {i}\n"), t0()).await.unwrap() })
        })
        .collect();
    let mut versions = BTreeSet::new();
    for task in tasks {
        versions.insert(task.await.unwrap().version);
    }
    assert_eq!(versions, (3..=10).collect());
    assert_eq!(store.policy(0).await.unwrap().unwrap().version, 10);
}

pub(crate) async fn migrations_report_and_refuse_a_newer_database(db: TestDb) {
    let report = migrate(&db.url).await.unwrap();
    // Every embedded migration, the initial schema first (later ones may leave gaps in numbering).
    let all = report.applied_now.len();
    assert!(report.already_applied.is_empty(), "{report}");
    assert!(
        report.to_string().contains("applied 1 (initial schema)"),
        "{report}"
    );
    let report = migrate(&db.url).await.unwrap();
    assert!(report.applied_now.is_empty(), "{report}");
    assert_eq!(report.already_applied.len(), all, "{report}");
    assert!(report.to_string().contains("up to date"), "{report}");

    let world = World::new();
    let store = db.open().await;
    let ticket = file(&*store, &world, "t-1", Y1, Level::Routine, None, t0()).await;
    drop(store);

    db.execute(match db.backend {
        Backend::Sqlite => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', TRUE, X'00', 0)"
        }
        Backend::Postgres => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', TRUE, decode('00', 'hex'), 0)"
        }
    })
    .await;
    let refused = doorstep_store::connect(&db.url, &doorstep_store::testing::test_options()).await;
    assert!(
        matches!(refused, Err(StoreError::TooNew(9999))),
        "{refused:?}"
    );
    assert!(matches!(
        migrate(&db.url).await,
        Err(StoreError::TooNew(9999))
    ));
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM _sqlx_migrations").await,
        all as i64 + 1
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM tickets").await, 1);

    db.execute("DELETE FROM _sqlx_migrations WHERE version = 9999")
        .await;
    let store = db.open().await;
    assert_eq!(store.get_ticket(&ticket.id).await.unwrap(), Some(ticket));
}

pub(crate) async fn batched_commits_stand_or_fall_alone_in_order(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let workers = "lx/s1/c1/y1/workers";
    let a = file(
        &*store,
        &world,
        "t-a",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    let b = file(
        &*store,
        &world,
        "t-b",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    let last = store.last_seq().await.unwrap();

    // a: two commits chained in one batch; b: one decided on a version that is no longer current.
    let (a1, a1_events) = world.act(&a, urge("first"), t0() + hours(1));
    let (a2, a2_events) = world.act(&a1, urge("second"), t0() + hours(1));
    let b_now = run(&*store, &world, &b, urge("moved on"), t0() + hours(1)).await;
    let (b_stale, b_events) = world.act(&b, urge("stale"), t0() + hours(1));
    let answers = store
        .commit_all(&[
            Commit {
                ticket: &a1,
                expected_version: a.version,
                events: &a1_events,
            },
            Commit {
                ticket: &b_stale,
                expected_version: b.version,
                events: &b_events,
            },
            Commit {
                ticket: &a2,
                expected_version: a1.version,
                events: &a2_events,
            },
        ])
        .await
        .unwrap();
    assert_eq!(answers.len(), 3);
    let first = answers[0].as_ref().unwrap();
    assert!(
        matches!(answers[1], Err(StoreError::Conflict { .. })),
        "{:?}",
        answers[1]
    );
    let third = answers[2].as_ref().unwrap();
    assert!(first.last().unwrap().seq < third[0].seq, "applied in order");
    assert!(first[0].seq > last + 1, "after b's own commit");
    assert_eq!(store.get_ticket(&a.id).await.unwrap(), Some(a2.clone()));
    assert_eq!(store.get_ticket(&b.id).await.unwrap(), Some(b_now.clone()));
    let kinds: Vec<&str> = store
        .history(&a.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.change.kind())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "URGED").count(), 2);

    // Many at once.
    let mut got = store
        .get_tickets(&[
            a.id.clone(),
            b.id.clone(),
            TicketId::parse("nobody").unwrap(),
        ])
        .await
        .unwrap();
    got.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(got, vec![a2, b_now]);
    assert!(store.get_tickets(&[]).await.unwrap().is_empty());
}

/// A ticket's later commit in a batch was decided on what its earlier one leaves. When the earlier
/// one loses a race, the later one is not written either, even though the race took the ticket to
/// the very version the later one expects: written, it would overwrite the winner's change.
pub(crate) async fn a_chained_commit_after_a_lost_race_is_not_written(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let workers = "lx/s1/c1/y1/workers";
    let a = file(
        &*store,
        &world,
        "t-a",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    // Two commits of a decided one on the other, as a batch decides them.
    let (a1, a1_events) = world.act(&a, urge("first"), t0() + hours(1));
    let (a2, a2_events) = world.act(&a1, urge("second"), t0() + hours(1));
    // Meanwhile another writer takes a to a1's version number with a change of its own.
    let other = run(&*store, &world, &a, urge("another writer"), t0() + hours(1)).await;
    assert_eq!(other.version, a1.version);
    let answers = store
        .commit_all(&[
            Commit {
                ticket: &a1,
                expected_version: a.version,
                events: &a1_events,
            },
            Commit {
                ticket: &a2,
                expected_version: a1.version,
                events: &a2_events,
            },
        ])
        .await
        .unwrap();
    assert_eq!(answers.len(), 2);
    for answer in &answers {
        assert!(
            matches!(answer, Err(StoreError::Conflict { .. })),
            "{answer:?}"
        );
    }
    assert_eq!(store.get_ticket(&a.id).await.unwrap(), Some(other));
    let urged = store
        .history(&a.id)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event.change.kind() == "URGED")
        .count();
    assert_eq!(urged, 1);
}

pub(crate) async fn a_claimed_timer_is_dropped_only_while_unchanged(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let workers = "lx/s1/c1/y1/workers";
    let ticket = file(
        &*store,
        &world,
        "t-1",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    let mut armed = ticket.timers();
    armed.sort_by_key(|t| t.due_at);
    let now = armed[0].due_at;
    let claimed = store
        .claim_due_timers(now, 10, "a", now + hours(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // Another owner cannot drop it; the owner can, once.
    assert!(!store.drop_claimed_timer(&claimed[0], "b").await.unwrap());
    assert!(store.drop_claimed_timer(&claimed[0], "a").await.unwrap());
    assert!(!store.drop_claimed_timer(&claimed[0], "a").await.unwrap());
    let rest = store
        .claim_due_timers(now + hours(24 * 30), 10, "c", now + hours(24 * 31))
        .await
        .unwrap();
    assert_eq!(rest.len(), armed.len() - 1);
    assert!(rest.iter().all(|d| d.timer != claimed[0].timer));

    // Re-armed at another instant after the claim: left alone.
    let other = file(
        &*store,
        &world,
        "t-2",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    let claimed = store
        .claim_due_timers(now, 10, "a", now + hours(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].ticket_id, other.id);
    let acknowledged = run(
        &*store,
        &world,
        &other,
        Command::Acknowledge {
            unit: unit(workers),
        },
        now,
    )
    .await;
    assert!(!store.drop_claimed_timer(&claimed[0], "a").await.unwrap());
    assert!(!acknowledged.timers().is_empty());
}

pub(crate) async fn tickets_with_timers_are_found_by_due_time(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let workers = "lx/s1/c1/y1/workers";
    let early = file(
        &*store,
        &world,
        "t-early",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    let mut late = Vec::new();
    for i in 0..5 {
        late.push(
            file(
                &*store,
                &world,
                &format!("t-late-{i}"),
                Y1,
                Level::Routine,
                Some(workers),
                t0() + hours(24 * 10),
            )
            .await,
        );
    }
    let latest_of_early = early.timers().iter().map(|t| t.due_at).max().unwrap();
    let from = latest_of_early + Duration::seconds(1);
    let mut found = Vec::new();
    let mut after: Option<TicketId> = None;
    loop {
        let page = store
            .tickets_with_timers_from(from, after.as_ref(), 2)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().cloned();
        found.extend(page);
    }
    let mut expected: Vec<TicketId> = late.iter().map(|t| t.id.clone()).collect();
    expected.sort();
    assert_eq!(
        found, expected,
        "each once, by id, the early ticket left out"
    );
    let all = store
        .tickets_with_timers_from(t0(), None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
}

pub(crate) async fn a_claim_never_exceeds_its_limit_on_an_analyzed_table(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let workers = "lx/s1/c1/y1/workers";
    // Half the timers due within the month, half long after.
    for i in 0..600 {
        let filed = if i % 2 == 0 {
            t0()
        } else {
            t0() + hours(24 * 90)
        };
        file(
            &*store,
            &world,
            &format!("t-{i:04}"),
            Y1,
            Level::Routine,
            Some(workers),
            filed,
        )
        .await;
    }
    // Statistics and repeated execution change plans: PostgreSQL once re-ran the locking subquery per
    // row here (a generic plan on an analyzed table), claiming far past the limit.
    db.execute("ANALYZE").await;
    for _ in 0..8 {
        let none = store
            .claim_due_timers(t0(), 7, "a", t0() + hours(1))
            .await
            .unwrap();
        assert!(none.is_empty());
    }
    let later = t0() + hours(24 * 30);
    let mut seen = BTreeSet::new();
    loop {
        let claimed = store
            .claim_due_timers(later, 7, "a", later + hours(1))
            .await
            .unwrap();
        assert!(claimed.len() <= 7, "claimed {} of 7", claimed.len());
        if claimed.is_empty() {
            break;
        }
        for c in claimed {
            assert!(
                seen.insert((c.ticket_id.clone(), c.timer.clone())),
                "claimed twice"
            );
        }
    }
    assert_eq!(seen.len(), 300 * 4);
}

/// The commands of ticket `i` in round `round` (0, 1, 2) of [`a_batch_writes_what_single_commits_write`]:
/// dispatches, sign-fors, whistles and escalations change units, timers, deadlines and reporting rows.
fn script(i: usize, round: usize, yard: &str) -> Command {
    let workers = unit(&format!("{yard}/workers"));
    match (round, i % 4) {
        (0, _) => Command::Dispatch {
            unit: workers,
            reason: String::new(),
        },
        (1, 0 | 1) => Command::Acknowledge { unit: workers },
        (1, 2) => Command::Escalate {
            reason: "hard".into(),
            owner_unit: Some(unit("lx/s1/c1/office")),
            case_owner: None,
        },
        (1, _) => Command::Return {
            unit: workers,
            reason: "not ours".into(),
        },
        (_, 1) => Command::Whistle {
            units: vec![unit("dept/greening")],
            reason: "trees".into(),
        },
        (_, 3) => Command::Dispatch {
            unit: unit("lx/s1/c1/office"),
            reason: "theirs".into(),
        },
        _ => urge("chase"),
    }
}

pub(crate) async fn a_batch_writes_what_single_commits_write(db: TestDb) {
    const N: usize = 60;
    let world = World::new();
    let store = db.open().await;
    let mut batched = Vec::new();
    let mut single = Vec::new();
    for i in 0..N {
        batched.push(
            file(
                &*store,
                &world,
                &format!("a-{i}"),
                Y1,
                Level::Routine,
                None,
                t0(),
            )
            .await,
        );
        single.push(
            file(
                &*store,
                &world,
                &format!("b-{i}"),
                Y2,
                Level::Routine,
                None,
                t0(),
            )
            .await,
        );
    }

    // Round 0 as one batch; rounds 1 and 2 as one batch, each ticket's two commits side by side.
    for rounds in [&[0][..], &[1, 2]] {
        let mut decided = Vec::new();
        for (i, ticket) in batched.iter().enumerate() {
            let mut before = ticket.clone();
            for &round in rounds {
                let at = t0() + hours(round as i64 + 1);
                let (next, events) = world.act(&before, script(i, round, Y1), at);
                decided.push((before.version, next.clone(), events));
                before = next;
            }
        }
        let commits: Vec<Commit<'_>> = decided
            .iter()
            .map(|(expected_version, ticket, events)| Commit {
                ticket,
                expected_version: *expected_version,
                events,
            })
            .collect();
        let answers = store.commit_all(&commits).await.unwrap();
        let mut last = 0;
        for answer in answers {
            for stored in answer.unwrap() {
                assert!(stored.seq > last, "events in the commits' order");
                last = stored.seq;
            }
        }
        for (ticket, own) in batched.iter_mut().zip(decided.chunks(rounds.len())) {
            *ticket = own.last().map(|(_, t, _)| t.clone()).unwrap();
        }
        for (i, ticket) in single.iter_mut().enumerate() {
            for &round in rounds {
                let at = t0() + hours(round as i64 + 1);
                *ticket = run(&*store, &world, ticket, script(i, round, Y2), at).await;
            }
        }
    }

    for (a, b) in batched.iter().zip(&single) {
        let stored_a = store.get_ticket(&a.id).await.unwrap().unwrap();
        let stored_b = store.get_ticket(&b.id).await.unwrap().unwrap();
        assert_eq!(&stored_a, a);
        assert_eq!(&stored_b, b);
        assert_eq!(
            (a.version, a.status, a.level, a.resolve_due_at()),
            (b.version, b.status, b.level, b.resolve_due_at())
        );
        let kinds = |history: Vec<StoredEvent>| -> Vec<&'static str> {
            history.iter().map(|e| e.event.change.kind()).collect()
        };
        assert_eq!(
            kinds(store.history(&a.id).await.unwrap()),
            kinds(store.history(&b.id).await.unwrap())
        );
    }

    // The unit rows: the same tickets are found by lead unit and by co-handler either way.
    let listed = |subtree: &str, unit_code: &str| {
        let query = TicketQuery {
            subtree: Some(world.path(subtree)),
            unit: Some(unit(unit_code)),
            limit: 1000,
            ..TicketQuery::default()
        };
        let store = &store;
        async move { store.list_tickets(&query).await.unwrap().tickets.len() }
    };
    assert_eq!(listed(Y1, "dept/greening").await, N / 4);
    assert_eq!(listed(Y2, "dept/greening").await, N / 4);
    assert_eq!(
        listed(Y1, "lx/s1/c1/y1/workers").await,
        listed(Y2, "lx/s1/c1/y2/workers").await
    );
    assert_eq!(listed(Y1, "lx/s1/c1/office").await, N / 2);
    assert_eq!(listed(Y2, "lx/s1/c1/office").await, N / 2);

    // The timers: the same number armed at the same instants.
    let far = t0() + Duration::days(400);
    let claimed = store
        .claim_due_timers(far, 10_000, "check", far + hours(1))
        .await
        .unwrap();
    let armed = |prefix: &str| -> Vec<(String, DateTime<Utc>)> {
        let mut armed: Vec<_> = claimed
            .iter()
            .filter(|d| d.ticket_id.as_str().starts_with(prefix))
            .map(|d| (d.timer.clock.to_string(), d.timer.due_at))
            .collect();
        armed.sort();
        armed
    };
    assert!(!armed("a-").is_empty());
    assert_eq!(armed("a-"), armed("b-"));

    // The reporting rows: every count the same for the two yards.
    let counts = |yard: &str| {
        let query = doorstep_store::ReportQuery {
            subtree: world.path(yard),
            group: doorstep_store::ReportGroup::Whole,
            from: t0() - Duration::days(1),
            to: t0() + Duration::days(30),
            overdue_at: t0() + Duration::days(30),
            year_before_from: t0() - Duration::days(366),
            year_before_to: t0() - Duration::days(300),
        };
        let store = &store;
        async move { store.report_counts(&query).await.unwrap() }
    };
    let (in_y1, in_y2) = (counts(Y1).await, counts(Y2).await);
    assert_eq!(in_y1, in_y2);
    assert_eq!(in_y1[0].received, N as i64);
    assert_eq!(in_y1[0].dispatched, N as i64);
    assert_eq!(in_y1[0].escalations, (N / 4) as i64);
    assert!(in_y1[0].overdue > 0, "{in_y1:?}");
}

/// The reporting rows of one yard, over the whole script's window.
async fn yard_counts(
    store: &dyn doorstep_store::Store,
    world: &World,
    yard: &str,
) -> Vec<doorstep_store::ReportCounts> {
    let query = doorstep_store::ReportQuery {
        subtree: world.path(yard),
        group: doorstep_store::ReportGroup::Whole,
        from: t0() - Duration::days(1),
        to: t0() + Duration::days(30),
        overdue_at: t0() + Duration::days(30),
        year_before_from: t0() - Duration::days(366),
        year_before_to: t0() - Duration::days(300),
    };
    store.report_counts(&query).await.unwrap()
}

pub(crate) async fn reporting_rows_follow_the_log_behind_a_durable_cursor(db: TestDb) {
    const N: usize = 24;
    let world = World::new();
    let store = db.open().await;
    let start = store.last_seq().await.unwrap();
    // Whatever the store appended before (nothing, on a new database) is folded first.
    while store.project_reports(1000).await.unwrap() > 0 {}

    // Yard 1: folded a step of 1 event after every command, so that steps cut through commits (an
    // escalation appends several events) and through tickets' histories.
    let mut folded = 0;
    let mut tickets = Vec::new();
    for i in 0..N {
        let name = format!("a-{i}");
        tickets.push(file(&*store, &world, &name, Y1, Level::Routine, None, t0()).await);
        folded += store.project_reports(1).await.unwrap();
    }
    for round in 0..3 {
        for (i, ticket) in tickets.iter_mut().enumerate() {
            let at = t0() + hours(round as i64 + 1);
            *ticket = run(&*store, &world, ticket, script(i, round, Y1), at).await;
            folded += store.project_reports(1).await.unwrap();
        }
    }
    let appended = (store.last_seq().await.unwrap() - start) as u64;
    let mut rest = 0;
    loop {
        let taken = store.project_reports(5).await.unwrap();
        assert!(taken <= 5);
        rest += taken;
        if taken == 0 {
            break;
        }
    }
    assert_eq!(folded + rest, appended, "every event folded exactly once");

    // Yard 2: the same commands, folded only when the report asks.
    let mut tickets = Vec::new();
    for i in 0..N {
        let name = format!("b-{i}");
        tickets.push(file(&*store, &world, &name, Y2, Level::Routine, None, t0()).await);
    }
    for round in 0..3 {
        for (i, ticket) in tickets.iter_mut().enumerate() {
            let at = t0() + hours(round as i64 + 1);
            *ticket = run(&*store, &world, ticket, script(i, round, Y2), at).await;
        }
    }
    let in_y2 = yard_counts(&*store, &world, Y2).await;
    let in_y1 = yard_counts(&*store, &world, Y1).await;
    assert_eq!(in_y1, in_y2);
    assert_eq!(in_y2[0].received, N as i64);
    assert_eq!(in_y2[0].dispatched, N as i64);
    assert_eq!(in_y2[0].escalations, (N / 4) as i64);
    assert!(in_y2[0].overdue > 0, "{in_y2:?}");
    // The report left nothing behind.
    assert_eq!(store.project_reports(1000).await.unwrap(), 0);

    // The cursor is durable: a store opened again folds nothing twice and counts the same.
    drop(store);
    let store = db.open().await;
    assert_eq!(store.project_reports(1000).await.unwrap(), 0);
    assert_eq!(yard_counts(&*store, &world, Y1).await, in_y1);
}
