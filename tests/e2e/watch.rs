#![allow(unreachable_pub)]
//! Watch fan-out end to end: many WatchEvents streams over real gRPC while intake runs, each getting
//! every event of its subtree once and in seq order; resumed watches without a gap or a duplicate;
//! a client that stops reading ended with the status that says where to resume, while the others
//! keep receiving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use doorstep_domain::{NodeCode, SystemClock};
use doorstep_engine::{Engine, Principal};
use doorstep_proto::v1 as w;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;
use doorstep_store::testing::TestDatabase;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::harness::{Backend, Serving, lixia_engine, serve_without_tokens};

doorstep_store::both_backends!(
    many_watches_each_get_their_subtree_once_in_seq_order,
    watches_resumed_during_intake_lose_and_repeat_nothing,
    a_watch_whose_client_stops_reading_is_ended_and_the_others_go_on,
);

const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
const ELSEWHERE: &str = "lixia/qianfoshan/lishanmingjun/phase-1";
/// The subtrees the watches cover: the whole district, and two streets that split the intake.
const SUBTREES: [&str; 3] = ["", "lixia/jiefanglu", "lixia/qianfoshan"];
/// A watch that received nothing for this long after intake ended has received everything.
const IDLE: Duration = Duration::from_millis(1500);

/// The real server over a fresh database, with the engine at hand (to size its watch feed).
pub struct Watched {
    engine: Arc<Engine>,
    addr: String,
    channel: Channel,
    _running: Serving,
    _database: TestDatabase,
}

impl Watched {
    async fn start(backend: Backend) -> Option<Watched> {
        let (database, engine) = lixia_engine(backend, Arc::new(SystemClock)).await?;
        let (running, channel) = serve_without_tokens(Arc::clone(&engine)).await;
        let addr = format!("http://{}", running.local_addr);
        Some(Watched {
            engine,
            addr,
            channel,
            _running: Serving::from(running),
            _database: database,
        })
    }

    fn tickets(&self) -> TicketServiceClient<Channel> {
        TicketServiceClient::new(self.channel.clone())
    }

    /// A client on a connection of its own with small HTTP/2 windows: what it does not read backs
    /// up to the server quickly, and holds up no other stream.
    async fn own_connection(&self) -> TicketServiceClient<Channel> {
        let channel = Endpoint::from_shared(self.addr.clone())
            .expect("endpoint")
            .initial_stream_window_size(Some(4096))
            .initial_connection_window_size(Some(4096))
            .connect()
            .await
            .expect("connect");
        TicketServiceClient::new(channel)
    }

    async fn watch(&self, node: &str, after_seq: i64) -> tonic::Streaming<w::Event> {
        self.tickets()
            .watch_events(w::WatchEventsRequest {
                node: node.into(),
                after_seq,
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Files one ticket and answers the last seq: a seq to watch after (`after_seq = 0` means from
    /// now, so a test starts with one event in the log).
    async fn begin(&self) -> i64 {
        self.tickets()
            .create_ticket(intake("BEFORE", YARD))
            .await
            .unwrap();
        let start = self.engine.last_seq().await.unwrap();
        assert!(start > 0);
        start
    }

    /// The seqs of the events of `node`'s subtree after `after`, as the store has them.
    async fn expected(&self, node: &str, after: i64) -> Vec<i64> {
        let node = (!node.is_empty()).then(|| NodeCode::parse(node).unwrap());
        let subtree = self
            .engine
            .subtree(&Principal::local(), node.as_ref())
            .unwrap();
        let events = self
            .engine
            .events_after(subtree.as_deref(), after, 10_000)
            .await
            .unwrap();
        assert!(events.len() < 10_000);
        events.iter().map(|e| e.seq).collect()
    }

    /// Files `writers × per_writer` tickets from concurrent clients, alternating between the two
    /// streets, and urges every third (a second commit on a ticket).
    fn intake(&self, tag: &str, writers: usize, per_writer: usize) -> tokio::task::JoinHandle<()> {
        let mut tasks = Vec::new();
        for writer in 0..writers {
            let mut c = self.tickets();
            let tag = tag.to_owned();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_writer {
                    let node = if (writer + i) % 2 == 0 {
                        YARD
                    } else {
                        ELSEWHERE
                    };
                    let t = c
                        .create_ticket(intake(&format!("{tag}-{writer}-{i}"), node))
                        .await
                        .unwrap()
                        .into_inner()
                        .ticket
                        .unwrap();
                    if i % 3 == 0 {
                        c.urge_ticket(crate::action(&t, "", "please"))
                            .await
                            .unwrap();
                    }
                }
            }));
        }
        tokio::spawn(async move {
            for task in tasks {
                task.await.unwrap();
            }
        })
    }
}

impl doorstep_store::testing::Fixture for Watched {
    async fn set_up(backend: Backend, _test: &'static str) -> Option<Watched> {
        Watched::start(backend).await
    }
}

fn intake(external_ref: &str, node: &str) -> w::CreateTicketRequest {
    w::CreateTicketRequest {
        source: w::Channel::Hotline12345 as i32,
        external_ref: external_ref.into(),
        caller: Some(w::Caller {
            name: "张女士".into(),
            phone: "13800000000".into(),
            confidential: false,
        }),
        category: "lighting.stairwell".into(),
        content: "楼道灯不亮".into(),
        address: "3号楼".into(),
        node: node.into(),
        ..Default::default()
    }
}

/// Reads a stream as a console does, until nothing came for [`IDLE`] after `done`; every seq.
fn collect(
    mut stream: tonic::Streaming<w::Event>,
    done: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<i64>> {
    tokio::spawn(async move {
        let mut seqs = Vec::new();
        loop {
            match tokio::time::timeout(IDLE, stream.next()).await {
                Ok(Some(Ok(event))) => seqs.push(event.seq),
                Ok(other) => panic!("the watch ended after {seqs:?}: {other:?}"),
                Err(_) if done.load(Ordering::SeqCst) => return seqs,
                Err(_) => {}
            }
        }
    })
}

async fn many_watches_each_get_their_subtree_once_in_seq_order(s: Watched) {
    let start = s.begin().await;
    let done = Arc::new(AtomicBool::new(false));
    let mut watches = Vec::new();
    for i in 0..50 {
        let node = SUBTREES[i % SUBTREES.len()];
        let stream = s.watch(node, 0).await;
        watches.push((node, collect(stream, Arc::clone(&done))));
    }
    s.intake("MANY", 8, 25).await.unwrap();
    done.store(true, Ordering::SeqCst);
    for (node, watch) in watches {
        let got = watch.await.unwrap();
        let expected = s.expected(node, start).await;
        assert!(!expected.is_empty());
        assert_eq!(got, expected, "the watch of {node:?}");
    }
}

async fn watches_resumed_during_intake_lose_and_repeat_nothing(s: Watched) {
    // Small, so the watch resumed from the start is behind what the feed holds and catches up from
    // the store while the feed moves on.
    s.engine.set_feed_holds(200);
    let start = s.begin().await;
    let done = Arc::new(AtomicBool::new(false));
    let steady = collect(s.watch("lixia/jiefanglu", 0).await, Arc::clone(&done));
    let intake = s.intake("RESUME", 8, 40);

    let mut first = s.watch("", start).await;
    let mut seqs = Vec::new();
    while seqs.len() < 100 {
        let event = tokio::time::timeout(Duration::from_secs(20), first.next())
            .await
            .expect("events arrive")
            .unwrap()
            .unwrap();
        seqs.push(event.seq);
    }
    drop(first);
    let resumed = collect(s.watch("", *seqs.last().unwrap()).await, Arc::clone(&done));
    let from_the_start = collect(s.watch("lixia/qianfoshan", start).await, Arc::clone(&done));
    intake.await.unwrap();
    done.store(true, Ordering::SeqCst);

    seqs.extend(resumed.await.unwrap());
    assert_eq!(seqs, s.expected("", start).await, "dropped and resumed");
    assert_eq!(
        from_the_start.await.unwrap(),
        s.expected("lixia/qianfoshan", start).await,
        "resumed from the start while intake ran"
    );
    assert_eq!(
        steady.await.unwrap(),
        s.expected("lixia/jiefanglu", start).await
    );
}

async fn a_watch_whose_client_stops_reading_is_ended_and_the_others_go_on(s: Watched) {
    s.engine.set_feed_holds(300);
    let start = s.begin().await;
    let done = Arc::new(AtomicBool::new(false));
    // Held without reading from the moment it is open.
    let mut stalled = s
        .own_connection()
        .await
        .watch_events(w::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut others = Vec::new();
    for i in 0..10 {
        let node = SUBTREES[i % SUBTREES.len()];
        others.push((node, collect(s.watch(node, 0).await, Arc::clone(&done))));
    }
    s.intake("STALL", 8, 75).await.unwrap();
    done.store(true, Ordering::SeqCst);
    for (node, watch) in others {
        assert_eq!(
            watch.await.unwrap(),
            s.expected(node, start).await,
            "the watch of {node:?} kept receiving"
        );
    }

    let expected = s.expected("", start).await;
    let mut seqs = Vec::new();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), stalled.next())
            .await
            .expect("the held watch was ended, not left waiting")
        {
            Some(Ok(event)) => seqs.push(event.seq),
            Some(Err(status)) => break status,
            None => panic!("the held watch ended without a status after {seqs:?}"),
        }
    };
    assert!(seqs.len() < expected.len(), "it fell behind: {seqs:?}");
    assert_eq!(seqs, expected[..seqs.len()], "what it got, it got in order");
    let resume_after = seqs.last().copied().unwrap_or(start);
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert!(
        ended
            .message()
            .contains(&format!("resume with after_seq={resume_after}")),
        "{ended:?}"
    );
    // Resumed as the status says: the rest, without a gap or a duplicate.
    let rest = collect(
        s.watch("", resume_after).await,
        Arc::new(AtomicBool::new(true)),
    );
    seqs.extend(rest.await.unwrap());
    assert_eq!(seqs, expected);
}
