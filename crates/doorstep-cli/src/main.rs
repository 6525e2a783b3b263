//! `doorstep`: the command-line face of the engine.
//!
//! - `doorstep serve`: the gRPC service (see the `serve` module);
//! - `doorstep migrate --database-url URL`: applies the database migrations and says what it did;
//! - `doorstep token create|list|revoke`: API tokens for `serve --auth required` (see `token`);
//! - `doorstep audit`: the log of reads of callers' unmasked personal data (see `audit`);
//! - `doorstep calendar is-working-day DATE` and `doorstep calendar due --level LEVEL --from INSTANT`:
//!   calendar questions answered the way the engine computes them, so operators and scripts can check a
//!   deadline by hand;
//! - `doorstep report sla --node NODE --from DATE --to DATE ...`: the SLA report (see the `report`
//!   module);
//! - `doorstep retime --policy-version N [--node NODE]`: open tickets re-timed under a newer policy, on
//!   purpose (see `retime`);
//! - `doorstep sla --database-url URL`: the SLA scheduler alone (see `serve::run_sla`);
//! - `doorstep notify list|retry`: notification deliveries on the database (see `notify`);
//! - `doorstep backup FILE`: a copy of the SQLite database taken while it is in use (see `backup`).
//!
//! The commands reach the database through [`connect`] (the store alone: `token`, `audit`) or
//! [`open_engine`] (the engine over it: `serve`, `sla`, `retime`, `report`); `migrate` only migrates
//! and `backup` only reads. Every database opened is closed when the command ends
//! ([`close_databases`]), so an SQLite file is left whole.

mod audit;
mod backup;
mod exporter;
mod notify;
mod report;
mod retime;
mod serve;
mod setup;
mod telemetry;
mod token;

use std::future::Future;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use chrono_tz::Tz;
use clap::{Parser, Subcommand};
use doorstep_domain::calendar::Calendar;
use doorstep_domain::{Level, Policy, Reckoner, SystemClock};
use doorstep_engine::Engine;
use doorstep_store::Store;

/// The database the commands use when given none: the one `serve` creates by default.
pub(crate) const DEFAULT_DATABASE_URL: &str = "sqlite://doorstep.db";

#[derive(Debug, Parser)]
#[command(
    name = "doorstep",
    version,
    about = "A citizen-request engine on a four-level response ladder"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the gRPC service (TicketService, AdminService, health, reflection).
    Serve(serve::ServeArgs),
    /// Runs the SLA scheduler alone (several may run on one PostgreSQL).
    Sla {
        /// sqlite://PATH or postgres://... [default: sqlite://doorstep.db].
        #[arg(long, env = "DOORSTEP_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        #[command(flatten)]
        traces: telemetry::TraceArgs,
        /// Serve Prometheus metrics at http://ADDR/metrics (HOST:PORT) [default: off].
        #[arg(long, env = "DOORSTEP_METRICS_LISTEN", value_name = "ADDR")]
        metrics_listen: Option<String>,
        /// The config file `serve` reads: its `[[notify.*]]` rules (the notifier runs beside the
        /// scheduler) and `database_url` (the flag wins).
        #[arg(long, env = "DOORSTEP_CONFIG", value_name = "FILE")]
        config: Option<std::path::PathBuf>,
    },
    /// Notification deliveries: list them, try a failed one again.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// Re-times open tickets under a newer policy, on purpose (a policy change otherwise applies to
    /// new tickets only).
    Retime(retime::RetimeArgs),
    /// Applies the database migrations and reports what it did.
    Migrate {
        /// sqlite://PATH or postgres://... [default: sqlite://doorstep.db].
        #[arg(long, env = "DOORSTEP_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// The official working-day calendar and the deadlines it gives.
    #[command(subcommand)]
    Calendar(CalendarCommand),
    /// The district in the database: import a district file (first boot without `--demo`).
    #[command(subcommand)]
    District(setup::DistrictCommand),
    /// Policy versions in the database: store a policy file as the newest.
    #[command(subcommand)]
    Policy(setup::PolicyCommand),
    /// API tokens: create (printed once), list, revoke.
    Token(token::TokenArgs),
    /// Reads of callers' unmasked names and phones, oldest first.
    Audit(audit::AuditArgs),
    /// Reports for district leaders and jobs.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Copies the SQLite database to a new file while the service keeps running (PostgreSQL: use
    /// pg_dump).
    Backup(backup::BackupArgs),
}

#[derive(Debug, Subcommand)]
enum CalendarCommand {
    /// Stores the years a calendar data file declares in the database (each replaces what that year
    /// held), and re-times the open deadlines the change moves. A year already as in the file is left
    /// alone.
    Put(setup::FileArgs),
    /// Prints `working` or `off`, then the holiday's name where the date has one.
    IsWorkingDay {
        /// A local date, YYYY-MM-DD.
        date: String,
        /// A calendar data file to use instead of the built-in official calendar.
        #[arg(long, value_name = "FILE")]
        calendar: Option<String>,
    },
    /// Prints a level's resolve deadline for a ticket received at an instant, as RFC 3339 in the
    /// district's offset.
    Due {
        /// ROUTINE, DIFFICULT, HARD or MAJOR_RISK (any case).
        #[arg(long)]
        level: String,
        /// When the ticket was received, RFC 3339 in any offset (e.g. 2026-09-30T10:00:00+08:00).
        #[arg(long)]
        from: String,
        /// The district's time zone (default: the policy's, Asia/Shanghai unless it says otherwise).
        #[arg(long)]
        tz: Option<String>,
        /// A policy file (LADDER.md's TOML format); keys it leaves out take the defaults.
        #[arg(long, value_name = "FILE")]
        policy: Option<String>,
        /// A calendar data file to use instead of the built-in official calendar.
        #[arg(long, value_name = "FILE")]
        calendar: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            // clap explains at length; scripts want the one line that names the problem (its first
            // paragraph, without the usage and hints that follow).
            let rendered = err.render().to_string();
            let line: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("doorstep: {}", line.join(" ").trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("doorstep: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let keys = serve::telemetry_keys(&args)?;
            let traces = args.traces.clone();
            block_on_observed(&traces, keys, serve::run(args))
        }
        Command::Sla {
            database_url,
            traces,
            metrics_listen,
            config,
        } => {
            let metrics = metrics_listen
                .as_deref()
                .map(serve::metrics_address)
                .transpose()?;
            block_on_observed(
                &traces,
                telemetry::FileKeys::default(),
                serve::run_sla(database_url, config, metrics),
            )
        }
        Command::Retime(args) => {
            telemetry::init_logs()?;
            block_on(retime::run(args))
        }
        Command::Migrate { database_url } => {
            telemetry::init_logs()?;
            runtime()?.block_on(async {
                let url = database_url.as_deref().unwrap_or(DEFAULT_DATABASE_URL);
                let report = doorstep_store::migrate(url).await?;
                println!("{report}");
                Ok(())
            })
        }
        Command::Token(args) => block_on(token::run(args)),
        Command::District(command) => block_on(setup::district(command)),
        Command::Policy(command) => block_on(setup::policy(command)),
        Command::Audit(args) => block_on(audit::run(args)),
        Command::Notify(command) => block_on(notify::run(command)),
        Command::Report(command) => block_on(report::run(command)),
        Command::Backup(args) => block_on(backup::run(args)),
        Command::Calendar(CalendarCommand::Put(args)) => {
            telemetry::init_logs()?;
            block_on(setup::calendar(args))
        }
        Command::Calendar(CalendarCommand::IsWorkingDay { date, calendar }) => {
            let calendar = load_calendar(calendar.as_deref())?;
            let date = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").map_err(|_| {
                anyhow!("invalid date {date:?} (expected YYYY-MM-DD, e.g. 2026-09-20)")
            })?;
            let verdict = calendar.day(date);
            if verdict.fallback {
                eprintln!(
                    "doorstep: warning: no official calendar for {}; Monday to Friday assumed",
                    date.format("%Y")
                );
            }
            let word = if verdict.working { "working" } else { "off" };
            match verdict.name {
                Some(name) => println!("{word} {name}"),
                None => println!("{word}"),
            }
            Ok(())
        }
        Command::Calendar(CalendarCommand::Due {
            level,
            from,
            tz,
            policy,
            calendar,
        }) => {
            let level: Level = level.parse()?;
            let from = DateTime::parse_from_rfc3339(from.trim())
                .map_err(|e| {
                    anyhow!("invalid instant {from:?} for --from: {e} (expected RFC 3339, e.g. 2026-09-30T10:00:00+08:00)")
                })?
                .with_timezone(&Utc);
            let mut policy = match policy {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read policy file {path:?}"))?;
                    Policy::from_toml(&text).with_context(|| format!("policy file {path:?}"))?
                }
                None => Policy::builtin(),
            };
            if let Some(name) = tz {
                policy.time_zone = name
                    .parse::<Tz>()
                    .map_err(|_| anyhow!("unknown time zone {name:?} for --tz (expected an IANA name, e.g. Asia/Shanghai)"))?;
            }
            let calendar = load_calendar(calendar.as_deref())?;
            let reckoner = Reckoner::new(&policy, &calendar);
            let Some(limit) = policy.level(level).resolve_within else {
                bail!(
                    "level {level} has no resolve deadline in this policy (it is managed by its review cadence)"
                );
            };
            let due = reckoner.add(from, limit);
            for year in &due.fallback_years {
                eprintln!(
                    "doorstep: warning: no official calendar for {year}; Monday to Friday assumed"
                );
            }
            println!(
                "{}",
                due.value
                    .with_timezone(&policy.time_zone)
                    .to_rfc3339_opts(SecondsFormat::AutoSi, false)
            );
            Ok(())
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs a command, then closes the databases it opened, whether it succeeded or not.
fn block_on(command: impl Future<Output = Result<()>>) -> Result<()> {
    runtime()?.block_on(async {
        let outcome = command.await;
        let closed = close_databases().await;
        outcome.and(closed)
    })
}

/// [`block_on`] with logs and, where configured, traces (see `telemetry`), flushed at the end.
fn block_on_observed(
    traces: &telemetry::TraceArgs,
    keys: telemetry::FileKeys,
    command: impl Future<Output = Result<()>>,
) -> Result<()> {
    let runtime = runtime()?;
    let telemetry = {
        // The trace exporter's connection is spawned on this runtime.
        let _entered = runtime.enter();
        telemetry::init(traces, keys)?
    };
    let outcome = runtime.block_on(async {
        let outcome = command.await;
        let closed = close_databases().await;
        outcome.and(closed)
    });
    // While the runtime still runs the exporter's connection.
    telemetry.shutdown();
    outcome
}

/// The databases this process opened, to close when its command ends.
static OPENED: Mutex<Vec<Arc<dyn Store>>> = Mutex::new(Vec::new());

/// The database at `url`, with the migrations it lacks applied (a missing SQLite file is created).
async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    let store = doorstep_store::connect(url, &doorstep_store::ConnectOptions::default()).await?;
    OPENED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Arc::clone(&store));
    Ok(store)
}

/// Closes every database this process opened (once everything that writes to it stopped): an
/// SQLite file is then whole, its write-ahead log checkpointed into it, so the file copied alone
/// holds every write. Calling it again does nothing.
pub(crate) async fn close_databases() -> Result<()> {
    let opened = std::mem::take(&mut *OPENED.lock().unwrap_or_else(PoisonError::into_inner));
    for store in opened {
        store.close().await.context("closing the database")?;
    }
    Ok(())
}

/// The engine over the database at `url`, on the system clock.
async fn open_engine(url: &str) -> Result<Arc<Engine>> {
    let store = connect(url).await?;
    let engine = Engine::open(store, Arc::new(SystemClock))
        .await
        .context("cannot open the engine")?;
    Ok(Arc::new(engine))
}

fn load_calendar(path: Option<&str>) -> Result<Calendar> {
    match path {
        None => Ok(Calendar::official()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read calendar file {path:?}"))?;
            Calendar::from_toml_str(&text).with_context(|| format!("calendar file {path:?}"))
        }
    }
}
