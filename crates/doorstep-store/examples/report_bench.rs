//! How long the SLA report of a district month takes over a year of tickets (1,000,000 by default),
//! beside a naive baseline in the same run: counting the month's tickets by scanning the `tickets`
//! table, which is what a report without its own rows would start from.
//!
//! ```text
//! cargo run --release -p doorstep-store --features testing --example report_bench -- --backend sqlite
//! cargo run --release -p doorstep-store --features testing --example report_bench -- --backend postgres [--tickets N]
//! ```
//!
//! Loading a million tickets through the engine would take most of an hour, so the rows are bulk
//! inserted with one `INSERT … SELECT` per table over a generated series: for each ticket its
//! projection row (a stub JSON: the report never reads it) and the reporting rows the engine's commits
//! write for the life it is given (created and dispatched at once; signed for, on time for 90%;
//! resolved after 1–73 hours for 95%, on time when within the routine 24 hours or at a higher level;
//! 3% merged; the last ten days' tickets partly still open and overdue after 24 hours; an ESCALATED
//! mark for each late routine ticket; an answered callback for 80% of resolutions). No events are
//! loaded: the report reads none.
//!
//! The district: 5 street offices × 4 communities × 5 compounds; 8 categories; 70/20/8/2% of tickets
//! at ROUTINE/DIFFICULT/HARD/MAJOR_RISK; the year ends 2026-11-29 and the month is November 2026
//! (Asia/Shanghai). Each query runs 5 times; the median is printed.

use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use doorstep_store::testing::{ClusterOptions, PgCluster, TempDir, find_pg_bindir};
use doorstep_store::{ConnectOptions, ReportGroup, ReportQuery, connect, migrate};
use sqlx::{AssertSqlSafe, Connection as _, Executor as _};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

fn local(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(y, m, d, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

/// The INSERT … SELECT statements that load `n` tickets, for one backend.
fn load_sql(backend: Backend, n: i64) -> Vec<String> {
    let end = local(2026, 11, 29).timestamp_millis();
    let year = 365 * 86_400_000_i64;
    let start = end - year;
    let step = year / n;
    let series = match backend {
        Backend::Sqlite => format!(
            "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {n} - 1)"
        ),
        Backend::Postgres => format!("WITH s(i) AS (SELECT generate_series(0, {n} - 1)::bigint)"),
    };
    let json = match backend {
        Backend::Sqlite => "'{}'",
        Backend::Postgres => "CAST('{}' AS JSONB)",
    };
    // One row per ticket with everything derived from i: place, level, category, life.
    let t = format!(
        "{series}, h AS (SELECT i, (i * 2654435761) % 1000 AS h1, (i * 40503) % 997 AS h2, \
           (i * 7919) % 100 AS h3, (i * 104729) % 100 AS h4, (i * 31) % 100 AS h5, \
           {start} + i * {step} + ((i * 40503) % 997) * 1000 AS created, \
           3600000 + (i * 15485863) % 259200000 AS dur FROM s), \
         t AS (SELECT i, created, dur, h4, h5, \
           'lx/s' || (h1 % 5) || '/c' || ((h1 / 5) % 4) || '/y' || ((h1 / 20) % 5) AS node, \
           '|lx|lx/s' || (h1 % 5) || '|lx/s' || (h1 % 5) || '/c' || ((h1 / 5) % 4) || '|lx/s' \
             || (h1 % 5) || '/c' || ((h1 / 5) % 4) || '/y' || ((h1 / 20) % 5) || '|' AS node_path, \
           CASE WHEN h3 < 70 THEN 'ROUTINE' WHEN h3 < 90 THEN 'DIFFICULT' WHEN h3 < 98 THEN 'HARD' \
             ELSE 'MAJOR_RISK' END AS level, \
           'cat' || (h2 % 8) AS category, \
           CASE WHEN h4 < 3 THEN 'MERGED' WHEN created > {end} - 864000000 AND h4 < 30 \
             THEN 'IN_PROGRESS' ELSE 'RESOLVED' END AS status FROM h)"
    );
    let on_time = "(dur < 86400000 OR level <> 'ROUTINE')";
    vec![
        format!(
            "{t} INSERT INTO tickets (id, reg, source, external_ref, node, node_path, level, status, \
               resolve_due_at, created_at, updated_at, version, policy_version, ticket) \
             SELECT 't' || i, i * 4 + 1, 'HOTLINE_12345', 'SD' || i, node, node_path, level, status, \
               CASE WHEN status = 'IN_PROGRESS' THEN created + 86400000 END, created, created, 3, 1, \
               {json} FROM t"
        ),
        format!(
            "{t} INSERT INTO report_facts (ticket_id, node_path, level, category, created_at, \
               first_dispatch_at, ack_on_time, ack_pending_due, first_resolved_at, resolved_on_time, \
               resolve_ms, resolve_breached, merged_at, due_now, open_since) \
             SELECT 't' || i, node_path, level, category, created, created, \
               CASE WHEN h4 % 10 <> 0 THEN 1 ELSE 0 END, NULL, \
               CASE WHEN status = 'RESOLVED' THEN created + dur END, \
               CASE WHEN status = 'RESOLVED' AND {on_time} THEN 1 ELSE 0 END, \
               CASE WHEN status = 'RESOLVED' THEN dur END, \
               CASE WHEN status = 'RESOLVED' AND NOT {on_time} THEN 1 ELSE 0 END, \
               CASE WHEN status = 'MERGED' THEN created + 7200000 END, \
               CASE WHEN status = 'IN_PROGRESS' THEN created + 86400000 END, \
               CASE WHEN status = 'IN_PROGRESS' THEN created + 86400000 END FROM t"
        ),
        format!(
            "{t} INSERT INTO report_marks (seq, ticket_id, node_path, level, category, kind, at, \
               satisfied, solved) \
             SELECT i * 4 + 2, 't' || i, node_path, level, category, 1, created + 86400000, 0, 0 \
             FROM t WHERE status = 'RESOLVED' AND NOT {on_time}"
        ),
        format!(
            "{t} INSERT INTO report_marks (seq, ticket_id, node_path, level, category, kind, at, \
               satisfied, solved) \
             SELECT i * 4 + 3, 't' || i, node_path, level, category, 2, created + dur + 86400000, \
               CASE WHEN h5 % 20 <> 0 THEN 1 ELSE 0 END, CASE WHEN h5 % 10 <> 0 THEN 1 ELSE 0 END \
             FROM t WHERE status = 'RESOLVED' AND h5 < 80"
        ),
        format!(
            "{t} INSERT INTO report_overdue (ticket_id, since, ends, node_path, level, category) \
             SELECT 't' || i, created + 86400000, NULL, node_path, level, category \
             FROM t WHERE status = 'IN_PROGRESS'"
        ),
        "UPDATE report_state SET backfilled = 1".to_owned(),
        "ANALYZE".to_owned(),
    ]
}

async fn execute(backend: Backend, url: &str, sql: &str) {
    let sql = AssertSqlSafe(sql.to_owned());
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            conn.execute(sql).await.unwrap();
            let _ = conn.close().await;
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            conn.execute(sql).await.unwrap();
            let _ = conn.close().await;
        }
    }
}

async fn scalar(backend: Backend, url: &str, sql: &str) -> i64 {
    let sql = AssertSqlSafe(sql.to_owned());
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut conn).await.unwrap();
            n
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut conn).await.unwrap();
            n
        }
    }
}

/// The median of 5 timed runs, after one warm-up run.
async fn median<F, Fut>(mut run: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    run().await;
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        run().await;
        times.push(t.elapsed());
    }
    times.sort();
    times[2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let mut backend = None;
    let mut tickets: i64 = 1_000_000;
    let mut keep: Option<String> = None;
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
            "--keep" => keep = args.next(),
            "--tickets" => {
                tickets = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--tickets N")
            }
            other => {
                panic!(
                    "unknown argument {other:?} (use --backend sqlite|postgres [--tickets N] [--keep SQLITE_FILE])"
                )
            }
        }
    }
    let backend = backend.expect("--backend sqlite|postgres");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = TempDir::new("doorstep-report-bench").unwrap();
        let cluster;
        let url = match backend {
            Backend::Sqlite => match &keep {
                // For a look with the sqlite3 shell afterwards.
                Some(path) => format!("sqlite://{path}"),
                None => format!("sqlite://{}", dir.path().join("report.db").display()),
            },
            Backend::Postgres => {
                let bindir = find_pg_bindir().expect("PostgreSQL is not installed");
                cluster = PgCluster::start(&bindir, ClusterOptions { durable: true }).unwrap();
                cluster.create_database("report").await.unwrap()
            }
        };
        migrate(&url).await.unwrap();
        let load = Instant::now();
        for sql in load_sql(backend, tickets) {
            execute(backend, &url, &sql).await;
        }
        let loaded = load.elapsed();
        let store = connect(&url, &ConnectOptions::default()).await.unwrap();
        let facts = scalar(backend, &url, "SELECT COUNT(*) FROM report_facts").await;
        let marks = scalar(backend, &url, "SELECT COUNT(*) FROM report_marks").await;
        println!(
            "{backend:?}: loaded {facts} tickets ({marks} marks) in {:.1} s",
            loaded.as_secs_f64()
        );

        let (from, to) = (local(2026, 11, 1), local(2026, 12, 1));
        let query = |group| ReportQuery {
            subtree: "|lx|".into(),
            group,
            from,
            to,
            overdue_at: local(2026, 11, 29),
            year_before_from: local(2025, 11, 1),
            year_before_to: local(2025, 12, 1),
        };
        let whole = store.report_counts(&query(ReportGroup::Whole)).await.unwrap();
        println!("district November: {:?}", whole[0]);
        let by_child = store
            .report_counts(&query(ReportGroup::ChildNode))
            .await
            .unwrap();
        assert_eq!(by_child.len(), 5);
        assert_eq!(
            by_child.iter().map(|r| r.received).sum::<i64>(),
            whole[0].received
        );
        let baseline_sql = format!(
            "SELECT COUNT(*) FROM tickets WHERE node_path >= '|lx|' AND node_path < '|lx}}' \
             AND created_at >= {} AND created_at < {}",
            from.timestamp_millis(),
            to.timestamp_millis()
        );
        assert_eq!(scalar(backend, &url, &baseline_sql).await, whole[0].received);

        let report_whole = median(|| async {
            store.report_counts(&query(ReportGroup::Whole)).await.unwrap();
        })
        .await;
        let report_child = median(|| async {
            store
                .report_counts(&query(ReportGroup::ChildNode))
                .await
                .unwrap();
        })
        .await;
        let street = |group| ReportQuery {
            subtree: "|lx|lx/s2|".into(),
            ..query(group)
        };
        let report_street = median(|| async {
            store.report_counts(&street(ReportGroup::Level)).await.unwrap();
        })
        .await;
        let baseline = median(|| async {
            scalar(backend, &url, &baseline_sql).await;
        })
        .await;
        println!("| backend | tickets | district month | district month by child node | street office month by level | baseline: COUNT(*) over tickets | month / baseline |");
        println!("|---|---|---|---|---|---|---|");
        println!(
            "| {backend:?} | {facts} | {} ms | {} ms | {} ms | {} ms | {:.2} |",
            ms(report_whole),
            ms(report_child),
            ms(report_street),
            ms(baseline),
            report_whole.as_secs_f64() / baseline.as_secs_f64()
        );
    });
}
