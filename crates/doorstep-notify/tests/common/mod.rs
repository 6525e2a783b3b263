//! A webhook receiver on loopback for the tests: records every request, answers from a script
//! (a queue of status codes, then 200).

#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

use chrono::{DateTime, FixedOffset, Utc};
use doorstep_domain::{Caller, Category, Channel, Intake, ManualClock, NodeCode, Ticket, TicketId};
use doorstep_engine::{Engine, Principal};
use doorstep_notify::{Notifier, NotifierConfig, Rules};
use doorstep_sla::{Scheduler, SchedulerConfig};
use doorstep_store::testing::TestDatabase;

/// One request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub delivery: String,
    pub signature: String,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The status answered; 0 while held open.
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }
}

#[derive(Debug, Default)]
struct State {
    got: Mutex<Vec<Received>>,
    answers: Mutex<VecDeque<u16>>,
    /// Requests not answered at all (held open) while set.
    hang: Mutex<bool>,
    arrived: Notify,
}

#[derive(Debug, Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<State>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let serving = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, std::convert::Infallible>(answer(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            url: format!("http://{addr}/hooks/doorstep"),
            state,
        }
    }

    /// The next `n` requests are answered `status`.
    pub fn answer_next(&self, n: usize, status: u16) {
        let mut answers = self.state.answers.lock().unwrap();
        answers.extend(std::iter::repeat_n(status, n));
    }

    /// Every request from now on is answered 200.
    pub fn clear_answers(&self) {
        self.state.answers.lock().unwrap().clear();
    }

    /// Requests are held open without an answer while `on`.
    pub fn hang(&self, on: bool) {
        *self.state.hang.lock().unwrap() = on;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    /// Waits (at most `within`) until `n` requests arrived; what arrived.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.state.arrived.notified();
            let got = self.received();
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }
}

async fn answer(
    state: &State,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (method, path) = (req.method().to_string(), req.uri().to_string());
    let (delivery, signature, content_type) = (
        header("doorstep-delivery"),
        header("doorstep-signature"),
        header("content-type"),
    );
    let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
    if *state.hang.lock().unwrap() {
        // Seen, never answered (`answered` 0).
        state.got.lock().unwrap().push(Received {
            method,
            path,
            delivery,
            signature,
            content_type,
            body,
            answered: 0,
        });
        state.arrived.notify_waiters();
        std::future::pending::<()>().await;
        unreachable!();
    }
    let status = state.answers.lock().unwrap().pop_front().unwrap_or(200);
    state.got.lock().unwrap().push(Received {
        method,
        path,
        delivery,
        signature,
        content_type,
        body,
        answered: status,
    });
    state.arrived.notify_waiters();
    hyper::Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(b"ok")))
        .unwrap()
}

pub const LIXIA: &str = include_str!("../../../../deploy/examples/lixia.toml");
pub const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
pub const CALLER_NAME: &str = "张三丰";
pub const CALLER_PHONE: &str = "13912345678";

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::<FixedOffset>::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A district on a manual clock (Monday 2 March 2026, 10:00 in Jinan) with a scheduler, a notifier
/// following the given rules and a receiver on loopback for them.
pub struct World {
    pub clock: Arc<ManualClock>,
    pub engine: Arc<Engine>,
    pub scheduler: Scheduler,
    pub notifier: Notifier,
    pub receiver: Receiver,
    pub db: TestDatabase,
}

impl World {
    /// `rules` is given the receiver's URL.
    pub async fn new(db: TestDatabase, rules: impl FnOnce(&str) -> Rules) -> World {
        // Monday 2 March 2026, 10:00 in Jinan.
        let clock = Arc::new(ManualClock::new(at("2026-03-02T10:00:00+08:00")));
        let engine = Arc::new(
            Engine::open(Arc::clone(&db.store), clock.clone())
                .await
                .unwrap(),
        );
        engine.import_district(LIXIA).await.unwrap();
        let receiver = Receiver::start().await;
        let scheduler = Scheduler::new(
            Arc::clone(&engine),
            SchedulerConfig {
                owner: "test-scheduler".into(),
                ..SchedulerConfig::default()
            },
        );
        let notifier = Notifier::new(
            Arc::clone(&engine),
            Arc::clone(&db.store),
            rules(&receiver.url),
            NotifierConfig {
                owner: "test-notifier".into(),
                ..NotifierConfig::default()
            },
        )
        .unwrap();
        World {
            clock,
            engine,
            scheduler,
            notifier,
            receiver,
            db,
        }
    }

    /// Files a stairwell-light ticket at the yard; the catalogue dispatches it to the workers.
    pub async fn file(&self, reference: &str) -> TicketId {
        self.file_ticket(reference).await.id
    }

    pub async fn file_ticket(&self, reference: &str) -> Ticket {
        let (t, _) = self
            .engine
            .create_ticket(
                &Principal::local(),
                Intake {
                    source: Channel::Hotline12345,
                    external_ref: reference.into(),
                    caller: Caller {
                        name: CALLER_NAME.into(),
                        phone: CALLER_PHONE.into(),
                        confidential: false,
                    },
                    category: Category::parse("lighting.stairwell").unwrap(),
                    content: "楼道灯不亮".into(),
                    address: "解放桥小区12号楼".into(),
                    node: NodeCode::parse(YARD).unwrap(),
                    occurred_at: None,
                    attachment_urls: vec![],
                },
                None,
            )
            .await
            .unwrap();
        t
    }

    /// Moves the clock and fires what fell due.
    pub async fn advance_to(&self, t: DateTime<Utc>) {
        self.clock.set(t);
        self.scheduler.tick().await.unwrap();
    }

    /// Records everything committed, then one delivery round, waiting for its attempts.
    pub async fn notify(&self) -> usize {
        while self.notifier.record().await.unwrap() > 0 {}
        let n = self.notifier.deliver().await.unwrap();
        self.notifier.idle().await;
        n
    }

    /// The (seq, kind) of the ticket's events of these kinds, in order.
    pub async fn events(&self, id: &TicketId, kinds: &[&str]) -> Vec<(i64, String)> {
        let (_, history, _) = self.engine.timeline(&Principal::local(), id).await.unwrap();
        history
            .iter()
            .filter(|e| kinds.contains(&e.event.change.kind()))
            .map(|e| (e.seq, e.event.change.kind().to_owned()))
            .collect()
    }
}
