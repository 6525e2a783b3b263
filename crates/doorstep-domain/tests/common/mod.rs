//! Shared set-up for the domain's tests: docs/LADDER.md's policy, the official calendar, a compound's
//! ticket.
#![allow(dead_code, unreachable_pub)]

use chrono::{DateTime, FixedOffset, Utc};
use doorstep_domain::calendar::Calendar;
use doorstep_domain::{
    Actor, Caller, Category, Channel, Command, Context, Event, Intake, Level, NodeCode, Policy,
    Registration, Ticket, TicketId, UnitCode, register,
};

pub struct World {
    pub policy: Policy,
    pub calendar: Calendar,
    pub actor: Actor,
}

impl World {
    pub fn new() -> World {
        World::with_policy(Policy::builtin())
    }

    pub fn with_policy(policy: Policy) -> World {
        World {
            policy,
            calendar: Calendar::official(),
            actor: Actor::new("dispatcher-1"),
        }
    }

    pub fn ctx(&self, now: DateTime<Utc>) -> Context<'_> {
        Context {
            now,
            actor: &self.actor,
            policy: &self.policy,
            calendar: &self.calendar,
        }
    }

    /// Registers a ticket at `now`; returns it with its history so far.
    pub fn register(&self, level: Level, now: DateTime<Utc>) -> (Ticket, Vec<Event>) {
        let case_owner = (level == Level::MajorRisk).then(|| "副区长 王某".to_owned());
        let event = register(
            Registration {
                id: TicketId::parse("t-1").unwrap(),
                intake: intake(),
                level,
                policy_version: 1,
                case_owner,
            },
            &self.ctx(now),
        )
        .unwrap();
        (Ticket::from_created(&event).unwrap(), vec![event])
    }

    /// Runs a command that must succeed, appending its events to `history`.
    pub fn run(
        &self,
        ticket: &Ticket,
        history: &mut Vec<Event>,
        command: Command,
        now: DateTime<Utc>,
    ) -> Ticket {
        let (next, events) = ticket
            .handle(&command, &self.ctx(now))
            .unwrap_or_else(|e| panic!("{command} at {now}: {e}"));
        next.check_invariants().unwrap();
        history.extend(events);
        next
    }
}

pub fn intake() -> Intake {
    Intake {
        source: Channel::Hotline12345,
        external_ref: "SD-12345-0001".into(),
        caller: Caller {
            name: "张女士".into(),
            phone: "13800000000".into(),
            confidential: false,
        },
        category: Category::parse("water.supply").unwrap(),
        content: "楼道漏水".into(),
        address: "解放路129号院3号楼".into(),
        node: NodeCode::parse("lixia/jiefanglu/jiefangqiao/yard-129").unwrap(),
        occurred_at: None,
        attachment_urls: vec![],
    }
}

/// An instant written with its offset, e.g. `at("2026-09-30T10:00:00+08:00")`.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::<FixedOffset>::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// An instant shown in Beijing time, for readable assertions.
pub fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339()
}

pub fn unit(code: &str) -> UnitCode {
    UnitCode::parse(code).unwrap()
}
