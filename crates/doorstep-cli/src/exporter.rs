//! `--metrics-listen ADDR` of `serve` and `sla`: the process's metrics (the `metrics` facade,
//! recorded by the Prometheus exporter's recorder) answered to `GET /metrics` in the Prometheus text
//! format, on a listener of its own: plain HTTP/1.1, one request per connection, nothing else served.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use doorstep_engine::Engine;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Call durations: from a millisecond read to a ten-second report.
const RPC_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Firing lateness: the scheduler's poll is a second; minutes mean it is behind or was down.
const LATENESS_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];
/// The longest request head read, and how long a scraper may take to send it.
const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How often histogram samples are folded in when nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs the recorder, starts the gauges' sampler and serves `/metrics` on `addr` until
/// `shutdown`; the address bound (for port 0).
pub(crate) async fn serve(
    addr: SocketAddr,
    engine: Arc<Engine>,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(doorstep_server::observe::RPC_DURATION.to_owned()),
            RPC_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(doorstep_sla::LATENESS.to_owned()),
                LATENESS_BUCKETS,
            )
        })
        .map_err(|e| anyhow!("metrics: {e}"))?
        .install_recorder()
        .map_err(|e| anyhow!("cannot install the metrics recorder: {e}"))?;
    describe();
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let local = listener.local_addr()?;
    tokio::spawn(Arc::clone(&engine).sample_gauges(shutdown.clone()));
    tokio::spawn(upkeep(handle.clone(), shutdown.clone()));
    tokio::spawn(accept(listener, handle, shutdown));
    tracing::info!(addr = %local, "metrics on http://{local}/metrics");
    println!("metrics on {local}");
    Ok(local)
}

fn describe() {
    use doorstep_engine::observe as engine;
    use doorstep_server::observe as server;
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(server::RPC_REQUESTS, "gRPC calls by method and code");
    describe_histogram!(
        server::RPC_DURATION,
        Unit::Seconds,
        "gRPC call durations by method (a stream: its whole life)"
    );
    describe_gauge!(server::WATCH_STREAMS, "WatchEvents streams open");
    describe_histogram!(
        doorstep_sla::LATENESS,
        Unit::Seconds,
        "from a timer's due instant to the commit of its firing"
    );
    describe_counter!(
        doorstep_sla::FIRED,
        "events the SLA scheduler recorded, by kind"
    );
    describe_gauge!(engine::DUE_TIMERS, "armed timers due now and not yet fired");
    describe_gauge!(
        engine::TICKETS_OPEN,
        "open tickets (not resolved, not terminal) by level"
    );
    describe_gauge!(
        engine::PROJECTOR_LAG,
        "events not yet folded into the reporting rows"
    );
    describe_gauge!(engine::DB_POOL, "database pool connections by state");
    describe_counter!(
        engine::CALENDAR_FALLBACK,
        "deadlines reckoned on the Monday-Friday fallback (a year without a calendar notice)"
    );
    describe_counter!(
        doorstep_notify::ATTEMPTS,
        "notification attempts by rule and outcome (done, retry, failed)"
    );
    describe_gauge!(
        doorstep_notify::PENDING,
        "notification deliveries not done yet"
    );
    describe_gauge!(
        doorstep_notify::FAILED,
        "notification deliveries set aside as failed (doorstep notify retry ID)"
    );
    describe_gauge!(
        doorstep_notify::LAG,
        Unit::Seconds,
        "age of the oldest pending notification delivery (0: none)"
    );
    describe_gauge!(
        doorstep_notify::EVENTS_BEHIND,
        "committed events the notifier has not considered yet"
    );
}

async fn upkeep(handle: PrometheusHandle, mut shutdown: watch::Receiver<bool>) {
    while tokio::time::timeout(UPKEEP, shutdown.wait_for(|stop| *stop))
        .await
        .is_err()
    {
        handle.run_upkeep();
    }
}

async fn accept(
    listener: TcpListener,
    handle: PrometheusHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => return,
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &handle).await {
                tracing::debug!(error = %e, "metrics: a scrape failed");
            }
        });
    }
}

/// Answers one request and closes the connection.
async fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| std::io::Error::other("request head not sent in time"))??;
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            handle.render(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET /metrics\n".into(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The request's head (request line and headers), up to the blank line.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}
