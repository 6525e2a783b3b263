//! `doorstep serve` as an operator runs it: the real binary, a real SQLite file, a real client; SIGTERM
//! drains and exits cleanly, and a restart finds every acknowledged ticket.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use doorstep_proto::v1 as w;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;

struct Service {
    child: Child,
    addr: String,
}

impl Service {
    fn start(dir: &std::path::Path, extra: &[&str]) -> Service {
        let db = format!("sqlite://{}", dir.join("doorstep.db").display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_doorstep"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
            .args(extra)
            .current_dir(dir)
            .env("DOORSTEP_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("doorstep serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
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

    /// Sends SIGTERM and returns the exit status and everything logged.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read as _;
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut log);
        }
        let status = self.child.wait().expect("exits");
        (status, log)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// `message` with `authorization: Bearer TOKEN`.
fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_drains_on_sigterm_and_keeps_every_acknowledged_ticket() {
    let dir = std::env::temp_dir().join(format!("doorstep-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let service = Service::start(&dir, &["--demo"]);
    let mut client = service.client().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let r = client
            .create_ticket(ticket(&format!("SD-S{i}")))
            .await
            .unwrap()
            .into_inner();
        assert!(r.created);
        ids.push(r.ticket.unwrap().id);
    }
    let (status, log) = service.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}\n{log}");
    assert!(
        log.contains("local all-access principal"),
        "the open seam is logged: {log}"
    );
    for secret in ["李先生", "13900000001"] {
        assert!(!log.contains(secret), "personal data in the log: {log}");
    }

    // Restarted (the demo import again: an idempotent upsert), every ticket is there.
    let service = Service::start(&dir, &["--demo"]);
    let mut client = service.client().await;
    for id in &ids {
        let t = client
            .get_ticket(w::GetTicketRequest { id: id.clone() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&t.id, id);
    }
    let again = client
        .create_ticket(ticket("SD-S0"))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created, "intake stays idempotent across restarts");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (status, _) = service.terminate();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_configuration_is_one_line_and_a_non_zero_exit() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_doorstep"))
            .args(args)
            .output()
            .expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run(&[
        "serve",
        "--listen",
        "nowhere",
        "--database-url",
        "sqlite::memory:",
    ]);
    assert!(!ok);
    assert!(err.contains("\"nowhere\""), "{err}");
    let (ok, err) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        "mysql://x",
    ]);
    assert!(!ok);
    assert!(
        err.lines().last().unwrap_or("").contains("mysql://"),
        "{err}"
    );
    let (ok, err) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        "sqlite:///no/such/dir/doorstep.db",
    ]);
    assert!(!ok);
    assert!(
        err.lines().last().unwrap_or("").contains("/no/such/dir"),
        "{err}"
    );
}

/// `doorstep token create` on the service's database, then `serve --auth required`: calls without a
/// token are UNAUTHENTICATED, calls with one work, and neither the caller's data nor the token reaches
/// the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_tokens_from_the_cli() {
    let dir = std::env::temp_dir().join(format!("doorstep-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("doorstep.db").display());

    let service = Service::start(&dir, &["--demo", "--auth", "required"]);
    let token_cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_doorstep"))
            .arg("token")
            .args(args)
            .args(["--database-url", &db])
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let token = token_cli(&[
        "create",
        "--role",
        "dispatcher",
        "--scope",
        "lixia/qianfoshan",
        "--expires",
        "1d",
    ]);
    let token = token.trim().to_owned();
    assert!(
        token.starts_with("dst_") && token.len() == 68 && !token.contains(char::is_whitespace),
        "the token alone on stdout: {token:?}"
    );
    let listed = token_cli(&["list"]);
    assert!(listed.contains("dispatcher@lixia/qianfoshan"), "{listed}");
    assert!(!listed.contains(&token[4..]), "list shows no secret");

    let mut client = service.client().await;
    let refused = client.create_ticket(ticket("SD-A1")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");

    let created = client
        .create_ticket(bearer(&token, ticket("SD-A1")))
        .await
        .unwrap()
        .into_inner();
    assert!(created.created);
    let id_of_ticket = created.ticket.unwrap().id;
    client
        .get_ticket(bearer(&token, w::GetTicketRequest { id: id_of_ticket }))
        .await
        .unwrap();

    // The dispatcher read the caller unmasked: that read is in the audit log. The reply to its own
    // CreateTicket only showed it the caller it sent, which discloses nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_doorstep"))
        .args(["audit", "--database-url", &db])
        .output()
        .expect("runs");
    let audit = String::from_utf8(out.stdout).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("dispatcher@lixia/qianfoshan")
                && l.contains("via TicketService.GetTicket")),
        "{audit}"
    );
    assert!(!audit.contains("via TicketService.CreateTicket"), "{audit}");
    assert!(
        !audit.contains("13900000001"),
        "the log of reads holds no data itself"
    );

    let id = listed.lines().nth(1).unwrap().split('\t').next().unwrap();
    assert!(token_cli(&["revoke", id]).contains(id));
    let (status, log) = service.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("authentication required"), "{log}");
    for secret in ["李先生", "13900000001", &token[4..]] {
        assert!(!log.contains(secret), "{secret} in the log: {log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_non_loopback_listener_without_authentication_refuses_to_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_doorstep"))
        .args(["serve", "--listen", "0.0.0.0:0", "--auth", "none"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("loopback") && err.contains("--auth none"),
        "{err}"
    );
}
