//! The doorstep gRPC service: TicketService, AdminService and ReportService over tonic, with standard
//! health checking and server reflection (v1 and v1alpha), on one [`Engine`]; [`start`] and
//! [`start_with`] serve it until a [`Running`] service is shut down.
//!
//! - [`ticket_service`] and [`admin_service`]: the generated service traits, converting at the edge;
//! - [`report_service`]: the SLA report and the event export, with their own wire conversion;
//! - [`convert`]: wire ↔ domain, where every field is validated and named in its error;
//! - [`gate`]: what every call passes first: authentication (the bearer token read from the call's
//!   metadata), the rate limit, the role × RPC table;
//! - [`observe`]: the log line and the metrics of every call;
//! - [`error`]: the one mapping of the engine's errors to gRPC statuses;
//! - [`limits`] and [`connections`]: the bounds on streams per token, long exports, connections and
//!   idle connections;
//! - [`health`]: the health service: liveness (`""`) and readiness per service (draining, database);
//! - [`web`]: CORS for the browsers' gRPC-Web calls (the service port answers gRPC-Web over HTTP/1.1
//!   and HTTP/2 besides gRPC);
//! - [`console`]: the reference dispatch console's files at `/console/` and who its caller is;
//! - `fuzzing` (feature `fuzzing`): the fuzz target over request validation and the lifecycle.
//!
//! The engine itself (authentication and authorization rules, reach, the lifecycle) is
//! `doorstep-engine`; this crate is the only one that speaks gRPC.

pub mod admin_service;
pub mod connections;
pub mod console;
pub mod convert;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod gate;
pub mod health;
pub mod limits;
pub mod observe;
pub mod report_service;
pub mod ticket_service;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use doorstep_proto::v1::admin_service_server::AdminServiceServer;
use doorstep_proto::v1::report_service_server::ReportServiceServer;
use doorstep_proto::v1::ticket_service_server::TicketServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

pub use doorstep_engine::{
    Action, Authenticator, Engine, Error as EngineError, LocalAllAccess, Principal,
};
pub use gate::{Gate, RateLimit};
pub use limits::Limits;

/// How the service runs beyond its engine, authenticator and listener.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Per principal (token); the local principal of an unauthenticated service is not limited.
    pub rate_limit: RateLimit,
    /// Serve TLS (needs the `tls` feature).
    pub tls: Option<Tls>,
    /// The web origins (`https://console.example.org`) whose pages may call the service over
    /// gRPC-Web; empty: no CORS headers at all, so a browser refuses any cross-origin call.
    pub cors_origins: Vec<String>,
}

/// TLS material, PEM-encoded.
#[derive(Clone)]
pub struct Tls {
    pub cert_chain: Vec<u8>,
    pub key: Vec<u8>,
    /// Mutual TLS: only clients presenting a certificate issued by this CA may connect.
    pub client_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("mutual", &self.client_ca.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tls")]
fn with_tls(
    builder: tonic::transport::Server,
    tls: Option<&Tls>,
) -> std::io::Result<tonic::transport::Server> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let Some(tls) = tls else { return Ok(builder) };
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_chain, &tls.key));
    if let Some(ca) = &tls.client_ca {
        config = config.client_ca_root(Certificate::from_pem(ca));
    }
    builder.tls_config(config).map_err(std::io::Error::other)
}

#[cfg(not(feature = "tls"))]
fn with_tls(
    builder: tonic::transport::Server,
    tls: Option<&Tls>,
) -> std::io::Result<tonic::transport::Server> {
    match tls {
        None => Ok(builder),
        Some(_) => Err(std::io::Error::other(
            "this doorstep was built without TLS (build with --features tls)",
        )),
    }
}

/// The largest request the service decodes, in bytes (a district file is the largest legitimate one).
/// A larger one answers RESOURCE_EXHAUSTED naming the limit ([`error::request_too_large`]).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024 + 64 * 1024;
/// The largest TicketService request, in bytes: the largest legitimate one (a ticket at its field
/// limits: 20 000 characters of content, 20 attachment URLs) is well under it.
pub const MAX_TICKET_REQUEST_BYTES: usize = 512 * 1024;

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

/// How long an idle connection waits before TCP keep-alive probes start, then between probes, and how
/// many unanswered probes end it: a console that vanished behind a NAT is noticed within two minutes.
const TCP_KEEPALIVE: (Duration, Duration, u32) =
    (Duration::from_secs(60), Duration::from_secs(10), 6);

/// The connections accepted on `listener`, each with `TCP_NODELAY` and TCP keep-alive set. Serving
/// our own listener bypasses the builder's socket options, and without `TCP_NODELAY` a reply's
/// later HTTP/2 frames wait for the client's delayed ACK (40 ms on Linux) behind Nagle's algorithm.
fn accepted(listener: TcpListener) -> TcpIncoming {
    let (time, interval, retries) = TCP_KEEPALIVE;
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(time))
        .with_keepalive_interval(Some(interval))
        .with_keepalive_retries(Some(retries))
}

/// Concurrent HTTP/2 streams (calls) one connection may have open by default
/// ([`Limits::max_streams_per_connection`]); more wait for the client to close some. Watches are
/// limited per token as well ([`Limits::max_streams_per_token`]).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// Serves the engine on `listener` until shut down, with default [`Options`].
pub async fn start(
    engine: Arc<Engine>,
    auth: Arc<dyn Authenticator>,
    listener: TcpListener,
) -> std::io::Result<Running> {
    start_with(engine, auth, listener, Options::default()).await
}

/// Serves the engine on `listener` until shut down, with default [`Limits`].
pub async fn start_with(
    engine: Arc<Engine>,
    auth: Arc<dyn Authenticator>,
    listener: TcpListener,
    options: Options,
) -> std::io::Result<Running> {
    start_limited(engine, auth, listener, options, Limits::default()).await
}

/// Serves the engine on `listener` until shut down, within `limits`.
pub async fn start_limited(
    engine: Arc<Engine>,
    auth: Arc<dyn Authenticator>,
    listener: TcpListener,
    options: Options,
    limits: Limits,
) -> std::io::Result<Running> {
    let streams = Arc::new(limits::Streams::new(limits.clone()));
    let gate = Arc::new(Gate::new(auth, options.rate_limit));
    let local_addr = listener.local_addr()?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (health, health_service) = health::Readiness::new();
    let probed = Arc::clone(&engine);
    tokio::spawn(health.clone().probe_database(move || {
        let engine = Arc::clone(&probed);
        // `SELECT 1` on a read connection.
        async move { engine.ping().await }
    }));
    let reflection = |builder: tonic_reflection::server::Builder<'static>| {
        builder
            .register_encoded_file_descriptor_set(doorstep_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(doorstep_proto::RPC_DETAILS_DESCRIPTOR_SET)
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
        Arc::clone(&gate),
        shutdown_rx.clone(),
        Arc::clone(&streams),
    ))
    .max_decoding_message_size(MAX_TICKET_REQUEST_BYTES);
    let reports = ReportServiceServer::new(report_service::Reports::new(
        Arc::clone(&engine),
        Arc::clone(&gate),
        shutdown_rx.clone(),
        streams,
    ))
    .max_decoding_message_size(MAX_REQUEST_BYTES);
    let console = console::ConsoleLayer::new(Arc::clone(&gate));
    let admin = AdminServiceServer::new(admin_service::Admin::new(Arc::clone(&engine), gate))
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    let mut stop = shutdown_rx;
    let registry = Arc::new(connections::Registry::default());
    let incoming = connections::admitted(
        accepted(listener),
        limits.max_connections,
        limits.idle_timeout,
        Arc::clone(&registry),
    );
    let cors = web::CorsLayer::for_origins(&options.cors_origins)?;
    // gRPC-Web (HTTP/1.1 or HTTP/2) is translated to gRPC before the observe layer, so its calls are
    // logged, counted and gated exactly as gRPC calls; CORS answers preflights before that.
    let mut builder = with_tls(
        tonic::transport::Server::builder()
            // hyper's own default (200) is otherwise replaced by "no limit": one connection could
            // open streams without end.
            .max_concurrent_streams(Some(limits.max_streams_per_connection))
            // A peer that vanished without closing (a laptop lid, a NAT that forgot the flow) is
            // found by an unanswered ping and its streams end.
            .http2_keepalive_interval(Some(limits.http2_keepalive_interval))
            .http2_keepalive_timeout(Some(limits.http2_keepalive_timeout)),
        options.tls.as_ref(),
    )?
    .accept_http1(true)
    // Outermost: a connection with any request in flight, a console page included, is not idle.
    .layer(connections::InFlightLayer::new(registry))
    // The console's pages are plain HTTP GETs, which gRPC-Web would refuse.
    .layer(console)
    .layer(tower::util::option_layer(cors))
    .layer(tonic_web::GrpcWebLayer::new())
    .layer(observe::ObserveLayer)
    .layer(tower::util::MapResponseLayer::new(error::rewrite_too_large));
    let task = tokio::spawn(async move {
        let result = builder
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(tickets)
            .add_service(admin)
            .add_service(reports)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|stop| *stop).await;
                // Before the drain starts: no new call is sent to a replica that is going away.
                health.drain();
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
