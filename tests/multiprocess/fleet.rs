//! The `doorstep` processes of the multi-process scenario and of the process tests: children of the
//! built binary, each logging to a file of its own, killed when dropped (a failed or hung test leaves
//! none behind) and their logs printed when the test panics.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_doorstep");
/// How long a child may take to start listening (a loaded 2-core machine, migrations checked first).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a signalled child may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// How much of a child's log a failure prints.
const LOG_TAIL_LINES: usize = 60;

/// Runs a one-shot `doorstep` command on the database and returns its stdout; a failure (or a hang)
/// panics with its stderr.
pub(crate) async fn run_cli(args: &[&str], database_url: &str) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(BIN)
            .args(args)
            .args(["--database-url", database_url])
            .env_remove("DOORSTEP_DATABASE_URL")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("doorstep {args:?} did not finish within 60 s"))
    .unwrap_or_else(|e| panic!("doorstep {args:?} did not run: {e}"));
    assert!(
        out.status.success(),
        "doorstep {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One running `doorstep serve` or `doorstep sla`.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) name: String,
    child: Child,
    log: PathBuf,
    /// Kept open: a child writing to a closed pipe would fail.
    _stdout: Option<Lines<BufReader<ChildStdout>>>,
    /// Where a replica listens.
    pub(crate) addr: String,
}

impl Process {
    fn spawn(name: &str, dir: &Path, args: &[&str]) -> Process {
        let log = dir.join(format!("{name}.log"));
        // Appended to: a restarted process keeps the log of the one it replaces.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let child = Command::new(BIN)
            .args(args)
            .env_remove("DOORSTEP_DATABASE_URL")
            .env("DOORSTEP_LOG", "info")
            .env("NO_COLOR", "1")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Process {
            name: name.to_owned(),
            child,
            log,
            _stdout: None,
            addr: String::new(),
        }
    }

    /// `doorstep serve --no-sla` on a fresh loopback port, once it says where it listens.
    pub(crate) async fn replica(name: &str, dir: &Path, database_url: &str) -> Process {
        Process::serve(name, dir, database_url, &["--no-sla"]).await
    }

    /// `doorstep serve` with `extra` arguments on a fresh loopback port, once it says where it
    /// listens.
    pub(crate) async fn serve(
        name: &str,
        dir: &Path,
        database_url: &str,
        extra: &[&str],
    ) -> Process {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            database_url,
        ];
        args.extend_from_slice(extra);
        let mut process = Process::spawn(name, dir, &args);
        let stdout = process.child.stdout.take().expect("a piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = match tokio::time::timeout(START_TIMEOUT, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => panic!("{name} exited before listening:\n{}", process.log_tail()),
            Ok(Err(e)) => panic!("{name}: reading its stdout: {e}"),
            Err(_) => panic!(
                "{name} did not listen within {START_TIMEOUT:?}:\n{}",
                process.log_tail()
            ),
        };
        process.addr = line
            .trim()
            .strip_prefix("doorstep listening on ")
            .unwrap_or_else(|| panic!("{name}: unexpected first line {line:?}"))
            .to_owned();
        process._stdout = Some(lines);
        process
    }

    /// `doorstep sla`: a standalone scheduler.
    pub(crate) fn scheduler(name: &str, dir: &Path, database_url: &str) -> Process {
        Process::spawn(name, dir, &["sla", "--database-url", database_url])
    }

    /// SIGKILL, as a crash or an OOM kill would: no draining, nothing flushed.
    pub(crate) async fn kill_9(mut self) {
        let _ = self.child.start_kill();
        let waited = tokio::time::timeout(EXIT_TIMEOUT, self.child.wait()).await;
        assert!(waited.is_ok(), "{} survived SIGKILL", self.name);
    }

    /// SIGTERM, as an orchestrator stops a process; `Err` (and SIGKILL) when it does not exit in time.
    pub(crate) async fn terminate(mut self) -> Result<(), String> {
        let Some(pid) = self.child.id() else {
            return Err(format!("{} had already exited", self.name));
        };
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .map_err(|e| format!("kill -TERM {pid}: {e}"))?;
        if !sent.success() {
            return Err(format!("kill -TERM {pid} ({}) failed", self.name));
        }
        match tokio::time::timeout(EXIT_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!(
                "{} exited with {status} on SIGTERM:\n{}",
                self.name,
                self.log_tail()
            )),
            Ok(Err(e)) => Err(format!("{}: {e}", self.name)),
            Err(_) => Err(format!(
                "{} did not exit within {EXIT_TIMEOUT:?} of SIGTERM",
                self.name
            )),
        }
    }

    /// The last lines of this process's log (the processes it replaced included).
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

/// The last lines of a log file.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(LOG_TAIL_LINES);
    format!(
        "--- {} (last {} lines) ---\n{}",
        path.display(),
        lines.len() - from,
        lines[from..].join("\n")
    )
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}
