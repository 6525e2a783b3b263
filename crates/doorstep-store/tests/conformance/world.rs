//! The world the cases' tickets live in: a small district, the domain's rules, and helpers that
//! make tickets the way the engine makes them (register, then commands) and commit them.

use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use doorstep_domain::calendar::Calendar;
use doorstep_domain::{
    Actor, Caller, CatalogueEntry, Category, Channel, Command, Context, District, Event, Intake,
    Jurisdiction, Level, Node, NodeCode, NodeKind, Person, Policy, Registration, Ticket, TicketId,
    Unit, UnitCode, register,
};
use doorstep_store::{Commit, Created, NewTicket, Store, StoredEvent};

pub(crate) const Y1: &str = "lx/s1/c1/y1";
pub(crate) const Y2: &str = "lx/s1/c1/y2";
pub(crate) const Y3: &str = "lx/s2/c2/y3";
pub(crate) const C1: &str = "lx/s1/c1";
pub(crate) const S1: &str = "lx/s1";
pub(crate) const S2: &str = "lx/s2";

/// Monday 2026-11-02, 10:00 in Jinan.
pub(crate) fn t0() -> DateTime<Utc> {
    DateTime::<FixedOffset>::parse_from_rfc3339("2026-11-02T10:00:00+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

pub(crate) fn hours(h: i64) -> Duration {
    Duration::hours(h)
}

pub(crate) fn unit(code: &str) -> UnitCode {
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

pub(crate) fn district() -> District {
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
pub(crate) struct World {
    policy: Policy,
    calendar: Calendar,
    actor: Actor,
    district: District,
}

impl World {
    pub(crate) fn new() -> Arc<World> {
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

    pub(crate) fn path(&self, node: &str) -> String {
        self.district
            .jurisdiction
            .node_path(&node_code(node))
            .unwrap()
    }

    /// A registered ticket and its CREATED event.
    pub(crate) fn register(
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

    pub(crate) fn act(
        &self,
        ticket: &Ticket,
        command: Command,
        now: DateTime<Utc>,
    ) -> (Ticket, Vec<Event>) {
        let (next, events) = ticket
            .handle(&command, &self.ctx(now))
            .unwrap_or_else(|e| panic!("{command} at {now}: {e}"));
        next.check_invariants().unwrap();
        (next, events)
    }
}

pub(crate) fn dispatch(to: &str) -> Command {
    Command::Dispatch {
        unit: unit(to),
        reason: String::new(),
    }
}

pub(crate) fn urge(reason: &str) -> Command {
    Command::Urge {
        reason: reason.into(),
    }
}

/// Registers a ticket in the store, dispatched to `lead` when given; returns it as stored.
pub(crate) async fn file(
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
pub(crate) async fn run(
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

pub(crate) fn assert_increasing(events: &[StoredEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].seq < pair[1].seq,
            "{} then {}",
            pair[0].seq,
            pair[1].seq
        );
    }
}

pub(crate) fn ids(tickets: &[Ticket]) -> Vec<String> {
    tickets.iter().map(|t| t.id.to_string()).collect()
}

/// The commands of ticket `i` in round `round` (0, 1, 2) of the batch and reporting-row cases:
/// dispatches, sign-fors, whistles and escalations change units, timers, deadlines and reporting rows.
pub(crate) fn script(i: usize, round: usize, yard: &str) -> Command {
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
