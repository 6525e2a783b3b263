//! The engine: intake, lifecycle actions, timer firing and reads in domain terms, over one [`Store`];
//! shared by the gRPC service and the SLA scheduler. No wire types come in here.
//!
//! - [`engine`]: the [`Engine`] (district, calendar and policy versions in memory; every write one commit);
//! - [`auth`]: the authorization seam: a [`Principal`] with a jurisdiction scope, checked here;
//! - [`report`]: the SLA report ([`Engine::sla_report`]): windows, groups, period steps, rates;
//! - [`error`]: [`ApiError`], the failures a caller can see, and their one mapping to gRPC codes.
//!
//! [`Store`]: doorstep_store::Store

pub mod auth;
pub mod engine;
pub mod error;
pub mod report;

pub use auth::{Authenticator, LocalAllAccess, Principal};
pub use engine::{Action, Engine, Explanation, ListRequest};
pub use error::ApiError;
pub use report::{PeriodStep, ReportBy, SlaReport, SlaReportRequest, SlaRow};
