#![allow(unreachable_pub)]
//! SMS through an HTTP gateway stand-in on loopback, on both backends: the rendered Chinese text
//! goes to the board members the rule names by role for the ticket's level at the event.

mod common;

use std::collections::BTreeSet;

use common::{World, at};
use doorstep_domain::{Command, UnitCode};
use doorstep_engine::{Action, Principal};
use doorstep_notify::Rules;
use doorstep_store::testing::TestDatabase;

const WORKERS: &str = "lixia/jiefanglu/jiefangqiao/yard-129/workers";

doorstep_store::both_backends!(the_gateway_receives_the_chinese_text_for_the_right_board_members);

async fn the_gateway_receives_the_chinese_text_for_the_right_board_members(db: TestDatabase) {
    let w = World::new(db, |url| {
        let text = format!(
            r#"
            [[notify.sms]]
            name = "duty-sms"
            url = "{url}"
            headers = {{ content-type = "application/json" }}
            body = '{{"mobile":"{{phone}}","content":"{{text}}"}}'
            events = ["BREACHED", "ESCALATED"]
            [notify.sms.recipients]
            ROUTINE = ["assigned community worker"]
            DIFFICULT = ["hotline office director"]
            "#
        );
        let table: toml::Table = toml::from_str(&text).unwrap();
        Rules::parse(table.get("notify"), &|_| None).unwrap()
    })
    .await;
    let principal = Principal::local();
    let t = w.file_ticket("SD-20260302-0001").await;
    w.engine
        .act(
            &principal,
            &t.id,
            t.version,
            Action::Command(Command::Acknowledge {
                unit: UnitCode::parse(WORKERS).unwrap(),
            }),
        )
        .await
        .unwrap();
    // The 24 h resolve deadline passes: a red card at ROUTINE, then DIFFICULT.
    w.advance_to(at("2026-03-03T10:10:00+08:00")).await;
    for _ in 0..4 {
        w.notify().await;
    }
    let got: BTreeSet<(String, String)> = w
        .receiver
        .received()
        .iter()
        .map(|r| {
            assert_eq!(r.method, "POST");
            assert_eq!(r.content_type, "application/json");
            let body = r.json();
            (
                body["mobile"].as_str().unwrap().to_owned(),
                body["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let breached =
        "【12345】工单SD-20260302-0001（普通事项）已超期，办理期限2026-03-03 10:00，请立即办理。";
    let escalated = "【12345】工单SD-20260302-0001超期未办结，已升级为疑难问题，新办理期限2026-03-07 00:00，请立即接办。";
    assert_eq!(
        got,
        BTreeSet::from([
            // The compound's two assigned community workers, for the red card at ROUTINE.
            ("138****0002".to_owned(), breached.to_owned()),
            ("138****0003".to_owned(), breached.to_owned()),
            // The district's hotline office director, for the climb to DIFFICULT.
            ("0531-8***0003".to_owned(), escalated.to_owned()),
        ])
    );
    assert_eq!(w.receiver.received().len(), 3, "each once");
}
