//! End-to-end: the real server on 127.0.0.1:0, a real database (SQLite and a throwaway PostgreSQL
//! cluster), the generated gRPC client over a real socket.

mod dispatch_scope;
mod grpc_web;
mod harness;
mod health;
mod intake;
mod intake_owner;
mod limits;
mod masking;
mod node_moves;
mod red_cards;
mod report;
mod rpcs;
mod security;
mod stale_versions;
mod status;
mod tokened;
mod watch;

use std::collections::BTreeSet;
use std::time::Duration;

use doorstep_proto::v1 as w;
use harness::Server;
use tokio_stream::StreamExt;
use tonic::Code;

doorstep_store::both_backends!(
    whole_lifecycle,
    intake_is_idempotent_under_concurrent_retries,
    every_error_class,
    pagination_is_stable_under_concurrent_inserts,
    a_resumed_watch_loses_no_event,
    admin_calls_and_reflection,
    replies_are_not_held_back_by_delayed_acks,
);

const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";

fn intake(external_ref: &str, category: &str) -> w::CreateTicketRequest {
    w::CreateTicketRequest {
        source: w::Channel::Hotline12345 as i32,
        external_ref: external_ref.into(),
        caller: Some(w::Caller {
            name: "张女士".into(),
            phone: "13800000000".into(),
            confidential: false,
        }),
        category: category.into(),
        content: "楼道灯不亮".into(),
        address: "解放路129号院3号楼".into(),
        node: YARD.into(),
        ..Default::default()
    }
}

fn action(t: &w::Ticket, unit: &str, reason: &str) -> w::TicketAction {
    w::TicketAction {
        id: t.id.clone(),
        version: t.version,
        unit: unit.into(),
        reason: reason.into(),
    }
}

/// A dispatch of `t`, as last read, to `lead_unit` ("": the catalogue's unit for its place).
fn dispatch_to(t: &w::Ticket, lead_unit: &str, reason: &str) -> w::DispatchTicketRequest {
    w::DispatchTicketRequest {
        id: t.id.clone(),
        version: t.version,
        lead_unit: lead_unit.into(),
        reason: reason.into(),
    }
}

async fn whole_lifecycle(s: Server) {
    let mut c = s.tickets().await;
    let created = c
        .create_ticket(intake("SD-1", "lighting.stairwell"))
        .await
        .unwrap()
        .into_inner();
    assert!(created.created);
    let t = created.ticket.unwrap();
    assert_eq!(t.level, w::Level::Routine as i32);
    assert_eq!(
        t.status,
        w::Status::Dispatched as i32,
        "auto-dispatched by the catalogue"
    );
    assert!(!t.lead_unit.is_empty());
    assert!(t.resolve_due_at.is_some() && t.acknowledge_due_at.is_some());
    let lead = t.lead_unit.clone();

    let t = c
        .acknowledge_ticket(action(&t, &lead, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.status, w::Status::InProgress as i32);
    let t = c
        .suspend_ticket(action(&t, "", "resident not at home"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.status, w::Status::Suspended as i32);
    assert!(t.resolve_due_at.is_none());
    let t = c
        .resume_ticket(action(&t, "", ""))
        .await
        .unwrap()
        .into_inner();
    let t = c
        .whistle_ticket(w::WhistleTicketRequest {
            id: t.id.clone(),
            version: t.version,
            units: vec!["dept/city-management".into()],
            reason: "wiring in the public corridor".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.co_handlers.len(), 1);
    let t = c
        .report_in(action(&t, "dept/city-management", ""))
        .await
        .unwrap()
        .into_inner();
    let t = c
        .add_note(action(&t, "", "replaced the lamp"))
        .await
        .unwrap()
        .into_inner();
    let t = c
        .resolve_ticket(w::ResolveTicketRequest {
            id: t.id.clone(),
            version: t.version,
            resolution: "换了灯泡".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.status, w::Status::Resolved as i32);
    let t = c
        .record_callback(w::RecordCallbackRequest {
            id: t.id.clone(),
            version: t.version,
            satisfaction: w::Satisfaction::Satisfied as i32,
            comment: String::new(),
            matter_solved: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.status, w::Status::Closed as i32);
    assert_eq!(t.satisfaction, w::Satisfaction::Satisfied as i32);

    let timeline = s.timeline(&t.id).await;
    let kinds = harness::kinds(&timeline);
    use w::EventKind as K;
    assert_eq!(
        kinds,
        [
            K::Created,
            K::DispatchedTo,
            K::Acknowledged,
            K::SuspendedClock,
            K::ResumedClock,
            K::WhistleBlown,
            K::ReportedIn,
            K::NoteAdded,
            K::ResolvedByUnit,
            K::CallbackRecorded,
            K::ClosedTicket
        ]
    );
    assert_eq!(
        timeline.events.len() as i64,
        t.version,
        "every event bumps the version"
    );
    let seqs: Vec<i64> = timeline.events.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|p| p[0] < p[1]),
        "history in seq order: {seqs:?}"
    );
    assert_eq!(
        timeline.events.last().unwrap().status_after,
        w::Status::Closed as i32
    );
    let resolve = timeline
        .deadlines
        .iter()
        .find(|d| d.clock == w::Clock::Resolve as i32)
        .expect("the resolve deadline is explained");
    assert!(resolve.rule.contains("ROUTINE"), "{}", resolve.rule);
    let got = c
        .get_ticket(w::GetTicketRequest { id: t.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, t);
}

async fn intake_is_idempotent_under_concurrent_retries(s: Server) {
    let mut calls = Vec::new();
    for _ in 0..16 {
        let mut c = s.tickets().await;
        calls.push(tokio::spawn(async move {
            c.create_ticket(intake("SD-RETRY", "lighting.stairwell"))
                .await
                .unwrap()
                .into_inner()
        }));
    }
    let mut ids = BTreeSet::new();
    let mut created = 0;
    for call in calls {
        let r = call.await.unwrap();
        ids.insert(r.ticket.unwrap().id);
        created += usize::from(r.created);
    }
    assert_eq!(ids.len(), 1, "one ticket for one external reference");
    assert_eq!(created, 1, "exactly one call says it created it");
}

async fn every_error_class(s: Server) {
    let mut c = s.tickets().await;
    fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> (Code, String) {
        let e = r.unwrap_err();
        (e.code(), e.message().to_owned())
    }
    // INVALID_ARGUMENT names the field.
    let mut bad = intake("SD-E1", "lighting.stairwell");
    bad.content = "  ".into();
    let (k, m) = code(c.create_ticket(bad).await);
    assert_eq!(
        (k, m.as_str()),
        (Code::InvalidArgument, "content: is required")
    );
    let mut bad = intake("SD-E2", "lighting.stairwell");
    bad.node = "lixia/nowhere".into();
    let (k, m) = code(c.create_ticket(bad).await);
    assert_eq!(k, Code::InvalidArgument);
    assert!(
        m.starts_with("node: unknown jurisdiction node lixia/nowhere"),
        "{m}"
    );
    let mut bad = intake("SD-E3", "lighting.stairwell");
    bad.level_hint = 42;
    assert_eq!(code(c.create_ticket(bad).await).0, Code::InvalidArgument);
    let mut bad = intake("SD-E4", "no.such.category");
    bad.source = 0;
    let (k, m) = code(c.create_ticket(bad).await);
    assert_eq!(
        (k, m.as_str()),
        (Code::InvalidArgument, "source: is required")
    );
    let (k, m) = code(c.create_ticket(intake("SD-E5", "no.such.category")).await);
    assert_eq!(k, Code::InvalidArgument);
    assert!(m.starts_with("category:"), "{m}");

    // NOT_FOUND.
    let (k, _) = code(
        c.get_ticket(w::GetTicketRequest {
            id: "no-such-ticket".into(),
        })
        .await,
    );
    assert_eq!(k, Code::NotFound);

    // FAILED_PRECONDITION names the current status.
    let t = c
        .create_ticket(intake("SD-E6", "lighting.stairwell"))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    let (k, m) = code(
        c.resolve_ticket(w::ResolveTicketRequest {
            id: t.id.clone(),
            version: t.version,
            resolution: "done".into(),
        })
        .await,
    );
    assert_eq!(k, Code::FailedPrecondition);
    assert!(m.contains("DISPATCHED"), "{m}");

    // ABORTED for a stale version; nothing changes.
    c.urge_ticket(action(&t, "", "hurry")).await.unwrap();
    let (k, m) = code(c.urge_ticket(action(&t, "", "hurry again")).await);
    assert_eq!(k, Code::Aborted, "{m}");
    let now = c
        .get_ticket(w::GetTicketRequest { id: t.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.version, t.version + 1);

    // Oversized requests are refused before they reach the engine.
    let mut huge = intake("SD-E7", "lighting.stairwell");
    huge.content = "x".repeat(5 * 1024 * 1024);
    let err = c.create_ticket(huge).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            Code::ResourceExhausted | Code::OutOfRange | Code::InvalidArgument
        ),
        "{err:?}"
    );
    let mut big = intake("SD-E8", "lighting.stairwell");
    big.content = "长".repeat(30_000);
    let (k, m) = code(c.create_ticket(big).await);
    assert_eq!(k, Code::InvalidArgument);
    assert!(m.starts_with("content:"), "{m}");
}

async fn pagination_is_stable_under_concurrent_inserts(s: Server) {
    let mut c = s.tickets().await;
    let mut first = Vec::new();
    for i in 0..30 {
        let t = c
            .create_ticket(intake(&format!("SD-P{i}"), "lighting.stairwell"))
            .await
            .unwrap()
            .into_inner()
            .ticket
            .unwrap();
        first.push(t.id);
    }
    let mut writer = s.tickets().await;
    let inserts = tokio::spawn(async move {
        for i in 0..20 {
            writer
                .create_ticket(intake(&format!("SD-Q{i}"), "lighting.stairwell"))
                .await
                .unwrap();
        }
    });
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_tickets(w::ListTicketsRequest {
                node: "lixia/jiefanglu".into(),
                page_size: 7,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.tickets.into_iter().map(|t| t.id));
        tokio::time::sleep(Duration::from_millis(5)).await;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    inserts.await.unwrap();
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no ticket twice");
    assert_eq!(
        &seen[..30],
        &first[..],
        "the first thirty, in order, none skipped"
    );
    // Filters: an unknown page token and a subtree elsewhere.
    let err = c
        .list_tickets(w::ListTicketsRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let elsewhere = c
        .list_tickets(w::ListTicketsRequest {
            node: "lixia/qianfoshan".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(elsewhere.tickets.is_empty());
}

async fn a_resumed_watch_loses_no_event(s: Server) {
    let mut c = s.tickets().await;
    let mut watch = s.tickets().await;
    let t = c
        .create_ticket(intake("SD-W0", "lighting.stairwell"))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    let start = s.timeline(&t.id).await.events.last().unwrap().seq;
    let mut stream = watch
        .watch_events(w::WatchEventsRequest {
            node: "lixia/jiefanglu".into(),
            after_seq: start,
        })
        .await
        .unwrap()
        .into_inner();
    // Writes keep coming while the console watches, disconnects and comes back.
    let mut writer = s.tickets().await;
    let writes = tokio::spawn(async move {
        let mut tickets = Vec::new();
        for i in 0..25 {
            let t = writer
                .create_ticket(intake(&format!("SD-W{}", i + 1), "lighting.stairwell"))
                .await
                .unwrap()
                .into_inner()
                .ticket
                .unwrap();
            let t = writer
                .urge_ticket(action(&t, "", "please"))
                .await
                .unwrap()
                .into_inner();
            tickets.push(t.id);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        tickets
    });
    let mut seqs = Vec::new();
    while seqs.len() < 10 {
        let e = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("events keep coming")
            .unwrap()
            .unwrap();
        seqs.push(e.seq);
    }
    drop(stream);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let tickets = writes.await.unwrap();
    let expected = 25 * 3; // CREATED, DISPATCHED_TO, URGED per ticket
    let mut resumed = watch
        .watch_events(w::WatchEventsRequest {
            node: "lixia/jiefanglu".into(),
            after_seq: *seqs.last().unwrap(),
        })
        .await
        .unwrap()
        .into_inner();
    while seqs.len() < expected {
        let e = tokio::time::timeout(Duration::from_secs(10), resumed.next())
            .await
            .expect("events keep coming")
            .unwrap()
            .unwrap();
        seqs.push(e.seq);
    }
    assert!(
        seqs.windows(2).all(|p| p[0] < p[1]),
        "in seq order, no repeats"
    );
    // Exactly the events of those tickets: none lost.
    let mut all = Vec::new();
    for id in &tickets {
        let tl = s.timeline(id).await;
        all.extend(tl.events.iter().map(|e| e.seq));
    }
    all.sort_unstable();
    assert_eq!(seqs, all);
    // A live event after catching up arrives too.
    let t = c
        .get_ticket(w::GetTicketRequest {
            id: tickets[0].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    c.add_note(action(&t, "", "live")).await.unwrap();
    let live = tokio::time::timeout(Duration::from_secs(5), resumed.next())
        .await
        .expect("the live event arrives")
        .unwrap()
        .unwrap();
    assert_eq!(live.kind, w::EventKind::NoteAdded as i32);
}

async fn admin_calls_and_reflection(s: Server) {
    let mut a = s.admin().await;
    let roots = a
        .list_nodes(w::ListNodesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(roots.nodes.len(), 1);
    assert_eq!(roots.nodes[0].code, "lixia");
    let streets = a
        .list_nodes(w::ListNodesRequest {
            parent: "lixia".into(),
            recursive: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(streets.nodes.len() >= 3);
    let yard = a
        .get_node(w::GetNodeRequest { code: YARD.into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!yard.board.unwrap().people.is_empty());
    let catalogue = a
        .list_catalogue(w::ListCatalogueRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(catalogue.entries.len() >= 10);
    // Re-importing the same district changes nothing and fails nothing.
    let again = a
        .import_district(w::ImportDistrictRequest {
            toml: harness::LIXIA.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(again.nodes > 0);
    let bad = a
        .import_district(w::ImportDistrictRequest {
            toml: "[district]\nfoo = 1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    let year = a
        .get_calendar_year(w::GetCalendarYearRequest { year: 2026 })
        .await
        .unwrap()
        .into_inner();
    assert!(year.source.contains("2026"));
    assert!(year.days.iter().any(|d| d.date == "2026-09-20" && !d.off));
    let put = a
        .put_calendar_year(w::CalendarYear {
            year: 2027,
            source: "test notice for 2027".into(),
            days: vec![w::CalendarDay {
                date: "2027-01-01".into(),
                off: true,
                name: "元旦".into(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(put.days.len(), 1);
    let bad = a
        .put_calendar_year(w::CalendarYear {
            year: 2027,
            source: "x".into(),
            days: vec![w::CalendarDay {
                date: "2027-02-30".into(),
                off: true,
                name: "x".into(),
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("2027-02-30"), "{}", bad.message());

    let policy = a
        .get_policy(w::GetPolicyRequest { version: 0 })
        .await
        .unwrap()
        .into_inner();
    let next = a
        .put_policy(w::PutPolicyRequest {
            toml: "[levels.routine]\nresolve_within = \"20s\"\n".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(next.version > policy.version);
    let bad = a
        .put_policy(w::PutPolicyRequest {
            toml: "[levels.routine]\nresolve_within = \"soon\"\n".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("levels.routine.resolve_within"),
        "{}",
        bad.message()
    );

    // Health and both reflection versions answer unaided.
    s.check_health_and_reflection().await;
}

/// Sequential calls on one connection each answer at once. Without `TCP_NODELAY` on the server's
/// accepted sockets, a reply's later HTTP/2 frames waited for the client's delayed ACK: about 44 ms a
/// call for any reply over a few hundred bytes, every call alike. The median call is compared with
/// that, not the total: a loaded machine stalls some calls, which the median ignores.
async fn replies_are_not_held_back_by_delayed_acks(s: Server) {
    const CALLS: u32 = 50;
    /// Far above a call on a loaded machine, below the delayed ACK every call would wait for.
    const HELD_BACK: Duration = Duration::from_millis(30);
    fn median(mut took: Vec<Duration>) -> Duration {
        took.sort_unstable();
        took[took.len() / 2]
    }
    let mut c = s.tickets().await;
    let t = c
        .create_ticket(intake("SD-NAGLE", "lighting.stairwell"))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    let mut took = Vec::new();
    for _ in 0..CALLS {
        let started = std::time::Instant::now();
        let got = c
            .get_ticket(w::GetTicketRequest { id: t.id.clone() })
            .await
            .unwrap()
            .into_inner();
        took.push(started.elapsed());
        assert_eq!(got.id, t.id);
    }
    let tickets = median(took);
    let mut admin = s.admin().await;
    let mut took = Vec::new();
    for _ in 0..CALLS {
        let started = std::time::Instant::now();
        let node = admin
            .get_node(w::GetNodeRequest { code: YARD.into() })
            .await
            .unwrap()
            .into_inner();
        took.push(started.elapsed());
        assert_eq!(node.code, YARD);
    }
    let nodes = median(took);
    assert!(
        tickets < HELD_BACK && nodes < HELD_BACK,
        "of {CALLS} sequential calls, the median GetTicket took {tickets:?} and the median GetNode \
         {nodes:?}: a reply waits for a delayed ACK (TCP_NODELAY off on accepted connections?)"
    );
}
