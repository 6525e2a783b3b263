//! A district moves a community to another street office (ImportDistrict): its tickets, their events
//! and their reporting rows move with it, in the import's transaction, so every check agrees on
//! where they are. Through the real server with tokens on, on both backends.

use doorstep_engine::access::Role;
use doorstep_proto::v1 as w;
use tonic::Code;

use crate::harness::LIXIA;
use crate::tokened::{Tokened, intake, req};

doorstep_store::both_backends!(a_moved_community_takes_its_tickets_to_the_new_street_office);

const OLD_STREET: &str = "lixia/jiefanglu";
const NEW_STREET: &str = "lixia/qianfoshan";
const COMMUNITY: &str = "lixia/jiefanglu/jiefangqiao";
const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
const SOUTH: &str = "lixia/jiefanglu/jiefangqiao/south";
const PHASE_1: &str = "lixia/qianfoshan/lishanmingjun/phase-1";

/// Lixia with 解放桥社区 under 千佛山街道.
fn moved_district() -> String {
    let before =
        format!("code = \"{COMMUNITY}\"\nname = \"解放桥社区\"\nstreet_office = \"{OLD_STREET}\"");
    assert!(LIXIA.contains(&before), "the example district changed");
    LIXIA.replace(
        &before,
        &format!("code = \"{COMMUNITY}\"\nname = \"解放桥社区\"\nstreet_office = \"{NEW_STREET}\""),
    )
}

/// Tickets received under `node`, as the holder of `token` reads the SLA report.
async fn received(s: &Tokened, token: &str, node: &str) -> i64 {
    let now = chrono::Utc::now();
    let stamp = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    };
    let report = s
        .reports()
        .get_sla_report(req(
            token,
            w::SlaReportRequest {
                node: node.into(),
                from: Some(stamp(now - chrono::Duration::days(1))),
                to: Some(stamp(now + chrono::Duration::days(1))),
                ..Default::default()
            },
        ))
        .await
        .unwrap_or_else(|e| panic!("the report of {node}: {e:?}"))
        .into_inner();
    report.rows.iter().map(|r| r.received).sum()
}

fn ids(events: &[w::Event]) -> std::collections::BTreeSet<String> {
    events.iter().map(|e| e.ticket_id.clone()).collect()
}

async fn a_moved_community_takes_its_tickets_to_the_new_street_office(s: Tokened) {
    let old = s
        .token("解放路 dispatch", Role::Dispatcher, OLD_STREET, None)
        .await;
    let new = s
        .token("千佛山 dispatch", Role::Dispatcher, NEW_STREET, None)
        .await;
    let old_reports = s
        .token("解放路 reports", Role::Reporter, OLD_STREET, None)
        .await;
    let new_reports = s
        .token("千佛山 reports", Role::Reporter, NEW_STREET, None)
        .await;
    let root = s.token("root admin", Role::Admin, "lixia", None).await;

    // Elsewhere, before anything else: a watch starts after this ticket's events.
    let opening = s.opening(&root).await;

    let mut moving = Vec::new();
    for (n, node) in [YARD, YARD, SOUTH].into_iter().enumerate() {
        let t = s
            .file(
                &old,
                intake(&format!("MOVE-{n}"), node, "张女士", "13812345678"),
            )
            .await;
        moving.push(t.id);
    }
    let staying = s
        .file(&new, intake("STAY-1", PHASE_1, "李先生", "13900001111"))
        .await
        .id;
    // An event beyond the registration, read by a watch before the move (so the server's watch
    // feed holds it as it was), and the reporting rows built before the move.
    let before_note = s
        .exported(&root)
        .await
        .last()
        .map(|e| e.seq)
        .expect("events");
    let old_last = s
        .exported(&old_reports)
        .await
        .last()
        .map(|e| e.seq)
        .expect("events");
    s.watched(&old, opening, old_last).await;
    let noted = s.get(&old, &moving[0]).await.unwrap();
    s.tickets()
        .add_note(req(&old, crate::action(&noted, "", "上门查看")))
        .await
        .expect("a note");
    let note_seq = before_note + 1;
    let watched = s.watched(&old, before_note, note_seq).await;
    assert_eq!(watched.last().map(|e| e.text.as_str()), Some("上门查看"));
    assert_eq!(received(&s, &old_reports, OLD_STREET).await, 3);
    assert_eq!(received(&s, &new_reports, NEW_STREET).await, 1);
    let mut listed = s.listed(&old, "").await;
    listed.sort();
    let mut expected = moving.clone();
    expected.sort();
    assert_eq!(listed, expected);

    s.admin()
        .import_district(req(
            &root,
            w::ImportDistrictRequest {
                toml: moved_district(),
            },
        ))
        .await
        .expect("the district imports with the community moved");

    // The old street office no longer reaches them, by any read.
    assert!(s.listed(&old, "").await.is_empty());
    for id in &moving {
        let gone = s.get(&old, id).await.unwrap_err();
        assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
    }
    let refused = s
        .tickets()
        .list_tickets(req(
            &old,
            w::ListTicketsRequest {
                node: COMMUNITY.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    assert!(s.exported(&old_reports).await.is_empty());
    assert_eq!(received(&s, &old_reports, OLD_STREET).await, 0);

    // The new one does, by every read.
    let mut listed = s.listed(&new, "").await;
    listed.sort();
    let mut all = moving.clone();
    all.push(staying.clone());
    all.sort();
    assert_eq!(listed, all);
    assert_eq!(s.listed(&new, COMMUNITY).await.len(), moving.len());
    for id in &moving {
        let t = s.get(&new, id).await.expect("the new street reads it");
        assert_eq!(t.caller.unwrap().phone, "13812345678");
    }
    let exported = s.exported(&new_reports).await;
    assert_eq!(ids(&exported), all.iter().cloned().collect());
    assert!(
        exported
            .iter()
            .any(|e| e.ticket_id == moving[0] && e.text == "上门查看"),
        "the note moved with its ticket"
    );
    assert_eq!(received(&s, &new_reports, NEW_STREET).await, 4);

    // A watch that resumes within what the feed held before the move reads it as it is now.
    let watched = s.watched(&new, before_note, note_seq).await;
    assert_eq!(watched.last().map(|e| e.text.as_str()), Some("上门查看"));

    // What happens from now on is recorded where the ticket is now.
    let t = s.get(&new, &moving[1]).await.unwrap();
    let after = s
        .tickets()
        .add_note(req(&new, crate::action(&t, "", "已联系物业")))
        .await
        .expect("the new street office acts on it")
        .into_inner();
    assert_eq!(after.version, t.version + 1);
    let last_seq = s
        .exported(&new_reports)
        .await
        .last()
        .map(|e| e.seq)
        .expect("events");
    // Watches agree: the new street's from the start, the old street's sees nothing of them (read
    // up to a ticket filed there after the move).
    let watched = s.watched(&new, opening, last_seq).await;
    assert_eq!(ids(&watched), all.iter().cloned().collect());
    let sentinel = s
        .file(
            &root,
            intake("OLD-STREET-1", OLD_STREET, "王先生", "13700002222"),
        )
        .await;
    let sentinel_seq = s
        .exported(&root)
        .await
        .iter()
        .filter(|e| e.ticket_id == sentinel.id)
        .map(|e| e.seq)
        .max()
        .expect("the sentinel's events");
    let watched = s.watched(&old, opening, sentinel_seq).await;
    assert_eq!(
        ids(&watched),
        std::iter::once(sentinel.id.clone()).collect()
    );
    assert_eq!(
        ids(&s.exported(&old_reports).await),
        std::iter::once(sentinel.id).collect()
    );
}
