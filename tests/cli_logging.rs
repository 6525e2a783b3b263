//! `doorstep serve`'s logs as a log collector reads them: JSON lines on request, no colour codes when
//! stderr is not a terminal, no caller's name or phone anywhere, and a log filter that does not parse
//! stops the command at start.

use std::io::{BufRead, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;

use doorstep_proto::v1 as w;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;

const CALLER_NAME: &str = "李先生";
const CALLER_PHONE: &str = "13900000001";

struct Service {
    child: Child,
    addr: String,
    /// Reads stderr as it comes, so a chatty filter never fills the pipe.
    stderr: Option<JoinHandle<String>>,
}

impl Service {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Service {
        let db = format!("sqlite://{}", dir.join("doorstep.db").display());
        let mut command = Command::new(env!("CARGO_BIN_EXE_doorstep"));
        command
            .args([
                "serve",
                "--demo",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
            ])
            .arg(&db)
            .current_dir(dir)
            .env_remove("NO_COLOR")
            .env_remove("DOORSTEP_LOG_FORMAT")
            .env_remove("RUST_LOG")
            .env("DOORSTEP_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("doorstep serve starts");
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut log = String::new();
            let _ = stderr.read_to_string(&mut log);
            log
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("a first line");
        let addr = line
            .trim()
            .strip_prefix("doorstep listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Service {
            child,
            addr,
            stderr: Some(stderr),
        }
    }

    /// Files one ticket with a caller's name and phone.
    async fn file_ticket(&self) {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let created = TicketServiceClient::new(channel)
            .create_ticket(w::CreateTicketRequest {
                source: w::Channel::Hotline12345 as i32,
                external_ref: "LOG-1".into(),
                caller: Some(w::Caller {
                    name: CALLER_NAME.into(),
                    phone: CALLER_PHONE.into(),
                    confidential: false,
                }),
                category: "sanitation.garbage".into(),
                content: "垃圾桶满了".into(),
                node: "lixia/qianfoshan/lishanmingjun/phase-1".into(),
                ..Default::default()
            })
            .await
            .expect("ticket filed")
            .into_inner();
        assert!(created.created);
    }

    /// Sends SIGTERM; the exit status and everything logged.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().expect("exits");
        let log = self.stderr.take().unwrap().join().expect("stderr read");
        (status, log)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("doorstep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_no_personal_data_nor_colour(log: &str) {
    for secret in [CALLER_NAME, CALLER_PHONE] {
        assert!(!log.contains(secret), "personal data in the log: {log}");
    }
    assert!(
        !log.contains('\x1b'),
        "colour codes in a piped log: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_a_line_without_personal_data_or_colour() {
    let dir = temp_dir("log-json");
    // DEBUG for the doorstep crates: the fields of their spans are in every line too.
    let service = Service::start(
        &dir,
        &[
            ("DOORSTEP_LOG_FORMAT", "json"),
            ("DOORSTEP_LOG", "info,doorstep=debug"),
        ],
    );
    service.file_ticket().await;
    let (status, log) = service.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}\n{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines.len() >= 3,
        "the service logged its start and stop: {log}"
    );
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        assert!(value.get("level").is_some(), "a level: {line}");
        assert!(value.get("timestamp").is_some(), "a timestamp: {line}");
    }
    assert!(
        log.contains("demo district loaded"),
        "the messages are there: {log}"
    );
    assert_no_personal_data_nor_colour(&log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_into_a_pipe_carry_no_colour() {
    let dir = temp_dir("log-text");
    let service = Service::start(&dir, &[]);
    service.file_ticket().await;
    let (status, log) = service.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}\n{log}");
    assert!(log.contains("demo district loaded"), "text lines: {log}");
    assert!(
        serde_json::from_str::<serde_json::Value>(log.lines().next().unwrap_or("")).is_err(),
        "text by default: {log}"
    );
    assert_no_personal_data_nor_colour(&log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_asks_for_json() {
    let dir = temp_dir("log-config");
    let config = dir.join("doorstep.toml");
    std::fs::write(&config, "log_format = \"json\"\n").unwrap();
    let config = config.display().to_string();
    let service = Service::start(&dir, &[("DOORSTEP_CONFIG", &config)]);
    let (status, log) = service.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}\n{log}");
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn serve_refused(dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_doorstep"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}", dir.join("doorstep.db").display()))
        .current_dir(dir)
        .env_remove("DOORSTEP_LOG_FORMAT")
        .env_remove("DOORSTEP_OTLP_ENDPOINT")
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("doorstep runs")
}

#[test]
fn an_invalid_log_filter_stops_the_start() {
    let dir = temp_dir("log-filter");
    let out = serve_refused(&dir, &[("DOORSTEP_LOG", "doorstep=notalevel")]);
    assert!(!out.status.success(), "refused: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains("DOORSTEP_LOG") && lines[0].contains("doorstep=notalevel"),
        "names the variable and the directive: {stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing served: {out:?}");

    let out = serve_refused(&dir, &[("DOORSTEP_LOG_FORMAT", "xml")]);
    assert!(!out.status.success(), "refused: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.trim().lines().count() == 1 && stderr.contains("DOORSTEP_LOG_FORMAT"),
        "names the variable: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(not(feature = "otel"))]
#[test]
fn an_otlp_endpoint_without_the_feature_stops_the_start() {
    let dir = temp_dir("log-otlp");
    let out = serve_refused(&dir, &[("DOORSTEP_OTLP_ENDPOINT", "http://127.0.0.1:4317")]);
    assert!(!out.status.success(), "refused: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.trim().lines().count() == 1 && stderr.contains("--features otel"),
        "says how to build it: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
