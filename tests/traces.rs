//! Traces (the `otel` feature): a call's spans reach from the RPC through the engine to the store in
//! one trace, and a scheduler round has its own, as an OTLP collector would receive them. The
//! spans go to an in-process exporter through the same `tracing-opentelemetry` bridge `serve` uses.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use doorstep_domain::SystemClock;
use doorstep_engine::{Engine, LocalAllAccess};
use doorstep_proto::v1 as w;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt as _;

/// The spans exported, kept in memory.
#[derive(Debug, Clone, Default)]
struct Collected(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collected {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(batch);
        std::future::ready(Ok(()))
    }
}

impl Collected {
    fn spans(&self) -> Vec<SpanData> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
        panic!("no span {name:?} among {names:?}")
    })
}

/// `inner` runs inside `outer`'s trace, below it (directly or not).
fn assert_below(spans: &[SpanData], inner: &SpanData, outer: &SpanData) {
    assert_eq!(
        inner.span_context.trace_id(),
        outer.span_context.trace_id(),
        "{} is in {}'s trace",
        inner.name,
        outer.name
    );
    let mut parent = inner.parent_span_id;
    while parent != outer.span_context.span_id() {
        let Some(up) = spans.iter().find(|s| s.span_context.span_id() == parent) else {
            panic!("{} is not below {}", inner.name, outer.name);
        };
        parent = up.parent_span_id;
    }
}

// One thread: the server's tasks run where the subscriber below is the default.
#[tokio::test(flavor = "current_thread")]
async fn a_call_is_one_trace_from_the_rpc_to_the_store_and_a_scheduler_round_another() {
    let collected = Collected::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(collected.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("doorstep")));
    let _default = tracing::subscriber::set_default(subscriber);

    let dir = std::env::temp_dir().join(format!("doorstep-traces-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("doorstep.db").display());
    let store = doorstep_store::connect(&url, &doorstep_store::ConnectOptions::default())
        .await
        .unwrap();
    let engine = Arc::new(
        Engine::open(store.clone(), Arc::new(SystemClock))
            .await
            .unwrap(),
    );
    engine
        .import_district(include_str!("../deploy/examples/lixia.toml"))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = doorstep_server::start(Arc::clone(&engine), Arc::new(LocalAllAccess), listener)
        .await
        .unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.local_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let created = TicketServiceClient::new(channel)
        .create_ticket(w::CreateTicketRequest {
            source: w::Channel::Hotline12345 as i32,
            external_ref: "TRACE-1".into(),
            caller: Some(w::Caller {
                name: "李先生".into(),
                phone: "13900000001".into(),
                confidential: false,
            }),
            category: "sanitation.garbage".into(),
            content: "垃圾桶满了".into(),
            node: "lixia/qianfoshan/lishanmingjun/phase-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(created.created);

    let scheduler = doorstep_sla::Scheduler::new(
        Arc::clone(&engine),
        doorstep_sla::SchedulerConfig::default(),
    );
    scheduler.tick().await.unwrap();
    running.shutdown().await.unwrap();
    store.close().await.unwrap();
    provider.force_flush().unwrap();

    let spans = collected.spans();
    let rpc = named(&spans, "doorstep.v1.TicketService/CreateTicket");
    assert_eq!(rpc.span_kind, opentelemetry::trace::SpanKind::Server);
    let engine_span = named(&spans, "engine.create_ticket");
    let store_span = named(&spans, "store.create_ticket");
    assert_eq!(engine_span.parent_span_id, rpc.span_context.span_id());
    assert_below(&spans, store_span, engine_span);
    assert_eq!(
        store_span.span_context.trace_id(),
        engine_span.span_context.trace_id()
    );

    let tick = named(&spans, "sla.tick");
    assert_ne!(tick.span_context.trace_id(), rpc.span_context.trace_id());
    assert_below(&spans, named(&spans, "store.claim_due_timers"), tick);
    assert_below(&spans, named(&spans, "engine.decide_batch"), tick);

    // No caller's name or phone in any span's name, attributes or events.
    let exported = format!("{spans:?}");
    for secret in ["李先生", "13900000001"] {
        assert!(
            !exported.contains(secret),
            "personal data in a span: {exported}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

mod collector {
    //! A minimal OTLP/gRPC collector: keeps every span it receives.

    use std::sync::{Arc, Mutex, PoisonError};

    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };

    #[derive(Debug, Clone, Default)]
    pub(crate) struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(request.into_inner());
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    impl Collector {
        /// Serves on a free loopback port; its address.
        pub(crate) async fn start(&self) -> std::net::SocketAddr {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let service = TraceServiceServer::new(self.clone());
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
            );
            addr
        }

        pub(crate) fn received(&self) -> Vec<ExportTraceServiceRequest> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_its_spans_to_the_otlp_endpoint() {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    let collector = collector::Collector::default();
    let endpoint = collector.start().await;
    let dir = std::env::temp_dir().join(format!("doorstep-otlp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_doorstep"))
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
        ])
        .arg(format!("sqlite://{}", dir.join("doorstep.db").display()))
        .args(["--otlp-endpoint", &format!("http://{endpoint}")])
        .env("DOORSTEP_LOG", "warn")
        .env_remove("OTEL_SERVICE_NAME")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("doorstep serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("doorstep listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    TicketServiceClient::new(channel)
        .create_ticket(w::CreateTicketRequest {
            source: w::Channel::Hotline12345 as i32,
            external_ref: "OTLP-1".into(),
            caller: Some(w::Caller {
                name: "李先生".into(),
                phone: "13900000001".into(),
                confidential: false,
            }),
            category: "sanitation.garbage".into(),
            content: "垃圾桶满了".into(),
            node: "lixia/qianfoshan/lishanmingjun/phase-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // SIGTERM: the spans still batched are sent before the process ends.
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "clean exit: {status:?}");

    let received = collector.received();
    let service_names: Vec<String> = received
        .iter()
        .flat_map(|r| &r.resource_spans)
        .filter_map(|r| r.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .filter(|a| a.key == "service.name")
        .map(|a| format!("{:?}", a.value))
        .collect();
    assert!(
        !service_names.is_empty() && service_names.iter().all(|n| n.contains("doorstep")),
        "the service is named: {service_names:?}"
    );
    let spans: Vec<_> = received
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let find = |name: &str| {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
            panic!("no span {name:?} among {names:?}")
        })
    };
    let rpc = find("doorstep.v1.TicketService/CreateTicket");
    let engine = find("engine.create_ticket");
    let store = find("store.create_ticket");
    assert_eq!(engine.parent_span_id, rpc.span_id);
    assert_eq!(engine.trace_id, rpc.trace_id);
    assert_eq!(store.trace_id, rpc.trace_id);
    let exported = format!("{received:?}");
    for secret in ["李先生", "13900000001"] {
        assert!(
            !exported.contains(secret),
            "personal data exported: {exported}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
