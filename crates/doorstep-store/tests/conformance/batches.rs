//! Batches: commits written together stand or fall alone, in order, and write what the same commits
//! written one by one write.

use chrono::{DateTime, Duration, Utc};
use doorstep_domain::{Level, TicketId};
use doorstep_store::testing::TestDb;
use doorstep_store::{Commit, StoreError, StoredEvent, TicketQuery};

use crate::world::{World, Y1, Y2, file, hours, run, script, t0, unit, urge};

doorstep_store::both_backends!(
    batched_commits_stand_or_fall_alone_in_order,
    a_chained_commit_after_a_lost_race_is_not_written,
    a_batch_writes_what_single_commits_write,
);

async fn batched_commits_stand_or_fall_alone_in_order(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let workers = "lx/s1/c1/y1/workers";
    let a = file(
        &*store,
        &world,
        "t-a",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    let b = file(
        &*store,
        &world,
        "t-b",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    let last = store.last_seq().await.unwrap();

    // a: two commits chained in one batch; b: one decided on a version that is no longer current.
    let (a1, a1_events) = world.act(&a, urge("first"), t0() + hours(1));
    let (a2, a2_events) = world.act(&a1, urge("second"), t0() + hours(1));
    let b_now = run(&*store, &world, &b, urge("moved on"), t0() + hours(1)).await;
    let (b_stale, b_events) = world.act(&b, urge("stale"), t0() + hours(1));
    let answers = store
        .commit_all(&[
            Commit {
                ticket: &a1,
                expected_version: a.version,
                events: &a1_events,
            },
            Commit {
                ticket: &b_stale,
                expected_version: b.version,
                events: &b_events,
            },
            Commit {
                ticket: &a2,
                expected_version: a1.version,
                events: &a2_events,
            },
        ])
        .await
        .unwrap();
    assert_eq!(answers.len(), 3);
    let first = answers[0].as_ref().unwrap();
    assert!(
        matches!(answers[1], Err(StoreError::Conflict { .. })),
        "{:?}",
        answers[1]
    );
    let third = answers[2].as_ref().unwrap();
    assert!(first.last().unwrap().seq < third[0].seq, "applied in order");
    assert!(first[0].seq > last + 1, "after b's own commit");
    assert_eq!(store.get_ticket(&a.id).await.unwrap(), Some(a2.clone()));
    assert_eq!(store.get_ticket(&b.id).await.unwrap(), Some(b_now.clone()));
    let kinds: Vec<&str> = store
        .history(&a.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.change.kind())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "URGED").count(), 2);

    // Many at once.
    let mut got = store
        .get_tickets(&[
            a.id.clone(),
            b.id.clone(),
            TicketId::parse("nobody").unwrap(),
        ])
        .await
        .unwrap();
    got.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(got, vec![a2, b_now]);
    assert!(store.get_tickets(&[]).await.unwrap().is_empty());
}

/// A ticket's later commit in a batch was decided on what its earlier one leaves. When the earlier
/// one loses a race, the later one is not written either, even though the race took the ticket to
/// the very version the later one expects: written, it would overwrite the winner's change.
async fn a_chained_commit_after_a_lost_race_is_not_written(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let workers = "lx/s1/c1/y1/workers";
    let a = file(
        &*store,
        &world,
        "t-a",
        Y1,
        Level::Routine,
        Some(workers),
        t0(),
    )
    .await;
    // Two commits of a decided one on the other, as a batch decides them.
    let (a1, a1_events) = world.act(&a, urge("first"), t0() + hours(1));
    let (a2, a2_events) = world.act(&a1, urge("second"), t0() + hours(1));
    // Meanwhile another writer takes a to a1's version number with a change of its own.
    let other = run(&*store, &world, &a, urge("another writer"), t0() + hours(1)).await;
    assert_eq!(other.version, a1.version);
    let answers = store
        .commit_all(&[
            Commit {
                ticket: &a1,
                expected_version: a.version,
                events: &a1_events,
            },
            Commit {
                ticket: &a2,
                expected_version: a1.version,
                events: &a2_events,
            },
        ])
        .await
        .unwrap();
    assert_eq!(answers.len(), 2);
    for answer in &answers {
        assert!(
            matches!(answer, Err(StoreError::Conflict { .. })),
            "{answer:?}"
        );
    }
    assert_eq!(store.get_ticket(&a.id).await.unwrap(), Some(other));
    let urged = store
        .history(&a.id)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event.change.kind() == "URGED")
        .count();
    assert_eq!(urged, 1);
}

async fn a_batch_writes_what_single_commits_write(db: TestDb) {
    const N: usize = 60;
    let world = World::new();
    let store = db.open().await;
    let mut batched = Vec::new();
    let mut single = Vec::new();
    for i in 0..N {
        batched.push(
            file(
                &*store,
                &world,
                &format!("a-{i}"),
                Y1,
                Level::Routine,
                None,
                t0(),
            )
            .await,
        );
        single.push(
            file(
                &*store,
                &world,
                &format!("b-{i}"),
                Y2,
                Level::Routine,
                None,
                t0(),
            )
            .await,
        );
    }

    // Round 0 as one batch; rounds 1 and 2 as one batch, each ticket's two commits side by side.
    for rounds in [&[0][..], &[1, 2]] {
        let mut decided = Vec::new();
        for (i, ticket) in batched.iter().enumerate() {
            let mut before = ticket.clone();
            for &round in rounds {
                let at = t0() + hours(round as i64 + 1);
                let (next, events) = world.act(&before, script(i, round, Y1), at);
                decided.push((before.version, next.clone(), events));
                before = next;
            }
        }
        let commits: Vec<Commit<'_>> = decided
            .iter()
            .map(|(expected_version, ticket, events)| Commit {
                ticket,
                expected_version: *expected_version,
                events,
            })
            .collect();
        let answers = store.commit_all(&commits).await.unwrap();
        let mut last = 0;
        for answer in answers {
            for stored in answer.unwrap() {
                assert!(stored.seq > last, "events in the commits' order");
                last = stored.seq;
            }
        }
        for (ticket, own) in batched.iter_mut().zip(decided.chunks(rounds.len())) {
            *ticket = own.last().map(|(_, t, _)| t.clone()).unwrap();
        }
        for (i, ticket) in single.iter_mut().enumerate() {
            for &round in rounds {
                let at = t0() + hours(round as i64 + 1);
                *ticket = run(&*store, &world, ticket, script(i, round, Y2), at).await;
            }
        }
    }

    for (a, b) in batched.iter().zip(&single) {
        let stored_a = store.get_ticket(&a.id).await.unwrap().unwrap();
        let stored_b = store.get_ticket(&b.id).await.unwrap().unwrap();
        assert_eq!(&stored_a, a);
        assert_eq!(&stored_b, b);
        assert_eq!(
            (a.version, a.status, a.level, a.resolve_due_at()),
            (b.version, b.status, b.level, b.resolve_due_at())
        );
        let kinds = |history: Vec<StoredEvent>| -> Vec<&'static str> {
            history.iter().map(|e| e.event.change.kind()).collect()
        };
        assert_eq!(
            kinds(store.history(&a.id).await.unwrap()),
            kinds(store.history(&b.id).await.unwrap())
        );
    }

    // The unit rows: the same tickets are found by lead unit and by co-handler either way.
    let listed = |subtree: &str, unit_code: &str| {
        let query = TicketQuery {
            subtree: Some(world.path(subtree)),
            unit: Some(unit(unit_code)),
            limit: 1000,
            ..TicketQuery::default()
        };
        let store = &store;
        async move { store.list_tickets(&query).await.unwrap().tickets.len() }
    };
    assert_eq!(listed(Y1, "dept/greening").await, N / 4);
    assert_eq!(listed(Y2, "dept/greening").await, N / 4);
    assert_eq!(
        listed(Y1, "lx/s1/c1/y1/workers").await,
        listed(Y2, "lx/s1/c1/y2/workers").await
    );
    assert_eq!(listed(Y1, "lx/s1/c1/office").await, N / 2);
    assert_eq!(listed(Y2, "lx/s1/c1/office").await, N / 2);

    // The timers: the same number armed at the same instants.
    let far = t0() + Duration::days(400);
    let claimed = store
        .claim_due_timers(far, 10_000, "check", far + hours(1))
        .await
        .unwrap();
    let armed = |prefix: &str| -> Vec<(String, DateTime<Utc>)> {
        let mut armed: Vec<_> = claimed
            .iter()
            .filter(|d| d.ticket_id.as_str().starts_with(prefix))
            .map(|d| (d.timer.clock.to_string(), d.timer.due_at))
            .collect();
        armed.sort();
        armed
    };
    assert!(!armed("a-").is_empty());
    assert_eq!(armed("a-"), armed("b-"));

    // The reporting rows: every count the same for the two yards.
    let counts = |yard: &str| {
        let query = doorstep_store::ReportQuery {
            subtree: world.path(yard),
            group: doorstep_store::ReportGroup::Whole,
            from: t0() - Duration::days(1),
            to: t0() + Duration::days(30),
            overdue_at: t0() + Duration::days(30),
            year_before_from: t0() - Duration::days(366),
            year_before_to: t0() - Duration::days(300),
        };
        let store = &store;
        async move { store.report_counts(&query).await.unwrap() }
    };
    let (in_y1, in_y2) = (counts(Y1).await, counts(Y2).await);
    assert_eq!(in_y1, in_y2);
    assert_eq!(in_y1[0].received, N as i64);
    assert_eq!(in_y1[0].dispatched, N as i64);
    assert_eq!(in_y1[0].escalations, (N / 4) as i64);
    assert!(in_y1[0].overdue > 0, "{in_y1:?}");
}
