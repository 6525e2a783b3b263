//! A street office's dispatcher hands its tickets only to units of its own street office or to district
//! departments (吹哨报到), through the real server with tokens on, on both backends.

use doorstep_engine::access::Role;
use doorstep_proto::v1 as w;
use tonic::Code;

use crate::tokened::{Tokened, intake, req};

doorstep_store::both_backends!(a_street_dispatcher_hands_tickets_only_within_its_street);

const STREET: &str = "lixia/jiefanglu";
const YARD: &str = "lixia/jiefanglu/jiefangqiao/yard-129";
/// The district's own office: its jurisdiction is the whole district, so it reaches every ticket,
/// but it is no department and no unit of the street office.
const DISTRICT_OFFICE: &str = "district/office";

fn dispatch(
    token: &str,
    ticket: &w::Ticket,
    unit: &str,
) -> tonic::Request<w::DispatchTicketRequest> {
    req(token, crate::dispatch_to(ticket, unit, "re-dispatch"))
}

fn whistle(
    token: &str,
    ticket: &w::Ticket,
    units: &[&str],
) -> tonic::Request<w::WhistleTicketRequest> {
    req(
        token,
        w::WhistleTicketRequest {
            id: ticket.id.clone(),
            version: ticket.version,
            units: units.iter().map(|u| (*u).to_owned()).collect(),
            reason: "more hands".into(),
        },
    )
}

async fn a_street_dispatcher_hands_tickets_only_within_its_street(s: Tokened) {
    let street = s
        .token("解放路 dispatch", Role::Dispatcher, STREET, None)
        .await;
    let district = s
        .token("district dispatch", Role::Dispatcher, "lixia", None)
        .await;
    let root = s.token("root admin", Role::Admin, "lixia", None).await;
    let filed = s
        .file(&street, intake("SCOPE-1", YARD, "张女士", "13812345678"))
        .await;
    let mut t = s.tickets();

    // The district office reaches the ticket's place, but is not the street office's to call on.
    let refused = t
        .dispatch_ticket(dispatch(&street, &filed, DISTRICT_OFFICE))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("lead_unit"), "{refused:?}");
    assert!(refused.message().contains(DISTRICT_OFFICE), "{refused:?}");
    assert!(refused.message().contains(STREET), "{refused:?}");
    // Nothing changed.
    let unchanged = s.get(&root, &filed.id).await.unwrap();
    assert_eq!(unchanged.version, filed.version);
    assert_eq!(unchanged.lead_unit, filed.lead_unit);

    // A district-wide dispatcher may.
    let moved = t
        .dispatch_ticket(dispatch(&district, &filed, DISTRICT_OFFICE))
        .await
        .expect("a district-wide dispatcher hands it to the district office")
        .into_inner();
    assert_eq!(moved.lead_unit, DISTRICT_OFFICE);
    // The street office's own unit, and a district department, are the street's to call on.
    let back = t
        .dispatch_ticket(dispatch(&street, &moved, "street/jiefanglu"))
        .await
        .expect("the street office's own unit takes it")
        .into_inner();
    assert_eq!(back.lead_unit, "street/jiefanglu");
    let signed = t
        .acknowledge_ticket(req(&root, crate::action(&back, "street/jiefanglu", "")))
        .await
        .expect("signed for")
        .into_inner();

    // A whistle naming one unit outside the street is refused whole, naming that unit.
    let refused = t
        .whistle_ticket(whistle(
            &street,
            &signed,
            &["dept/city-management", DISTRICT_OFFICE],
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("units"), "{refused:?}");
    assert!(refused.message().contains(DISTRICT_OFFICE), "{refused:?}");
    let unchanged = s.get(&root, &signed.id).await.unwrap();
    assert_eq!(unchanged.version, signed.version);
    assert!(unchanged.co_handlers.is_empty());

    let called = t
        .whistle_ticket(whistle(
            &street,
            &signed,
            &["dept/city-management", "community/jiefangqiao"],
        ))
        .await
        .expect("a district department and the street's own community are called in")
        .into_inner();
    let units: Vec<&str> = called.co_handlers.iter().map(|c| c.unit.as_str()).collect();
    assert_eq!(units, ["dept/city-management", "community/jiefangqiao"]);
}
