//! ReportService: the SLA report and the resumable event export for reporting jobs, with their wire ↔
//! domain conversion.

use std::pin::Pin;
use std::sync::Arc;

use doorstep_engine::report::{PeriodStep, ReportBy, SlaReport, SlaReportRequest, SlaRow};
use doorstep_proto::v1 as w;
use doorstep_proto::v1::report_service_server::ReportService;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::error::to_status;
use crate::gate::Gate;
use crate::limits::{LONG_EXPORT_EVENTS, Streams};
use doorstep_engine::access::Rpc;
use doorstep_engine::engine::Engine;
use doorstep_engine::error::Error;

/// How many events an export reads from the store at a time: its memory bound.
const EXPORT_PAGE: u32 = 1000;

#[derive(Debug, Clone)]
pub struct Reports {
    engine: Arc<Engine>,
    gate: Arc<Gate>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// Open streams per token (ExportEvents here, WatchEvents in the ticket service).
    streams: Arc<Streams>,
}

impl Reports {
    pub fn new(
        engine: Arc<Engine>,
        gate: Arc<Gate>,
        shutdown: tokio::sync::watch::Receiver<bool>,
        streams: Arc<Streams>,
    ) -> Self {
        Reports {
            engine,
            gate,
            shutdown,
            streams,
        }
    }

    /// What a report costs against the rate limit: one unit per period step (each step is its own
    /// set of queries), one for any other grouping (one set of queries in all).
    async fn report_cost(&self, req: &SlaReportRequest) -> Result<u32, Error> {
        let ReportBy::Period(step) = req.by else {
            return Ok(1);
        };
        if req.from >= req.to {
            return Ok(1);
        }
        let tz = self.engine.policy(0).await?.time_zone;
        let steps = doorstep_engine::report::period_steps(step, req.from, req.to, &tz)?.len();
        Ok(u32::try_from(steps).unwrap_or(u32::MAX).max(1))
    }
}

/// A report request from the wire; every error names its field.
pub fn sla_request(req: &w::SlaReportRequest) -> Result<SlaReportRequest, Error> {
    if req.node.trim().is_empty() {
        return Err(Error::invalid("node", "is required: the subtree root"));
    }
    let node = convert::node("node", &req.node)?;
    let from = convert::instant("from", req.from.as_ref())?
        .ok_or_else(|| Error::invalid("from", "is required (inclusive)"))?;
    let to = convert::instant("to", req.to.as_ref())?
        .ok_or_else(|| Error::invalid("to", "is required (exclusive)"))?;
    let group = w::GroupBy::try_from(req.group_by)
        .map_err(|_| Error::invalid("group_by", format!("unknown value {}", req.group_by)))?;
    let period = w::Period::try_from(req.period)
        .map_err(|_| Error::invalid("period", format!("unknown value {}", req.period)))?;
    let step = match period {
        w::Period::Unspecified => None,
        w::Period::Day => Some(PeriodStep::Day),
        w::Period::Week => Some(PeriodStep::Week),
        w::Period::Month => Some(PeriodStep::Month),
        w::Period::Year => Some(PeriodStep::Year),
    };
    let by = match (group, step) {
        (w::GroupBy::Period, Some(step)) => ReportBy::Period(step),
        (w::GroupBy::Period, None) => {
            return Err(Error::invalid(
                "period",
                "is required with group_by PERIOD (DAY, WEEK, MONTH or YEAR)",
            ));
        }
        (_, Some(_)) => {
            return Err(Error::invalid(
                "period",
                "applies only with group_by PERIOD",
            ));
        }
        (w::GroupBy::Unspecified, None) => ReportBy::Whole,
        (w::GroupBy::ChildNode, None) => ReportBy::ChildNode,
        (w::GroupBy::Level, None) => ReportBy::Level,
        (w::GroupBy::Category, None) => ReportBy::Category,
    };
    Ok(SlaReportRequest { node, from, to, by })
}

pub fn wire_row(r: &SlaRow) -> w::SlaRow {
    w::SlaRow {
        key: r.key.clone(),
        received: r.received,
        resolved: r.resolved,
        resolved_on_time: r.resolved_on_time,
        overdue_now: r.overdue_now,
        escalations: r.escalations,
        dispatched: r.dispatched,
        acknowledged_on_time: r.acknowledged_on_time,
        callbacks: r.callbacks,
        callbacks_satisfied: r.callbacks_satisfied,
        callbacks_solved: r.callbacks_solved,
        repeat_requests: r.repeat_requests,
        on_time_rate: r.on_time_rate,
        acknowledge_rate: r.acknowledge_rate,
        resolution_rate: r.resolution_rate,
        satisfaction_rate: r.satisfaction_rate,
        resolve_seconds_mean: r.resolve_seconds_mean,
        resolve_seconds_p50: r.resolve_seconds_p50,
        resolve_seconds_p90: r.resolve_seconds_p90,
        received_year_before: r.received_year_before,
        received_change: r.received_change,
        breached_now: r.breached_now,
    }
}

pub fn wire_report(r: &SlaReport) -> w::SlaReport {
    w::SlaReport {
        rows: r.rows.iter().map(wire_row).collect(),
        as_of: Some(convert::timestamp(r.as_of)),
    }
}

/// The report back from the wire (for clients such as `doorstep report --server`).
pub fn report_from_wire(r: &w::SlaReport) -> Result<SlaReport, Error> {
    let as_of = convert::instant("as_of", r.as_of.as_ref())?
        .ok_or_else(|| Error::invalid("as_of", "is missing"))?;
    Ok(SlaReport {
        as_of,
        rows: r
            .rows
            .iter()
            .map(|r| SlaRow {
                key: r.key.clone(),
                received: r.received,
                resolved: r.resolved,
                resolved_on_time: r.resolved_on_time,
                overdue_now: r.overdue_now,
                escalations: r.escalations,
                dispatched: r.dispatched,
                acknowledged_on_time: r.acknowledged_on_time,
                callbacks: r.callbacks,
                callbacks_satisfied: r.callbacks_satisfied,
                callbacks_solved: r.callbacks_solved,
                repeat_requests: r.repeat_requests,
                on_time_rate: r.on_time_rate,
                acknowledge_rate: r.acknowledge_rate,
                resolution_rate: r.resolution_rate,
                satisfaction_rate: r.satisfaction_rate,
                resolve_seconds_mean: r.resolve_seconds_mean,
                resolve_seconds_p50: r.resolve_seconds_p50,
                resolve_seconds_p90: r.resolve_seconds_p90,
                received_year_before: r.received_year_before,
                received_change: r.received_change,
                breached_now: r.breached_now,
            })
            .collect(),
    })
}

type EventStream = Pin<Box<dyn Stream<Item = Result<w::Event, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ReportService for Reports {
    #[tracing::instrument(name = "doorstep.v1.ReportService/GetSlaReport", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "GetSlaReport"))]
    async fn get_sla_report(
        &self,
        request: Request<w::SlaReportRequest>,
    ) -> Result<Response<w::SlaReport>, Status> {
        let principal = self.gate.admit(&request, Rpc::GetSlaReport).await?;
        let req = sla_request(request.get_ref()).map_err(to_status)?;
        let cost = self.report_cost(&req).await.map_err(to_status)?;
        self.gate.charge(
            &principal,
            Rpc::GetSlaReport,
            cost,
            "period",
            "choose a longer period or a shorter window (from, to)",
        )?;
        let report = self
            .engine
            .sla_report(&principal, &req)
            .await
            .map_err(to_status)?;
        Ok(Response::new(wire_report(&report)))
    }

    type ExportEventsStream = EventStream;

    /// The subtree's events after `after_seq` up to the last one committed when the call began, in
    /// pages; resuming from the last seq received continues exactly after it.
    #[tracing::instrument(name = "doorstep.v1.ReportService/ExportEvents", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "ExportEvents"))]
    async fn export_events(
        &self,
        request: Request<w::ExportEventsRequest>,
    ) -> Result<Response<Self::ExportEventsStream>, Status> {
        let principal = self.gate.admit(&request, Rpc::ExportEvents).await?;
        let req = request.into_inner();
        if req.after_seq < 0 {
            return Err(to_status(Error::invalid(
                "after_seq",
                "must not be negative",
            )));
        }
        if req.limit < 0 {
            return Err(to_status(Error::invalid(
                "limit",
                "must not be negative (0 = no limit)",
            )));
        }
        let subtree = self
            .engine
            .subtree(
                &principal,
                convert::opt_node("node", &req.node)
                    .map_err(to_status)?
                    .as_ref(),
            )
            .map_err(to_status)?;
        let long = req.limit == 0 || i64::from(req.limit) > LONG_EXPORT_EVENTS;
        let slot = self.streams.export(&principal, long)?;
        let caught_up = self.engine.last_seq().await.map_err(to_status)?;
        let mut left = match req.limit {
            0 => u64::MAX,
            n => n as u64,
        };
        let mut cursor = req.after_seq;
        let (tx, rx) = mpsc::channel(64);
        let engine = Arc::clone(&self.engine);
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            // Held while the export runs.
            let _slot = slot;
            while left > 0 && cursor < caught_up {
                let page = EXPORT_PAGE.min(u32::try_from(left).unwrap_or(EXPORT_PAGE));
                let batch = tokio::select! {
                    batch = engine.events_after(subtree.as_deref(), cursor, page) => batch,
                    _ = shutdown.wait_for(|stop| *stop) => return,
                };
                let batch = match batch {
                    Ok(batch) => batch,
                    Err(e) => {
                        let _ = tx.send(Err(to_status(e))).await;
                        return;
                    }
                };
                let short = batch.len() < page as usize;
                let past_end = batch.last().is_some_and(|e| e.seq >= caught_up);
                let batch: Vec<_> = batch
                    .into_iter()
                    .take_while(|e| e.seq <= caught_up)
                    .collect();
                let read_up_to = batch.last().map(|e| e.seq);
                // A handling unit sees only the events of the tickets it works on.
                let batch = match engine.visible_events(&principal, batch).await {
                    Ok(batch) => batch,
                    Err(e) => {
                        let _ = tx.send(Err(to_status(e))).await;
                        return;
                    }
                };
                for event in &batch {
                    if tx.send(Ok(convert::event(event))).await.is_err() {
                        return;
                    }
                    left -= 1;
                    if left == 0 {
                        return;
                    }
                }
                if let Some(seq) = read_up_to {
                    cursor = seq;
                }
                if short || past_end {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
