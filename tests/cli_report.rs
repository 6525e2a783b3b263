//! `doorstep report sla` as a job runs it: the real binary over a real SQLite file (directly, and
//! through a running service), in every format, with one-line errors that name the flag.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use chrono::{Days, FixedOffset, Utc};
use doorstep_proto::v1 as w;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;

struct Service {
    child: Child,
    addr: String,
}

impl Service {
    fn start(dir: &std::path::Path, db: &str) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_doorstep"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                db,
                "--demo",
            ])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn doorstep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_doorstep"))
        .args(args)
        .env_remove("DOORSTEP_DATABASE_URL")
        .output()
        .expect("doorstep runs")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The one line a failed run prints.
fn error_line(out: &Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_sla_in_every_format_from_the_database_and_from_a_server() {
    let dir = std::env::temp_dir().join(format!("doorstep-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("doorstep.db").display());
    let service = Service::start(&dir, &db);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", service.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut tickets = TicketServiceClient::new(channel);
    for (i, node) in [
        "lixia/jiefanglu/jiefangqiao/yard-129",
        "lixia/jiefanglu/jiefangqiao/south",
        "lixia/qianfoshan/lishanmingjun/phase-1",
    ]
    .iter()
    .enumerate()
    {
        tickets
            .create_ticket(w::CreateTicketRequest {
                source: w::Channel::Hotline12345 as i32,
                external_ref: format!("CLI-{i}"),
                caller: Some(w::Caller {
                    name: "王先生".into(),
                    phone: "13700000002".into(),
                    confidential: false,
                }),
                category: "sanitation.garbage".into(),
                content: "垃圾桶满了".into(),
                node: (*node).into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // Local dates around today in the district's zone (Asia/Shanghai, +08:00 all year).
    let today = Utc::now()
        .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive();
    let from = (today - Days::new(1)).to_string();
    let to = (today + Days::new(1)).to_string();
    let base = [
        "report",
        "sla",
        "--node",
        "lixia",
        "--from",
        &from,
        "--to",
        &to,
        "--database-url",
        &db,
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        doorstep(&args)
    };

    let table = stdout(&with(&[]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("SLA report for lixia"), "{table}");
    assert!(
        lines[1].starts_with("key") && lines[1].contains("received"),
        "{table}"
    );
    let row: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(row[..3], ["lixia", "3", "0"], "{table}");
    assert_eq!(row[4], "-", "no resolution: no on-time rate: {table}");
    // Cells are right-aligned under their header: the red-card count ends where "breached" does.
    assert!(lines[1].contains("overdue  breached"), "{table}");
    let end = lines[1].find("breached").unwrap() + "breached".len();
    let cell = lines[3][..end].split_whitespace().last();
    assert_eq!(cell, Some("0"), "no red card: {table}");

    let csv = stdout(&with(&["--format", "csv", "--by", "child-node"]));
    let mut csv_lines = csv.lines();
    let header: Vec<&str> = csv_lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), 22);
    assert_eq!(
        header[21], "breached_now",
        "new fields come last, as in the proto"
    );
    assert_eq!(header[..3], ["key", "received", "resolved"]);
    let rows: Vec<Vec<&str>> = csv_lines.map(|l| l.split(',').collect()).collect();
    let jiefanglu = rows.iter().find(|r| r[0] == "lixia/jiefanglu").expect(&csv);
    assert_eq!(jiefanglu[1], "2");
    let on_time = header.iter().position(|h| *h == "on_time_rate").unwrap();
    assert_eq!(jiefanglu[on_time], "", "NaN is empty in CSV");
    assert!(rows.iter().any(|r| r[0] == "lixia/zhiyuan" && r[1] == "0"));

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&with(&["--format", "json", "--by", "level"]))).unwrap();
    assert_eq!(json["to_inclusive"], true);
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["key"], "ROUTINE");
    assert_eq!(
        rows.iter()
            .map(|r| r["received"].as_i64().unwrap())
            .sum::<i64>(),
        3
    );
    assert!(rows[0]["on_time_rate"].is_null(), "NaN is null in JSON");
    assert_eq!(rows[0]["breached_now"], 0);

    // The same figures through the service.
    let server = format!("http://{}", service.addr);
    let mut args: Vec<&str> = base[..8].to_vec();
    args.extend_from_slice(&["--server", &server, "--format", "json", "--by", "level"]);
    let remote: serde_json::Value = serde_json::from_str(&stdout(&doorstep(&args))).unwrap();
    assert_eq!(remote["rows"], json["rows"]);

    // A chart.
    let svg_path = dir.join("weekly.svg");
    let svg_arg = svg_path.display().to_string();
    stdout(&with(&["--chart", &svg_arg]));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("3 received"), "{svg}");

    // No personal data anywhere in the output.
    for out in [&table, &csv, &svg] {
        assert!(!out.contains("王先生") && !out.contains("13700000002"));
    }

    // Errors: one line naming the flag.
    let mut bad = base.to_vec();
    bad[5] = "2026-13-01";
    assert!(error_line(&doorstep(&bad)).contains("--from"));
    let mut bad = base.to_vec();
    bad[7] = "2000-01-01";
    assert!(error_line(&doorstep(&bad)).contains("--to"));
    assert!(error_line(&with(&["--by", "period"])).contains("--period"));
    assert!(error_line(&with(&["--by", "street"])).contains("--by"));
    assert!(error_line(&with(&["--format", "xml"])).contains("--format"));
    let mut bad = base.to_vec();
    bad[3] = "lixia/nowhere";
    assert!(error_line(&doorstep(&bad)).contains("lixia/nowhere"));
    drop(service);
    let _ = std::fs::remove_dir_all(&dir);
}
