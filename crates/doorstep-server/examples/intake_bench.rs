//! End-to-end intake benchmark: a real `doorstep serve` process on a fresh database, driven over
//! loopback by tonic clients, with the baselines of the same run beside it.
//!
//! ```text
//! cargo build --release -p doorstep-cli
//! cargo run --release -p doorstep-server --example intake_bench -- --backend sqlite
//! cargo run --release -p doorstep-server --example intake_bench -- --backend postgres \
//!     [--server-bin target/release/doorstep] [--seconds 5] [--clients 1,16,64,256] \
//!     [--rates 1000,2000,5000] [--watchers 1000] [--rss]
//! ```
//!
//! What runs, in order:
//! - **The database's one-row-commit rate** with 1 and 16 connections, before the server starts:
//!   on PostgreSQL `pgbench` on a database of its own in the same throwaway cluster (durable
//!   defaults: fsync on, `synchronous_commit=on`), a script of one one-row `INSERT` per transaction;
//!   on SQLite a file of its own in WAL mode with `synchronous=FULL` (the server's defaults), each
//!   connection inserting one row per transaction.
//! - **The server**: `--server-bin serve --listen 127.0.0.1:PORT --database-url URL --demo` (flags
//!   every build since 79b5a60 has; no authentication on loopback), on a free port, waited for with
//!   the gRPC health check; a warm-up files `--warmup` tickets whose ids GetTicket reads later.
//! - **Closed loop** at each of `--clients` concurrent clients, each sending its next call when the
//!   previous one is answered, for `--seconds`: GetNode (answered from the server's memory, the
//!   baseline), GetTicket and CreateTicket. Calls/s counts the calls answered within the window.
//!   Each client has a connection of its own by default (`--clients-per-connection` shares them):
//!   a client stands for an independent caller, and many clients multiplexed on one HTTP/2
//!   connection would measure that connection's single framing task on both ends, not the server.
//! - **Open loop** CreateTicket at each of `--rates` offered calls/s, spread round robin over
//!   `--connections` connections: a pacer starts every call at its scheduled instant (in its own
//!   task, so a slow reply never delays the next send) and a call's latency is counted from the
//!   instant it was *meant* to be sent, so a stalled server shows in the latencies instead of
//!   slowing the load (no coordinated omission). At most `--max-in-flight` calls are outstanding;
//!   when that bound is hit the pacer waits (the lateness still counts) and the table says how often.
//!   The pacer sleeps on tokio's timer (1 ms granularity), so latencies include up to about a
//!   millisecond of pacing slack; the "pacer late" column shows the worst. The achieved rate is the
//!   calls answered over the time from the first scheduled send to the last answer, so a server that
//!   falls behind shows a lower rate and the phase lasts until its backlog is answered (at most
//!   10 minutes; what is still unanswered then counts as errors).
//! - **Watchers** (`--watchers N`): N WatchEvents streams on `--watch-node` (after_seq 0, i.e. from
//!   now on), one connection each unless `--streams-per-connection` says otherwise, opened before a
//!   second round of intake (open loop at each rate, closed loop CreateTicket at `--watch-clients`);
//!   delivery lag is the instant an event is received minus its `at` timestamp (both wall clock, one
//!   machine), over all streams. The intake figures with and without streams stand side by side.
//! - `--rss`: the server's resident memory (VmRSS) at idle after the warm-up and at the end, and its
//!   peak (VmHWM).
//!
//! Every phase also reports the CPU the server process and this load generator used (in cores, from
//! /proc): on a small machine the two compete, and a saturated generator makes the server look slow.
//! The output is markdown tables, ready to paste.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use doorstep_proto::v1 as w;
use doorstep_proto::v1::admin_service_client::AdminServiceClient;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;
use doorstep_store::testing::{ClusterOptions, PgCluster, TempDir, find_pg_bindir};
use tokio::sync::Semaphore;
use tonic::transport::{Channel, Endpoint};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

const USAGE: &str = "\
usage: intake_bench --backend sqlite|postgres [options]
  --server-bin PATH             doorstep binary to serve [target/release/doorstep]
  --seconds S                   length of each closed-loop and open-loop phase [5]
  --clients LIST                closed-loop concurrencies [1,16,64,256]
  --clients-per-connection N    closed-loop clients sharing one HTTP/2 connection [1]
  --rates LIST                  open-loop offered CreateTicket calls/s [1000,2000,5000]
  --connections N               connections the open loop spreads its calls over [16]
  --max-in-flight N             bound on outstanding open-loop calls [10000]
  --warmup N                    tickets filed before measuring (read by GetTicket) [1000]
  --watchers N                  WatchEvents streams during a second intake round [0]
  --watch-node CODE             the node the streams watch [lixia]
  --streams-per-connection N    streams sharing one connection [1]
  --watch-clients N             closed-loop CreateTicket clients in the watched round [64]
  --rss                         report the server's resident memory
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Debug)]
struct Args {
    backend: Backend,
    server_bin: PathBuf,
    seconds: f64,
    clients: Vec<usize>,
    clients_per_connection: usize,
    rates: Vec<f64>,
    connections: usize,
    max_in_flight: usize,
    warmup: usize,
    watchers: usize,
    watch_node: String,
    streams_per_connection: usize,
    watch_clients: usize,
    rss: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        backend: Backend::Sqlite,
        server_bin: PathBuf::from("target/release/doorstep"),
        seconds: 5.0,
        clients: vec![1, 16, 64, 256],
        clients_per_connection: 1,
        rates: vec![1000.0, 2000.0, 5000.0],
        connections: 16,
        max_in_flight: 10_000,
        warmup: 1000,
        watchers: 0,
        watch_node: "lixia".into(),
        streams_per_connection: 1,
        watch_clients: 64,
        rss: false,
    };
    let mut backend = None;
    let mut it = std::env::args().skip(1);
    fn list<T: std::str::FromStr>(flag: &str, v: &str) -> Result<Vec<T>> {
        v.split(',')
            .map(|x| {
                x.trim()
                    .parse()
                    .map_err(|_| format!("{flag}: bad value {x:?}").into())
            })
            .collect()
    }
    fn one<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T> {
        v.parse()
            .map_err(|_| format!("{flag}: bad value {v:?}").into())
    }
    while let Some(flag) = it.next() {
        if flag == "--rss" {
            args.rss = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let v = value.as_str();
        match flag.as_str() {
            "--backend" => {
                backend = Some(match v {
                    "sqlite" => Backend::Sqlite,
                    "postgres" => Backend::Postgres,
                    _ => return Err(format!("--backend: sqlite or postgres, not {v:?}").into()),
                })
            }
            "--server-bin" => args.server_bin = PathBuf::from(v),
            "--seconds" => args.seconds = one(&flag, v)?,
            "--clients" => args.clients = list(&flag, v)?,
            "--clients-per-connection" => args.clients_per_connection = one(&flag, v)?,
            "--rates" => args.rates = list(&flag, v)?,
            "--connections" => args.connections = one(&flag, v)?,
            "--max-in-flight" => args.max_in_flight = one(&flag, v)?,
            "--warmup" => args.warmup = one(&flag, v)?,
            "--watchers" => args.watchers = one(&flag, v)?,
            "--watch-node" => args.watch_node = v.to_owned(),
            "--streams-per-connection" => args.streams_per_connection = one(&flag, v)?,
            "--watch-clients" => args.watch_clients = one(&flag, v)?,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}").into()),
        }
    }
    args.backend = backend.ok_or_else(|| format!("--backend is required\n{USAGE}"))?;
    let positive = [
        ("--clients-per-connection", args.clients_per_connection),
        ("--connections", args.connections),
        ("--max-in-flight", args.max_in_flight),
        ("--streams-per-connection", args.streams_per_connection),
        ("--warmup", args.warmup),
    ];
    for (flag, n) in positive {
        if n == 0 {
            return Err(format!("{flag} must be at least 1").into());
        }
    }
    if args.clients.contains(&0) || args.rates.iter().any(|r| *r <= 0.0) || args.seconds <= 0.0 {
        return Err("--clients, --rates and --seconds must be positive".into());
    }
    Ok(args)
}

// ---------------------------------------------------------------------------------------------
// Latency histogram: log-linear buckets (128 per power of two, under 1% error), in microseconds.

const SUB_BITS: u32 = 7;

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    n: u64,
    max: u64,
}

fn bucket(v: u64) -> usize {
    if v < 1 << SUB_BITS {
        v as usize
    } else {
        let shift = 63 - v.leading_zeros() - SUB_BITS;
        (((shift + 1) as usize) << SUB_BITS) + ((v >> shift) as usize - (1 << SUB_BITS))
    }
}

fn bucket_high(i: usize) -> u64 {
    if i < 1 << SUB_BITS {
        i as u64
    } else {
        let shift = (i >> SUB_BITS) - 1;
        let mantissa = ((i & ((1 << SUB_BITS) - 1)) + (1 << SUB_BITS)) as u64;
        ((mantissa + 1) << shift) - 1
    }
}

impl Histogram {
    fn record(&mut self, d: Duration) {
        let v = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = bucket(v);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.n += 1;
        self.max = self.max.max(v);
    }

    fn merge(&mut self, other: &Histogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.max = self.max.max(other.max);
    }

    /// The quantile `q` in milliseconds (the bucket's upper end, never above the maximum).
    fn quantile_ms(&self, q: f64) -> f64 {
        if self.n == 0 {
            return f64::NAN;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_high(i).min(self.max) as f64 / 1000.0;
            }
        }
        self.max_ms()
    }

    fn max_ms(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            self.max as f64 / 1000.0
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CPU and memory of a process, from /proc.

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// User plus system CPU seconds of `pid` ("self" for this process).
fn cpu_seconds(pid: &str, ticks: f64) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // The command name may hold spaces; the fields after it are fixed (utime is field 14).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (field(11), field(12)) {
        (Some(u), Some(s)) => (u + s) / ticks,
        _ => f64::NAN,
    }
}

/// A `/proc/PID/status` line's value in MiB (e.g. `VmRSS`, `VmHWM`).
fn memory_mib(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// CPU used by the server and by this process over a phase, in cores.
struct CpuMeter {
    server_pid: String,
    ticks: f64,
    started: Instant,
    server: f64,
    client: f64,
}

impl CpuMeter {
    fn start(server_pid: u32, ticks: f64) -> CpuMeter {
        let server_pid = server_pid.to_string();
        CpuMeter {
            server: cpu_seconds(&server_pid, ticks),
            client: cpu_seconds("self", ticks),
            server_pid,
            ticks,
            started: Instant::now(),
        }
    }

    fn stop(&self) -> (f64, f64) {
        let wall = self.started.elapsed().as_secs_f64();
        (
            (cpu_seconds(&self.server_pid, self.ticks) - self.server) / wall,
            (cpu_seconds("self", self.ticks) - self.client) / wall,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The server process.

struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Server {
    async fn start(bin: &Path, database_url: &str, dir: &Path) -> Result<Server> {
        if !bin.is_file() {
            return Err(format!(
                "server binary {} not found: run `cargo build --release -p doorstep-cli` \
                 (or pass --server-bin PATH)",
                bin.display()
            )
            .into());
        }
        // A free loopback port: bound here, released, and handed to the server.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let log = dir.join("server.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .args(["serve", "--listen", &addr, "--database-url", database_url])
            .arg("--demo")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut server = Server { child, addr, log };
        server.wait_until_serving().await?;
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    async fn wait_until_serving(&mut self) -> Result<()> {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!(
                    "the server exited ({status}) before serving; its log:\n{}",
                    self.log_tail()
                )
                .into());
            }
            if let Ok(channel) = endpoint(&self.addr)?.connect().await {
                let reply = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if reply.is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the server did not report SERVING within 120 s; its log:\n{}",
                    self.log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then wait (SIGKILL after 30 s); says how it ended.
    fn stop(&mut self) -> Result<String> {
        if let Some(status) = self.child.try_wait()? {
            return Err(format!(
                "the server had already exited ({status}); its log:\n{}",
                self.log_tail()
            )
            .into());
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.child.try_wait()? {
                return Ok(format!(
                    "stopped by SIGTERM in {:.2} s ({status})",
                    asked.elapsed().as_secs_f64()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok("did not stop within 30 s of SIGTERM: killed".into())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A panic or an early error must not leave a server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn endpoint(addr: &str) -> Result<Endpoint> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true))
}

async fn connections(addr: &str, n: usize) -> Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        channels.push(endpoint(addr)?.connect().await?);
    }
    Ok(channels)
}

// ---------------------------------------------------------------------------------------------
// The calls.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    GetNode,
    GetTicket,
    CreateTicket,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::GetNode => "GetNode",
            Call::GetTicket => "GetTicket",
            Call::CreateTicket => "CreateTicket",
        }
    }
}

/// Matters the demo district's catalogue dispatches at once, where they happen.
const INTAKE: &[(&str, &str, &str)] = &[
    (
        "lighting.stairwell",
        "lixia/jiefanglu/jiefangqiao/yard-129",
        "3号楼楼道灯不亮",
    ),
    (
        "sanitation.garbage",
        "lixia/jiefanglu/jiefangqiao/south",
        "小区垃圾两天没有清运",
    ),
    (
        "water.supply",
        "lixia/qianfoshan/lishanmingjun/phase-1",
        "二次供水水压不足，高层停水",
    ),
    (
        "greening.pruning",
        "lixia/qianfoshan/lishanmingjun/phase-2",
        "楼前树枝遮挡窗户，请修剪",
    ),
    (
        "noise.disturbance",
        "lixia/zhiyuan/jilian/refinery-dorm",
        "夜间楼上装修噪音扰民",
    ),
    (
        "power.outage",
        "lixia/zhiyuan/jilian/gongyenan-88",
        "单元停电，已持续两小时",
    ),
    (
        "lighting.stairwell",
        "lixia/jianzhuxincun/hepingxincun/east",
        "楼道声控灯损坏",
    ),
    (
        "sanitation.garbage",
        "lixia/jianzhuxincun/hepingxincun/west",
        "垃圾桶满溢，气味很大",
    ),
    (
        "noise.disturbance",
        "lixia/jiefanglu/jiefangqiao/shops",
        "沿街商铺音响声音过大",
    ),
    (
        "water.supply",
        "lixia/dianliuxincun/dianliu-1/area-1",
        "自来水发黄，有异味",
    ),
];

/// What the calls need: unique work order numbers and the ids of warm-up tickets.
struct Workload {
    run: u64,
    next_ref: AtomicU64,
    ticket_ids: Mutex<Vec<String>>,
}

impl Workload {
    fn create_request(&self) -> w::CreateTicketRequest {
        let n = self.next_ref.fetch_add(1, Ordering::Relaxed);
        let (category, node, content) = INTAKE[n as usize % INTAKE.len()];
        w::CreateTicketRequest {
            source: w::Channel::Hotline12345 as i32,
            external_ref: format!("SD{}-{n:08}", self.run),
            caller: Some(w::Caller {
                name: "张女士".into(),
                phone: format!("138{:08}", n % 100_000_000),
                confidential: false,
            }),
            category: category.into(),
            content: content.into(),
            address: "历下区解放路129号院3号楼2单元".into(),
            node: node.into(),
            ..Default::default()
        }
    }

    fn ticket_id(&self, n: usize) -> String {
        let ids = self.ticket_ids.lock().unwrap();
        ids[n % ids.len()].clone()
    }
}

/// One call on `channel`; `Err` is the status (or why the reply is not what it should be).
async fn call(channel: &Channel, call: Call, workload: &Workload, n: usize) -> Result<(), String> {
    match call {
        Call::GetNode => AdminServiceClient::new(channel.clone())
            .get_node(w::GetNodeRequest {
                code: INTAKE[n % INTAKE.len()].1.into(),
            })
            .await
            .map(drop)
            .map_err(|s| format!("{:?}: {}", s.code(), s.message())),
        Call::GetTicket => TicketServiceClient::new(channel.clone())
            .get_ticket(w::GetTicketRequest {
                id: workload.ticket_id(n),
            })
            .await
            .map(drop)
            .map_err(|s| format!("{:?}: {}", s.code(), s.message())),
        Call::CreateTicket => {
            let reply = TicketServiceClient::new(channel.clone())
                .create_ticket(workload.create_request())
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
                .into_inner();
            if reply.created {
                Ok(())
            } else {
                Err("created = false for a new work order number".into())
            }
        }
    }
}

/// Files `count` tickets (16 at a time) and keeps their ids for GetTicket.
async fn warm_up(channel: &Channel, workload: &Arc<Workload>, count: usize) -> Result<()> {
    let mut tasks = Vec::new();
    for k in 0..16 {
        let per_task = count / 16 + usize::from(k < count % 16);
        let channel = channel.clone();
        let workload = Arc::clone(workload);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut client = TicketServiceClient::new(channel);
            for _ in 0..per_task {
                let reply = client
                    .create_ticket(workload.create_request())
                    .await
                    .map_err(|s| format!("warm-up CreateTicket: {:?}: {}", s.code(), s.message()))?
                    .into_inner();
                ids.push(reply.ticket.map(|t| t.id).unwrap_or_default());
            }
            Ok::<_, String>(ids)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    *workload.ticket_ids.lock().unwrap() = all;
    Ok(())
}

/// What a phase measured.
#[derive(Debug, Default)]
struct Outcome {
    answered: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Histogram,
    calls_per_second: f64,
    server_cpu: f64,
    client_cpu: f64,
    /// Open loop: the pacer's worst lateness (ms) and how often the in-flight bound held it.
    pacer_late_ms: f64,
    bound_hits: u64,
}

impl Outcome {
    fn absorb(&mut self, other: Outcome) {
        self.answered += other.answered;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency.merge(&other.latency);
    }
}

/// What every phase drives the server with.
struct Load {
    /// The closed loop's connections, `per_connection` clients on each.
    closed_channels: Vec<Channel>,
    per_connection: usize,
    /// The open loop's connections, used round robin.
    open_channels: Vec<Channel>,
    max_in_flight: usize,
    seconds: f64,
    workload: Arc<Workload>,
    server_pid: u32,
    ticks: f64,
}

/// `clients` clients, each calling as soon as the previous call is answered, for `seconds`.
async fn closed_loop(load: &Load, which: Call, clients: usize) -> Outcome {
    let (channels, per_connection, seconds, workload) = (
        &load.closed_channels,
        load.per_connection,
        load.seconds,
        &load.workload,
    );
    let meter = CpuMeter::start(load.server_pid, load.ticks);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let channel = channels[client / per_connection].clone();
        let workload = Arc::clone(workload);
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut n = client * 7919;
            loop {
                let sent = Instant::now();
                if sent >= deadline {
                    break;
                }
                let result = call(&channel, which, &workload, n).await;
                let answered = Instant::now();
                n += 1;
                match result {
                    Ok(()) => {
                        outcome.latency.record(answered - sent);
                        if answered <= deadline {
                            outcome.answered += 1;
                        }
                    }
                    Err(e) => {
                        outcome.errors += 1;
                        outcome.first_error.get_or_insert(e);
                    }
                }
            }
            outcome
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        total.absorb(task.await.unwrap_or_default());
    }
    (total.server_cpu, total.client_cpu) = meter.stop();
    total.calls_per_second = total.answered as f64 / seconds;
    total
}

/// How long an open-loop phase waits for its backlog to be answered.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);

/// CreateTicket offered at `rate` calls/s for `seconds`, latency from each call's intended instant.
async fn open_loop(load: &Load, rate: f64) -> Outcome {
    let (channels, seconds, max_in_flight, workload) = (
        &load.open_channels,
        load.seconds,
        load.max_in_flight,
        &load.workload,
    );
    let meter = CpuMeter::start(load.server_pid, load.ticks);
    let total_calls = (rate * seconds).round() as u64;
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    let shared = Arc::new(Mutex::new((Outcome::default(), None::<Instant>)));
    let start = Instant::now() + Duration::from_millis(5);
    let mut pacer_late = Duration::ZERO;
    let mut bound_hits = 0;
    for i in 0..total_calls {
        let intended = start + Duration::from_secs_f64(i as f64 / rate);
        if intended > Instant::now() {
            tokio::time::sleep_until(intended.into()).await;
        }
        let permit = match Arc::clone(&in_flight).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                bound_hits += 1;
                Arc::clone(&in_flight)
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        pacer_late = pacer_late.max(Instant::now().saturating_duration_since(intended));
        let channel = channels[i as usize % channels.len()].clone();
        let workload = Arc::clone(workload);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let result = call(&channel, Call::CreateTicket, &workload, i as usize).await;
            let answered = Instant::now();
            let mut guard = shared.lock().unwrap();
            let (outcome, last) = &mut *guard;
            match result {
                Ok(()) => {
                    outcome
                        .latency
                        .record(answered.saturating_duration_since(intended));
                    outcome.answered += 1;
                    *last = Some(last.map_or(answered, |l| l.max(answered)));
                }
                Err(e) => {
                    outcome.errors += 1;
                    outcome.first_error.get_or_insert(e);
                }
            }
            drop(permit);
        });
    }
    // Every permit back: every call answered. A backlog still unanswered after the drain limit
    // counts as errors (and its calls would overlap the next phase).
    let all = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(DRAIN_LIMIT, in_flight.acquire_many(all)).await;
    let (server_cpu, client_cpu) = meter.stop();
    let mut guard = shared.lock().unwrap();
    let (outcome, last) = &mut *guard;
    let mut outcome = std::mem::take(outcome);
    if drained.is_err() {
        let unanswered = (max_in_flight - in_flight.available_permits()) as u64;
        outcome.errors += unanswered;
        outcome.first_error = Some(format!(
            "{unanswered} calls unanswered {} s after the last send",
            DRAIN_LIMIT.as_secs()
        ));
    }
    let span = last.map_or(seconds, |l| {
        l.saturating_duration_since(start)
            .as_secs_f64()
            .max(seconds)
    });
    outcome.calls_per_second = outcome.answered as f64 / span;
    outcome.server_cpu = server_cpu;
    outcome.client_cpu = client_cpu;
    outcome.pacer_late_ms = pacer_late.as_secs_f64() * 1000.0;
    outcome.bound_hits = bound_hits;
    outcome
}

// ---------------------------------------------------------------------------------------------
// Watchers.

#[derive(Debug, Default)]
struct WatchOutcome {
    lag: Histogram,
    events: u64,
    fewest: u64,
    most: u64,
    ended: Vec<String>,
}

struct Watchers {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<(Histogram, u64, Option<String>)>>,
}

/// Opens `n` streams and returns once every one is established (its response headers received).
async fn open_watchers(
    addr: &str,
    n: usize,
    per_connection: usize,
    node: &str,
) -> Result<Watchers> {
    let channels = connections(addr, n.div_ceil(per_connection)).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<(), String>>(n.max(1));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let mut client = TicketServiceClient::new(channels[i / per_connection].clone());
        let mut stopped = stopped.clone();
        let ready = ready_tx.clone();
        let node = node.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut lag = Histogram::default();
            let mut events = 0;
            let opened = client
                .watch_events(w::WatchEventsRequest { node, after_seq: 0 })
                .await;
            let mut stream = match opened {
                Ok(reply) => {
                    let _ = ready.send(Ok(())).await;
                    reply.into_inner()
                }
                Err(s) => {
                    let why = format!("{:?}: {}", s.code(), s.message());
                    let _ = ready.send(Err(why.clone())).await;
                    return (lag, events, Some(why));
                }
            };
            drop(ready);
            let ended = loop {
                tokio::select! {
                    message = stream.message() => match message {
                        Ok(Some(event)) => {
                            let now = SystemTime::now();
                            if let Some(at) = event.at {
                                let at = SystemTime::UNIX_EPOCH
                                    + Duration::new(at.seconds.max(0) as u64, at.nanos.max(0) as u32);
                                lag.record(now.duration_since(at).unwrap_or_default());
                            }
                            events += 1;
                        }
                        Ok(None) => break Some("ended by the server (OK)".to_owned()),
                        Err(s) => break Some(format!("{:?}: {}", s.code(), s.message())),
                    },
                    _ = stopped.changed() => break None,
                }
            };
            (lag, events, ended)
        }));
    }
    drop(ready_tx);
    for _ in 0..n {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(why)) => {
                return Err(format!("a WatchEvents stream did not open: {why}").into());
            }
            None => break,
        }
    }
    Ok(Watchers { stop, tasks })
}

impl Watchers {
    async fn close(self) -> WatchOutcome {
        let _ = self.stop.send(true);
        let mut outcome = WatchOutcome {
            fewest: u64::MAX,
            ..WatchOutcome::default()
        };
        for task in self.tasks {
            if let Ok((lag, events, ended)) = task.await {
                outcome.lag.merge(&lag);
                outcome.events += events;
                outcome.fewest = outcome.fewest.min(events);
                outcome.most = outcome.most.max(events);
                outcome.ended.extend(ended);
            }
        }
        if outcome.fewest == u64::MAX {
            outcome.fewest = 0;
        }
        outcome
    }
}

// ---------------------------------------------------------------------------------------------
// The database baselines: one-row commits with 1 and 16 connections.

const BASELINE_CONNECTIONS: [usize; 2] = [1, 16];
const BASELINE_PAYLOAD: &str =
    "张女士 13800000000 楼道灯不亮 解放路129号院3号楼 lighting.stairwell";

async fn sqlite_commit_rate(path: &Path, connections: usize, seconds: f64) -> Result<f64> {
    use sqlx::Connection as _;
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous,
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30));
    let mut setup = SqliteConnection::connect_with(&options).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS one_row_commits \
         (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, payload TEXT NOT NULL)",
    )
    .execute(&mut setup)
    .await?;
    setup.close().await?;
    let mut conns = Vec::new();
    for _ in 0..connections {
        conns.push(SqliteConnection::connect_with(&options).await?);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                let mut committed = 0u64;
                while Instant::now() < deadline {
                    // One statement outside a transaction: its own transaction and commit.
                    sqlx::query("INSERT INTO one_row_commits (at, payload) VALUES (?, ?)")
                        .bind(chrono::Utc::now().timestamp_millis())
                        .bind(BASELINE_PAYLOAD)
                        .execute(&mut conn)
                        .await?;
                    if Instant::now() <= deadline {
                        committed += 1;
                    }
                }
                let _ = conn.close().await;
                Ok::<_, sqlx::Error>(committed)
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / seconds)
}

fn find_pgbench() -> Result<PathBuf> {
    let bindir = find_pg_bindir().ok_or("PostgreSQL is not installed (no initdb found)")?;
    let pgbench = bindir.join("pgbench");
    if pgbench.is_file() {
        Ok(pgbench)
    } else {
        Err(format!("no pgbench in {}", bindir.display()).into())
    }
}

/// pgbench on `database_url`'s cluster: transactions/s of one one-row INSERT each.
async fn pgbench_commit_rate(
    pgbench: &Path,
    database_url: &str,
    dir: &Path,
    connections: usize,
    seconds: f64,
) -> Result<f64> {
    use sqlx::{Connection as _, Executor as _};
    let mut conn = sqlx::PgConnection::connect(database_url).await?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS one_row_commits \
         (id bigserial PRIMARY KEY, at timestamptz NOT NULL, payload text NOT NULL)",
    )
    .await?;
    conn.close().await?;
    let script = dir.join("one_row_commit.sql");
    std::fs::write(
        &script,
        format!(
            "INSERT INTO one_row_commits (at, payload) VALUES (now(), '{BASELINE_PAYLOAD}');\n"
        ),
    )?;
    // The cluster's URL is postgres://postgres@localhost/NAME?host=SOCKET_DIR.
    let (base, socket_dir) = database_url
        .split_once("?host=")
        .ok_or("unexpected cluster URL")?;
    let name = base.rsplit('/').next().unwrap_or("postgres");
    let threads = connections.min(std::thread::available_parallelism().map_or(2, |n| n.get()));
    let out = Command::new(pgbench)
        .args(["-n", "-h", socket_dir, "-U", "postgres"])
        .args(["-c", &connections.to_string(), "-j", &threads.to_string()])
        .args(["-T", &(seconds.ceil().max(1.0) as u64).to_string()])
        .arg("-f")
        .arg(&script)
        .arg(name)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", pgbench.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "pgbench failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no tps line in pgbench's output:\n{stdout}").into())
}

// ---------------------------------------------------------------------------------------------
// Output.

fn machine_line() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_gib = memory_total_gib();
    format!("`nproc` = {nproc}, CPU \"{cpu}\", {mem_gib:.0} GiB")
}

fn memory_total_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0 / 1024.0)
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "–".into()
    }
}

fn errors(o: &Outcome) -> String {
    match &o.first_error {
        Some(e) if o.errors > 0 => format!("{} ({})", o.errors, e.replace('|', "/")),
        _ => o.errors.to_string(),
    }
}

fn progress(line: impl AsRef<str>) {
    eprintln!("intake_bench: {}", line.as_ref());
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("intake_bench: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let args = parse_args()?;
    let ticks = clock_ticks();
    let dir = TempDir::new("doorstep-intake-bench")?;
    let backend = args.backend;
    let server_bin = std::fs::canonicalize(&args.server_bin).map_err(|_| {
        format!(
            "server binary {} not found: run `cargo build --release -p doorstep-cli` \
             (or pass --server-bin PATH)",
            args.server_bin.display()
        )
    })?;

    // The database and its own baseline, before the server runs.
    let mut cluster = None;
    let mut baseline = Vec::new();
    let database_url = match backend {
        Backend::Sqlite => {
            for c in BASELINE_CONNECTIONS {
                let path = dir.path().join(format!("one-row-commits-{c}.db"));
                let rate = sqlite_commit_rate(&path, c, args.seconds).await?;
                progress(format!(
                    "SQLite one-row commits, {c} connection(s): {rate:.0}/s"
                ));
                baseline.push((c, rate));
            }
            format!("sqlite://{}", dir.path().join("doorstep.db").display())
        }
        Backend::Postgres => {
            let bindir = find_pg_bindir().ok_or(
                "PostgreSQL is not installed (no initdb: tried $DOORSTEP_PG_BINDIR, \
                 pg_config --bindir, /usr/lib/postgresql/*/bin, PATH)",
            )?;
            let pgbench = find_pgbench()?;
            let started = PgCluster::start(&bindir, ClusterOptions { durable: true })
                .map_err(|e| format!("PostgreSQL from {} did not start: {e}", bindir.display()))?;
            let bench_url = started.create_database("one_row_commits").await?;
            for c in BASELINE_CONNECTIONS {
                let rate =
                    pgbench_commit_rate(&pgbench, &bench_url, dir.path(), c, args.seconds).await?;
                progress(format!("pgbench one-row commits, {c} clients: {rate:.0}/s"));
                baseline.push((c, rate));
            }
            let url = started.create_database("intake").await?;
            cluster = Some(started);
            url
        }
    };
    let baseline_16 = baseline.last().map_or(f64::NAN, |b| b.1);

    let mut server = Server::start(&server_bin, &database_url, dir.path()).await?;
    let pid = server.pid();
    progress(format!(
        "server {} serving on {}",
        server_bin.display(),
        server.addr
    ));

    let workload = Arc::new(Workload {
        run: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        next_ref: AtomicU64::new(0),
        ticket_ids: Mutex::new(Vec::new()),
    });
    let warm = endpoint(&server.addr)?.connect().await?;
    let warmed = Instant::now();
    warm_up(&warm, &workload, args.warmup).await?;
    progress(format!(
        "warm-up: {} tickets filed in {:.1} s",
        args.warmup,
        warmed.elapsed().as_secs_f64()
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = memory_mib(pid, "VmRSS");

    let most_clients = args.clients.iter().copied().max().unwrap_or(1);
    let closed_channels = connections(
        &server.addr,
        most_clients
            .max(args.watch_clients)
            .div_ceil(args.clients_per_connection),
    )
    .await?;
    let open_channels = connections(&server.addr, args.connections).await?;
    let load = Load {
        closed_channels,
        per_connection: args.clients_per_connection,
        open_channels,
        max_in_flight: args.max_in_flight,
        seconds: args.seconds,
        workload: Arc::clone(&workload),
        server_pid: pid,
        ticks,
    };

    let mut closed = Vec::new();
    for &clients in &args.clients {
        for which in [Call::GetNode, Call::GetTicket, Call::CreateTicket] {
            let o = closed_loop(&load, which, clients).await;
            progress(format!(
                "closed loop {} × {clients}: {:.0}/s, p50 {} ms, p99 {} ms, errors {}",
                which.name(),
                o.calls_per_second,
                ms(o.latency.quantile_ms(0.5)),
                ms(o.latency.quantile_ms(0.99)),
                errors(&o)
            ));
            closed.push((clients, which, o));
        }
    }

    let mut open = Vec::new();
    for &rate in &args.rates {
        let o = open_loop(&load, rate).await;
        progress(format!(
            "open loop CreateTicket at {rate:.0}/s: {:.0}/s, p50 {} ms, p99 {} ms, errors {}",
            o.calls_per_second,
            ms(o.latency.quantile_ms(0.5)),
            ms(o.latency.quantile_ms(0.99)),
            errors(&o)
        ));
        open.push((rate, o));
    }

    let mut watched = None;
    if args.watchers > 0 {
        // Intake without streams for the same closed-loop concurrency, if not measured above.
        let unwatched_closed = match closed
            .iter()
            .position(|(c, w, _)| *c == args.watch_clients && *w == Call::CreateTicket)
        {
            Some(i) => i,
            None => {
                let o = closed_loop(&load, Call::CreateTicket, args.watch_clients).await;
                closed.push((args.watch_clients, Call::CreateTicket, o));
                closed.len() - 1
            }
        };
        progress(format!("opening {} WatchEvents streams", args.watchers));
        let opened = Instant::now();
        let watchers = open_watchers(
            &server.addr,
            args.watchers,
            args.streams_per_connection,
            &args.watch_node,
        )
        .await?;
        let open_took = opened.elapsed();
        let rss_streams = memory_mib(pid, "VmRSS");
        let mut open_watched = Vec::new();
        for &rate in &args.rates {
            let o = open_loop(&load, rate).await;
            progress(format!(
                "with streams: open loop at {rate:.0}/s: {:.0}/s, p99 {} ms",
                o.calls_per_second,
                ms(o.latency.quantile_ms(0.99))
            ));
            open_watched.push((rate, o));
        }
        let closed_watched = closed_loop(&load, Call::CreateTicket, args.watch_clients).await;
        progress(format!(
            "with streams: closed loop CreateTicket × {}: {:.0}/s",
            args.watch_clients, closed_watched.calls_per_second
        ));
        // Let the streams drain what was committed before measuring stops.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let streams = watchers.close().await;
        watched = Some((
            unwatched_closed,
            open_took,
            rss_streams,
            open_watched,
            closed_watched,
            streams,
        ));
    }

    let rss_end = memory_mib(pid, "VmRSS");
    let rss_peak = memory_mib(pid, "VmHWM");
    let stopped = server.stop()?;
    progress(format!("server {stopped}"));
    if let Some(cluster) = &cluster {
        cluster.stop();
    }

    // ------------------------------------------------------------------ the report
    let mut out = String::new();
    let name = backend.name();
    let _ = writeln!(out, "### {name}\n");
    let _ = writeln!(
        out,
        "Machine: {}; date {}; server binary `{}`; {} s per phase; closed loop: {} client(s) per \
         connection; open loop: {} connections, at most {} calls in flight.\n",
        machine_line(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        server_bin.display(),
        args.seconds,
        args.clients_per_connection,
        args.connections,
        args.max_in_flight,
    );
    let db_name = match backend {
        Backend::Sqlite => "SQLite one-row commits (WAL, synchronous=FULL)",
        Backend::Postgres => {
            "pgbench one-row INSERT transactions (fsync on, synchronous_commit=on)"
        }
    };
    let _ = writeln!(out, "| baseline | connections | commits/s |");
    let _ = writeln!(out, "|---|---|---|");
    for (c, rate) in &baseline {
        let _ = writeln!(out, "| {db_name} | {c} | {rate:.0} |");
    }
    let _ = writeln!(out);

    let _ = writeln!(
        out,
        "| backend | mode | call | clients | calls/s | p50 ms | p99 ms | max ms | ÷ GetNode calls/s | \
         ÷ DB 16-connection commits/s | server CPU (cores) | client CPU (cores) | errors |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (clients, which, o) in &closed {
        let get_node = closed
            .iter()
            .find(|(c, w, _)| c == clients && *w == Call::GetNode)
            .map_or(f64::NAN, |(_, _, g)| g.calls_per_second);
        let db = if *which == Call::CreateTicket {
            ratio(o.calls_per_second, baseline_16)
        } else {
            "–".into()
        };
        let _ = writeln!(
            out,
            "| {name} | closed | {} | {clients} | {:.0} | {} | {} | {} | {} | {db} | {:.2} | {:.2} | {} |",
            which.name(),
            o.calls_per_second,
            ms(o.latency.quantile_ms(0.5)),
            ms(o.latency.quantile_ms(0.99)),
            ms(o.latency.max_ms()),
            ratio(o.calls_per_second, get_node),
            o.server_cpu,
            o.client_cpu,
            errors(o),
        );
    }
    let _ = writeln!(out);

    let open_table = |out: &mut String, rows: &[(f64, Outcome)], streams: &str| {
        let _ = writeln!(
            out,
            "| backend | mode | offered calls/s | achieved calls/s | p50 ms | p99 ms | max ms | \
             ÷ DB 16-connection commits/s | pacer late (max ms) | in-flight bound hit | server CPU (cores) | \
             client CPU (cores) | errors |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (rate, o) in rows {
            let _ = writeln!(
                out,
                "| {name} | open, CreateTicket{streams} | {rate:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} |",
                o.calls_per_second,
                ms(o.latency.quantile_ms(0.5)),
                ms(o.latency.quantile_ms(0.99)),
                ms(o.latency.max_ms()),
                ratio(o.calls_per_second, baseline_16),
                ms(o.pacer_late_ms),
                o.bound_hits,
                o.server_cpu,
                o.client_cpu,
                errors(o),
            );
        }
        let _ = writeln!(out);
    };
    open_table(&mut out, &open, "");

    if let Some((unwatched, open_took, rss_streams, open_watched, closed_watched, streams)) =
        &watched
    {
        let n = args.watchers;
        let _ = writeln!(
            out,
            "Watchers: {n} WatchEvents streams on `{}`, {} per connection, opened in {:.2} s.\n",
            args.watch_node,
            args.streams_per_connection,
            open_took.as_secs_f64()
        );
        open_table(&mut out, open_watched, &format!(", {n} streams"));
        let without = &closed[*unwatched].2;
        let _ = writeln!(
            out,
            "| backend | CreateTicket, closed loop × {} | calls/s | p50 ms | p99 ms | max ms | \
             server CPU (cores) | client CPU (cores) | errors |",
            args.watch_clients
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        for (label, o) in [
            ("without streams".to_owned(), without),
            (format!("with {n} streams"), closed_watched),
        ] {
            let _ = writeln!(
                out,
                "| {name} | {label} | {:.0} | {} | {} | {} | {:.2} | {:.2} | {} |",
                o.calls_per_second,
                ms(o.latency.quantile_ms(0.5)),
                ms(o.latency.quantile_ms(0.99)),
                ms(o.latency.max_ms()),
                o.server_cpu,
                o.client_cpu,
                errors(o),
            );
        }
        let _ = writeln!(
            out,
            "\nWith streams ÷ without, closed loop: {}.\n",
            ratio(closed_watched.calls_per_second, without.calls_per_second)
        );
        let mut ended: Vec<(String, usize)> = Vec::new();
        for why in &streams.ended {
            match ended.iter_mut().find(|(w, _)| w == why) {
                Some((_, k)) => *k += 1,
                None => ended.push((why.clone(), 1)),
            }
        }
        let ended = if ended.is_empty() {
            "none".to_owned()
        } else {
            ended
                .iter()
                .map(|(w, k)| format!("{k} × {}", w.replace('|', "/")))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let _ = writeln!(
            out,
            "| backend | streams | events delivered | per stream (fewest / most) | lag p50 ms | lag p99 ms | \
             lag max ms | streams ended early | RSS with streams open (MiB) |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        let _ = writeln!(
            out,
            "| {name} | {n} | {} | {} / {} | {} | {} | {} | {ended} | {rss_streams:.0} |",
            streams.events,
            streams.fewest,
            streams.most,
            ms(streams.lag.quantile_ms(0.5)),
            ms(streams.lag.quantile_ms(0.99)),
            ms(streams.lag.max_ms()),
        );
        let _ = writeln!(out);
    }

    if args.rss {
        let filed = workload.next_ref.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "| backend | RSS idle after warm-up (MiB) | RSS at the end (MiB) | peak RSS (MiB) | tickets filed |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        let _ = writeln!(
            out,
            "| {name} | {rss_idle:.0} | {rss_end:.0} | {rss_peak:.0} | {filed} |"
        );
        let _ = writeln!(out);
    }
    print!("{out}");
    Ok(())
}
