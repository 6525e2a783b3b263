//! The fuzz target (feature `fuzzing`): arbitrary bytes through request validation at the edge, and
//! arbitrary action sequences through the lifecycle state machine. Any panic is a bug.
//!
//! Driven two ways: `fuzz/` (cargo-fuzz, libFuzzer, where a toolchain supports it) and the
//! deterministic seeded run in `tests/fuzz_smoke.rs`, which CI runs as an ordinary test.

use chrono::{DateTime, Duration, TimeZone, Utc};
use doorstep_domain as d;
use doorstep_proto::v1 as w;
use prost::Message;

use crate::convert;
use doorstep_engine::access::{CallerView, mask_name, mask_phone};

/// Reads fuzz input as a stream of choices; past the end, every choice is 0.
#[derive(Debug)]
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn i64(&mut self) -> i64 {
        i64::from(self.u32()) << 16 | i64::from(self.byte())
    }

    fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[usize::from(self.byte()) % items.len()].clone()
    }

    /// A string: a known-good value, raw bytes as UTF-8, control characters, or something long.
    fn text(&mut self, good: &[&str]) -> String {
        match self.byte() % 6 {
            0 | 1 => self.pick(good).to_owned(),
            2 => {
                let n = usize::from(self.byte());
                let take = n.min(self.data.len());
                let (raw, rest) = self.data.split_at(take);
                self.data = rest;
                String::from_utf8_lossy(raw).into_owned()
            }
            3 => format!("{}\u{0}\u{7}\r{}", self.pick(good), self.pick(good)),
            4 => {
                let c = self.pick(&['x', '长', '\u{200b}', ' ', '/', '*', '9']);
                c.to_string().repeat(usize::from(self.byte()) * 97)
            }
            _ => String::new(),
        }
    }
}

const NODES: &[&str] = &[
    "lixia/jiefanglu/jiefangqiao/yard-129",
    "lixia",
    "lixia/qianfoshan",
    "a//b",
    "../etc",
];
const UNITS: &[&str] = &[
    "lixia/jiefanglu/jiefangqiao/yard-129/workers",
    "community/jiefangqiao",
    "street/jiefanglu",
    "dept/city-management",
];
const CATEGORIES: &[&str] = &["lighting.stairwell", "water.supply", "x", "a b"];
const WORDS: &[&str] = &[
    "张女士",
    "13812345678",
    "换了灯泡",
    "https://example.com/a.jpg",
    "ok",
];
const IDS: &[&str] = &["t-1", "0190f0f0-0000-7000-8000-000000000000", "t-2"];

/// One fuzz case; returns how many actions the lifecycle accepted (0 for the other kinds), so that a
/// driver can tell how deep its inputs reach.
pub fn run(data: &[u8]) -> usize {
    let mut input = Input { data };
    match input.byte() % 4 {
        0 => {
            decode_and_validate(input.byte(), input.data);
            0
        }
        1 => {
            validate_intake(&mut input);
            0
        }
        _ => lifecycle(&mut input),
    }
}

/// Built once: the policy and calendar every lifecycle case runs under.
fn world() -> &'static (d::Policy, d::calendar::Calendar) {
    static WORLD: std::sync::OnceLock<(d::Policy, d::calendar::Calendar)> =
        std::sync::OnceLock::new();
    WORLD.get_or_init(|| (d::Policy::builtin(), d::calendar::Calendar::official()))
}

/// Raw bytes as a wire message, then what the service does with it before the engine.
fn decode_and_validate(which: u8, bytes: &[u8]) {
    match which % 8 {
        0 => {
            if let Ok(m) = w::CreateTicketRequest::decode(bytes)
                && let Ok((intake, _)) = convert::intake(m)
            {
                let _ = intake.validated();
            }
        }
        1 => {
            if let Ok(m) = w::ListTicketsRequest::decode(bytes) {
                for s in &m.statuses {
                    let _ = convert::status("statuses", *s);
                }
                for l in &m.levels {
                    let _ = convert::level("levels", *l);
                }
                let _ = convert::parse_page_token(&m.page_token);
                let _ = convert::instant("due_before", m.due_before.as_ref());
                let _ = convert::opt_node("node", &m.node);
                let _ = convert::unit("unit", &m.unit);
            }
        }
        2 => {
            if let Ok(m) = w::CalendarYear::decode(bytes) {
                let _ = convert::calendar_year(m);
            }
        }
        3 => {
            if let Ok(m) = w::TicketAction::decode(bytes) {
                let _ = convert::ticket_id("id", &m.id);
                let _ = convert::unit("unit", &m.unit);
            }
        }
        4 => {
            if let Ok(m) = w::WhistleTicketRequest::decode(bytes) {
                for u in &m.units {
                    let _ = convert::unit("units", u);
                }
            }
        }
        5 => {
            if let Ok(m) = w::RecordCallbackRequest::decode(bytes) {
                let _ = convert::satisfaction("satisfaction", m.satisfaction);
            }
        }
        6 => {
            if let Ok(m) = w::WatchEventsRequest::decode(bytes) {
                let _ = convert::opt_node("node", &m.node);
            }
        }
        _ => {
            let text = String::from_utf8_lossy(bytes);
            let _ = mask_name(&text);
            let _ = mask_phone(&text);
            let _ = d::Policy::from_toml(&text);
            let _ = d::District::from_toml(&text);
        }
    }
}

fn create_request(input: &mut Input<'_>) -> w::CreateTicketRequest {
    w::CreateTicketRequest {
        source: i32::from(input.byte() % 8) + 1,
        external_ref: input.text(&["SD-1", "x"]),
        caller: input.bool().then(|| w::Caller {
            name: input.text(WORDS),
            phone: input.text(&["13812345678", "+86 (531) 8888-0000", "12"]),
            confidential: input.bool(),
        }),
        category: input.text(CATEGORIES),
        content: input.text(WORDS),
        address: input.text(WORDS),
        node: input.text(NODES),
        level_hint: i32::from(input.byte() % 6),
        occurred_at: input.bool().then(|| prost_types::Timestamp {
            seconds: input.i64() * if input.bool() { -1 } else { 1 },
            nanos: input.u32() as i32,
        }),
        attachment_urls: (0..input.byte() % 24)
            .map(|_| input.text(&["https://example.com/a.jpg", "ftp://x", "http://a b"]))
            .collect(),
    }
}

fn validate_intake(input: &mut Input<'_>) {
    if let Ok((intake, _)) = convert::intake(create_request(input)) {
        let _ = intake.validated();
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, 28, 1, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A unit an action names: mostly one the ticket knows (its lead, a co-handler), sometimes another.
fn unit_for(input: &mut Input<'_>, ticket: &d::Ticket) -> Option<d::UnitCode> {
    match input.byte() % 5 {
        0 | 1 => ticket.lead_unit.clone(),
        2 => ticket.co_handlers.first().map(|c| c.unit.clone()),
        3 => d::UnitCode::parse(input.pick(UNITS)).ok(),
        _ => d::UnitCode::parse(input.text(UNITS)).ok(),
    }
}

/// Free text: mostly a plain word, sometimes anything.
fn words(input: &mut Input<'_>) -> String {
    if input.byte().is_multiple_of(4) {
        input.text(WORDS)
    } else {
        input.pick(WORDS).to_owned()
    }
}

fn command(input: &mut Input<'_>, ticket: &d::Ticket, now: DateTime<Utc>) -> Option<d::Command> {
    use d::Command as C;
    let clocks = [
        d::ClockKind::Acknowledge,
        d::ClockKind::Resolve,
        d::ClockKind::Review,
        d::ClockKind::ReportIn,
        d::ClockKind::Callback,
    ];
    let levels = [
        d::Level::Routine,
        d::Level::Difficult,
        d::Level::Hard,
        d::Level::MajorRisk,
    ];
    // A timer as the scheduler would fire it (mostly one the ticket has armed), or any.
    let timer = |input: &mut Input<'_>| {
        let armed = ticket.timers();
        if !armed.is_empty() && !input.byte().is_multiple_of(4) {
            let t = input.pick(&armed);
            (t.clock, t.unit, t.due_at)
        } else {
            (
                input.pick(&clocks),
                unit_for(input, ticket),
                now - Duration::seconds(i64::from(input.u32() % 2_000_000)),
            )
        }
    };
    let case_owner = |input: &mut Input<'_>| match input.byte() % 3 {
        0 => None,
        1 => Some("副区长 王某".to_owned()),
        _ => Some(input.text(WORDS)),
    };
    Some(match input.byte() % 21 {
        0 => C::Dispatch {
            unit: unit_for(input, ticket).or_else(|| d::UnitCode::parse(UNITS[0]).ok())?,
            reason: words(input),
        },
        1 => C::Acknowledge {
            unit: unit_for(input, ticket)?,
        },
        2 => C::Return {
            unit: unit_for(input, ticket)?,
            reason: words(input),
        },
        3 => C::Suspend {
            reason: words(input),
        },
        4 => C::Resume {
            reason: words(input),
        },
        5 => C::RequestExtension {
            days: if input.bool() {
                u32::from(input.byte() % 10)
            } else {
                input.u32()
            },
            reason: words(input),
        },
        6 => C::DecideExtension {
            approve: input.bool(),
            reason: words(input),
        },
        7 => C::Whistle {
            units: (0..input.byte() % 4)
                .filter_map(|_| d::UnitCode::parse(input.pick(UNITS)).ok())
                .collect(),
            reason: words(input),
        },
        8 => C::ReportIn {
            unit: unit_for(input, ticket)?,
        },
        9 => C::Urge {
            reason: words(input),
        },
        10 => C::Supervise {
            reason: words(input),
        },
        11 => C::Escalate {
            reason: words(input),
            owner_unit: unit_for(input, ticket),
            case_owner: case_owner(input),
        },
        12 => C::Reclassify {
            level: input.pick(&levels),
            reason: words(input),
            case_owner: case_owner(input),
        },
        13 => C::Resolve {
            resolution: words(input),
        },
        14 => C::RecordCallback {
            satisfaction: input.pick(&[
                d::Satisfaction::Satisfied,
                d::Satisfaction::BasicallySatisfied,
                d::Satisfaction::Dissatisfied,
                d::Satisfaction::NoAnswer,
            ]),
            matter_solved: input.bool(),
            comment: words(input),
        },
        15 => C::Merge {
            into: d::TicketId::parse(input.text(IDS)).ok()?,
            reason: words(input),
        },
        16 => C::Cancel {
            reason: words(input),
        },
        17 => C::Close {
            reason: words(input),
        },
        18 => C::AddNote { text: words(input) },
        19 => {
            let (clock, unit, due_at) = timer(input);
            C::FireWarning {
                clock,
                unit,
                due_at,
            }
        }
        _ => {
            let (clock, unit, due_at) = timer(input);
            C::FireBreach {
                clock,
                unit,
                due_at,
                owner_unit: d::UnitCode::parse(input.pick(UNITS)).ok(),
                case_owner: case_owner(input),
                supervisor: d::UnitCode::parse(input.pick(UNITS)).ok(),
            }
        }
    })
}

/// How far the clock moves between two actions.
fn pause(input: &mut Input<'_>) -> Duration {
    match input.byte() % 7 {
        0 => Duration::zero(),
        1 => Duration::minutes(1),
        2 => Duration::hours(1),
        3 => Duration::days(1),
        4 => Duration::days(3),
        5 => Duration::days(10),
        _ => Duration::seconds(i64::from(input.u32() % 3_000_000)),
    }
}

/// A valid intake, the caller confidential or not.
fn good_intake(confidential: bool) -> Option<d::Intake> {
    Some(d::Intake {
        source: d::Channel::Hotline12345,
        external_ref: "SD-1".into(),
        caller: d::Caller {
            name: "张女士".into(),
            phone: "13812345678".into(),
            confidential,
        },
        category: d::Category::parse("lighting.stairwell").ok()?,
        content: "楼道灯不亮".into(),
        address: String::new(),
        node: d::NodeCode::parse(NODES[0]).ok()?,
        occurred_at: None,
        attachment_urls: Vec::new(),
    })
}

/// Registers a ticket and runs a sequence of actions at an advancing clock: every step either
/// refuses (the ticket unchanged) or keeps the invariants, and the history replays to the ticket.
fn lifecycle(input: &mut Input<'_>) -> usize {
    let (policy, calendar) = world();
    let actor = d::Actor::new("fuzz");
    let mut now = start();
    let intake = if input.bool() {
        good_intake(input.bool())
    } else {
        convert::intake(create_request(input))
            .ok()
            .and_then(|(i, _)| i.validated().ok())
    };
    let Some(intake) = intake else { return 0 };
    let level = input.pick(&[
        d::Level::Routine,
        d::Level::Difficult,
        d::Level::Hard,
        d::Level::MajorRisk,
    ]);
    let ctx = |now| d::Context {
        now,
        actor: &actor,
        policy,
        calendar,
    };
    let Ok(id) = d::TicketId::parse("t-1") else {
        return 0;
    };
    let created = d::register(
        d::Registration {
            id,
            intake,
            level,
            policy_version: 1,
            case_owner: input.bool().then(|| "副区长 王某".to_owned()),
        },
        &ctx(now),
    );
    let Ok(created) = created else { return 0 };
    let Ok(mut ticket) = d::Ticket::from_created(&created) else {
        panic!("a registered ticket folds");
    };
    // Through the catalogue, as the engine does, most of the time.
    let mut history = vec![created];
    if !input.byte().is_multiple_of(4)
        && let Ok(unit) = d::UnitCode::parse(UNITS[0])
        && let Ok((next, events)) = ticket.handle(
            &d::Command::Dispatch {
                unit,
                reason: "dispatch catalogue".into(),
            },
            &ctx(now),
        )
    {
        ticket = next;
        history.extend(events);
    }
    let mut accepted = 0;
    for _ in 0..=(input.byte() % 64) {
        now += pause(input);
        let Some(command) = command(input, &ticket, now) else {
            continue;
        };
        match ticket.handle(&command, &ctx(now)) {
            Ok((next, events)) => {
                if let Err(why) = next.check_invariants() {
                    panic!("{command} broke an invariant: {why}");
                }
                assert_eq!(
                    next.version,
                    ticket.version + events.len() as i64,
                    "{command}: one version per event"
                );
                history.extend(events);
                ticket = next;
                accepted += 1;
            }
            Err(e) => {
                let status = crate::error::to_status(doorstep_engine::Error::from(e));
                assert!(!status.message().is_empty());
            }
        }
        for view in [CallerView::Full, CallerView::Masked, CallerView::Hidden] {
            let _ = convert::ticket(&ticket, now, view);
        }
    }
    match d::replay(&history) {
        Ok(replayed) => assert_eq!(replayed, ticket, "the history replays to the ticket"),
        Err(e) => panic!("the history does not replay: {e}"),
    }
    for (seq, event) in history.into_iter().enumerate() {
        let _ = convert::event(&doorstep_store::StoredEvent {
            seq: seq as i64 + 1,
            ticket_id: ticket.id.clone(),
            event,
        });
    }
    accepted
}
