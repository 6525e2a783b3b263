//! Timers: armed and disarmed by commits, claimed under leases in due order and within the limit,
//! dropped only by their claimant while unchanged, and found by due time for re-timing.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use doorstep_domain::{Command, Level, TicketId};
use doorstep_store::testing::TestDb;

use crate::world::{World, Y1, Y2, Y3, file, hours, run, t0, unit, urge};

doorstep_store::both_backends!(
    timers_follow_commits_and_are_claimed_under_leases,
    a_claimed_timer_is_dropped_only_while_unchanged,
    tickets_with_timers_are_found_by_due_time,
    a_claim_never_exceeds_its_limit_on_an_analyzed_table,
    the_operators_gauges_count_due_timers_open_tickets_and_connections,
);

async fn the_operators_gauges_count_due_timers_open_tickets_and_connections(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    assert_eq!(store.count_due_timers(t0()).await.unwrap(), 0);
    assert!(store.open_tickets_by_level().await.unwrap().is_empty());
    let workers = "lx/s1/c1/y1/workers";
    let routine = file(
        &*store,
        &world,
        "t-1",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    file(&*store, &world, "t-2", Y1, Level::Hard, Some(workers), t0()).await;
    file(&*store, &world, "t-3", Y1, Level::Hard, None, t0()).await;
    let mut open = store.open_tickets_by_level().await.unwrap();
    open.sort();
    assert_eq!(
        open,
        vec![("HARD".to_owned(), 2), ("ROUTINE".to_owned(), 1)]
    );

    let mut due: Vec<DateTime<Utc>> = routine.timers().iter().map(|t| t.due_at).collect();
    due.sort();
    assert_eq!(store.count_due_timers(t0()).await.unwrap(), 0);
    assert!(store.count_due_timers(due[0]).await.unwrap() >= 1);
    let all = store
        .count_due_timers(t0() + hours(24 * 365))
        .await
        .unwrap();
    assert!(
        all >= routine.timers().len() as i64,
        "every armed timer is due a year on: {all}"
    );

    let pool = store.pool_use();
    assert!(pool.size >= 1 && pool.idle <= pool.size, "{pool:?}");
}

async fn timers_follow_commits_and_are_claimed_under_leases(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    assert_eq!(store.next_timer_due().await.unwrap(), None);
    let workers = "lx/s1/c1/y1/workers";
    let ticket = file(
        &*store,
        &world,
        "t-1",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    let armed = ticket.timers();
    assert_eq!(
        armed.len(),
        4,
        "acknowledge and resolve, warning and breach: {armed:?}"
    );
    let mut by_due = armed.clone();
    by_due.sort_by_key(|t| t.due_at);
    let first = by_due[0].clone();
    assert_eq!(store.next_timer_due().await.unwrap(), Some(first.due_at));

    assert!(
        store
            .claim_due_timers(t0(), 10, "a", t0() + hours(1))
            .await
            .unwrap()
            .is_empty()
    );
    let now = first.due_at;
    let lease_end = now + Duration::seconds(60);
    let claimed = store
        .claim_due_timers(now, 10, "a", lease_end)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].ticket_id, ticket.id);
    assert_eq!(claimed[0].timer, first, "the exact timer comes back");

    // Leased: nobody else gets it until the lease ends.
    assert!(
        store
            .claim_due_timers(now, 10, "b", now + hours(1))
            .await
            .unwrap()
            .is_empty()
    );
    let before_end = lease_end - Duration::seconds(1);
    assert!(
        store
            .claim_due_timers(before_end, 10, "b", now + hours(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_timer_due().await.unwrap(), Some(lease_end));

    // A commit that leaves the timer armed as it was keeps the lease.
    let ticket = run(&*store, &world, &ticket, urge("hurry"), now).await;
    assert_eq!(ticket.timers(), armed);
    assert!(
        store
            .claim_due_timers(before_end, 10, "c", now + hours(1))
            .await
            .unwrap()
            .is_empty()
    );

    let reclaimed = store
        .claim_due_timers(lease_end, 10, "b", lease_end + hours(1))
        .await
        .unwrap();
    assert_eq!(
        reclaimed.iter().map(|d| &d.timer).collect::<Vec<_>>(),
        vec![&first]
    );

    // Signing for disarms the acknowledge clock; the resolve clock stays.
    let ticket = run(
        &*store,
        &world,
        &ticket,
        Command::Acknowledge {
            unit: unit(workers),
        },
        now + Duration::seconds(1),
    )
    .await;
    let far = t0() + hours(24 * 30);
    let all = store
        .claim_due_timers(far, 100, "x", far + hours(1))
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|d| d.timer.clone()).collect::<Vec<_>>(),
        ticket.timers()
    );
    assert!(
        all.windows(2)
            .all(|p| p[0].timer.due_at <= p[1].timer.due_at),
        "earliest first"
    );

    // Resolving arms only the callback clock; cancelling disarms everything.
    let ticket = run(
        &*store,
        &world,
        &ticket,
        Command::Resolve {
            resolution: "fixed".into(),
        },
        now + hours(2),
    )
    .await;
    assert_eq!(ticket.timers().len(), 1);
    let due = ticket.timers()[0].due_at;
    assert_eq!(
        store.next_timer_due().await.unwrap(),
        Some(due),
        "re-armed, so no lease"
    );
    let more = store
        .claim_due_timers(far, 100, "x", far + hours(1))
        .await
        .unwrap();
    assert_eq!(
        more.iter().map(|d| d.timer.clone()).collect::<Vec<_>>(),
        ticket.timers()
    );

    // The limit takes the earliest.
    let t2 = file(
        &*store,
        &world,
        "t-2",
        Y2,
        Level::Routine,
        Some("lx/s1/c1/y2/workers"),
        t0() + hours(1),
    )
    .await;
    let t3 = file(
        &*store,
        &world,
        "t-3",
        Y3,
        Level::Routine,
        Some("lx/s2/c2/y3/workers"),
        t0() + hours(2),
    )
    .await;
    let _ = run(
        &*store,
        &world,
        &ticket,
        Command::Close {
            reason: "done".into(),
        },
        now + hours(3),
    )
    .await;
    let two = store
        .claim_due_timers(far, 2, "y", far + hours(1))
        .await
        .unwrap();
    let mut expected: Vec<(DateTime<Utc>, TicketId)> = t2
        .timers()
        .into_iter()
        .map(|t| (t.due_at, t2.id.clone()))
        .chain(t3.timers().into_iter().map(|t| (t.due_at, t3.id.clone())))
        .collect();
    expected.sort();
    assert_eq!(
        two.iter()
            .map(|d| (d.timer.due_at, d.ticket_id.clone()))
            .collect::<Vec<_>>(),
        expected[..2].to_vec()
    );
    for t in [&t2, &t3] {
        let _ = run(
            &*store,
            &world,
            t,
            Command::Cancel {
                reason: "withdrawn".into(),
            },
            now + hours(4),
        )
        .await;
    }
    assert_eq!(store.next_timer_due().await.unwrap(), None);
    assert!(
        store
            .claim_due_timers(far, 100, "z", far + hours(1))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_claimed_timer_is_dropped_only_while_unchanged(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let workers = "lx/s1/c1/y1/workers";
    let ticket = file(
        &*store,
        &world,
        "t-1",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    let mut armed = ticket.timers();
    armed.sort_by_key(|t| t.due_at);
    let now = armed[0].due_at;
    let claimed = store
        .claim_due_timers(now, 10, "a", now + hours(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // Another owner cannot drop it; the owner can, once.
    assert!(!store.drop_claimed_timer(&claimed[0], "b").await.unwrap());
    assert!(store.drop_claimed_timer(&claimed[0], "a").await.unwrap());
    assert!(!store.drop_claimed_timer(&claimed[0], "a").await.unwrap());
    let rest = store
        .claim_due_timers(now + hours(24 * 30), 10, "c", now + hours(24 * 31))
        .await
        .unwrap();
    assert_eq!(rest.len(), armed.len() - 1);
    assert!(rest.iter().all(|d| d.timer != claimed[0].timer));

    // Re-armed at another instant after the claim: left alone.
    let other = file(
        &*store,
        &world,
        "t-2",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    let claimed = store
        .claim_due_timers(now, 10, "a", now + hours(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].ticket_id, other.id);
    let acknowledged = run(
        &*store,
        &world,
        &other,
        Command::Acknowledge {
            unit: unit(workers),
        },
        now,
    )
    .await;
    assert!(!store.drop_claimed_timer(&claimed[0], "a").await.unwrap());
    assert!(!acknowledged.timers().is_empty());
}

async fn tickets_with_timers_are_found_by_due_time(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let workers = "lx/s1/c1/y1/workers";
    let early = file(
        &*store,
        &world,
        "t-early",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    let mut late = Vec::new();
    for i in 0..5 {
        late.push(
            file(
                &*store,
                &world,
                &format!("t-late-{i}"),
                Y1,
                Level::Routine,
                Some(workers),
                t0() + hours(24 * 10),
            )
            .await,
        );
    }
    let latest_of_early = early.timers().iter().map(|t| t.due_at).max().unwrap();
    let from = latest_of_early + Duration::seconds(1);
    let mut found = Vec::new();
    let mut after: Option<TicketId> = None;
    loop {
        let page = store
            .tickets_with_timers_from(from, after.as_ref(), 2)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().cloned();
        found.extend(page);
    }
    let mut expected: Vec<TicketId> = late.iter().map(|t| t.id.clone()).collect();
    expected.sort();
    assert_eq!(
        found, expected,
        "each once, by id, the early ticket left out"
    );
    let all = store
        .tickets_with_timers_from(t0(), None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
}

async fn a_claim_never_exceeds_its_limit_on_an_analyzed_table(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let workers = "lx/s1/c1/y1/workers";
    // Half the timers due within the month, half long after.
    for i in 0..600 {
        let filed = if i % 2 == 0 {
            t0()
        } else {
            t0() + hours(24 * 90)
        };
        file(
            &*store,
            &world,
            &format!("t-{i:04}"),
            Y1,
            Level::Routine,
            Some(workers),
            filed,
        )
        .await;
    }
    // Statistics and repeated execution change plans: PostgreSQL once re-ran the locking subquery per
    // row here (a generic plan on an analyzed table), claiming far past the limit.
    db.execute("ANALYZE").await;
    for _ in 0..8 {
        let none = store
            .claim_due_timers(t0(), 7, "a", t0() + hours(1))
            .await
            .unwrap();
        assert!(none.is_empty());
    }
    let later = t0() + hours(24 * 30);
    let mut seen = BTreeSet::new();
    loop {
        let claimed = store
            .claim_due_timers(later, 7, "a", later + hours(1))
            .await
            .unwrap();
        assert!(claimed.len() <= 7, "claimed {} of 7", claimed.len());
        if claimed.is_empty() {
            break;
        }
        for c in claimed {
            assert!(
                seen.insert((c.ticket_id.clone(), c.timer.clone())),
                "claimed twice"
            );
        }
    }
    assert_eq!(seen.len(), 300 * 4);
}
