//! How many tickets per second a store registers with 1, 16 and 64 concurrent writers, beside the
//! raw rate of inserting the same rows one ticket per commit with plain sqlx, in the same run.
//!
//! ```text
//! cargo run --release -p doorstep-store --example store_bench -- --backend sqlite
//! cargo run --release -p doorstep-store --example store_bench -- --backend postgres [--seconds 3]
//! ```
//!
//! Each ticket is what intake writes: CREATED plus an automatic dispatch (two events, the projection,
//! its unit and four timers). SQLite runs with the server defaults (WAL, `synchronous=FULL`); the
//! PostgreSQL cluster is a throwaway one started here with its durable defaults (fsync on,
//! `synchronous_commit=on`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use doorstep_domain::calendar::Calendar;
use doorstep_domain::{
    Actor, Caller, Category, Channel, Command, Context, Event, Intake, Level, NodeCode, Policy,
    Registration, Ticket, TicketId, UnitCode, register,
};
use doorstep_store::testing::{ClusterOptions, PgCluster, TempDir, find_pg_bindir};
use doorstep_store::{ConnectOptions, Created, NewTicket, connect, migrate};
use sqlx::Connection as _;

const NODE_PATH: &str = "|lx|lx/s1|lx/s1/c1|lx/s1/c1/y1|";

struct World {
    policy: Policy,
    calendar: Calendar,
    actor: Actor,
}

impl World {
    /// Ticket `n` as intake registers it: CREATED, then dispatched to the compound's workers.
    fn ticket(&self, n: u64, now: DateTime<Utc>) -> (Ticket, Vec<Event>) {
        let ctx = Context {
            now,
            actor: &self.actor,
            policy: &self.policy,
            calendar: &self.calendar,
        };
        let created = register(
            Registration {
                id: TicketId::parse(format!("bench-{n}")).unwrap(),
                intake: Intake {
                    source: Channel::Hotline12345,
                    external_ref: format!("SD-{n}"),
                    caller: Caller {
                        name: "张女士".into(),
                        phone: "13800000000".into(),
                        confidential: false,
                    },
                    category: Category::parse("water.supply").unwrap(),
                    content: "楼道漏水，三楼到一楼墙面渗水，已持续两天".into(),
                    address: "解放路129号院3号楼".into(),
                    node: NodeCode::parse("lx/s1/c1/y1").unwrap(),
                    occurred_at: None,
                    attachment_urls: vec![],
                },
                level: Level::Routine,
                policy_version: 1,
                case_owner: None,
            },
            &ctx,
        )
        .unwrap();
        let ticket = Ticket::from_created(&created).unwrap();
        let (ticket, dispatched) = ticket
            .handle(
                &Command::Dispatch {
                    unit: UnitCode::parse("lx/s1/c1/y1/workers").unwrap(),
                    reason: String::new(),
                },
                &ctx,
            )
            .unwrap();
        let mut events = vec![created];
        events.extend(dispatched);
        (ticket, events)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Where fresh databases come from.
struct Databases {
    backend: Backend,
    dir: TempDir,
    cluster: Option<PgCluster>,
    next: u32,
}

impl Databases {
    async fn fresh(&mut self) -> String {
        self.next += 1;
        match (self.backend, &self.cluster) {
            (Backend::Sqlite, _) => format!(
                "sqlite://{}",
                self.dir
                    .path()
                    .join(format!("bench-{}.db", self.next))
                    .display()
            ),
            (Backend::Postgres, Some(cluster)) => cluster.create_database("bench").await.unwrap(),
            (Backend::Postgres, None) => unreachable!(),
        }
    }
}

/// Tickets stored per second through the store, `writers` at a time.
async fn store_rate(world: &Arc<World>, url: &str, writers: usize, seconds: f64) -> f64 {
    let options = ConnectOptions {
        max_connections: writers.clamp(2, 64) as u32,
        ..ConnectOptions::default()
    };
    let store = connect(url, &options).await.unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let store = store.clone();
            let world = world.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut stored = 0u64;
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let (ticket, events) = world.ticket(n, Utc::now());
                    let created = store
                        .create_ticket(NewTicket {
                            ticket: &ticket,
                            events: &events,
                            node_path: NODE_PATH,
                        })
                        .await
                        .unwrap();
                    assert!(matches!(created, Created::New(_)));
                    stored += 1;
                }
                stored
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// The same rows as a store writes for one ticket, one ticket per transaction, one connection.
macro_rules! raw_insert {
    ($conn:expr, $n:expr, $ticket:expr, $events:expr, $json_cast:literal) => {{
        let ticket: &Ticket = $ticket;
        let events: &[Event] = $events;
        let conn = $conn;
        let seq = ($n as i64) * 2 + 1;
        let mut tx = conn.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO intake_keys (source, external_ref, ticket_id) VALUES ($1, $2, $3)",
        )
        .bind(ticket.intake.source.as_str())
        .bind(&ticket.intake.external_ref)
        .bind(ticket.id.as_str())
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(concat!(
            "INSERT INTO tickets (id, reg, source, external_ref, node, node_path, level, status, ",
            "lead_unit, resolve_due_at, created_at, updated_at, version, policy_version, ticket) ",
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15",
            $json_cast,
            ")"
        ))
        .bind(ticket.id.as_str())
        .bind(seq)
        .bind(ticket.intake.source.as_str())
        .bind(&ticket.intake.external_ref)
        .bind(ticket.intake.node.as_str())
        .bind(NODE_PATH)
        .bind(ticket.level.as_str())
        .bind(ticket.status.as_str())
        .bind(ticket.lead_unit.as_ref().map(|u| u.as_str().to_owned()))
        .bind(ticket.resolve_due_at().map(|t| t.timestamp_millis()))
        .bind(ticket.created_at.timestamp_millis())
        .bind(ticket.updated_at.timestamp_millis())
        .bind(ticket.version)
        .bind(ticket.policy_version)
        .bind(serde_json::to_string(ticket).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
        for (i, event) in events.iter().enumerate() {
            sqlx::query(concat!(
                "INSERT INTO events (seq, ticket_id, at, actor, kind, node_path, payload) ",
                "VALUES ($1, $2, $3, $4, $5, $6, $7",
                $json_cast,
                ")"
            ))
            .bind(seq + i as i64)
            .bind(ticket.id.as_str())
            .bind(event.at.timestamp_millis())
            .bind(event.actor.as_str())
            .bind(event.change.kind())
            .bind(NODE_PATH)
            .bind(serde_json::to_string(event).unwrap())
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        sqlx::query("INSERT INTO ticket_units (ticket_id, unit) VALUES ($1, $2)")
            .bind(ticket.id.as_str())
            .bind(ticket.lead_unit.as_ref().unwrap().as_str())
            .execute(&mut *tx)
            .await
            .unwrap();
        for timer in ticket.timers() {
            sqlx::query(
                "INSERT INTO timers (ticket_id, clock, unit, threshold, due_at, due_exact) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(ticket.id.as_str())
            .bind(timer.clock.as_str())
            .bind(timer.unit.as_ref().map_or("", |u| u.as_str()))
            .bind(format!("{:?}", timer.threshold).to_uppercase())
            .bind(timer.due_at.timestamp_millis())
            .bind(timer.due_at.to_rfc3339())
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }};
}

/// Tickets per second inserted raw, one per commit, on one connection.
async fn raw_rate(world: &World, backend: Backend, url: &str, seconds: f64) -> f64 {
    migrate(url).await.unwrap();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut n = 0u64;
    match backend {
        Backend::Sqlite => {
            use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
            use sqlx::{ConnectOptions as _, SqliteConnection};
            let options: SqliteConnectOptions = url.parse().unwrap();
            let mut conn: SqliteConnection = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .connect()
                .await
                .unwrap();
            while Instant::now() < deadline {
                let (ticket, events) = world.ticket(n, Utc::now());
                raw_insert!(&mut conn, n, &ticket, &events, "");
                n += 1;
            }
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            while Instant::now() < deadline {
                let (ticket, events) = world.ticket(n, Utc::now());
                raw_insert!(&mut conn, n, &ticket, &events, "::jsonb");
                n += 1;
            }
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let mut backend = None;
    let mut seconds = 3.0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--backend" => {
                backend = match args.next().as_deref() {
                    Some("sqlite") => Some(Backend::Sqlite),
                    Some("postgres") => Some(Backend::Postgres),
                    other => panic!("--backend sqlite|postgres, not {other:?}"),
                }
            }
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds N")
            }
            other => {
                panic!("unknown argument {other:?} (use --backend sqlite|postgres [--seconds N])")
            }
        }
    }
    let backend = backend.expect("--backend sqlite|postgres");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let world = Arc::new(World {
            policy: Policy::builtin(),
            calendar: Calendar::official(),
            actor: Actor::new("bench"),
        });
        let cluster = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let bindir = find_pg_bindir().expect("PostgreSQL is not installed");
                Some(PgCluster::start(&bindir, ClusterOptions { durable: true }).unwrap())
            }
        };
        let mut databases = Databases {
            backend,
            dir: TempDir::new("doorstep-bench").unwrap(),
            cluster,
            next: 0,
        };
        let name = match backend {
            Backend::Sqlite => "SQLite (WAL, synchronous=FULL)",
            Backend::Postgres => "PostgreSQL (fsync on, synchronous_commit=on)",
        };
        let url = databases.fresh().await;
        let raw = raw_rate(&world, backend, &url, seconds).await;
        println!("| backend | writers | tickets/s through the store | raw one-per-commit tickets/s | store / raw |");
        println!("|---|---|---|---|---|");
        for writers in [1, 16, 64] {
            let url = databases.fresh().await;
            let rate = store_rate(&world, &url, writers, seconds).await;
            println!(
                "| {name} | {writers} | {rate:.0} | {raw:.0} | {:.2} |",
                rate / raw
            );
        }
        if let Some(cluster) = &databases.cluster {
            cluster.stop();
        }
    });
}
