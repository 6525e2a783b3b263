//! Tickets: created, read back and historied; a registration retried is the same ticket; a commit
//! decided on a stale version conflicts and writes nothing.

use doorstep_domain::{Channel, Command, Level, Ticket, TicketId};
use doorstep_store::testing::TestDb;
use doorstep_store::{Commit, Created, NewTicket, StoreError};

use crate::world::{
    World, Y1, Y2, Y3, assert_increasing, dispatch, file, hours, run, t0, unit, urge,
};

doorstep_store::both_backends!(
    tickets_are_created_read_and_historied,
    intake_is_idempotent_under_concurrent_duplicates,
    a_stale_version_conflicts_and_writes_nothing,
    concurrent_commits_each_get_their_own_result,
    a_burst_of_intake_answers_each_request_as_if_alone,
);

async fn tickets_are_created_read_and_historied(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    assert_eq!(store.last_seq().await.unwrap(), 0);
    assert_eq!(
        store
            .get_ticket(&TicketId::parse("none").unwrap())
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .history(&TicketId::parse("none").unwrap())
            .await
            .unwrap()
            .is_empty()
    );

    let (ticket, mut events) = world.register("t-1", "SD-1", Y1, Level::Routine, t0());
    let (ticket, more) = world.act(&ticket, dispatch("lx/s1/c1/y1/workers"), t0());
    events.extend(more);
    let path = world.path(Y1);
    let Created::New(stored) = store
        .create_ticket(NewTicket {
            ticket: &ticket,
            events: &events,
            node_path: &path,
        })
        .await
        .unwrap()
    else {
        panic!("a new ticket")
    };
    assert_eq!(stored.len(), 2);
    assert_increasing(&stored);
    assert!(stored.iter().all(|s| s.ticket_id == ticket.id));
    assert_eq!(
        stored.iter().map(|s| &s.event).collect::<Vec<_>>(),
        events.iter().collect::<Vec<_>>()
    );

    assert_eq!(
        store.get_ticket(&ticket.id).await.unwrap(),
        Some(ticket.clone())
    );
    assert_eq!(
        store
            .ticket_by_ref(Channel::Hotline12345, "SD-1")
            .await
            .unwrap(),
        Some(ticket.clone())
    );
    assert_eq!(
        store.ticket_by_ref(Channel::Web, "SD-1").await.unwrap(),
        None
    );
    assert_eq!(store.history(&ticket.id).await.unwrap(), stored);
    assert_eq!(store.node_path(&ticket.id).await.unwrap(), Some(path));
    assert_eq!(store.last_seq().await.unwrap(), stored[1].seq);

    let (acknowledged, ack_events) = world.act(
        &ticket,
        Command::Acknowledge {
            unit: unit("lx/s1/c1/y1/workers"),
        },
        t0() + hours(1),
    );
    let committed = store
        .commit(Commit {
            ticket: &acknowledged,
            expected_version: ticket.version,
            events: &ack_events,
        })
        .await
        .unwrap();
    assert_eq!(committed.len(), 1);
    assert!(committed[0].seq > stored[1].seq);
    let history = store.history(&ticket.id).await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[2], committed[0]);
    assert_increasing(&history);

    let other = file(
        &*store,
        &world,
        "t-2",
        Y3,
        Level::Hard,
        None,
        t0() + hours(2),
    )
    .await;
    let other_history = store.history(&other.id).await.unwrap();
    assert!(other_history[0].seq > committed[0].seq);
    assert_eq!(store.history(&ticket.id).await.unwrap(), history);

    // A committed ticket survives closing and reopening the database.
    drop(store);
    let reopened = db.open().await;
    assert_eq!(
        reopened.get_ticket(&ticket.id).await.unwrap(),
        Some(acknowledged)
    );
    assert_eq!(reopened.history(&ticket.id).await.unwrap(), history);
    assert_eq!(reopened.last_seq().await.unwrap(), other_history[0].seq);
}

async fn intake_is_idempotent_under_concurrent_duplicates(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        let world = world.clone();
        tasks.push(tokio::spawn(async move {
            let (ticket, events) =
                world.register(&format!("dup-{i}"), "SAME-REF", Y1, Level::Routine, t0());
            store
                .create_ticket(NewTicket {
                    ticket: &ticket,
                    events: &events,
                    node_path: &world.path(Y1),
                })
                .await
                .unwrap()
        }));
    }
    let mut winners = Vec::new();
    let mut existing = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Created::New(events) => winners.push(events[0].ticket_id.clone()),
            Created::Existing(ticket) => existing.push(*ticket),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one registration wins");
    let winner = &winners[0];
    let stored = store.get_ticket(winner).await.unwrap().unwrap();
    assert_eq!(existing.len(), 15);
    assert!(existing.iter().all(|t| *t == stored));
    assert_eq!(
        store
            .ticket_by_ref(Channel::Hotline12345, "SAME-REF")
            .await
            .unwrap(),
        Some(stored.clone())
    );
    for i in 0..16 {
        let id = TicketId::parse(format!("dup-{i}")).unwrap();
        if &id != winner {
            assert_eq!(store.get_ticket(&id).await.unwrap(), None);
        }
    }
    assert_eq!(
        store.last_seq().await.unwrap(),
        store.history(winner).await.unwrap()[0].seq
    );

    // Later retries too.
    let (again, events) = world.register("dup-late", "SAME-REF", Y1, Level::Routine, t0());
    let created = store
        .create_ticket(NewTicket {
            ticket: &again,
            events: &events,
            node_path: &world.path(Y1),
        })
        .await
        .unwrap();
    assert_eq!(created, Created::Existing(Box::new(stored)));

    // The same id under another reference is not a retry.
    let (clash, events) = world.register(winner.as_str(), "OTHER-REF", Y1, Level::Routine, t0());
    let err = store
        .create_ticket(NewTicket {
            ticket: &clash,
            events: &events,
            node_path: &world.path(Y1),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    assert_eq!(
        store
            .ticket_by_ref(Channel::Hotline12345, "OTHER-REF")
            .await
            .unwrap(),
        None
    );
}

async fn a_stale_version_conflicts_and_writes_nothing(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let ticket = file(
        &*store,
        &world,
        "t-1",
        Y1,
        Level::Routine,
        Some("lx/s1/c1/y1/workers"),
        t0(),
    )
    .await;
    let acknowledged = run(
        &*store,
        &world,
        &ticket,
        Command::Acknowledge {
            unit: unit("lx/s1/c1/y1/workers"),
        },
        t0() + hours(1),
    )
    .await;
    let history = store.history(&ticket.id).await.unwrap();
    let last = store.last_seq().await.unwrap();

    // Decided on the version before the acknowledgement.
    let (stale, events) = world.act(&ticket, urge("faster"), t0() + hours(2));
    let err = store
        .commit(Commit {
            ticket: &stale,
            expected_version: ticket.version,
            events: &events,
        })
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict {
            id,
            expected,
            actual,
        } => {
            assert_eq!(id, ticket.id);
            assert_eq!(expected, ticket.version);
            assert_eq!(actual, acknowledged.version);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.history(&ticket.id).await.unwrap(), history);
    assert_eq!(store.last_seq().await.unwrap(), last);
    assert_eq!(
        store.get_ticket(&ticket.id).await.unwrap(),
        Some(acknowledged.clone())
    );
    let armed = store
        .claim_due_timers(t0() + hours(24 * 30), 100, "check", t0() + hours(24 * 31))
        .await
        .unwrap();
    assert_eq!(
        armed.into_iter().map(|d| d.timer).collect::<Vec<_>>(),
        acknowledged.timers(),
        "the stale commit armed nothing"
    );

    // A ticket that was never registered.
    let (ghost, _) = world.register("ghost", "REF-ghost", Y1, Level::Routine, t0());
    let (ghost_next, events2) = world.act(&ghost, urge("x"), t0());
    let err = store
        .commit(Commit {
            ticket: &ghost_next,
            expected_version: ghost.version,
            events: &events2,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

async fn concurrent_commits_each_get_their_own_result(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let mut tickets = Vec::new();
    for i in 0..8 {
        tickets.push(
            file(
                &*store,
                &world,
                &format!("t-{i}"),
                Y2,
                Level::Routine,
                None,
                t0(),
            )
            .await,
        );
    }
    // Two commits race from the same version of every ticket: one wins, the other conflicts, and
    // neither disturbs the commits of the other tickets.
    let mut tasks = Vec::new();
    for ticket in &tickets {
        for attempt in 0..2 {
            let store = store.clone();
            let world = world.clone();
            let ticket = ticket.clone();
            tasks.push(tokio::spawn(async move {
                let (next, events) = world.act(&ticket, urge(&format!("urge {attempt}")), t0());
                let result = store
                    .commit(Commit {
                        ticket: &next,
                        expected_version: ticket.version,
                        events: &events,
                    })
                    .await;
                (ticket.id.clone(), next, result)
            }));
        }
    }
    let mut won: std::collections::BTreeMap<TicketId, Ticket> = Default::default();
    let mut conflicts = 0;
    for task in tasks {
        let (id, next, result) = task.await.unwrap();
        match result {
            Ok(events) => {
                assert_eq!(events.len(), 1);
                assert!(
                    won.insert(id, next).is_none(),
                    "two commits won the same version"
                );
            }
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(won.len(), 8);
    assert_eq!(conflicts, 8);
    for (id, next) in won {
        assert_eq!(store.get_ticket(&id).await.unwrap(), Some(next));
        assert_eq!(store.history(&id).await.unwrap().len(), 2);
    }
}

/// Many registrations at once (SQLite gathers them into shared statements): each is answered as if it
/// had come alone. New references register, a reference registered before answers with its ticket, a
/// reference repeated within the burst registers once; and in a second burst a request that fails (an
/// id already taken) fails alone while the rest of that burst registers.
async fn a_burst_of_intake_answers_each_request_as_if_alone(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let (before, events) = world.register("pre-0", "PRE", Y1, Level::Routine, t0());
    store
        .create_ticket(NewTicket {
            ticket: &before,
            events: &events,
            node_path: &world.path(Y1),
        })
        .await
        .unwrap();
    let burst = |requests: Vec<(String, String)>| {
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|(id, reference)| {
                let store = store.clone();
                let world = world.clone();
                tokio::spawn(async move {
                    let (ticket, events) =
                        world.register(&id, &reference, Y1, Level::Routine, t0());
                    let created = store
                        .create_ticket(NewTicket {
                            ticket: &ticket,
                            events: &events,
                            node_path: &world.path(Y1),
                        })
                        .await;
                    (reference, ticket, events, created)
                })
            })
            .collect();
        async move {
            let mut answers = Vec::new();
            for task in tasks {
                answers.push(task.await.unwrap());
            }
            answers
        }
    };

    let mut requests: Vec<(String, String)> = (0..40)
        .map(|i| (format!("burst-{i}"), format!("BURST-{i}")))
        .collect();
    requests.extend((0..4).map(|i| (format!("again-{i}"), "PRE".to_owned())));
    requests.extend((0..3).map(|i| (format!("twin-{i}"), "TWIN".to_owned())));
    let mut second: Vec<(String, String)> = (0..8)
        .map(|i| (format!("later-{i}"), format!("LATER-{i}")))
        .collect();
    second.push(("pre-0".to_owned(), "CLASH".to_owned()));

    let mut seqs = Vec::new();
    let mut twins = Vec::new();
    let mut answers = burst(requests).await;
    answers.extend(burst(second).await);
    for (reference, ticket, events, created) in answers {
        match (reference.as_str(), created) {
            ("CLASH", Err(e)) => assert!(matches!(e, StoreError::AlreadyExists(_)), "{e:?}"),
            ("PRE", Ok(created)) => {
                assert_eq!(created, Created::Existing(Box::new(before.clone())))
            }
            ("TWIN", Ok(Created::New(stored))) => twins.push(stored[0].ticket_id.clone()),
            ("TWIN", Ok(Created::Existing(ticket))) => twins.push(ticket.id.clone()),
            (_, Ok(Created::New(stored))) => {
                assert_eq!(
                    stored.iter().map(|s| &s.event).collect::<Vec<_>>(),
                    events.iter().collect::<Vec<_>>()
                );
                assert_eq!(store.history(&ticket.id).await.unwrap(), stored);
                assert_eq!(store.get_ticket(&ticket.id).await.unwrap(), Some(ticket));
                seqs.extend(stored.iter().map(|s| s.seq));
            }
            (_, other) => panic!("{} under {reference}: {other:?}", ticket.id),
        }
    }
    assert_eq!(twins.len(), 3);
    assert!(
        twins.iter().all(|t| *t == twins[0]),
        "one ticket: {twins:?}"
    );
    assert_eq!(
        store
            .ticket_by_ref(Channel::Hotline12345, "CLASH")
            .await
            .unwrap(),
        None,
        "the failed request wrote nothing"
    );
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(
        seqs.len(),
        48,
        "every new ticket's event has a seq of its own"
    );
    let log: Vec<i64> = store
        .events_after(None, 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        log.len(),
        1 + 48 + 1,
        "the CREATED of each ticket registered"
    );
    assert!(log.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(store.last_seq().await.unwrap(), *log.last().unwrap());
}
