//! Red cards (超期) end to end: a ticket whose deadline was breached shows `breached`, is listed by
//! `breached_only` (and no longer by `overdue_only` once its breach escalated it onto a fresh clock),
//! is counted by the SLA report's `breached_now`, and leaves the list once resolved. The server runs
//! over an engine with a manual clock, and the test fires due timers as the scheduler does.

use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use doorstep_domain::ManualClock;
use doorstep_engine::Engine;
use doorstep_proto::v1 as w;
use doorstep_proto::v1::report_service_client::ReportServiceClient;
use doorstep_proto::v1::ticket_service_client::TicketServiceClient;
use doorstep_store::testing::{Backend, TestDatabase};
use tonic::transport::Channel;

use crate::harness::{Serving, lixia_engine, serve_without_tokens};

doorstep_store::both_backends!(a_breached_ticket_shows_a_red_card_until_it_is_resolved);

const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
const WORKERS: &str = "lixia/jiefanglu/jiefangqiao/yard-129/workers";

/// The real server over an engine whose clock the test moves.
struct Desk {
    _running: Serving,
    channel: Channel,
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
    _database: TestDatabase,
}

/// Monday 2 March 2026, 10:00 in the district.
fn t0() -> DateTime<Utc> {
    DateTime::<FixedOffset>::parse_from_rfc3339("2026-03-02T10:00:00+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

impl doorstep_store::testing::Fixture for Desk {
    async fn set_up(backend: Backend, _test: &'static str) -> Option<Desk> {
        let clock = Arc::new(ManualClock::new(t0()));
        let (database, engine) = lixia_engine(backend, clock.clone()).await?;
        let (running, channel) = serve_without_tokens(Arc::clone(&engine)).await;
        Some(Desk {
            _running: Serving::from(running),
            channel,
            engine,
            clock,
            _database: database,
        })
    }
}

impl Desk {
    /// Fires every timer due at the clock's now, as the SLA scheduler would.
    async fn fire_due_timers(&self) {
        loop {
            let now = self.engine.now();
            let due = self
                .engine
                .claim_due_timers(now, 100, "e2e-red-cards", now + Duration::seconds(30))
                .await
                .unwrap();
            if due.is_empty() {
                return;
            }
            for answer in self.engine.fire_batch(&due).await {
                answer.unwrap();
            }
        }
    }
}

fn intake(external_ref: &str) -> w::CreateTicketRequest {
    w::CreateTicketRequest {
        source: w::Channel::Hotline12345 as i32,
        external_ref: external_ref.into(),
        caller: Some(w::Caller {
            name: "张女士".into(),
            phone: "13800000000".into(),
            confidential: false,
        }),
        category: "lighting.stairwell".into(),
        content: "楼道灯不亮".into(),
        node: YARD.into(),
        ..Default::default()
    }
}

fn action(t: &w::Ticket, unit: &str) -> w::TicketAction {
    crate::action(t, unit, "")
}

/// The ids `ListTickets` answers for the whole district with `filter` applied.
async fn listed(
    c: &mut TicketServiceClient<Channel>,
    filter: fn(&mut w::ListTicketsRequest),
) -> Vec<String> {
    let mut request = w::ListTicketsRequest::default();
    filter(&mut request);
    let page = c.list_tickets(request).await.unwrap().into_inner();
    page.tickets.into_iter().map(|t| t.id).collect()
}

/// (overdue_now, breached_now) of the street office, as the SLA report counts them now.
async fn counted(desk: &Desk) -> (i64, i64) {
    let ts = |t: DateTime<Utc>| {
        Some(prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: 0,
        })
    };
    let report = ReportServiceClient::new(desk.channel.clone())
        .get_sla_report(w::SlaReportRequest {
            node: "lixia/jiefanglu".into(),
            from: ts(t0() - Duration::hours(1)),
            to: ts(t0() + Duration::days(30)),
            group_by: w::GroupBy::Unspecified as i32,
            period: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let [row] = &report.rows[..] else {
        panic!("{report:?}")
    };
    (row.overdue_now, row.breached_now)
}

async fn a_breached_ticket_shows_a_red_card_until_it_is_resolved(desk: Desk) {
    let mut c = TicketServiceClient::new(desk.channel.clone());
    let get = |id: String| w::GetTicketRequest { id };
    let t = c
        .create_ticket(intake("RED-1"))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(t.level, w::Level::Routine as i32);
    assert!(!t.breached);
    let t = c
        .acknowledge_ticket(action(&t, WORKERS))
        .await
        .unwrap()
        .into_inner();

    // A minute past the 24-hour resolve deadline, before the scheduler fires: overdue, and no red
    // card yet (nothing was recorded as breached).
    desk.clock
        .advance(Duration::hours(24) + Duration::minutes(1));
    let quiet = c
        .create_ticket(intake("RED-2"))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    let now = c.get_ticket(get(t.id.clone())).await.unwrap().into_inner();
    assert!(now.overdue && !now.breached, "{now:?}");
    assert_eq!(
        listed(&mut c, |r| r.overdue_only = true).await,
        [t.id.as_str()]
    );
    assert!(listed(&mut c, |r| r.breached_only = true).await.is_empty());
    assert_eq!(counted(&desk).await, (1, 0));

    // The scheduler records the breach and escalates at once, onto DIFFICULT's fresh clock.
    desk.fire_due_timers().await;
    let t = c.get_ticket(get(t.id.clone())).await.unwrap().into_inner();
    assert_eq!(t.level, w::Level::Difficult as i32, "{t:?}");
    assert!(t.breached && !t.overdue, "{t:?}");
    assert_eq!(
        listed(&mut c, |r| r.breached_only = true).await,
        [t.id.as_str()]
    );
    assert!(listed(&mut c, |r| r.overdue_only = true).await.is_empty());
    assert_eq!(
        listed(&mut c, |r| {
            r.breached_only = true;
            r.node = "lixia/qianfoshan".into();
        })
        .await,
        Vec::<String>::new(),
        "scoped like every list"
    );
    assert!(
        !c.get_ticket(get(quiet.id.clone()))
            .await
            .unwrap()
            .into_inner()
            .breached
    );
    assert_eq!(counted(&desk).await, (0, 1));

    // Signed for at the next level and resolved: the red card goes.
    let t = c
        .acknowledge_ticket(action(&t, &t.lead_unit.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(t.breached, "still being worked on");
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
    assert!(!t.breached);
    assert!(listed(&mut c, |r| r.breached_only = true).await.is_empty());
    assert_eq!(counted(&desk).await, (0, 0));
}
