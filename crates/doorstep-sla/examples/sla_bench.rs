//! The SLA scheduler at district scale: 1,000,000 open tickets, 10,000 of them breaching within the same
//! second of real time.
//!
//! ```text
//! cargo run --release -p doorstep-sla --example sla_bench -- --backend sqlite
//! cargo run --release -p doorstep-sla --example sla_bench -- --backend postgres
//! ```
//!
//! Options: `--open N` (default 1,000,000), `--breaching N` (default 10,000), `--templates N` (default
//! 10,000: the background tickets registered through the engine before the rest are copied from them).
//!
//! What it does, on a fresh database (SQLite with the server's defaults; a throwaway PostgreSQL cluster
//! with fsync on):
//! 1. registers `--templates` background tickets through the engine (dispatched, four timers each, all
//!    due a week or more ahead), and the same in a second, small database;
//! 2. copies those rows in SQL (fresh ids and seqs; the copies' JSON differs from their template only in
//!    the id, and they are never read; their reporting rows are copied too, as the report projector
//!    would have written them) up to `--open` less `--breaching` open tickets, and measures a
//!    scheduler wake-up with nothing due (the earliest due timer, then an empty claim) on the small and
//!    the large database in alternating rounds;
//! 3. registers `--breaching` tickets through the engine under a manual clock so that their 24-hour
//!    resolve deadlines fall within one second of real time a little ahead, signs for them, and fires
//!    their warnings under the manual clock: half one timer at a time (the simpler design: read, decide,
//!    commit per timer), half by the scheduler's batched round, for the baseline ratio;
//! 4. starts the scheduler on the system clock and waits for every breach to escalate. Lateness is due
//!    instant → commit, the commit instant taken when the engine publishes the commit's seq;
//! 5. stops the scheduler and folds what the burst left of the event log into the reporting rows,
//!    timed (the scheduler does this while idle, a report before it counts).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use doorstep_domain::{
    Caller, Category, Channel, Clock, Command, Intake, ManualClock, NodeCode, SystemClock, UnitCode,
};
use doorstep_engine::engine::Fired;
use doorstep_engine::{Action, Engine, Principal};
use doorstep_sla::{Scheduler, SchedulerConfig};
use doorstep_store::testing::{ClusterOptions, PgCluster, TempDir, find_pg_bindir};
use doorstep_store::{ConnectOptions, Store, connect};
use sqlx::Connection as _;

const LIXIA: &str = include_str!("../../../deploy/examples/lixia.toml");
const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
const WORKERS: &str = "lixia/jiefanglu/jiefangqiao/yard-129/workers";
/// Seqs and registration numbers of copy `i` are the template's plus `i * STRIDE`.
const STRIDE: i64 = 1_000_000;
const WRITERS: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Args {
    backend: Backend,
    open: usize,
    breaching: usize,
    templates: usize,
}

fn args() -> Args {
    let mut args = Args {
        backend: Backend::Sqlite,
        open: 1_000_000,
        breaching: 10_000,
        templates: 10_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => {
                args.backend = match value.as_str() {
                    "sqlite" => Backend::Sqlite,
                    "postgres" => Backend::Postgres,
                    other => panic!("--backend: sqlite or postgres, not {other}"),
                }
            }
            "--open" => args.open = value.parse().expect("--open: a number"),
            "--breaching" => args.breaching = value.parse().expect("--breaching: a number"),
            "--templates" => args.templates = value.parse().expect("--templates: a number"),
            other => panic!("unknown option {other}"),
        }
    }
    assert!(args.templates + args.breaching <= args.open);
    assert!((args.templates as i64) * 2 < STRIDE);
    args
}

fn intake(reference: String) -> Intake {
    Intake {
        source: Channel::Hotline12345,
        external_ref: reference,
        caller: Caller {
            name: "张女士".into(),
            phone: "13800000000".into(),
            confidential: false,
        },
        category: Category::parse("lighting.stairwell").unwrap(),
        content: "楼道灯不亮，三楼到一楼都黑着，已持续两天".into(),
        address: "解放路129号院3号楼".into(),
        node: NodeCode::parse(YARD).unwrap(),
        occurred_at: None,
        attachment_urls: vec![],
    }
}

/// Registers `count` tickets numbered from `first` with `WRITERS` concurrent callers; signs for them
/// when `acknowledge`.
async fn register(
    engine: &Arc<Engine>,
    prefix: &str,
    first: usize,
    count: usize,
    acknowledge: bool,
) {
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let engine = Arc::clone(engine);
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                let principal = Principal::local();
                for n in (first..first + count).skip(w).step_by(WRITERS) {
                    let (ticket, created) = engine
                        .create_ticket(&principal, intake(format!("{prefix}-{n}")), None)
                        .await
                        .unwrap();
                    assert!(created);
                    if acknowledge {
                        engine
                            .act(
                                &principal,
                                &ticket.id,
                                ticket.version,
                                Action::Command(Command::Acknowledge {
                                    unit: UnitCode::parse(WORKERS).unwrap(),
                                }),
                            )
                            .await
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// Microseconds per scheduler wake-up with nothing due (the earliest claimable instant, then a claim
/// that finds nothing), on a small and a large database measured in alternating rounds, so that the
/// load of this shared machine falls on both alike: the medians of ten rounds each.
async fn wake_up_micros(small: &Arc<dyn Store>, large: &Arc<dyn Store>) -> (f64, f64) {
    async fn round(store: &Arc<dyn Store>, wake_ups: u32) -> f64 {
        let now = Utc::now();
        let lease = now + chrono::Duration::seconds(30);
        let start = Instant::now();
        for _ in 0..wake_ups {
            let next = store.next_timer_due().await.unwrap();
            assert!(next.is_some_and(|t| t > now), "nothing due");
            let claimed = store
                .claim_due_timers(now, 500, "bench", lease)
                .await
                .unwrap();
            assert!(claimed.is_empty());
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(wake_ups)
    }
    // Warm the caches first, as a running scheduler has them.
    round(small, 100).await;
    round(large, 100).await;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        a.push(round(small, 200).await);
        b.push(round(large, 200).await);
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    (a[5], b[5])
}

/// Copies the template tickets (those with `reg < STRIDE`) `copies` times, in SQL.
async fn copy_templates(backend: Backend, url: &str, copies: usize) {
    let json = match backend {
        Backend::Sqlite => "json_set(ticket, '$.id', id || '~' || {i})",
        Backend::Postgres => "jsonb_set(ticket, '{{id}}', to_jsonb(id || '~' || {i}))",
    };
    let statements = [
        format!(
            "INSERT INTO tickets (id, reg, source, external_ref, node, node_path, level, status, \
             lead_unit, resolve_due_at, created_at, updated_at, version, policy_version, ticket) \
             SELECT id || '~' || {{i}}, reg + {{i}} * {STRIDE}, source, external_ref || '~' || {{i}}, \
             node, node_path, level, status, lead_unit, resolve_due_at, created_at, updated_at, \
             version, policy_version, {json} FROM tickets WHERE reg < {STRIDE}"
        ),
        format!(
            "INSERT INTO events (seq, ticket_id, at, actor, kind, node_path, payload, commit_at, \
             resolve_due) \
             SELECT seq + {{i}} * {STRIDE}, ticket_id || '~' || {{i}}, at, actor, kind, node_path, \
             payload, commit_at, resolve_due FROM events WHERE seq < {STRIDE}"
        ),
        // The reporting rows, as the projector would have written them.
        format!(
            "INSERT INTO report_facts (ticket_id, node_path, level, category, created_at, \
             first_dispatch_at, ack_on_time, ack_pending_due, first_resolved_at, resolved_on_time, \
             resolve_ms, resolve_breached, merged_at, due_now, open_since) \
             SELECT ticket_id || '~' || {{i}}, node_path, level, category, created_at, \
             first_dispatch_at, ack_on_time, ack_pending_due, first_resolved_at, resolved_on_time, \
             resolve_ms, resolve_breached, merged_at, due_now, open_since FROM report_facts \
             WHERE ticket_id IN (SELECT id FROM tickets WHERE reg < {STRIDE})"
        ),
        format!(
            "INSERT INTO report_marks (seq, ticket_id, node_path, level, category, kind, at, \
             satisfied, solved) \
             SELECT seq + {{i}} * {STRIDE}, ticket_id || '~' || {{i}}, node_path, level, category, \
             kind, at, satisfied, solved FROM report_marks WHERE seq < {STRIDE}"
        ),
        format!(
            "INSERT INTO report_overdue (ticket_id, since, ends, node_path, level, category) \
             SELECT ticket_id || '~' || {{i}}, since, ends, node_path, level, category \
             FROM report_overdue \
             WHERE ticket_id IN (SELECT id FROM tickets WHERE reg < {STRIDE})"
        ),
        format!(
            "INSERT INTO timers (ticket_id, clock, unit, threshold, due_at, due_exact) \
             SELECT ticket_id || '~' || {{i}}, clock, unit, threshold, due_at, due_exact FROM timers \
             WHERE ticket_id IN (SELECT id FROM tickets WHERE reg < {STRIDE})"
        ),
        format!(
            "INSERT INTO ticket_units (ticket_id, unit) SELECT ticket_id || '~' || {{i}}, unit \
             FROM ticket_units WHERE ticket_id IN (SELECT id FROM tickets WHERE reg < {STRIDE})"
        ),
        format!(
            "INSERT INTO intake_keys (source, external_ref, ticket_id) SELECT source, \
             external_ref || '~' || {{i}}, ticket_id || '~' || {{i}} FROM intake_keys \
             WHERE ticket_id IN (SELECT id FROM tickets WHERE reg < {STRIDE})"
        ),
    ];
    let statements: Vec<String> = statements
        .iter()
        .map(|s| s.replace("{{id}}", "{id}"))
        .collect();
    macro_rules! run_copies {
        ($conn:expr) => {{
            let conn = $conn;
            for i in 1..=copies {
                let mut tx = conn.begin().await.unwrap();
                for s in &statements {
                    let sql = s.replace("{i}", &i.to_string());
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
        }};
    }
    // The copies' reporting rows were copied too: the projector is past their events.
    let projected = "UPDATE report_state SET projected = (SELECT max(seq) FROM events)";
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            run_copies!(&mut conn);
            sqlx::query(projected).execute(&mut conn).await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            run_copies!(&mut conn);
            sqlx::query(projected).execute(&mut conn).await.unwrap();
            // The copied seqs are past the counter row: move it on, as the store would have.
            sqlx::query("UPDATE event_seq SET last = (SELECT max(seq) FROM events)")
                .execute(&mut conn)
                .await
                .unwrap();
            // What autovacuum would have done for a table that grew like this.
            sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let dir = TempDir::new("doorstep-sla-bench").unwrap();
    let cluster;
    let (url, small_url) = match args.backend {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.path().join("bench.db").display()),
            format!("sqlite://{}", dir.path().join("small.db").display()),
        ),
        Backend::Postgres => {
            let bindir = find_pg_bindir().expect("PostgreSQL is not installed");
            cluster = PgCluster::start(&bindir, ClusterOptions { durable: true }).unwrap();
            (
                cluster.create_database("sla_bench").await.unwrap(),
                cluster.create_database("sla_small").await.unwrap(),
            )
        }
    };
    let options = ConnectOptions {
        max_connections: 20,
        ..ConnectOptions::default()
    };
    let store = connect(&url, &options).await.unwrap();
    let small = connect(&small_url, &options).await.unwrap();
    println!(
        "backend {:?}: {} open tickets, {} breaching within one second",
        args.backend, args.open, args.breaching
    );

    // 1. The background, due a week ahead or later.
    let base = Utc::now();
    let manual = Arc::new(ManualClock::new(base + chrono::Duration::days(7)));
    let engine = Arc::new(
        Engine::open(Arc::clone(&store), manual.clone())
            .await
            .unwrap(),
    );
    engine.import_district(LIXIA).await.unwrap();
    let started = Instant::now();
    register(&engine, "BG", 0, args.templates, false).await;
    let rate = args.templates as f64 / started.elapsed().as_secs_f64();
    println!(
        "registered {} background tickets through the engine: {rate:.0}/s",
        args.templates
    );
    // The same again in a database of its own, kept at this size for the wake-up comparison.
    let small_engine = Arc::new(
        Engine::open(Arc::clone(&small), manual.clone())
            .await
            .unwrap(),
    );
    small_engine.import_district(LIXIA).await.unwrap();
    register(&small_engine, "BG", 0, args.templates, false).await;

    // 2. Copies up to the open count, less the breaching ones.
    let copies = (args.open - args.breaching - args.templates).div_ceil(args.templates);
    // The templates' reporting rows first, so that the copies take them along.
    while store.project_reports(5000).await.unwrap() == 5000 {}
    let started = Instant::now();
    copy_templates(args.backend, &url, copies).await;
    let background = args.templates * (copies + 1);
    println!(
        "copied to {background} background tickets in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let (wake_small, wake_large) = wake_up_micros(&small, &store).await;
    println!(
        "wake-up with nothing due: {wake_small:.0} µs at {} open, {wake_large:.0} µs at {background} \
         open ({:.2}×)",
        args.templates,
        wake_large / wake_small,
    );
    drop(small_engine);
    drop(small);

    // 3. The breaching tickets: registered and signed for under the manual clock so that their resolve
    // deadlines (24 hours) fall in [t0, t0 + 1 s) of real time, in ten steps of 100 ms.
    // Registering and signing for them costs about two registrations each (allow twice that), and
    // half their warnings are then fired one at a time (allow 100/s).
    let setup_margin = chrono::Duration::seconds(
        (4.0 * args.breaching as f64 / rate) as i64 + args.breaching as i64 / 200 + 20,
    );
    let t0 = Utc::now() + setup_margin;
    let steps = 10;
    let started = Instant::now();
    for step in 0..steps {
        manual.set(
            t0 - chrono::Duration::hours(24) + chrono::Duration::milliseconds(100 * step as i64),
        );
        let per_step = args.breaching / steps;
        register(&engine, "BR", step * per_step, per_step, true).await;
    }
    println!(
        "registered and signed for {} breaching tickets in {:.0} s",
        args.breaching,
        started.elapsed().as_secs_f64()
    );

    // Their warnings (at 18 h) under the manual clock: half one at a time, half batched.
    manual.set(t0 - chrono::Duration::hours(5));
    let half = args.breaching / 2;
    let mut fired = 0;
    let started = Instant::now();
    while fired < half {
        let due = store
            .claim_due_timers(
                Clock::now(&*manual),
                500,
                "one-at-a-time",
                Clock::now(&*manual) + chrono::Duration::seconds(30),
            )
            .await
            .unwrap();
        assert!(!due.is_empty());
        for d in &due {
            assert!(matches!(
                engine.fire(&d.ticket_id, &d.timer).await.unwrap(),
                Fired::Recorded(_)
            ));
            fired += 1;
        }
    }
    let one_at_a_time = fired as f64 / started.elapsed().as_secs_f64();
    let config = SchedulerConfig {
        owner: "bench".into(),
        batch: 500,
        ..SchedulerConfig::default()
    };
    let started = Instant::now();
    let round = Scheduler::new(Arc::clone(&engine), config.clone())
        .tick()
        .await
        .unwrap();
    let batched = round.fired as f64 / started.elapsed().as_secs_f64();
    assert_eq!(
        fired + round.fired,
        args.breaching,
        "every warning fired once"
    );
    println!(
        "warnings fired under the manual clock: one at a time {one_at_a_time:.0}/s, batched \
         {batched:.0}/s ({:.1}×)",
        batched / one_at_a_time
    );

    // 4. The breaches, in real time.
    let live = Arc::new(
        Engine::open(Arc::clone(&store), Arc::new(SystemClock))
            .await
            .unwrap(),
    );
    let before = store.last_seq().await.unwrap();
    let mut published = live.subscribe();
    let recorder = tokio::spawn(async move {
        let mut seen: Vec<(i64, DateTime<Utc>)> = Vec::new();
        while published.changed().await.is_ok() {
            let seq = *published.borrow_and_update();
            seen.push((seq, Utc::now()));
        }
        seen
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let scheduler = Scheduler::new(Arc::clone(&live), config);
    let running = tokio::spawn(async move { scheduler.run(stopped).await });
    let wait = (t0 - Utc::now()).to_std().unwrap_or_else(|_| {
        panic!("setup overran the margin: t0 passed; raise setup_margin");
    });
    println!(
        "scheduler running; first deadline in {:.0} s",
        wait.as_secs_f64()
    );
    tokio::time::sleep(wait).await;
    let mut escalations = Vec::new();
    let mut after = before;
    let give_up = Instant::now() + Duration::from_secs(600);
    while escalations.len() < args.breaching {
        assert!(Instant::now() < give_up, "breaches did not all escalate");
        let events = store.events_after(None, after, 5_000).await.unwrap();
        if events.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        after = events.last().unwrap().seq;
        for e in events {
            if let doorstep_domain::Change::Breached { due_at, .. } = e.event.change {
                escalations.push((e.seq, due_at));
            }
        }
    }
    let _ = stop.send(true);
    running.await.unwrap();
    // What the burst left behind in the reporting rows, folded now (the scheduler would have done it
    // while idle after the burst; a report would have done it before counting).
    let behind = store.last_seq().await.unwrap();
    let started = Instant::now();
    let mut folded = 0;
    loop {
        let taken = store.project_reports(5000).await.unwrap();
        folded += taken;
        if taken < 5000 {
            break;
        }
    }
    let catch_up = started.elapsed().as_secs_f64();
    drop(live);
    let seen = recorder.await.unwrap();
    let committed_at = |seq: i64| {
        let i = seen.partition_point(|(s, _)| *s < seq);
        seen[i].1
    };
    let mut lateness: Vec<f64> = escalations
        .iter()
        .map(|(seq, due)| (committed_at(*seq) - *due).num_microseconds().unwrap() as f64 / 1e6)
        .collect();
    lateness.sort_by(f64::total_cmp);
    let first_due = escalations.iter().map(|(_, d)| *d).min().unwrap();
    let last_commit = escalations
        .iter()
        .map(|(s, _)| committed_at(*s))
        .max()
        .unwrap();
    let span = (last_commit - first_due).num_microseconds().unwrap() as f64 / 1e6;
    println!(
        "breaches escalated: {} in {span:.2} s from the first deadline: {:.0} escalations/s",
        escalations.len(),
        escalations.len() as f64 / span
    );
    println!(
        "lateness due → committed: p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        percentile(&lateness, 50.0),
        percentile(&lateness, 99.0),
        lateness.last().unwrap()
    );
    println!(
        "reporting rows caught up after the burst: {folded} events (of {} appended) in {catch_up:.2} s",
        behind - before
    );
    drop(engine);
    drop(store);
}
