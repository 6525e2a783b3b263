//! What an operator puts in: the district, the calendar notices and the policy versions.

use std::collections::BTreeSet;

use chrono::Duration;
use doorstep_domain::calendar::{Calendar, Notice, SpecialDay};
use doorstep_domain::{District, Jurisdiction, Level, Node, Unit};
use doorstep_store::StoreError;
use doorstep_store::testing::TestDb;

use crate::world::{Y1, district, t0};

doorstep_store::both_backends!(
    district_import_is_idempotent,
    calendar_notices_round_trip,
    policies_are_versioned,
    every_configuration_change_moves_the_version,
);

async fn every_configuration_change_moves_the_version(db: TestDb) {
    let store = db.open().await;
    let other = db.open().await;
    assert_eq!(store.config_version().await.unwrap(), 0);
    store.import_district(&district()).await.unwrap();
    assert_eq!(other.config_version().await.unwrap(), 1);
    let official = Calendar::official();
    let notice = official.notices().next().unwrap().clone();
    store
        .put_calendar_notice(&notice, &official.days_of_notice(notice.year))
        .await
        .unwrap();
    assert_eq!(other.config_version().await.unwrap(), 2);
    store.put_policy("", t0()).await.unwrap();
    assert_eq!(other.config_version().await.unwrap(), 3);
    // A refused change moves nothing: its transaction rolled back.
    let claimed = SpecialDay {
        notice: 2099,
        ..official.days_of_notice(notice.year)[0].clone()
    };
    let refused = Notice {
        year: 2099,
        source: "refused".into(),
    };
    assert!(
        store
            .put_calendar_notice(&refused, &[claimed])
            .await
            .is_err()
    );
    assert_eq!(other.config_version().await.unwrap(), 3);
    // Other writes leave it alone.
    store.retiming_done(notice.year).await.unwrap();
    assert_eq!(other.config_version().await.unwrap(), 3);
}

async fn district_import_is_idempotent(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.load_district().await.unwrap(), District::default());
    let district = district();
    let counts = store.import_district(&district).await.unwrap();
    assert_eq!(
        (
            counts.nodes,
            counts.units,
            counts.people,
            counts.catalogue_entries
        ),
        (9, 10, 5, 3)
    );
    assert_eq!(store.load_district().await.unwrap(), district);

    let again = store.import_district(&district).await.unwrap();
    assert_eq!(again, counts);
    assert_eq!(store.load_district().await.unwrap(), district);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM people").await, 5);

    // An edited district: a shorter board, a renamed unit, another default level.
    let mut edited = district.clone();
    let mut nodes: Vec<Node> = edited.jurisdiction.nodes().cloned().collect();
    let units: Vec<Unit> = edited
        .jurisdiction
        .units()
        .cloned()
        .map(|mut u| {
            if u.code.as_str() == "dept/water" {
                u.name = "供水公司".into();
            }
            u
        })
        .collect();
    for n in &mut nodes {
        if n.code.as_str() == Y1 {
            n.board.truncate(1);
        }
    }
    edited.jurisdiction = Jurisdiction::new(nodes, units).unwrap();
    edited.catalogue[0].default_level = Level::Difficult;
    store.import_district(&edited).await.unwrap();
    assert_eq!(store.load_district().await.unwrap(), edited);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM people").await, 3);

    // A second handle on the same database sees it too.
    assert_eq!(db.open().await.load_district().await.unwrap(), edited);
}

async fn calendar_notices_round_trip(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.load_calendar().await.unwrap(), Calendar::default());
    let official = Calendar::official();
    for notice in official.notices() {
        store
            .put_calendar_notice(notice, &official.days_of_notice(notice.year))
            .await
            .unwrap();
    }
    assert_eq!(store.load_calendar().await.unwrap(), official);

    // Replacing a year drops what it declared before.
    let notice_2026 = official.notice(2026).unwrap().clone();
    let mut days = official.days_of_notice(2026);
    let dropped = days.remove(0);
    let revised = Notice {
        source: format!("{} (revised)", notice_2026.source),
        ..notice_2026.clone()
    };
    store.put_calendar_notice(&revised, &days).await.unwrap();
    let mut expected = official.clone();
    expected.put_notice(revised.clone(), days.clone()).unwrap();
    let loaded = store.load_calendar().await.unwrap();
    assert_eq!(loaded, expected);
    assert!(!loaded.days_of_notice(2026).contains(&dropped));

    // A date another notice declares is refused, and nothing of the refused notice is stored.
    let claimed = SpecialDay {
        notice: 2027,
        ..days[0].clone()
    };
    let err = store
        .put_calendar_notice(
            &Notice {
                year: 2027,
                source: "国务院办公厅关于2027年部分节假日安排的通知".into(),
            },
            &[claimed],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    assert_eq!(store.load_calendar().await.unwrap(), expected);
}

async fn policies_are_versioned(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.policy(0).await.unwrap(), None);
    let first = store
        .put_policy("warning_share = 0.75\n", t0())
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(first.created_at, t0());
    let second = store
        .put_policy("warning_share = 0.8\n", t0() + Duration::milliseconds(1500))
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    assert_eq!(store.policy(0).await.unwrap(), Some(second.clone()));
    assert_eq!(store.policy(1).await.unwrap(), Some(first));
    assert_eq!(store.policy(2).await.unwrap(), Some(second));
    assert_eq!(store.policy(3).await.unwrap(), None);

    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put_policy(&format!("# {i}\n"), t0()).await.unwrap() })
        })
        .collect();
    let mut versions = BTreeSet::new();
    for task in tasks {
        versions.insert(task.await.unwrap().version);
    }
    assert_eq!(versions, (3..=10).collect());
    assert_eq!(store.policy(0).await.unwrap().unwrap().version, 10);
}
