//! The service's limits through the real server: each one reached gives its stated error and leaves
//! valid calls working; connections beyond the cap, idle ones and dead peers are closed.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use doorstep_domain::SystemClock;
use doorstep_engine::TokenAuthenticator;
use doorstep_engine::access::Role;
use doorstep_proto::v1 as w;
use doorstep_proto::v1::report_service_client::ReportServiceClient;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;
use doorstep_server::{Limits, Options, RateLimit};
use doorstep_store::testing::TestDatabase;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

use crate::harness::{Backend, Serving, lixia_engine, local_listener};
use crate::tokened::{issue_token, req};

doorstep_store::both_backends!(
    streams_per_token_count_watches_and_exports_together,
    a_report_is_charged_per_period_step_and_a_list_per_hundred_rows,
    a_timeline_comes_in_pages_and_notes_stop_at_the_cap,
);

const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
/// Patience for what the server does on its own time (closing a connection, giving a place back):
/// far above what it needs on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

pub(crate) struct Limited {
    running: Serving,
    addr: String,
    channel: Channel,
    database: TestDatabase,
}

/// The limits of the tests that run on both backends: small, and a rate limit that refills so
/// slowly that a test sees only its burst.
fn small_limits() -> Limits {
    Limits {
        max_streams_per_token: 4,
        max_exports_per_token: 1,
        max_exports: 2,
        max_history_for_notes: 8,
        ..Limits::default()
    }
}

const SLOW_RATE: RateLimit = RateLimit {
    per_second: 0.01,
    burst: 45.0,
};

impl Limited {
    async fn start(backend: Backend, limits: Limits, rate_limit: RateLimit) -> Option<Limited> {
        let (database, engine) = lixia_engine(backend, Arc::new(SystemClock)).await?;
        let running = doorstep_server::start_limited(
            Arc::clone(&engine),
            Arc::new(TokenAuthenticator::new(engine)),
            local_listener().await,
            Options {
                rate_limit,
                ..Options::default()
            },
            limits,
        )
        .await
        .expect("the server starts");
        let addr = format!("http://{}", running.local_addr);
        let channel = connect(&addr).await.expect("connect");
        Some(Limited {
            running: Serving::from(running),
            addr,
            channel,
            database,
        })
    }

    async fn token(&self, name: &str, role: Role) -> String {
        issue_token(&*self.database.store, Some(name), role, "lixia", None, None)
            .await
            .expect("a token is issued")
            .secret
    }

    fn tickets(&self) -> TicketServiceClient<Channel> {
        TicketServiceClient::new(self.channel.clone())
    }

    fn reports(&self) -> ReportServiceClient<Channel> {
        ReportServiceClient::new(self.channel.clone())
    }

    async fn file(&self, token: &str, external_ref: &str) -> w::Ticket {
        self.tickets()
            .create_ticket(req(token, intake(external_ref)))
            .await
            .unwrap_or_else(|e| panic!("filing {external_ref}: {e:?}"))
            .into_inner()
            .ticket
            .unwrap()
    }
}

impl doorstep_store::testing::Fixture for Limited {
    async fn set_up(backend: Backend, _test: &'static str) -> Option<Limited> {
        Limited::start(backend, small_limits(), SLOW_RATE).await
    }
}

/// A connection of its own (each `Channel` from `connect` is one HTTP/2 connection).
async fn connect(addr: &str) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(addr.to_owned())
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
}

fn intake(external_ref: &str) -> w::CreateTicketRequest {
    crate::security::intake(external_ref, YARD, false)
}

fn watch(token: &str) -> Request<w::WatchEventsRequest> {
    req(token, w::WatchEventsRequest::default())
}

fn export(token: &str, limit: i32) -> Request<w::ExportEventsRequest> {
    req(
        token,
        w::ExportEventsRequest {
            limit,
            ..Default::default()
        },
    )
}

/// A token's WatchEvents and ExportEvents streams share one cap; a refusal names it, another token
/// is not affected, ordinary calls keep working, and a closed stream gives its place back.
async fn streams_per_token_count_watches_and_exports_together(s: Limited) {
    let greedy = s.token("greedy", Role::Admin).await;
    let other = s.token("other", Role::Admin).await;
    let filed = s.file(&greedy, "STREAMS-1").await;
    let mut t = s.tickets();
    let mut streams = Vec::new();
    for _ in 0..small_limits().max_streams_per_token {
        streams.push(t.watch_events(watch(&greedy)).await.unwrap().into_inner());
    }
    let refused = s
        .reports()
        .export_events(export(&greedy, 10))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("max_streams_per_token")
            && refused.message().contains("ExportEvents"),
        "{refused:?}"
    );
    let refused = t.watch_events(watch(&greedy)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let _theirs = t
        .watch_events(watch(&other))
        .await
        .expect("another token is not affected");
    t.get_ticket(req(
        &greedy,
        w::GetTicketRequest {
            id: filed.id.clone(),
        },
    ))
    .await
    .expect("ordinary calls keep working");
    drop(streams.pop());
    // The server sees the stream go once its body is dropped: retried within bounded patience.
    let events = tokio::time::timeout(PATIENCE, async {
        loop {
            match s.reports().export_events(export(&greedy, 10)).await {
                Ok(stream) => return stream.into_inner().collect::<Vec<_>>().await,
                Err(status) => {
                    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                    // Each try spends a unit of the token's budget: not too often.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    })
    .await
    .expect("a closed watch gives its place to an export");
    assert!(!events.is_empty(), "the export reads the filing");
    assert!(events.iter().all(Result::is_ok), "{events:?}");
}

/// A report costs one unit of the rate limit per period step, a list page one per hundred rows: a
/// token with a small budget is refused after a big report but not after small ones, and a request
/// that could never be paid is refused naming the field to narrow.
async fn a_report_is_charged_per_period_step_and_a_list_per_hundred_rows(s: Limited) {
    let ts = |days_ago: i64| {
        let at = Utc::now() - chrono::Duration::days(days_ago);
        Some(prost_types::Timestamp {
            seconds: at.timestamp(),
            nanos: 0,
        })
    };
    let by_day = |days: i64| w::SlaReportRequest {
        node: "lixia".into(),
        from: ts(days),
        to: ts(0),
        group_by: w::GroupBy::Period as i32,
        period: w::Period::Day as i32,
    };
    let whole = w::SlaReportRequest {
        group_by: w::GroupBy::Unspecified as i32,
        period: 0,
        ..by_day(400)
    };
    let mut r = s.reports();

    // Small reports: one unit each, well within the budget of 45.
    let small = s.token("small reports", Role::Admin).await;
    for _ in 0..30 {
        r.get_sla_report(req(&small, whole.clone()))
            .await
            .expect("a whole-window report costs one unit");
    }

    // A by-day report over 35 days costs 35 (about 36 steps); a second is refused, a small one not.
    let big = s.token("big reports", Role::Admin).await;
    let never = r.get_sla_report(req(&big, by_day(60))).await.unwrap_err();
    assert_eq!(never.code(), Code::InvalidArgument, "{never:?}");
    assert!(never.message().starts_with("period"), "{never:?}");
    r.get_sla_report(req(&big, by_day(35)))
        .await
        .expect("a report within the budget");
    let refused = r.get_sla_report(req(&big, by_day(35))).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("period"), "{refused:?}");
    r.get_sla_report(req(&big, whole.clone()))
        .await
        .expect("a small report still fits");

    // A page of 1000 rows costs 10; four of them spend 40 of 45.
    let lister = s.token("lister", Role::Admin).await;
    let mut t = s.tickets();
    let list = |page_size: i32| {
        req(
            &lister,
            w::ListTicketsRequest {
                page_size,
                ..Default::default()
            },
        )
    };
    for _ in 0..4 {
        t.list_tickets(list(1000)).await.expect("a big page");
    }
    let refused = t.list_tickets(list(1000)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("page_size"), "{refused:?}");
    t.list_tickets(list(50))
        .await
        .expect("a small page still fits");
}

/// GetTimeline pages through a ticket's events; AddNote stops at the history cap
/// (FAILED_PRECONDITION naming it) while the ticket's other actions go on.
async fn a_timeline_comes_in_pages_and_notes_stop_at_the_cap(s: Limited) {
    let admin = s.token("timeline admin", Role::Admin).await;
    let mut ticket = s.file(&admin, "NOTES-1").await;
    let mut t = s.tickets();
    let note = |ticket: &w::Ticket, text: &str| req(&admin, crate::action(ticket, "", text));
    let mut refused = None;
    for n in 0..20 {
        match t.add_note(note(&ticket, &format!("note {n}"))).await {
            Ok(next) => ticket = next.into_inner(),
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("notes stop at the cap");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("max_history_for_notes"),
        "{refused:?}"
    );
    assert_eq!(ticket.version, small_limits().max_history_for_notes);
    let cancelled = t
        .cancel_ticket(note(&ticket, "filed twice"))
        .await
        .expect("other actions go on")
        .into_inner();

    let timeline = |page_size: i32, page_token: String| {
        req(
            &admin,
            w::GetTimelineRequest {
                id: cancelled.id.clone(),
                page_size,
                page_token,
            },
        )
    };
    let whole = t
        .get_timeline(timeline(0, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert!(whole.next_page_token.is_empty());
    let all: Vec<i64> = whole.events.iter().map(|e| e.seq).collect();
    assert!(all.len() > 8, "{all:?}");
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = t
            .get_timeline(timeline(3, token))
            .await
            .unwrap()
            .into_inner();
        assert!(page.events.len() <= 3);
        assert_eq!(page.ticket.unwrap().id, cancelled.id);
        paged.extend(page.events.iter().map(|e| e.seq));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, all, "the pages hold every event once, in order");
    for (page_size, page_token, field) in [
        (-1, String::new(), "page_size"),
        (1001, String::new(), "page_size"),
        (3, "x".to_owned(), "page_token"),
    ] {
        let e = t
            .get_timeline(timeline(page_size, page_token))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with(field), "{e:?}");
    }
}

/// Streams opened by one token across several connections are refused beyond its cap, whichever
/// connection they come on; the token's other calls keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_streams_across_connections_is_refused_beyond_the_cap() {
    let s = Limited::start(Backend::Sqlite, small_limits(), SLOW_RATE)
        .await
        .unwrap();
    let flood = s.token("flood", Role::Admin).await;
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(TicketServiceClient::new(connect(&s.addr).await.unwrap()));
    }
    let mut open = Vec::new();
    let mut refused = 0;
    for i in 0..20 {
        match connections[i % 4].watch_events(watch(&flood)).await {
            Ok(stream) => open.push(stream.into_inner()),
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                refused += 1;
            }
        }
    }
    assert_eq!(open.len(), small_limits().max_streams_per_token);
    assert_eq!(refused, 20 - small_limits().max_streams_per_token);
    for c in &mut connections {
        c.list_tickets(req(&flood, w::ListTicketsRequest::default()))
            .await
            .expect("the token's other calls keep working");
    }
}

/// One connection holds at most its stream cap of calls at once; one more waits (it is not
/// refused) until a stream closes, and other connections are not held up meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_holds_a_bounded_number_of_calls() {
    let limits = Limits {
        max_streams_per_connection: 2,
        ..small_limits()
    };
    let s = Limited::start(Backend::Sqlite, limits, SLOW_RATE)
        .await
        .unwrap();
    let admin = s.token("console", Role::Admin).await;
    let mut t = s.tickets();
    let first = t.watch_events(watch(&admin)).await.unwrap().into_inner();
    let _second = t.watch_events(watch(&admin)).await.unwrap().into_inner();
    let mut waiting = s.tickets();
    let third = req(&admin, w::ListTicketsRequest::default());
    let waiting = tokio::spawn(async move { waiting.list_tickets(third).await });
    // Not an assertion on time: the call cannot be answered while the connection is full.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the third call waits for a stream");
    let mut elsewhere = TicketServiceClient::new(connect(&s.addr).await.unwrap());
    elsewhere
        .list_tickets(req(&admin, w::ListTicketsRequest::default()))
        .await
        .expect("another connection is not held up");
    drop(first);
    tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the waiting call goes through once a stream closes")
        .unwrap()
        .expect("and is answered");
}

/// Beyond the connection cap a new connection is closed at once (its calls fail), the
/// open ones keep working, and a closed one gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed() {
    let limits = Limits {
        max_connections: 3,
        ..small_limits()
    };
    let s = Limited::start(Backend::Sqlite, limits, SLOW_RATE)
        .await
        .unwrap();
    let admin = s.token("console", Role::Admin).await;
    let list = || req(&admin, w::ListTicketsRequest::default());
    // The fixture's own channel is the first.
    let mut open = vec![s.tickets()];
    for _ in 0..2 {
        open.push(TicketServiceClient::new(connect(&s.addr).await.unwrap()));
    }
    for c in &mut open {
        c.list_tickets(list()).await.expect("within the cap");
    }
    let over = async {
        let mut c = TicketServiceClient::new(connect(&s.addr).await?);
        Ok::<_, Box<dyn std::error::Error>>(c.list_tickets(list()).await?)
    };
    match over.await {
        Ok(answer) => panic!("a fourth connection was served: {answer:?}"),
        Err(e) => {
            // Closed before a byte of HTTP/2: the client reports its transport's failure.
            if let Some(status) = e.downcast_ref::<tonic::Status>() {
                assert!(
                    matches!(
                        status.code(),
                        Code::Unavailable | Code::Unknown | Code::Cancelled
                    ),
                    "{status:?}"
                );
            }
        }
    }
    for c in &mut open {
        c.list_tickets(list())
            .await
            .expect("the open ones keep working");
    }
    drop(open.pop());
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(channel) = connect(&s.addr).await
                && TicketServiceClient::new(channel)
                    .list_tickets(list())
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a closed connection gives its place back");
}

/// Reads from a raw connection until the server closes it; `None` if it is still open after
/// `patience`.
async fn closed_by_server(mut socket: tokio::net::TcpStream, patience: Duration) -> Option<()> {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(patience, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// A connection with no call in flight past the idle timeout is closed by the server; one holding a
/// watch is not, however long the watch lasts; a client's next call connects again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_busy_ones_kept() {
    let idle = Duration::from_secs(1);
    let limits = Limits {
        idle_timeout: Some(idle),
        ..small_limits()
    };
    let s = Limited::start(Backend::Sqlite, limits, SLOW_RATE)
        .await
        .unwrap();
    let admin = s.token("console", Role::Admin).await;

    let addr = s.running.as_ref().unwrap().local_addr;
    let opened = tokio::time::Instant::now();
    let silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Well under hyper's own 30 s wait for a request's first bytes, which would close it too.
    closed_by_server(silent, Duration::from_secs(20))
        .await
        .expect("a silent connection is closed after the idle timeout");
    assert!(opened.elapsed() >= idle, "not before the idle timeout");

    // A watch is a call in flight for as long as it lasts: three idle timeouts later it still
    // delivers.
    let mut watching = TicketServiceClient::new(connect(&s.addr).await.unwrap());
    let mut events = watching
        .watch_events(watch(&admin))
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(idle * 3).await;
    // Filed on the watching connection: the fixture's own has been idle past the timeout.
    let filed = watching
        .create_ticket(req(&admin, intake("IDLE-1")))
        .await
        .expect("the busy connection is open")
        .into_inner()
        .ticket
        .unwrap();
    let event = tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("the watch delivers")
        .expect("the stream is open")
        .expect("an event");
    assert_eq!(event.ticket_id, filed.id);

    // The fixture's channel went idle meanwhile; its next calls connect again.
    tokio::time::sleep(idle * 3).await;
    let answered = tokio::time::timeout(PATIENCE, async {
        loop {
            match s
                .tickets()
                .get_ticket(req(
                    &admin,
                    w::GetTicketRequest {
                        id: filed.id.clone(),
                    },
                ))
                .await
            {
                Ok(ticket) => return ticket.into_inner(),
                Err(status) => {
                    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .await
    .expect("a client connects again");
    assert_eq!(answered.id, filed.id);
}

/// A peer that stops answering HTTP/2 pings is dropped after the keep-alive timeout, though the
/// idle timeout is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_answer_pings_is_dropped() {
    let limits = Limits {
        http2_keepalive_interval: Duration::from_secs(1),
        http2_keepalive_timeout: Duration::from_secs(1),
        idle_timeout: None,
        ..small_limits()
    };
    let s = Limited::start(Backend::Sqlite, limits, SLOW_RATE)
        .await
        .unwrap();
    let addr = s.running.as_ref().unwrap().local_addr;
    let mut mute = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The HTTP/2 preface and an empty SETTINGS frame, then nothing: no ping is ever answered.
    mute.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    closed_by_server(mute, Duration::from_secs(20))
        .await
        .expect("the server drops a peer that does not answer its pings");
}
