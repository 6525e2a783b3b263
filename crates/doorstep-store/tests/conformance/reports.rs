//! Reporting rows: folded from the log behind a durable cursor, each event once.

use chrono::Duration;
use doorstep_domain::Level;
use doorstep_store::testing::TestDb;

use crate::world::{World, Y1, Y2, file, hours, run, script, t0};

doorstep_store::both_backends!(reporting_rows_follow_the_log_behind_a_durable_cursor);

/// The reporting rows of one yard, over the whole script's window.
async fn yard_counts(
    store: &dyn doorstep_store::Store,
    world: &World,
    yard: &str,
) -> Vec<doorstep_store::ReportCounts> {
    let query = doorstep_store::ReportQuery {
        subtree: world.path(yard),
        group: doorstep_store::ReportGroup::Whole,
        from: t0() - Duration::days(1),
        to: t0() + Duration::days(30),
        overdue_at: t0() + Duration::days(30),
        year_before_from: t0() - Duration::days(366),
        year_before_to: t0() - Duration::days(300),
    };
    store.report_counts(&query).await.unwrap()
}

async fn reporting_rows_follow_the_log_behind_a_durable_cursor(db: TestDb) {
    const N: usize = 24;
    let world = World::new();
    let store = db.open().await;
    let start = store.last_seq().await.unwrap();
    // Whatever the store appended before (nothing, on a new database) is folded first.
    while store.project_reports(1000).await.unwrap() > 0 {}

    // Yard 1: folded a step of 1 event after every command, so that steps cut through commits (an
    // escalation appends several events) and through tickets' histories.
    let mut folded = 0;
    let mut tickets = Vec::new();
    for i in 0..N {
        let name = format!("a-{i}");
        tickets.push(file(&*store, &world, &name, Y1, Level::Routine, None, t0()).await);
        folded += store.project_reports(1).await.unwrap();
    }
    for round in 0..3 {
        for (i, ticket) in tickets.iter_mut().enumerate() {
            let at = t0() + hours(round as i64 + 1);
            *ticket = run(&*store, &world, ticket, script(i, round, Y1), at).await;
            folded += store.project_reports(1).await.unwrap();
        }
    }
    let appended = (store.last_seq().await.unwrap() - start) as u64;
    let mut rest = 0;
    loop {
        let taken = store.project_reports(5).await.unwrap();
        assert!(taken <= 5);
        rest += taken;
        if taken == 0 {
            break;
        }
    }
    assert_eq!(folded + rest, appended, "every event folded exactly once");

    // Yard 2: the same commands, folded only when the report asks.
    let mut tickets = Vec::new();
    for i in 0..N {
        let name = format!("b-{i}");
        tickets.push(file(&*store, &world, &name, Y2, Level::Routine, None, t0()).await);
    }
    for round in 0..3 {
        for (i, ticket) in tickets.iter_mut().enumerate() {
            let at = t0() + hours(round as i64 + 1);
            *ticket = run(&*store, &world, ticket, script(i, round, Y2), at).await;
        }
    }
    let in_y2 = yard_counts(&*store, &world, Y2).await;
    let in_y1 = yard_counts(&*store, &world, Y1).await;
    assert_eq!(in_y1, in_y2);
    assert_eq!(in_y2[0].received, N as i64);
    assert_eq!(in_y2[0].dispatched, N as i64);
    assert_eq!(in_y2[0].escalations, (N / 4) as i64);
    assert!(in_y2[0].overdue > 0, "{in_y2:?}");
    // The report left nothing behind.
    assert_eq!(store.project_reports(1000).await.unwrap(), 0);

    // The cursor is durable: a store opened again folds nothing twice and counts the same.
    drop(store);
    let store = db.open().await;
    assert_eq!(store.project_reports(1000).await.unwrap(), 0);
    assert_eq!(yard_counts(&*store, &world, Y1).await, in_y1);
}
