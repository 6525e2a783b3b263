//! The SQLite file as operators copy it: after SIGTERM or SIGINT (`serve`, `sla`) and after a one-shot
//! command, `doorstep.db` copied alone holds every acknowledged write and its write-ahead log is
//! empty or gone; `doorstep backup FILE` copies a database in use, never overwrites a file, and
//! sends a PostgreSQL database to pg_dump.

use std::io::{BufRead, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use doorstep_domain::TicketId;
use doorstep_proto::v1 as w;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;

struct Service {
    child: Child,
    addr: String,
}

impl Service {
    fn start(dir: &Path) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_doorstep"))
            .args(["serve", "--listen", "127.0.0.1:0", "--demo"])
            .args(["--database-url", &url(&dir.join("doorstep.db"))])
            .current_dir(dir)
            .env("DOORSTEP_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("doorstep serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("a first line");
        let addr = line
            .trim()
            .strip_prefix("doorstep listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Service { child, addr }
    }

    async fn client(&self) -> TicketServiceClient<tonic::transport::Channel> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        TicketServiceClient::new(channel)
    }

    /// Sends `signal` and returns the exit status and everything logged.
    fn stop(mut self, signal: &str) -> (std::process::ExitStatus, String) {
        send(&self.child, signal);
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut log);
        }
        (self.child.wait().expect("exits"), log)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn send(child: &Child, signal: &str) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
}

fn url(file: &Path) -> String {
    format!("sqlite://{}", file.display())
}

/// A fresh folder for one test.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("doorstep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn doorstep(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_doorstep"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("runs")
}

/// The write-ahead log beside `file` is empty or gone.
fn assert_log_emptied(file: &Path, after: &str) {
    let mut wal = file.as_os_str().to_owned();
    wal.push("-wal");
    let bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(
        bytes, 0,
        "{bytes} bytes left in the write-ahead log after {after}"
    );
}

/// `file` copied alone (no -wal, no -shm) into a folder of its own.
fn copy_alone(file: &Path, name: &str) -> PathBuf {
    let copy = folder(name).join("doorstep.db");
    std::fs::copy(file, &copy).unwrap();
    copy
}

/// How many of `ids` the SQLite file holds.
async fn tickets_in(file: &Path, ids: &[String]) -> usize {
    let store = doorstep_store::connect(&url(file), &doorstep_store::ConnectOptions::default())
        .await
        .unwrap();
    let ids: Vec<TicketId> = ids.iter().map(|id| TicketId::parse(id).unwrap()).collect();
    let found = store.get_tickets(&ids).await.unwrap().len();
    store.close().await.unwrap();
    found
}

fn ticket(external_ref: &str) -> w::CreateTicketRequest {
    w::CreateTicketRequest {
        source: w::Channel::Hotline12345 as i32,
        external_ref: external_ref.into(),
        caller: Some(w::Caller {
            name: "李先生".into(),
            phone: "13900000001".into(),
            confidential: true,
        }),
        category: "sanitation.garbage".into(),
        content: "垃圾桶满了".into(),
        node: "lixia/qianfoshan/lishanmingjun/phase-1".into(),
        ..Default::default()
    }
}

async fn file_tickets(
    client: &mut TicketServiceClient<tonic::transport::Channel>,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let created = client
            .create_ticket(ticket(&format!("{prefix}{i}")))
            .await
            .unwrap()
            .into_inner();
        assert!(created.created);
        ids.push(created.ticket.unwrap().id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_leaves_the_database_file_whole() {
    let dir = folder("whole");
    let db = dir.join("doorstep.db");

    let service = Service::start(&dir);
    let mut client = service.client().await;
    // Few enough that SQLite's own automatic checkpoint (at 1000 pages of log) leaves them in the
    // write-ahead log: only the close puts them in the file.
    let ids = file_tickets(&mut client, "SD-W", 10).await;
    let (status, log) = service.stop("-TERM");
    assert!(status.success(), "clean exit on SIGTERM: {status:?}\n{log}");
    assert!(
        log.contains("write-ahead log is checkpointed into the database file"),
        "the close is logged: {log}"
    );
    for secret in ["李先生", "13900000001"] {
        assert!(!log.contains(secret), "personal data in the log: {log}");
    }
    assert_log_emptied(&db, "SIGTERM to serve");
    let copy = copy_alone(&db, "whole-copy");
    assert_eq!(
        tickets_in(&copy, &ids).await,
        ids.len(),
        "every acknowledged ticket is in doorstep.db copied alone"
    );
    let _ = std::fs::remove_dir_all(copy.parent().unwrap());

    // The scheduler alone, stopped with SIGINT.
    let mut sla = Command::new(env!("CARGO_BIN_EXE_doorstep"))
        .args(["sla", "--database-url", &url(&db)])
        .env("DOORSTEP_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("doorstep sla starts");
    let mut stderr = BufReader::new(sla.stderr.take().unwrap());
    let mut log = String::new();
    while !log.contains("sla scheduler started") {
        assert!(stderr.read_line(&mut log).unwrap() > 0, "{log}");
    }
    // The scheduler folds the tickets into the reporting rows: it writes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    send(&sla, "-INT");
    stderr.read_to_string(&mut log).unwrap();
    assert!(sla.wait().unwrap().success(), "{log}");
    assert!(log.contains("write-ahead log is checkpointed"), "{log}");
    assert_log_emptied(&db, "SIGINT to sla");

    // A one-shot command that writes.
    let out = doorstep(
        &dir,
        &[
            "token",
            "create",
            "--role",
            "admin",
            "--scope",
            "lixia",
            "--database-url",
            &url(&db),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_log_emptied(&db, "doorstep token create");
    let copy = copy_alone(&db, "token-copy");
    let out = doorstep(&dir, &["token", "list", "--database-url", &url(&copy)]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        listed.lines().count(),
        2,
        "the token is in the copy: {listed}"
    );

    let _ = std::fs::remove_dir_all(copy.parent().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_a_database_in_use_and_never_overwrites() {
    let dir = folder("backup");
    let db = dir.join("doorstep.db");
    let service = Service::start(&dir);
    let mut client = service.client().await;
    let ids = file_tickets(&mut client, "SD-B", 20).await;

    // Intake goes on while the backup runs.
    let filing = tokio::spawn({
        let mut client = client.clone();
        async move { file_tickets(&mut client, "SD-C", 30).await }
    });
    let out = doorstep(&dir, &["backup", "nightly.db", "--database-url", &url(&db)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8(out.stdout).unwrap();
    let backup = dir.join("nightly.db");
    let bytes = std::fs::metadata(&backup).unwrap().len();
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.contains("nightly.db") && said.contains(&format!("{bytes} bytes")),
        "{said}"
    );
    let later = filing.await.unwrap();
    assert_eq!(
        tickets_in(&backup, &ids).await,
        ids.len(),
        "every ticket filed before it"
    );

    // An existing file is refused and left as it was.
    let before = std::fs::read(&backup).unwrap();
    let out = doorstep(&dir, &["backup", "nightly.db", "--database-url", &url(&db)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nightly.db") && err.contains("already exists"),
        "{err}"
    );
    assert_eq!(std::fs::read(&backup).unwrap(), before);

    // PostgreSQL is pg_dump's; the password is never echoed.
    let out = doorstep(
        &dir,
        &[
            "backup",
            "pg.dump",
            "--database-url",
            "postgres://doorstep:s3cr3t@db.example/doorstep",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pg_dump") && !err.contains("s3cr3t"), "{err}");
    assert!(!dir.join("pg.dump").exists());

    // The service kept every ticket, including those filed during the backup.
    let mut client = service.client().await;
    for id in ids.iter().chain(&later) {
        client
            .get_ticket(w::GetTicketRequest { id: id.clone() })
            .await
            .unwrap();
    }
    let (status, log) = service.stop("-TERM");
    assert!(status.success(), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
