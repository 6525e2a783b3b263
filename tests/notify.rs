//! Notifications through the real binary: `doorstep sla --config FILE` processes delivering to a
//! webhook receiver on loopback, tickets filed on the same database with a short ladder (seconds
//! per rung) so they breach and climb during the test.
//!
//! - a bad rule stops `serve` and `sla` at start-up, naming the key and the reason;
//! - a scheduler killed with SIGKILL while a delivery is in flight: once started again, the same
//!   delivery (same id, same body) comes again (SQLite and PostgreSQL);
//! - two schedulers on one PostgreSQL deliver each notification once;
//! - `doorstep notify list` and `doorstep notify retry` on the database, and the SMS gateway
//!   receiving the Chinese text for the compound's community workers.

#[path = "../crates/doorstep-notify/tests/common/mod.rs"]
mod receiver;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use doorstep_domain::{Caller, Category, Channel, Intake, NodeCode, SystemClock};
use doorstep_engine::{Engine, Principal};
use doorstep_store::testing::{TempDir, TestDb};
use receiver::Receiver;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_doorstep");
const LIXIA: &str = include_str!("../deploy/examples/lixia.toml");
const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
const SECRET: &str = "process-test-secret-0123";
/// Seconds per rung: a ticket breaches and climbs while the test waits.
const SHORT_LADDER: &str = r#"acknowledge_within = "1h"
[levels.routine]
resolve_within = "4s"
[levels.difficult]
resolve_within = "4s"
[levels.hard]
resolve_within = "4s"
"#;
/// Bounded waits, generous for a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(60);

fn config(dir: &Path, receiver: &str, extra: &str) -> PathBuf {
    let path = dir.join("doorstep.toml");
    std::fs::write(
        &path,
        format!(
            "[[notify.webhook]]\nname = \"street-ops\"\nurl = \"{receiver}\"\n\
             secret = \"{SECRET}\"\nevents = [\"BREACHED\", \"ESCALATED\"]\n{extra}"
        ),
    )
    .unwrap();
    path
}

/// A `doorstep sla --config` child, killed when dropped.
struct Sla {
    child: Child,
    log: PathBuf,
}

impl Sla {
    fn start(name: &str, dir: &Path, url: &str, config: &Path) -> Sla {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["sla", "--database-url", url, "--config"])
            .arg(config)
            .env_remove("DOORSTEP_DATABASE_URL")
            .env_remove("DOORSTEP_CONFIG")
            .env("DOORSTEP_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Sla { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn kill_9(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
    }

    async fn terminate(mut self) -> String {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        self.log()
    }
}

/// Runs a one-shot command; its status, stdout and stderr.
async fn cli(args: &[&str]) -> (bool, String, String) {
    let out = tokio::time::timeout(
        WAIT,
        Command::new(BIN)
            .args(args)
            .env_remove("DOORSTEP_DATABASE_URL")
            .env_remove("DOORSTEP_CONFIG")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the command finished")
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The database set up as an operator does (district, short ladder), and an engine on it to file
/// tickets with.
async fn world(url: &str) -> Arc<Engine> {
    let store = doorstep_store::connect(url, &doorstep_store::testing::test_options())
        .await
        .unwrap();
    let engine = Arc::new(Engine::open(store, Arc::new(SystemClock)).await.unwrap());
    engine.import_district(LIXIA).await.unwrap();
    engine.put_policy(SHORT_LADDER).await.unwrap();
    engine
}

async fn file(engine: &Engine, reference: &str) {
    engine
        .create_ticket(
            &Principal::local(),
            Intake {
                source: Channel::Hotline12345,
                external_ref: reference.into(),
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
}

#[tokio::test]
async fn a_bad_rule_stops_start_up_naming_the_key_and_the_reason() {
    let dir = TempDir::new("doorstep-notify-bad-rule").unwrap();
    let url = format!("sqlite://{}", dir.path().join("d.db").display());
    let bad = config(
        dir.path(),
        "http://127.0.0.1:9/x",
        "levels = [\"URGENT\"]\n",
    );
    for command in [
        vec!["sla", "--database-url", &url, "--config"],
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &url,
            "--config",
        ],
    ] {
        let mut args = command.clone();
        args.push(bad.to_str().unwrap());
        let (ok, _, stderr) = cli(&args).await;
        assert!(!ok, "{args:?} started");
        assert!(
            stderr.contains("notify.webhook[1].levels: unknown level \"URGENT\""),
            "{args:?}: {stderr}"
        );
    }
    // A node the district lacks is found once the district is read.
    let bad = config(
        dir.path(),
        "http://127.0.0.1:9/x",
        "node = \"lixia/nowhere\"\n",
    );
    let (ok, _, stderr) = cli(&[
        "sla",
        "--database-url",
        &url,
        "--config",
        bad.to_str().unwrap(),
    ])
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("notify.webhook[1].node: no node lixia/nowhere in the district"),
        "{stderr}"
    );
}

async fn killed_mid_delivery(url: &str, dir: &Path) {
    let engine = world(url).await;
    let receiver = Receiver::start().await;
    receiver.hang(true);
    let cfg = config(dir, &receiver.url, "");
    let sla = Sla::start("sla-1", dir, url, &cfg);
    file(&engine, "KILL-1").await;
    // The breach comes after 4 s; its delivery is held open by the receiver.
    let seen = receiver.wait_for(1, WAIT).await;
    assert!(!seen.is_empty(), "no delivery arrived:\n{}", sla.log());
    let first = seen[0].clone();
    assert_eq!(first.answered, 0);
    sla.kill_9().await;

    receiver.hang(false);
    let sla = Sla::start("sla-2", dir, url, &cfg);
    // Its lease (20 s) runs out, and the restarted scheduler sends it again.
    let deadline = tokio::time::Instant::now() + WAIT;
    let again = loop {
        let got = receiver.received();
        if let Some(r) = got
            .iter()
            .find(|r| r.answered == 200 && r.delivery == first.delivery)
        {
            break r.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not redelivered: {got:?}\n{}",
            sla.log()
        );
        receiver
            .wait_for(got.len() + 1, Duration::from_secs(2))
            .await;
    };
    assert_eq!(again.body, first.body, "the same body");
    let log = sla.terminate().await;
    assert!(!log.contains("13912345678"), "a phone number in the log");
    let (ok, listed, stderr) = cli(&["notify", "list", "--database-url", url]).await;
    assert!(ok, "{stderr}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{}\tdone\tstreet-ops\t", first.delivery))),
        "{listed}"
    );
}

#[tokio::test]
async fn a_scheduler_killed_mid_delivery_redelivers_on_restart_sqlite() {
    let db = TestDb::sqlite("notify-kill").await.unwrap();
    let dir = TempDir::new("doorstep-notify-kill").unwrap();
    killed_mid_delivery(&db.url, dir.path()).await;
}

#[tokio::test]
async fn a_scheduler_killed_mid_delivery_redelivers_on_restart_postgres() {
    let Some(db) = TestDb::postgres("notify_kill").await else {
        return;
    };
    let dir = TempDir::new("doorstep-notify-kill-pg").unwrap();
    killed_mid_delivery(&db.url, dir.path()).await;
}

#[tokio::test]
async fn two_schedulers_on_one_postgresql_deliver_each_notification_once() {
    let Some(db) = TestDb::postgres("notify_two").await else {
        return;
    };
    let dir = TempDir::new("doorstep-notify-two").unwrap();
    let url = db.url.as_str();
    let engine = world(url).await;
    let receiver = Receiver::start().await;
    let cfg = config(dir.path(), &receiver.url, "");
    let a = Sla::start("sla-a", dir.path(), url, &cfg);
    let b = Sla::start("sla-b", dir.path(), url, &cfg);
    const TICKETS: usize = 30;
    for i in 0..TICKETS {
        file(&engine, &format!("TWO-{i}")).await;
    }
    // Every ticket breaches and climbs at least once: two deliveries each.
    let got = receiver.wait_for(2 * TICKETS, WAIT).await;
    assert!(
        got.len() >= 2 * TICKETS,
        "{} deliveries:\n{}\n{}",
        got.len(),
        a.log(),
        b.log()
    );
    let (log_a, log_b) = (a.terminate().await, b.terminate().await);
    let got = receiver.received();
    let mut by_id: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &got {
        *by_id.entry(r.delivery.as_str()).or_default() += 1;
    }
    assert!(
        by_id.values().all(|n| *n == 1),
        "a notification delivered twice: {by_id:?}"
    );
    // What the database says was delivered is what arrived.
    let (ok, listed, _) = cli(&["notify", "list", "--limit", "10000", "--database-url", url]).await;
    assert!(ok);
    let done: Vec<&str> = listed
        .lines()
        .skip(1)
        .filter(|l| l.split('\t').nth(1) == Some("done"))
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert!(done.len() >= 2 * TICKETS);
    for id in &done {
        assert_eq!(
            by_id.get(id),
            Some(&1),
            "{id} done but received {:?}",
            by_id.get(id)
        );
    }
    // Both took part (claims spread over the two).
    assert!(
        log_a.contains("notifier started") && log_b.contains("notifier started"),
        "{log_a}\n{log_b}"
    );
}
