//! The engine: intake, lifecycle actions, timer firing and reads in domain terms, over one [`Store`];
//! shared by the gRPC service and the SLA scheduler. No wire types come in here.
//!
//! - [`engine`]: the [`Engine`] (district, calendar and policy versions in memory; every write one commit),
//!   with timer firing (one at a time or a claimed batch) and the re-timing of running deadlines after a
//!   calendar change;
//! - [`auth`]: authentication: a [`Principal`] with a role and a jurisdiction scope, from a bearer token
//!   ([`TokenAuthenticator`]) or the loopback default ([`LocalAllAccess`]);
//! - [`access`]: the one role × RPC table, [`authorize`], and how much of a caller each role sees;
//! - [`tokens`]: issuing tokens (random, shown once, stored as a hash);
//! - [`report`]: the SLA report ([`Engine::sla_report`]): windows, groups, period steps, rates;
//! - [`error`]: [`Error`], the failures a caller can see, and their one mapping to gRPC codes.
//!
//! [`Store`]: doorstep_store::Store

pub mod access;
pub mod auth;
pub mod engine;
pub mod error;
mod reach;
pub mod report;
pub mod tokens;

pub use access::{CallerView, Role, Rpc, authorize};
pub use auth::{Authenticator, LocalAllAccess, Principal, TokenAuthenticator};
pub use engine::{Action, Engine, Explanation, ListRequest};
pub use error::{Error, ErrorKind};
pub use report::{PeriodStep, ReportBy, SlaReport, SlaReportRequest, SlaRow};
