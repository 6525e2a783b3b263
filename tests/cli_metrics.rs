//! `doorstep serve --metrics-listen` as Prometheus scrapes it: the real binary, real calls, then
//! `GET /metrics` over a raw TCP socket; and the one log line each call leaves on stderr, without
//! the caller's name or phone.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::process::{Child, Command, Stdio};

use doorstep_proto::v1 as w;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;

const PHONE: &str = "13900000077";
const NAME: &str = "王女士";

struct Service {
    child: Child,
    addr: String,
    metrics: String,
}

impl Service {
    fn start(dir: &std::path::Path) -> Service {
        let db = format!("sqlite://{}", dir.join("doorstep.db").display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_doorstep"))
            .args([
                "serve",
                "--demo",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                &db,
            ])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env("DOORSTEP_LOG", "info")
            .env_remove("DOORSTEP_METRICS_LISTEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("doorstep serve starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (mut addr, mut metrics) = (None, None);
        while addr.is_none() || metrics.is_none() {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).expect("a line") > 0,
                "serve exited"
            );
            if let Some(a) = line.trim().strip_prefix("doorstep listening on ") {
                addr = Some(a.to_owned());
            } else if let Some(a) = line.trim().strip_prefix("metrics on ") {
                metrics = Some(a.to_owned());
            }
        }
        Service {
            child,
            addr: addr.unwrap(),
            metrics: metrics.unwrap(),
        }
    }

    async fn client(&self) -> TicketServiceClient<tonic::transport::Channel> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        TicketServiceClient::new(channel)
    }

    /// `GET path` as a scraper sends it; the status line and the body.
    fn get(&self, path: &str) -> (String, String) {
        let mut stream = std::net::TcpStream::connect(&self.metrics).expect("metrics listener");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/plain\r\n\r\n",
            self.metrics
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
        (head.lines().next().unwrap().to_owned(), body.to_owned())
    }

    /// Sends SIGTERM and returns everything logged.
    fn terminate(mut self) -> String {
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
        assert!(self.child.wait().expect("exits").success(), "{log}");
        log
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn ticket(external_ref: &str) -> w::CreateTicketRequest {
    w::CreateTicketRequest {
        source: w::Channel::Hotline12345 as i32,
        external_ref: external_ref.into(),
        caller: Some(w::Caller {
            name: NAME.into(),
            phone: PHONE.into(),
            confidential: false,
        }),
        category: "sanitation.garbage".into(),
        content: "垃圾桶满了".into(),
        node: "lixia/qianfoshan/lishanmingjun/phase-1".into(),
        ..Default::default()
    }
}

/// `text` without ANSI colour sequences (whether the log is coloured is not this test's concern).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of the sample named `name` whose labels include every one of `labels`.
fn sample(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let series = l.rsplit_once(' ').map_or("", |(s, _)| s);
            let bare = series.split('{').next().unwrap_or("");
            bare == name && labels.iter().all(|label| series.contains(label))
        })
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_by_method_and_code_and_each_call_logs_one_line() {
    let dir = std::env::temp_dir().join(format!("doorstep-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let service = Service::start(&dir);
    let mut client = service.client().await;

    let created = client
        .create_ticket(ticket("MT-1"))
        .await
        .expect("created")
        .into_inner()
        .ticket
        .unwrap();
    let mut invalid = ticket("MT-2");
    invalid.category = String::new();
    let refused = client.create_ticket(invalid).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let missing = client
        .get_ticket(w::GetTicketRequest {
            id: "no-such-ticket".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let mut watch = client
        .watch_events(w::WatchEventsRequest::default())
        .await
        .expect("a watch")
        .into_inner();

    let (status, body) = service.get("/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let create = r#"method="doorstep.v1.TicketService/CreateTicket""#;
    let get = r#"method="doorstep.v1.TicketService/GetTicket""#;
    for (labels, want) in [
        ([create, r#"code="OK""#], 1.0),
        ([create, r#"code="INVALID_ARGUMENT""#], 1.0),
        ([get, r#"code="NOT_FOUND""#], 1.0),
    ] {
        assert_eq!(
            sample(&body, "doorstep_rpc_requests_total", &labels),
            Some(want),
            "{labels:?} in\n{body}"
        );
    }
    assert!(
        body.contains("# TYPE doorstep_rpc_duration_seconds histogram"),
        "{body}"
    );
    assert_eq!(
        sample(&body, "doorstep_rpc_duration_seconds_count", &[create]),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "doorstep_rpc_duration_seconds_bucket",
            &[create, r#"le="+Inf""#]
        ),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "doorstep_watch_streams", &[]),
        Some(1.0),
        "{body}"
    );
    assert!(!body.contains(PHONE) && !body.contains(NAME));
    // The sampled gauges: their first sample is taken when the listener starts, in the background.
    let sampled = |body: &str| {
        sample(body, "doorstep_sla_due_timers", &[]).is_some()
            && sample(body, "doorstep_report_projector_lag_events", &[]).is_some()
            && sample(body, "doorstep_tickets_open", &[r#"level="ROUTINE""#]).is_some()
            && sample(body, "doorstep_db_pool_connections", &[r#"state="idle""#]).is_some()
    };
    let mut body = body;
    for _ in 0..100 {
        if sampled(&body) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        body = service.get("/metrics").1;
    }
    assert!(sampled(&body), "{body}");

    // The watch ends; its stream is no longer counted.
    drop(watch.message());
    drop(watch);
    drop(client);
    let mut closed = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let (_, body) = service.get("/metrics");
        if sample(&body, "doorstep_watch_streams", &[]) == Some(0.0) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the watch stream gauge went back to 0");

    let (status, _) = service.get("/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    let log = plain(&service.terminate());
    let rpc_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("doorstep_server::observe") && l.contains(" rpc "))
        .collect();
    let of = |method: &str| -> Vec<&str> {
        rpc_lines
            .iter()
            .copied()
            .filter(|l| l.contains(method))
            .collect()
    };
    let creates = of("TicketService/CreateTicket");
    assert_eq!(creates.len(), 2, "one line per call:\n{log}");
    assert!(
        creates
            .iter()
            .any(|l| l.contains("OK") && l.contains(&created.id) && l.contains("local")),
        "the created ticket's id and the principal:\n{log}"
    );
    assert!(
        creates.iter().any(|l| l.contains("INVALID_ARGUMENT")),
        "{log}"
    );
    let gets = of("TicketService/GetTicket");
    assert_eq!(gets.len(), 1, "{log}");
    assert!(
        gets[0].contains("NOT_FOUND") && gets[0].contains("no-such-ticket"),
        "{log}"
    );
    let watches = of("TicketService/WatchEvents");
    assert_eq!(watches.len(), 1, "a stream logs once, when it ends:\n{log}");
    assert!(
        rpc_lines.iter().all(|l| l.contains("ms=")),
        "every line has its duration:\n{log}"
    );
    assert!(
        !log.contains(PHONE) && !log.contains(NAME),
        "no caller's phone or name in the log:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_scheduler_alone_serves_its_metrics_too() {
    let dir = std::env::temp_dir().join(format!("doorstep-sla-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("doorstep.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_doorstep"))
        .args(["sla", "--database-url", &db])
        .env("DOORSTEP_METRICS_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("doorstep sla starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let service = Service {
        addr: String::new(),
        metrics: line
            .trim()
            .strip_prefix("metrics on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned(),
        child,
    };
    let mut body = String::new();
    for _ in 0..100 {
        body = service.get("/metrics").1;
        if sample(&body, "doorstep_sla_due_timers", &[]).is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        sample(&body, "doorstep_sla_due_timers", &[]),
        Some(0.0),
        "{body}"
    );
    service.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}
