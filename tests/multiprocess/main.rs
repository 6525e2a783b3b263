//! One service across processes, as an operator deploys it: three `doorstep serve --no-sla` replicas
//! and two standalone `doorstep sla` schedulers on one database, every one a real process of the built
//! binary, called over loopback gRPC with the generated clients.
//!
//! A short-ladder policy (seconds, not days) makes tickets breach and climb during the run. Intake is
//! spread over the replicas while one replica and one scheduler are killed with SIGKILL and started
//! again; a policy and a district change are made through one replica and must be in use on another
//! within two seconds. Afterwards, from the database: every acknowledged ticket is there, every breach
//! escalated exactly once, and a watch opened on one replica saw every event of its subtree once, in
//! order. The same scenario runs on PostgreSQL (the throwaway cluster) and on one SQLite file.
//!
//! Each scenario takes about 25 s (up to 40 s when a killed scheduler held claimed timers, which wait
//! out their 30 s lease), every wait is bounded, and a failure lists every check that failed with the
//! processes' logs. With `--nocapture` it prints what an operator would quote: how many tickets each
//! replica took, the calls that failed while a replica was down, and how long each configuration
//! change took to reach another replica.

mod fleet;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use doorstep_proto::v1 as w;
use doorstep_proto::v1::admin_service_client::AdminServiceClient;
use doorstep_proto::v1::report_service_client::ReportServiceClient;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;
use doorstep_store::testing::{TempDir, TestDb};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

use fleet::{Process, run_cli};

/// The ladder the run starts with: every rung below MAJOR_RISK a few clock seconds (clock time, so
/// deadlines fall due within the run whatever day the calendar says it is). Nothing is dispatched, so
/// only resolve clocks run; the sign-for limit is long so that nothing else fires.
const SHORT_LADDER: &str = r#"# The multi-process test's ladder: seconds per rung.
acknowledge_within = "1h"
[levels.routine]
resolve_within = "6s"
[levels.difficult]
resolve_within = "6s"
[levels.hard]
resolve_within = "6s"
"#;
/// The policy published mid-run through one replica: ROUTINE gets 8 s, which a new ticket's deadline
/// shows.
const LONGER_ROUTINE: &str = r#"# The multi-process test's second policy.
acknowledge_within = "1h"
[levels.routine]
resolve_within = "8s"
[levels.difficult]
resolve_within = "6s"
[levels.hard]
resolve_within = "6s"
"#;
const LONGER_ROUTINE_MS: i64 = 8_000;

/// The district change made mid-run: a compound (with its workers) and a category only it has.
const NEW_COMPOUND: &str = "lixia/qianfoshan/lishanmingjun/phase-3";
const NEW_CATEGORY: &str = "sanitation.bulky-waste";
const DISTRICT_ADDITION: &str = r#"
[[compound]]
code = "lixia/qianfoshan/lishanmingjun/phase-3"
name = "历山名郡三期"
community = "lixia/qianfoshan/lishanmingjun"

[[unit]]
code = "lixia/qianfoshan/lishanmingjun/phase-3/workers"
name = "历山名郡三期定岗社区工作者"
node = "lixia/qianfoshan/lishanmingjun/phase-3"
supervisor = "community/lishanmingjun"

[[catalogue]]
category = "sanitation.bulky-waste"
name = "大件垃圾清运"
default_level = "routine"
node = "lixia/qianfoshan/lishanmingjun/phase-3"
"#;

/// The street office whose subtree the watch on replica 1 follows.
const WATCHED: &str = "lixia/qianfoshan";
/// Where intake files tickets: half inside the watched subtree, half outside.
const NODES: [&str; 4] = [
    "lixia/qianfoshan/lishanmingjun/phase-1",
    "lixia/jiefanglu/jiefangqiao/yard-129",
    "lixia/qianfoshan/lishanmingjun/phase-2",
    "lixia/zhiyuan/jilian/refinery-dorm",
];

/// Intake: this many hotline clients, each filing a ticket this often, for this long.
const INTAKE_CLIENTS: usize = 4;
const INTAKE_PACE: Duration = Duration::from_millis(100);
const INTAKE_FOR: Duration = Duration::from_secs(15);
/// When (from the start of intake) replica 2 and scheduler 1 are killed: breaches are firing by then.
const KILL_AT: Duration = Duration::from_secs(7);
/// How long they stay down.
const DOWN_FOR: Duration = Duration::from_millis(1500);

/// A configuration change must be in use everywhere within this.
const PROPAGATION_LIMIT: Duration = Duration::from_secs(2);
/// How long a change is polled for before it counts as never arriving.
const PROPAGATION_GIVE_UP: Duration = Duration::from_secs(6);
const PROPAGATION_POLL: Duration = Duration::from_millis(100);

/// Each call's bound (a SIGKILLed peer answers at once; a hung one must not hang the test).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// After intake: how long every ticket may take to have climbed at least once. A scheduler killed
/// holding claimed timers leaves them leased for 30 s, so this covers that lease.
const ESCALATION_WAIT: Duration = Duration::from_secs(75);
/// How long the watch may take to deliver the last event once everything is written.
const WATCH_DRAIN: Duration = Duration::from_secs(10);
/// The whole scenario's bound.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(300);

/// The two scenarios share a 2-core machine: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_and_schedulers_on_postgres_act_as_one_service() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(db) = TestDb::postgres("multiprocess").await else {
        return;
    };
    run_bounded(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_and_schedulers_on_one_sqlite_file_act_as_one_service() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let db = TestDb::sqlite("multiprocess").await.expect("a SQLite file");
    run_bounded(db).await;
}

/// The scenario under [`SCENARIO_TIMEOUT`]; on a timeout, every process's log is printed.
async fn run_bounded(db: TestDb) {
    let dir = TempDir::new("doorstep-multiprocess").expect("a temporary folder");
    if tokio::time::timeout(
        SCENARIO_TIMEOUT,
        one_service_across_processes(&db.url, dir.path()),
    )
    .await
    .is_err()
    {
        // The processes were killed when the scenario was dropped; their logs are still there.
        for entry in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.path().extension().is_some_and(|e| e == "log") {
                eprintln!("{}", fleet::log_tail(&entry.path()));
            }
        }
        panic!("the multi-process scenario did not finish within {SCENARIO_TIMEOUT:?}");
    }
}

/// A ticket whose CreateTicket was answered OK.
#[derive(Debug, Clone)]
struct Acked {
    id: String,
    external_ref: String,
}

/// What one intake client did.
#[derive(Debug, Default)]
struct IntakeTally {
    acked: [u32; 3],
    /// Acknowledgements by replica address (a restarted replica listens on a new one).
    acked_at: HashMap<String, u32>,
    failed: [u32; 3],
    given_up: u32,
    /// Each distinct error, and how often it was seen.
    errors: BTreeMap<String, u32>,
}

/// Runs the scenario on the database at `database_url`, with logs and files in `dir`; panics listing
/// every check that failed.
async fn one_service_across_processes(database_url: &str, dir: &Path) {
    let began = Instant::now();
    let mut failures: Vec<String> = Vec::new();

    // First boot, as an operator does it: migrate, import the district, publish the short ladder.
    run_cli(&["migrate"], database_url).await;
    run_cli(
        &["district", "import", &example("lixia.toml")],
        database_url,
    )
    .await;
    let ladder = dir.join("short-ladder.toml");
    std::fs::write(&ladder, SHORT_LADDER).expect("the policy file");
    let stored = run_cli(
        &["policy", "put", ladder.to_str().expect("a UTF-8 path")],
        database_url,
    )
    .await;
    eprintln!("set up in {:?}: {}", began.elapsed(), stored.trim());

    let mut replicas = Vec::new();
    for n in 1..=3 {
        replicas.push(Process::replica(&format!("replica-{n}"), dir, database_url).await);
    }
    let mut schedulers = vec![
        Process::scheduler("scheduler-1", dir, database_url),
        Process::scheduler("scheduler-2", dir, database_url),
    ];
    let addrs = Arc::new(RwLock::new(
        replicas.iter().map(|r| r.addr.clone()).collect::<Vec<_>>(),
    ));
    let replica_1 = connect(&replicas[0].addr)
        .await
        .expect("connecting to replica 1");
    let first_policy = call(
        AdminServiceClient::new(replica_1.clone()).get_policy(w::GetPolicyRequest { version: 0 }),
    )
    .await
    .expect("GetPolicy on replica 1")
    .version;
    assert!(
        export_events(&replica_1, "").await.is_empty(),
        "a fresh database has no events"
    );

    // The watch opens before intake, so that it must see every event of its subtree.
    let watcher = Watcher::open(replica_1.clone(), WATCHED).await;

    // Intake, spread over the three replicas.
    let intake_began = Instant::now();
    let (stop_intake, intake_stopped) = watch::channel(false);
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let clients: Vec<_> = (0..INTAKE_CLIENTS)
        .map(|no| {
            tokio::spawn(intake_client(
                no,
                Arc::clone(&addrs),
                intake_stopped.clone(),
                Arc::clone(&acked),
            ))
        })
        .collect();

    // Mid-run: a replica and a scheduler die without warning, and come back.
    tokio::time::sleep_until((intake_began + KILL_AT).into()).await;
    let killed_replica = replicas.remove(1);
    let old_addr = killed_replica.addr.clone();
    killed_replica.kill_9().await;
    schedulers.remove(0).kill_9().await;
    eprintln!(
        "t+{:?}: replica 2 ({old_addr}) and scheduler 1 killed with SIGKILL",
        intake_began.elapsed()
    );
    tokio::time::sleep(DOWN_FOR).await;
    let restarted = Process::replica("replica-2", dir, database_url).await;
    addrs.write().expect("addresses")[1] = restarted.addr.clone();
    eprintln!(
        "t+{:?}: replica 2 back on {}",
        intake_began.elapsed(),
        restarted.addr
    );
    replicas.insert(1, restarted);
    schedulers.insert(0, Process::scheduler("scheduler-1", dir, database_url));

    // Configuration made through replica 3 is used by replica 1.
    let replica_3 = connect(&replicas[2].addr)
        .await
        .expect("connecting to replica 3");
    match policy_reaches(&replica_3, &replica_1, first_policy, &acked).await {
        Ok(arrived) => eprintln!(
            "a policy published through replica 3 was in use on replica 1 after {arrived}"
        ),
        Err(e) => failures.push(e),
    }
    match district_reaches(&replica_3, &replica_1, &acked).await {
        Ok(arrived) => eprintln!(
            "a compound imported through replica 3 was known to replica 1 after {arrived}"
        ),
        Err(e) => failures.push(e),
    }

    tokio::time::sleep_until((intake_began + INTAKE_FOR).into()).await;
    let _ = stop_intake.send(true);
    let mut tally = IntakeTally::default();
    for client in clients {
        let one = tokio::time::timeout(CALL_TIMEOUT * 4, client)
            .await
            .expect("an intake client stops")
            .expect("an intake client does not panic");
        for r in 0..3 {
            tally.acked[r] += one.acked[r];
            tally.failed[r] += one.failed[r];
        }
        tally.given_up += one.given_up;
        for (addr, n) in one.acked_at {
            *tally.acked_at.entry(addr).or_default() += n;
        }
        for (error, n) in one.errors {
            *tally.errors.entry(error).or_default() += n;
        }
    }
    let acked: Vec<Acked> = acked.lock().expect("acknowledged tickets").clone();
    eprintln!(
        "t+{:?}: intake stopped: {} tickets acknowledged (by replica: {:?}), {} calls failed (by replica: \
         {:?}), {} tickets given up; errors seen: {:?}",
        intake_began.elapsed(),
        acked.len(),
        tally.acked,
        tally.failed.iter().sum::<u32>(),
        tally.failed,
        tally.given_up,
        tally.errors
    );
    let back_on = addrs.read().expect("addresses")[1].clone();
    assert!(
        tally.acked_at.get(&back_on).is_some_and(|n| *n > 0)
            && tally.acked_at.get(&old_addr).is_some_and(|n| *n > 0)
            && tally.acked.iter().all(|n| *n > 0),
        "intake reached every replica, replica 2 before and after its restart: {:?}",
        tally.acked_at
    );

    // Every ticket climbs at least once: none is left at ROUTINE.
    let waited = Instant::now();
    loop {
        let left = routine_tickets(&replica_1).await;
        if left == 0 {
            eprintln!(
                "t+{:?}: every ticket escalated at least once ({:?} after intake stopped)",
                intake_began.elapsed(),
                waited.elapsed()
            );
            break;
        }
        if waited.elapsed() > ESCALATION_WAIT {
            failures.push(format!(
                "{left} tickets still at ROUTINE {ESCALATION_WAIT:?} after intake stopped"
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Everything but replica 1 stops; replica 1 only reads from here on.
    for process in schedulers.drain(..).chain(replicas.drain(1..)) {
        let name = process.name.clone();
        if let Err(e) = process.terminate().await {
            failures.push(format!("stopping {name}: {e}"));
        }
    }

    let events = export_events(&replica_1, "").await;
    let tickets = all_tickets(&replica_1).await;
    check_acknowledged(&acked, &tickets, &mut failures);
    let ladder = check_ladder(&events, &tickets, &mut failures);
    eprintln!(
        "{} events, {} tickets: {} resolve breaches, {} escalations, {} warnings",
        events.len(),
        tickets.len(),
        ladder.breaches,
        ladder.escalations,
        ladder.warnings
    );

    // The watch saw its subtree's events: each once, in seq order, none missing.
    let expected: Vec<&w::Event> = events
        .iter()
        .filter(|e| {
            tickets
                .get(&e.ticket_id)
                .is_some_and(|t| within(&t.node, WATCHED))
        })
        .collect();
    let last_expected = expected.last().map_or(0, |e| e.seq);
    let drained = Instant::now();
    while watcher.last_seq() < last_expected && drained.elapsed() < WATCH_DRAIN {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (seen, notes) = watcher.stop().await;
    eprintln!(
        "the watch on replica 1 saw {} events of {WATCHED} ({} expected); its notes: {notes:?}",
        seen.len(),
        expected.len()
    );
    check_watch(&seen, &expected, &mut failures);

    let replica_1 = replicas.remove(0);
    if let Err(e) = replica_1.terminate().await {
        failures.push(format!("stopping replica-1: {e}"));
    }
    for entry in std::fs::read_dir(dir).expect("the log folder").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            if log.contains("panicked") {
                failures.push(format!("a process panicked:\n{}", fleet::log_tail(&path)));
            }
            // Not failures (a killed peer is worth a warning), but what an operator would see.
            let warnings: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .filter(|l| !l.contains("authentication is off"))
                .collect();
            if !warnings.is_empty() {
                eprintln!(
                    "{}: {} warnings and errors logged, e.g. {:?}",
                    path.display(),
                    warnings.len(),
                    &warnings[..warnings.len().min(3)]
                );
            }
        }
    }

    eprintln!("the scenario took {:?}", began.elapsed());
    assert!(
        failures.is_empty(),
        "{} checks failed:\n- {}",
        failures.len(),
        failures.join("\n- ")
    );
}

fn example(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/examples")
        .join(file)
        .display()
        .to_string()
}

async fn connect(addr: &str) -> Result<Channel, String> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("{addr}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))
}

/// One call under [`CALL_TIMEOUT`], its error as text.
async fn call<T>(
    reply: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, reply).await {
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
}

fn ticket(external_ref: &str, node: &str, category: &str) -> w::CreateTicketRequest {
    w::CreateTicketRequest {
        source: w::Channel::Hotline12345 as i32,
        external_ref: external_ref.into(),
        caller: Some(w::Caller {
            name: "李先生".into(),
            phone: "13900000001".into(),
            confidential: false,
        }),
        category: category.into(),
        content: "垃圾桶满了".into(),
        node: node.into(),
        level_hint: w::Level::Routine as i32,
        ..Default::default()
    }
}

/// A hotline client: files a ticket every [`INTAKE_PACE`] on the replicas in turn; a call that fails
/// (the replica was killed, or is not back yet) is tried again, same external reference, on the next
/// replica. Only an answered call counts as acknowledged.
async fn intake_client(
    no: usize,
    addrs: Arc<RwLock<Vec<String>>>,
    mut stop: watch::Receiver<bool>,
    acked: Arc<Mutex<Vec<Acked>>>,
) -> IntakeTally {
    let mut channels: HashMap<String, Channel> = HashMap::new();
    let mut tally = IntakeTally::default();
    for n in 0.. {
        if *stop.borrow() {
            break;
        }
        let external_ref = format!("MP-{no}-{n}");
        let request = ticket(
            &external_ref,
            NODES[(no + n) % NODES.len()],
            "sanitation.garbage",
        );
        let mut answered = false;
        for attempt in 0..12 {
            let replica = (no + n + attempt) % 3;
            let addr = addrs.read().expect("addresses")[replica].clone();
            let channel = match channels.get(&addr) {
                Some(channel) => Ok(channel.clone()),
                None => connect(&addr).await,
            };
            let reply = match channel {
                Ok(channel) => {
                    channels.insert(addr.clone(), channel.clone());
                    call(TicketServiceClient::new(channel).create_ticket(request.clone())).await
                }
                Err(e) => Err(e),
            };
            match reply {
                Ok(reply) => {
                    let id = reply.ticket.map(|t| t.id).unwrap_or_default();
                    acked.lock().expect("acknowledged tickets").push(Acked {
                        id,
                        external_ref: external_ref.clone(),
                    });
                    tally.acked[replica] += 1;
                    *tally.acked_at.entry(addr).or_default() += 1;
                    answered = true;
                    break;
                }
                Err(e) => {
                    channels.remove(&addr);
                    tally.failed[replica] += 1;
                    *tally
                        .errors
                        .entry(format!("replica {}: {e}", replica + 1))
                        .or_default() += 1;
                    if attempt % 3 == 2 {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                }
            }
        }
        if !answered {
            tally.given_up += 1;
        }
        tokio::select! {
            () = tokio::time::sleep(INTAKE_PACE) => {}
            _ = stop.changed() => {}
        }
    }
    tally
}

/// When a change made through one replica was first seen in use on another: after the probe sent at
/// `not_before` still saw the old configuration, and by the time the probe that saw it answered.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    not_before: Duration,
    by: Duration,
}

impl std::fmt::Display for Arrival {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ms (not before {} ms)",
            self.by.as_millis(),
            self.not_before.as_millis()
        )
    }
}

/// Asks `probe` every [`PROPAGATION_POLL`] whether the change has arrived (it answers what it saw
/// when not) until it has, or [`PROPAGATION_GIVE_UP`] passed; times are from `since`.
async fn arrival<F, Fut>(since: Instant, what: &str, mut probe: F) -> Result<Arrival, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut not_before = Duration::ZERO;
    loop {
        let sent = since.elapsed();
        match probe().await {
            Ok(()) => {
                let arrived = Arrival {
                    not_before,
                    by: since.elapsed(),
                };
                if arrived.by > PROPAGATION_LIMIT {
                    return Err(format!(
                        "{what} only after {arrived} (limit {PROPAGATION_LIMIT:?})"
                    ));
                }
                return Ok(arrived);
            }
            Err(seen) if since.elapsed() > PROPAGATION_GIVE_UP => {
                return Err(format!("{what} not after {PROPAGATION_GIVE_UP:?}: {seen}"));
            }
            Err(_) => not_before = sent,
        }
        tokio::time::sleep(PROPAGATION_POLL).await;
    }
}

/// Publishes [`LONGER_ROUTINE`] through `publisher`; polls `user`'s current policy (what its intake
/// files under, held in memory) until it is the new one, then files a ticket there and checks it is
/// judged under it.
async fn policy_reaches(
    publisher: &Channel,
    user: &Channel,
    first_policy: i64,
    acked: &Mutex<Vec<Acked>>,
) -> Result<Arrival, String> {
    let published = call(AdminServiceClient::new(publisher.clone()).put_policy(
        w::PutPolicyRequest {
            toml: LONGER_ROUTINE.into(),
        },
    ))
    .await
    .map_err(|e| format!("PutPolicy on replica 3: {e}"))?;
    let since = Instant::now();
    assert!(published.version > first_policy, "{published:?}");
    let arrived = arrival(
        since,
        &format!(
            "policy version {} published through replica 3 was in use on replica 1",
            published.version
        ),
        || async {
            let current = call(
                AdminServiceClient::new(user.clone())
                    .get_policy(w::GetPolicyRequest { version: 0 }),
            )
            .await?
            .version;
            if current == published.version {
                Ok(())
            } else {
                Err(format!("its current policy is version {current}"))
            }
        },
    )
    .await?;
    let external_ref = "MP-POLICY".to_owned();
    let t = call(TicketServiceClient::new(user.clone()).create_ticket(ticket(
        &external_ref,
        NODES[0],
        "sanitation.garbage",
    )))
    .await
    .map_err(|e| format!("CreateTicket on replica 1 after the new policy: {e}"))?
    .ticket
    .unwrap_or_default();
    acked.lock().expect("acknowledged tickets").push(Acked {
        id: t.id.clone(),
        external_ref,
    });
    let allowed = millis(t.resolve_due_at.as_ref()) - millis(t.created_at.as_ref());
    if t.policy_version != published.version || allowed != LONGER_ROUTINE_MS {
        return Err(format!(
            "once replica 1 reported policy version {} current, it filed a ticket under version \
             {} with {allowed} ms to resolve (the new one allows {LONGER_ROUTINE_MS} ms)",
            published.version, t.policy_version
        ));
    }
    Ok(arrived)
}

/// Imports the district with [`DISTRICT_ADDITION`] through `importer`; polls `user` for the new
/// compound (its district, held in memory) until it knows it, then files a ticket there in the
/// category only that compound has.
async fn district_reaches(
    importer: &Channel,
    user: &Channel,
    acked: &Mutex<Vec<Acked>>,
) -> Result<Arrival, String> {
    let lixia = std::fs::read_to_string(example("lixia.toml")).expect("lixia.toml");
    call(
        AdminServiceClient::new(importer.clone()).import_district(w::ImportDistrictRequest {
            toml: format!("{lixia}{DISTRICT_ADDITION}"),
        }),
    )
    .await
    .map_err(|e| format!("ImportDistrict on replica 3: {e}"))?;
    let since = Instant::now();
    let arrived = arrival(
        since,
        &format!("{NEW_COMPOUND}, imported through replica 3, was known to replica 1"),
        || async {
            call(
                AdminServiceClient::new(user.clone()).get_node(w::GetNodeRequest {
                    code: NEW_COMPOUND.into(),
                }),
            )
            .await
            .map(drop)
        },
    )
    .await?;
    let external_ref = "MP-DISTRICT".to_owned();
    let reply = call(TicketServiceClient::new(user.clone()).create_ticket(ticket(
        &external_ref,
        NEW_COMPOUND,
        NEW_CATEGORY,
    )))
    .await
    .map_err(|e| {
        format!(
            "once replica 1 knew {NEW_COMPOUND}, a ticket there in {NEW_CATEGORY} was refused: {e}"
        )
    })?;
    acked.lock().expect("acknowledged tickets").push(Acked {
        id: reply.ticket.map(|t| t.id).unwrap_or_default(),
        external_ref,
    });
    Ok(arrived)
}

fn millis(at: Option<&prost_types::Timestamp>) -> i64 {
    at.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// How many open tickets are still at ROUTINE.
async fn routine_tickets(replica: &Channel) -> usize {
    let page = call(TicketServiceClient::new(replica.clone()).list_tickets(
        w::ListTicketsRequest {
            levels: vec![w::Level::Routine as i32],
            page_size: 1000,
            ..Default::default()
        },
    ))
    .await
    .expect("ListTickets on replica 1");
    page.tickets.len()
}

/// Every ticket, by id.
async fn all_tickets(replica: &Channel) -> HashMap<String, w::Ticket> {
    let mut client = TicketServiceClient::new(replica.clone());
    let mut tickets = HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = call(client.list_tickets(w::ListTicketsRequest {
            page_size: 1000,
            page_token: page_token.clone(),
            ..Default::default()
        }))
        .await
        .expect("ListTickets on replica 1");
        tickets.extend(page.tickets.into_iter().map(|t| (t.id.clone(), t)));
        if page.next_page_token.is_empty() {
            return tickets;
        }
        page_token = page.next_page_token;
    }
}

/// The event log (of a subtree, or all of it), from the store, in seq order.
async fn export_events(replica: &Channel, node: &str) -> Vec<w::Event> {
    let mut stream = call(ReportServiceClient::new(replica.clone()).export_events(
        w::ExportEventsRequest {
            node: node.into(),
            after_seq: 0,
            limit: 0,
        },
    ))
    .await
    .expect("ExportEvents on replica 1");
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout(CALL_TIMEOUT, stream.message()).await {
            Ok(Ok(Some(event))) => events.push(event),
            Ok(Ok(None)) => return events,
            Ok(Err(status)) => panic!("ExportEvents: {status:?}"),
            Err(_) => panic!("ExportEvents stalled after {} events", events.len()),
        }
    }
}

fn within(node: &str, subtree: &str) -> bool {
    node == subtree
        || node
            .strip_prefix(subtree)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A WatchEvents stream on one replica, collecting every event it receives; resumed from the last
/// seq seen when the server ends it.
struct Watcher {
    seen: Arc<Mutex<Vec<w::Event>>>,
    notes: Arc<Mutex<Vec<String>>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    async fn open(replica: Channel, node: &str) -> Watcher {
        let mut client = TicketServiceClient::new(replica);
        // Opened here, not in the task: once the server has answered, the watch's start is fixed.
        let stream = call(client.watch_events(w::WatchEventsRequest {
            node: node.into(),
            after_seq: 0,
        }))
        .await
        .expect("WatchEvents on replica 1");
        let seen: Arc<Mutex<Vec<w::Event>>> = Arc::default();
        let notes: Arc<Mutex<Vec<String>>> = Arc::default();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(follow(
            client,
            node.to_owned(),
            stream,
            Arc::clone(&seen),
            Arc::clone(&notes),
            stopped,
        ));
        Watcher {
            seen,
            notes,
            stop,
            task,
        }
    }

    fn last_seq(&self) -> i64 {
        self.seen
            .lock()
            .expect("events seen")
            .last()
            .map_or(0, |e| e.seq)
    }

    /// Ends the watch: the events it saw, and what happened to the stream on the way.
    async fn stop(self) -> (Vec<w::Event>, Vec<String>) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(CALL_TIMEOUT, self.task).await;
        let seen = std::mem::take(&mut *self.seen.lock().expect("events seen"));
        let notes = std::mem::take(&mut *self.notes.lock().expect("notes"));
        (seen, notes)
    }
}

async fn follow(
    mut client: TicketServiceClient<Channel>,
    node: String,
    mut stream: tonic::Streaming<w::Event>,
    seen: Arc<Mutex<Vec<w::Event>>>,
    notes: Arc<Mutex<Vec<String>>>,
    mut stop: watch::Receiver<bool>,
) {
    let note = |text: String| notes.lock().expect("notes").push(text);
    loop {
        let ended = tokio::select! {
            _ = stop.changed() => return,
            message = stream.message() => match message {
                Ok(Some(event)) => {
                    seen.lock().expect("events seen").push(event);
                    continue;
                }
                Ok(None) => "the server ended the stream".to_owned(),
                Err(status) => format!("{:?}: {}", status.code(), status.message()),
            },
        };
        let after_seq = seen
            .lock()
            .expect("events seen")
            .last()
            .map_or(0, |e| e.seq);
        note(format!("{ended}; resuming after seq {after_seq}"));
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            match call(client.watch_events(w::WatchEventsRequest {
                node: node.clone(),
                after_seq,
            }))
            .await
            {
                Ok(resumed) => {
                    stream = resumed;
                    break;
                }
                Err(e) => note(format!("resuming: {e}")),
            }
        }
    }
}

/// Every acknowledged ticket is in the database, under the id its acknowledgement gave, and has
/// climbed the ladder at least once.
fn check_acknowledged(
    acked: &[Acked],
    tickets: &HashMap<String, w::Ticket>,
    failures: &mut Vec<String>,
) {
    let mut missing = Vec::new();
    let mut ids_by_ref: HashMap<&str, HashSet<&str>> = HashMap::new();
    for a in acked {
        ids_by_ref.entry(&a.external_ref).or_default().insert(&a.id);
        match tickets.get(&a.id) {
            Some(t) if t.external_ref == a.external_ref => {}
            Some(t) => failures.push(format!(
                "ticket {} was acknowledged for {} but holds {}",
                a.id, a.external_ref, t.external_ref
            )),
            None => missing.push(a),
        }
    }
    if !missing.is_empty() {
        failures.push(format!(
            "{} of {} acknowledged tickets are not in the database, e.g. {:?}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    let never_climbed = acked
        .iter()
        .filter(|a| tickets.get(&a.id).is_some_and(|t| t.escalations == 0))
        .count();
    if never_climbed > 0 {
        failures.push(format!(
            "{never_climbed} acknowledged tickets never escalated"
        ));
    }
    for (external_ref, ids) in ids_by_ref {
        if ids.len() > 1 {
            failures.push(format!("{external_ref} was acknowledged as {ids:?}"));
        }
    }
}

#[derive(Debug, Default)]
struct LadderTally {
    breaches: usize,
    escalations: usize,
    warnings: usize,
}

/// Walks every ticket's events in seq order, tracking its level: no (clock, level) warned or breached
/// twice, every resolve breach below the top escalated exactly once (from the level it breached at),
/// nothing else escalated, and the ticket's own figures agree with its history.
fn check_ladder(
    events: &[w::Event],
    tickets: &HashMap<String, w::Ticket>,
    failures: &mut Vec<String>,
) -> LadderTally {
    use w::EventKind as K;
    let mut by_ticket: BTreeMap<&str, Vec<&w::Event>> = BTreeMap::new();
    for e in events {
        by_ticket.entry(&e.ticket_id).or_default().push(e);
    }
    let mut tally = LadderTally::default();
    let mut problems = Vec::new();
    for (id, history) in &by_ticket {
        let mut level = w::Level::Unspecified as i32;
        let mut warned: HashMap<(i32, i32), u32> = HashMap::new();
        let mut breached: HashMap<(i32, i32), u32> = HashMap::new();
        let mut escalated: HashMap<i32, u32> = HashMap::new();
        for e in history {
            match K::try_from(e.kind) {
                Ok(K::Created) => level = e.level_to,
                Ok(K::Warning) => {
                    tally.warnings += 1;
                    *warned.entry((e.clock, level)).or_default() += 1;
                }
                Ok(K::Breached) => {
                    if e.clock == w::Clock::Resolve as i32 {
                        tally.breaches += 1;
                    }
                    *breached.entry((e.clock, level)).or_default() += 1;
                }
                Ok(K::Escalated) => {
                    tally.escalations += 1;
                    if e.level_from != level {
                        problems.push(format!(
                            "{id}: escalated from {:?} while at {:?}",
                            e.level_from, level
                        ));
                    }
                    *escalated.entry(e.level_from).or_default() += 1;
                    level = e.level_to;
                }
                _ => {}
            }
        }
        for ((clock, at), n) in &warned {
            if *n > 1 {
                problems.push(format!(
                    "{id}: warned {n} times on clock {clock} at level {at}"
                ));
            }
        }
        for ((clock, at), n) in &breached {
            if *n > 1 {
                problems.push(format!(
                    "{id}: breached {n} times on clock {clock} at level {at}"
                ));
            }
        }
        let resolve = w::Clock::Resolve as i32;
        for (from, n) in &escalated {
            if *n > 1 {
                problems.push(format!("{id}: escalated {n} times from level {from}"));
            }
            if !breached.contains_key(&(resolve, *from)) {
                problems.push(format!(
                    "{id}: escalated from level {from} without a breach"
                ));
            }
        }
        for (clock, at) in breached.keys() {
            if *clock == resolve && *at != w::Level::MajorRisk as i32 && !escalated.contains_key(at)
            {
                problems.push(format!("{id}: breached at level {at} and did not climb"));
            }
        }
        match tickets.get(*id) {
            Some(t) => {
                let climbed: u32 = escalated.values().sum();
                if t.level != level || u32::try_from(t.escalations).ok() != Some(climbed) {
                    problems.push(format!(
                        "{id}: the ticket says level {} after {} escalations, its history level \
                         {level} after {climbed}",
                        t.level, t.escalations
                    ));
                }
            }
            None => problems.push(format!("{id}: events of a ticket that is not listed")),
        }
    }
    if !problems.is_empty() {
        failures.push(format!(
            "{} ladder problems, e.g. {:?}",
            problems.len(),
            &problems[..problems.len().min(10)]
        ));
    }
    tally
}

/// The watch saw exactly the subtree's events, in seq order.
fn check_watch(seen: &[w::Event], expected: &[&w::Event], failures: &mut Vec<String>) {
    let seen_seqs: Vec<i64> = seen.iter().map(|e| e.seq).collect();
    let expected_seqs: Vec<i64> = expected.iter().map(|e| e.seq).collect();
    if seen_seqs == expected_seqs {
        for (s, e) in seen.iter().zip(expected) {
            if s.ticket_id != e.ticket_id || s.kind != e.kind {
                failures.push(format!(
                    "the watch's event {} differs from the log's: {s:?} / {e:?}",
                    s.seq
                ));
                return;
            }
        }
        return;
    }
    let mut counts: HashMap<i64, u32> = HashMap::new();
    for seq in &seen_seqs {
        *counts.entry(*seq).or_default() += 1;
    }
    let twice: Vec<i64> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(seq, _)| *seq)
        .take(10)
        .collect();
    let out_of_order = seen_seqs.windows(2).filter(|p| p[0] >= p[1]).count();
    let expected_set: HashSet<i64> = expected_seqs.iter().copied().collect();
    let missing: Vec<i64> = expected_seqs
        .iter()
        .filter(|s| !counts.contains_key(s))
        .copied()
        .collect();
    let foreign: Vec<i64> = seen_seqs
        .iter()
        .filter(|s| !expected_set.contains(s))
        .copied()
        .collect();
    failures.push(format!(
        "the watch on replica 1 saw {} events, the log holds {} for {WATCHED}: {} missing (e.g. \
         {:?}), {} not of the subtree (e.g. {:?}), seen twice e.g. {twice:?}, {out_of_order} out of \
         order",
        seen_seqs.len(),
        expected_seqs.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        foreign.len(),
        &foreign[..foreign.len().min(10)],
    ));
}
