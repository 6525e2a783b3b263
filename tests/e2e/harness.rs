#![allow(unreachable_pub)]
//! Starts the real server on 127.0.0.1:0 over a real database, and hands out generated clients.

use std::net::SocketAddr;
use std::sync::Arc;

use doorstep_domain::{Clock, SystemClock};
use doorstep_engine::{Engine, LocalAllAccess};
use doorstep_proto::v1 as w;
use doorstep_proto::v1::admin_service_client::AdminServiceClient;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;
use doorstep_server::Running;
use doorstep_store::Store;
use doorstep_store::testing::TestDatabase;
use tonic::transport::{Channel, Endpoint};

/// The Lixia example district every scenario runs in.
pub const LIXIA: &str = include_str!("../../deploy/examples/lixia.toml");

pub use doorstep_store::testing::Backend;

/// How long a store on a cluster of a test's own waits for a connection before a call answers
/// UNAVAILABLE: short, for the tests that stop the database under a running server.
pub const OWN_CLUSTER_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A throwaway PostgreSQL cluster of the test's own (a test that stops the database must not stop
/// the shared one under the tests beside it) and a store on a fresh database in it; `None` after one
/// loud line when PostgreSQL is not installed and not required.
pub async fn own_postgres(
    test: &str,
) -> Option<(
    doorstep_store::testing::PgCluster,
    Arc<dyn doorstep_store::Store>,
)> {
    use doorstep_store::testing::{self, ClusterOptions, PgCluster};
    let Some(bindir) = testing::find_pg_bindir() else {
        assert!(
            !testing::postgres_required(),
            "DOORSTEP_TEST_PG=required, but PostgreSQL is not installed"
        );
        eprintln!("SKIPPED postgres {test} test: PostgreSQL is not installed");
        return None;
    };
    let cluster = PgCluster::start(&bindir, ClusterOptions { durable: false })
        .unwrap_or_else(|e| panic!("a cluster of our own: {e}"));
    let url = cluster.create_database(test).await.expect("a database");
    let options = doorstep_store::ConnectOptions {
        connect_timeout: OWN_CLUSTER_CONNECT_TIMEOUT,
        ..testing::test_options()
    };
    let store = doorstep_store::connect(&url, &options)
        .await
        .expect("the store opens");
    Some((cluster, store))
}

/// A fresh database of `backend` and an engine over it that reads the time from `clock`, with the
/// Lixia district imported; `None` (after one loud line) when PostgreSQL is not installed and not
/// required.
pub async fn lixia_engine(
    backend: Backend,
    clock: Arc<dyn Clock>,
) -> Option<(TestDatabase, Arc<Engine>)> {
    let database = match backend {
        Backend::Sqlite => TestDatabase::sqlite().await,
        Backend::Postgres => TestDatabase::postgres().await?,
    };
    let engine = lixia_engine_over(Arc::clone(&database.store), clock).await;
    Some((database, engine))
}

/// An engine over `store` that reads the time from `clock`, with the Lixia district imported.
pub async fn lixia_engine_over(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Arc<Engine> {
    let engine = Arc::new(Engine::open(store, clock).await.expect("the engine opens"));
    engine
        .import_district(LIXIA)
        .await
        .expect("the Lixia district imports");
    engine
}

/// A listener on 127.0.0.1 at a port the system picks.
pub async fn local_listener() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
}

/// A channel to the server at `addr` (one HTTP/2 connection of its own).
pub async fn connect(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

/// The server over `engine` without tokens (every caller may do everything), on 127.0.0.1:0, and
/// a channel to it.
pub async fn serve_without_tokens(engine: Arc<Engine>) -> (Running, Channel) {
    let running = doorstep_server::start(engine, Arc::new(LocalAllAccess), local_listener().await)
        .await
        .expect("the server starts");
    let channel = connect(running.local_addr).await;
    (running, channel)
}

/// A running server that begins its shutdown when dropped, at the end of the test that started it;
/// it reads as the `Option<Running>` it holds (a test may take the server to stop it itself).
pub struct Serving(Option<Running>);

impl From<Running> for Serving {
    fn from(running: Running) -> Serving {
        Serving(Some(running))
    }
}

impl std::ops::Deref for Serving {
    type Target = Option<Running>;
    fn deref(&self) -> &Option<Running> {
        &self.0
    }
}

impl std::ops::DerefMut for Serving {
    fn deref_mut(&mut self) -> &mut Option<Running> {
        &mut self.0
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(running) = self.0.take() {
            running.begin_shutdown();
        }
    }
}

/// The kinds of a timeline's events, in order.
pub fn kinds(timeline: &w::Timeline) -> Vec<w::EventKind> {
    timeline
        .events
        .iter()
        .map(|e| w::EventKind::try_from(e.kind).unwrap())
        .collect()
}

pub struct Server {
    pub running: Serving,
    pub channel: Channel,
    _database: TestDatabase,
}

impl Server {
    /// The server over a fresh database of `backend`; `None` (after one loud line) when PostgreSQL is
    /// not installed and not required.
    pub async fn start(backend: Backend) -> Option<Server> {
        Server::start_on(backend, Arc::new(SystemClock)).await
    }

    /// [`Server::start`] over an engine that reads the time from `clock` (a manual clock: deadlines
    /// on known dates).
    pub async fn start_on(
        backend: Backend,
        clock: Arc<dyn doorstep_domain::Clock>,
    ) -> Option<Server> {
        let (database, engine) = lixia_engine(backend, clock).await?;
        let (running, channel) = serve_without_tokens(engine).await;
        Some(Server {
            running: Serving::from(running),
            channel,
            _database: database,
        })
    }

    pub async fn tickets(&self) -> TicketServiceClient<Channel> {
        TicketServiceClient::new(self.channel.clone()).max_encoding_message_size(64 * 1024 * 1024)
    }

    /// The timeline of ticket `id` (the paging fields' defaults).
    pub async fn timeline(&self, id: &str) -> w::Timeline {
        self.tickets()
            .await
            .get_timeline(w::GetTimelineRequest {
                id: id.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("the timeline of {id}: {e:?}"))
            .into_inner()
    }

    pub async fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }

    pub async fn check_health_and_reflection(&self) {
        use tonic_health::pb::health_client::HealthClient;
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
        let mut health = HealthClient::new(self.channel.clone());
        for service in ["", "doorstep.v1.TicketService", "doorstep.v1.AdminService"] {
            let status = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status;
            assert_eq!(
                status,
                ServingStatus::Serving as i32,
                "health of {service:?}"
            );
        }

        use tokio_stream::StreamExt;
        {
            use tonic_reflection::pb::v1::ServerReflectionRequest;
            use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
            let mut client = ServerReflectionClient::new(self.channel.clone());
            let requests = tokio_stream::iter(vec![
                ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(MessageRequest::ListServices(String::new())),
                },
                ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(MessageRequest::FileContainingSymbol(
                        "doorstep.v1.TicketService".into(),
                    )),
                },
                // The details an INVALID_ARGUMENT carries, so that reflective clients decode them.
                ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(MessageRequest::FileContainingSymbol(
                        "google.rpc.BadRequest".into(),
                    )),
                },
            ]);
            let mut responses = client
                .server_reflection_info(requests)
                .await
                .unwrap()
                .into_inner();
            match responses.next().await.unwrap().unwrap().message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
                    for wanted in [
                        "doorstep.v1.TicketService",
                        "doorstep.v1.AdminService",
                        "grpc.health.v1.Health",
                    ] {
                        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
                    }
                }
                other => panic!("v1 list services: {other:?}"),
            }
            for symbol in ["doorstep.v1.TicketService", "google.rpc.BadRequest"] {
                match responses.next().await.unwrap().unwrap().message_response {
                    Some(MessageResponse::FileDescriptorResponse(files)) => {
                        assert!(!files.file_descriptor_proto.is_empty(), "{symbol}");
                    }
                    other => panic!("v1 file containing {symbol}: {other:?}"),
                }
            }
        }
        {
            use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
            use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
            let mut client = ServerReflectionClient::new(self.channel.clone());
            let requests = tokio_stream::iter(vec![ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            }]);
            let mut responses = client
                .server_reflection_info(requests)
                .await
                .unwrap()
                .into_inner();
            match responses.next().await.unwrap().unwrap().message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    assert!(
                        list.service
                            .iter()
                            .any(|s| s.name == "doorstep.v1.TicketService")
                    );
                }
                other => panic!("v1alpha list services: {other:?}"),
            }
        }
    }
}

impl doorstep_store::testing::Fixture for Server {
    async fn set_up(backend: Backend, _test: &'static str) -> Option<Server> {
        Server::start(backend).await
    }
}
