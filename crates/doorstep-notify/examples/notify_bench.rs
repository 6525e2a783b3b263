//! Webhook delivery during an escalation burst: 10,000 tickets breaching at once, every BREACHED and
//! ESCALATED event a webhook delivery to a receiver on loopback.
//!
//! ```text
//! cargo run --release -p doorstep-notify --example notify_bench -- --backend sqlite
//! cargo run --release -p doorstep-notify --example notify_bench -- --backend postgres
//! ```
//!
//! Options: `--breaching N` (default 10,000), `--concurrency N` (attempts in flight; default the
//! notifier's, 32).
//!
//! What it does, on a fresh database (SQLite with the server's defaults; a throwaway PostgreSQL
//! cluster with fsync on):
//! 1. registers `--breaching` ROUTINE tickets through the engine under a manual clock a day behind,
//!    signs for them and fires their warnings, so that every resolve deadline has passed by the
//!    system clock;
//! 2. starts, on the system clock, the SLA scheduler and the notifier (the default configuration:
//!    32 attempts in flight, one connection each) with a rule for BREACHED and ESCALATED, and a
//!    receiver on loopback that answers 200 at once;
//! 3. waits for every delivery. The baseline is the burst's own event-commit rate (BREACHED and
//!    ESCALATED events committed per second by the scheduler, from its start to the last commit,
//!    taken from the engine's published seqs); the delivery rate is deliveries received per second
//!    from the first to the last; how far delivery trails is, per delivery, its arrival at the
//!    receiver less the instant its event's commit was published.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use doorstep_domain::{
    Caller, Category, Channel, Command, Intake, ManualClock, NodeCode, SystemClock, UnitCode,
};
use doorstep_engine::{Action, Engine, Principal};
use doorstep_notify::{Notifier, NotifierConfig, Rules};
use doorstep_sla::{Scheduler, SchedulerConfig};
use doorstep_store::testing::{ClusterOptions, PgCluster, TempDir, find_pg_bindir};
use doorstep_store::{ConnectOptions, connect};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

const LIXIA: &str = include_str!("../../../deploy/examples/lixia.toml");
const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
const WORKERS: &str = "lixia/jiefanglu/jiefangqiao/yard-129/workers";
const WRITERS: usize = 16;

fn intake(reference: String) -> Intake {
    Intake {
        source: Channel::Hotline12345,
        external_ref: reference,
        caller: Caller::default(),
        category: Category::parse("lighting.stairwell").unwrap(),
        content: "楼道灯不亮".into(),
        address: String::new(),
        node: NodeCode::parse(YARD).unwrap(),
        occurred_at: None,
        attachment_urls: vec![],
    }
}

async fn register(engine: &Arc<Engine>, count: usize) {
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let engine = Arc::clone(engine);
            tokio::spawn(async move {
                let principal = Principal::local();
                for n in (0..count).skip(w).step_by(WRITERS) {
                    let (t, _) = engine
                        .create_ticket(&principal, intake(format!("BURST-{n}")), None)
                        .await
                        .unwrap();
                    engine
                        .act(
                            &principal,
                            &t.id,
                            t.version,
                            Action::Command(Command::Acknowledge {
                                unit: UnitCode::parse(WORKERS).unwrap(),
                            }),
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Arrivals: (instant, event seq) per delivery.
type Arrivals = Arc<Mutex<Vec<(Instant, i64)>>>;

async fn receiver() -> (String, Arrivals) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let arrivals: Arrivals = Arc::default();
    let got = Arc::clone(&arrivals);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let got = Arc::clone(&got);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let got = Arc::clone(&got);
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            let at = Instant::now();
                            let seq = serde_json::from_slice::<serde_json::Value>(&body)
                                .ok()
                                .and_then(|v| v["event"]["seq"].as_i64())
                                .unwrap_or(0);
                            got.lock().unwrap().push((at, seq));
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, arrivals)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut backend = "sqlite".to_owned();
    let mut breaching = 10_000usize;
    let mut concurrency = NotifierConfig::default().concurrency;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => backend = value,
            "--breaching" => breaching = value.parse().expect("--breaching N"),
            "--concurrency" => concurrency = value.parse().expect("--concurrency N"),
            other => panic!("unknown option {other}"),
        }
    }
    let dir = TempDir::new("doorstep-notify-bench").unwrap();
    let cluster;
    let url = match backend.as_str() {
        "sqlite" => format!("sqlite://{}", dir.path().join("bench.db").display()),
        "postgres" => {
            let bindir = find_pg_bindir().expect("PostgreSQL is not installed");
            cluster = PgCluster::start(&bindir, ClusterOptions { durable: true }).unwrap();
            cluster.create_database("notify_bench").await.unwrap()
        }
        other => panic!("--backend: sqlite or postgres, not {other}"),
    };
    let options = ConnectOptions {
        max_connections: 20,
        ..ConnectOptions::default()
    };
    let store = connect(&url, &options).await.unwrap();
    println!(
        "backend {backend}: {breaching} tickets breaching at once, {concurrency} attempts in flight"
    );

    // 1. The tickets, a day behind, signed for, warned.
    let base = chrono::Utc::now() - chrono::Duration::hours(24) - chrono::Duration::seconds(1);
    let manual = Arc::new(ManualClock::new(base));
    let engine = Arc::new(
        Engine::open(Arc::clone(&store), manual.clone())
            .await
            .unwrap(),
    );
    engine.import_district(LIXIA).await.unwrap();
    let started = Instant::now();
    register(&engine, breaching).await;
    println!(
        "registered and signed for {breaching} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    manual.set(base + chrono::Duration::hours(18) + chrono::Duration::seconds(30));
    let warned = Scheduler::new(Arc::clone(&engine), SchedulerConfig::default())
        .tick()
        .await
        .unwrap();
    println!("warnings fired: {}", warned.fired);

    // 2. The scheduler and the notifier on the system clock.
    let live = Arc::new(
        Engine::open(Arc::clone(&store), Arc::new(SystemClock))
            .await
            .unwrap(),
    );
    let (hook, arrivals) = receiver().await;
    let rules: toml::Table = toml::from_str(&format!(
        "[[notify.webhook]]\nname = \"bench\"\nurl = \"{hook}\"\n\
         secret = \"bench-secret-0123456789\"\nevents = [\"BREACHED\", \"ESCALATED\"]\n"
    ))
    .unwrap();
    let rules = Rules::parse(rules.get("notify"), &|_| None).unwrap();
    let notifier = Notifier::new(
        Arc::clone(&live),
        Arc::clone(&store),
        rules,
        NotifierConfig {
            concurrency,
            ..NotifierConfig::default()
        },
    )
    .unwrap();
    // The cursor past registration and warnings: only the burst is measured.
    while notifier.record().await.unwrap() > 0 {}
    let first_seq = store.last_seq().await.unwrap();

    let commits: Arc<Mutex<Vec<(Instant, i64)>>> = Arc::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    {
        let commits = Arc::clone(&commits);
        let mut seqs = live.subscribe();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = seqs.changed() => {
                        if changed.is_err() { return; }
                        let seq = *seqs.borrow_and_update();
                        commits.lock().unwrap().push((Instant::now(), seq));
                    }
                    _ = stopped.changed() => return,
                }
            }
        });
    }
    let began = Instant::now();
    let notifying = tokio::spawn(notifier.clone().run(stopped.clone()));
    let scheduler = Scheduler::new(Arc::clone(&live), SchedulerConfig::default());
    let scheduling = {
        let stopped = stopped.clone();
        tokio::spawn(async move { scheduler.run(stopped).await })
    };

    // 3. Every delivery.
    let expected = 2 * breaching;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while arrivals.lock().unwrap().len() < expected {
        assert!(Instant::now() < deadline, "not every delivery arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    let _ = scheduling.await;
    let _ = notifying.await;

    let commits = commits.lock().unwrap().clone();
    let arrivals = arrivals.lock().unwrap().clone();
    let burst: Vec<&(Instant, i64)> = commits.iter().filter(|(_, s)| *s > first_seq).collect();
    let last_commit = burst[burst.len() - 1].0;
    let committed = (burst[burst.len() - 1].1 - first_seq) as f64;
    let commit_secs = (last_commit - began).as_secs_f64().max(1e-3);
    let first_arrival = arrivals.iter().map(|(at, _)| *at).min().unwrap();
    let last_arrival = arrivals.iter().map(|(at, _)| *at).max().unwrap();
    let delivery_secs = (last_arrival - first_arrival).as_secs_f64().max(1e-3);
    // The instant each seq's commit was published: the first sample at or past it.
    let published = |seq: i64| -> Instant {
        let i = commits.partition_point(|(_, s)| *s < seq);
        commits.get(i).map_or(last_commit, |(at, _)| *at)
    };
    let mut trail: Vec<f64> = arrivals
        .iter()
        .map(|(at, seq)| at.saturating_duration_since(published(*seq)).as_secs_f64())
        .collect();
    trail.sort_by(f64::total_cmp);
    let mut per_id: HashMap<i64, usize> = HashMap::new();
    for (_, seq) in &arrivals {
        *per_id.entry(*seq).or_default() += 1;
    }
    let commit_rate = committed / commit_secs;
    let delivery_rate = arrivals.len() as f64 / delivery_secs;
    println!(
        "burst: {committed} events committed in {commit_secs:.2} s from the scheduler's start: {commit_rate:.0}/s (baseline)"
    );
    println!(
        "deliveries: {} in {delivery_secs:.2} s from the first arrival: {delivery_rate:.0}/s ({:.2}× the commit rate)",
        arrivals.len(),
        delivery_rate / commit_rate
    );
    println!(
        "first delivery {:.2} s after the burst began; last delivery {:.2} s after the last commit",
        (first_arrival - began).as_secs_f64(),
        last_arrival
            .saturating_duration_since(last_commit)
            .as_secs_f64()
    );
    println!(
        "trailing (arrival − commit published), p50 / p99 / max: {:.2} / {:.2} / {:.2} s",
        percentile(&trail, 0.5),
        percentile(&trail, 0.99),
        percentile(&trail, 1.0)
    );
    println!(
        "events delivered more than once: {}",
        per_id.values().filter(|n| **n > 1).count()
    );
    store.close().await.unwrap();
}
