//! Notification deliveries: recorded with the cursor in one transaction only while the cursor is
//! where it was read, claimed under leases (first of each rule and ticket only), settled only by
//! their claimant, listed, retried and counted.

use chrono::Duration;
use doorstep_domain::Level;
use doorstep_store::testing::TestDb;
use doorstep_store::{DeliveryQuery, DeliveryStatus, NewDelivery, Settlement};

use crate::world::{World, Y1, file, t0};

doorstep_store::both_backends!(
    deliveries_are_recorded_once_claimed_in_order_and_settled_by_their_claimant
);

fn delivery(seq: i64, rule: &str, ticket: &str) -> NewDelivery {
    NewDelivery {
        id: format!("{seq}-{rule}"),
        rule: rule.into(),
        channel: "webhook".into(),
        ticket_id: ticket.into(),
        seq,
        kind: "BREACHED".into(),
        body: format!("{{\"seq\":{seq}}}"),
        created_at: t0(),
        expires_at: t0() + Duration::hours(24),
    }
}

async fn deliveries_are_recorded_once_claimed_in_order_and_settled_by_their_claimant(db: TestDb) {
    let world = World::new();
    let store = db.open().await;
    // A new database: the cursor at the end of the log.
    let t = file(&*store, &world, "t-1", Y1, Level::Routine, None, t0()).await;
    let id = t.id.as_str();
    let cursor = store.delivery_cursor().await.unwrap();
    assert_eq!(cursor, 0, "migrated before any event");
    let last = store.last_seq().await.unwrap();
    let batch = [
        delivery(1, "a", id),
        delivery(2, "a", id),
        delivery(2, "b", id),
    ];
    assert!(store.record_deliveries(0, last, &batch).await.unwrap());
    // Another recorder that read the same cursor records nothing.
    assert!(!store.record_deliveries(0, last, &batch).await.unwrap());
    assert_eq!(store.delivery_cursor().await.unwrap(), last);
    let counts = store.delivery_counts().await.unwrap();
    assert_eq!(
        (counts.pending, counts.failed, counts.events_behind),
        (3, 0, 0)
    );
    assert_eq!(counts.oldest_pending, Some(t0()));

    // Rule a's second waits for its first; rule b's is independent.
    let lease = t0() + Duration::seconds(20);
    let claimed = store.claim_deliveries(t0(), 10, "p1", lease).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["1-a", "2-b"]);
    assert_eq!(claimed[0].body, "{\"seq\":1}");
    // Leased: nobody else takes them meanwhile.
    assert!(
        store
            .claim_deliveries(t0(), 10, "p2", lease)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_delivery_due().await.unwrap(), Some(lease));
    // Only the claimant settles.
    let done = Settlement::Done { at: t0() };
    assert!(!store.settle_delivery("1-a", "p2", &done).await.unwrap());
    assert!(store.settle_delivery("1-a", "p1", &done).await.unwrap());
    assert!(
        !store.settle_delivery("1-a", "p1", &done).await.unwrap(),
        "once"
    );
    let retry = Settlement::Retry {
        next_at: t0() + Duration::seconds(2),
        error: "HTTP 500".into(),
    };
    assert!(store.settle_delivery("2-b", "p1", &retry).await.unwrap());
    // a's second is free now; b's is due in 2 s.
    let claimed = store.claim_deliveries(t0(), 10, "p2", lease).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["2-a"]);
    let failed = Settlement::Failed {
        at: t0(),
        error: "HTTP 410".into(),
    };
    assert!(store.settle_delivery("2-a", "p2", &failed).await.unwrap());
    let later = t0() + Duration::seconds(3);
    let claimed = store
        .claim_deliveries(later, 10, "p3", later)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].id.as_str(), claimed[0].attempts), ("2-b", 1));
    assert_eq!(claimed[0].last_error.as_deref(), Some("HTTP 500"));

    let failed = store
        .list_deliveries(&DeliveryQuery {
            failed_only: true,
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, "2-a");
    assert_eq!(failed[0].status, DeliveryStatus::Failed);
    let of_b = store
        .list_deliveries(&DeliveryQuery {
            rule: Some("b".into()),
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(of_b.len(), 1);
    let all = store
        .list_deliveries(&DeliveryQuery::default())
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["2-a", "2-b", "1-a"], "newest first");

    let again = store
        .retry_delivery("2-a", later, later + Duration::hours(24))
        .await
        .unwrap();
    assert_eq!(again.status, DeliveryStatus::Pending);
    assert_eq!(again.next_at, later);
    assert!(
        store.retry_delivery("1-a", later, later).await.is_err(),
        "done"
    );
    assert!(store.retry_delivery("nope", later, later).await.is_err());
    let counts = store.delivery_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed), (2, 0));
}
