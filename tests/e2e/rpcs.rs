//! The actions the main lifecycle test does not take, each checked for its effect on the ticket
//! through the real server: dispatching and returning (lead unit, sign-for clock, status), extensions
//! requested and decided (the resolve deadline), supervising, escalating and reclassifying (level,
//! escalations, clocks), merging and cancelling (status, the ticket merged into, clocks stopped), and
//! the units of the district as ListUnits answers them, and a calendar year put (the working-day
//! deadlines it touches move; clock-hour ones do not). Each effect is read back with GetTicket and
//! GetTimeline (the event recorded, one version per event); each refusal changes nothing.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use doorstep_domain::ManualClock;
use doorstep_proto::v1 as w;
use doorstep_store::testing::Backend;
use tonic::Code;

use crate::harness::{LIXIA, Server, kinds};
use crate::{YARD, action, dispatch_to, intake};

doorstep_store::both_backends!(
    dispatching_and_returning_move_the_lead_unit_and_its_sign_for_clock,
    an_extension_requested_and_approved_moves_the_resolve_deadline,
    supervising_escalating_and_reclassifying_change_the_ladder,
    merging_and_cancelling_end_a_ticket_and_stop_its_clocks,
    list_units_answers_the_units_of_the_district,
    a_calendar_year_put_moves_the_working_day_deadlines_it_touches,
);

const YARD_WORKERS: &str = "lixia/jiefanglu/jiefangqiao/yard-129/workers";
const COMMUNITY: &str = "community/jiefangqiao";

/// Files a ticket at the yard (the catalogue dispatches it to the yard's workers).
async fn file(s: &Server, external_ref: &str) -> w::Ticket {
    s.tickets()
        .await
        .create_ticket(intake(external_ref, "lighting.stairwell"))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap()
}

/// The ticket as stored now, and the kinds of its events in order.
async fn read_back(s: &Server, id: &str) -> (w::Ticket, Vec<w::EventKind>) {
    let mut c = s.tickets().await;
    let ticket = c
        .get_ticket(w::GetTicketRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner();
    let timeline = s.timeline(id).await;
    let kinds = kinds(&timeline);
    assert_eq!(
        kinds.len() as i64,
        ticket.version,
        "one version per recorded event"
    );
    assert_eq!(timeline.ticket.as_ref(), Some(&ticket));
    (ticket, kinds)
}

/// A refused call: its code, and that the ticket did not change.
async fn refused<T: std::fmt::Debug>(
    s: &Server,
    before: &w::Ticket,
    result: Result<tonic::Response<T>, tonic::Status>,
) -> (Code, String) {
    let e = result.unwrap_err();
    let (now, _) = read_back(s, &before.id).await;
    assert_eq!(&now, before, "a refused call changes nothing: {e:?}");
    (e.code(), e.message().to_owned())
}

fn instant(t: &Option<prost_types::Timestamp>) -> (i64, i32) {
    let t = t.as_ref().expect("an instant");
    (t.seconds, t.nanos)
}

async fn dispatching_and_returning_move_the_lead_unit_and_its_sign_for_clock(s: Server) {
    use w::EventKind as K;
    let mut c = s.tickets().await;
    let t = file(&s, "SD-R1").await;
    assert_eq!(t.status, w::Status::Dispatched as i32);
    assert_eq!(t.lead_unit, YARD_WORKERS, "the catalogue's choice");
    let first_ack = instant(&t.acknowledge_due_at);

    // To the community instead: a new lead unit with its own sign-for clock, from now.
    let t = c
        .dispatch_ticket(dispatch_to(
            &t,
            COMMUNITY,
            "the yard's workers are on leave",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.status, w::Status::Dispatched as i32);
    assert_eq!(t.lead_unit, COMMUNITY);
    assert!(instant(&t.acknowledge_due_at) >= first_ack);
    let (stored, kinds) = read_back(&s, &t.id).await;
    assert_eq!(stored, t);
    assert_eq!(kinds, [K::Created, K::DispatchedTo, K::DispatchedTo]);

    // Dispatching to the unit that already leads it is refused; so is an unknown unit.
    let (code, message) = refused(
        &s,
        &t,
        c.dispatch_ticket(dispatch_to(&t, COMMUNITY, "")).await,
    )
    .await;
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    let (code, message) = refused(
        &s,
        &t,
        c.dispatch_ticket(dispatch_to(&t, "dept/nobody", "")).await,
    )
    .await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("lead_unit"), "{message}");

    // Only the lead unit returns it, and only with a reason.
    let (code, message) = refused(
        &s,
        &t,
        c.return_ticket(action(&t, YARD_WORKERS, "not ours")).await,
    )
    .await;
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    let (code, message) = refused(&s, &t, c.return_ticket(action(&t, COMMUNITY, "")).await).await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("reason"), "{message}");

    let t = c
        .return_ticket(action(&t, COMMUNITY, "the lamp is the property company's"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.status, w::Status::Returned as i32);
    assert!(t.lead_unit.is_empty(), "no lead unit once returned");
    assert!(t.acknowledge_due_at.is_none(), "no sign-for clock runs");
    let (stored, kinds) = read_back(&s, &t.id).await;
    assert_eq!(stored, t);
    assert_eq!(kinds.last(), Some(&K::ReturnedByUnit));

    // Re-dispatched by the catalogue (no unit named): back to the yard's workers, who sign for it.
    let t = c
        .dispatch_ticket(dispatch_to(&t, "", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.status, w::Status::Dispatched as i32);
    assert_eq!(t.lead_unit, YARD_WORKERS);
    assert!(t.acknowledge_due_at.is_some());
    let t = c
        .acknowledge_ticket(action(&t, YARD_WORKERS, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.status, w::Status::InProgress as i32);
    // Signed for, it can no longer be dispatched elsewhere.
    let (code, message) = refused(
        &s,
        &t,
        c.dispatch_ticket(dispatch_to(&t, COMMUNITY, "")).await,
    )
    .await;
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains("IN_PROGRESS"), "{message}");
    let (_, kinds) = read_back(&s, &t.id).await;
    assert_eq!(
        kinds,
        [
            K::Created,
            K::DispatchedTo,
            K::DispatchedTo,
            K::ReturnedByUnit,
            K::DispatchedTo,
            K::Acknowledged
        ]
    );
}

async fn an_extension_requested_and_approved_moves_the_resolve_deadline(s: Server) {
    use w::EventKind as K;
    let mut c = s.tickets().await;
    let mut signed = Vec::new();
    for external_ref in ["SD-X1", "SD-X2"] {
        let t = file(&s, external_ref).await;
        signed.push(
            c.acknowledge_ticket(action(&t, YARD_WORKERS, ""))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let [approved, rejected] = <[w::Ticket; 2]>::try_from(signed).unwrap();

    // Nothing pending: nothing to decide.
    let (code, message) = refused(
        &s,
        &approved,
        c.decide_extension(w::DecideExtensionRequest {
            id: approved.id.clone(),
            version: approved.version,
            approve: true,
            reason: String::new(),
        })
        .await,
    )
    .await;
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    // Zero days, and no reason, are refused naming the field.
    let (code, message) = refused(
        &s,
        &approved,
        c.request_extension(w::RequestExtensionRequest {
            id: approved.id.clone(),
            version: approved.version,
            extra_working_days: 0,
            reason: "waiting for a part".into(),
        })
        .await,
    )
    .await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("extra_working_days"), "{message}");
    let (code, message) = refused(
        &s,
        &approved,
        c.request_extension(w::RequestExtensionRequest {
            id: approved.id.clone(),
            version: approved.version,
            extra_working_days: 2,
            reason: String::new(),
        })
        .await,
    )
    .await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("reason"), "{message}");

    // Requested: the deadline stays until a supervisor decides.
    let due = instant(&approved.resolve_due_at);
    let t = c
        .request_extension(w::RequestExtensionRequest {
            id: approved.id.clone(),
            version: approved.version,
            extra_working_days: 2,
            reason: "waiting for a part".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.status, w::Status::InProgress as i32);
    assert_eq!(instant(&t.resolve_due_at), due);
    assert_eq!(t.extensions, 0);
    // Once per resolve clock.
    let (code, _) = refused(
        &s,
        &t,
        c.request_extension(w::RequestExtensionRequest {
            id: t.id.clone(),
            version: t.version,
            extra_working_days: 1,
            reason: "again".into(),
        })
        .await,
    )
    .await;
    assert_eq!(code, Code::FailedPrecondition);
    let t = c
        .decide_extension(w::DecideExtensionRequest {
            id: t.id.clone(),
            version: t.version,
            approve: true,
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.extensions, 1);
    assert!(
        instant(&t.resolve_due_at) > due,
        "two working days later than {due:?}: {:?}",
        t.resolve_due_at
    );
    let (stored, kinds) = read_back(&s, &t.id).await;
    assert_eq!(stored, t);
    assert_eq!(
        kinds,
        [
            K::Created,
            K::DispatchedTo,
            K::Acknowledged,
            K::ExtensionRequested,
            K::ExtensionApproved
        ]
    );

    // Rejected (with the reason it needs): the deadline does not move.
    let due = instant(&rejected.resolve_due_at);
    let t = c
        .request_extension(w::RequestExtensionRequest {
            id: rejected.id.clone(),
            version: rejected.version,
            extra_working_days: 3,
            reason: "the owner is away".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let (code, message) = refused(
        &s,
        &t,
        c.decide_extension(w::DecideExtensionRequest {
            id: t.id.clone(),
            version: t.version,
            approve: false,
            reason: String::new(),
        })
        .await,
    )
    .await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("reason"), "{message}");
    let t = c
        .decide_extension(w::DecideExtensionRequest {
            id: t.id.clone(),
            version: t.version,
            approve: false,
            reason: "a lamp takes a day".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.extensions, 0);
    assert_eq!(instant(&t.resolve_due_at), due);
    let (_, kinds) = read_back(&s, &t.id).await;
    assert_eq!(kinds.last(), Some(&K::ExtensionRejected));
}

async fn supervising_escalating_and_reclassifying_change_the_ladder(s: Server) {
    use w::EventKind as K;
    let mut c = s.tickets().await;
    let t = file(&s, "SD-L1").await;
    let t = c
        .acknowledge_ticket(action(&t, YARD_WORKERS, ""))
        .await
        .unwrap()
        .into_inner();

    // 督办: recorded, nothing else moves.
    let (code, message) = refused(&s, &t, c.supervise_ticket(action(&t, "", "")).await).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("reason"), "{message}");
    let supervised = c
        .supervise_ticket(action(&t, "", "the third call about this lamp"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(supervised.version, t.version + 1);
    assert_eq!(supervised.status, t.status);
    assert_eq!(supervised.level, t.level);
    assert_eq!(supervised.resolve_due_at, t.resolve_due_at);
    let (_, kinds) = read_back(&s, &t.id).await;
    assert_eq!(kinds.last(), Some(&K::Supervised));

    // Escalated by hand: one rung up, the new level's clock, handed to the community.
    let t = c
        .escalate_ticket(action(&supervised, "", "the whole stairwell is dark"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.level, w::Level::Difficult as i32);
    assert_eq!(t.escalations, 1);
    assert_ne!(t.resolve_due_at, supervised.resolve_due_at);
    assert_eq!(t.lead_unit, COMMUNITY, "the community owns DIFFICULT");
    assert_eq!(t.status, w::Status::Dispatched as i32);
    assert!(t.acknowledge_due_at.is_some());
    let (stored, kinds) = read_back(&s, &t.id).await;
    assert_eq!(stored, t);
    assert_eq!(kinds.last(), Some(&K::Escalated));

    // Reclassified: to the level named, with its clock; not to the level it is at, not without a
    // reason.
    let (code, _) = refused(
        &s,
        &t,
        c.reclassify_ticket(w::ReclassifyTicketRequest {
            id: t.id.clone(),
            version: t.version,
            level: w::Level::Difficult as i32,
            reason: "no change".into(),
        })
        .await,
    )
    .await;
    assert_eq!(code, Code::FailedPrecondition);
    let (code, message) = refused(
        &s,
        &t,
        c.reclassify_ticket(w::ReclassifyTicketRequest {
            id: t.id.clone(),
            version: t.version,
            level: w::Level::Routine as i32,
            reason: String::new(),
        })
        .await,
    )
    .await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("reason"), "{message}");
    let reclassified = c
        .reclassify_ticket(w::ReclassifyTicketRequest {
            id: t.id.clone(),
            version: t.version,
            level: w::Level::Routine as i32,
            reason: "one lamp after all".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reclassified.level, w::Level::Routine as i32);
    assert_eq!(
        reclassified.escalations, 1,
        "a reclassification is no climb"
    );
    assert_ne!(reclassified.resolve_due_at, t.resolve_due_at);
    let (stored, kinds) = read_back(&s, &t.id).await;
    assert_eq!(stored, reclassified);
    assert_eq!(
        kinds,
        [
            K::Created,
            K::DispatchedTo,
            K::Acknowledged,
            K::Supervised,
            K::Escalated,
            K::Reclassified
        ]
    );
}

async fn merging_and_cancelling_end_a_ticket_and_stop_its_clocks(s: Server) {
    use w::EventKind as K;
    let mut c = s.tickets().await;
    let original = file(&s, "SD-M1").await;
    let duplicate = file(&s, "SD-M2").await;
    let withdrawn = file(&s, "SD-M3").await;

    let (code, message) = refused(
        &s,
        &duplicate,
        c.merge_ticket(w::MergeTicketRequest {
            id: duplicate.id.clone(),
            version: duplicate.version,
            into_id: duplicate.id.clone(),
            reason: String::new(),
        })
        .await,
    )
    .await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("into_id"), "{message}");
    let (code, message) = refused(
        &s,
        &duplicate,
        c.merge_ticket(w::MergeTicketRequest {
            id: duplicate.id.clone(),
            version: duplicate.version,
            into_id: "no-such-ticket".into(),
            reason: String::new(),
        })
        .await,
    )
    .await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("into_id"), "{message}");

    let merged = c
        .merge_ticket(w::MergeTicketRequest {
            id: duplicate.id.clone(),
            version: duplicate.version,
            into_id: original.id.clone(),
            reason: "the same lamp, called in twice".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(merged.status, w::Status::Merged as i32);
    assert_eq!(merged.merged_into, original.id);
    assert!(merged.resolve_due_at.is_none() && merged.acknowledge_due_at.is_none());
    let (stored, kinds) = read_back(&s, &merged.id).await;
    assert_eq!(stored, merged);
    assert_eq!(kinds, [K::Created, K::DispatchedTo, K::MergedInto]);
    let (still, _) = read_back(&s, &original.id).await;
    assert_eq!(still, original, "the ticket merged into is untouched");
    // A merged ticket takes no further action.
    let (code, message) = refused(
        &s,
        &merged,
        c.urge_ticket(action(&merged, "", "hurry")).await,
    )
    .await;
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains("MERGED"), "{message}");

    let (code, message) = refused(
        &s,
        &withdrawn,
        c.cancel_ticket(action(&withdrawn, "", "")).await,
    )
    .await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("reason"), "{message}");
    let cancelled = c
        .cancel_ticket(action(&withdrawn, "", "the resident fixed it"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, w::Status::Cancelled as i32);
    assert!(cancelled.resolve_due_at.is_none() && cancelled.acknowledge_due_at.is_none());
    let (stored, kinds) = read_back(&s, &cancelled.id).await;
    assert_eq!(stored, cancelled);
    assert_eq!(kinds, [K::Created, K::DispatchedTo, K::CancelledBy]);
    let (code, message) = refused(
        &s,
        &cancelled,
        c.cancel_ticket(action(&cancelled, "", "again")).await,
    )
    .await;
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains("CANCELLED"), "{message}");

    // The queue of open tickets has only the original left; the ended ones list by their status.
    let open = c
        .list_tickets(w::ListTicketsRequest {
            node: YARD.into(),
            statuses: vec![w::Status::Dispatched as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = open.tickets.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, [original.id.as_str()]);
    for (status, id) in [
        (w::Status::Merged, &merged.id),
        (w::Status::Cancelled, &cancelled.id),
    ] {
        let listed = c
            .list_tickets(w::ListTicketsRequest {
                node: YARD.into(),
                statuses: vec![status as i32],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let ids: Vec<&String> = listed.tickets.iter().map(|t| &t.id).collect();
        assert_eq!(ids, [id], "{status:?}");
    }
}

async fn list_units_answers_the_units_of_the_district(s: Server) {
    let mut a = s.admin().await;
    let all = a
        .list_units(w::ListUnitsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .units;
    let in_file = LIXIA.lines().filter(|l| l.trim() == "[[unit]]").count();
    assert_eq!(all.len(), in_file, "every unit of the district file");
    let water = all
        .iter()
        .find(|u| u.code == "dept/water")
        .expect("the water department");
    assert!(water.department);
    assert_eq!(water.node, "lixia");

    let at_yard = a
        .list_units(w::ListUnitsRequest { node: YARD.into() })
        .await
        .unwrap()
        .into_inner()
        .units;
    assert_eq!(at_yard.len(), 1, "{at_yard:?}");
    assert_eq!(at_yard[0].code, YARD_WORKERS);
    assert_eq!(at_yard[0].supervisor, COMMUNITY);
    assert!(!at_yard[0].department);

    // A unit added by a district import is listed at once.
    let added = format!(
        "{LIXIA}\n[[unit]]\ncode = \"dept/lighting\"\nname = \"区路灯管理处\"\nnode = \"lixia\"\n\
         department = true\nsupervisor = \"district/office\"\n"
    );
    a.import_district(w::ImportDistrictRequest { toml: added })
        .await
        .unwrap();
    let at_district = a
        .list_units(w::ListUnitsRequest {
            node: "lixia".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .units;
    let lighting = at_district
        .iter()
        .find(|u| u.code == "dept/lighting")
        .expect("the unit imported");
    assert!(lighting.department);
    assert_eq!(lighting.supervisor, "district/office");
    let all_now = a
        .list_units(w::ListUnitsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .units;
    assert_eq!(all_now.len(), all.len() + 1);

    let err = a
        .list_units(w::ListUnitsRequest {
            node: "not a node code".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("node:"), "{}", err.message());
}

/// The server on a manual clock standing at Monday 2 March 2026, 10:00 in the district: working-day
/// deadlines fall on known dates.
pub(crate) struct OnMonday(Server);

impl doorstep_store::testing::Fixture for OnMonday {
    async fn set_up(backend: Backend, _test: &'static str) -> Option<OnMonday> {
        let clock = Arc::new(ManualClock::new(local("2026-03-02T10:00:00")));
        Server::start_on(backend, clock).await.map(OnMonday)
    }
}

/// An instant in the district's time (UTC+8).
fn local(at: &str) -> DateTime<Utc> {
    DateTime::<FixedOffset>::parse_from_rfc3339(&format!("{at}+08:00"))
        .unwrap()
        .with_timezone(&Utc)
}

fn at(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let (seconds, nanos) = instant(t);
    DateTime::from_timestamp(seconds, nanos as u32).unwrap()
}

async fn a_calendar_year_put_moves_the_working_day_deadlines_it_touches(s: OnMonday) {
    use w::EventKind as K;
    let OnMonday(s) = s;
    let mut c = s.tickets().await;
    let mut hard_to_fix = intake("SD-CAL-1", "lighting.stairwell");
    hard_to_fix.level_hint = w::Level::Difficult as i32;
    let difficult = c
        .create_ticket(hard_to_fix)
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    // Three working days from Monday: Tuesday, Wednesday, Thursday; due at Friday's start.
    assert_eq!(at(&difficult.resolve_due_at), local("2026-03-06T00:00:00"));
    let routine = file(&s, "SD-CAL-2").await;
    assert_eq!(
        at(&routine.resolve_due_at),
        local("2026-03-03T10:00:00"),
        "24 clock hours"
    );

    // Tuesday and Wednesday declared off, the year's other days kept.
    let mut a = s.admin().await;
    let mut year = a
        .get_calendar_year(w::GetCalendarYearRequest { year: 2026 })
        .await
        .unwrap()
        .into_inner();
    for date in ["2026-03-03", "2026-03-04"] {
        assert!(year.days.iter().all(|d| d.date != date), "{date}");
        year.days.push(w::CalendarDay {
            date: date.into(),
            off: true,
            name: "test closure".into(),
        });
    }
    year.source = format!("{} (with a test closure)", year.source);
    let stored = a
        .put_calendar_year(year.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.days.len(), year.days.len());
    let read = a
        .get_calendar_year(w::GetCalendarYearRequest { year: 2026 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.source, year.source);
    assert!(
        read.days
            .iter()
            .any(|d| d.date == "2026-03-04" && d.off && d.name == "test closure")
    );

    // Thursday, Friday and Monday now: due at Tuesday's start, recorded as a re-timing.
    let (moved, kinds) = read_back(&s, &difficult.id).await;
    assert_eq!(at(&moved.resolve_due_at), local("2026-03-10T00:00:00"));
    assert_eq!(kinds.last(), Some(&K::Retimed));
    assert_eq!(moved.version, difficult.version + 1);
    // A clock-hour limit is not the calendar's: untouched, nothing recorded.
    let (same, _) = read_back(&s, &routine.id).await;
    assert_eq!(same, routine);
    // A ticket filed now reckons under the new calendar at once.
    let mut another = intake("SD-CAL-3", "lighting.stairwell");
    another.level_hint = w::Level::Difficult as i32;
    let later = c
        .create_ticket(another)
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert_eq!(at(&later.resolve_due_at), local("2026-03-10T00:00:00"));
}
