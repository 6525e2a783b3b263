//! TicketService: intake, console reads, every lifecycle action, and the resumable event stream.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use doorstep_domain::ids::{MAX_CODE_LEN, optional_text};
use doorstep_domain::{Command, TicketId};
use doorstep_proto::v1 as w;
use doorstep_proto::v1::ticket_service_server::TicketService;
use doorstep_store::TicketQuery;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::error::to_status;
use crate::gate::Gate;
use crate::limits::Streams;
use doorstep_engine::Rpc;
use doorstep_engine::auth::Principal;
use doorstep_engine::engine::{Action, Engine, ListRequest, Watch};
use doorstep_engine::error::Error;

/// The most values a list filter takes (there are nine statuses and four levels).
const MAX_FILTER_VALUES: usize = 16;
/// Events in one page of a timeline (and in a timeline asked for without a page size).
pub const MAX_TIMELINE_PAGE: usize = 1000;
/// How many events a watch queues for its client before it waits for the client to read.
const WATCH_BUFFER: usize = 64;

#[derive(Debug, Clone)]
pub struct Tickets {
    engine: Arc<Engine>,
    gate: Arc<Gate>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// Open streams per token (WatchEvents here, ExportEvents in the report service).
    streams: Arc<Streams>,
}

/// `WatchEvents` and `ExportEvents` streams one token may hold open at once by default
/// ([`crate::limits::Limits::max_streams_per_token`]): a console needs a few, and one token opening
/// thousands is refused rather than served.
pub const MAX_WATCHES_PER_TOKEN: usize = 64;

impl Tickets {
    pub fn new(
        engine: Arc<Engine>,
        gate: Arc<Gate>,
        shutdown: tokio::sync::watch::Receiver<bool>,
        streams: Arc<Streams>,
    ) -> Self {
        Tickets {
            engine,
            gate,
            shutdown,
            streams,
        }
    }

    /// Tickets as the principal may see them (callers masked or hidden by role, with the free text and
    /// address that may name them; unmasked reads audited).
    async fn show(
        &self,
        principal: &Principal,
        rpc: Rpc,
        tickets: &[&doorstep_domain::Ticket],
    ) -> Result<Vec<w::Ticket>, Status> {
        let views = self
            .engine
            .disclose(principal, rpc, tickets)
            .await
            .map_err(to_status)?;
        let now = self.engine.now();
        Ok(tickets
            .iter()
            .zip(views)
            .map(|(t, view)| convert::ticket(&self.engine.redacted(t, view), now, view))
            .collect())
    }

    async fn show_one(
        &self,
        principal: &Principal,
        rpc: Rpc,
        ticket: &doorstep_domain::Ticket,
    ) -> Result<w::Ticket, Status> {
        let mut shown = self.show(principal, rpc, &[ticket]).await?;
        shown
            .pop()
            .ok_or_else(|| to_status(Error::Internal("no ticket to show".into())))
    }

    /// Runs one action and answers the ticket as it is after it.
    async fn act(
        &self,
        principal: &Principal,
        rpc: Rpc,
        id: &str,
        version: i64,
        action: Action,
    ) -> Result<Response<w::Ticket>, Status> {
        let id = convert::ticket_id("id", id).map_err(to_status)?;
        crate::observe::note_ticket(id.as_str());
        if version <= 0 {
            return Err(to_status(Error::invalid(
                "version",
                "is required: the version of the ticket as last seen",
            )));
        }
        let ticket = self
            .engine
            .act(principal, &id, version, action)
            .await
            .map_err(to_status)?;
        Ok(Response::new(self.show_one(principal, rpc, &ticket).await?))
    }

    /// The common shape: a ticket action whose command depends only on the request.
    async fn simple(
        &self,
        request: Request<w::TicketAction>,
        rpc: Rpc,
        command: impl FnOnce(&w::TicketAction) -> Result<Command, Error>,
    ) -> Result<Response<w::Ticket>, Status> {
        let principal = self.gate.admit(&request, rpc).await?;
        let req = request.into_inner();
        let command = command(&req).map_err(to_status)?;
        self.act(
            &principal,
            rpc,
            &req.id,
            req.version,
            Action::Command(command),
        )
        .await
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<w::Event, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl TicketService for Tickets {
    #[tracing::instrument(name = "doorstep.v1.TicketService/CreateTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "CreateTicket"))]
    async fn create_ticket(
        &self,
        request: Request<w::CreateTicketRequest>,
    ) -> Result<Response<w::CreateTicketResponse>, Status> {
        let principal = self.gate.admit(&request, Rpc::CreateTicket).await?;
        let (intake, level_hint) = convert::intake(request.into_inner()).map_err(to_status)?;
        let sent = intake.caller.clone();
        let (ticket, created) = self
            .engine
            .create_ticket(&principal, intake, level_hint)
            .await
            .map_err(to_status)?;
        crate::observe::note_ticket(ticket.id.as_str());
        let view = self
            .engine
            .disclose_to_sender(&principal, Rpc::CreateTicket, &ticket, &sent)
            .await
            .map_err(to_status)?;
        Ok(Response::new(w::CreateTicketResponse {
            ticket: Some(convert::ticket(&ticket, self.engine.now(), view)),
            created,
        }))
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/GetTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "GetTicket"))]
    async fn get_ticket(
        &self,
        request: Request<w::GetTicketRequest>,
    ) -> Result<Response<w::Ticket>, Status> {
        let principal = self.gate.admit(&request, Rpc::GetTicket).await?;
        let id = convert::ticket_id("id", &request.get_ref().id).map_err(to_status)?;
        crate::observe::note_ticket(id.as_str());
        let ticket = self
            .engine
            .get_ticket(&principal, &id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(
            self.show_one(&principal, Rpc::GetTicket, &ticket).await?,
        ))
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/GetTimeline", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "GetTimeline"))]
    async fn get_timeline(
        &self,
        request: Request<w::GetTimelineRequest>,
    ) -> Result<Response<w::Timeline>, Status> {
        let principal = self.gate.admit(&request, Rpc::GetTimeline).await?;
        let req = request.get_ref();
        let id = convert::ticket_id("id", &req.id).map_err(to_status)?;
        crate::observe::note_ticket(id.as_str());
        let page_size = match req.page_size {
            0 => MAX_TIMELINE_PAGE,
            n @ 1.. if n as usize <= MAX_TIMELINE_PAGE => n as usize,
            n => {
                return Err(to_status(Error::invalid(
                    "page_size",
                    format!("{n} must be between 1 and {MAX_TIMELINE_PAGE}"),
                )));
            }
        };
        let after = convert::parse_page_token(&req.page_token).map_err(to_status)?;
        let (ticket, history, explanations) = self
            .engine
            .timeline(&principal, &id)
            .await
            .map_err(to_status)?;
        let mut events = history
            .iter()
            .filter(|e| after.is_none_or(|after| e.seq > after))
            .take(page_size + 1)
            .collect::<Vec<_>>();
        let next = (events.len() > page_size).then(|| {
            events.truncate(page_size);
            events.last().map(|e| e.seq)
        });
        Ok(Response::new(w::Timeline {
            ticket: Some(self.show_one(&principal, Rpc::GetTimeline, &ticket).await?),
            events: events.into_iter().map(convert::event).collect(),
            deadlines: explanations.iter().map(convert::explanation).collect(),
            next_page_token: convert::page_token(next.flatten()),
        }))
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/ListTickets", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "ListTickets"))]
    async fn list_tickets(
        &self,
        request: Request<w::ListTicketsRequest>,
    ) -> Result<Response<w::ListTicketsResponse>, Status> {
        let principal = self.gate.admit(&request, Rpc::ListTickets).await?;
        let req = request.into_inner();
        let limit = match req.page_size {
            0 => 50,
            n @ 1..=1000 => n as u32,
            n => {
                return Err(to_status(Error::invalid(
                    "page_size",
                    format!("{n} must be between 1 and 1000"),
                )));
            }
        };
        for (field, len) in [
            ("statuses", req.statuses.len()),
            ("levels", req.levels.len()),
        ] {
            if len > MAX_FILTER_VALUES {
                return Err(to_status(Error::invalid(
                    field,
                    format!("has {len} entries, at most {MAX_FILTER_VALUES} allowed"),
                )));
            }
        }
        // A page is charged by its rows, a unit per hundred: each row is a ticket read, and an
        // unmasked one an audit row written.
        self.gate.charge(
            &principal,
            Rpc::ListTickets,
            limit.div_ceil(100),
            "page_size",
            "ask for fewer rows a page",
        )?;
        let query = TicketQuery {
            subtree: None,
            statuses: req
                .statuses
                .iter()
                .map(|s| convert::status("statuses", *s))
                .collect::<Result<_, _>>()
                .map_err(to_status)?,
            levels: req
                .levels
                .iter()
                .map(|l| convert::level("levels", *l))
                .collect::<Result<_, _>>()
                .map_err(to_status)?,
            unit: match req.unit.trim() {
                "" => None,
                unit => Some(convert::unit("unit", unit).map_err(to_status)?),
            },
            external_ref: match optional_text("external_ref", &req.external_ref, MAX_CODE_LEN)
                .map_err(|e| to_status(e.into()))?
            {
                external_ref if external_ref.is_empty() => None,
                external_ref => Some(external_ref),
            },
            source: match req.source {
                0 => None,
                source => Some(convert::channel("source", source).map_err(to_status)?),
            },
            overdue_at: None,
            breached_only: req.breached_only,
            due_before: convert::instant("due_before", req.due_before.as_ref())
                .map_err(to_status)?,
            after: convert::parse_page_token(&req.page_token).map_err(to_status)?,
            limit,
        };
        let page = self
            .engine
            .list_tickets(
                &principal,
                ListRequest {
                    node: convert::opt_node("node", &req.node).map_err(to_status)?,
                    query,
                    overdue_only: req.overdue_only,
                },
            )
            .await
            .map_err(to_status)?;
        let tickets: Vec<&doorstep_domain::Ticket> = page.tickets.iter().collect();
        Ok(Response::new(w::ListTicketsResponse {
            tickets: self.show(&principal, Rpc::ListTickets, &tickets).await?,
            next_page_token: convert::page_token(page.next),
        }))
    }

    type WatchEventsStream = EventStream;

    #[tracing::instrument(name = "doorstep.v1.TicketService/WatchEvents", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "WatchEvents"))]
    async fn watch_events(
        &self,
        request: Request<w::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let principal = self.gate.admit(&request, Rpc::WatchEvents).await?;
        let slot = self.streams.watch(&principal)?;
        let req = request.into_inner();
        if req.after_seq < 0 {
            return Err(to_status(Error::invalid(
                "after_seq",
                "must not be negative",
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
        let cursor = match req.after_seq {
            0 => self.engine.last_seq().await.map_err(to_status)?,
            n => n,
        };
        if let Some(reader) = self.engine.feed_reader() {
            tokio::spawn(reader);
        }
        let watch = self.engine.watch(principal.clone(), subtree, cursor);
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let (end_tx, end_rx) = oneshot::channel();
        let gate = Arc::clone(&self.gate);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            if let Some(status) = hand_out(watch, cursor, &gate, &principal, &tx, shutdown).await {
                let _ = end_tx.send(status);
            }
        });
        Ok(Response::new(Box::pin(WatchStream {
            events: rx,
            end: Some(end_rx),
            _open: crate::observe::WatchGauge::open(),
            _slot: slot,
        })))
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/DispatchTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "DispatchTicket"))]
    async fn dispatch_ticket(
        &self,
        request: Request<w::DispatchTicketRequest>,
    ) -> Result<Response<w::Ticket>, Status> {
        let principal = self.gate.admit(&request, Rpc::DispatchTicket).await?;
        let req = request.into_inner();
        let action = match req.lead_unit.trim() {
            "" => Action::DispatchByCatalogue { reason: req.reason },
            unit => Action::Command(Command::Dispatch {
                unit: convert::unit("lead_unit", unit).map_err(to_status)?,
                reason: req.reason,
            }),
        };
        self.act(
            &principal,
            Rpc::DispatchTicket,
            &req.id,
            req.version,
            action,
        )
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/AcknowledgeTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "AcknowledgeTicket"))]
    async fn acknowledge_ticket(
        &self,
        request: Request<w::TicketAction>,
    ) -> Result<Response<w::Ticket>, Status> {
        self.simple(request, Rpc::AcknowledgeTicket, |r| {
            Ok(Command::Acknowledge {
                unit: convert::unit("unit", &r.unit)?,
            })
        })
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/ReturnTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "ReturnTicket"))]
    async fn return_ticket(
        &self,
        request: Request<w::TicketAction>,
    ) -> Result<Response<w::Ticket>, Status> {
        self.simple(request, Rpc::ReturnTicket, |r| {
            Ok(Command::Return {
                unit: convert::unit("unit", &r.unit)?,
                reason: r.reason.clone(),
            })
        })
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/SuspendTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "SuspendTicket"))]
    async fn suspend_ticket(
        &self,
        request: Request<w::TicketAction>,
    ) -> Result<Response<w::Ticket>, Status> {
        self.simple(request, Rpc::SuspendTicket, |r| {
            Ok(Command::Suspend {
                reason: r.reason.clone(),
            })
        })
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/ResumeTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "ResumeTicket"))]
    async fn resume_ticket(
        &self,
        request: Request<w::TicketAction>,
    ) -> Result<Response<w::Ticket>, Status> {
        self.simple(request, Rpc::ResumeTicket, |r| {
            Ok(Command::Resume {
                reason: r.reason.clone(),
            })
        })
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/RequestExtension", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "RequestExtension"))]
    async fn request_extension(
        &self,
        request: Request<w::RequestExtensionRequest>,
    ) -> Result<Response<w::Ticket>, Status> {
        let principal = self.gate.admit(&request, Rpc::RequestExtension).await?;
        let req = request.into_inner();
        let days = u32::try_from(req.extra_working_days)
            .ok()
            .filter(|d| *d > 0)
            .ok_or_else(|| {
                Error::invalid(
                    "extra_working_days",
                    format!("{} must be above 0", req.extra_working_days),
                )
            })
            .map_err(to_status)?;
        let command = Command::RequestExtension {
            days,
            reason: req.reason,
        };
        self.act(
            &principal,
            Rpc::RequestExtension,
            &req.id,
            req.version,
            Action::Command(command),
        )
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/DecideExtension", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "DecideExtension"))]
    async fn decide_extension(
        &self,
        request: Request<w::DecideExtensionRequest>,
    ) -> Result<Response<w::Ticket>, Status> {
        let principal = self.gate.admit(&request, Rpc::DecideExtension).await?;
        let req = request.into_inner();
        let command = Command::DecideExtension {
            approve: req.approve,
            reason: req.reason,
        };
        self.act(
            &principal,
            Rpc::DecideExtension,
            &req.id,
            req.version,
            Action::Command(command),
        )
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/WhistleTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "WhistleTicket"))]
    async fn whistle_ticket(
        &self,
        request: Request<w::WhistleTicketRequest>,
    ) -> Result<Response<w::Ticket>, Status> {
        let principal = self.gate.admit(&request, Rpc::WhistleTicket).await?;
        let req = request.into_inner();
        if req.units.len() > doorstep_domain::lifecycle::MAX_WHISTLE_UNITS {
            return Err(to_status(Error::invalid(
                "units",
                format!(
                    "{} units, at most {}",
                    req.units.len(),
                    doorstep_domain::lifecycle::MAX_WHISTLE_UNITS
                ),
            )));
        }
        let units = req
            .units
            .iter()
            .map(|u| convert::unit("units", u))
            .collect::<Result<Vec<_>, _>>()
            .map_err(to_status)?;
        let command = Command::Whistle {
            units,
            reason: req.reason,
        };
        self.act(
            &principal,
            Rpc::WhistleTicket,
            &req.id,
            req.version,
            Action::Command(command),
        )
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/ReportIn", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "ReportIn"))]
    async fn report_in(
        &self,
        request: Request<w::TicketAction>,
    ) -> Result<Response<w::Ticket>, Status> {
        self.simple(request, Rpc::ReportIn, |r| {
            Ok(Command::ReportIn {
                unit: convert::unit("unit", &r.unit)?,
            })
        })
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/UrgeTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "UrgeTicket"))]
    async fn urge_ticket(
        &self,
        request: Request<w::TicketAction>,
    ) -> Result<Response<w::Ticket>, Status> {
        self.simple(request, Rpc::UrgeTicket, |r| {
            Ok(Command::Urge {
                reason: r.reason.clone(),
            })
        })
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/SuperviseTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "SuperviseTicket"))]
    async fn supervise_ticket(
        &self,
        request: Request<w::TicketAction>,
    ) -> Result<Response<w::Ticket>, Status> {
        self.simple(request, Rpc::SuperviseTicket, |r| {
            Ok(Command::Supervise {
                reason: r.reason.clone(),
            })
        })
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/EscalateTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "EscalateTicket"))]
    async fn escalate_ticket(
        &self,
        request: Request<w::TicketAction>,
    ) -> Result<Response<w::Ticket>, Status> {
        self.simple(request, Rpc::EscalateTicket, |r| {
            Ok(Command::Escalate {
                reason: r.reason.clone(),
                owner_unit: None,
                case_owner: None,
            })
        })
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/ReclassifyTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "ReclassifyTicket"))]
    async fn reclassify_ticket(
        &self,
        request: Request<w::ReclassifyTicketRequest>,
    ) -> Result<Response<w::Ticket>, Status> {
        let principal = self.gate.admit(&request, Rpc::ReclassifyTicket).await?;
        let req = request.into_inner();
        let command = Command::Reclassify {
            level: convert::level("level", req.level).map_err(to_status)?,
            reason: req.reason,
            case_owner: None,
        };
        self.act(
            &principal,
            Rpc::ReclassifyTicket,
            &req.id,
            req.version,
            Action::Command(command),
        )
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/ResolveTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "ResolveTicket"))]
    async fn resolve_ticket(
        &self,
        request: Request<w::ResolveTicketRequest>,
    ) -> Result<Response<w::Ticket>, Status> {
        let principal = self.gate.admit(&request, Rpc::ResolveTicket).await?;
        let req = request.into_inner();
        let command = Command::Resolve {
            resolution: req.resolution,
        };
        self.act(
            &principal,
            Rpc::ResolveTicket,
            &req.id,
            req.version,
            Action::Command(command),
        )
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/RecordCallback", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "RecordCallback"))]
    async fn record_callback(
        &self,
        request: Request<w::RecordCallbackRequest>,
    ) -> Result<Response<w::Ticket>, Status> {
        let principal = self.gate.admit(&request, Rpc::RecordCallback).await?;
        let req = request.into_inner();
        let command = Command::RecordCallback {
            satisfaction: convert::satisfaction("satisfaction", req.satisfaction)
                .map_err(to_status)?,
            matter_solved: req.matter_solved,
            comment: req.comment,
        };
        self.act(
            &principal,
            Rpc::RecordCallback,
            &req.id,
            req.version,
            Action::Command(command),
        )
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/MergeTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "MergeTicket"))]
    async fn merge_ticket(
        &self,
        request: Request<w::MergeTicketRequest>,
    ) -> Result<Response<w::Ticket>, Status> {
        let principal = self.gate.admit(&request, Rpc::MergeTicket).await?;
        let req = request.into_inner();
        let into: TicketId = convert::ticket_id("into_id", &req.into_id).map_err(to_status)?;
        // The ticket merged must be one the caller may act on (checked first: PERMISSION_DENIED, not
        // a hint about the other ticket), and the one it duplicates exist where the caller can see it.
        self.engine
            .ticket_for_action(
                &principal,
                &convert::ticket_id("id", &req.id).map_err(to_status)?,
            )
            .await
            .map_err(to_status)?;
        self.engine
            .get_ticket(&principal, &into)
            .await
            .map_err(|e| match e {
                Error::NotFound(_) => Error::invalid("into_id", format!("ticket {into} not found")),
                other => other,
            })
            .map_err(to_status)?;
        let command = Command::Merge {
            into,
            reason: req.reason,
        };
        self.act(
            &principal,
            Rpc::MergeTicket,
            &req.id,
            req.version,
            Action::Command(command),
        )
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/CancelTicket", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "CancelTicket"))]
    async fn cancel_ticket(
        &self,
        request: Request<w::TicketAction>,
    ) -> Result<Response<w::Ticket>, Status> {
        self.simple(request, Rpc::CancelTicket, |r| {
            Ok(Command::Cancel {
                reason: r.reason.clone(),
            })
        })
        .await
    }

    #[tracing::instrument(name = "doorstep.v1.TicketService/AddNote", skip_all, fields(otel.kind = "server", rpc.system = "grpc", rpc.method = "AddNote"))]
    async fn add_note(
        &self,
        request: Request<w::TicketAction>,
    ) -> Result<Response<w::Ticket>, Status> {
        let principal = self.gate.admit(&request, Rpc::AddNote).await?;
        let req = request.into_inner();
        // The version the ticket is at, not the one the caller says it read (a note goes ahead on
        // any version): every event made it one higher. A ticket the caller cannot read, or a
        // malformed id, is left to the action, which answers as for every other action.
        let read = match convert::ticket_id("id", &req.id) {
            Ok(id) => self.engine.get_ticket(&principal, &id).await.ok(),
            Err(_) => None,
        };
        let most = self.streams.limits().max_history_for_notes;
        if let Some(ticket) = read
            && ticket.version >= most
        {
            let id = &ticket.id;
            return Err(to_status(Error::NotApplicable(format!(
                "ticket {id} has {} events in its history, the most that still take notes \
                 ({most}, max_history_for_notes); write in the resolution or open a follow-up \
                 ticket",
                ticket.version
            ))));
        }
        self.act(
            &principal,
            Rpc::AddNote,
            &req.id,
            req.version,
            Action::Command(Command::AddNote { text: req.reason }),
        )
        .await
    }
}

/// Hands a watch's events to its client until the client goes, the server shuts down, or the watch
/// ends with the status returned: a revoked or expired token (re-checked at least every
/// `FEED_POLL`), a store failure, or a client so slow it fell behind what the feed holds.
async fn hand_out(
    mut watch: Watch,
    cursor: i64,
    gate: &Gate,
    principal: &Principal,
    tx: &mpsc::Sender<w::Event>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Option<Status> {
    let mut delivered = cursor;
    loop {
        if let Err(e) = gate.recheck(principal).await {
            return Some(to_status(e));
        }
        let events = tokio::select! {
            events = watch.next() => match events {
                Ok(events) => events,
                Err(e) => return Some(to_status(e)),
            },
            () = tx.closed() => return None,
            _ = shutdown.wait_for(|stop| *stop) => return None,
        };
        for event in &events {
            let permit = match tx.try_reserve() {
                Ok(permit) => permit,
                Err(mpsc::error::TrySendError::Closed(())) => return None,
                // The client is not keeping up: wait for it, but not past what the feed holds.
                Err(mpsc::error::TrySendError::Full(())) => tokio::select! {
                    permit = tx.reserve() => permit.ok()?,
                    () = watch.fallen_behind() => return Some(fallen_behind(delivered)),
                    _ = shutdown.wait_for(|stop| *stop) => return None,
                },
            };
            permit.send(convert::event(event));
            delivered = event.seq;
        }
    }
}

/// The status that ends a watch whose client fell too far behind: UNAVAILABLE, the code gRPC clients
/// and their retry policies treat as "call again", with the seq to resume after. The client has
/// every event up to `delivered` (they are queued ahead of this status), so a watch resumed with
/// `after_seq = delivered` continues without a gap or a duplicate.
fn fallen_behind(delivered: i64) -> Status {
    Status::unavailable(format!(
        "this watch fell too far behind the event log (its client is not reading) and was ended; \
         resume with after_seq={delivered}"
    ))
}

/// A watch's events as its client reads them, then the status that ended it, if one did.
struct WatchStream {
    events: mpsc::Receiver<w::Event>,
    end: Option<oneshot::Receiver<Status>>,
    _open: crate::observe::WatchGauge,
    _slot: crate::limits::StreamSlot,
}

impl Stream for WatchStream {
    type Item = Result<w::Event, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(event) = ready!(self.events.poll_recv(cx)) {
            return Poll::Ready(Some(Ok(event)));
        }
        let Some(end) = self.end.as_mut() else {
            return Poll::Ready(None);
        };
        let ended = ready!(Pin::new(end).poll(cx));
        self.end = None;
        Poll::Ready(ended.ok().map(Err))
    }
}
