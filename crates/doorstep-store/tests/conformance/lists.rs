//! Lists: the console's ticket list filtered and paged, and the event feed a watch follows; pages
//! stay stable and nothing is missed while writers keep committing.

use std::collections::BTreeSet;

use doorstep_domain::{Change, Channel, ClockKind, Command, Level, Status, Ticket, TicketId};
use doorstep_store::testing::Backend;
use doorstep_store::testing::TestDb;
use doorstep_store::{
    Created, NewTicket, ReportCounts, ReportGroup, ReportQuery, Store, StoreError, StoredEvent,
    TicketQuery,
};

use crate::world::{
    C1, S1, S2, World, Y1, Y2, Y3, assert_increasing, file, hours, ids, run, t0, unit, urge,
};

doorstep_store::both_backends!(
    lists_filter_by_subtree_status_level_unit_and_deadline,
    lists_find_a_work_order_number_by_source,
    pages_stay_stable_while_tickets_arrive,
    events_after_follows_seq_order_and_subtrees,
    events_with_paths_after_carry_each_tickets_node_path,
    a_watcher_never_misses_an_event_under_concurrent_writers,
    red_cards_from_before_the_column_are_backfilled,
);

/// What a console filter means, written out on the tickets themselves.
fn expected(all: &[(Ticket, String)], query: &TicketQuery) -> Vec<String> {
    all.iter()
        .filter(|(t, path)| {
            query
                .subtree
                .as_ref()
                .is_none_or(|root| path.starts_with(root.as_str()))
                && (query.statuses.is_empty() || query.statuses.contains(&t.status))
                && (query.levels.is_empty() || query.levels.contains(&t.level))
                && query.unit.as_ref().is_none_or(|u| {
                    t.lead_unit.as_ref() == Some(u) || t.co_handlers.iter().any(|c| &c.unit == u)
                })
                && query
                    .external_ref
                    .as_ref()
                    .is_none_or(|r| &t.intake.external_ref == r)
                && query.source.is_none_or(|s| t.intake.source == s)
                && query.overdue_at.is_none_or(|now| t.is_overdue(now))
                && (!query.breached_only || t.is_breached())
                && query
                    .due_before
                    .is_none_or(|before| t.resolve_due_at().is_some_and(|due| due < before))
        })
        .map(|(t, _)| t.id.to_string())
        .collect()
}

/// A ticket filed in Y2 two days before t0, signed for, whose resolve deadline passed: breached and
/// escalated to DIFFICULT under the community office (a fresh clock), which signs for it.
async fn breached(s: &dyn Store, w: &World, id: &str) -> Ticket {
    let filed = t0() - hours(48);
    let workers = "lx/s1/c1/y2/workers";
    let t = file(s, w, id, Y2, Level::Routine, Some(workers), filed).await;
    let ack = |to: &str| Command::Acknowledge { unit: unit(to) };
    let t = run(s, w, &t, ack(workers), filed).await;
    let due = t.resolve_due_at().unwrap();
    let fire = Command::FireBreach {
        clock: ClockKind::Resolve,
        unit: None,
        due_at: due,
        owner_unit: Some(unit("lx/s1/c1/office")),
        case_owner: None,
        supervisor: None,
    };
    let t = run(s, w, &t, fire, due).await;
    assert_eq!(t.status, Status::Dispatched);
    run(s, w, &t, ack("lx/s1/c1/office"), due).await
}

fn resolve() -> Command {
    Command::Resolve {
        resolution: "fixed late".into(),
    }
}

async fn lists_filter_by_subtree_status_level_unit_and_deadline(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let s = &*store;
    let w = &*world;
    let mut all = Vec::new();
    // Registered in this order, so listed in this order.
    let a = file(
        s,
        w,
        "a",
        Y1,
        Level::Routine,
        Some("lx/s1/c1/y1/workers"),
        t0(),
    )
    .await;
    all.push((a, world.path(Y1)));
    let b = file(s, w, "b", Y2, Level::Difficult, None, t0()).await;
    all.push((b, world.path(Y2)));
    let c = file(
        s,
        w,
        "c",
        Y3,
        Level::Routine,
        Some("lx/s2/c2/y3/workers"),
        t0(),
    )
    .await;
    let c = run(
        s,
        w,
        &c,
        Command::Acknowledge {
            unit: unit("lx/s2/c2/y3/workers"),
        },
        t0(),
    )
    .await;
    let c = run(
        s,
        w,
        &c,
        Command::Whistle {
            units: vec![unit("dept/greening")],
            reason: "trees".into(),
        },
        t0(),
    )
    .await;
    all.push((c, world.path(Y3)));
    let d = file(s, w, "d", Y1, Level::Hard, Some("dept/water"), t0()).await;
    let d = run(
        s,
        w,
        &d,
        Command::Acknowledge {
            unit: unit("dept/water"),
        },
        t0(),
    )
    .await;
    let d = run(
        s,
        w,
        &d,
        Command::Resolve {
            resolution: "pipe fixed".into(),
        },
        t0(),
    )
    .await;
    all.push((d, world.path(Y1)));
    let e = file(
        s,
        w,
        "e",
        Y3,
        Level::Routine,
        Some("dept/greening"),
        t0() - hours(48),
    )
    .await;
    all.push((e, world.path(Y3)));
    let f = file(s, w, "f", C1, Level::Difficult, None, t0()).await;
    let f = run(
        s,
        w,
        &f,
        Command::Cancel {
            reason: "withdrawn".into(),
        },
        t0(),
    )
    .await;
    all.push((f, world.path(C1)));
    let g = file(
        s,
        w,
        "g",
        "lx/s1/c1/y1/b1",
        Level::MajorRisk,
        Some("lx/office"),
        t0(),
    )
    .await;
    all.push((g, world.path("lx/s1/c1/y1/b1")));
    // Two red cards (超期): one still being worked on at the next level, one since resolved.
    let h = breached(s, w, "h").await;
    assert_eq!(h.level, Level::Difficult);
    all.push((h, world.path(Y2)));
    let i = breached(s, w, "i").await;
    let i = run(s, w, &i, resolve(), t0()).await;
    all.push((i, world.path(Y2)));

    let query = |f: &dyn Fn(&mut TicketQuery)| {
        let mut q = TicketQuery {
            limit: 100,
            ..TicketQuery::default()
        };
        f(&mut q);
        q
    };
    let queries = vec![
        query(&|_| {}),
        query(&|q| q.subtree = Some(world.path(S1))),
        query(&|q| q.subtree = Some(world.path(S2))),
        query(&|q| q.subtree = Some(world.path(C1))),
        query(&|q| q.subtree = Some(world.path(Y1))),
        query(&|q| q.subtree = Some(world.path("lx"))),
        query(&|q| q.statuses = vec![Status::Dispatched]),
        query(&|q| q.statuses = vec![Status::InProgress, Status::Resolved]),
        query(&|q| q.levels = vec![Level::Routine]),
        query(&|q| q.levels = vec![Level::Difficult, Level::Hard, Level::MajorRisk]),
        query(&|q| q.unit = Some(unit("lx/s1/c1/y1/workers"))),
        query(&|q| q.unit = Some(unit("dept/greening"))),
        query(&|q| q.unit = Some(unit("dept/water"))),
        query(&|q| q.overdue_at = Some(t0())),
        query(&|q| q.overdue_at = Some(t0() + hours(30))),
        query(&|q| q.due_before = Some(t0() + hours(12))),
        query(&|q| q.due_before = Some(t0() + hours(24 * 30))),
        query(&|q| {
            q.subtree = Some(world.path(S2));
            q.levels = vec![Level::Routine];
            q.unit = Some(unit("dept/greening"));
        }),
        query(&|q| {
            q.subtree = Some(world.path(S1));
            q.statuses = vec![Status::New, Status::Dispatched, Status::Cancelled];
        }),
        query(&|q| q.external_ref = Some("REF-c".into())),
        query(&|q| {
            q.external_ref = Some("REF-d".into());
            q.source = Some(Channel::Hotline12345);
            q.statuses = vec![Status::Resolved];
        }),
        query(&|q| {
            q.external_ref = Some("REF-d".into());
            q.subtree = Some(world.path(S2));
        }),
        query(&|q| q.source = Some(Channel::Hotline12345)),
        query(&|q| q.source = Some(Channel::Wechat)),
        query(&|q| q.breached_only = true),
        query(&|q| {
            q.breached_only = true;
            q.subtree = Some(world.path(Y2));
            q.overdue_at = Some(t0());
        }),
        query(&|q| {
            q.breached_only = true;
            q.subtree = Some(world.path(S2));
        }),
    ];
    for q in &queries {
        let page = store.list_tickets(q).await.unwrap();
        assert_eq!(ids(&page.tickets), expected(&all, q), "{q:?}");
        assert_eq!(page.next, None);
    }
    // Sanity of the model itself: the filters select something and not everything.
    assert_eq!(expected(&all, &queries[11]), vec!["c", "e"]);
    assert_eq!(expected(&all, &queries[13]), vec!["e"]);
    assert_eq!(expected(&all, &queries[19]), vec!["c"]);
    assert_eq!(expected(&all, &queries[20]), vec!["d"]);
    assert!(expected(&all, &queries[21]).is_empty());
    assert_eq!(expected(&all, &queries[22]).len(), all.len());
    assert_eq!(
        expected(&all, &queries[24]),
        vec!["h"],
        "breached, escalated with a fresh clock, still open"
    );
    assert!(expected(&all, &queries[25]).is_empty(), "not overdue at t0");

    // Pages of 3 over 9 tickets.
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_tickets(&TicketQuery {
                after,
                limit: 3,
                ..TicketQuery::default()
            })
            .await
            .unwrap();
        pages += 1;
        seen.extend(ids(&page.tickets));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected(&all, &queries[0]));
    let err = store
        .list_tickets(&TicketQuery {
            subtree: Some("|lx".into()),
            ..TicketQuery::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
}

/// Tickets of several channels, some sharing the source system's number: a number finds each
/// ticket filed under it, a source narrows it to that channel's, and the other filters still apply.
async fn lists_find_a_work_order_number_by_source(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let s = &*store;
    let filed = [
        ("h7", Channel::Hotline12345, "WO-7", Y1),
        ("w7", Channel::Wechat, "WO-7", Y3),
        ("g7", Channel::GridPatrol, "WO-7", Y2),
        ("h8", Channel::Hotline12345, "WO-8", Y1),
        ("w70", Channel::Wechat, "WO-70", Y1),
    ];
    let mut all = Vec::new();
    for (id, source, external_ref, node) in filed {
        let (mut ticket, mut events) = world.register(id, external_ref, node, Level::Routine, t0());
        // The world files through the hotline; these came in elsewhere.
        ticket.intake.source = source;
        if let Change::Created { intake, .. } = &mut events[0].change {
            intake.source = source;
        }
        let created = s
            .create_ticket(NewTicket {
                ticket: &ticket,
                events: &events,
                node_path: &world.path(node),
            })
            .await
            .unwrap();
        assert!(matches!(created, Created::New(_)), "{created:?}");
        all.push((ticket, world.path(node)));
    }
    let h7 = &all[0].0;
    let h7 = run(s, &world, h7, urge("hurry"), t0()).await;
    all[0].0 = h7;

    let query = |external_ref: &str, source: Option<Channel>| TicketQuery {
        external_ref: Some(external_ref.into()),
        source,
        limit: 100,
        ..TicketQuery::default()
    };
    let cases = [
        (query("WO-7", None), vec!["h7", "w7", "g7"]),
        (query("WO-7", Some(Channel::Wechat)), vec!["w7"]),
        (query("WO-7", Some(Channel::Hotline12345)), vec!["h7"]),
        (query("WO-7", Some(Channel::Web)), vec![]),
        (query("WO-8", None), vec!["h8"]),
        (query("WO-70", None), vec!["w70"]),
        // Exactly the number: no prefix, no case folding.
        (query("WO", None), vec![]),
        (query("wo-7", None), vec![]),
        (
            TicketQuery {
                subtree: Some(world.path(S1)),
                ..query("WO-7", None)
            },
            vec!["h7", "g7"],
        ),
        (
            TicketQuery {
                source: Some(Channel::Wechat),
                limit: 100,
                ..TicketQuery::default()
            },
            vec!["w7", "w70"],
        ),
    ];
    for (q, want) in &cases {
        let page = store.list_tickets(q).await.unwrap();
        assert_eq!(ids(&page.tickets), *want, "{q:?}");
        assert_eq!(
            ids(&page.tickets),
            expected(&all, q),
            "the model agrees: {q:?}"
        );
        assert_eq!(page.next, None);
    }
    // The list answers the ticket as it is now, not as it was filed.
    let page = store
        .list_tickets(&query("WO-7", Some(Channel::Hotline12345)))
        .await
        .unwrap();
    assert_eq!(page.tickets[0].version, all[0].0.version);

    // A page of one over a shared number.
    let first = store
        .list_tickets(&TicketQuery {
            limit: 1,
            ..query("WO-7", None)
        })
        .await
        .unwrap();
    assert_eq!(ids(&first.tickets), vec!["h7"]);
    let rest = store
        .list_tickets(&TicketQuery {
            after: first.next,
            limit: 10,
            ..query("WO-7", None)
        })
        .await
        .unwrap();
    assert_eq!(ids(&rest.tickets), vec!["w7", "g7"]);
}

async fn pages_stay_stable_while_tickets_arrive(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    for i in 0..10 {
        file(
            &*store,
            &world,
            &format!("old-{i:02}"),
            Y1,
            Level::Routine,
            None,
            t0(),
        )
        .await;
    }
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            let world = world.clone();
            tokio::spawn(async move {
                for i in 0..8 {
                    file(
                        &*store,
                        &world,
                        &format!("new-{w}-{i}"),
                        Y2,
                        Level::Routine,
                        None,
                        t0(),
                    )
                    .await;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut seen: Vec<TicketId> = Vec::new();
    let mut after = None;
    let mut writers_done = false;
    loop {
        let page = store
            .list_tickets(&TicketQuery {
                after,
                limit: 3,
                ..TicketQuery::default()
            })
            .await
            .unwrap();
        seen.extend(page.tickets.iter().map(|t| t.id.clone()));
        if let Some(next) = page.next {
            after = Some(next);
            continue;
        }
        if let Some(last) = page.tickets.last() {
            after = Some(store.history(&last.id).await.unwrap()[0].seq);
        }
        if writers_done {
            break;
        }
        // Every writer finished: one more pass from the cursor picks up the rest.
        writers_done = writers.iter().all(|w| w.is_finished());
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no ticket twice");
    assert_eq!(seen.len(), 10 + 32, "no ticket missed");
    assert!(seen[..10].iter().all(|id| id.as_str().starts_with("old-")));
    let mut regs = Vec::new();
    for id in &seen {
        regs.push(store.history(id).await.unwrap()[0].seq);
    }
    assert!(
        regs.windows(2).all(|p| p[0] < p[1]),
        "in registration order"
    );
}

async fn events_after_follows_seq_order_and_subtrees(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let s = &*store;
    let w = &*world;
    let a = file(
        s,
        w,
        "a",
        Y1,
        Level::Routine,
        Some("lx/s1/c1/y1/workers"),
        t0(),
    )
    .await;
    let b = file(
        s,
        w,
        "b",
        Y3,
        Level::Routine,
        Some("lx/s2/c2/y3/workers"),
        t0(),
    )
    .await;
    let c = file(s, w, "c", C1, Level::Difficult, None, t0()).await;
    let _ = run(s, w, &a, urge("one"), t0()).await;
    let _ = run(s, w, &b, urge("two"), t0()).await;
    let _ = run(s, w, &c, urge("three"), t0()).await;

    let mut everything = Vec::new();
    for t in [&a, &b, &c] {
        everything.extend(store.history(&t.id).await.unwrap());
    }
    everything.sort_by_key(|e| e.seq);
    assert_eq!(everything.len(), 8);
    assert_eq!(store.events_after(None, 0, 100).await.unwrap(), everything);
    assert_eq!(
        store.events_after(None, 0, 0).await.unwrap(),
        everything,
        "0 = the default page"
    );
    assert_eq!(
        store.events_after(None, 0, 3).await.unwrap(),
        everything[..3].to_vec()
    );
    let middle = everything[4].seq;
    assert_eq!(
        store.events_after(None, middle, 100).await.unwrap(),
        everything[5..].to_vec()
    );
    let within = |root: &str, after: i64| {
        let root = world.path(root);
        let store = store.clone();
        let everything = everything.clone();
        async move {
            (
                store.events_after(Some(&root), after, 100).await.unwrap(),
                everything,
            )
        }
    };
    let in_ticket = |events: &[StoredEvent], tickets: &[&Ticket]| {
        events
            .iter()
            .filter(|e| tickets.iter().any(|t| t.id == e.ticket_id))
            .cloned()
            .collect::<Vec<_>>()
    };
    let (got, all) = within(S1, 0).await;
    assert_eq!(got, in_ticket(&all, &[&a, &c]));
    let (got, all) = within(C1, 0).await;
    assert_eq!(got, in_ticket(&all, &[&a, &c]));
    let (got, all) = within(Y1, 0).await;
    assert_eq!(got, in_ticket(&all, &[&a]));
    let (got, all) = within(S2, 0).await;
    assert_eq!(got, in_ticket(&all, &[&b]));
    let (got, all) = within(S1, middle).await;
    assert_eq!(
        got,
        in_ticket(&all, &[&a, &c])
            .into_iter()
            .filter(|e| e.seq > middle)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        store
            .events_after(Some(&world.path(Y2)), 0, 100)
            .await
            .unwrap(),
        vec![]
    );
    assert!(store.events_after(Some("|lx|lx/s1"), 0, 100).await.is_err());
}

async fn events_with_paths_after_carry_each_tickets_node_path(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let s = &*store;
    let w = &*world;
    let a = file(s, w, "a", Y1, Level::Routine, None, t0()).await;
    let c = file(s, w, "c", C1, Level::Difficult, None, t0()).await;
    let _ = run(s, w, &a, urge("one"), t0()).await;
    let everything = store.events_after(None, 0, 100).await.unwrap();
    let placed = store.events_with_paths_after(0, 100).await.unwrap();
    assert_eq!(
        placed.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
        everything,
        "the same events, in seq order"
    );
    for (path, event) in &placed {
        let filed = if event.ticket_id == c.id { C1 } else { Y1 };
        assert_eq!(path, &world.path(filed), "{event:?}");
    }
    let middle = everything[1].seq;
    let after: Vec<i64> = store
        .events_with_paths_after(middle, 100)
        .await
        .unwrap()
        .iter()
        .map(|(_, e)| e.seq)
        .collect();
    assert_eq!(
        after,
        everything[2..].iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    assert_eq!(
        store
            .events_with_paths_after(middle, 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn a_watcher_never_misses_an_event_under_concurrent_writers(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            let world = world.clone();
            tokio::spawn(async move {
                let node = if w % 2 == 0 { Y1 } else { Y3 };
                let mut ticket = file(
                    &*store,
                    &world,
                    &format!("w-{w}"),
                    node,
                    Level::Routine,
                    None,
                    t0(),
                )
                .await;
                for i in 0..12 {
                    ticket = run(&*store, &world, &ticket, urge(&format!("{i}")), t0()).await;
                }
            })
        })
        .collect();
    // Like a live watch: resume after the last seq seen, over and over.
    let mut seen: Vec<StoredEvent> = Vec::new();
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        let after = seen.last().map_or(0, |e| e.seq);
        let batch = store.events_after(None, after, 7).await.unwrap();
        let caught_up = batch.is_empty();
        seen.extend(batch);
        if done && caught_up {
            break;
        }
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    let everything = store.events_after(None, 0, 10_000).await.unwrap();
    assert_eq!(everything.len(), 8 * 13);
    assert_increasing(&everything);
    assert_eq!(seen, everything, "the watcher saw every event, in order");
}

/// The red-card figures of Y2 at t0.
async fn red_cards(s: &dyn Store, world: &World) -> (Vec<String>, Vec<ReportCounts>) {
    let listed = s
        .list_tickets(&TicketQuery {
            breached_only: true,
            ..TicketQuery::default()
        })
        .await
        .unwrap();
    let counts = s
        .report_counts(&ReportQuery {
            subtree: world.path(Y2),
            group: ReportGroup::Whole,
            from: t0() - hours(72),
            to: t0() + hours(1),
            overdue_at: t0(),
            year_before_from: t0() - hours(24 * 400),
            year_before_to: t0() - hours(24 * 300),
        })
        .await
        .unwrap();
    (ids(&listed.tickets), counts)
}

async fn red_cards_from_before_the_column_are_backfilled(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    let (s, w) = (&*store, &*world);
    let h = breached(s, w, "h").await;
    let i = breached(s, w, "i").await;
    run(s, w, &i, resolve(), t0() - hours(1)).await;
    file(s, w, "j", Y2, Level::Routine, None, t0()).await;
    let before = red_cards(s, w).await;
    assert_eq!(before.0, ["h"]);
    assert_eq!(before.1[0].breached, 1, "{:?}", before.1);
    assert_eq!(before.1[0].received, 3);
    drop(store);

    // The database as it was before migration 0008: no column, no red-card rows, no fact in the
    // stored tickets.
    let strip = match db.backend {
        Backend::Sqlite => "UPDATE tickets SET ticket = json_remove(ticket, '$.deadline_breached')",
        Backend::Postgres => "UPDATE tickets SET ticket = ticket - 'deadline_breached'",
    };
    for sql in [
        strip,
        "DROP INDEX tickets_breached",
        "ALTER TABLE tickets DROP COLUMN breached",
        "DROP TABLE report_breached",
        "ALTER TABLE report_facts DROP COLUMN breached",
        "ALTER TABLE report_facts DROP COLUMN red_since",
        "DELETE FROM _sqlx_migrations WHERE version = 8",
    ] {
        db.execute(sql).await;
    }

    let store = db.open().await;
    let s = &*store;
    assert_eq!(red_cards(s, w).await, before);
    for id in [&h.id, &i.id] {
        let stored = s.get_ticket(id).await.unwrap().unwrap();
        let history: Vec<_> = s
            .history(id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert!(stored.deadline_breached, "{id}");
        assert_eq!(doorstep_domain::replay(&history).unwrap(), stored);
    }
}
