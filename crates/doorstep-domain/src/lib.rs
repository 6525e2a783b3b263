//! The pure core of doorstep: the four-level response ladder of docs/LADDER.md, with no I/O and no
//! async.
//!
//! The words and the rules:
//! - [`ladder`]: the words (levels, statuses, channels, callbacks, owner tiers, clocks);
//! - [`ids`]: codes and free text, parsed once at the edge;
//! - [`policy`]: every limit, read from the policy file, with docs/LADDER.md's defaults built in;
//! - [`deadline`]: deadline arithmetic on both clocks (clock hours, working days), pauses, extensions,
//!   warnings;
//! - [`clock`]: injected time, a manual clock for tests and simulations.
//!
//! The district:
//! - [`tree`]: the jurisdiction tree, units, responsibility boards and dispatch catalogue, with the
//!   lookups on a district (where a ticket goes, who owns a rung, the case owner);
//! - [`district_file`]: the district's TOML file format, read with every check and written back.
//!
//! The ticket:
//! - [`intake`]: what intake registers (the resident's request, the caller), checked at the edge;
//! - [`event`]: the append-only history, one event per change, carrying every figure a fold needs;
//! - [`ticket`]: a ticket as the fold of its events (`replay(events) == state`), and the timers it arms;
//! - [`lifecycle`]: every action as a decision that yields events or a typed error naming the state;
//! - [`sla_facts`]: the reporting definitions (on time, breached, overdue) as a fold of the events.
//!
//! Dependencies run one way: `ticket` folds `event`s, which carry an `intake`; `lifecycle` decides on
//! a `ticket`; `sla_facts` reads both. The working-day calendar is its own crate,
//! [`doorstep_calendar`], re-exported as [`calendar`].

pub use doorstep_calendar as calendar;

pub mod clock;
pub mod deadline;
pub mod district_file;
pub mod event;
pub mod ids;
pub mod intake;
pub mod ladder;
pub mod lifecycle;
pub mod policy;
pub mod sla_facts;
pub mod ticket;
pub mod tree;

pub use clock::{Clock, ManualClock, SystemClock};
pub use deadline::{AcknowledgeClock, Reckoner, ResolveClock, ReviewClock};
pub use district_file::DistrictError;
pub use event::{Change, CoHandler, Dispatch, Event, ReportInClock};
pub use ids::{Actor, Category, InvalidField, NodeCode, TicketId, UnitCode};
pub use intake::{Caller, Intake};
pub use ladder::{Channel, ClockKind, Level, Satisfaction, Status, Tier};
pub use lifecycle::{ActionError, Command, Context, Registration, register};
pub use policy::{Limit, Policy, PolicyError};
pub use sla_facts::{Mark, MarkKind, OverdueOp, SlaFacts};
pub use ticket::{Threshold, Ticket, Timer, replay};
pub use tree::{CatalogueEntry, District, Jurisdiction, Node, NodeKind, Person, Route, Unit};
