//! The gRPC health service (`grpc.health.v1.Health`): liveness and readiness.
//!
//! - The overall service (`""`) is liveness: SERVING for as long as the process serves at all.
//! - Each doorstep service (`doorstep.v1.TicketService`, `doorstep.v1.AdminService`,
//!   `doorstep.v1.ReportService`) is readiness: NOT_SERVING from the moment shutdown begins
//!   (draining, so a load balancer stops sending new calls) and while the database does not answer
//!   the probe run every [`PROBE_EVERY`]; SERVING otherwise.
//!
//! A `Watch` stream sends the status at once and on every change, and ends when draining begins,
//! after sending a doorstep service's NOT_SERVING: an open watch must not hold the drain up forever.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use doorstep_proto::v1::admin_service_server::AdminServiceServer;
use doorstep_proto::v1::report_service_server::ReportServiceServer;
use doorstep_proto::v1::ticket_service_server::TicketServiceServer;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::{admin_service, report_service, ticket_service};

/// How often the database is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
/// A probe not answered within this counts as a failure (a pool would otherwise wait up to its
/// connect timeout for a connection to a database that is gone).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The services whose status is readiness, by their gRPC names.
pub const READINESS_SERVICES: [&str; 3] = [
    <TicketServiceServer<ticket_service::Tickets> as NamedService>::NAME,
    <AdminServiceServer<admin_service::Admin> as NamedService>::NAME,
    <ReportServiceServer<report_service::Reports> as NamedService>::NAME,
];

/// What the answers are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    draining: bool,
    database_up: bool,
}

impl State {
    fn ready(self) -> bool {
        !self.draining && self.database_up
    }
}

/// Which status a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Liveness,
    Readiness,
}

fn subject(service: &str) -> Result<Subject, Status> {
    if service.is_empty() {
        Ok(Subject::Liveness)
    } else if READINESS_SERVICES.contains(&service) {
        Ok(Subject::Readiness)
    } else {
        Err(Status::not_found("service not registered"))
    }
}

fn status_of(subject: Subject, state: State) -> ServingStatus {
    match subject {
        Subject::Liveness => ServingStatus::Serving,
        Subject::Readiness if state.ready() => ServingStatus::Serving,
        Subject::Readiness => ServingStatus::NotServing,
    }
}

/// The side that changes the answers: draining and the database probe.
#[derive(Debug, Clone)]
pub(crate) struct Readiness {
    state: watch::Sender<State>,
}

impl Readiness {
    /// Ready (the engine has just opened its store), and the health service answering from it.
    pub(crate) fn new() -> (Readiness, HealthServer<HealthAnswers>) {
        let (state, answers) = watch::channel(State {
            draining: false,
            database_up: true,
        });
        (
            Readiness { state },
            HealthServer::new(HealthAnswers { state: answers }),
        )
    }

    /// Shutdown began: every doorstep service is NOT_SERVING from now on, and watches end.
    pub(crate) fn drain(&self) {
        self.state.send_modify(|s| s.draining = true);
    }

    /// Probes the database every [`PROBE_EVERY`] until draining begins, flipping readiness on a
    /// failed probe and back on the next good one, with one log line for each flip.
    pub(crate) async fn probe_database<P, F, E>(self, probe: P)
    where
        P: Fn() -> F,
        F: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let mut state = self.state.subscribe();
        let mut ticks = tokio::time::interval(PROBE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = state.wait_for(|s| s.draining) => return,
                _ = ticks.tick() => {}
            }
            let answer = match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            let up = answer.is_ok();
            let was_up = self.state.borrow().database_up;
            if up == was_up {
                continue;
            }
            self.state.send_modify(|s| s.database_up = up);
            match answer {
                Err(error) => tracing::warn!(
                    %error,
                    "database unreachable: the doorstep services report NOT_SERVING until it answers"
                ),
                Ok(()) => {
                    tracing::info!("database reachable again: the doorstep services report SERVING")
                }
            }
        }
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

/// The health service's answers.
#[derive(Debug)]
pub struct HealthAnswers {
    state: watch::Receiver<State>,
}

type Responses = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for HealthAnswers {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let subject = subject(&request.get_ref().service)?;
        let state = *self.state.borrow();
        Ok(Response::new(response(status_of(subject, state))))
    }

    type WatchStream = Responses;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let subject = subject(&request.get_ref().service)?;
        let mut state = self.state.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut sent = None;
            loop {
                let now = *state.borrow_and_update();
                let status = status_of(subject, now);
                if sent != Some(status) {
                    if tx.send(Ok(response(status))).await.is_err() {
                        return;
                    }
                    sent = Some(status);
                }
                if now.draining {
                    return;
                }
                tokio::select! {
                    changed = state.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_the_database_and_no_drain_and_liveness_needs_neither() {
        for draining in [false, true] {
            for database_up in [false, true] {
                let state = State {
                    draining,
                    database_up,
                };
                assert_eq!(status_of(Subject::Liveness, state), ServingStatus::Serving);
                let ready = status_of(Subject::Readiness, state) == ServingStatus::Serving;
                assert_eq!(ready, !draining && database_up, "{state:?}");
            }
        }
        assert_eq!(
            READINESS_SERVICES,
            [
                "doorstep.v1.TicketService",
                "doorstep.v1.AdminService",
                "doorstep.v1.ReportService"
            ]
        );
        assert_eq!(
            subject("grpc.health.v1.Health").unwrap_err().code(),
            tonic::Code::NotFound
        );
    }
}
