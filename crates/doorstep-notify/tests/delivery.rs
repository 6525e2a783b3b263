#![allow(unreachable_pub)]
//! The notifier under a manual clock, with a webhook receiver on loopback, on both backends:
//! breaches and escalations delivered signed, retries with the same id and body, event order per
//! ticket, giving up after a day and trying again on the operator's word, two notifiers on one
//! database delivering each notification once.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use common::{CALLER_NAME, CALLER_PHONE, World, YARD, at};
use doorstep_domain::Clock as _;
use doorstep_engine::Engine;
use doorstep_notify::{Notifier, NotifierConfig, Rules, render};
use doorstep_store::testing::TestDatabase;
use doorstep_store::{DeliveryQuery, DeliveryStatus};

const SECRET: &str = "test-secret-0123456789";
const WAIT: StdDuration = StdDuration::from_secs(30);

fn rules(url: &str, events: &str) -> Rules {
    let text = format!(
        "[[notify.webhook]]\nname = \"street-ops\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n\
         events = {events}\n"
    );
    let table: toml::Table = toml::from_str(&text).unwrap();
    Rules::parse(table.get("notify"), &|_| None).unwrap()
}

fn config(owner: &str) -> NotifierConfig {
    NotifierConfig {
        owner: owner.into(),
        ..NotifierConfig::default()
    }
}

/// The world of these tests: webhook rules for these event kinds, to the world's receiver.
async fn world(db: TestDatabase, events: &str) -> World {
    World::new(db, |url| rules(url, events)).await
}

doorstep_store::both_backends!(
    breaches_and_escalations_are_delivered_signed_in_event_order,
    a_failed_attempt_is_retried_with_the_same_id_and_body_and_holds_back_the_next,
    a_delivery_failing_for_a_day_is_set_aside_and_retried_on_request,
    two_notifiers_on_one_database_deliver_each_notification_once,
    events_outside_the_rules_are_not_delivered,
);

async fn breaches_and_escalations_are_delivered_signed_in_event_order(db: TestDatabase) {
    let w = world(db, r#"["BREACHED", "ESCALATED"]"#).await;
    let id = w.file("SD-1").await;
    // Past the 24 h resolve deadline (and the 2 h sign-for): red cards and a climb.
    w.advance_to(at("2026-03-03T10:10:00+08:00")).await;
    let expected = w.events(&id, &["BREACHED", "ESCALATED"]).await;
    assert!(
        expected.iter().any(|(_, k)| k == "ESCALATED")
            && expected.iter().any(|(_, k)| k == "BREACHED"),
        "{expected:?}"
    );
    // One round per delivery at most: each waits for the one before it of the same ticket.
    for _ in 0..expected.len() {
        w.notify().await;
    }
    let got = w.receiver.wait_for(expected.len(), WAIT).await;
    assert_eq!(got.len(), expected.len());
    for (r, (seq, kind)) in got.iter().zip(&expected) {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hooks/doorstep");
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.delivery, format!("{seq}-street-ops"));
        let body = r.json();
        assert_eq!(body["delivery"], r.delivery.as_str());
        assert_eq!(body["webhook"], "street-ops");
        assert_eq!(body["event"]["seq"], *seq);
        assert_eq!(body["event"]["kind"], kind.as_str());
        assert_eq!(body["event"]["ticket_id"], id.as_str());
        assert_eq!(body["event"]["actor"], "sla-scheduler");
        assert!(body["event"]["at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(body["ticket"]["id"], id.as_str());
        assert_eq!(body["ticket"]["external_ref"], "SD-1");
        assert_eq!(body["ticket"]["node"], YARD);
        assert!(body["ticket"]["level"].is_string());
        assert!(body["ticket"]["deadlines"].is_object());
        if kind == "ESCALATED" {
            assert_eq!(body["event"]["from"], "ROUTINE");
            assert_eq!(body["event"]["to"], "DIFFICULT");
        } else {
            assert!(body["event"]["due_at"].is_string());
        }
        // Signed: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">.
        let t: i64 = r
            .signature
            .strip_prefix("t=")
            .and_then(|s| s.split(',').next())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            r.signature,
            render::signature(SECRET.as_bytes(), t, &r.body)
        );
        // The caller's name, phone and address are nowhere in it.
        let text = r.text();
        for private in [CALLER_NAME, CALLER_PHONE, "解放桥小区12号楼", "楼道灯不亮"] {
            assert!(!text.contains(private), "{private} in {text}");
        }
    }
    let listed =
        w.db.store
            .list_deliveries(&DeliveryQuery::default())
            .await
            .unwrap();
    assert_eq!(listed.len(), expected.len());
    assert!(
        listed
            .iter()
            .all(|d| d.status == DeliveryStatus::Done && d.attempts == 1)
    );
    // Nothing more to send.
    w.clock.advance(Duration::hours(1));
    assert_eq!(w.notify().await, 0);
    assert_eq!(w.receiver.received().len(), expected.len());
}

async fn a_failed_attempt_is_retried_with_the_same_id_and_body_and_holds_back_the_next(
    db: TestDatabase,
) {
    let w = world(db, r#"["BREACHED", "ESCALATED"]"#).await;
    let id = w.file("SD-2").await;
    w.advance_to(at("2026-03-03T10:10:00+08:00")).await;
    let expected = w.events(&id, &["BREACHED", "ESCALATED"]).await;
    w.receiver.answer_next(1, 500);

    w.notify().await;
    let got = w.receiver.received();
    assert_eq!(
        got.len(),
        1,
        "the later deliveries of the ticket wait for the first"
    );
    assert_eq!(got[0].answered, 500);
    assert_eq!(got[0].delivery, format!("{}-street-ops", expected[0].0));
    // Not due again at once.
    assert_eq!(w.notify().await, 0);
    // The first retry comes within 5 seconds.
    w.clock.advance(Duration::seconds(5));
    let mut rounds = 0;
    while w.receiver.received().len() < expected.len() + 1 {
        w.notify().await;
        rounds += 1;
        assert!(rounds <= expected.len() + 1, "{:?}", w.receiver.received());
    }
    let got = w.receiver.received();
    assert_eq!(got[1].delivery, got[0].delivery, "the same delivery id");
    assert_eq!(got[1].body, got[0].body, "a byte-identical body");
    assert_eq!(got[1].answered, 200);
    let ids: Vec<String> = got[1..].iter().map(|r| r.delivery.clone()).collect();
    let want: Vec<String> = expected
        .iter()
        .map(|(seq, _)| format!("{seq}-street-ops"))
        .collect();
    assert_eq!(ids, want, "in event order");
    // Nothing more after the 2xx, however long we wait.
    w.clock.advance(Duration::hours(2));
    assert_eq!(w.notify().await, 0);
    assert_eq!(w.receiver.received().len(), expected.len() + 1);
    let first =
        w.db.store
            .list_deliveries(&DeliveryQuery::default())
            .await
            .unwrap()
            .into_iter()
            .find(|d| d.id == got[0].delivery)
            .unwrap();
    assert_eq!(first.status, DeliveryStatus::Done);
    assert_eq!(first.attempts, 2);
}

async fn a_delivery_failing_for_a_day_is_set_aside_and_retried_on_request(db: TestDatabase) {
    let w = world(db, r#"["ESCALATED"]"#).await;
    w.file("SD-3").await;
    w.advance_to(at("2026-03-03T10:10:00+08:00")).await;
    w.receiver.answer_next(1000, 503);
    let mut tries = 0;
    let mut delays = Vec::new();
    loop {
        w.notify().await;
        let counts = w.db.store.delivery_counts().await.unwrap();
        if counts.failed == 1 {
            break;
        }
        let d = &w
            .db
            .store
            .list_deliveries(&DeliveryQuery::default())
            .await
            .unwrap()[0];
        delays.push((d.next_at - w.clock.now()).num_seconds());
        w.clock.set(d.next_at);
        tries += 1;
        assert!(tries < 200, "never set aside");
    }
    // Exponential, with jitter, never more than 10 minutes apart.
    assert!(delays[0] <= 5, "{delays:?}");
    assert!(delays.iter().all(|d| *d <= 600), "{delays:?}");
    assert!(
        delays.windows(2).take(6).all(|w| w[1] >= w[0]),
        "{delays:?}"
    );
    let failed =
        w.db.store
            .list_deliveries(&DeliveryQuery {
                failed_only: true,
                ..DeliveryQuery::default()
            })
            .await
            .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].last_error.as_deref(), Some("HTTP 503"));
    assert!(failed[0].done_at.unwrap() - failed[0].created_at >= Duration::hours(24));
    let sent = w.receiver.received().len();
    w.clock.advance(Duration::hours(1));
    assert_eq!(w.notify().await, 0, "set aside: not tried again by itself");

    // The operator's retry: due at once, with a fresh day.
    let now = w.clock.now();
    let again =
        w.db.store
            .retry_delivery(&failed[0].id, now, now + Duration::hours(24))
            .await
            .unwrap();
    assert_eq!(again.status, DeliveryStatus::Pending);
    w.receiver.clear_answers();
    w.notify().await;
    let got = w.receiver.received();
    assert_eq!(got.len(), sent + 1);
    assert_eq!(got.last().unwrap().delivery, failed[0].id);
    assert_eq!(got.last().unwrap().answered, 200);
    let counts = w.db.store.delivery_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed), (0, 0));
    assert!(
        w.db.store
            .retry_delivery(&failed[0].id, now, now)
            .await
            .is_err(),
        "a delivered one is not retried"
    );
}

async fn two_notifiers_on_one_database_deliver_each_notification_once(db: TestDatabase) {
    let w = world(db, r#"["WARNING", "BREACHED", "ESCALATED"]"#).await;
    for i in 0..20 {
        w.file(&format!("SD-{i}")).await;
    }
    w.advance_to(at("2026-03-03T10:10:00+08:00")).await;
    let other_engine = Arc::new(
        Engine::open(w.db.connect_again().await, w.clock.clone())
            .await
            .unwrap(),
    );
    let other_store = w.db.connect_again().await;
    let other = Notifier::new(
        other_engine,
        Arc::clone(&other_store),
        rules(&w.receiver.url, r#"["WARNING", "BREACHED", "ESCALATED"]"#),
        config("other-notifier"),
    )
    .unwrap();
    let expected = {
        let mut n = 0;
        let mut q = doorstep_store::TicketQuery {
            limit: 100,
            ..Default::default()
        };
        q.limit = 100;
        let page = w.db.store.list_tickets(&q).await.unwrap();
        for t in page.tickets {
            n += w
                .events(&t.id, &["WARNING", "BREACHED", "ESCALATED"])
                .await
                .len();
        }
        n
    };
    let round = |n: Notifier| async move {
        while n.record().await.unwrap() > 0 {}
        let claimed = n.deliver().await.unwrap();
        n.idle().await;
        claimed
    };
    for _ in 0..20 {
        let (a, b) = tokio::join!(round(w.notifier.clone()), round(other.clone()));
        if a + b == 0 && w.receiver.received().len() >= expected {
            break;
        }
    }
    let got = w.receiver.received();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for r in &got {
        *by_id.entry(r.delivery.clone()).or_default() += 1;
    }
    assert_eq!(by_id.len(), expected, "every notification delivered");
    assert!(
        by_id.values().all(|n| *n == 1),
        "each exactly once: {by_id:?}"
    );
    let _ = other_store.close().await;
}

async fn events_outside_the_rules_are_not_delivered(db: TestDatabase) {
    let w = world(db, r#"["REVIEW_MISSED"]"#).await;
    w.file("SD-9").await;
    w.advance_to(at("2026-03-03T10:10:00+08:00")).await;
    assert_eq!(w.notify().await, 0);
    assert!(w.receiver.received().is_empty());
    let counts = w.db.store.delivery_counts().await.unwrap();
    assert_eq!(counts.events_behind, 0, "the cursor moved past them");
}
