#![allow(unreachable_pub)]
//! gRPC-Web end to end: raw HTTP/1.1 requests on a real socket, framed as a browser's gRPC-Web
//! client frames them (a 0x00 data frame out; data frames and a 0x80 trailer frame back), against the
//! real server. Unary calls, a WatchEvents stream, authentication and scope compared with the same
//! calls over gRPC, and CORS preflights. SQLite only: this is the transport, the backends are
//! covered by the gRPC scenarios.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use doorstep_domain::SystemClock;
use doorstep_engine::access::Role;
use doorstep_engine::{Authenticator, LocalAllAccess, TokenAuthenticator};
use doorstep_proto::v1 as w;
use doorstep_proto::v1::admin_service_client::AdminServiceClient;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;
use doorstep_server::Options;
use doorstep_store::testing::TestDatabase;
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tonic::transport::Channel;

use crate::harness::{Backend, Serving, connect, lixia_engine, local_listener};
use crate::tokened::issue_token;

const STREET: &str = "lixia/jiefanglu";
/// A compound outside 解放路: out of scope for a principal scoped to the street.
const ELSEWHERE: &str = "lixia/qianfoshan/lishanmingjun/phase-1";
const CONSOLE: &str = "https://console.example.org";

/// The server over a fresh SQLite database, with or without tokens, with these CORS origins.
struct Web {
    running: Serving,
    database: TestDatabase,
}

impl Web {
    async fn start(tokens: bool, cors_origins: &[&str]) -> Web {
        let (database, engine) = lixia_engine(Backend::Sqlite, Arc::new(SystemClock))
            .await
            .expect("SQLite is always there");
        let auth: Arc<dyn Authenticator> = if tokens {
            Arc::new(TokenAuthenticator::new(Arc::clone(&engine)))
        } else {
            Arc::new(LocalAllAccess)
        };
        let running = doorstep_server::start_with(
            engine,
            auth,
            local_listener().await,
            Options {
                cors_origins: cors_origins.iter().map(|o| (*o).to_owned()).collect(),
                ..Options::default()
            },
        )
        .await
        .expect("the server starts");
        Web {
            running: Serving::from(running),
            database,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.running.as_ref().expect("running").local_addr
    }

    async fn channel(&self) -> Channel {
        connect(self.addr()).await
    }

    async fn token(&self, role: Role, scope: &str) -> String {
        issue_token(
            &*self.database.store,
            Some("web console"),
            role,
            scope,
            None,
            None,
        )
        .await
        .expect("a token is issued")
        .secret
    }
}

/// An HTTP/1.1 response being read: the status line and headers, then the body as it arrives.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    conn: BufReader<TcpStream>,
    chunked: bool,
    /// Body bytes left to read (content-length, or of the current chunk when chunked).
    left: usize,
    done: bool,
    /// Body bytes read and not yet taken as frames.
    pending: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_cors_headers(&self) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.to_ascii_lowercase().starts_with("access-control-"))
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        self.conn.read_line(&mut line).await.expect("a line");
        line.trim_end().to_owned()
    }

    /// More body bytes into `pending`; false at the end of the body.
    async fn fill(&mut self) -> bool {
        if self.done {
            return false;
        }
        if self.chunked && self.left == 0 {
            let size = self.line().await;
            let size = size.split(';').next().unwrap_or_default();
            self.left = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
            if self.left == 0 {
                // The (empty) trailer section.
                while !self.line().await.is_empty() {}
                self.done = true;
                return false;
            }
        }
        if self.left == 0 {
            self.done = true;
            return false;
        }
        let mut buf = vec![0; self.left.min(16 * 1024)];
        let n = self.conn.read(&mut buf).await.expect("body bytes");
        assert!(n > 0, "the connection closed in the middle of the body");
        self.pending.extend_from_slice(&buf[..n]);
        self.left -= n;
        if self.chunked && self.left == 0 {
            assert_eq!(self.line().await, "", "CRLF after a chunk");
        }
        true
    }

    /// The next gRPC-Web frame: its flag byte and payload; `None` at the end of the body.
    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.pending.len() >= 5 {
                let len = u32::from_be_bytes(self.pending[1..5].try_into().unwrap()) as usize;
                if self.pending.len() >= 5 + len {
                    let flag = self.pending[0];
                    let payload = self.pending[5..5 + len].to_vec();
                    self.pending.drain(..5 + len);
                    return Some((flag, payload));
                }
            }
            if !self.fill().await {
                assert!(self.pending.is_empty(), "a partial frame at the end");
                return None;
            }
        }
    }

    /// The messages of a whole response, and its grpc-status (from the trailer frame, or from the
    /// headers of a trailers-only answer).
    async fn messages<M: Message + Default>(&mut self) -> (Vec<M>, u32) {
        let mut messages = Vec::new();
        let mut status = self.header("grpc-status").map(str::to_owned);
        while let Some((flag, payload)) = self.frame().await {
            match flag {
                0x00 => messages.push(M::decode(&payload[..]).expect("a decodable message")),
                0x80 => status = trailer(&payload, "grpc-status"),
                other => panic!("unexpected frame flag {other:#x}"),
            }
        }
        let status = status.expect("a grpc-status").parse().expect("a number");
        (messages, status)
    }
}

/// A header of a trailer frame (`name:value` lines, CRLF-separated).
fn trailer(block: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(block)
        .split("\r\n")
        .find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
}

/// Sends one HTTP/1.1 request and reads its status line and headers.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let mut conn = BufReader::new(stream);
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let out = conn.get_mut();
    out.write_all(head.as_bytes()).await.unwrap();
    out.write_all(body).await.unwrap();
    out.flush().await.unwrap();
    let mut reply = Reply {
        status: 0,
        headers: Vec::new(),
        conn,
        chunked: false,
        left: 0,
        done: false,
        pending: Vec::new(),
    };
    let status_line = reply.line().await;
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line:?}");
    reply.status = status_line[9..12].parse().expect("a status code");
    loop {
        let line = reply.line().await;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("a header line");
        reply
            .headers
            .push((name.trim().to_owned(), value.trim().to_owned()));
    }
    reply.chunked = reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if !reply.chunked {
        reply.left = reply
            .header("content-length")
            .map_or(0, |v| v.parse().expect("a length"));
    }
    reply
}

/// A gRPC-Web call: one data frame holding `message`, with these extra headers.
async fn call(
    addr: SocketAddr,
    method: &str,
    message: &impl Message,
    headers: &[(&str, &str)],
) -> Reply {
    let encoded = message.encode_to_vec();
    let mut body = vec![0x00];
    body.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&encoded);
    let mut all = vec![
        ("content-type", "application/grpc-web+proto"),
        ("x-grpc-web", "1"),
        ("accept", "application/grpc-web+proto"),
    ];
    all.extend_from_slice(headers);
    let reply = request(addr, "POST", method, &all, &body).await;
    assert_eq!(reply.status, 200, "{method}: {:?}", reply.headers);
    assert_eq!(
        reply.header("content-type"),
        Some("application/grpc-web+proto"),
        "{method}"
    );
    reply
}

#[tokio::test]
async fn unary_calls_answer_over_http1() {
    let web = Web::start(false, &[CONSOLE]).await;
    let addr = web.addr();

    let mut reply = call(
        addr,
        "/doorstep.v1.TicketService/CreateTicket",
        &crate::intake("WEB-1", "lighting.stairwell"),
        &[("origin", CONSOLE)],
    )
    .await;
    // An allowed origin's actual call may read the status headers.
    assert_eq!(reply.header("access-control-allow-origin"), Some(CONSOLE));
    let exposed = reply
        .header("access-control-expose-headers")
        .expect("exposed headers")
        .to_ascii_lowercase();
    assert!(exposed.contains("grpc-status"), "{exposed}");
    let (created, status) = reply.messages::<w::CreateTicketResponse>().await;
    assert_eq!(status, 0);
    let [created] = created.try_into().expect("one message");
    let ticket = created.ticket.expect("the ticket");
    assert!(created.created);
    assert_eq!(ticket.external_ref, "WEB-1");

    // The same ticket over gRPC: both transports reach one engine.
    let mut tickets = TicketServiceClient::new(web.channel().await);
    let read = tickets
        .get_ticket(w::GetTicketRequest {
            id: ticket.id.clone(),
        })
        .await
        .expect("the ticket reads over gRPC")
        .into_inner();
    assert_eq!(read.id, ticket.id);

    let (nodes, status) = call(
        addr,
        "/doorstep.v1.AdminService/GetNode",
        &w::GetNodeRequest {
            code: STREET.into(),
        },
        &[],
    )
    .await
    .messages::<w::Node>()
    .await;
    assert_eq!(status, 0);
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].code, STREET);

    // A refusal comes back as a gRPC status, not an HTTP error.
    let (none, status) = call(
        addr,
        "/doorstep.v1.AdminService/GetNode",
        &w::GetNodeRequest {
            code: "lixia/nowhere".into(),
        },
        &[],
    )
    .await
    .messages::<w::Node>()
    .await;
    assert!(none.is_empty());
    assert_eq!(status, tonic::Code::NotFound as u32);
}

#[tokio::test]
async fn a_watch_streams_a_ticket_filed_meanwhile() {
    let web = Web::start(false, &[]).await;
    let addr = web.addr();
    let mut watch = call(
        addr,
        "/doorstep.v1.TicketService/WatchEvents",
        &w::WatchEventsRequest {
            node: String::new(),
            after_seq: 0,
        },
        &[],
    )
    .await;
    assert!(watch.chunked, "a stream's body is chunked");
    // The headers are out: the stream is following; file a ticket over gRPC.
    let mut tickets = TicketServiceClient::new(web.channel().await);
    let filed = tickets
        .create_ticket(crate::intake("WEB-WATCH", "lighting.stairwell"))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (flag, payload) = watch.frame().await.expect("the stream stays open");
            assert_eq!(flag, 0x00, "a data frame, not the end: {payload:?}");
            let event = w::Event::decode(&payload[..]).expect("a decodable event");
            if event.ticket_id == filed.id {
                return event;
            }
        }
    })
    .await
    .expect("the event arrives within 5 s");
    assert!(event.seq > 0);
}

#[tokio::test]
async fn tokens_and_scope_hold_as_for_grpc() {
    let web = Web::start(true, &[]).await;
    let addr = web.addr();
    let token = web.token(Role::Dispatcher, STREET).await;
    let bearer = format!("Bearer {token}");
    let mut admin = AdminServiceClient::new(web.channel().await);

    for (node, authorization) in [
        (STREET, None),
        (STREET, Some(bearer.as_str())),
        (ELSEWHERE, Some(bearer.as_str())),
        (STREET, Some("Bearer not-a-token")),
    ] {
        let request = w::GetNodeRequest { code: node.into() };
        let headers: Vec<(&str, &str)> = authorization
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        let (_, web_code) = call(
            addr,
            "/doorstep.v1.AdminService/GetNode",
            &request,
            &headers,
        )
        .await
        .messages::<w::Node>()
        .await;
        let mut grpc = tonic::Request::new(request);
        if let Some(value) = authorization {
            grpc.metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        let grpc_code = match admin.get_node(grpc).await {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        assert_eq!(
            web_code, grpc_code as u32,
            "{node} with {authorization:?}: gRPC-Web and gRPC agree"
        );
        match authorization {
            None => assert_eq!(web_code, tonic::Code::Unauthenticated as u32),
            Some(value) if value == bearer && node == STREET => assert_eq!(web_code, 0),
            Some(_) => assert_ne!(web_code, 0, "{node} with {authorization:?}"),
        }
    }
}

/// A browser's preflight before a gRPC-Web call from `origin`.
async fn preflight(addr: SocketAddr, origin: &str) -> Reply {
    request(
        addr,
        "OPTIONS",
        "/doorstep.v1.TicketService/ListTickets",
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type,x-grpc-web,x-user-agent,authorization",
            ),
        ],
        &[],
    )
    .await
}

#[tokio::test]
async fn cors_answers_configured_origins_only() {
    let web = Web::start(false, &[CONSOLE]).await;
    let allowed = preflight(web.addr(), CONSOLE).await;
    assert!((200..300).contains(&allowed.status), "{}", allowed.status);
    assert_eq!(allowed.header("access-control-allow-origin"), Some(CONSOLE));
    let methods = allowed
        .header("access-control-allow-methods")
        .expect("allowed methods");
    assert!(methods.contains("POST"), "{methods}");
    let headers = allowed
        .header("access-control-allow-headers")
        .expect("allowed headers")
        .to_ascii_lowercase();
    for header in [
        "content-type",
        "x-grpc-web",
        "authorization",
        "grpc-timeout",
    ] {
        assert!(headers.contains(header), "{header} in {headers}");
    }

    // Another origin: no CORS headers at all, and no success.
    let other = preflight(web.addr(), "https://elsewhere.example.com").await;
    assert!(!other.has_cors_headers(), "{:?}", other.headers);
    assert!(!(200..300).contains(&other.status), "{}", other.status);
    // Nor on its actual call (the browser then withholds the answer from the page).
    let mut call_from_elsewhere = call(
        web.addr(),
        "/doorstep.v1.AdminService/GetNode",
        &w::GetNodeRequest {
            code: STREET.into(),
        },
        &[("origin", "https://elsewhere.example.com")],
    )
    .await;
    assert!(!call_from_elsewhere.has_cors_headers());
    let _ = call_from_elsewhere.messages::<w::Node>().await;

    // None configured: no CORS headers at all, whatever the origin.
    let closed = Web::start(false, &[]).await;
    for origin in [CONSOLE, "http://localhost:3000"] {
        let refused = preflight(closed.addr(), origin).await;
        assert!(!refused.has_cors_headers(), "{:?}", refused.headers);
        assert!(!(200..300).contains(&refused.status), "{}", refused.status);
    }
}
