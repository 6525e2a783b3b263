//! Watches taking their events from the feed: a handling unit's watch shows only the tickets it
//! handles, judged on the tickets as they are after each event, as a watch reading the store does.

use std::sync::Arc;
use std::time::Duration;

use doorstep_domain::{
    Caller, Category, Channel, Command, Intake, NodeCode, SystemClock, Ticket, UnitCode,
};
use doorstep_engine::access::Role;
use doorstep_engine::engine::Watch;
use doorstep_engine::{Action, Engine, Principal};
use doorstep_store::StoredEvent;
use doorstep_store::testing::TestDb;

const LIXIA: &str = include_str!("../../../deploy/examples/lixia.toml");
const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
const YARD_WORKERS: &str = "lixia/jiefanglu/jiefangqiao/yard-129/workers";

doorstep_store::both_backends!(a_units_live_watch_shows_only_the_tickets_it_handles);

async fn file(engine: &Engine, external_ref: &str) -> Ticket {
    let intake = Intake {
        source: Channel::Hotline12345,
        external_ref: external_ref.into(),
        caller: Caller {
            name: "张女士".into(),
            phone: "13800000000".into(),
            confidential: false,
        },
        category: Category::parse("lighting.stairwell").unwrap(),
        content: "楼道灯不亮".into(),
        address: String::new(),
        node: NodeCode::parse(YARD).unwrap(),
        occurred_at: None,
        attachment_urls: vec![],
    };
    engine
        .create_ticket(&Principal::local(), intake, None)
        .await
        .unwrap()
        .0
}

async fn act(engine: &Engine, ticket: &Ticket, command: Command) -> Ticket {
    engine
        .act(
            &Principal::local(),
            &ticket.id,
            ticket.version,
            Action::Command(command),
        )
        .await
        .unwrap()
}

/// Reads a watch until it has shown an event of `ticket` at `seq` or later.
async fn until(watch: &mut Watch, seen: &mut Vec<StoredEvent>, last: i64) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while seen.last().is_none_or(|e| e.seq < last) {
            seen.extend(watch.next().await.unwrap().iter().map(|e| (**e).clone()));
        }
    })
    .await
    .expect("the watch shows the events");
}

async fn a_units_live_watch_shows_only_the_tickets_it_handles(db: TestDb) {
    let engine = Arc::new(
        Engine::open(db.open().await, Arc::new(SystemClock))
            .await
            .unwrap(),
    );
    engine.import_district(LIXIA).await.unwrap();
    tokio::spawn(engine.feed_reader().expect("the first asks for the reader"));
    assert!(engine.feed_reader().is_none(), "one reader per process");
    let _ = file(&engine, "BEFORE").await;
    let start = engine.last_seq().await.unwrap();
    let yard = NodeCode::parse(YARD).unwrap();
    let unit = Principal {
        name: "yard-129 workers".into(),
        role: Role::Unit,
        scope: Some(yard.clone()),
        scope_path: engine.district().jurisdiction.node_path(&yard),
        unit: Some(UnitCode::parse(YARD_WORKERS).unwrap()),
        token: None,
    };
    let subtree = engine.subtree(&unit, None).unwrap();
    let mut units = engine.watch(unit, subtree, start);
    let mut everything = engine.watch(Principal::local(), None, start);
    // Both go live on the feed before anything is filed.
    assert!(units.next().await.unwrap().is_empty());
    assert!(everything.next().await.unwrap().is_empty());

    let mine = file(&engine, "MINE").await;
    let other = file(&engine, "OTHER").await;
    let other = act(
        &engine,
        &other,
        Command::Escalate {
            reason: "beyond the compound".into(),
            owner_unit: None,
            case_owner: None,
        },
    )
    .await;
    let mine = act(
        &engine,
        &mine,
        Command::Urge {
            reason: "please".into(),
        },
    )
    .await;
    let _ = act(
        &engine,
        &other,
        Command::Urge {
            reason: "please".into(),
        },
    )
    .await;
    let last = engine.last_seq().await.unwrap();

    let mut all = Vec::new();
    until(&mut everything, &mut all, last).await;
    let history = |ticket: &Ticket| {
        all.iter()
            .filter(|e| e.ticket_id == ticket.id)
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    };
    let (mine_seqs, other_seqs) = (history(&mine), history(&other));
    assert_eq!(mine_seqs.len(), 3, "CREATED, DISPATCHED_TO, URGED");
    assert_eq!(
        other_seqs.len(),
        4,
        "CREATED, DISPATCHED_TO, ESCALATED, URGED"
    );
    let escalated = other_seqs[2];

    let mut seen = Vec::new();
    until(&mut units, &mut seen, *mine_seqs.last().unwrap()).await;
    // The other ticket's last event may come after the unit's last; wait for a quiet poll.
    seen.extend(units.next().await.unwrap().iter().map(|e| (**e).clone()));
    let seqs: Vec<i64> = seen.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|p| p[0] < p[1]), "{seqs:?}");
    for seq in &mine_seqs {
        assert!(seqs.contains(seq), "the unit's own ticket: {seqs:?}");
    }
    assert!(
        seqs.iter()
            .all(|s| !other_seqs.contains(s) || *s < escalated),
        "nothing of the escalated ticket from its escalation on: {seqs:?}"
    );
}
