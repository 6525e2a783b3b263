//! `doorstep report sla --server` against a service that requires tokens: HOST:PORT as gRPC clients
//! take it, the token from `--token` or `DOORSTEP_TOKEN`, and a one-line refusal naming the gRPC code
//! without one.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use chrono::{Days, FixedOffset, Utc};

struct Service {
    child: Child,
    addr: String,
}

impl Service {
    fn start(dir: &std::path::Path, db: &str) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_doorstep"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", db])
            .args(["--demo", "--auth", "required"])
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

/// `doorstep ARGS` with `DOORSTEP_TOKEN` set to `token`, or unset.
fn doorstep(args: &[&str], token: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_doorstep"));
    command
        .args(args)
        .env_remove("DOORSTEP_DATABASE_URL")
        .env_remove("DOORSTEP_TOKEN");
    if let Some(token) = token {
        command.env("DOORSTEP_TOKEN", token);
    }
    command.output().expect("doorstep runs")
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

#[test]
fn report_sla_from_a_server_that_requires_a_token() {
    let dir = std::env::temp_dir().join(format!("doorstep-report-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("doorstep.db").display());
    let service = Service::start(&dir, &db);
    let token = stdout(&doorstep(
        &[
            "token",
            "create",
            "--role",
            "reporter",
            "--scope",
            "lixia",
            "--expires",
            "1d",
            "--database-url",
            &db,
        ],
        None,
    ))
    .trim()
    .to_owned();

    let today = Utc::now()
        .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive();
    let from = (today - Days::new(1)).to_string();
    let to = (today + Days::new(1)).to_string();
    let report = |server: &str, extra: &[&str], env_token: Option<&str>| {
        let mut args = vec![
            "report", "sla", "--node", "lixia", "--from", &from, "--to", &to, "--format", "json",
            "--server", server,
        ];
        args.extend_from_slice(extra);
        doorstep(&args, env_token)
    };
    let rows = |out: &Output| {
        let json: serde_json::Value = serde_json::from_str(&stdout(out)).unwrap();
        assert_eq!(json["node"], "lixia");
        json["rows"].as_array().unwrap().len()
    };

    // HOST:PORT, as other gRPC clients take it, with the token from the flag or the environment.
    let addr = service.addr.as_str();
    assert_eq!(rows(&report(addr, &["--token", &token], None)), 1);
    assert_eq!(rows(&report(addr, &[], Some(&token))), 1);
    // A URL still works.
    let url = format!("http://{addr}");
    assert_eq!(rows(&report(&url, &["--token", &token], None)), 1);

    // Without a token: one line with the gRPC code and how to pass one.
    let err = error_line(&report(addr, &[], None));
    assert!(
        err.contains("UNAUTHENTICATED")
            && err.contains("--token")
            && err.contains("DOORSTEP_TOKEN"),
        "{err}"
    );
    // A wrong token: refused, and the error does not repeat it.
    let wrong = format!("dst_{}", "0".repeat(64));
    let err = error_line(&report(addr, &["--token", &wrong], None));
    assert!(err.contains("UNAUTHENTICATED"), "{err}");
    assert!(!err.contains(&wrong) && !err.contains(&token), "{err}");
    let err = error_line(&report(addr, &["--token", "dst_secret\u{1}"], None));
    assert!(err.contains("--token") && !err.contains("secret"), "{err}");

    // A value that is neither HOST:PORT nor a URL names the flag.
    let err = error_line(&report("nowhere", &["--token", &token], None));
    assert!(
        err.contains("--server") && err.contains("HOST:PORT"),
        "{err}"
    );

    drop(service);
    let _ = std::fs::remove_dir_all(&dir);
}
