//! `doorstep serve`: the gRPC service on one database, until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use doorstep_engine::{Authenticator, LocalAllAccess, TokenAuthenticator};
use serde::Deserialize;

/// The Lixia example district `--demo` loads.
pub(crate) const DEMO_DISTRICT: &str = include_str!("../../../deploy/examples/lixia.toml");

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:50051].
    #[arg(long, env = "DOORSTEP_LISTEN")]
    listen: Option<String>,
    /// sqlite://PATH or postgres://... [default: sqlite://doorstep.db, created and migrated].
    #[arg(long, env = "DOORSTEP_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// A TOML file with `listen`, `database_url`, `demo`, `auth`, `metrics_listen`, `cors_origins`
    /// and the limits below (flags and environment win over it).
    #[arg(long, env = "DOORSTEP_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Load the Lixia example district (an idempotent upsert: a restarted demo keeps its tickets).
    #[arg(long)]
    demo: bool,
    /// Do not run the SLA scheduler in this process (run `doorstep sla` elsewhere).
    #[arg(long)]
    no_sla: bool,
    /// `required`: every call carries `authorization: Bearer TOKEN` (see `doorstep token`); `none`:
    /// every caller is the local all-access principal, allowed on a loopback address only
    /// [default: none on loopback, required elsewhere].
    #[arg(long, env = "DOORSTEP_AUTH", value_parser = ["required", "none"])]
    auth: Option<String>,
    /// Calls a second each token may make on average (bursts up to four times as many).
    #[arg(long, env = "DOORSTEP_RATE_LIMIT", default_value_t = 50)]
    rate_limit: u32,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key. (Builds with `--features tls`.)
    #[arg(
        long,
        env = "DOORSTEP_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    #[arg(
        long,
        env = "DOORSTEP_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: accept only clients with a certificate issued by this CA (PEM).
    #[arg(
        long,
        env = "DOORSTEP_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_client_ca: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) traces: crate::telemetry::TraceArgs,
    /// Serve Prometheus metrics at http://ADDR/metrics (HOST:PORT) [default: off].
    #[arg(long, env = "DOORSTEP_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// A web origin (`https://console.example.org`) whose pages may call the service over gRPC-Web;
    /// repeatable [default: none, so browsers may not call from another origin].
    #[arg(
        long = "cors-origin",
        env = "DOORSTEP_CORS_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The service's bounds (README, "Limits"); each also a key of the config file.
#[derive(Debug, Default, clap::Args)]
struct LimitArgs {
    /// WatchEvents and ExportEvents streams one token may hold open together [default: 64].
    #[arg(long, env = "DOORSTEP_MAX_STREAMS_PER_TOKEN", value_name = "N")]
    max_streams_per_token: Option<u32>,
    /// Concurrent calls (HTTP/2 streams) on one connection [default: 256].
    #[arg(long, env = "DOORSTEP_MAX_STREAMS_PER_CONNECTION", value_name = "N")]
    max_streams_per_connection: Option<u32>,
    /// Connections open at once; one more is closed when accepted [default: 4096].
    #[arg(long, env = "DOORSTEP_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<u32>,
    /// Long exports (no limit, or over 1000 events) one token may run at once [default: 2].
    #[arg(long, env = "DOORSTEP_MAX_EXPORTS_PER_TOKEN", value_name = "N")]
    max_exports_per_token: Option<u32>,
    /// Long exports running at once on the whole service [default: 8].
    #[arg(long, env = "DOORSTEP_MAX_EXPORTS", value_name = "N")]
    max_exports: Option<u32>,
    /// Seconds between HTTP/2 pings that check a connection's peer is still there [default: 60].
    #[arg(
        long,
        env = "DOORSTEP_HTTP2_KEEPALIVE_INTERVAL",
        value_name = "SECONDS"
    )]
    http2_keepalive_interval: Option<u64>,
    /// Seconds a ping may go unanswered before the connection is dropped [default: 20].
    #[arg(long, env = "DOORSTEP_HTTP2_KEEPALIVE_TIMEOUT", value_name = "SECONDS")]
    http2_keepalive_timeout: Option<u64>,
    /// Seconds a connection with no call in flight stays open; 0: no limit [default: 300].
    #[arg(long, env = "DOORSTEP_IDLE_TIMEOUT", value_name = "SECONDS")]
    idle_timeout: Option<u64>,
    /// Events a ticket's history may hold and still take notes [default: 900].
    #[arg(long, env = "DOORSTEP_MAX_HISTORY_FOR_NOTES", value_name = "N")]
    max_history_for_notes: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<String>,
    database_url: Option<String>,
    demo: Option<bool>,
    auth: Option<String>,
    /// Read by `telemetry` before the rest (logging starts first).
    log_format: Option<String>,
    otlp_endpoint: Option<String>,
    metrics_listen: Option<String>,
    cors_origins: Option<Vec<String>>,
    max_streams_per_token: Option<u32>,
    max_streams_per_connection: Option<u32>,
    max_connections: Option<u32>,
    max_exports_per_token: Option<u32>,
    max_exports: Option<u32>,
    http2_keepalive_interval: Option<u64>,
    http2_keepalive_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    max_history_for_notes: Option<u32>,
    /// `[[notify.webhook]]` and `[[notify.sms]]` rules (see `notify`).
    notify: Option<toml::Value>,
}

/// What `serve` runs with, once flags, environment and the config file are merged.
#[derive(Debug)]
struct Settings {
    listen: SocketAddr,
    database_url: String,
    demo: bool,
    sla: bool,
    /// Bearer tokens are required.
    auth_required: bool,
    rate_limit: doorstep_server::RateLimit,
    tls: Option<doorstep_server::Tls>,
    /// Where `/metrics` is served; `None`: no metrics.
    metrics_listen: Option<SocketAddr>,
    /// The web origins allowed to call over gRPC-Web (CORS); empty: none.
    cors_origins: Vec<String>,
    limits: doorstep_server::Limits,
    /// Notification rules; the notifier runs beside the scheduler.
    notify: doorstep_notify::Rules,
}

/// The service's bounds from flags, environment (a flag or variable wins) and the config file, each
/// refused when it is 0 (but the idle timeout, where 0 means none).
fn limits(args: &LimitArgs, file: &ConfigFile) -> Result<doorstep_server::Limits> {
    let defaults = doorstep_server::Limits::default();
    let count = |name: &str, flag: Option<u32>, key: Option<u32>, default: usize| match flag.or(key)
    {
        None => Ok(default),
        Some(0) => Err(anyhow!(
            "invalid {name} 0 (at least 1; flag --{}, config key {name})",
            name.replace('_', "-")
        )),
        Some(n) => Ok(n as usize),
    };
    let seconds =
        |name: &str, flag: Option<u64>, key: Option<u64>, default: Duration| match flag.or(key) {
            None => Ok(default),
            Some(0) => Err(anyhow!(
                "invalid {name} 0 (seconds, at least 1; flag --{}, config key {name})",
                name.replace('_', "-")
            )),
            Some(n) => Ok(Duration::from_secs(n)),
        };
    Ok(doorstep_server::Limits {
        max_streams_per_token: count(
            "max_streams_per_token",
            args.max_streams_per_token,
            file.max_streams_per_token,
            defaults.max_streams_per_token,
        )?,
        max_streams_per_connection: count(
            "max_streams_per_connection",
            args.max_streams_per_connection,
            file.max_streams_per_connection,
            defaults.max_streams_per_connection as usize,
        )? as u32,
        max_connections: count(
            "max_connections",
            args.max_connections,
            file.max_connections,
            defaults.max_connections,
        )?,
        max_exports_per_token: count(
            "max_exports_per_token",
            args.max_exports_per_token,
            file.max_exports_per_token,
            defaults.max_exports_per_token,
        )?,
        max_exports: count(
            "max_exports",
            args.max_exports,
            file.max_exports,
            defaults.max_exports,
        )?,
        http2_keepalive_interval: seconds(
            "http2_keepalive_interval",
            args.http2_keepalive_interval,
            file.http2_keepalive_interval,
            defaults.http2_keepalive_interval,
        )?,
        http2_keepalive_timeout: seconds(
            "http2_keepalive_timeout",
            args.http2_keepalive_timeout,
            file.http2_keepalive_timeout,
            defaults.http2_keepalive_timeout,
        )?,
        max_history_for_notes: count(
            "max_history_for_notes",
            args.max_history_for_notes,
            file.max_history_for_notes,
            defaults.max_history_for_notes as usize,
        )? as i64,
        idle_timeout: match args.idle_timeout.or(file.idle_timeout) {
            None => defaults.idle_timeout,
            Some(0) => None,
            Some(n) => Some(Duration::from_secs(n)),
        },
    })
}

/// A `--cors-origin`: a scheme, a host and maybe a port, nothing else (what a browser sends in
/// `Origin`), without a trailing slash.
fn cors_origin(origin: &str) -> Result<String> {
    let origin = origin.trim().trim_end_matches('/');
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ', '*']) => {
            Ok(origin.to_owned())
        }
        _ => bail!(
            "invalid CORS origin {origin:?} (expected SCHEME://HOST[:PORT], e.g. \
             https://console.example.org)"
        ),
    }
}

/// A `--metrics-listen` address.
pub(crate) fn metrics_address(addr: &str) -> Result<SocketAddr> {
    addr.trim().parse().map_err(|_| {
        anyhow!("invalid metrics listen address {addr:?} (expected HOST:PORT, e.g. 0.0.0.0:9090)")
    })
}

fn settings(args: ServeArgs) -> Result<Settings> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            toml::from_str::<ConfigFile>(&text).map_err(|e| {
                anyhow!(
                    "config file {}: {}",
                    path.display(),
                    e.message().replace('\n', " ")
                )
            })?
        }
        None => ConfigFile::default(),
    };
    let limits = limits(&args.limits, &file)?;
    let notify = match &args.config {
        Some(path) => crate::notify::rules(file.notify.as_ref(), path)?,
        None => doorstep_notify::Rules::default(),
    };
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:50051".to_owned());
    let listen: SocketAddr = listen.parse().map_err(|_| {
        anyhow!("invalid listen address {listen:?} (expected HOST:PORT, e.g. 127.0.0.1:50051)")
    })?;
    let auth_required = match args.auth.or(file.auth).as_deref().map(str::trim) {
        None => !listen.ip().is_loopback(),
        Some("required") => true,
        Some("none") if listen.ip().is_loopback() => false,
        Some("none") => {
            bail!(
                "refusing to serve {listen} with --auth none: only a loopback address may go \
                 without authentication (use --auth required and `doorstep token create`)"
            );
        }
        Some(other) => {
            bail!("invalid auth {other:?} (expected required or none)");
        }
    };
    if args.rate_limit == 0 {
        bail!("invalid --rate-limit 0 (calls a second; at least 1)");
    }
    let read = |what: &str, path: &PathBuf| {
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(doorstep_server::Tls {
            cert_chain: read("TLS certificate", cert)?,
            key: read("TLS key", key)?,
            client_ca: args
                .tls_client_ca
                .as_ref()
                .map(|ca| read("TLS client CA", ca))
                .transpose()?,
        }),
        _ => None,
    };
    let metrics_listen = args
        .metrics_listen
        .or(file.metrics_listen)
        .as_deref()
        .map(metrics_address)
        .transpose()?;
    let cors_origins = if args.cors_origins.is_empty() {
        file.cors_origins.unwrap_or_default()
    } else {
        args.cors_origins
    };
    let cors_origins = cors_origins
        .iter()
        .filter(|origin| !origin.trim().is_empty())
        .map(|origin| cors_origin(origin))
        .collect::<Result<Vec<_>>>()?;
    Ok(Settings {
        limits,
        notify,
        cors_origins,
        metrics_listen,
        tls,
        auth_required,
        rate_limit: doorstep_server::RateLimit {
            per_second: f64::from(args.rate_limit),
            burst: f64::from(args.rate_limit) * 4.0,
        },
        listen,
        database_url: args
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| crate::DEFAULT_DATABASE_URL.to_owned()),
        demo: args.demo || file.demo.unwrap_or(false),
        sla: !args.no_sla,
    })
}

/// The config file's log and trace keys, read before logging starts (the rest is read by `run`).
pub(crate) fn telemetry_keys(args: &ServeArgs) -> Result<crate::telemetry::FileKeys> {
    let Some(path) = &args.config else {
        return Ok(crate::telemetry::FileKeys::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let file = toml::from_str::<ConfigFile>(&text).map_err(|e| {
        anyhow!(
            "config file {}: {}",
            path.display(),
            e.message().replace('\n', " ")
        )
    })?;
    Ok(crate::telemetry::FileKeys {
        log_format: file.log_format,
        otlp_endpoint: file.otlp_endpoint,
    })
}

pub(crate) async fn run(args: ServeArgs) -> Result<()> {
    let settings = settings(args)?;
    let (engine, store) = crate::notify::open(&settings.database_url).await?;
    if settings.demo {
        let counts = engine
            .import_district(DEMO_DISTRICT)
            .await
            .context("cannot load the demo district")?;
        tracing::info!(
            nodes = counts.nodes,
            units = counts.units,
            catalogue = counts.catalogue_entries,
            "demo district loaded"
        );
    }
    if engine.district().jurisdiction.nodes().next().is_none() {
        tracing::warn!(
            "the district is empty: no ticket can be filed until one is loaded \
             (doorstep district import FILE, or serve --demo for the example district)"
        );
    }
    if !settings.sla && !settings.notify.is_empty() {
        tracing::warn!(
            "notification rules ignored: with --no-sla the notifier runs beside `doorstep sla`"
        );
    }
    let notifier = if settings.sla {
        crate::notify::prepare(&engine, &store, settings.notify)?
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let auth: Arc<dyn Authenticator> = if settings.auth_required {
        tracing::info!("authentication required: bearer tokens (doorstep token create)");
        Arc::new(TokenAuthenticator::new(Arc::clone(&engine)))
    } else {
        tracing::warn!(
            "authentication is off: every caller is the local all-access principal (listening on {})",
            settings.listen
        );
        Arc::new(LocalAllAccess)
    };
    let running = doorstep_server::start_limited(
        Arc::clone(&engine),
        auth,
        listener,
        doorstep_server::Options {
            rate_limit: settings.rate_limit,
            tls: settings.tls,
            cors_origins: settings.cors_origins,
        },
        settings.limits,
    )
    .await
    .context("cannot start the server")?;
    if let Some(addr) = settings.metrics_listen {
        crate::exporter::serve(addr, Arc::clone(&engine), running.shutdown_signal()).await?;
    }
    // Changes made through other replicas, schedulers or CLI commands reach this process.
    tokio::spawn(engine.config_follower(running.shutdown_signal()));
    let scheduler = settings.sla.then(|| {
        let scheduler = doorstep_sla::Scheduler::new(
            Arc::clone(&engine),
            doorstep_sla::SchedulerConfig::default(),
        );
        let stop = running.shutdown_signal();
        tokio::spawn(async move { scheduler.run(stop).await })
    });
    let notifier = notifier.map(|n| tokio::spawn(n.run(running.shutdown_signal())));
    // Listening for signals before saying so: a SIGTERM sent at once is not lost to the default
    // handler (which would end the process without draining).
    let signalled = shutdown_signal();
    println!("doorstep listening on {}", running.local_addr);
    signalled.await;
    tracing::info!("signal received: shutting down");
    running.shutdown().await.context("server error")?;
    if let Some(scheduler) = scheduler {
        let _ = scheduler.await;
    }
    if let Some(notifier) = notifier {
        let _ = notifier.await;
    }
    crate::close_databases().await
}

/// `doorstep sla`: the scheduler alone, beside service replicas that run with `--no-sla`.
pub(crate) async fn run_sla(
    database_url: Option<String>,
    config: Option<PathBuf>,
    metrics: Option<SocketAddr>,
) -> Result<()> {
    let (rules, file_url) = match &config {
        Some(path) => crate::notify::sla_config(path)?,
        None => (doorstep_notify::Rules::default(), None),
    };
    let database_url = database_url
        .or(file_url)
        .unwrap_or_else(|| crate::DEFAULT_DATABASE_URL.to_owned());
    let (engine, store) = crate::notify::open(&database_url).await?;
    let notifier = crate::notify::prepare(&engine, &store, rules)?;
    let signalled = shutdown_signal();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    if let Some(addr) = metrics {
        crate::exporter::serve(addr, Arc::clone(&engine), stopped.clone()).await?;
    }
    tokio::spawn(engine.config_follower(stopped.clone()));
    let scheduler = doorstep_sla::Scheduler::new(engine, doorstep_sla::SchedulerConfig::default());
    let notifier = notifier.map(|n| tokio::spawn(n.run(stopped.clone())));
    let task = tokio::spawn(async move { scheduler.run(stopped).await });
    signalled.await;
    let _ = stop.send(true);
    let _ = task.await;
    if let Some(notifier) = notifier {
        let _ = notifier.await;
    }
    crate::close_databases().await
}

/// Listens for SIGTERM and SIGINT from the moment it is called, not from its first poll; the future
/// ends at the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, interrupt) {
                (Some(mut term), Some(mut interrupt)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                (Some(mut term), None) => {
                    term.recv().await;
                }
                (None, Some(mut interrupt)) => {
                    interrupt.recv().await;
                }
                (None, None) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_flags_then_the_file_then_the_defaults() {
        let file: ConfigFile = toml::from_str(
            "max_streams_per_token = 8\nmax_connections = 100\nidle_timeout = 0\n\
             http2_keepalive_interval = 30\n",
        )
        .unwrap();
        let args = LimitArgs {
            max_connections: Some(50),
            ..LimitArgs::default()
        };
        let merged = limits(&args, &file).unwrap();
        let defaults = doorstep_server::Limits::default();
        assert_eq!(merged.max_streams_per_token, 8);
        assert_eq!(merged.max_connections, 50, "the flag wins");
        assert_eq!(merged.idle_timeout, None, "0: no idle limit");
        assert_eq!(merged.http2_keepalive_interval, Duration::from_secs(30));
        assert_eq!(merged.max_exports, defaults.max_exports);
        let zero = LimitArgs {
            max_exports: Some(0),
            ..LimitArgs::default()
        };
        let e = limits(&zero, &ConfigFile::default()).unwrap_err();
        assert!(e.to_string().contains("--max-exports"), "{e}");
    }

    #[test]
    fn a_cors_origin_is_a_scheme_a_host_and_maybe_a_port() {
        assert_eq!(
            cors_origin(" https://console.example.org/ ").unwrap(),
            "https://console.example.org"
        );
        assert_eq!(
            cors_origin("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "console.example.org",
            "https://",
            "https://console.example.org/console/",
            "*",
            "ftp://x",
        ] {
            assert!(cors_origin(bad).is_err(), "{bad}");
        }
    }
}
