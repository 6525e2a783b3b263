#![allow(unreachable_pub)]
//! The server with bearer tokens on, over a real database, for the tests of who reaches what
//! (dispatch targets, node moves, intake ownership, masking): tokens issued as `doorstep token
//! create` issues them, and generated clients that present them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use doorstep_domain::{NodeCode, SystemClock, UnitCode};
use doorstep_engine::access::Role;
use doorstep_engine::tokens::{Issued, TokenRequest, issue};
use doorstep_engine::{Engine, TokenAuthenticator};
use doorstep_proto::v1 as w;
use doorstep_proto::v1::admin_service_client::AdminServiceClient;
use doorstep_proto::v1::report_service_client::ReportServiceClient;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;
use doorstep_server::{Options, RateLimit, Running};
use doorstep_store::Store;
use doorstep_store::testing::TestDatabase;
use tonic::Request;
use tonic::transport::Channel;

use crate::harness::{Backend, Serving, connect, lixia_engine, local_listener};

/// A rate limit no test of who reaches what runs into.
pub const GENEROUS: RateLimit = RateLimit {
    per_second: 10_000.0,
    burst: 10_000.0,
};

/// The server over `engine` with bearer tokens checked by `auth`, each token limited to
/// `rate_limit`, on 127.0.0.1:0, and a channel to it.
pub async fn serve_with_tokens(
    engine: Arc<Engine>,
    auth: TokenAuthenticator,
    rate_limit: RateLimit,
) -> (Running, Channel) {
    let running = doorstep_server::start_with(
        engine,
        Arc::new(auth),
        local_listener().await,
        Options {
            rate_limit,
            ..Options::default()
        },
    )
    .await
    .expect("the server starts");
    let channel = connect(running.local_addr).await;
    (running, channel)
}

/// Issues a token as `doorstep token create` does (`name` `None`: the default name).
pub async fn issue_token(
    store: &dyn Store,
    name: Option<&str>,
    role: Role,
    scope: &str,
    unit: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Issued, doorstep_engine::Error> {
    issue(
        store,
        TokenRequest {
            name: name.map(Into::into),
            role,
            scope: Some(NodeCode::parse(scope).unwrap()),
            unit: unit.map(|u| UnitCode::parse(u).unwrap()),
            expires_at,
        },
        Utc::now(),
    )
    .await
}

pub struct Tokened {
    _running: Serving,
    channel: Channel,
    pub database: TestDatabase,
}

impl doorstep_store::testing::Fixture for Tokened {
    async fn set_up(backend: Backend, _test: &'static str) -> Option<Tokened> {
        Tokened::start(backend).await
    }
}

impl Tokened {
    pub async fn start(backend: Backend) -> Option<Tokened> {
        let (database, engine) = lixia_engine(backend, Arc::new(SystemClock)).await?;
        let auth = TokenAuthenticator::new(Arc::clone(&engine));
        let (running, channel) = serve_with_tokens(engine, auth, GENEROUS).await;
        Some(Tokened {
            _running: Serving::from(running),
            channel,
            database,
        })
    }

    /// Issues a token as `doorstep token create` does (`name` `None`: the default name).
    pub async fn issue(
        &self,
        name: Option<&str>,
        role: Role,
        scope: &str,
        unit: Option<&str>,
    ) -> Result<Issued, doorstep_engine::Error> {
        issue_token(&*self.database.store, name, role, scope, unit, None).await
    }

    /// The secret of a new token.
    pub async fn token(&self, name: &str, role: Role, scope: &str, unit: Option<&str>) -> String {
        self.issue(Some(name), role, scope, unit)
            .await
            .expect("a token is issued")
            .secret
    }

    pub fn tickets(&self) -> TicketServiceClient<Channel> {
        TicketServiceClient::new(self.channel.clone())
    }

    pub fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }

    pub fn reports(&self) -> ReportServiceClient<Channel> {
        ReportServiceClient::new(self.channel.clone())
    }

    /// Files `request` as the holder of `token`.
    pub async fn file(&self, token: &str, request: w::CreateTicketRequest) -> w::Ticket {
        let external_ref = request.external_ref.clone();
        self.tickets()
            .create_ticket(req(token, request))
            .await
            .unwrap_or_else(|e| panic!("filing {external_ref}: {e:?}"))
            .into_inner()
            .ticket
            .expect("a ticket")
    }

    pub async fn get(&self, token: &str, id: &str) -> Result<w::Ticket, tonic::Status> {
        self.tickets()
            .get_ticket(req(token, w::GetTicketRequest { id: id.into() }))
            .await
            .map(tonic::Response::into_inner)
    }

    /// The timeline of ticket `id` as `token` reads it (the paging fields' defaults).
    pub async fn timeline(&self, token: &str, id: &str) -> w::Timeline {
        self.tickets()
            .get_timeline(req(
                token,
                w::GetTimelineRequest {
                    id: id.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_or_else(|e| panic!("the timeline of {id}: {e:?}"))
            .into_inner()
    }

    /// Files a ticket elsewhere (a dormitory in 纸坊) as the holder of `admin`, and answers the
    /// last seq of the log: a watch after it starts after this ticket's events.
    pub async fn opening(&self, admin: &str) -> i64 {
        self.file(
            admin,
            intake(
                "OPENING-1",
                "lixia/zhiyuan/jilian/refinery-dorm",
                "赵先生",
                "13600003333",
            ),
        )
        .await;
        self.exported(admin)
            .await
            .last()
            .map(|e| e.seq)
            .expect("events")
    }

    /// The ids of every ticket `token` lists under `node` ("" = its whole scope).
    pub async fn listed(&self, token: &str, node: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .tickets()
                .list_tickets(req(
                    token,
                    w::ListTicketsRequest {
                        node: node.into(),
                        page_size: 500,
                        page_token: page_token.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap_or_else(|e| panic!("listing: {e:?}"))
                .into_inner();
            ids.extend(page.tickets.into_iter().map(|t| t.id));
            if page.next_page_token.is_empty() {
                return ids;
            }
            page_token = page.next_page_token;
        }
    }

    /// Every event `token` exports from the start of the log (all of its scope).
    pub async fn exported(&self, token: &str) -> Vec<w::Event> {
        use tokio_stream::StreamExt;
        let mut stream = self
            .reports()
            .export_events(req(
                token,
                w::ExportEventsRequest {
                    after_seq: 0,
                    ..Default::default()
                },
            ))
            .await
            .unwrap_or_else(|e| panic!("exporting: {e:?}"))
            .into_inner();
        let mut events = Vec::new();
        while let Some(event) =
            tokio::time::timeout(std::time::Duration::from_secs(60), stream.next())
                .await
                .expect("the export ends within a minute")
        {
            events.push(event.expect("an exported event"));
        }
        events
    }

    /// The events `token`'s watch hands out after `after_seq` (at least 1: 0 asks for live events
    /// only) up to `until_seq`, an event the token sees (the watch follows live, so it is read up to
    /// one known to come), all of its scope.
    pub async fn watched(&self, token: &str, after_seq: i64, until_seq: i64) -> Vec<w::Event> {
        let mut stream = self.watch(token, after_seq).await;
        read_until(&mut stream, until_seq).await
    }

    /// A watch of all of `token`'s scope after `after_seq` (0: live events only).
    pub async fn watch(&self, token: &str, after_seq: i64) -> tonic::Streaming<w::Event> {
        self.tickets()
            .watch_events(req(
                token,
                w::WatchEventsRequest {
                    after_seq,
                    ..Default::default()
                },
            ))
            .await
            .unwrap_or_else(|e| panic!("watching: {e:?}"))
            .into_inner()
    }
}

/// A watch's events up to `until_seq`, one the watch's token sees.
pub async fn read_until(stream: &mut tonic::Streaming<w::Event>, until_seq: i64) -> Vec<w::Event> {
    use tokio_stream::StreamExt;
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while events.last().is_none_or(|e: &w::Event| e.seq < until_seq) {
        let event = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("the watch reaches seq {until_seq} within a minute"))
            .expect("the watch goes on")
            .expect("a watched event");
        events.push(event);
    }
    events
}

pub fn req<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII"),
    );
    request
}

/// A request filed at `node`, with the caller `name` and `phone`.
pub fn intake(external_ref: &str, node: &str, name: &str, phone: &str) -> w::CreateTicketRequest {
    w::CreateTicketRequest {
        source: w::Channel::Hotline12345 as i32,
        external_ref: external_ref.into(),
        caller: Some(w::Caller {
            name: name.into(),
            phone: phone.into(),
            confidential: false,
        }),
        category: "lighting.stairwell".into(),
        content: "3号楼楼道灯不亮".into(),
        address: "解放路129号院3号楼2单元".into(),
        node: node.into(),
        ..Default::default()
    }
}
