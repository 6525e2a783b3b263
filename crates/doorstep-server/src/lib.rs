//! The doorstep gRPC service: TicketService, AdminService and ReportService over tonic, with standard health checking and
//! server reflection (v1 and v1alpha), on one [`Engine`].
//!
//! - [`ticket_service`] and [`admin_service`]: the generated service traits, converting at the edge;
//! - [`report_service`]: the SLA report and the event export, with their own wire conversion;
//! - [`convert`]: wire ↔ domain, where every field is validated and named in its error;
//!
//! The engine itself (and the authorization seam, and the error mapping) is `doorstep-engine`.

pub mod admin_service;
pub mod convert;
pub mod report_service;
pub mod ticket_service;

use std::net::SocketAddr;
use std::sync::Arc;

use doorstep_proto::v1::admin_service_server::AdminServiceServer;
use doorstep_proto::v1::report_service_server::ReportServiceServer;
use doorstep_proto::v1::ticket_service_server::TicketServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

pub use doorstep_engine::{Action, ApiError, Authenticator, Engine, LocalAllAccess, Principal};

/// The largest request the service decodes, in bytes (a district file is the largest legitimate one).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024 + 64 * 1024;

/// A running service.
#[derive(Debug)]
pub struct Running {
    pub local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Running {
    /// A receiver that turns `true` when shutdown begins (for the scheduler and other tasks).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Stops accepting calls, ends watch streams, lets in-flight calls finish, and returns.
    pub async fn shutdown(self) -> Result<(), tonic::transport::Error> {
        let _ = self.shutdown.send(true);
        self.wait().await
    }

    /// Waits until the service stops.
    pub async fn wait(self) -> Result<(), tonic::transport::Error> {
        match self.task.await {
            Ok(result) => result,
            Err(join) => {
                tracing::error!(error = %join, "server task failed");
                Ok(())
            }
        }
    }

    /// Begins shutdown without waiting.
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

/// Serves the engine on `listener` until shut down.
pub async fn start(
    engine: Arc<Engine>,
    auth: Arc<dyn Authenticator>,
    listener: TcpListener,
) -> std::io::Result<Running> {
    let local_addr = listener.local_addr()?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<TicketServiceServer<ticket_service::Tickets>>()
        .await;
    health
        .set_serving::<AdminServiceServer<admin_service::Admin>>()
        .await;
    health
        .set_serving::<ReportServiceServer<report_service::Reports>>()
        .await;
    let reflection = |builder: tonic_reflection::server::Builder<'static>| {
        builder
            .register_encoded_file_descriptor_set(doorstep_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection(tonic_reflection::server::Builder::configure())
        .build_v1()
        .map_err(std::io::Error::other)?;
    let reflection_v1alpha = reflection(tonic_reflection::server::Builder::configure())
        .build_v1alpha()
        .map_err(std::io::Error::other)?;
    let tickets = TicketServiceServer::new(ticket_service::Tickets::new(
        Arc::clone(&engine),
        Arc::clone(&auth),
        shutdown_rx.clone(),
    ))
    .max_decoding_message_size(MAX_REQUEST_BYTES);
    let reports = ReportServiceServer::new(report_service::Reports::new(
        Arc::clone(&engine),
        Arc::clone(&auth),
        shutdown_rx.clone(),
    ))
    .max_decoding_message_size(MAX_REQUEST_BYTES);
    let admin = AdminServiceServer::new(admin_service::Admin::new(Arc::clone(&engine), auth))
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    let mut stop = shutdown_rx;
    let incoming = TcpListenerStream::new(listener);
    let task = tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(tickets)
            .add_service(admin)
            .add_service(reports)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|stop| *stop).await;
                health
                    .set_not_serving::<TicketServiceServer<ticket_service::Tickets>>()
                    .await;
                health
                    .set_not_serving::<ReportServiceServer<report_service::Reports>>()
                    .await;
                tracing::info!("shutting down: draining in-flight calls");
            })
            .await;
        tracing::info!("server stopped");
        result
    });
    tracing::info!(addr = %local_addr, "serving doorstep.v1 (TicketService, AdminService, ReportService), health and reflection");
    Ok(Running {
        local_addr,
        shutdown,
        task,
    })
}
