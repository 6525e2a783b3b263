//! The `doorstep` commands that run the ladder, as real processes of the built binary on a real
//! database (one SQLite file; a database on the throwaway PostgreSQL cluster), each one's effect read
//! back through the API or from the database:
//!
//! - `migrate` applies every migration of the repository once, and then none;
//! - `serve` escalates an overdue ticket by itself: the SLA scheduler runs inside it;
//! - `serve --no-sla` escalates nothing, however overdue a ticket is, until a `doorstep sla` process
//!   starts and escalates it;
//! - `retime` judges an open ticket under a newer policy, moving its running deadline.
//!
//! The policies are in clock seconds and hours (no working days), so every deadline is exact whatever
//! the date. Every wait is bounded.

mod processes;

use std::time::Duration;

use chrono::Utc;
use doorstep_proto::v1 as w;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;
use doorstep_store::testing::{Backend, TempDir, TestDb};
use tonic::transport::Channel;

use processes::{
    Process, first_boot, intake, migrations_in_repository, millis, put_policy, run_cli, tickets,
    timeline, until,
};

doorstep_store::both_backends!(
    serve_escalates_an_overdue_ticket_by_itself,
    migrate_then_serve_without_the_scheduler_then_sla_then_retime,
);

/// ROUTINE breaches three seconds after registration; DIFFICULT, where it climbs, takes an hour.
const SHORT_ROUTINE: &str = r#"# The process tests' ladder.
acknowledge_within = "1h"
[levels.routine]
resolve_within = "3s"
[levels.difficult]
resolve_within = "1h"
"#;
/// The newer policy `retime` applies: DIFFICULT gets five hours.
const LONGER_DIFFICULT: &str = r#"# The process tests' second policy.
acknowledge_within = "1h"
[levels.routine]
resolve_within = "3s"
[levels.difficult]
resolve_within = "5h"
"#;

/// How long a breach may take to be escalated once due (a loaded 2-core machine).
const ESCALATION_WAIT: Duration = Duration::from_secs(60);
/// How long a ticket is watched, once overdue, for an escalation that must not come.
const QUIET_WINDOW: Duration = Duration::from_secs(4);

fn kinds(events: &[w::Event]) -> Vec<w::EventKind> {
    events
        .iter()
        .map(|e| w::EventKind::try_from(e.kind).expect("a known kind"))
        .collect()
}

/// The ticket once it has climbed a rung, and its events. (A process's log is printed when a test
/// panics.)
async fn escalated(client: &TicketServiceClient<Channel>, id: &str) -> (w::Ticket, Vec<w::Event>) {
    until("the escalation", ESCALATION_WAIT, || {
        let mut client = client.clone();
        let id = id.to_owned();
        async move {
            let (t, events) = timeline(&mut client, &id).await;
            (t.escalations > 0).then_some((t, events))
        }
    })
    .await
}

async fn serve_escalates_an_overdue_ticket_by_itself(db: TestDb) {
    let dir = TempDir::new("doorstep-serve-sla").expect("a temporary folder");
    first_boot(&db.url, dir.path(), SHORT_ROUTINE).await;
    let serve = Process::serve("serve", dir.path(), &db.url, &[]).await;
    let mut client = tickets(&serve.addr).await;
    let filed = client
        .create_ticket(intake("SD-SLA-1"))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(filed.level, w::Level::Routine as i32);
    let due = millis(&filed.resolve_due_at);
    assert_eq!(
        due - millis(&filed.created_at),
        3_000,
        "the short ladder is in use"
    );

    let (t, events) = escalated(&client, &filed.id).await;
    assert_eq!(t.level, w::Level::Difficult as i32);
    assert_eq!(t.escalations, 1);
    assert!(t.breached, "a red card");
    let kinds = kinds(&events);
    let breach = kinds
        .iter()
        .position(|k| *k == w::EventKind::Breached)
        .unwrap_or_else(|| panic!("a BREACHED event: {kinds:?}"));
    assert_eq!(kinds[breach + 1], w::EventKind::Escalated, "{kinds:?}");
    for e in &events[breach..=breach + 1] {
        assert_eq!(e.actor, "sla-scheduler");
        assert!(millis(&e.at) >= due, "recorded once due");
    }
    // The new level's clock starts at the breach instant: no time lost to the scheduler's delay.
    assert_eq!(millis(&t.resolve_due_at), due + 3_600_000);
    serve.terminate().await.expect("a clean exit on SIGTERM");
}

async fn migrate_then_serve_without_the_scheduler_then_sla_then_retime(db: TestDb) {
    let dir = TempDir::new("doorstep-no-sla").expect("a temporary folder");
    let backend = match db.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };

    // migrate: every migration of the repository, once.
    let expected = migrations_in_repository(backend);
    let first = run_cli(&["migrate"], &db.url).await;
    assert!(first.contains("applied"), "{first}");
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .await,
        expected as i64,
        "{first}"
    );
    let again = run_cli(&["migrate"], &db.url).await;
    assert!(
        again.contains(&format!(
            "up to date, {expected} migration(s) already applied"
        )),
        "{again}"
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM _sqlx_migrations").await,
        expected as i64
    );

    // serve --no-sla: the ticket goes overdue and stays at its level.
    first_boot(&db.url, dir.path(), SHORT_ROUTINE).await;
    let serve = Process::serve("serve", dir.path(), &db.url, &["--no-sla"]).await;
    let mut client = tickets(&serve.addr).await;
    let filed = client
        .create_ticket(intake("SD-NOSLA-1"))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    let due = millis(&filed.resolve_due_at);
    until("the ticket is overdue", ESCALATION_WAIT, || {
        let mut client = client.clone();
        let id = filed.id.clone();
        async move { timeline(&mut client, &id).await.0.overdue.then_some(()) }
    })
    .await;
    let quiet_until = tokio::time::Instant::now() + QUIET_WINDOW;
    while tokio::time::Instant::now() < quiet_until {
        let (t, events) = timeline(&mut client, &filed.id).await;
        assert_eq!(
            (t.level, t.escalations),
            (w::Level::Routine as i32, 0),
            "serve --no-sla escalated: {:?}\n{}",
            kinds(&events),
            serve.log_tail()
        );
        assert!(!kinds(&events).contains(&w::EventKind::Breached));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        db.scalar("SELECT COUNT(*) FROM timers").await > 0,
        "its timers wait in the database"
    );

    // doorstep sla: the scheduler alone escalates it, with the true due instant.
    let sla_started = Utc::now().timestamp_millis();
    let sla = Process::scheduler("sla", dir.path(), &db.url);
    let (t, events) = escalated(&client, &filed.id).await;
    assert_eq!(t.level, w::Level::Difficult as i32);
    let breach = events
        .iter()
        .find(|e| e.kind == w::EventKind::Breached as i32)
        .expect("a BREACHED event");
    assert!(
        millis(&breach.at) >= sla_started,
        "recorded by the scheduler started at {sla_started}, not before: {breach:?}"
    );
    assert_eq!(breach.actor, "sla-scheduler");
    assert_eq!(
        millis(&t.resolve_due_at),
        due + 3_600_000,
        "DIFFICULT's hour from the breach instant, however late the scheduler came"
    );
    sla.terminate().await.expect("sla exits cleanly on SIGTERM");

    // retime: under a newer policy on purpose, the running DIFFICULT clock gets five hours.
    put_policy(&db.url, dir.path(), "longer.toml", LONGER_DIFFICULT).await;
    // As stored (the running service loads it within its configuration poll; retime reads the
    // database).
    let newest = db.scalar("SELECT MAX(version) FROM policies").await;
    assert!(newest > t.policy_version);
    let said = run_cli(
        &[
            "retime",
            "--policy-version",
            "0",
            "--node",
            "lixia/jiefanglu",
        ],
        &db.url,
    )
    .await;
    assert_eq!(said.trim(), "1 open tickets examined, 1 re-timed");
    let (retimed, events) = timeline(&mut client, &filed.id).await;
    assert_eq!(retimed.policy_version, newest);
    assert_eq!(
        millis(&retimed.resolve_due_at),
        due + 5 * 3_600_000,
        "five hours from the breach instant"
    );
    assert_eq!(
        kinds(&events).last(),
        Some(&w::EventKind::Retimed),
        "{:?}",
        kinds(&events)
    );
    assert_eq!(retimed.version, t.version + 1);
    // Judged under it already: a second run moves nothing.
    let said = run_cli(&["retime", "--policy-version", "0"], &db.url).await;
    assert_eq!(said.trim(), "1 open tickets examined, 0 re-timed");
    serve
        .terminate()
        .await
        .expect("serve exits cleanly on SIGTERM");
}
