//! `doorstep report sla`: the SLA report for people (a table), for jobs (CSV, JSON) and as a picture
//! (an SVG of weekly volume with the on-time rate), read from the database directly or from a server.
//!
//! Dates are local dates in the district's time zone (the policy's `time_zone`), and both ends are
//! inclusive: `--from 2026-11-01 --to 2026-11-30` is the whole of November, the window
//! [2026-11-01 00:00, 2026-12-01 00:00) local. The output carries no personal data: figures only.

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use chrono_tz::Tz;
use doorstep_domain::{NodeCode, Policy};
use doorstep_engine::report::{
    PeriodStep, ReportBy, SlaReport, SlaReportRequest, SlaRow, local_midnight,
};
use doorstep_engine::{Engine, Principal};
use doorstep_proto::v1 as w;
use tonic::metadata::{Ascii, MetadataValue};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ReportCommand {
    /// The SLA figures of a subtree over local dates (both inclusive).
    Sla(SlaArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct SlaArgs {
    /// The subtree root, e.g. lixia or lixia/jiefanglu.
    #[arg(long)]
    node: String,
    /// First local date, YYYY-MM-DD (from its 00:00 in the district's time zone).
    #[arg(long)]
    from: String,
    /// Last local date, YYYY-MM-DD, inclusive (up to the next day's 00:00).
    #[arg(long)]
    to: String,
    /// Rows: one for the node (default), child-node, level, category or period.
    #[arg(long, value_name = "GROUPING")]
    by: Option<String>,
    /// The period step with --by period: day, week (ISO, Monday first), month or year.
    #[arg(long)]
    period: Option<String>,
    /// table (default), csv or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// Also write an SVG chart of weekly volume and the on-time rate to FILE.
    #[arg(long, value_name = "FILE")]
    chart: Option<String>,
    /// sqlite://PATH or postgres://... [default: sqlite://doorstep.db].
    #[arg(long, env = "DOORSTEP_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Ask a running service instead of the database: HOST:PORT (e.g. 127.0.0.1:50051) or a URL.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "database_url")]
    server: Option<String>,
    /// The bearer token for --server (a reporter, supervisor or admin token); needed where the service
    /// runs with --auth required.
    #[arg(long, env = "DOORSTEP_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Table,
    Csv,
    Json,
}

fn local_date(flag: &str, text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        anyhow!(
            "invalid date {text:?} for {flag} (expected a local date YYYY-MM-DD, e.g. 2026-11-01)"
        )
    })
}

fn parse_by(by: Option<&str>, period: Option<&str>) -> Result<ReportBy> {
    let step = match period.map(str::trim) {
        None => None,
        Some("day") => Some(PeriodStep::Day),
        Some("week") => Some(PeriodStep::Week),
        Some("month") => Some(PeriodStep::Month),
        Some("year") => Some(PeriodStep::Year),
        Some(other) => {
            bail!("invalid value {other:?} for --period (expected day, week, month or year)")
        }
    };
    Ok(match (by.map(str::trim), step) {
        (Some("period"), None) => bail!("--by period needs --period day, week, month or year"),
        (Some("period") | None, Some(step)) => ReportBy::Period(step),
        (None, None) => ReportBy::Whole,
        (Some(_), Some(_)) => bail!("--period applies only with --by period"),
        (Some("child-node"), None) => ReportBy::ChildNode,
        (Some("level"), None) => ReportBy::Level,
        (Some("category"), None) => ReportBy::Category,
        (Some(other), None) => bail!(
            "invalid value {other:?} for --by (expected child-node, level, category or period)"
        ),
    })
}

/// Where the figures come from.
enum Source {
    Database(Arc<Engine>),
    Server(Server),
}

/// A running service and the credentials every call to it carries.
struct Server {
    channel: tonic::transport::Channel,
    /// `Bearer <token>`, when a token was given.
    authorization: Option<MetadataValue<Ascii>>,
}

impl Server {
    /// `message` with the token attached.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }

    /// The server's refusal as one line: the gRPC code, its message, and what to do about a missing
    /// token.
    fn refused(&self, status: &tonic::Status) -> anyhow::Error {
        let hint = match status.code() {
            tonic::Code::Unauthenticated if self.authorization.is_none() => {
                " (pass --token or set DOORSTEP_TOKEN)"
            }
            _ => "",
        };
        anyhow!(
            "the server answered {}: {}{hint}",
            code_name(status.code()),
            status.message()
        )
    }
}

/// The gRPC name of a status code, as other gRPC tools print it (`UNAUTHENTICATED`).
fn code_name(code: tonic::Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// `--server` as an endpoint URI: HOST:PORT is plain HTTP/2, as gRPC clients take it; a URL is used as
/// given.
fn server_uri(server: &str) -> String {
    let server = server.trim();
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

impl Source {
    async fn open(args: &SlaArgs) -> Result<Source> {
        if let Some(server) = &args.server {
            let endpoint = tonic::transport::Endpoint::from_shared(server_uri(server))
                .ok()
                // Without a scheme the port is required: "localhost" alone is a mistake, not port 80.
                .filter(|e| {
                    e.uri().host().is_some() && (server.contains("://") || e.uri().port().is_some())
                })
                .ok_or_else(|| {
                    anyhow!(
                        "invalid value {server:?} for --server (expected HOST:PORT, e.g. 127.0.0.1:50051)"
                    )
                })?;
            let authorization = match args.token.as_deref().map(str::trim) {
                None | Some("") => None,
                // The token is a secret: the error does not repeat it.
                Some(token) => Some(
                    format!("Bearer {token}")
                        .parse()
                        .map_err(|_| anyhow!("invalid value for --token (not a dst_… token)"))?,
                ),
            };
            let channel = endpoint
                .connect()
                .await
                .with_context(|| format!("cannot reach the server at {server}"))?;
            return Ok(Source::Server(Server {
                channel,
                authorization,
            }));
        }
        let url = args
            .database_url
            .clone()
            .unwrap_or_else(|| crate::DEFAULT_DATABASE_URL.to_owned());
        Ok(Source::Database(crate::open_engine(&url).await?))
    }

    async fn time_zone(&self) -> Result<Tz> {
        match self {
            Source::Database(engine) => Ok(engine.policy(0).await?.time_zone),
            Source::Server(server) => {
                let mut admin =
                    w::admin_service_client::AdminServiceClient::new(server.channel.clone());
                let policy = admin
                    .get_policy(server.request(w::GetPolicyRequest { version: 0 }))
                    .await
                    .map_err(|s| server.refused(&s))?
                    .into_inner();
                Ok(Policy::from_toml(&policy.toml)
                    .context("the server's current policy")?
                    .time_zone)
            }
        }
    }

    async fn report(&self, request: &SlaReportRequest) -> Result<SlaReport> {
        match self {
            Source::Database(engine) => Ok(engine.sla_report(&Principal::local(), request).await?),
            Source::Server(server) => {
                let mut client =
                    w::report_service_client::ReportServiceClient::new(server.channel.clone());
                let ts = |t: DateTime<Utc>| Some(doorstep_server::convert::timestamp(t));
                let (group_by, period) = match request.by {
                    ReportBy::Whole => (w::GroupBy::Unspecified, w::Period::Unspecified),
                    ReportBy::ChildNode => (w::GroupBy::ChildNode, w::Period::Unspecified),
                    ReportBy::Level => (w::GroupBy::Level, w::Period::Unspecified),
                    ReportBy::Category => (w::GroupBy::Category, w::Period::Unspecified),
                    ReportBy::Period(step) => (
                        w::GroupBy::Period,
                        match step {
                            PeriodStep::Day => w::Period::Day,
                            PeriodStep::Week => w::Period::Week,
                            PeriodStep::Month => w::Period::Month,
                            PeriodStep::Year => w::Period::Year,
                        },
                    ),
                };
                let report = client
                    .get_sla_report(server.request(w::SlaReportRequest {
                        node: request.node.to_string(),
                        from: ts(request.from),
                        to: ts(request.to),
                        group_by: group_by as i32,
                        period: period as i32,
                    }))
                    .await
                    .map_err(|s| server.refused(&s))?
                    .into_inner();
                doorstep_server::report_service::report_from_wire(&report).context("server")
            }
        }
    }
}

pub(crate) async fn run(command: ReportCommand) -> Result<()> {
    let ReportCommand::Sla(args) = command;
    let node = NodeCode::parse_as("--node", args.node.trim())?;
    let from = local_date("--from", &args.from)?;
    let to = local_date("--to", &args.to)?;
    if to < from {
        bail!("--to {to} is before --from {from} (both dates are inclusive)");
    }
    let by = parse_by(args.by.as_deref(), args.period.as_deref())?;
    let format = match args.format.trim() {
        "table" => Format::Table,
        "csv" => Format::Csv,
        "json" => Format::Json,
        other => bail!("invalid value {other:?} for --format (expected table, csv or json)"),
    };
    let source = Source::open(&args).await?;
    let tz = source.time_zone().await?;
    let window = |by| SlaReportRequest {
        node: node.clone(),
        from: local_midnight(from, &tz),
        to: local_midnight(to + chrono::Days::new(1), &tz),
        by,
    };
    let report = source.report(&window(by)).await?;
    let out = match format {
        Format::Table => table(&node, from, to, &report, &tz),
        Format::Csv => csv(&report),
        Format::Json => json(&node, from, to, &report)?,
    };
    print!("{out}");
    if let Some(path) = &args.chart {
        let weekly = match by {
            ReportBy::Period(PeriodStep::Week) => report,
            _ => {
                source
                    .report(&window(ReportBy::Period(PeriodStep::Week)))
                    .await?
            }
        };
        std::fs::write(path, chart(&node, &weekly))
            .with_context(|| format!("cannot write the chart to {path}"))?;
    }
    Ok(())
}

fn percent(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{:.2}%", x * 100.0)
    }
}

fn hours(seconds: f64) -> String {
    if seconds.is_nan() {
        "-".into()
    } else {
        format!("{:.1}", seconds / 3600.0)
    }
}

fn table(node: &NodeCode, from: NaiveDate, to: NaiveDate, report: &SlaReport, tz: &Tz) -> String {
    let header = [
        "key",
        "received",
        "resolved",
        "on time",
        "on-time%",
        "overdue",
        "breached",
        "escalated",
        "dispatched",
        "ack%",
        "callbacks",
        "satisfied%",
        "solved%",
        "repeats",
        "mean h",
        "p50 h",
        "p90 h",
        "year before",
        "change",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in &report.rows {
        rows.push(vec![
            r.key.clone(),
            r.received.to_string(),
            r.resolved.to_string(),
            r.resolved_on_time.to_string(),
            percent(r.on_time_rate),
            r.overdue_now.to_string(),
            r.breached_now.to_string(),
            r.escalations.to_string(),
            r.dispatched.to_string(),
            percent(r.acknowledge_rate),
            r.callbacks.to_string(),
            percent(r.satisfaction_rate),
            percent(r.resolution_rate),
            r.repeat_requests.to_string(),
            hours(r.resolve_seconds_mean),
            hours(r.resolve_seconds_p50),
            hours(r.resolve_seconds_p90),
            r.received_year_before.to_string(),
            percent(r.received_change),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "SLA report for {node}, {from} to {to} (local dates, inclusive), as of {}\n",
        report
            .as_of
            .with_timezone(tz)
            .to_rfc3339_opts(SecondsFormat::Secs, false)
    );
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, width))| {
                let pad = width - cell.chars().count();
                if c == 0 {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            let _ = writeln!(out, "{}", rule.join("  "));
        }
    }
    out
}

/// The proto's field names, in its order.
const FIELDS: [&str; 22] = [
    "key",
    "received",
    "resolved",
    "resolved_on_time",
    "overdue_now",
    "escalations",
    "dispatched",
    "acknowledged_on_time",
    "callbacks",
    "callbacks_satisfied",
    "callbacks_solved",
    "repeat_requests",
    "on_time_rate",
    "acknowledge_rate",
    "resolution_rate",
    "satisfaction_rate",
    "resolve_seconds_mean",
    "resolve_seconds_p50",
    "resolve_seconds_p90",
    "received_year_before",
    "received_change",
    "breached_now",
];

/// A row's values in [`FIELDS`] order: integers, or floats (`None` for NaN).
fn values(r: &SlaRow) -> Vec<Value> {
    let f = |x: f64| {
        if x.is_nan() {
            Value::Null
        } else {
            Value::Float(x)
        }
    };
    vec![
        Value::Text(r.key.clone()),
        Value::Int(r.received),
        Value::Int(r.resolved),
        Value::Int(r.resolved_on_time),
        Value::Int(r.overdue_now),
        Value::Int(r.escalations),
        Value::Int(r.dispatched),
        Value::Int(r.acknowledged_on_time),
        Value::Int(r.callbacks),
        Value::Int(r.callbacks_satisfied),
        Value::Int(r.callbacks_solved),
        Value::Int(r.repeat_requests),
        f(r.on_time_rate),
        f(r.acknowledge_rate),
        f(r.resolution_rate),
        f(r.satisfaction_rate),
        f(r.resolve_seconds_mean),
        f(r.resolve_seconds_p50),
        f(r.resolve_seconds_p90),
        Value::Int(r.received_year_before),
        f(r.received_change),
        Value::Int(r.breached_now),
    ]
}

enum Value {
    Text(String),
    Int(i64),
    Float(f64),
    Null,
}

fn csv(report: &SlaReport) -> String {
    let mut out = FIELDS.join(",");
    out.push('\n');
    for r in &report.rows {
        let cells: Vec<String> = values(r)
            .into_iter()
            .map(|v| match v {
                Value::Text(s) if s.contains([',', '"', '\n']) => {
                    format!("\"{}\"", s.replace('"', "\"\""))
                }
                Value::Text(s) => s,
                Value::Int(i) => i.to_string(),
                Value::Float(x) => x.to_string(),
                Value::Null => String::new(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn json(node: &NodeCode, from: NaiveDate, to: NaiveDate, report: &SlaReport) -> Result<String> {
    let rows: Vec<serde_json::Value> = report
        .rows
        .iter()
        .map(|r| {
            let object: serde_json::Map<String, serde_json::Value> = FIELDS
                .iter()
                .zip(values(r))
                .map(|(name, v)| {
                    let v = match v {
                        Value::Text(s) => serde_json::Value::from(s),
                        Value::Int(i) => serde_json::Value::from(i),
                        Value::Float(x) => serde_json::Value::from(x),
                        Value::Null => serde_json::Value::Null,
                    };
                    ((*name).to_owned(), v)
                })
                .collect();
            serde_json::Value::Object(object)
        })
        .collect();
    let doc = serde_json::json!({
        "node": node.as_str(),
        "from": from.to_string(),
        "to": to.to_string(),
        "to_inclusive": true,
        "as_of": report.as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
        "rows": rows,
    });
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    Ok(text)
}

/// Escapes text for XML.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Weekly volume as bars (left axis) and the on-time rate as a line (right axis, 0–100%); a week
/// with nothing resolved has no rate and breaks the line.
fn chart(node: &NodeCode, weekly: &SlaReport) -> String {
    let (width, height) = (860.0_f64, 420.0_f64);
    let (left, right, top, bottom) = (60.0, 60.0, 50.0, 70.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let n = weekly.rows.len().max(1) as f64;
    let max = weekly
        .rows
        .iter()
        .map(|r| r.received)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = plot_w / n;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="24" font-size="15">{}: tickets received per week, and the on-time rate</text>"#,
        xml(node.as_str())
    );
    // Axes and gridlines: volume on the left, rate on the right.
    for i in 0..=4 {
        let y = top + plot_h * (1.0 - f64::from(i) / 4.0);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            left + plot_w
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{:.0}</text>"#,
            left - 6.0,
            y + 4.0,
            max * f64::from(i) / 4.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}%</text>"#,
            left + plot_w + 6.0,
            y + 4.0,
            i * 25
        );
    }
    let mut line = Vec::new();
    let mut segments = Vec::new();
    for (i, r) in weekly.rows.iter().enumerate() {
        let x = left + slot * i as f64;
        let h = plot_h * r.received as f64 / max;
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#6b9bd1"><title>week of {}: {} received</title></rect>"##,
            x + slot * 0.15,
            top + plot_h - h,
            slot * 0.7,
            xml(&r.key),
            r.received
        );
        if weekly.rows.len() <= 20 || i % (weekly.rows.len() / 10).max(1) == 0 {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end" transform="rotate(-45 {:.1} {:.1})">{}</text>"#,
                x + slot * 0.5,
                top + plot_h + 14.0,
                x + slot * 0.5,
                top + plot_h + 14.0,
                xml(&r.key)
            );
        }
        if r.on_time_rate.is_nan() {
            if !line.is_empty() {
                segments.push(std::mem::take(&mut line));
            }
        } else {
            line.push(format!(
                "{:.1},{:.1}",
                x + slot * 0.5,
                top + plot_h * (1.0 - r.on_time_rate)
            ));
        }
    }
    segments.push(line);
    for points in segments.iter().filter(|p| !p.is_empty()) {
        let _ = writeln!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="#d9534f" stroke-width="2"/>"##,
            points.join(" ")
        );
        for p in points {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(svg, r##"<circle cx="{x}" cy="{y}" r="3" fill="#d9534f"/>"##);
        }
    }
    let legend_y = height - 14.0;
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{:.1}" width="12" height="12" fill="#6b9bd1"/><text x="{:.1}" y="{legend_y:.1}">received (left axis)</text>"##,
        legend_y - 10.0,
        left + 16.0
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#d9534f" stroke-width="2"/><text x="{:.1}" y="{legend_y:.1}">resolved on time (right axis)</text>"##,
        left + 200.0,
        legend_y - 4.0,
        left + 220.0,
        legend_y - 4.0,
        left + 226.0
    );
    svg.push_str("</svg>\n");
    svg
}
