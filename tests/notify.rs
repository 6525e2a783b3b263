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
        Sla::start_with(name, dir, url, config, &[])
    }

    fn start_with(name: &str, dir: &Path, url: &str, config: &Path, extra: &[&str]) -> Sla {
        let mut args = vec![
            "sla",
            "--database-url",
            url,
            "--config",
            config.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Sla::spawn(name, dir, &args)
    }

    fn spawn(name: &str, dir: &Path, args: &[&str]) -> Sla {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(BIN)
            .args(args)
            .env_remove("DOORSTEP_DATABASE_URL")
            .env_remove("DOORSTEP_CONFIG")
            .env("DOORSTEP_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Sla { child, log }
    }

    /// The address `--metrics-listen 127.0.0.1:0` bound (its first stdout line).
    async fn metrics_addr(&mut self) -> String {
        use tokio::io::AsyncBufReadExt as _;
        let stdout = self.child.stdout.take().expect("a piped stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a first line")
            .unwrap()
            .unwrap_or_default();
        // Keep reading so the child never writes to a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        line.trim()
            .strip_prefix("metrics on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned()
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

/// `GET /metrics` over a raw socket; the body.
async fn scrape(addr: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn operators_list_and_retry_deliveries_and_read_the_gauges() {
    use doorstep_store::Settlement;
    let db = TestDb::sqlite("notify-operator").await.unwrap();
    let dir = TempDir::new("doorstep-notify-operator").unwrap();
    let url = db.url.as_str();
    let engine = world(url).await;
    let receiver = Receiver::start().await;
    receiver.answer_next(100_000, 500);
    let cfg = config(dir.path(), &receiver.url, "");
    let mut sla = Sla::start_with(
        "sla-metrics",
        dir.path(),
        url,
        &cfg,
        &["--metrics-listen", "127.0.0.1:0"],
    );
    let metrics = sla.metrics_addr().await;
    file(&engine, "OP-1").await;
    assert!(
        !receiver.wait_for(1, WAIT).await.is_empty(),
        "{}",
        sla.log()
    );
    // The gauges are sampled every 5 s.
    let deadline = tokio::time::Instant::now() + WAIT;
    let body = loop {
        let body = scrape(&metrics).await;
        if sample(&body, "doorstep_notify_pending").is_some_and(|n| n >= 1.0) {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(sample(&body, "doorstep_notify_failed"), Some(0.0), "{body}");
    assert!(
        sample(&body, "doorstep_notify_lag_seconds").is_some(),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("doorstep_notify_attempts_total{")
                && l.contains("outcome=\"retry\"")
                && l.contains("rule=\"street-ops\"")),
        "{body}"
    );
    let log = sla.terminate().await;
    assert!(
        !log.contains("13912345678") && !log.contains("张三丰"),
        "{log}"
    );

    let (ok, listed, stderr) = cli(&["notify", "list", "--database-url", url]).await;
    assert!(ok, "{stderr}");
    let mut lines = listed.lines();
    assert_eq!(
        lines.next(),
        Some("id\tstatus\trule\tkind\tticket\tattempts\tat\tlast_error")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
    assert!(!rows.is_empty(), "{listed}");
    assert!(
        rows.iter()
            .all(|r| r[1] == "pending" && r[2] == "street-ops"),
        "{listed}"
    );
    // The first of the ticket was tried (and answered 500); the later ones wait for it.
    assert!(rows.iter().any(|r| r[7] == "HTTP 500"), "{listed}");
    let (_, none, _) = cli(&["notify", "list", "--failed", "--database-url", url]).await;
    assert_eq!(none.lines().count(), 1, "{none}");
    let (_, other, _) = cli(&[
        "notify",
        "list",
        "--webhook",
        "other",
        "--database-url",
        url,
    ])
    .await;
    assert_eq!(other.lines().count(), 1, "{other}");

    // Set one aside as a day of failures would.
    let store = doorstep_store::connect(url, &doorstep_store::testing::test_options())
        .await
        .unwrap();
    let later = chrono::Utc::now() + chrono::Duration::days(2);
    let claimed = store
        .claim_deliveries(later, 1, "test", later + chrono::Duration::minutes(1))
        .await
        .unwrap();
    let id = claimed[0].id.clone();
    assert!(
        store
            .settle_delivery(
                &id,
                "test",
                &Settlement::Failed {
                    at: later,
                    error: "HTTP 500".into()
                }
            )
            .await
            .unwrap()
    );
    store.close().await.unwrap();
    let (_, failed, _) = cli(&["notify", "list", "--failed", "--database-url", url]).await;
    assert!(
        failed
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with(&format!("{id}\tfailed\t"))),
        "{failed}"
    );
    let (ok, said, stderr) = cli(&["notify", "retry", &id, "--database-url", url]).await;
    assert!(ok, "{stderr}");
    assert!(
        said.contains(&format!("delivery {id} is due again")),
        "{said}"
    );
    let (_, failed, _) = cli(&["notify", "list", "--failed", "--database-url", url]).await;
    assert_eq!(failed.lines().count(), 1, "{failed}");
    let (ok, _, stderr) = cli(&["notify", "retry", "nope", "--database-url", url]).await;
    assert!(!ok);
    assert!(stderr.contains("no delivery nope"), "{stderr}");
}

#[tokio::test]
async fn serve_runs_the_notifier_beside_its_scheduler() {
    let db = TestDb::sqlite("notify-serve").await.unwrap();
    let dir = TempDir::new("doorstep-notify-serve").unwrap();
    let url = db.url.as_str();
    let engine = world(url).await;
    let receiver = Receiver::start().await;
    let cfg = config(dir.path(), &receiver.url, "");
    let serve = Sla::spawn(
        "serve",
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            url,
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    file(&engine, "SERVE-1").await;
    let got = receiver.wait_for(2, WAIT).await;
    assert!(got.len() >= 2, "{got:?}\n{}", serve.log());
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.json()["event"]["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds[..2], ["BREACHED", "ESCALATED"], "in event order");
    let log = serve.terminate().await;
    assert!(log.contains("notifier started"), "{log}");
    assert!(
        log.contains("notifier stopped"),
        "drained at shutdown: {log}"
    );
}
