#![allow(unreachable_pub)]
//! The scheduler's metrics, read as Prometheus would: a fired timer's lateness (its due instant to
//! the commit) and the events fired by kind; and the engine's count of deadlines reckoned on the
//! calendar's Monday–Friday fallback. Under a manual clock on SQLite, with a recorder local to the
//! test's thread (a current-thread runtime runs every task on it).

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use doorstep_domain::{Caller, Category, Channel, Intake, Level, ManualClock, NodeCode};
use doorstep_engine::{Engine, Principal};
use doorstep_sla::{Scheduler, SchedulerConfig};
use doorstep_store::testing::TestDatabase;
use metrics_exporter_prometheus::PrometheusBuilder;

const LIXIA: &str = include_str!("../../../deploy/examples/lixia.toml");
const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::<FixedOffset>::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

async fn engine_at(db: &TestDatabase, start: DateTime<Utc>) -> (Arc<Engine>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(start));
    let engine = Arc::new(
        Engine::open(Arc::clone(&db.store), clock.clone())
            .await
            .unwrap(),
    );
    engine.import_district(LIXIA).await.unwrap();
    (engine, clock)
}

async fn file(engine: &Engine, reference: &str, level: Option<Level>) {
    engine
        .create_ticket(
            &Principal::local(),
            Intake {
                source: Channel::Hotline12345,
                external_ref: reference.into(),
                caller: Caller::default(),
                category: Category::parse("lighting.stairwell").unwrap(),
                content: "楼道灯不亮".into(),
                address: String::new(),
                node: NodeCode::parse(YARD).unwrap(),
                occurred_at: None,
                attachment_urls: vec![],
            },
            level,
        )
        .await
        .unwrap();
}

/// The value of the sample `series` (its name and labels exactly as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_fired_timer_records_its_lateness_and_kind() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let db = TestDatabase::sqlite().await;
    // Monday 2 March 2026, 10:00 in Jinan: the sign-for clock's yellow card is due at 11:30.
    let (engine, clock) = engine_at(&db, at("2026-03-02T10:00:00+08:00")).await;
    file(&engine, "SD-M1", None).await;
    let scheduler = Scheduler::new(Arc::clone(&engine), SchedulerConfig::default());
    clock.set(at("2026-03-02T11:40:00+08:00"));
    let round = scheduler.tick().await.unwrap();
    assert_eq!(round.fired, 1, "{round:?}");

    let text = handle.render();
    assert_eq!(
        sample(&text, r#"doorstep_sla_fired_total{kind="WARNING"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "doorstep_sla_lateness_seconds_count"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "doorstep_sla_lateness_seconds_sum"),
        Some(600.0),
        "ten minutes from 11:30 to the round at 11:40: {text}"
    );
    assert_eq!(
        sample(&text, "doorstep_calendar_fallback_total"),
        None,
        "{text}"
    );
}

#[tokio::test]
async fn a_deadline_reckoned_on_the_calendar_fallback_is_counted() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let db = TestDatabase::sqlite().await;
    // 2031: no calendar notice for the year, so a DIFFICULT ticket's three working days are reckoned
    // on Monday–Friday.
    let (engine, _) = engine_at(&db, at("2031-03-03T10:00:00+08:00")).await;
    file(&engine, "SD-F1", Some(Level::Difficult)).await;
    let text = handle.render();
    let counted = sample(&text, "doorstep_calendar_fallback_total").unwrap_or(0.0);
    assert!(counted >= 1.0, "{text}");
    file(&engine, "SD-F2", Some(Level::Difficult)).await;
    let again = sample(&handle.render(), "doorstep_calendar_fallback_total").unwrap_or(0.0);
    assert_eq!(
        again,
        counted * 2.0,
        "each new ticket's deadlines count once"
    );
}
