#![allow(unreachable_pub)]
//! Security end to end: the server with bearer tokens on, over real gRPC, on both backends.
//! The table walk calls every TicketService and AdminService RPC as every role, in and out of scope,
//! and without a token; then masking and the audit log, watch streams ending on revocation and
//! expiry, and the per-token rate limit.
//!
//! ReportService (GetSlaReport, ExportEvents) is walked too: an out-of-scope node reads as not found.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use doorstep_domain::{Clock, ManualClock, SystemClock};
use doorstep_engine::access::{Kind, Role, Rpc, allowed};
use doorstep_engine::{Engine, TokenAuthenticator};
use doorstep_proto::v1 as w;
use doorstep_proto::v1::admin_service_client::AdminServiceClient;
use doorstep_proto::v1::report_service_client::ReportServiceClient;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;
use doorstep_server::RateLimit;
use doorstep_store::testing::TestDatabase;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::action;
use crate::harness::{Backend, LIXIA, Serving, lixia_engine};
use crate::tokened::{GENEROUS, issue_token, serve_with_tokens};

doorstep_store::both_backends!(
    the_role_table_holds_for_every_rpc_in_and_out_of_scope,
    callers_are_masked_hidden_and_audited,
    a_watch_ends_when_its_token_is_revoked,
    a_watch_ends_when_its_token_expires,
    a_unit_watches_only_its_own_tickets,
    intake_hearing_its_own_caller_back_is_not_a_disclosure,
    a_unit_called_in_helps_but_does_not_do_the_lead_units_part,
    a_ticket_goes_only_to_units_whose_jurisdiction_includes_its_place,
);

const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
const YARD_WORKERS: &str = "lixia/jiefanglu/jiefangqiao/yard-129/workers";
const STREET: &str = "lixia/jiefanglu";
/// A compound outside 解放路: out of scope for every principal scoped to the street.
const ELSEWHERE: &str = "lixia/qianfoshan/lishanmingjun/phase-1";

pub struct Secured {
    _running: Serving,
    channel: Channel,
    engine: Arc<Engine>,
    database: TestDatabase,
}

impl Secured {
    async fn start(backend: Backend, rate_limit: Option<RateLimit>) -> Option<Secured> {
        Secured::start_on(backend, rate_limit, Arc::new(SystemClock)).await
    }

    /// The server over an engine that reads the time from `clock`.
    async fn start_on(
        backend: Backend,
        rate_limit: Option<RateLimit>,
        clock: Arc<dyn Clock>,
    ) -> Option<Secured> {
        let (database, engine) = lixia_engine(backend, clock).await?;
        // A short cache, so that revocation shows within the test's patience.
        let auth =
            TokenAuthenticator::with_cache_ttl(Arc::clone(&engine), Duration::from_millis(200));
        let (running, channel) =
            serve_with_tokens(Arc::clone(&engine), auth, rate_limit.unwrap_or(GENEROUS)).await;
        Some(Secured {
            _running: Serving::from(running),
            channel,
            engine,
            database,
        })
    }

    async fn token(&self, name: &str, role: Role, scope: &str, unit: Option<&str>) -> String {
        self.token_until(name, role, scope, unit, None).await.0
    }

    /// A token and its id.
    async fn token_until(
        &self,
        name: &str,
        role: Role,
        scope: &str,
        unit: Option<&str>,
        expires_at: Option<chrono::DateTime<Utc>>,
    ) -> (String, String) {
        let issued = issue_token(
            &*self.database.store,
            Some(name),
            role,
            scope,
            unit,
            expires_at,
        )
        .await
        .expect("a token is issued");
        (issued.secret, issued.record.id)
    }

    fn tickets(&self) -> TicketServiceClient<Channel> {
        TicketServiceClient::new(self.channel.clone())
    }

    fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }

    /// Files a ticket at `node` as the holder of `token`.
    async fn file(
        &self,
        token: &str,
        external_ref: &str,
        node: &str,
        confidential: bool,
    ) -> w::Ticket {
        self.tickets()
            .create_ticket(req(Some(token), intake(external_ref, node, confidential)))
            .await
            .unwrap_or_else(|e| panic!("filing {external_ref}: {e:?}"))
            .into_inner()
            .ticket
            .unwrap()
    }

    async fn get(&self, token: &str, id: &str) -> w::Ticket {
        self.tickets()
            .get_ticket(req(Some(token), w::GetTicketRequest { id: id.into() }))
            .await
            .unwrap()
            .into_inner()
    }
}

fn req<T>(token: Option<&str>, message: T) -> Request<T> {
    match token {
        Some(token) => crate::tokened::req(token, message),
        None => Request::new(message),
    }
}

/// A stairwell-light request filed at `node` (also the limits tests' request, at the yard).
pub fn intake(external_ref: &str, node: &str, confidential: bool) -> w::CreateTicketRequest {
    w::CreateTicketRequest {
        source: w::Channel::Hotline12345 as i32,
        external_ref: external_ref.into(),
        caller: Some(w::Caller {
            name: "张女士".into(),
            phone: "13812345678".into(),
            confidential,
        }),
        category: "lighting.stairwell".into(),
        content: "3号楼楼道灯不亮".into(),
        address: "3号楼2单元".into(),
        node: node.into(),
        ..Default::default()
    }
}

/// What a call is made on: a ticket (as last seen), another ticket to merge into, a node.
struct Target {
    ticket: w::Ticket,
    into_id: String,
    node: String,
}

/// Calls `rpc` once with `token` on `target`; only the status matters.
async fn call(
    s: &Secured,
    token: Option<&str>,
    rpc: Rpc,
    target: &Target,
    n: usize,
) -> Result<(), Status> {
    let mut t = s.tickets();
    let mut a = s.admin();
    let mut r = ReportServiceClient::new(s.channel.clone());
    let tk = &target.ticket;
    let lead = tk.lead_unit.clone();
    match rpc {
        Rpc::CreateTicket => t
            .create_ticket(req(token, intake(&format!("WALK-{n}"), &tk.node, false)))
            .await
            .map(drop),
        Rpc::GetTicket => t
            .get_ticket(req(token, w::GetTicketRequest { id: tk.id.clone() }))
            .await
            .map(drop),
        Rpc::GetTimeline => t
            .get_timeline(req(
                token,
                w::GetTimelineRequest {
                    id: tk.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::ListTickets => t
            .list_tickets(req(
                token,
                w::ListTicketsRequest {
                    node: target.node.clone(),
                    // Intake may only look up by work-order number; the others may too.
                    external_ref: tk.external_ref.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::WatchEvents => t
            .watch_events(req(
                token,
                w::WatchEventsRequest {
                    node: target.node.clone(),
                    after_seq: 0,
                },
            ))
            .await
            .map(drop),
        Rpc::DispatchTicket => t
            .dispatch_ticket(req(token, crate::dispatch_to(tk, "", "re-dispatch")))
            .await
            .map(drop),
        Rpc::AcknowledgeTicket => t
            .acknowledge_ticket(req(token, action(tk, &lead, "")))
            .await
            .map(drop),
        Rpc::ReturnTicket => t
            .return_ticket(req(token, action(tk, &lead, "not ours")))
            .await
            .map(drop),
        Rpc::SuspendTicket => t
            .suspend_ticket(req(token, action(tk, "", "resident away")))
            .await
            .map(drop),
        Rpc::ResumeTicket => t
            .resume_ticket(req(token, action(tk, "", "back")))
            .await
            .map(drop),
        Rpc::RequestExtension => t
            .request_extension(req(
                token,
                w::RequestExtensionRequest {
                    id: tk.id.clone(),
                    version: tk.version,
                    extra_working_days: 2,
                    reason: "parts on order".into(),
                },
            ))
            .await
            .map(drop),
        Rpc::DecideExtension => t
            .decide_extension(req(
                token,
                w::DecideExtensionRequest {
                    id: tk.id.clone(),
                    version: tk.version,
                    approve: true,
                    reason: "ok".into(),
                },
            ))
            .await
            .map(drop),
        Rpc::WhistleTicket => t
            .whistle_ticket(req(
                token,
                w::WhistleTicketRequest {
                    id: tk.id.clone(),
                    version: tk.version,
                    units: vec!["dept/city-management".into()],
                    reason: "wiring".into(),
                },
            ))
            .await
            .map(drop),
        Rpc::ReportIn => t
            .report_in(req(token, action(tk, &lead, "")))
            .await
            .map(drop),
        Rpc::UrgeTicket => t
            .urge_ticket(req(token, action(tk, "", "hurry")))
            .await
            .map(drop),
        Rpc::SuperviseTicket => t
            .supervise_ticket(req(token, action(tk, "", "watching")))
            .await
            .map(drop),
        Rpc::EscalateTicket => t
            .escalate_ticket(req(token, action(tk, "", "beyond the compound")))
            .await
            .map(drop),
        Rpc::ReclassifyTicket => t
            .reclassify_ticket(req(
                token,
                w::ReclassifyTicketRequest {
                    id: tk.id.clone(),
                    version: tk.version,
                    level: w::Level::Difficult as i32,
                    reason: "harder than it looked".into(),
                },
            ))
            .await
            .map(drop),
        Rpc::ResolveTicket => t
            .resolve_ticket(req(
                token,
                w::ResolveTicketRequest {
                    id: tk.id.clone(),
                    version: tk.version,
                    resolution: "bulb replaced".into(),
                },
            ))
            .await
            .map(drop),
        Rpc::RecordCallback => t
            .record_callback(req(
                token,
                w::RecordCallbackRequest {
                    id: tk.id.clone(),
                    version: tk.version,
                    satisfaction: w::Satisfaction::Satisfied as i32,
                    matter_solved: true,
                    comment: String::new(),
                },
            ))
            .await
            .map(drop),
        Rpc::MergeTicket => t
            .merge_ticket(req(
                token,
                w::MergeTicketRequest {
                    id: tk.id.clone(),
                    version: tk.version,
                    into_id: target.into_id.clone(),
                    reason: "duplicate".into(),
                },
            ))
            .await
            .map(drop),
        Rpc::CancelTicket => t
            .cancel_ticket(req(token, action(tk, "", "filed in error")))
            .await
            .map(drop),
        Rpc::AddNote => t
            .add_note(req(token, action(tk, "", "called back")))
            .await
            .map(drop),
        Rpc::ImportDistrict => a
            .import_district(req(token, w::ImportDistrictRequest { toml: LIXIA.into() }))
            .await
            .map(drop),
        Rpc::ListNodes => a
            .list_nodes(req(
                token,
                w::ListNodesRequest {
                    parent: String::new(),
                    recursive: false,
                },
            ))
            .await
            .map(drop),
        Rpc::GetNode => a
            .get_node(req(
                token,
                w::GetNodeRequest {
                    code: target.node.clone(),
                },
            ))
            .await
            .map(drop),
        Rpc::ListUnits => a
            .list_units(req(token, w::ListUnitsRequest::default()))
            .await
            .map(drop),
        Rpc::ListCatalogue => a
            .list_catalogue(req(token, w::ListCatalogueRequest {}))
            .await
            .map(drop),
        Rpc::PutCalendarYear => {
            let year = s.engine.calendar();
            let notice = year.notice(2026).expect("2026 is built in").clone();
            let days = year
                .days_of_notice(2026)
                .iter()
                .map(|d| w::CalendarDay {
                    date: d.date.format("%Y-%m-%d").to_string(),
                    off: d.off,
                    name: d.name.clone(),
                })
                .collect();
            a.put_calendar_year(req(
                token,
                w::CalendarYear {
                    year: 2026,
                    days,
                    source: notice.source,
                },
            ))
            .await
            .map(drop)
        }
        Rpc::GetCalendarYear => a
            .get_calendar_year(req(token, w::GetCalendarYearRequest { year: 2026 }))
            .await
            .map(drop),
        Rpc::PutPolicy => a
            .put_policy(req(
                token,
                w::PutPolicyRequest {
                    toml: doorstep_domain::policy::DEFAULT_POLICY_TOML.into(),
                },
            ))
            .await
            .map(drop),
        Rpc::GetPolicy => a
            .get_policy(req(token, w::GetPolicyRequest { version: 0 }))
            .await
            .map(drop),
        Rpc::QueryAuditLog => a
            .query_audit_log(req(token, w::QueryAuditLogRequest::default()))
            .await
            .map(drop),
        Rpc::GetSlaReport => {
            let now = Utc::now();
            let at = |t: chrono::DateTime<Utc>| prost_types::Timestamp {
                seconds: t.timestamp(),
                nanos: 0,
            };
            r.get_sla_report(req(
                token,
                w::SlaReportRequest {
                    node: target.node.clone(),
                    from: Some(at(now - chrono::Duration::days(30))),
                    to: Some(at(now + chrono::Duration::days(1))),
                    ..Default::default()
                },
            ))
            .await
            .map(drop)
        }
        Rpc::ExportEvents => r
            .export_events(req(
                token,
                w::ExportEventsRequest {
                    node: target.node.clone(),
                    after_seq: 0,
                    limit: 10,
                },
            ))
            .await
            .map(drop),
    }
}

fn code(result: &Result<(), Status>) -> Code {
    match result {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// Every RPC of the table.
fn walked() -> impl Iterator<Item = Rpc> {
    Rpc::ALL.into_iter()
}

async fn the_role_table_holds_for_every_rpc_in_and_out_of_scope(s: Secured) {
    let root = s.token("root admin", Role::Admin, "lixia", None).await;
    let outside = s.file(&root, "OUT-1", ELSEWHERE, false).await;
    let outside_into = s.file(&root, "OUT-2", ELSEWHERE, false).await;

    // Unauthenticated: no token, or one that is not ours, for every RPC.
    let nobody = Target {
        ticket: outside.clone(),
        into_id: outside_into.id.clone(),
        node: STREET.into(),
    };
    for rpc in walked() {
        for token in [None, Some("dst_0000"), Some("")] {
            let got = call(&s, token, rpc, &nobody, 0).await;
            assert_eq!(
                code(&got),
                Code::Unauthenticated,
                "{rpc:?} with {token:?}: {got:?}"
            );
        }
    }

    let principals: Vec<(Role, &str, &str, Option<&str>)> = vec![
        (Role::Intake, "call center", STREET, None),
        (Role::Dispatcher, "jiefanglu console", STREET, None),
        (Role::Unit, "yard-129 workers", YARD, Some(YARD_WORKERS)),
        (Role::Supervisor, "jiefanglu supervision", STREET, None),
        (Role::Reporter, "jiefanglu reports", STREET, None),
        (Role::Admin, "jiefanglu admin", STREET, None),
        (Role::Admin, "district admin", "lixia", None),
    ];
    let mut n = 0;
    for (role, name, scope, unit) in principals {
        let token = s.token(name, role, scope, unit).await;
        let district_wide = scope == "lixia";
        // Intake reaches what it filed itself; everyone else what an admin filed in their subtree.
        let filer = if role == Role::Intake { &token } else { &root };
        for rpc in walked() {
            n += 1;
            // In scope: a fresh ticket each time, so one action cannot spoil the next.
            let ticket = s.file(filer, &format!("IN-{n}"), YARD, false).await;
            let into = s.file(filer, &format!("IN-{n}-into"), YARD, false).await;
            let inside = Target {
                ticket,
                into_id: into.id,
                node: if role == Role::Unit { YARD } else { STREET }.into(),
            };
            let got = call(&s, Some(&token), rpc, &inside, n).await;
            let c = code(&got);
            let context = format!("{name} ({role}) {rpc:?} in scope: {got:?}");
            if !allowed(role, rpc) || (rpc.kind() == Kind::District && !district_wide) {
                assert_eq!(c, Code::PermissionDenied, "{context}");
            } else if matches!(
                rpc.kind(),
                Kind::Read | Kind::Reference | Kind::District | Kind::Report
            ) || rpc == Rpc::CreateTicket
            {
                assert_eq!(c, Code::Ok, "{context}");
            } else {
                // The action passed authorization; the lifecycle may still refuse it.
                assert!(
                    matches!(c, Code::Ok | Code::FailedPrecondition),
                    "{context}"
                );
            }

            if district_wide {
                continue;
            }
            // Out of scope: another street's tickets and nodes.
            let out = Target {
                ticket: s.get(&root, &outside.id).await,
                into_id: outside_into.id.clone(),
                node: ELSEWHERE.into(),
            };
            let got = call(&s, Some(&token), rpc, &out, n + 100_000).await;
            let c = code(&got);
            let context = format!("{name} ({role}) {rpc:?} out of scope: {got:?}");
            let expected = if !allowed(role, rpc) {
                Code::PermissionDenied
            } else {
                match rpc.kind() {
                    Kind::Read | Kind::Report => Code::NotFound,
                    Kind::Action => Code::PermissionDenied,
                    Kind::District => Code::PermissionDenied,
                    Kind::Reference if rpc == Rpc::GetNode => Code::NotFound,
                    Kind::Reference => Code::Ok,
                }
            };
            assert_eq!(c, expected, "{context}");
        }
    }

    // Intake reads only what it filed itself, even inside its subtree.
    // (An intake token's name is its own: this is another call center.)
    let intake = s
        .token("another call center", Role::Intake, STREET, None)
        .await;
    let by_admin = s.file(&root, "IN-ADMIN", YARD, false).await;
    let got = s
        .tickets()
        .get_ticket(req(
            Some(&intake),
            w::GetTicketRequest {
                id: by_admin.id.clone(),
            },
        ))
        .await;
    assert_eq!(got.unwrap_err().code(), Code::NotFound);
    let got = s
        .tickets()
        .create_ticket(req(Some(&intake), intake_request_again("IN-ADMIN")))
        .await;
    assert_eq!(
        got.unwrap_err().code(),
        Code::PermissionDenied,
        "a retry does not hand over another principal's ticket"
    );
    // A unit acts in its own name only.
    let unit = s
        .token("yard-129 workers", Role::Unit, YARD, Some(YARD_WORKERS))
        .await;
    let t = s.file(&root, "UNIT-NAME", YARD, false).await;
    let got = s
        .tickets()
        .acknowledge_ticket(req(Some(&unit), action(&t, "community/jiefangqiao", "")))
        .await;
    assert_eq!(got.unwrap_err().code(), Code::PermissionDenied);
    // A district-wide principal asking for a ticket that does not exist: NOT_FOUND, as before.
    let got = s
        .tickets()
        .cancel_ticket(req(
            Some(&root),
            w::TicketAction {
                id: "0190f0f0-0000-7000-8000-000000000000".into(),
                version: 1,
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(got.unwrap_err().code(), Code::NotFound);
}

fn intake_request_again(external_ref: &str) -> w::CreateTicketRequest {
    intake(external_ref, YARD, false)
}

async fn callers_are_masked_hidden_and_audited(s: Secured) {
    let root = s.token("root admin", Role::Admin, "lixia", None).await;
    let dispatcher = s
        .token("jiefanglu console", Role::Dispatcher, STREET, None)
        .await;
    let supervisor = s
        .token("jiefanglu supervision", Role::Supervisor, STREET, None)
        .await;
    let unit = s
        .token("yard-129 workers", Role::Unit, YARD, Some(YARD_WORKERS))
        .await;
    let open = s.file(&root, "MASK-1", YARD, false).await;
    let secret = s.file(&root, "MASK-2", YARD, true).await;

    let caller = |t: &w::Ticket| {
        let c = t.caller.clone().unwrap();
        (c.name, c.phone)
    };
    assert_eq!(
        caller(&s.get(&dispatcher, &open.id).await),
        ("张女士".into(), "13812345678".into())
    );
    assert_eq!(
        caller(&s.get(&supervisor, &open.id).await),
        ("张**".into(), "138****5678".into())
    );
    assert_eq!(
        caller(&s.get(&unit, &open.id).await),
        ("张女士".into(), "13812345678".into())
    );
    let hidden = s.get(&unit, &secret.id).await;
    assert_eq!(caller(&hidden), (String::new(), String::new()));
    assert!(hidden.caller.unwrap().confidential);
    assert_eq!(
        caller(&s.get(&dispatcher, &secret.id).await).1,
        "13812345678",
        "confidentiality hides the caller from handling units only"
    );
    // Lists mask too.
    let listed = s
        .tickets()
        .list_tickets(req(Some(&supervisor), w::ListTicketsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(!listed.tickets.is_empty());
    for t in &listed.tickets {
        assert_eq!(caller(t).1, "138****5678");
    }

    let audit = |ticket: String| {
        let mut a = s.admin();
        let root = root.clone();
        async move {
            a.query_audit_log(req(
                Some(&root),
                w::QueryAuditLogRequest {
                    ticket_id: ticket,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .entries
        }
    };
    let entries = audit(open.id.clone()).await;
    let who: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.principal.as_str(), e.what.as_str()))
        .collect();
    assert!(
        who.contains(&(
            "jiefanglu console",
            "caller name and phone via TicketService.GetTicket"
        )),
        "{who:?}"
    );
    assert!(who.contains(&(
        "yard-129 workers",
        "caller name and phone via TicketService.GetTicket"
    )));
    assert!(
        !who.iter().any(|(p, _)| *p == "jiefanglu supervision"),
        "masked reads are not disclosures: {who:?}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e.at.is_some() && !e.token_id.is_empty())
    );
    let secret_entries = audit(secret.id.clone()).await;
    assert!(
        !secret_entries
            .iter()
            .any(|e| e.principal == "yard-129 workers"),
        "a hidden caller is not disclosed"
    );
    // Pages follow one another without overlap.
    let mut a = s.admin();
    let first = a
        .query_audit_log(req(
            Some(&root),
            w::QueryAuditLogRequest {
                page_size: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.entries.len(), 1);
    let second = a
        .query_audit_log(req(
            Some(&root),
            w::QueryAuditLogRequest {
                page_size: 1,
                page_token: first.next_page_token.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(second.entries[0].id, first.entries[0].id);
}

async fn a_watch_ends_when_its_token_is_revoked(s: Secured) {
    let root = s.token("root admin", Role::Admin, "lixia", None).await;
    let (token, id) = s
        .token_until("console", Role::Dispatcher, STREET, None, None)
        .await;
    let mut stream = s
        .tickets()
        .watch_events(req(Some(&token), w::WatchEventsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    s.file(&root, "WATCH-1", YARD, false).await;
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event arrives")
        .unwrap()
        .unwrap();
    assert_eq!(first.kind, w::EventKind::Created as i32);
    s.database
        .store
        .revoke_token(&id, Utc::now())
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    })
    .await
    .expect("the stream ends within seconds of the revocation")
    .expect("with a status");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    assert!(ended.message().contains("revoked"), "{ended:?}");
    let again = s
        .tickets()
        .list_tickets(req(Some(&token), w::ListTicketsRequest::default()))
        .await;
    assert_eq!(again.unwrap_err().code(), Code::Unauthenticated);
}

/// The server on an engine whose clock the test moves: a token expires when the test says so, not
/// when the machine gets round to it (a real-time expiry could pass before a loaded machine opened the
/// watch).
pub struct SecuredOnManualClock {
    secured: Secured,
    clock: Arc<ManualClock>,
}

impl doorstep_store::testing::Fixture for SecuredOnManualClock {
    async fn set_up(backend: Backend, _test: &'static str) -> Option<SecuredOnManualClock> {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let secured = Secured::start_on(backend, None, clock.clone()).await?;
        Some(SecuredOnManualClock { secured, clock })
    }
}

async fn a_watch_ends_when_its_token_expires(fixture: SecuredOnManualClock) {
    let SecuredOnManualClock { secured: s, clock } = fixture;
    let (short, _) = s
        .token_until(
            "short-lived console",
            Role::Dispatcher,
            STREET,
            None,
            Some(clock.now() + chrono::Duration::minutes(30)),
        )
        .await;
    let mut stream = s
        .tickets()
        .watch_events(req(Some(&short), w::WatchEventsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    clock.advance(chrono::Duration::minutes(31));
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    })
    .await
    .expect("the stream ends within seconds of the expiry")
    .expect("with a status");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    assert!(ended.message().contains("expired"), "{ended:?}");
}

async fn a_unit_watches_only_its_own_tickets(s: Secured) {
    let root = s.token("root admin", Role::Admin, "lixia", None).await;
    let unit = s
        .token("yard-129 workers", Role::Unit, YARD, Some(YARD_WORKERS))
        .await;
    let before = s.database.store.last_seq().await.unwrap();
    let mine = s.file(&root, "UW-1", YARD, false).await;
    // Escalated away: the community leads it now, and the unit no longer sees its events.
    let other = s.file(&root, "UW-2", YARD, false).await;
    s.tickets()
        .escalate_ticket(req(Some(&root), action(&other, "", "beyond the compound")))
        .await
        .unwrap();
    let last = s.file(&root, "UW-3", YARD, false).await;
    // Read from before the first ticket, once all of this is committed.
    let mut stream = s
        .tickets()
        .watch_events(req(
            Some(&unit),
            w::WatchEventsRequest {
                node: String::new(),
                after_seq: before.max(1),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while !seen.contains(&last.id) {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("events arrive")
            .unwrap()
            .unwrap();
        seen.push(event.ticket_id);
    }
    assert!(seen.contains(&mine.id));
    assert!(!seen.contains(&other.id), "{seen:?}");
}

/// The rate limit is per token: one token over its budget gets RESOURCE_EXHAUSTED, another does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_limit_is_refused() {
    // One call back every 20 s: each burst below is over its allowance however slowly a loaded machine
    // makes the calls, and still is when the last call comes.
    let s = Secured::start(
        Backend::Sqlite,
        Some(RateLimit {
            per_second: 0.05,
            burst: 3.0,
        }),
    )
    .await
    .unwrap();
    let busy = s.token("busy", Role::Dispatcher, STREET, None).await;
    let calm = s.token("calm", Role::Dispatcher, STREET, None).await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        let got = s
            .admin()
            .list_catalogue(req(Some(&busy), w::ListCatalogueRequest {}))
            .await;
        codes.push(got.map_or_else(|e| e.code(), |_| Code::Ok));
    }
    assert_eq!(&codes[..3], &[Code::Ok; 3], "{codes:?}");
    assert!(codes[3..].contains(&Code::ResourceExhausted), "{codes:?}");
    assert!(
        s.admin()
            .list_catalogue(req(Some(&calm), w::ListCatalogueRequest {}))
            .await
            .is_ok()
    );
    // Guessing tokens from one address is throttled too.
    let mut codes = Vec::new();
    for i in 0..6 {
        let got = s
            .admin()
            .list_catalogue(req(
                Some(&format!("dst_guess{i}")),
                w::ListCatalogueRequest {},
            ))
            .await;
        codes.push(got.map_or_else(|e| e.code(), |_| Code::Ok));
    }
    assert_eq!(&codes[..3], &[Code::Unauthenticated; 3], "{codes:?}");
    assert_eq!(codes[5], Code::ResourceExhausted, "{codes:?}");
    // The guesses do not lock out a client behind the same address whose token is known good.
    assert!(
        s.admin()
            .list_catalogue(req(Some(&calm), w::ListCatalogueRequest {}))
            .await
            .is_ok(),
        "a known token gets through an address over its failed-authentication allowance"
    );
    // A token never used before is not looked up while the address is over it.
    let fresh = s.token("fresh", Role::Dispatcher, STREET, None).await;
    let got = s
        .admin()
        .list_catalogue(req(Some(&fresh), w::ListCatalogueRequest {}))
        .await
        .unwrap_err();
    assert_eq!(got.code(), Code::ResourceExhausted, "{got:?}");
}

/// Hostile input: over-long lists and strings are refused with the field named, oversized messages
/// before they are decoded, and none of it disturbs the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_refused_with_the_field_named() {
    let s = Secured::start(Backend::Sqlite, None).await.unwrap();
    let root = s.token("root admin", Role::Admin, "lixia", None).await;
    let mut t = s.tickets().max_encoding_message_size(64 * 1024 * 1024);
    let got = t
        .list_tickets(req(
            Some(&root),
            w::ListTicketsRequest {
                statuses: vec![w::Status::New as i32; 100],
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(got.code(), Code::InvalidArgument);
    assert!(got.message().starts_with("statuses:"), "{got:?}");

    let mut big = intake("HOSTILE-1", YARD, false);
    big.content = "x".repeat(600 * 1024);
    let got = t.create_ticket(req(Some(&root), big)).await.unwrap_err();
    assert!(
        matches!(got.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{got:?}"
    );
    let mut long = intake("HOSTILE-2", YARD, false);
    long.caller.as_mut().unwrap().name = "名".repeat(101);
    let got = t.create_ticket(req(Some(&root), long)).await.unwrap_err();
    assert_eq!(got.code(), Code::InvalidArgument);
    assert!(got.message().starts_with("caller.name:"), "{got:?}");
    let got = t
        .get_ticket(req(
            Some(&root),
            w::GetTicketRequest {
                id: "x".repeat(10_000),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(got.code(), Code::InvalidArgument);
    assert!(got.message().starts_with("id:"), "{got:?}");
    // A long bearer value is just an unknown token.
    let got = t
        .get_ticket(req(
            Some(&"a".repeat(4000)),
            w::GetTicketRequest { id: "x".into() },
        ))
        .await
        .unwrap_err();
    assert_eq!(got.code(), Code::Unauthenticated);
    // Still serving.
    s.file(&root, "HOSTILE-3", YARD, false).await;
}

/// Health checking and reflection need no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_stay_open() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let s = Secured::start(Backend::Sqlite, None).await.unwrap();
    let status = HealthClient::new(s.channel.clone())
        .check(HealthCheckRequest {
            service: "doorstep.v1.TicketService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    let mut responses = ServerReflectionClient::new(s.channel.clone())
        .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await
        .unwrap()
        .into_inner();
    let listed = responses.next().await.unwrap().unwrap().message_response;
    assert!(matches!(
        listed,
        Some(MessageResponse::ListServicesResponse(_))
    ));
    // While the API itself wants a token.
    let got = s
        .admin()
        .list_catalogue(req(None, w::ListCatalogueRequest {}))
        .await;
    assert_eq!(got.unwrap_err().code(), Code::Unauthenticated);
}

/// TLS and mutual TLS (feature `tls`): a client with a certificate from the configured CA gets in (and
/// still needs its token); one without, or in plaintext, does not. Certificates come from `openssl`.
#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_clients_with_a_certificate() {
    use doorstep_domain::NodeCode;
    use doorstep_engine::tokens::{TokenRequest, issue};
    use doorstep_server::Options;
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let dir = std::env::temp_dir().join(format!("doorstep-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=doorstep test CA",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        let (key, csr, pem, ext) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.pem"),
            format!("{who}.ext"),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                    "-subj",
                    &format!("/CN={who}"),
                ],
            ]
            .concat(),
        );
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();

    let database = TestDatabase::sqlite().await;
    let engine = Arc::new(
        Engine::open(Arc::clone(&database.store), Arc::new(SystemClock))
            .await
            .unwrap(),
    );
    engine.import_district(LIXIA).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = doorstep_server::start_with(
        Arc::clone(&engine),
        Arc::new(TokenAuthenticator::new(Arc::clone(&engine))),
        listener,
        Options {
            tls: Some(doorstep_server::Tls {
                cert_chain: read("server.pem"),
                key: read("server.key"),
                client_ca: Some(read("ca.pem")),
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let token = issue(
        &*database.store,
        TokenRequest {
            name: None,
            role: Role::Dispatcher,
            scope: Some(NodeCode::parse(STREET).unwrap()),
            unit: None,
            expires_at: None,
        },
        Utc::now(),
    )
    .await
    .unwrap()
    .secret;
    let url = format!("https://localhost:{}", running.local_addr.port());
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .domain_name("localhost");

    let with_cert = Endpoint::from_shared(url.clone())
        .unwrap()
        .tls_config(
            tls.clone()
                .identity(Identity::from_pem(read("client.pem"), read("client.key"))),
        )
        .unwrap()
        .connect()
        .await
        .expect("a client with a certificate connects");
    let mut admin = AdminServiceClient::new(with_cert);
    admin
        .list_catalogue(req(Some(&token), w::ListCatalogueRequest {}))
        .await
        .expect("over mutual TLS, with a token");
    let refused = admin
        .list_catalogue(req(None, w::ListCatalogueRequest {}))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::Unauthenticated,
        "TLS does not replace the token"
    );

    let without_cert = async {
        let channel = Endpoint::from_shared(url.clone())
            .ok()?
            .tls_config(tls.clone())
            .ok()?
            .connect()
            .await
            .ok()?;
        AdminServiceClient::new(channel)
            .list_catalogue(req(Some(&token), w::ListCatalogueRequest {}))
            .await
            .ok()
    };
    assert!(
        without_cert.await.is_none(),
        "no client certificate, no call"
    );
    let plaintext = async {
        let channel =
            Endpoint::from_shared(format!("http://127.0.0.1:{}", running.local_addr.port()))
                .ok()?
                .connect()
                .await
                .ok()?;
        AdminServiceClient::new(channel)
            .list_catalogue(req(Some(&token), w::ListCatalogueRequest {}))
            .await
            .ok()
    };
    assert!(plaintext.await.is_none(), "no plaintext on a TLS listener");
    running.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

impl doorstep_store::testing::Fixture for Secured {
    async fn set_up(backend: Backend, _test: &'static str) -> Option<Secured> {
        Secured::start(backend, None).await
    }
}

/// The reply to CreateTicket shows the intake the caller it sent: not a disclosure, so not audited (an
/// audit row per ticket filed made every intake a write to the audit log). A request whose reference
/// finds a ticket filed with another caller is refused without showing that caller, so it discloses
/// nothing either.
async fn intake_hearing_its_own_caller_back_is_not_a_disclosure(s: Secured) {
    let root = s.token("root admin", Role::Admin, "lixia", None).await;
    let hotline = s.token("hotline", Role::Intake, "lixia", None).await;
    let filed = s.file(&hotline, "ECHO-1", YARD, false).await;
    assert_eq!(filed.caller.clone().unwrap().phone, "13812345678");
    let again = s.file(&hotline, "ECHO-1", YARD, false).await;
    assert_eq!(again.id, filed.id, "an idempotent retry");
    // The same caller as the edge normalises it.
    let mut spaced = intake("ECHO-1", YARD, false);
    spaced.caller.as_mut().unwrap().phone = " 13812345678 ".into();
    let found = s
        .tickets()
        .create_ticket(req(Some(&hotline), spaced))
        .await
        .unwrap()
        .into_inner();
    assert!(!found.created);
    assert_eq!(found.ticket.unwrap().caller.unwrap().phone, "13812345678");

    let mut other = intake("ECHO-1", YARD, false);
    other.caller = Some(w::Caller {
        name: "李先生".into(),
        phone: "13900000000".into(),
        confidential: false,
    });
    let refused = s
        .tickets()
        .create_ticket(req(Some(&hotline), other))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");
    for secret in ["张女士", "13812345678", "李先生", "13900000000"] {
        assert!(!refused.message().contains(secret), "{}", refused.message());
    }

    let entries = s
        .admin()
        .query_audit_log(req(
            Some(&root),
            w::QueryAuditLogRequest {
                ticket_id: filed.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(
        entries.is_empty(),
        "no reply showed another caller than the one sent: {entries:?}"
    );
}

async fn a_unit_called_in_helps_but_does_not_do_the_lead_units_part(s: Secured) {
    const COMMUNITY: &str = "lixia/jiefanglu/jiefangqiao";
    const COMMUNITY_UNIT: &str = "community/jiefangqiao";
    let root = s.token("root admin", Role::Admin, "lixia", None).await;
    let lead = s
        .token("yard-129 workers", Role::Unit, YARD, Some(YARD_WORKERS))
        .await;
    let helper = s
        .token(
            "jiefangqiao community",
            Role::Unit,
            COMMUNITY,
            Some(COMMUNITY_UNIT),
        )
        .await;
    let mut t = s.tickets();
    let filed = s.file(&root, "CO-1", YARD, false).await;
    let signed = t
        .acknowledge_ticket(req(Some(&lead), action(&filed, YARD_WORKERS, "")))
        .await
        .unwrap()
        .into_inner();
    let whistled = t
        .whistle_ticket(req(
            Some(&lead),
            w::WhistleTicketRequest {
                id: signed.id.clone(),
                version: signed.version,
                units: vec![COMMUNITY_UNIT.into()],
                reason: "the wiring is the community's".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let reported = t
        .report_in(req(Some(&helper), action(&whistled, COMMUNITY_UNIT, "")))
        .await
        .expect("a unit called in reports in")
        .into_inner();

    // What only the lead unit does, refused to the unit called in, and nothing recorded.
    let resolve = |token: &str, ticket: &w::Ticket| {
        req(
            Some(token),
            w::ResolveTicketRequest {
                id: ticket.id.clone(),
                version: ticket.version,
                resolution: "bulb replaced".into(),
            },
        )
    };
    let refused = t
        .resolve_ticket(resolve(&helper, &reported))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains(YARD_WORKERS), "{refused:?}");
    let refused = t
        .request_extension(req(
            Some(&helper),
            w::RequestExtensionRequest {
                id: reported.id.clone(),
                version: reported.version,
                extra_working_days: 2,
                reason: "parts on order".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = t
        .whistle_ticket(req(
            Some(&helper),
            w::WhistleTicketRequest {
                id: reported.id.clone(),
                version: reported.version,
                units: vec!["dept/city-management".into()],
                reason: "more hands".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(s.get(&root, &reported.id).await.version, reported.version);

    // The lead unit resolves it.
    let resolved = t
        .resolve_ticket(resolve(&lead, &reported))
        .await
        .expect("the lead unit resolves")
        .into_inner();
    assert_eq!(resolved.status, w::Status::Resolved as i32);
}

/// One token may hold a bounded number of WatchEvents streams open; another token is not affected,
/// and a closed stream gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_holds_a_bounded_number_of_watches() {
    use doorstep_server::ticket_service::MAX_WATCHES_PER_TOKEN;
    let s = Secured::start(Backend::Sqlite, None).await.unwrap();
    let greedy = s.token("greedy", Role::Dispatcher, STREET, None).await;
    let other = s.token("other", Role::Dispatcher, STREET, None).await;
    let open = |token: &str| {
        let mut t = s.tickets();
        let request = req(Some(token), w::WatchEventsRequest::default());
        async move { t.watch_events(request).await }
    };
    let mut streams = Vec::new();
    for _ in 0..MAX_WATCHES_PER_TOKEN {
        streams.push(open(&greedy).await.expect("within the bound").into_inner());
    }
    let refused = open(&greedy).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("WatchEvents"), "{refused:?}");
    let _theirs = open(&other).await.expect("another token is not affected");
    drop(streams.pop());
    // The server notices the stream is gone once its body is dropped; give it a moment.
    let reopened = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match open(&greedy).await {
                Ok(stream) => return stream,
                Err(status) => {
                    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .await
    .expect("a closed stream gives its place back");
    drop(reopened);
}

async fn a_ticket_goes_only_to_units_whose_jurisdiction_includes_its_place(s: Secured) {
    // A compound's workers of another street office, which could not even see a 解放路 ticket.
    const ELSEWHERE: &str = "lixia/qianfoshan/lishanmingjun/phase-1/workers";
    let dispatcher = s
        .token("解放路 dispatch", Role::Dispatcher, STREET, None)
        .await;
    let root = s.token("root admin", Role::Admin, "lixia", None).await;
    let filed = s.file(&dispatcher, "VOID-1", YARD, false).await;
    let mut t = s.tickets();
    let dispatch = |token: &str, unit: &str, ticket: &w::Ticket| {
        req(Some(token), crate::dispatch_to(ticket, unit, "re-dispatch"))
    };
    for token in [&dispatcher, &root] {
        let refused = t
            .dispatch_ticket(dispatch(token, ELSEWHERE, &filed))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().starts_with("lead_unit"), "{refused:?}");
        assert!(refused.message().contains(YARD), "{refused:?}");
    }
    assert_eq!(s.get(&root, &filed.id).await.version, filed.version);
    // A district department reaches everywhere; the street office's own units too.
    let dept = t
        .dispatch_ticket(dispatch(&dispatcher, "dept/city-management", &filed))
        .await
        .expect("a district department takes it")
        .into_inner();
    let signed = t
        .acknowledge_ticket(req(Some(&root), action(&dept, "dept/city-management", "")))
        .await
        .unwrap()
        .into_inner();
    let refused = t
        .whistle_ticket(req(
            Some(&dispatcher),
            w::WhistleTicketRequest {
                id: signed.id.clone(),
                version: signed.version,
                units: vec!["street/jiefanglu".into(), ELSEWHERE.into()],
                reason: "more hands".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().starts_with("units"), "{refused:?}");
    t.whistle_ticket(req(
        Some(&dispatcher),
        w::WhistleTicketRequest {
            id: signed.id.clone(),
            version: signed.version,
            units: vec!["street/jiefanglu".into()],
            reason: "more hands".into(),
        },
    ))
    .await
    .expect("the street office's own unit can be called in");
}
