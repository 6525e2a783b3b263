//! The engine: intake, lifecycle actions, timer firing and reads in domain terms, over one [`Store`]
//! that nothing outside the engine reaches; shared by the gRPC service, the SLA scheduler and the
//! command line. No wire types come in here, and nothing of gRPC: a service maps [`Error`] by its
//! [`ErrorKind`] to its own answers.
//!
//! - [`engine`]: the [`Engine`] (district, calendar and policy versions in memory; every write one
//!   commit); its submodules hold the due timers (claimed under a lease for the scheduler, fired one
//!   at a time or a claimed batch at once) and the re-timing of running deadlines after a calendar
//!   change, or on purpose under a newer policy;
//! - `reach` (private): which tickets a principal reaches, what it sees of their callers, and the
//!   audit log of every read of unmasked personal data;
//! - [`auth`]: authentication: a [`Principal`] with a role and a jurisdiction scope, from the bearer
//!   token a caller presents ([`TokenAuthenticator`]) or the loopback default ([`LocalAllAccess`]);
//! - [`access`]: the one role × RPC table, [`authorize`], and how much of a caller each role sees;
//! - [`tokens`]: issuing tokens (random, shown once, stored as a hash);
//! - [`report`]: the SLA report ([`Engine::sla_report`]): windows, groups, period steps, rates; and
//!   the catch-up of the reporting rows ([`Engine::catch_up_reports`]);
//! - [`observe`]: the calendar-fallback counter and its warning;
//! - [`error`]: [`Error`], the failures a caller can see, and their [`ErrorKind`].
//!
//! [`Store`]: doorstep_store::Store

pub mod access;
pub mod auth;
pub mod engine;
pub mod error;
pub mod observe;
mod reach;
pub mod report;
pub mod tokens;

pub use access::{CallerView, Role, Rpc, authorize};
pub use auth::{Authenticator, LocalAllAccess, Principal, TokenAuthenticator};
pub use engine::{Action, Engine, Explanation, ListRequest};
pub use error::{Error, ErrorKind};
pub use report::{PeriodStep, ReportBy, SlaReport, SlaReportRequest, SlaRow};
