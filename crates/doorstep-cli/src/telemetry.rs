//! Logs and traces of the commands that run for a while (`serve`, `sla`, `migrate`, ...).
//!
//! Logs go to stderr, filtered by `DOORSTEP_LOG` (or `RUST_LOG`; `info` by default): text, or one
//! JSON object a line with `DOORSTEP_LOG_FORMAT=json` (or `log_format = "json"` in the serve config
//! file). Colour only on a terminal, and never with `NO_COLOR` set. A filter that does not parse stops
//! the command at start rather than logging less than asked.
//!
//! Traces (the `otel` feature): with `--otlp-endpoint` (`DOORSTEP_OTLP_ENDPOINT`, `otlp_endpoint` in
//! the config file) the spans of the doorstep crates (RPC, engine, store, scheduler batch) are exported
//! over OTLP/gRPC, whatever the log filter says.

use anyhow::{Result, anyhow, bail};
use tracing_subscriber::filter::{Directive, EnvFilter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry};

/// The trace flags of `serve` and `sla`.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct TraceArgs {
    /// Export traces over OTLP/gRPC to this collector, e.g. http://127.0.0.1:4317. (Builds with
    /// `--features otel`.)
    #[arg(long, env = "DOORSTEP_OTLP_ENDPOINT", value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,
}

/// What the serve config file says about logs and traces (flags and environment win over it).
#[derive(Debug, Default)]
pub(crate) struct FileKeys {
    pub(crate) log_format: Option<String>,
    pub(crate) otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

/// The tracing pipeline started by [`init`]; [`Telemetry::shutdown`] sends the spans still buffered.
#[derive(Debug)]
pub(crate) struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the trace export (nothing to do without one).
    pub(crate) fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(Err(e)) = self.provider.map(|provider| provider.shutdown()) {
            eprintln!("doorstep: warning: traces not all exported: {e}");
        }
    }
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Logs only: the commands without traces.
pub(crate) fn init_logs() -> Result<()> {
    init(&TraceArgs::default(), FileKeys::default()).map(|_| ())
}

/// Installs the process's subscriber: logs, and traces when an OTLP endpoint is set. Call inside
/// the runtime's context (the OTLP exporter's connection lives on it).
pub(crate) fn init(traces: &TraceArgs, file: FileKeys) -> Result<Telemetry> {
    let filter = log_filter()?;
    let format = log_format(file.log_format.as_deref())?;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour());
    let fmt: BoxedLayer = match format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).with_filter(filter).boxed(),
    };
    let endpoint = traces.otlp_endpoint.clone().or(file.otlp_endpoint);
    let endpoint = endpoint
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty());
    #[cfg(feature = "otel")]
    let (layers, provider) = match endpoint {
        Some(endpoint) => {
            let provider = otel::provider(&endpoint)?;
            (vec![fmt, otel::layer(&provider)], Some(provider))
        }
        None => (vec![fmt], None),
    };
    #[cfg(not(feature = "otel"))]
    let layers = match endpoint {
        Some(_) => bail!(
            "an OTLP endpoint is set (--otlp-endpoint, DOORSTEP_OTLP_ENDPOINT or otlp_endpoint in \
             the config file), but this doorstep was built without traces: build it with \
             `cargo build --features otel`"
        ),
        None => vec![fmt],
    };
    // A second call in one process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(Telemetry {
        #[cfg(feature = "otel")]
        provider,
    })
}

/// `DOORSTEP_LOG`, else `RUST_LOG`, else `info`; the first directive that does not parse is named.
fn log_filter() -> Result<EnvFilter> {
    let (variable, filter) = match std::env::var("DOORSTEP_LOG") {
        Ok(filter) => ("DOORSTEP_LOG", filter),
        Err(_) => match std::env::var("RUST_LOG") {
            Ok(filter) => ("RUST_LOG", filter),
            Err(_) => return Ok(EnvFilter::new("info")),
        },
    };
    // EnvFilter splits on commas the same way, so each piece is one directive it would parse.
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if let Err(e) = directive.parse::<Directive>() {
            bail!(
                "invalid {variable} directive {directive:?}: {e} (expected e.g. \
                 info,doorstep_engine=debug)"
            );
        }
    }
    EnvFilter::builder()
        .parse(&filter)
        .map_err(|e| anyhow!("invalid {variable} {filter:?}: {e}"))
}

/// `DOORSTEP_LOG_FORMAT`, else the config file's `log_format`, else text.
fn log_format(file: Option<&str>) -> Result<LogFormat> {
    let (source, value) = match std::env::var("DOORSTEP_LOG_FORMAT") {
        Ok(value) => ("DOORSTEP_LOG_FORMAT", value),
        Err(_) => match file {
            Some(value) => ("log_format in the config file", value.to_owned()),
            None => return Ok(LogFormat::Text),
        },
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => bail!("invalid {source} {value:?} (expected text or json)"),
    }
}

/// Colour codes only for a person at a terminal: files and container logs get plain text, and
/// `NO_COLOR` (https://no-color.org) turns them off everywhere.
fn colour() -> bool {
    use std::io::IsTerminal as _;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

#[cfg(feature = "otel")]
mod otel {
    use anyhow::{Context as _, Result};
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing::Level;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::Targets;

    use super::BoxedLayer;

    /// Spans go out in batches from a thread of their own, over one lazily connected channel.
    pub(super) fn provider(endpoint: &str) -> Result<SdkTracerProvider> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .with_context(|| format!("cannot set up trace export to {endpoint:?}"))?;
        let mut resource = Resource::builder();
        // OTEL_SERVICE_NAME, where set, names the service instead.
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("doorstep");
        }
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build())
    }

    /// The spans of the doorstep crates (their store spans are at DEBUG), whatever the log filter.
    pub(super) fn layer(provider: &SdkTracerProvider) -> BoxedLayer {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("doorstep"))
            .with_filter(Targets::new().with_target("doorstep", Level::DEBUG))
            .boxed()
    }
}
