#![allow(unreachable_pub)]
//! SMS through an HTTP gateway stand-in on loopback, on both backends: the rendered Chinese text
//! goes to the board members the rule names by role for the ticket's level at the event.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use common::Receiver;
use doorstep_domain::{
    Caller, Category, Channel, Command, Intake, ManualClock, NodeCode, UnitCode,
};
use doorstep_engine::{Action, Engine, Principal};
use doorstep_notify::{Notifier, NotifierConfig, Rules};
use doorstep_sla::{Scheduler, SchedulerConfig};
use doorstep_store::testing::TestDatabase;

const LIXIA: &str = include_str!("../../../deploy/examples/lixia.toml");
const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
const WORKERS: &str = "lixia/jiefanglu/jiefangqiao/yard-129/workers";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::<FixedOffset>::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

doorstep_store::both_backends!(the_gateway_receives_the_chinese_text_for_the_right_board_members);

async fn the_gateway_receives_the_chinese_text_for_the_right_board_members(db: TestDatabase) {
    let clock = Arc::new(ManualClock::new(at("2026-03-02T10:00:00+08:00")));
    let engine = Arc::new(
        Engine::open(Arc::clone(&db.store), clock.clone())
            .await
            .unwrap(),
    );
    engine.import_district(LIXIA).await.unwrap();
    let gateway = Receiver::start().await;
    let text = format!(
        r#"
        [[notify.sms]]
        name = "duty-sms"
        url = "{}"
        headers = {{ content-type = "application/json" }}
        body = '{{"mobile":"{{phone}}","content":"{{text}}"}}'
        events = ["BREACHED", "ESCALATED"]
        [notify.sms.recipients]
        ROUTINE = ["assigned community worker"]
        DIFFICULT = ["hotline office director"]
        "#,
        gateway.url
    );
    let table: toml::Table = toml::from_str(&text).unwrap();
    let rules = Rules::parse(table.get("notify"), &|_| None).unwrap();
    let notifier = Notifier::new(
        Arc::clone(&engine),
        Arc::clone(&db.store),
        rules,
        NotifierConfig {
            owner: "sms-test".into(),
            ..NotifierConfig::default()
        },
    )
    .unwrap();
    let scheduler = Scheduler::new(
        Arc::clone(&engine),
        SchedulerConfig {
            owner: "sms-test".into(),
            ..SchedulerConfig::default()
        },
    );
    let principal = Principal::local();
    let (t, _) = engine
        .create_ticket(
            &principal,
            Intake {
                source: Channel::Hotline12345,
                external_ref: "SD-20260302-0001".into(),
                caller: Caller {
                    name: "张三丰".into(),
                    phone: "13912345678".into(),
                    confidential: false,
                },
                category: Category::parse("lighting.stairwell").unwrap(),
                content: "楼道灯不亮".into(),
                address: String::new(),
                node: NodeCode::parse(YARD).unwrap(),
                occurred_at: None,
                attachment_urls: vec![],
            },
            None,
        )
        .await
        .unwrap();
    engine
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
    clock.set(at("2026-03-03T10:10:00+08:00"));
    scheduler.tick().await.unwrap();
    for _ in 0..4 {
        while notifier.record().await.unwrap() > 0 {}
        notifier.deliver().await.unwrap();
        notifier.idle().await;
    }
    let got: BTreeSet<(String, String)> = gateway
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
    assert_eq!(gateway.received().len(), 3, "each once");
}
